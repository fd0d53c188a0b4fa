"""Label spaces in numpy: the same projections as the torch ones, and no torch at import."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from robust_core import labelspace
from robust_core.datasets import get_spec, projection_for

SHIFTS = ("imagenet-r", "imagenet-a", "objectnet")


@pytest.mark.parametrize("shift", SHIFTS)
def test_numpy_projection_equals_the_torch_projection(shift):
    logits = np.random.default_rng(0).normal(size=(2, 9, 1000)).astype(np.float32)
    expected = projection_for(get_spec(shift))(torch.from_numpy(logits)).numpy()
    got = labelspace.project(logits, shift)
    assert got.shape == expected.shape == (2, 9, 113 if shift == "objectnet" else 200)
    np.testing.assert_array_equal(got, expected)


def test_head_to_subset_against_the_metadata_files():
    meta = Path(labelspace.__file__).parent / "datasets" / "metadata"
    for shift, table in (("imagenet-r", "imagenet_r_classes.csv"), ("imagenet-a", "imagenet_a_classes.csv")):
        with open(meta / table) as fh:
            indices = [int(r["imagenet_index"]) for r in csv.DictReader(fh)]
        mapper = labelspace.head_to_subset(shift)
        assert mapper.shape == (1000,) and (mapper >= 0).sum() == 200
        assert [int(np.flatnonzero(mapper == k)[0]) for k in range(200)] == indices
    mapper = labelspace.head_to_subset("objectnet")
    for c in json.loads((meta / "objectnet_classes.json").read_text()):
        assert sorted(np.flatnonzero(mapper == c["objectnet_index"]).tolist()) == sorted(c["imagenet_indices"])
    assert (mapper >= 0).sum() == 125
    # a set in the head's label space: every class is itself, and project leaves logits alone
    np.testing.assert_array_equal(labelspace.head_to_subset("imagenetv2"), np.arange(1000))
    logits = np.ones((3, 1000))
    assert labelspace.project(logits, "imagenet-sketch") is logits


def test_projection_for_a_head_to_subset_label_is_the_argmax_label():
    """Projecting, then taking argmax, agrees with mapping the head's argmax where it lands in the subset."""
    rng = np.random.default_rng(1)
    for shift in SHIFTS:
        mapper = labelspace.head_to_subset(shift)
        logits = rng.normal(size=(50, 1000))
        logits[:, mapper < 0] -= 100  # the head's best class is always one the shift keeps
        assert np.array_equal(labelspace.project(logits, shift).argmax(1), mapper[logits.argmax(1)])


def test_by_name_spec_and_errors():
    spec = {"type": "by_name", "indices": [2, 0]}
    np.testing.assert_array_equal(labelspace.project(np.array([[1.0, 2.0, 3.0]]), spec), [[3.0, 1.0]])
    np.testing.assert_array_equal(labelspace.head_to_subset(spec, n_head=3), [1, -1, 0])
    assert labelspace.projection_spec({"loader": "imagefolder", "root": "/x"}) is None
    with pytest.raises(KeyError, match="imagenet-z"):
        labelspace.projection_spec("imagenet-z")


def test_class_subset_axis_comes_from_the_registry():
    assert labelspace.class_subset_shifts() == ("imagenet-r", "objectnet", "imagenet-a")  # registry order
    assert all(labelspace.has_class_subset_axis(s) for s in SHIFTS)
    assert not any(labelspace.has_class_subset_axis(s) for s in ("imagenet", "imagenetv2", "imagenet-sketch", "cifar10.1", "mine"))


def test_import_does_not_load_torch():
    code = "import sys, robust_core.labelspace as ls; ls.project(__import__('numpy').zeros((1, 1000)), 'objectnet'); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path(__file__).parents[1])
    assert out.stdout.strip() == "False"
