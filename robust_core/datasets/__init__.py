"""Dataset registry and loaders.

Every evaluation set is described by data in ``registry.json`` (loader, label space, class names,
templates, projection from the classifier head's label space to the dataset's). Nothing is downloaded
unless the caller passes ``download=True`` (torchvision CIFAR/STL only). Any ImageFolder works too:
``resolve("myset", root="/data/myset")`` for a name not in the registry reads ``root`` with one
sub-folder per class (names from the folders, or from ``classnames.txt`` in the root, one per line in
sorted-folder order).

Projections (the data, and their numpy versions, are in ``robust_core.labelspace``; the torch ones
here are built from it):
- ``subset`` (ImageNet-R/A): logits restricted to the shift's 200 ImageNet columns, in index order.
- ``max_groups`` (ObjectNet): for each of the 113 classes, the max over its mapped ImageNet columns.
- ``by_name`` (generic folders): the shift's classes are matched to head classes by name.

Loaders are looked up by the entry's ``loader`` in ``_LOADERS``. ``size`` is the published set's
image count: a registered folder holding another number of images is read with a warning.
"""

from __future__ import annotations

import csv
import json
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .. import labelspace
from .. import templates as _templates
from ..labelspace import objectnet_classes

_META = labelspace.META


class DatasetError(ValueError):
    """A dataset cannot be found or read; the message says what to pass instead."""


@dataclass
class EvalSet:
    """One evaluation set as the evaluator sees it.

    Attributes:
        name: short name used as the store key (e.g. ``imagenet-r``).
        dataset: a torch Dataset yielding ``(image_tensor, label)`` in this set's label space.
        classnames: class names of this set's label space.
        projection: maps head logits ``(B, n_head)`` to this set's logits ``(B, n_classes)``; ``None``
            when the label spaces are the same.
        info: registry entry, for provenance.
    """

    name: str
    dataset: Dataset
    classnames: list[str]
    projection: Callable[[torch.Tensor], torch.Tensor] | None = None
    info: dict = field(default_factory=dict)


def _registry() -> dict[str, dict]:
    return labelspace.registry()


def list_datasets() -> list[str]:
    """Names of registered datasets."""
    return sorted(_registry())


def get_spec(name: str) -> dict:
    """Registry entry for ``name``; raises ``DatasetError`` listing known names."""
    reg = _registry()
    if name not in reg:
        raise DatasetError(
            f"Unknown dataset {name!r}. Registered: {', '.join(sorted(reg))}. For your own data pass "
            "NAME=PATH with PATH an ImageFolder (one sub-folder per class)."
        )
    return reg[name]


@cache
def imagenet_wnids() -> tuple[str, ...]:
    with open(_META / "imagenet1k_wnids.csv") as fh:
        return tuple(row["wnid"] for row in csv.DictReader(fh))


@cache
def imagenet_classnames() -> tuple[str, ...]:
    from open_clip import IMAGENET_CLASSNAMES

    return tuple(IMAGENET_CLASSNAMES)


@cache
def _cifar_meta() -> dict:
    return json.loads((_META / "cifar10_stl10_classes.json").read_text())


def classnames_for(key: str) -> list[str]:
    """Class names of a label space: ``imagenet``, ``imagenet_r``, ``imagenet_a``, ``objectnet``, ``cifar10``."""
    if key == "imagenet":
        return list(imagenet_classnames())
    if key in ("imagenet_r", "imagenet_a"):
        indices, _ = labelspace.subset_table(f"{key}_classes.csv")
        names = imagenet_classnames()
        return [names[i] for i in indices]
    if key == "objectnet":
        return [c["classname"] for c in objectnet_classes()]
    if key == "cifar10":
        return list(_cifar_meta()["cifar10_classes"])
    raise DatasetError(f"Unknown class list {key!r}.")


def subset_projection(indices: Sequence[int]) -> Callable[[torch.Tensor], torch.Tensor]:
    """Restrict head logits to ``indices`` (ImageNet-R/A: 200 of 1000 columns)."""
    index = torch.as_tensor(list(indices), dtype=torch.long)

    def project(logits: torch.Tensor) -> torch.Tensor:
        return logits.index_select(-1, index.to(logits.device))

    return project


def max_groups_projection(groups: Sequence[Sequence[int]]) -> Callable[[torch.Tensor], torch.Tensor]:
    """For each target class, the max over its group of head columns (ObjectNet, wise-ft's protocol)."""
    flat = torch.as_tensor([i for g in groups for i in g], dtype=torch.long)
    owner = torch.as_tensor([k for k, g in enumerate(groups) for _ in g], dtype=torch.long)
    n_out = len(groups)

    def project(logits: torch.Tensor) -> torch.Tensor:
        picked = logits.index_select(-1, flat.to(logits.device))
        out = torch.full((*logits.shape[:-1], n_out), float("-inf"), dtype=logits.dtype, device=logits.device)
        index = owner.to(logits.device).expand_as(picked)
        return out.scatter_reduce(-1, index, picked, reduce="amax", include_self=True)

    return project


def projection_for(spec: dict) -> Callable | None:
    """The torch projection of a registry entry (or an ``EvalSet.info``), from ``labelspace.projection_spec``."""
    try:
        proj = labelspace.projection_spec(spec)
    except ValueError as exc:
        raise DatasetError(str(exc)) from None
    if proj is None:
        return None
    if proj["type"] == "subset":
        return subset_projection(proj["indices"])
    return max_groups_projection(proj["groups"])


# ----------------------------------------------------------------------------------------- loaders
class _FileListDataset(Dataset):
    """(path, label) list read with PIL; optional border crop (ObjectNet's 1-px red frame)."""

    def __init__(self, samples: list[tuple[str, int]], transform=None, crop_border: int = 0):
        self.samples, self.transform, self.crop_border = samples, transform, crop_border

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        from PIL import Image

        path, label = self.samples[i]
        try:
            with Image.open(path) as img:
                img = img.convert("RGB")
        except (OSError, SyntaxError, ValueError) as exc:  # PIL: unidentified, truncated, bad headers
            detail = type(exc).__name__ + ("" if str(path) in str(exc) else f": {exc}")
            raise DatasetError(
                f"{path} cannot be decoded as an image ({detail}). Replace or remove the file, "
                "then re-run the same command: examples already evaluated are kept."
            ) from None
        if self.crop_border:
            w, h = img.size
            b = self.crop_border
            img = img.crop((b, b, w - b, h - b))
        return (self.transform(img) if self.transform else img), label


class ArrayDataset(Dataset):
    """Images held as a uint8 array (N, H, W, 3) with integer labels (demo world, CIFAR-10.1)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform=None):
        if len(images) != len(labels):
            raise DatasetError(f"{len(images)} images but {len(labels)} labels.")
        self.images, self.labels, self.transform = images, np.asarray(labels), transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        from PIL import Image

        img = Image.fromarray(self.images[i])
        return (self.transform(img) if self.transform else img), int(self.labels[i])


_IMG_EXT = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".JPEG", ".JPG", ".PNG")


def _list_images(folder: Path) -> list[str]:
    return sorted(str(p) for p in folder.iterdir() if p.suffix in _IMG_EXT)


def _require_dir(root: Path, name: str) -> Path:
    if not root.is_dir():
        raise DatasetError(
            f"Dataset {name}: folder {root} does not exist. Pass --data-root pointing at the folder that "
            f"contains it, or NAME=PATH for an explicit location."
        )
    return root


def _wnid_samples(root: Path, wnids: Sequence[str], name: str) -> list[tuple[str, int]]:
    """Samples from ``root/<wnid>/`` folders, labelled by position of the wnid in ``wnids``.

    Mapping wnids explicitly (not ImageFolder's enumerate) keeps labels right when some class folders
    are missing (ImageNet-Sketch releases with fewer than 1000 folders).
    """
    index = {w: i for i, w in enumerate(wnids)}
    samples = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        if sub.name not in index:
            raise DatasetError(f"Dataset {name}: unexpected class folder {sub} (not a known wnid).")
        samples += [(f, index[sub.name]) for f in _list_images(sub)]
    return samples


def _imagefolder_classes(root: Path) -> list[str]:
    folders = sorted(p.name for p in root.iterdir() if p.is_dir())
    names_file = root / "classnames.txt"
    if names_file.is_file():
        names = [line.strip() for line in names_file.read_text().splitlines() if line.strip()]
        if len(names) != len(folders):
            raise DatasetError(
                f"{names_file} lists {len(names)} names but {root} has {len(folders)} class folders; "
                "give one name per folder, in sorted folder order."
            )
        return names
    return [f.replace("_", " ") for f in folders]


def imagefolder_samples(root: Path) -> tuple[list[tuple[str, int]], list[str]]:
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    if not folders:
        raise DatasetError(f"{root} has no class sub-folders; an ImageFolder needs one folder per class.")
    samples = [(f, k) for k, sub in enumerate(folders) for f in _list_images(sub)]
    if not samples:
        raise DatasetError(f"{root} has class folders but no images ({', '.join(_IMG_EXT[:5])}).")
    return samples, _imagefolder_classes(root)


def resolve(
    name: str,
    root: str | Path | None = None,
    data_root: str | Path | None = None,
    transform=None,
    head_classnames: Sequence[str] | None = None,
    download: bool = False,
    max_examples: int | None = None,
    seed: int = 0,
) -> EvalSet:
    """Build an ``EvalSet`` for a registered dataset or any ImageFolder.

    Args:
        name: registry name (``imagenet-r``) or any name for a generic ImageFolder at ``root``.
        root: explicit folder; default ``data_root / registry root_subdir``.
        data_root: folder holding all datasets.
        transform: the model's eval transform.
        head_classnames: for generic ImageFolders, the classifier head's classes; the set's classes are
            matched to them by name (a shift may have a subset of the ID classes).
        download: let torchvision download CIFAR-10 / STL-10 (needs network).
        max_examples: keep a seeded random subset of this size (quick looks, demo stores).
    """
    reg = _registry()
    if name in reg:
        spec = reg[name]
        if root is None:
            if data_root is None:
                raise DatasetError(f"Dataset {name}: pass --data-root (holding {spec['root_subdir']}/) or {name}=PATH.")
            root = Path(data_root) / spec["root_subdir"]
        evalset = _build_registered(name, spec, Path(root), transform, download)
    else:
        if root is None:
            raise DatasetError(f"Dataset {name!r} is not registered; pass it as {name}=PATH to an ImageFolder.")
        evalset = _build_imagefolder(name, Path(root), transform, head_classnames)
    if max_examples is not None and len(evalset.dataset) > max_examples:
        keep = np.sort(np.random.default_rng(seed).choice(len(evalset.dataset), max_examples, replace=False))
        evalset.dataset = torch.utils.data.Subset(evalset.dataset, keep.tolist())
    return evalset


def _build_imagefolder(name: str, root: Path, transform, head_classnames) -> EvalSet:
    _require_dir(root, name)
    samples, classes = imagefolder_samples(root)
    projection, info = None, {"loader": "imagefolder", "root": str(root)}
    if head_classnames is not None and list(head_classnames) != classes:
        lookup = {c: i for i, c in enumerate(head_classnames)}
        missing = [c for c in classes if c not in lookup]
        if missing:
            raise DatasetError(
                f"Dataset {name}: classes {missing[:5]} are not among the ID classes; rename the folders "
                "(or classnames.txt) to match the ID dataset's class names."
            )
        indices = [lookup[c] for c in classes]
        projection = subset_projection(indices)
        info["projection"] = {"type": "by_name", "indices": indices}
    return EvalSet(name, _FileListDataset(samples, transform), classes, projection, info)


def _build_registered(name: str, spec: dict, root: Path, transform, download: bool) -> EvalSet:
    loader = _LOADERS.get(spec["loader"])
    if loader is None:
        raise DatasetError(f"Dataset {name}: unknown loader {spec['loader']!r} in the registry.")
    dataset = loader(name, spec, root, transform, download)
    expected = spec.get("size")
    if expected is not None and len(dataset) != expected:
        # Published numbers (the testbed line, the papers) are on the full set: say so, but evaluate what is there.
        warnings.warn(
            f"Dataset {name}: {len(dataset):,} images under {root}, the published set has {expected:,}; "
            "accuracies are not comparable with published numbers unless the folder holds the whole set.",
            stacklevel=3,
        )
    return EvalSet(name, dataset, classnames_for(spec["classes"]), projection_for(spec), dict(spec, root=str(root)))


# Each loader reads one registry entry's files: ``(name, spec, root, transform, download) -> Dataset``.
def _load_wnid_folder(name: str, spec: dict, root: Path, transform, download: bool) -> Dataset:
    _require_dir(root, name)
    wnids = imagenet_wnids() if spec["classes"] == "imagenet" else labelspace.subset_table(spec["projection"]["table"])[1]
    return _FileListDataset(_wnid_samples(root, wnids, name), transform)


def _load_int_folder(name: str, spec: dict, root: Path, transform, download: bool) -> Dataset:
    # ImageNetV2: folders are integer class indices; ImageFolder would sort them as strings.
    _require_dir(root, name)
    samples = []
    for sub in sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: int(p.name)):
        samples += [(f, int(sub.name)) for f in _list_images(sub)]
    return _FileListDataset(samples, transform)


def _load_objectnet(name: str, spec: dict, root: Path, transform, download: bool) -> Dataset:
    _require_dir(root, name)
    samples = []
    for cls in objectnet_classes():
        folder = root / cls["folder"]
        if folder.is_dir():
            samples += [(f, cls["objectnet_index"]) for f in _list_images(folder)]
    if not samples:
        raise DatasetError(f"ObjectNet: no images under {root}/<folder>/ for the 113 ImageNet classes.")
    return _FileListDataset(samples, transform, crop_border=spec.get("crop_border", 0))


def _load_cifar10(name: str, spec: dict, root: Path, transform, download: bool) -> Dataset:
    import torchvision

    try:
        return torchvision.datasets.CIFAR10(str(root), train=spec.get("split") == "train", transform=transform, download=download)
    except RuntimeError as exc:
        raise DatasetError(f"CIFAR-10 not found under {root} ({exc}); pass --download to fetch it.") from exc


def _load_stl10(name: str, spec: dict, root: Path, transform, download: bool) -> Dataset:
    import torchvision

    try:
        base = torchvision.datasets.STL10(str(root), split="test", transform=transform, download=download)
    except RuntimeError as exc:
        raise DatasetError(f"STL-10 not found under {root} ({exc}); pass --download to fetch it.") from exc
    remap = np.asarray(_cifar_meta()["stl10_to_cifar10"])
    keep = np.flatnonzero(remap[base.labels] >= 0)
    return _RemappedSubset(base, keep, remap)


def _load_cifar101(name: str, spec: dict, root: Path, transform, download: bool) -> Dataset:
    version = spec.get("version", "v6")
    data_file, label_file = root / f"cifar10.1_{version}_data.npy", root / f"cifar10.1_{version}_labels.npy"
    if not data_file.is_file() or not label_file.is_file():
        raise DatasetError(f"CIFAR-10.1: expected {data_file} and {label_file}.")
    return ArrayDataset(np.load(data_file), np.load(label_file).astype(np.int64), transform)


_LOADERS: dict[str, Callable[..., Dataset]] = {
    "wnid_folder": _load_wnid_folder,
    "int_folder": _load_int_folder,
    "objectnet": _load_objectnet,
    "torchvision_cifar10": _load_cifar10,
    "torchvision_stl10": _load_stl10,
    "cifar101_npy": _load_cifar101,
}


class _RemappedSubset(Dataset):
    def __init__(self, base, keep, remap):
        self.base, self.keep, self.remap = base, keep, remap

    def __len__(self):
        return len(self.keep)

    def __getitem__(self, i):
        image, label = self.base[int(self.keep[i])]
        return image, int(self.remap[label])


def templates_for(name: str) -> list[str]:
    """Prompt templates a registered dataset uses (``{c}`` placeholder); simple ones for others."""
    reg = _registry()
    key = reg[name]["templates"] if name in reg else "simple"
    return _templates.get_templates(key)


def head_classnames_for(name: str, root: str | Path | None = None) -> list[str]:
    """Classes of the classifier head when ``name`` is the ID dataset."""
    reg = _registry()
    if name in reg:
        return classnames_for(reg[name]["head"])
    if root is None:
        raise DatasetError(f"Dataset {name!r} is not registered; pass it as {name}=PATH.")
    return _imagefolder_classes(_require_dir(Path(root), name))


__all__ = [
    "ArrayDataset",
    "DatasetError",
    "EvalSet",
    "classnames_for",
    "get_spec",
    "head_classnames_for",
    "list_datasets",
    "max_groups_projection",
    "resolve",
    "subset_projection",
    "templates_for",
]
