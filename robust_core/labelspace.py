"""Label spaces as data: which classifier-head classes each evaluation set keeps, in numpy only.

A shift may score a subset of the head's classes (ImageNet-R/A: 200 of ImageNet's 1000 columns) or
groups of them (ObjectNet: 113 classes, each the max over one or more ImageNet columns, wise-ft's
protocol). The facts live in ``datasets/registry.json`` and ``datasets/metadata``; this module reads
them with numpy, json and csv only, so the dashboard can project stored logits without importing
torch. ``robust_core.datasets`` builds its torch projections from the same data.

    >>> from robust_core import labelspace
    >>> labelspace.project(logits_1000, "objectnet").shape   # (n, 113)
    >>> labelspace.head_to_subset("imagenet-r")               # (1000,) subset class of each head class, or -1
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from functools import cache
from pathlib import Path

import numpy as np

_DATASETS = Path(__file__).parent / "datasets"
META = _DATASETS / "metadata"
REGISTRY_FILE = _DATASETS / "registry.json"


@cache
def _registry_text() -> str:
    return REGISTRY_FILE.read_text()


def registry() -> dict[str, dict]:
    """Every entry of ``datasets/registry.json`` by name (a fresh copy: callers may change it)."""
    data = json.loads(_registry_text())
    data.pop("_doc", None)
    return data


@cache
def subset_table(table: str) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """ImageNet column indices and wnids of a class-subset table (``imagenet_r_classes.csv``), in its order."""
    with open(META / table) as fh:
        rows = list(csv.DictReader(fh))
    return tuple(int(r["imagenet_index"]) for r in rows), tuple(r["wnid"] for r in rows)


@cache
def objectnet_classes() -> tuple[dict, ...]:
    """ObjectNet's 113 ImageNet-overlapping classes: ``objectnet_index, folder, classname, imagenet_indices, ...``."""
    return tuple(json.loads((META / "objectnet_classes.json").read_text()))


def projection_spec(name_or_spec: str | Mapping) -> dict | None:
    """How head logits map to a set's label space, as plain data; ``None`` when the two are the same.

    Args:
        name_or_spec: a registered dataset name, its registry entry, or a projection dict as stored in an
            ``EvalSet.info`` (``{"type": "by_name", "indices": [...]}``).

    Returns:
        ``{"type": "subset", "indices": [...]}`` (take these head columns, in this order) or
        ``{"type": "max_groups", "groups": [[...], ...]}`` (per target class, the max over its group of
        head columns), or ``None``. ``by_name`` projections come back as ``subset``.
    """
    if isinstance(name_or_spec, str):
        entries = registry()
        if name_or_spec not in entries:
            raise KeyError(f"Unknown dataset {name_or_spec!r}; registered: {', '.join(sorted(entries))}.")
        name_or_spec = entries[name_or_spec]
    proj = name_or_spec if "type" in name_or_spec else name_or_spec.get("projection")
    if not proj:
        return None
    kind = proj["type"]
    if kind == "subset":
        return {"type": "subset", "indices": list(subset_table(proj["table"])[0])}
    if kind == "by_name":
        return {"type": "subset", "indices": [int(i) for i in proj["indices"]]}
    if kind == "max_groups":
        return {"type": "max_groups", "groups": [list(c["imagenet_indices"]) for c in objectnet_classes()]}
    raise ValueError(f"Unknown projection type {kind!r}.")


def head_to_subset(shift: str | Mapping, n_head: int = 1000) -> np.ndarray:
    """For each head class, its class in ``shift``'s label space, or -1 where the shift lacks it.

    ``(n_head,)`` int64. ObjectNet maps every ImageNet column of a group to that group's class; a set in
    the head's own label space maps each class to itself.
    """
    spec = projection_spec(shift)
    if spec is None:
        return np.arange(n_head, dtype=np.int64)
    mapper = np.full(n_head, -1, dtype=np.int64)
    groups = [[i] for i in spec["indices"]] if spec["type"] == "subset" else spec["groups"]
    for k, group in enumerate(groups):
        if (mapper[group] >= 0).any():
            raise ValueError(f"Head columns {group} belong to two classes of the shift's label space.")
        mapper[group] = k
    return mapper


def project(logits: np.ndarray, shift: str | Mapping) -> np.ndarray:
    """Head logits ``(..., n_head)`` to ``shift``'s label space ``(..., n_classes)``.

    ``subset`` takes the shift's columns in order; ``max_groups`` takes, per class, the max over its
    group of columns. Returns ``logits`` unchanged when the label spaces are the same.
    """
    spec = projection_spec(shift)
    logits = np.asarray(logits)
    if spec is None:
        return logits
    if spec["type"] == "subset":
        return np.take(logits, spec["indices"], axis=-1)
    # One gather of every group's columns, laid end to end, then a max over each group's run of them.
    groups = spec["groups"]
    starts = np.cumsum([0] + [len(g) for g in groups[:-1]])
    return np.maximum.reduceat(np.take(logits, np.concatenate(groups), axis=-1), starts, axis=-1)


def has_class_subset_axis(shift: str) -> bool:
    """Whether the imagenet-testbed plots ``shift`` against its head set's accuracy on the shift's classes.

    True for ImageNet-R, ImageNet-A and ObjectNet: their registry entries give a ``testbed_x`` column
    other than the head set's own ``testbed_column`` (ImageNet val).
    """
    entries = registry()
    entry = entries.get(shift)
    if not entry or not entry.get("testbed_x"):
        return False
    full = entries.get(entry["head"], {}).get("testbed_column")
    return entry["testbed_x"] != full


def class_subset_shifts() -> tuple[str, ...]:
    """Registered shifts with a class-subset testbed x axis (``has_class_subset_axis``), in registry order."""
    return tuple(name for name in registry() if has_class_subset_axis(name))


__all__ = [
    "class_subset_shifts",
    "has_class_subset_axis",
    "head_to_subset",
    "objectnet_classes",
    "project",
    "projection_spec",
    "registry",
    "subset_table",
]
