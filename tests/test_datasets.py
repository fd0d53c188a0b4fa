import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_image_folder

from robust_core import datasets as ds
from robust_core.datasets import DatasetError, resolve

META = Path(ds.__file__).parent / "metadata"


def test_imagenet_r_and_a_subsets_project_by_column():
    logits = torch.randn(7, 1000)
    for name, table in (("imagenet-r", "imagenet_r_classes.csv"), ("imagenet-a", "imagenet_a_classes.csv")):
        with open(META / table) as fh:
            indices = [int(r["imagenet_index"]) for r in csv.DictReader(fh)]
        project = ds.projection_for(ds.get_spec(name))
        out = project(logits)
        assert out.shape == (7, 200)
        assert torch.equal(out, logits[:, indices])
        names = ds.classnames_for(name.replace("-", "_"))
        assert len(names) == 200 and names[0] == ds.imagenet_classnames()[indices[0]]


def test_objectnet_max_over_mapped_classes():
    classes = json.loads((META / "objectnet_classes.json").read_text())
    logits = torch.randn(5, 1000)
    out = ds.projection_for(ds.get_spec("objectnet"))(logits)
    assert out.shape == (5, 113)
    for c in classes:  # independent loop: max over each class's ImageNet indices
        expected = logits[:, c["imagenet_indices"]].max(dim=1).values
        assert torch.equal(out[:, c["objectnet_index"]], expected)
    assert sum(len(c["imagenet_indices"]) for c in classes) == 125


def test_imagenetv2_integer_folders_sorted_numerically(tmp_path):
    from PIL import Image

    root = tmp_path / "imagenetv2-matched-frequency-format-val"
    for k in (0, 1, 2, 10, 100):
        (root / str(k)).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(root / str(k) / "a.jpeg")
    with pytest.warns(UserWarning, match="published set has"):  # a few images, not the whole set
        evalset = resolve("imagenetv2", data_root=tmp_path)
    labels = sorted(label for _, label in evalset.dataset.samples)
    assert labels == [0, 1, 2, 10, 100]  # ImageFolder would give 0..4


def test_wnid_folders_map_through_the_wnid_table(tmp_path):
    from PIL import Image

    wnids = ds.imagenet_wnids()
    root = tmp_path / "sketch"
    for idx in (5, 239, 999):
        (root / wnids[idx]).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(root / wnids[idx] / "x.jpg")
    with pytest.warns(UserWarning, match="published set has"):  # a few images, not the whole set
        evalset = resolve("imagenet-sketch", data_root=tmp_path)
    assert sorted(label for _, label in evalset.dataset.samples) == [5, 239, 999]
    assert wnids[239] == "n02107683"  # Bernese mountain dog


def test_generic_imagefolder_with_class_subset_by_name(tmp_path):
    make_image_folder(tmp_path / "id", classes=("cat", "dog", "fish"))
    make_image_folder(tmp_path / "shift", classes=("dog", "fish"))
    head = ds.head_classnames_for("mine", tmp_path / "id")
    shift = resolve("shift", root=tmp_path / "shift", head_classnames=head)
    assert shift.classnames == ["dog", "fish"]
    assert torch.equal(shift.projection(torch.tensor([[1.0, 2.0, 3.0]])), torch.tensor([[2.0, 3.0]]))
    make_image_folder(tmp_path / "bad", classes=("zebra",))
    with pytest.raises(DatasetError, match="zebra"):
        resolve("bad", root=tmp_path / "bad", head_classnames=head)


def test_classnames_file_and_errors(tmp_path):
    root = make_image_folder(tmp_path / "f", classes=("c0", "c1"))
    (root / "classnames.txt").write_text("tabby cat\ngolden retriever\n")
    assert ds.head_classnames_for("x", root) == ["tabby cat", "golden retriever"]
    with pytest.raises(DatasetError, match="does not exist"):
        resolve("imagenet-r", data_root=tmp_path / "nowhere")
    with pytest.raises(DatasetError, match="Unknown dataset"):
        ds.get_spec("imagenet-z")
    with pytest.raises(DatasetError, match="not-registered=PATH"):
        resolve("not-registered")


def test_stl_to_cifar_map_and_cifar101(tmp_path):
    meta = json.loads((META / "cifar10_stl10_classes.json").read_text())
    assert meta["stl10_to_cifar10"] == [0, 2, 1, 3, 4, 5, 7, -1, 8, 9]
    root = tmp_path / "cifar10.1"
    root.mkdir()
    np.save(root / "cifar10.1_v6_data.npy", np.zeros((4, 32, 32, 3), np.uint8))
    np.save(root / "cifar10.1_v6_labels.npy", np.array([0, 1, 2, 9], np.int32))
    with pytest.warns(UserWarning, match="published set has"):  # a few images, not the whole set
        evalset = resolve("cifar10.1", data_root=tmp_path)
    assert len(evalset.dataset) == 4 and evalset.classnames[9] == "truck"


def test_max_examples_subset_is_seeded(tmp_path):
    root = make_image_folder(tmp_path / "f", per_class=10)
    a = resolve("f", root=root, max_examples=7, seed=3)
    b = resolve("f", root=root, max_examples=7, seed=3)
    assert len(a.dataset) == 7 and a.dataset.indices == b.dataset.indices


def test_every_loader_is_in_the_table_and_every_imagenet_shift_has_testbed_facts():
    from robust_core import reference

    for name in ds.list_datasets():
        spec = ds.get_spec(name)
        assert spec["loader"] in ds._LOADERS, name
        ds.classnames_for(spec["classes"])  # every class list resolves
    shifts = [n for n in ds.list_datasets() if ds.get_spec(n)["head"] == "imagenet" and "size" in ds.get_spec(n) and n != "imagenet"]
    assert sorted(shifts) == sorted(reference.IMAGENET_SHIFTS)
    columns = set(reference.testbed().columns)
    for name in shifts:
        axis = reference.IMAGENET_SHIFTS[name]
        assert {axis.x, axis.y, axis.cutoff_column} <= columns, name
        assert reference.eval_set_sizes()[axis.y] > 0


def test_a_folder_of_the_published_size_reads_without_a_warning(tmp_path):
    import warnings

    from PIL import Image

    root = tmp_path / "imagenetv2-matched-frequency-format-val"
    for k in (0, 1):
        (root / str(k)).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(root / str(k) / "a.jpeg")
    spec = dict(ds.get_spec("imagenetv2"), size=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        evalset = ds._build_registered("imagenetv2", spec, root, None, False)
    assert len(evalset.dataset) == 2
