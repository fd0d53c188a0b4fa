"""RunView on an ImageNet-shaped store: class-subset x axes for ImageNet-R (WiSE-FT and output-space ensemble)."""

import numpy as np
import pytest

from robust_core.analysis import RunView
from robust_core.datasets import classnames_for, get_spec, projection_for
from robust_core.store import StoreWriter


@pytest.fixture(scope="module")
def imagenet_view(tmp_path_factory):
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("inet") / "store"
    alphas = [0.0, 0.5, 1.0]
    writer = StoreWriter(path, {"t": 1}, logits_dtype="float32")
    r_indices = np.flatnonzero(projection_for(get_spec("imagenet-r"))(__import__("torch").eye(1000)).numpy().sum(1))
    labels = np.concatenate([rng.choice(r_indices, 300), rng.integers(0, 1000, 100)])  # most val images in R's classes
    z0 = rng.normal(size=(400, 1000)).astype(np.float32)
    z1 = rng.normal(size=(400, 1000)).astype(np.float32)
    z0[np.arange(400), labels] += 2.5
    z1[np.arange(400), labels] += 1.0
    writer.write_labels("imagenet", labels)
    # theta(alpha) logits deliberately differ from the output-space mix of the endpoints
    grid = np.stack([z0, rng.normal(size=(400, 1000)).astype(np.float32), z1])
    writer.write_logits("ft", "imagenet", grid)
    r_labels = rng.integers(0, 200, 50)
    writer.write_labels("imagenet-r", r_labels)
    writer.write_logits("ft", "imagenet-r", rng.normal(size=(3, 50, 200)).astype(np.float32))
    manifest = {
        "run": {"id": "imagenet", "id_val": None, "shifts": ["imagenet-r"]},
        "datasets": {"imagenet": {"classnames": classnames_for("imagenet")}, "imagenet-r": {"classnames": classnames_for("imagenet_r")}},
        "methods": {"ft": {"alphas": alphas}},
    }
    return RunView(writer.finalize(manifest)), grid, labels, r_indices


def _direct(logits, labels, r_indices):
    keep = np.isin(labels, r_indices)
    pred = r_indices[logits[keep][:, r_indices].argmax(1)]
    return float((pred == labels[keep]).mean())


def test_subset_x_for_wise_and_ensemble(imagenet_view):
    view, grid, labels, r_indices = imagenet_view
    x_wise, *_ = view._xy("ft", "imagenet-r", "wise")
    x_ens, *_ = view._xy("ft", "imagenet-r", "ensemble")
    for j, alpha in enumerate([0.0, 0.5, 1.0]):
        assert x_wise[j] == pytest.approx(_direct(grid[j], labels, r_indices))
        mixed = (1 - alpha) * grid[0] + alpha * grid[-1]
        assert x_ens[j] == pytest.approx(_direct(mixed, labels, r_indices))
    assert x_wise[1] != pytest.approx(x_ens[1])  # the two models differ at alpha 0.5 here
