"""Examples and classes: which images and which classes flip between zero-shot, fine-tuned and theta(alpha)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import evidence, metrics
from ._base import memoized


def _top3_texts(names: list[str], rows: np.ndarray, probs: np.ndarray | None) -> list[str]:
    """``cat 71%, dog 12%, fox 5%`` per example (class names only where the store keeps no logits there)."""
    if probs is None:
        return [", ".join(names[c] for c in row) for row in rows]
    return [", ".join(f"{names[c]} {100 * q:.0f}%" for c, q in zip(row, qs)) for row, qs in zip(rows, probs)]


class ExampleViews:
    """Per-class accuracy changes with per-class intervals, and the disagreeing examples."""

    def per_class(self, method: str, dataset: str, i: int) -> pd.DataFrame:
        """Per class: accuracy of zero-shot, fine-tuned and theta(alpha), and the two changes vs zero-shot.

        Each change has a paired 95% interval resampled within the class (``... low`` / ``... high``,
        fractions) and a verdict; with a few dozen images per class most are not distinguishable.
        """
        i = self.grid_index(method, i)

        def build():
            stored = self._stored(method, f"per_class-{dataset}", i)
            if stored is not None:
                return stored
            labels = self.labels(dataset)
            names = self.store.classnames(dataset)
            n = len(names)
            acc = {
                name: metrics.per_class_accuracy(self.predictions(method, dataset, j), labels, n)
                for name, j in (("zero-shot", 0), ("fine-tuned", -1), ("theta(alpha)", i))
            }
            table = pd.DataFrame({"class": names, "n": np.bincount(labels, minlength=n), **acc})
            for col, j in (("fine-tuned − zero-shot", -1), ("θ(α) − zero-shot", i)):
                iv, p = self._per_class_vs_zeroshot(method, dataset, j)
                table[col] = table["fine-tuned" if j == -1 else "theta(alpha)"] - table["zero-shot"]
                table[f"{col} low"], table[f"{col} high"] = iv.low, iv.high
                table[f"{col} McNemar p"] = p
                table[f"{col} verdict"] = [evidence.verdict(v, "higher", "lower", pv) if v.n else "" for v, pv in zip(iv, p)]
            return table[table.n > 0].reset_index(drop=True)

        return self._memo(("per_class", method, dataset, i), build)

    def _per_class_vs_zeroshot(self, method: str, dataset: str, j: int):
        """Per-class paired intervals and McNemar p of grid model ``j`` minus zero-shot (cached per j)."""
        j = j % len(self.alphas(method))

        def build():
            labels = self.labels(dataset)
            n = len(self.store.classnames(dataset))
            grid = self.correct(method, dataset)
            iv = evidence.per_class_difference(grid[j], grid[0], labels, n)
            p = evidence.mcnemar_from_counts(
                np.bincount(labels[grid[j] & ~grid[0]], minlength=n), np.bincount(labels[~grid[j] & grid[0]], minlength=n)
            )
            return iv, p

        return self._memo(("per_class_vs_zeroshot", method, dataset, j), build)

    @memoized
    @memoized
    def narrate_per_class(self, method: str, dataset: str, i: int, column: str = "θ(α) − zero-shot") -> str:
        """How many classes change distinguishably (per-class paired interval and McNemar), in words."""
        table = self.per_class(method, dataset, i)
        verdicts = table[f"{column} verdict"]
        up, down = int((verdicts == "higher").sum()), int((verdicts == "lower").sum())
        who = "θ(α)" if column.startswith("θ") else "the fine-tuned model"
        flat = len(table) - up - down
        return (
            f"On {dataset}, {who} is distinguishably better than zero-shot on {up} of {len(table)} classes and worse on "
            f"{down}; {flat} are not distinguishable at their n (median {int(table.n.median())} images per class; "
            "95% paired interval within the class and McNemar's exact test must agree)."
        )

    def _top_probabilities(self, method: str, dataset: str, j: int, idx: np.ndarray, classes: np.ndarray) -> np.ndarray | None:
        """Softmax probabilities of ``classes`` (rows of top-k class indices) for examples ``idx`` at grid point ``j``.

        Needs that alpha's full logits: every alpha in a full store, the two endpoints in a top-k-only store
        (``None`` elsewhere, and the page shows class names only).
        """
        logits = self.store.logits_at(method, dataset, self.grid_index(method, j))
        if logits is None:
            return None
        return np.take_along_axis(metrics.softmax(logits[idx]), np.asarray(classes, np.int64), axis=1)

    def disagreements(
        self, method: str, dataset: str, i: int, who: str = "any", class_name: str | None = None, limit: int = 48
    ) -> pd.DataFrame:
        """Examples where zero-shot and fine-tuned disagree, with each model's top-3 predictions and their
        softmax probabilities (where the store keeps that alpha's logits).

        ``who``: ``any``, ``zero-shot right``, ``fine-tuned right``, ``both wrong``.
        """
        a = self.alpha_at(method, i)
        names = self.store.classnames(dataset)
        idx, endpoints = self._disagreeing(method, dataset, who, class_name, limit)
        labels = self.labels(dataset)[idx]
        mid = self.topk(method, dataset)[i][idx]
        probs = self._top_probabilities(method, dataset, i, idx, mid)
        out = endpoints.copy()  # the memoized endpoints frame is shared
        out.insert(4, f"θ({a:.2f}) top-3", _top3_texts(names, mid, probs))
        out["θ(α) right"] = mid[:, 0] == labels
        return out

    def _disagreeing(self, method: str, dataset: str, who: str, class_name: str | None, limit: int):
        """The alpha-independent part of ``disagreements`` (which examples, and both endpoints' top-3), once per
        filter: the example indices and a frame of their label and endpoint columns."""

        def build():
            topk = self.topk(method, dataset)
            labels = self.labels(dataset)
            names = self.store.classnames(dataset)
            zs, ft = topk[0], topk[-1]
            mask = zs[:, 0] != ft[:, 0]
            if who == "zero-shot right":
                mask &= zs[:, 0] == labels
            elif who == "fine-tuned right":
                mask &= ft[:, 0] == labels
            elif who == "both wrong":
                mask &= (zs[:, 0] != labels) & (ft[:, 0] != labels)
            if class_name:
                mask &= labels == names.index(class_name)
            idx = np.flatnonzero(mask)[:limit]
            frame = pd.DataFrame(
                {
                    "index": idx,
                    "label": [names[labels[k]] for k in idx],
                    "zero-shot top-3": _top3_texts(names, zs[idx], self._top_probabilities(method, dataset, 0, idx, zs[idx])),
                    "fine-tuned top-3": _top3_texts(names, ft[idx], self._top_probabilities(method, dataset, -1, idx, ft[idx])),
                    "zero-shot right": zs[idx, 0] == labels[idx],
                    "fine-tuned right": ft[idx, 0] == labels[idx],
                }
            )
            return idx, frame

        return self._memo(("disagreeing", method, dataset, who, class_name, limit), build)
