"""What every view of a run shares: the store, a thread-safe memo, labels, top-k, correctness, accuracy curves.

The alpha grid is addressed by index everywhere below the sidebar: ``AlphaPoint(index, value)`` is resolved
once (``RunView.alpha_point``) and every per-alpha method takes the index ``i`` (``-1`` = fine-tuned).
"""

from __future__ import annotations

import functools
import threading
from functools import cached_property
from typing import NamedTuple

import numpy as np
import pandas as pd

from ..store import Store

OOD_AVG = "OOD avg"
REFERENCES = {"zero-shot": 0, "fine-tuned": -1}  # endpoint models a theta(alpha) is compared with, by grid index


def memoized(fn):
    """Cache a RunView method's result per call arguments on the view (one slider move's tables are computed once per
    alpha, then looked up). The result is shared: callers must copy before changing it."""

    @functools.wraps(fn)
    def wrapper(self, *args, **kwargs):
        key = (fn.__name__, args, tuple(sorted(kwargs.items())))
        return self._memo(key, lambda: fn(self, *args, **kwargs))

    return wrapper


class AlphaPoint(NamedTuple):
    """A point of a method's alpha grid: its index (what every analysis method takes) and its value."""

    index: int
    value: float


def ood_avg(table: pd.DataFrame, shifts: list[str]) -> pd.Series:
    """The mean over ``shifts`` of each row (accuracy per set in columns): the one OOD-avg definition."""
    return table[shifts].mean(axis=1) if shifts else pd.Series(np.nan, index=table.index)


class RunViewBase:
    """Read-only access to one store, with results cached on the view."""

    def __init__(self, store: Store):
        self.store = store
        self._cache: dict = {}
        self._lock = threading.Lock()

    @cached_property
    def summary(self) -> pd.DataFrame:
        return self.store.summary()

    @property
    def id(self) -> str:
        return self.store.id

    @property
    def shifts(self) -> list[str]:
        return self.store.shifts

    @property
    def is_imagenet(self) -> bool:
        return self.store.id == "imagenet"

    def point_group(self, method: str) -> str:
        """How a method's alpha-1 model is shown: ``fine-tuned`` (a WiSE-FT endpoint), ``soup``,
        ``soup ingredient`` or ``single model`` (e.g. FT from a random head)."""
        return self.store.method(method).group

    def method_label(self, method: str) -> str:
        return self.store.method(method).label

    def dataset_size(self, dataset: str) -> int:
        return self.store.dataset(dataset).n

    def _memo(self, key, fn):
        with self._lock:
            if key in self._cache:
                return self._cache[key]
        value = fn()
        with self._lock:
            self._cache[key] = value
        return value

    def _stored(self, method: str, name: str, i: int | None = None) -> pd.DataFrame | None:
        """Summary table ``name`` of ``method`` kept with the store (``robust_core.summaries``), restricted to grid
        point ``i``; None when the store has none, and the caller computes it."""
        from ..summaries import read_summary, table_path

        rel = table_path(method, name)
        table = self._memo(("stored", rel), lambda: read_summary(self.store, rel))
        if table is None or i is None:
            return table

        def split():  # every grid point's rows at once (one pass), so each alpha's first visit is a lookup
            return {int(k): rows.drop(columns="alpha_index").reset_index(drop=True) for k, rows in table.groupby("alpha_index", sort=False)}

        rows = self._memo(("stored-by-alpha", rel), split).get(i)
        return table.iloc[:0].drop(columns="alpha_index") if rows is None else rows

    def labels(self, dataset: str) -> np.ndarray:
        return self._memo(("labels", dataset), lambda: np.asarray(self.store.labels(dataset)))

    def topk(self, method: str, dataset: str) -> np.ndarray:
        return self._memo(("topk", method, dataset), lambda: np.asarray(self.store.topk(method, dataset)))

    def predictions(self, method: str, dataset: str, alpha_index: int) -> np.ndarray:
        return self.topk(method, dataset)[alpha_index, :, 0]

    def alphas(self, method: str) -> np.ndarray:
        return self.store.alphas(method)

    def alpha_point(self, method: str, alpha: float) -> AlphaPoint:
        """The grid point nearest ``alpha``: the one place a free-form alpha (URL, CLI) meets the grid."""
        i = self.store.alpha_index(method, alpha)
        return AlphaPoint(i, float(self.alphas(method)[i]))

    def grid_index(self, method: str, i: int) -> int:
        """``i`` as a non-negative grid index (``-1`` -> the last), for cache keys; IndexError off the grid."""
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"alpha index must be an int, got {i!r}: resolve an alpha value once with RunView.alpha_point.")
        n = len(self.alphas(method))
        if not -n <= int(i) < n:
            raise IndexError(f"alpha index {i} is off {method}'s grid of {n} alphas.")
        return int(i) % n

    def alpha_at(self, method: str, i: int) -> float:
        """The grid value at index ``i`` (``-1`` = fine-tuned)."""
        return float(self.alphas(method)[self.grid_index(method, i)])

    def correct(self, method: str, dataset: str) -> np.ndarray:
        """(n_alphas, n) bool: whether theta(alpha) is right on each example of ``dataset``."""
        return self._memo(("correct", method, dataset), lambda: self.topk(method, dataset)[..., 0] == self.labels(dataset)[None])

    def curves(self, method: str, kind: str = "wise") -> pd.DataFrame:
        """Accuracy (fraction) per alpha (rows) and dataset (columns), plus ``OOD avg``."""

        def build():
            rows = self.summary[(self.summary.method == method) & (self.summary.kind == kind)]
            table = rows.pivot(index="alpha", columns="dataset", values="accuracy")
            table = table[[d for d in self.store.datasets if d in table]]
            table[OOD_AVG] = ood_avg(table, self.shifts)
            return table

        return self._memo(("curves", method, kind), build)

    def counts(self, method: str, kind: str = "wise") -> pd.DataFrame:
        rows = self.summary[(self.summary.method == method) & (self.summary.kind == kind)]
        return rows.pivot(index="alpha", columns="dataset", values="correct")

    @cached_property
    def _thumbs(self):
        frame = self.store.examples()
        if frame is None or "png" not in frame:
            return {}
        return {(d, int(i)): p for d, i, p in zip(frame.dataset, frame["index"], frame.png)}

    def thumbnail(self, dataset: str, index: int) -> bytes | None:
        return self._thumbs.get((dataset, int(index)))

    def results_table(self) -> pd.DataFrame:
        """Long table of every (method, kind, alpha, dataset) accuracy with counts (for CSV export)."""
        return self.summary.copy()
