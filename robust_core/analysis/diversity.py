"""How differently zero-shot and fine-tuned err, and how confident they are (WiSE-FT section 5.1, App. E)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import evidence, metrics
from ._base import memoized


class DiversityViews:
    """Prediction diversity, margins, overrides at alpha, and their intervals."""

    def diversity(self, method: str) -> pd.DataFrame:
        """Zero-shot vs fine-tuned per dataset: PD, kappa complement, KL, CKA complement."""

        def build():
            stored = self._stored(method, "diversity")
            if stored is not None:
                return stored.set_index("dataset")
            rows = []
            for ds in self.store.datasets:
                labels = self.labels(ds)
                zs, ft = self.predictions(method, ds, 0), self.predictions(method, ds, -1)
                first, last = self.store.endpoint_logits(method, ds)
                row = {
                    "dataset": ds,
                    "prediction diversity": metrics.prediction_diversity(zs, ft, labels),
                    "1 - Cohen's κ": metrics.cohen_kappa_complement(zs, ft, len(self.store.classnames(ds))),
                    "KL(zero-shot ‖ fine-tuned)": metrics.mean_kl(first, last),
                    "1 - CKA": np.nan,
                }
                if self.store.has_features(method, ds):
                    feats, _ = self.store.features(method, ds)
                    row["1 - CKA"] = metrics.cka_complement(np.asarray(feats[0], np.float32), np.asarray(feats[1], np.float32))
                elif self.store.method(method).linear:
                    row["1 - CKA"] = 0.0  # frozen encoder: identical features
                rows.append(row)
            return pd.DataFrame(rows).set_index("dataset")

        return self._memo(("diversity", method), build)

    def diversity_evidence(self, method: str) -> pd.DataFrame:
        """Per shift: prediction diversity (zero-shot vs fine-tuned) minus its ID value, independent bootstrap (points)."""

        def build():
            def xor(ds):
                grid = self.correct(method, ds)
                return grid[0] ^ grid[-1]

            id_pd = xor(self.id)
            rows = []
            for shift in self.shifts:
                iv = evidence.mean_difference(xor(shift), id_pd, paired=False).scaled(100)
                rows.append(
                    {
                        "dataset": shift,
                        "PD (%)": 100 * xor(shift).mean(),
                        f"PD on {self.id} (%)": 100 * id_pd.mean(),
                        "Δ vs ID (points)": iv.estimate,
                        "low": iv.low,
                        "high": iv.high,
                        "n": iv.n,
                        "vs ID": evidence.verdict(iv, "higher", "lower"),
                        "sign": iv.sign,
                    }
                )
            return pd.DataFrame(rows).set_index("dataset") if rows else pd.DataFrame()

        return self._memo(("diversity_evidence", method), build)

    @memoized
    def narrate_diversity(self, method: str) -> str:
        """Is prediction diversity larger under shift than on ID? Counted over shifts, each with its interval."""
        table = self.diversity_evidence(method)
        if table.empty:
            return "This run has no shifts to compare prediction diversity with."
        higher = list(table.index[table.sign > 0])
        lower = list(table.index[table.sign < 0])
        flat = list(table.index[table.sign == 0])
        id_pd = table.iloc[0][f"PD on {self.id} (%)"]
        parts = []
        if higher:
            parts.append(f"higher than on ID on {len(higher)} ({', '.join(higher)})")
        if lower:
            parts.append(f"lower on {len(lower)} ({', '.join(lower)})")
        if flat:
            parts.append(f"not distinguishable from ID on {len(flat)} ({', '.join(flat)})")
        summary = "; ".join(parts)
        return (
            f"Prediction diversity between zero-shot and fine-tuned is {id_pd:.1f}% on ID ({self.id}). Of "
            f"{len(table)} shifts it is {summary} (95% intervals, n = {int(table.n.min()):,} per comparison at the least)."
        )

    def margins(self, method: str, dataset: str, i: int | None = None, max_rows: int | None = 20000) -> pd.DataFrame:
        """Top-1 minus top-2 output of zero-shot, fine-tuned (and theta(alpha)) with correctness.

        ``max_rows`` caps the examples per model with a seeded subsample (for plotting); pass ``None``
        for all of them (``margin_summary`` always uses all).
        """
        topv = self.store.topv(method, dataset)
        topk = self.topk(method, dataset)
        labels = self.labels(dataset)
        keep = np.arange(len(labels))
        if max_rows is not None and len(labels) > max_rows:
            keep = np.sort(np.random.default_rng(0).choice(len(labels), max_rows, replace=False))
        frames = []
        which = [(0, "zero-shot"), (len(self.alphas(method)) - 1, "fine-tuned")]
        if i is not None:
            a = self.alpha_at(method, i)
            which.append((i, f"WiSE-FT α={a:.2f}"))
        for j, name in which:
            margin = metrics.margins_from_top(np.asarray(topv[j][keep]))
            correct = topk[j, keep, 0] == labels[keep]
            frames.append(pd.DataFrame({"model": name, "margin": margin, "correct": np.where(correct, "correct", "incorrect")}))
        return pd.concat(frames, ignore_index=True)

    def margin_summary(self, method: str, dataset: str, i: int | None = None) -> pd.DataFrame:
        """Count, mean and median margin per model and correctness, over every example."""
        i = None if i is None else self.grid_index(method, i)

        def build():
            stored = self._stored(method, f"margins-{dataset}", i) if i is not None else None
            if stored is not None:
                return stored.set_index(["model", "correct"])
            frame = self.margins(method, dataset, i, max_rows=None)
            return frame.groupby(["model", "correct"], sort=False).margin.agg(["count", "mean", "median"])

        return self._memo(("margin_summary", method, dataset, i), build)

    def confidence_evidence(self, method: str, dataset: str) -> dict:
        """Fine-tuned minus zero-shot mean margin, among each model's correct and among its incorrect predictions.

        Examples resampled jointly (the two models are scored on the same images). ``n`` is the set size.
        Returns {"correct": Interval | None, "incorrect": Interval | None} in margin units.
        """

        def build():
            stored = self._stored(method, f"confidence-{dataset}")
            if stored is not None:  # kept with the store (robust_core.summaries): a bootstrap over every example
                rows = {r.name: r for r in stored.itertuples()}
                return {
                    name: None
                    if name not in rows or rows[name].n == 0
                    else evidence.Interval(rows[name].estimate, rows[name].low, rows[name].high, rows[name].level, int(rows[name].n))
                    for name in ("correct", "incorrect")
                }
            topv = self.store.topv(method, dataset)
            grid = self.correct(method, dataset)
            m_zs = metrics.margins_from_top(np.asarray(topv[0])).astype(np.float64)
            m_ft = metrics.margins_from_top(np.asarray(topv[-1])).astype(np.float64)
            out = {}
            for name, c_zs, c_ft in (("correct", grid[0], grid[-1]), ("incorrect", ~grid[0], ~grid[-1])):
                if not c_zs.any() or not c_ft.any():
                    out[name] = None
                    continue
                cols = np.stack([m_ft * c_ft, c_ft, m_zs * c_zs, c_zs], axis=1)
                out[name] = evidence.paired_statistic(cols, lambda t: t[..., 0] / t[..., 1] - t[..., 2] / t[..., 3])
            return out

        return self._memo(("confidence_evidence", method, dataset), build)

    @memoized
    def narrate_confidence(self, method: str, dataset: str) -> str:
        """Is the fine-tuned model more confident than zero-shot on ``dataset``, right and wrong? In words."""
        ev = self.confidence_evidence(method, dataset)
        parts = []
        for name in ("correct", "incorrect"):
            iv = ev[name]
            if iv is None:
                parts.append(f"on {name} predictions one of the two models has none")
                continue
            ci = f"95% CI {iv.low:+.3f} to {iv.high:+.3f}"
            if iv.sign > 0:
                parts.append(f"on its {name} predictions the fine-tuned model's mean margin is larger by {iv.estimate:.3f} ({ci})")
            elif iv.sign < 0:
                parts.append(f"on its {name} predictions the fine-tuned model's mean margin is smaller by {-iv.estimate:.3f} ({ci})")
            else:
                parts.append(
                    f"on {name} predictions the two mean margins are not distinguishable at n = {iv.n:,} "
                    f"(difference {iv.estimate:+.3f}, {ci})"
                )
        return f"On {dataset}, " + "; ".join(parts) + "."

    def overrides(self, method: str, i: int) -> pd.DataFrame:
        """Per dataset: where zero-shot and fine-tuned disagree, whom theta(alpha_i) sides with."""
        i = self.grid_index(method, i)
        stored = self._stored(method, "overrides", i)
        if stored is not None:
            return stored.set_index("dataset")
        rows = []
        for ds in self.store.datasets:
            zs, ft, mid = (self.predictions(method, ds, j) for j in (0, -1, i))
            rates = metrics.override_rates(zs, ft, mid)
            labels = self.labels(ds)
            dis = zs != ft
            rows.append(
                {
                    "dataset": ds,
                    "disagreement": rates["disagree"],
                    "zero-shot overrides": rates["zeroshot_overrides"],
                    "is overridden (sides with fine-tuned)": rates["is_overridden"],
                    "neither": rates["neither"],
                    "zero-shot right when overriding": float(np.mean((mid == labels)[dis & (mid == zs)]))
                    if np.any(dis & (mid == zs))
                    else np.nan,
                    "fine-tuned right when it wins": float(np.mean((mid == labels)[dis & (mid == ft)]))
                    if np.any(dis & (mid == ft))
                    else np.nan,
                }
            )
        return pd.DataFrame(rows).set_index("dataset")
