"""Accuracy along alpha and how to choose alpha: curves, paired differences with both endpoints, picks."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import evidence, metrics
from ._base import OOD_AVG, REFERENCES, memoized, ood_avg


def _verdict(row, higher: str, lower: str) -> str:
    """Words for a paired_grid row: the direction only when the interval excludes 0."""
    interval = evidence.Interval(row.estimate, row.low, row.high, evidence.LEVEL, int(row.n))
    return evidence.verdict(interval, higher, lower, row.mcnemar_p)


def best_index(alphas, scores) -> int:
    """Grid index of the alpha with the highest score (``metrics.select_alpha``: ties go to the smallest alpha)."""
    alphas = np.asarray(alphas, np.float64)
    return int(np.flatnonzero(alphas == metrics.select_alpha(alphas, scores))[0])


class AccuracyViews:
    """Accuracy of theta(alpha) per set, paired intervals against the endpoints, and alpha-selection rules."""

    def baseline_table(self) -> pd.DataFrame:
        """The run's standard models: accuracy per dataset and OOD avg (rows = models)."""

        def build():
            rows = self.summary[self.summary.kind == "baseline"]
            if rows.empty:
                return pd.DataFrame(columns=[*self.store.datasets, OOD_AVG])
            table = rows.pivot(index="method", columns="dataset", values="accuracy")
            table[OOD_AVG] = ood_avg(table, self.shifts)
            return table

        return self._memo(("baselines",), build)

    @memoized
    def point_table(self, method: str, i: int) -> pd.DataFrame:
        """Per dataset at grid alpha ``i``: zero-shot, fine-tuned, WiSE-FT theta(alpha), output-space ensemble, deltas."""
        a = self.alpha_at(method, i)
        cols = [*self.store.datasets, OOD_AVG]
        wise, ens = self.curves(method, "wise")[cols].to_numpy(float), self.curves(method, "ensemble")[cols].to_numpy(float)
        zero, fine, theta = wise[0], wise[-1], wise[i]
        return pd.DataFrame(
            {
                "zero-shot": zero,
                "fine-tuned": fine,
                f"WiSE-FT α={a:.2f}": theta,
                f"output-space ensemble α={a:.2f}": ens[i],
                "Δ vs zero-shot": theta - zero,
                "Δ vs fine-tuned": theta - fine,
            },
            index=pd.Index(cols, name="dataset"),
        )

    @memoized
    def cards(self, method: str, i: int) -> dict:
        """The Tradeoff page's four cards at grid alpha ``i``: ID and OOD avg, each against both endpoints."""
        a = self.alpha_at(method, i)
        wise = self.curves(method)
        out = {"alpha": a}
        for key, col in (("id", self.id), ("ood", OOD_AVG)):
            out[key] = float(wise.iloc[i][col])
            out[f"{key}_vs_zeroshot"] = out[key] - float(wise.iloc[0][col])
            out[f"{key}_vs_finetuned"] = out[key] - float(wise.iloc[-1][col])
            if col == OOD_AVG and not self.shifts:
                continue
            # paired 95% intervals (accuracy points) of the two differences; the card shows the interval's own
            # estimate, so a card and the sentence beside it never round one difference two ways (-2.05 pts)
            for ref, name in (("zeroshot", "zero-shot"), ("finetuned", "fine-tuned")):
                iv = self.interval(method, i, col, name)
                out[f"{key}_vs_{ref}_ci"] = iv
                if iv is not None and iv.estimate == iv.estimate:
                    out[f"{key}_vs_{ref}"] = iv.estimate / 100
        return out

    def paired_grid(self, method: str, reference: str = "zero-shot") -> pd.DataFrame:
        """theta(alpha) minus an endpoint (``zero-shot`` or ``fine-tuned``) at every grid alpha, per set and OOD avg.

        Paired percentile bootstrap over examples (OOD avg: within each shift, then averaged), in accuracy
        points, with McNemar's exact p beside it for single sets. Rows are (alpha, dataset); columns
        ``estimate, low, high, n, mcnemar_p, sign`` (sign: +1 / -1 when the 95% interval excludes 0 and,
        for single sets, McNemar's p < 0.05; else 0).
        """

        def build():
            stored = self._stored(method, f"paired-{reference}")
            if stored is not None:
                return stored.set_index(["alpha", "dataset"])
            ref = REFERENCES[reference]
            rows = []
            alphas = self.alphas(method)

            def add(dataset, intervals, p_values):
                for j, alpha in enumerate(alphas):
                    iv = intervals[j].scaled(100)
                    p = float(p_values[j])
                    rows.append((float(alpha), dataset, iv.estimate, iv.low, iv.high, iv.n, p, evidence.direction(iv, p)))

            for ds in self.store.datasets:
                grid = self.correct(method, ds)
                add(ds, evidence.paired_difference(grid, grid[ref]), evidence.mcnemar_exact(grid, grid[ref]))
            if self.shifts:
                grids = {s: self.correct(method, s) for s in self.shifts}
                add(OOD_AVG, evidence.paired_difference_ood(grids, {s: g[ref] for s, g in grids.items()}), [np.nan] * len(alphas))
            columns = ["alpha", "dataset", "estimate", "low", "high", "n", "mcnemar_p", "sign"]
            return pd.DataFrame(rows, columns=columns).set_index(["alpha", "dataset"])

        return self._memo(("paired_grid", method, reference), build)

    @staticmethod
    def _by_alpha(grid: pd.DataFrame) -> dict:
        """A (alpha, dataset)-indexed grid split into one dataset-indexed frame per alpha, in one pass."""
        return {alpha: rows.droplevel("alpha") for alpha, rows in grid.groupby(level="alpha", sort=False)}

    @memoized
    def paired(self, method: str, i: int, reference: str = "zero-shot", dataset: str | None = None):
        """The ``paired_grid`` rows at grid alpha ``i`` (one row if ``dataset`` is given)."""
        by_alpha = self._memo(("paired_by_alpha", method, reference), lambda: self._by_alpha(self.paired_grid(method, reference)))
        table = by_alpha[self.alpha_at(method, i)]
        return table if dataset is None else table.loc[dataset]

    @memoized
    def interval(self, method: str, i: int, dataset: str, reference: str = "zero-shot") -> evidence.Interval:
        """theta(alpha_i) - reference on ``dataset`` (or ``OOD avg``) as an ``Interval`` in accuracy points."""
        row = self.paired(method, i, reference, dataset)
        return evidence.Interval(float(row.estimate), float(row.low), float(row.high), evidence.LEVEL, int(row.n))

    def evidence_table(self, method: str, i: int) -> pd.DataFrame:
        """Per set at grid alpha ``i``: theta(alpha)'s accuracy and its paired differences from both endpoints (points).

        Built for every grid alpha at once, on first use (a slider move is then a lookup)."""
        return self._memo(("evidence_tables", method), lambda: self._evidence_tables(method))[self.grid_index(method, i)]

    def _evidence_tables(self, method: str) -> list[pd.DataFrame]:
        sets = [*self.store.datasets, *([OOD_AVG] if self.shifts else [])]
        alphas = [float(a) for a in self.alphas(method)]
        rows = pd.MultiIndex.from_product([alphas, sets], names=["alpha", "dataset"])
        theta = 100 * self.curves(method)[sets].to_numpy(float)  # (alphas, sets)
        columns = {"θ(α) (%)": theta.reshape(-1)}
        for reference in REFERENCES:
            grid = self.paired_grid(method, reference).reindex(rows)
            columns[f"Δ vs {reference}"] = grid.estimate.to_numpy()
            columns[f"Δ vs {reference} low"] = grid.low.to_numpy()
            columns[f"Δ vs {reference} high"] = grid.high.to_numpy()
            columns[f"McNemar p vs {reference}"] = grid.mcnemar_p.to_numpy()
            columns[f"vs {reference}"] = [_verdict(r, "higher", "lower") for r in grid.itertuples()]
        columns["n"] = self.paired_grid(method).reindex(rows).n.to_numpy()
        index = pd.Index(sets, name="dataset")
        k = len(sets)
        return [pd.DataFrame({c: v[j * k : (j + 1) * k] for c, v in columns.items()}, index=index) for j in range(len(alphas))]

    def method_vs_method(self, method: str) -> pd.DataFrame:
        """Fine-tuned endpoint of ``method`` minus each other method's fine-tuned endpoint, per set and OOD avg (points)."""

        def build():
            rows = []
            for other in self.store.methods:
                if other == method or self.point_group(other) == "soup ingredient":
                    continue
                mine = {ds: self.correct(method, ds)[-1] for ds in self.store.datasets}
                theirs = {ds: self.correct(other, ds)[-1] for ds in self.store.datasets}
                for ds in self.store.datasets:
                    iv = evidence.paired_difference(mine[ds], theirs[ds]).scaled(100)
                    rows.append((self.method_label(other), ds, iv, evidence.mcnemar_exact(mine[ds], theirs[ds])))
                if self.shifts:
                    iv = evidence.paired_difference_ood({s: mine[s] for s in self.shifts}, {s: theirs[s] for s in self.shifts})
                    rows.append((self.method_label(other), OOD_AVG, iv.scaled(100), np.nan))
            return pd.DataFrame(
                [
                    {
                        "other method": name,
                        "dataset": ds,
                        "Δ (points)": iv.estimate,
                        "low": iv.low,
                        "high": iv.high,
                        "n": iv.n,
                        "McNemar p": p,
                        "verdict": evidence.verdict(iv, "higher", "lower", p),
                    }
                    for name, ds, iv, p in rows
                ]
            )

        return self._memo(("method_vs_method", method), build)

    def single_models(self, method: str, i: int) -> pd.DataFrame:
        """The single models stored beside the curves (soups, their ingredients, random-head FT) against
        theta(alpha_i) of ``method``: ID, ID val and OOD avg with paired differences (points) and verdicts."""
        i = self.grid_index(method, i)
        points = self.store.point_methods
        if not points:
            return pd.DataFrame()

        def build():
            stored = self._stored(method, "single_models", i)
            if stored is not None:
                return stored
            theta = {ds: self.correct(method, ds)[i] for ds in self.store.datasets}
            rows = []
            for m in points:
                mine = {ds: self.correct(m, ds)[-1] for ds in self.store.datasets}
                row = {"model": self.method_label(m), "group": self.point_group(m)}
                for ds, name in ((self.id, "ID"), (self.store.id_val, "ID val")):
                    if ds:
                        row[name] = 100 * float(mine[ds].mean())
                if self.shifts:
                    row["OOD avg"] = 100 * float(ood_avg(pd.DataFrame([{s: mine[s].mean() for s in self.shifts}]), self.shifts).iloc[0])
                    iv = evidence.paired_difference_ood({s: mine[s] for s in self.shifts}, {s: theta[s] for s in self.shifts}).scaled(100)
                    row.update({"Δ OOD avg vs θ(α)": iv.estimate, "OOD low": iv.low, "OOD high": iv.high})
                    row["OOD verdict"] = evidence.verdict(iv, "higher", "lower")
                iv = evidence.paired_difference(mine[self.id], theta[self.id]).scaled(100)
                p = evidence.mcnemar_exact(mine[self.id], theta[self.id])
                row.update(
                    {
                        "Δ ID vs θ(α)": iv.estimate,
                        "ID low": iv.low,
                        "ID high": iv.high,
                        "ID verdict": evidence.verdict(iv, "higher", "lower", p),
                    }
                )
                rows.append(row)
            return pd.DataFrame(rows)

        return self._memo(("single_models", method, i), build)

    def label_free(self, method: str, estimator: str = "aline-d") -> pd.DataFrame:
        """Label-free OOD estimates along the alpha grid (agreement-on-the-line) beside the truth."""

        def build():
            stored = self._stored(method, f"label_free-{estimator}")
            if stored is not None:
                return stored.set_index("alpha")
            models = [(m, j) for m in self.store.methods for j in range(len(self.alphas(m)))]
            id_labels = self.labels(self.id)
            id_preds = np.stack([self.predictions(m, self.id, j) for m, j in models])
            base_names = self.store.baselines
            if base_names:
                id_preds = np.concatenate([id_preds, np.stack([self._baseline_pred(b, self.id) for b in base_names])])
            est = {}
            for shift in self.shifts:
                ood_preds = np.stack([self.predictions(m, shift, j) for m, j in models])
                if base_names:
                    ood_preds = np.concatenate([ood_preds, np.stack([self._baseline_pred(b, shift) for b in base_names])])
                try:
                    values = metrics.aline_estimate(id_preds, ood_preds, id_labels, estimator)
                except ValueError:
                    values = np.full(len(id_preds), np.nan)
                est[shift] = values[[k for k, (m, _) in enumerate(models) if m == method]]
            frame = pd.DataFrame(est, index=pd.Index(self.alphas(method), name="alpha"))
            truth = self.curves(method)
            out = pd.DataFrame({"estimated OOD avg": frame.mean(axis=1), "true OOD avg": truth[OOD_AVG].to_numpy()}, index=frame.index)
            out["error"] = out["estimated OOD avg"] - out["true OOD avg"]
            for shift in self.shifts:
                out[f"est {shift}"] = frame[shift]
            return out

        return self._memo(("label_free", method, estimator), build)

    @memoized
    def picks(self, method: str) -> pd.DataFrame:
        """Alphas a user might pick, side by side, with ID and OOD-avg accuracy at each.

        Columns: ``rule``, ``index`` (grid index), ``alpha``, ``needs``, ``ID``, ``OOD avg`` (fractions), and per
        endpoint the paired difference at the chosen alpha (points) with its interval and verdict.
        """
        wise = self.curves(method)
        alphas = wise.index.to_numpy()

        rows = []
        id_val = self.store.id_val
        if id_val:
            rows.append(("best on ID held-out validation", best_index(alphas, wise[id_val]), "ID validation labels"))
        rows.append(("fixed 0.5 (WiSE-FT default)", self.alpha_point(method, 0.5).index, "none"))
        rows.append(("OOD oracle (uses OOD labels)", best_index(alphas, wise[OOD_AVG]), "OOD test labels: not available in practice"))
        lf = self.label_free(method)
        if lf["estimated OOD avg"].notna().any():
            rows.append(("label-free estimate (ALine-D)", best_index(alphas, lf["estimated OOD avg"].fillna(-1)), "unlabelled OOD images"))
        table = pd.DataFrame(rows, columns=["rule", "index", "needs"])
        table.insert(2, "alpha", alphas[table["index"]])
        table["ID"] = wise[self.id].to_numpy()[table["index"]]
        table["OOD avg"] = wise[OOD_AVG].to_numpy()[table["index"]]
        # Each rule's outcome against both endpoints: paired intervals at the chosen alpha (points). The
        # choice itself is taken as given (its own sampling noise is not in these intervals).
        for col in (self.id, *([OOD_AVG] if self.shifts else [])):
            name = "ID" if col == self.id else "OOD avg"
            for reference in REFERENCES:
                grid = self.paired_grid(method, reference)
                rows = [grid.loc[(a, col)] for a in table.alpha]
                table[f"{name} − {reference}"] = [r.estimate for r in rows]
                table[f"{name} − {reference} low"] = [r.low for r in rows]
                table[f"{name} − {reference} high"] = [r.high for r in rows]
                table[f"{name} vs {reference}"] = [_verdict(r, "higher", "lower") for r in rows]
        return table

    @memoized
    def narrate_tradeoff(self, method: str, i: int) -> list[str]:
        """theta(alpha_i) against both endpoints on ID and OOD avg, in words decided by the paired intervals."""
        a = self.alpha_at(method, i)
        out = []
        for col, name in ((self.id, f"ID ({self.id})"), *([(OOD_AVG, "OOD avg")] if self.shifts else [])):
            for reference in REFERENCES:
                row = self.paired(method, i, reference, col)
                iv = evidence.Interval(row.estimate / 100, row.low / 100, row.high / 100, evidence.LEVEL, int(row.n))
                p = None if col == OOD_AVG else row.mcnemar_p
                out.append(evidence.compare(iv, f"{name} at α = {a:.2f}", f"the {reference} model", p_value=p) + ".")
        return out

    @memoized
    def narrate_path(self, method: str) -> list[str]:
        """What the alpha grid does: fine-tuned vs zero-shot on ID, and where OOD avg peaks against both endpoints."""
        alphas = self.alphas(method)
        out = []
        row = self.paired(method, -1, "zero-shot", self.id)
        iv = evidence.Interval(row.estimate / 100, row.low / 100, row.high / 100, evidence.LEVEL, int(row.n))
        out.append(evidence.compare(iv, f"On ID ({self.id}) the fine-tuned model", "the zero-shot model", p_value=row.mcnemar_p) + ".")
        if self.shifts:
            wise = self.curves(method)
            best = best_index(alphas, wise[OOD_AVG])
            parts = []
            for reference in REFERENCES:
                row = self.paired(method, best, reference, OOD_AVG)
                iv = evidence.Interval(row.estimate / 100, row.low / 100, row.high / 100, evidence.LEVEL, int(row.n))
                parts.append(evidence.compare(iv, "it", f"the {reference} model"))
            out.append(
                f"OOD avg is highest at α = {alphas[best]:.2f} on this grid; there {parts[0]}, and {parts[1]} (the peak is "
                "picked on these same test sets, so these two differences lean optimistic)."
            )
        return out
