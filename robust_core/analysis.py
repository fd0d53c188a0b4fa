"""Tables and figure data the dashboard shows, computed from a store (no streamlit, no torch).

``RunView(store)`` is built once per store and process. Everything that depends only on the store is
computed on first use and cached on the view; everything that depends on alpha is a lookup into
precomputed per-alpha arrays (``topk``), so a slider move costs milliseconds even for ImageNet-sized
stores.
"""

from __future__ import annotations

import threading
from functools import cached_property

import numpy as np
import pandas as pd

from . import evidence, metrics
from .store import Store

OOD_AVG = "OOD avg"
REFERENCES = {"zero-shot": 0, "fine-tuned": -1}  # endpoint models a theta(alpha) is compared with, by grid index


def _verdict(row, higher: str, lower: str) -> str:
    """Words for a paired_grid row: the direction only when the interval excludes 0."""
    interval = evidence.Interval(row.estimate, row.low, row.high, evidence.LEVEL, int(row.n))
    return evidence.verdict(interval, higher, lower, row.mcnemar_p)


def _line_verdict(examples: evidence.Interval, fit: evidence.Interval, n_models: int) -> str:
    """Above / below the baseline line only when both of rho's intervals exclude 0 on the same side."""
    if examples.sign == fit.sign == 1:
        return "above the line"
    if examples.sign == fit.sign == -1:
        return "below the line"
    return f"not distinguishable from the line at n = {examples.n:,} ({n_models} models in the fit)"


class RunView:
    """Read-only analysis of one store."""

    def __init__(self, store: Store):
        self.store = store
        self._cache: dict = {}
        self._lock = threading.Lock()

    # ----------------------------------------------------------------------------- basics
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
        info = self.store.manifest["methods"][method]
        if info.get("role", "wise") == "wise":
            return "fine-tuned"
        return {"soup": "soup", "soup-ingredient": "soup ingredient"}.get(info.get("kind", ""), "single model")

    def single_models(self, method: str, alpha: float) -> pd.DataFrame:
        """The single models stored beside the curves (soups, their ingredients, random-head FT) against
        theta(alpha) of ``method``: ID, ID val and OOD avg with paired differences (points) and verdicts."""
        i, a = self.snap(method, alpha)
        points = self.store.point_methods
        if not points:
            return pd.DataFrame()

        def build():
            theta = {ds: self.correct(method, ds)[i] for ds in self.store.datasets}
            rows = []
            for m in points:
                mine = {ds: self.correct(m, ds)[-1] for ds in self.store.datasets}
                row = {"model": self.method_label(m), "group": self.point_group(m)}
                for ds, name in ((self.id, "ID"), (self.store.id_val, "ID val")):
                    if ds:
                        row[name] = 100 * float(mine[ds].mean())
                if self.shifts:
                    row["OOD avg"] = 100 * float(np.mean([mine[s].mean() for s in self.shifts]))
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

    def method_label(self, method: str) -> str:
        return self.store.manifest["methods"][method].get("label", method.upper())

    def _memo(self, key, fn):
        with self._lock:
            if key in self._cache:
                return self._cache[key]
        value = fn()
        with self._lock:
            self._cache[key] = value
        return value

    def labels(self, dataset: str) -> np.ndarray:
        return self._memo(("labels", dataset), lambda: np.asarray(self.store.labels(dataset)))

    def topk(self, method: str, dataset: str) -> np.ndarray:
        return self._memo(("topk", method, dataset), lambda: np.asarray(self.store.topk(method, dataset)))

    def predictions(self, method: str, dataset: str, alpha_index: int) -> np.ndarray:
        return self.topk(method, dataset)[alpha_index, :, 0]

    def alphas(self, method: str) -> np.ndarray:
        return self.store.alphas(method)

    def snap(self, method: str, alpha: float) -> tuple[int, float]:
        i = self.store.alpha_index(method, alpha)
        return i, float(self.alphas(method)[i])

    # --------------------------------------------------------------------------- accuracy
    def curves(self, method: str, kind: str = "wise") -> pd.DataFrame:
        """Accuracy (fraction) per alpha (rows) and dataset (columns), plus ``OOD avg``."""

        def build():
            rows = self.summary[(self.summary.method == method) & (self.summary.kind == kind)]
            table = rows.pivot(index="alpha", columns="dataset", values="accuracy")
            table = table[[d for d in self.store.datasets if d in table]]
            table[OOD_AVG] = table[self.shifts].mean(axis=1) if self.shifts else np.nan
            return table

        return self._memo(("curves", method, kind), build)

    def counts(self, method: str, kind: str = "wise") -> pd.DataFrame:
        rows = self.summary[(self.summary.method == method) & (self.summary.kind == kind)]
        return rows.pivot(index="alpha", columns="dataset", values="correct")

    def baseline_table(self) -> pd.DataFrame:
        """The run's standard models: accuracy per dataset and OOD avg (rows = models)."""

        def build():
            rows = self.summary[self.summary.kind == "baseline"]
            if rows.empty:
                return pd.DataFrame(columns=[*self.store.datasets, OOD_AVG])
            table = rows.pivot(index="method", columns="dataset", values="accuracy")
            table[OOD_AVG] = table[self.shifts].mean(axis=1)
            return table

        return self._memo(("baselines",), build)

    def point_table(self, method: str, alpha: float) -> pd.DataFrame:
        """Per dataset at ``alpha``: zero-shot, fine-tuned, WiSE-FT theta(alpha), output-space ensemble, deltas."""
        i, a = self.snap(method, alpha)
        wise, ens = self.curves(method, "wise"), self.curves(method, "ensemble")
        cols = [*self.store.datasets, OOD_AVG]
        table = pd.DataFrame(
            {
                "zero-shot": wise.iloc[0][cols],
                "fine-tuned": wise.iloc[-1][cols],
                f"WiSE-FT α={a:.2f}": wise.iloc[i][cols],
                f"output-space ensemble α={a:.2f}": ens.iloc[i][cols],
            }
        )
        table["Δ vs zero-shot"] = table[f"WiSE-FT α={a:.2f}"] - table["zero-shot"]
        table["Δ vs fine-tuned"] = table[f"WiSE-FT α={a:.2f}"] - table["fine-tuned"]
        table.index.name = "dataset"
        return table

    def cards(self, method: str, alpha: float) -> dict:
        i, a = self.snap(method, alpha)
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
                iv = self.interval(method, a, col, name)
                out[f"{key}_vs_{ref}_ci"] = iv
                if iv is not None and iv.estimate == iv.estimate:
                    out[f"{key}_vs_{ref}"] = iv.estimate / 100
        return out

    # ------------------------------------------------------------------------ paired evidence
    def correct(self, method: str, dataset: str) -> np.ndarray:
        """(n_alphas, n) bool: whether theta(alpha) is right on each example of ``dataset``."""
        return self._memo(("correct", method, dataset), lambda: self.topk(method, dataset)[..., 0] == self.labels(dataset)[None])

    def paired_grid(self, method: str, reference: str = "zero-shot") -> pd.DataFrame:
        """theta(alpha) minus an endpoint (``zero-shot`` or ``fine-tuned``) at every grid alpha, per set and OOD avg.

        Paired percentile bootstrap over examples (OOD avg: within each shift, then averaged), in accuracy
        points, with McNemar's exact p beside it for single sets. Rows are (alpha, dataset); columns
        ``estimate, low, high, n, mcnemar_p, sign`` (sign: +1 / -1 when the 95% interval excludes 0 and,
        for single sets, McNemar's p < 0.05; else 0).
        """

        def build():
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

    def paired(self, method: str, alpha: float, reference: str = "zero-shot", dataset: str | None = None):
        """The ``paired_grid`` rows at the grid alpha nearest ``alpha`` (one row if ``dataset`` is given)."""
        _, a = self.snap(method, alpha)
        table = self.paired_grid(method, reference).xs(a, level="alpha")
        return table if dataset is None else table.loc[dataset]

    def interval(self, method: str, alpha: float, dataset: str, reference: str = "zero-shot") -> evidence.Interval:
        """theta(alpha) - reference on ``dataset`` (or ``OOD avg``) as an ``Interval`` in accuracy points."""
        row = self.paired(method, alpha, reference, dataset)
        return evidence.Interval(float(row.estimate), float(row.low), float(row.high), evidence.LEVEL, int(row.n))

    def evidence_table(self, method: str, alpha: float) -> pd.DataFrame:
        """Per set at ``alpha``: theta(alpha)'s accuracy and its paired differences from both endpoints (points)."""
        i, a = self.snap(method, alpha)
        wise = self.curves(method)
        out = pd.DataFrame({"θ(α) (%)": 100 * wise.iloc[i][[*self.store.datasets, *([OOD_AVG] if self.shifts else [])]]})
        for reference, short in (("zero-shot", "zero-shot"), ("fine-tuned", "fine-tuned")):
            table = self.paired(method, a, reference)
            out[f"Δ vs {short}"] = table.estimate
            out[f"Δ vs {short} low"] = table.low
            out[f"Δ vs {short} high"] = table.high
            out[f"McNemar p vs {short}"] = table.mcnemar_p
            out[f"vs {short}"] = [_verdict(r, "higher", "lower") for r in table.itertuples()]
        out["n"] = self.paired(method, a).n
        out.index.name = "dataset"
        return out

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

    # ---------------------------------------------------------------------- alpha selection
    def label_free(self, method: str, estimator: str = "aline-d") -> pd.DataFrame:
        """Label-free OOD estimates along the alpha grid (agreement-on-the-line) beside the truth."""

        def build():
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

    def picks(self, method: str) -> pd.DataFrame:
        """Alphas a user might pick, side by side, with ID and OOD-avg accuracy at each."""
        wise = self.curves(method)
        alphas = wise.index.to_numpy()
        rows = []
        id_val = self.store.id_val
        if id_val:
            rows.append(("best on ID held-out validation", metrics.select_alpha(alphas, wise[id_val]), "ID validation labels"))
        rows.append(("fixed 0.5 (WiSE-FT default)", float(alphas[np.abs(alphas - 0.5).argmin()]), "none"))
        rows.append(
            ("OOD oracle (uses OOD labels)", metrics.select_alpha(alphas, wise[OOD_AVG]), "OOD test labels: not available in practice")
        )
        lf = self.label_free(method)
        if lf["estimated OOD avg"].notna().any():
            rows.append(
                ("label-free estimate (ALine-D)", metrics.select_alpha(alphas, lf["estimated OOD avg"].fillna(-1)), "unlabelled OOD images")
            )
        table = pd.DataFrame(rows, columns=["rule", "alpha", "needs"])
        table["ID"] = [float(wise.loc[a, self.id]) for a in table.alpha]
        table["OOD avg"] = [float(wise.loc[a, OOD_AVG]) for a in table.alpha]
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

    # ------------------------------------------------------------------ effective robustness
    def _baseline_pred(self, name: str, dataset: str) -> np.ndarray:
        def build():
            return self.store.baseline_predictions(name, dataset)

        return self._memo(("bpred", name, dataset), build)

    def _subset_correct(self, method: str, shift: str, kind: str = "wise") -> np.ndarray | None:
        """ImageNet stores: per alpha, is the model right on ImageNet val restricted to ``shift``'s classes.

        (n_alphas, n_subset) bool, or None when ``shift`` has no class-subset x axis. ``kind="ensemble"``
        scores the output-space ensemble of the endpoints instead of theta(alpha).
        """
        if not self.is_imagenet or shift not in ("imagenet-r", "imagenet-a", "objectnet"):
            return None
        if not self.store.has_full_logits(method):
            return None  # --store-logits topk: the class-subset x axis needs every alpha's full ImageNet logits
        from .datasets import get_spec, projection_for

        project = projection_for(get_spec(shift))

        def build():
            import torch  # only ImageNet stores get here; the projections are torch functions

            # Projecting the identity gives, per subset class, a 1 at each of its ImageNet columns
            # (one for R/A, a group for ObjectNet): map every ImageNet label to its subset class or -1.
            columns = project(torch.eye(1000)).numpy()
            mapper = np.full(1000, -1)
            for k in range(columns.shape[1]):
                mapper[columns[:, k] > 0] = k
            labels = self.labels(self.id)
            keep = mapper[labels] >= 0
            logits = self.store.logits(method, self.id)
            first, last = (np.asarray(logits[j][keep], np.float32) for j in (0, -1))
            rows_out = []
            for j, alpha in enumerate(self.alphas(method)):
                rows = (1 - alpha) * first + alpha * last if kind == "ensemble" else np.asarray(logits[j][keep], np.float32)
                sub = project(torch.from_numpy(rows)).numpy()
                rows_out.append(sub.argmax(1) == mapper[labels[keep]])
            return np.stack(rows_out)

        return self._memo(("subset_correct", method, shift, kind), build)

    def _subset_x(self, method: str, shift: str, kind: str = "wise") -> np.ndarray | None:
        """ImageNet stores: accuracy on ImageNet val restricted to ``shift``'s classes, per alpha."""
        correct = self._subset_correct(method, shift, kind)
        return None if correct is None else correct.mean(axis=1)

    def er_data(self, method: str, target: str, transform: str = "logit") -> dict:
        """Everything the effective-robustness scatter needs for ``target`` (a shift or ``OOD avg``).

        Returns a dict with ``baseline`` (slope, intercept, source, points), ``curve`` (alpha, x, y, CI),
        ``endpoints`` (every method's zero-shot and fine-tuned points) and ``table`` (rho per model, points).
        """
        key = ("er", method, target, transform)
        return self._memo(key, lambda: self._er_build(method, target, transform))

    def _xy(self, method, target, kind="wise"):
        wise = self.curves(method, kind)
        counts = self.counts(method, kind)
        x = wise[self.id].to_numpy()
        x_k = counts[self.id].to_numpy()
        x_n = np.full_like(x_k, self.store.manifest["datasets"][self.id]["n"])
        if target == OOD_AVG:
            y = wise[OOD_AVG].to_numpy()
            y_k = counts[self.shifts].sum(axis=1).to_numpy()
            y_n = np.full_like(y_k, sum(self.store.manifest["datasets"][s]["n"] for s in self.shifts))
        else:
            y = wise[target].to_numpy()
            y_k = counts[target].to_numpy()
            y_n = np.full_like(y_k, self.store.manifest["datasets"][target]["n"])
        sub = self._subset_correct(method, target, kind) if target != OOD_AVG else None
        if sub is not None:  # class-subset x: its accuracy, and its own k and n for the error bars
            x = sub.mean(axis=1)
            x_k = sub.sum(axis=1)
            x_n = np.full_like(x_k, sub.shape[1])
        return x, y, (x_k, x_n), (y_k, y_n)

    def _er_build(self, method, target, transform):
        baseline: dict = {"source": None}
        if self.is_imagenet:
            from . import reference

            ref_key = "ood-avg" if target == OOD_AVG else target
            try:
                fit = reference.imagenet_baseline(ref_key, transform)
                baseline = {"source": "imagenet-testbed standard models", **fit}
            except KeyError:
                pass
        if baseline["source"] is None:
            table = self.baseline_table()
            if len(table) >= 2:
                bx = table[self.id].to_numpy()
                by = table[target].to_numpy()
                try:
                    slope, intercept = metrics.fit_baseline(bx, by, transform)
                except ValueError as exc:
                    baseline["reason"] = str(exc)
                else:
                    points = pd.DataFrame({"model": table.index, "x": bx, "y": by, "fit": True, "in_plot": True})
                    baseline = {
                        "source": "this run's standard models (trained on ID data only)",
                        "slope": slope,
                        "intercept": intercept,
                        "n_models": len(table),
                        "points": points,
                        "note": "",
                    }
            else:
                baseline["reason"] = "This store has fewer than two standard models (baselines)."
        if baseline["source"] is not None:
            pts = baseline["points"]
            fit_pts = pts[pts.fit]
            lo = max(0.005, float(min(fit_pts.x.min(), np.nanmin(self.curves(method)[self.id])) - 0.05))
            hi = min(0.995, float(max(fit_pts.x.max(), np.nanmax(self.curves(method)[self.id])) + 0.05))
            grid = np.linspace(lo, hi, 60)
            band = metrics.bootstrap_fit_band(fit_pts.x.to_numpy(), fit_pts.y.to_numpy(), grid, transform, n_boot=300)
            baseline.update(
                grid=grid, line=metrics.baseline_prediction(grid, baseline["slope"], baseline["intercept"], transform), band=band
            )

        x, y, (xk, xn), (yk, yn) = self._xy(method, target)
        xlo, xhi = metrics.clopper_pearson(np.minimum(xk, xn), xn)
        ylo, yhi = metrics.clopper_pearson(np.minimum(yk, yn), yn)
        curve = pd.DataFrame({"alpha": self.alphas(method), "x": x, "y": y, "x_lo": xlo, "x_hi": xhi, "y_lo": ylo, "y_hi": yhi})
        ens_x, ens_y, _, _ = self._xy(method, target, "ensemble")
        ensemble = pd.DataFrame({"alpha": self.alphas(method), "x": ens_x, "y": ens_y})
        rows = []
        for m in self.store.methods:
            mx, my, _, _ = self._xy(m, target)
            rows.append({"model": "zero-shot", "method": m, "index": 0, "x": mx[0], "y": my[0], "group": "zero-shot"})
            group = self.point_group(m)
            name = f"fine-tuned ({self.method_label(m)})" if group == "fine-tuned" else self.method_label(m)
            rows.append({"model": name, "method": m, "index": -1, "x": mx[-1], "y": my[-1], "group": group})
        endpoints = pd.DataFrame(rows).drop_duplicates(subset=["model", "x", "y"]).reset_index(drop=True)
        rho_cols: list[str] = []
        if baseline["source"] is not None:
            slope, intercept = baseline["slope"], baseline["intercept"]
            rho = lambda xs, ys: 100 * metrics.effective_robustness(xs, ys, slope, intercept, transform)  # noqa: E731
            curve["rho"] = rho(curve.x, curve.y)
            endpoints["rho"] = rho(endpoints.x, endpoints.y)
            baseline["points"]["rho"] = rho(baseline["points"].x, baseline["points"].y)
            # rho's two intervals (points): examples resampled with the line fixed, and the standard models
            # resampled (line refitted) with the accuracies fixed. A direction needs both to exclude 0.
            fit_pts = baseline["points"][baseline["points"].fit]
            for frame, get in (
                (curve, lambda: self._rho_correct(method, target)),
                (endpoints, lambda: self._rho_correct_endpoints(endpoints, target)),
            ):
                cx, cy = get()
                iv = evidence.effective_robustness_interval(cx, cy, slope, intercept, transform).scaled(100)
                band = evidence.effective_robustness_fit_band(
                    frame.x.to_numpy(), frame.y.to_numpy(), fit_pts.x.to_numpy(), fit_pts.y.to_numpy(), transform
                ).scaled(100)
                frame["rho low"], frame["rho high"] = iv.low, iv.high
                frame["rho fit low"], frame["rho fit high"] = band.low, band.high
                frame["n"] = iv.n
                frame["vs line"] = [_line_verdict(e, b, len(fit_pts)) for e, b in zip(iv, band)]
            rho_cols = ["rho", "rho low", "rho high", "rho fit low", "rho fit high", "vs line"]
        table = pd.concat(
            [
                endpoints.assign(kind="endpoint")[["model", "x", "y", *rho_cols]],
                curve.assign(model=[f"WiSE-FT {self.method_label(method)} α={a:.2f}" for a in curve.alpha])[["model", "x", "y", *rho_cols]],
            ],
            ignore_index=True,
        )
        return {"baseline": baseline, "curve": curve, "ensemble": ensemble, "endpoints": endpoints, "table": table}

    def _rho_x_correct(self, method: str, target: str) -> np.ndarray:
        sub = self._subset_correct(method, target) if target != OOD_AVG else None
        return sub if sub is not None else self.correct(method, self.id)

    def _rho_y_correct(self, method: str, target: str):
        return {s: self.correct(method, s) for s in self.shifts} if target == OOD_AVG else self.correct(method, target)

    def _rho_correct(self, method: str, target: str):
        """(x, y) correctness stacks along the alpha grid for rho's example-resampled interval."""
        return self._rho_x_correct(method, target), self._rho_y_correct(method, target)

    def _rho_correct_endpoints(self, endpoints: pd.DataFrame, target: str):
        x = np.stack([self._rho_x_correct(m, target)[j] for m, j in zip(endpoints.method, endpoints["index"])])
        ys = [self._rho_y_correct(m, target) for m in endpoints.method]
        if target == OOD_AVG:
            y = {s: np.stack([yy[s][j] for yy, j in zip(ys, endpoints["index"])]) for s in self.shifts}
        else:
            y = np.stack([yy[j] for yy, j in zip(ys, endpoints["index"])])
        return x, y

    def rho_difference(self, method: str, target: str, transform: str = "logit") -> evidence.Interval | None:
        """rho(fine-tuned) - rho(zero-shot) for ``method``, paired over examples (line fixed), in points."""
        base = self.er_data(method, target, transform)["baseline"]
        if base.get("source") is None:
            return None
        x, y = self._rho_correct(method, target)
        y0 = {s: v[0] for s, v in y.items()} if isinstance(y, dict) else y[0]
        y1 = {s: v[-1] for s, v in y.items()} if isinstance(y, dict) else y[-1]
        iv = evidence.effective_robustness_difference(x[-1], x[0], y1, y0, base["slope"], base["intercept"], transform)
        return iv.scaled(100)

    # ---------------------------------------------------------------- diversity & confidence
    def diversity(self, method: str) -> pd.DataFrame:
        """Zero-shot vs fine-tuned per dataset: PD, kappa complement, KL, CKA complement."""

        def build():
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
                elif self.store.manifest["methods"][method].get("linear"):
                    row["1 - CKA"] = 0.0  # frozen encoder: identical features
                rows.append(row)
            return pd.DataFrame(rows).set_index("dataset")

        return self._memo(("diversity", method), build)

    def margins(self, method: str, dataset: str, alpha: float | None = None, max_rows: int | None = 20000) -> pd.DataFrame:
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
        if alpha is not None:
            i, a = self.snap(method, alpha)
            which.append((i, f"WiSE-FT α={a:.2f}"))
        for j, name in which:
            margin = metrics.margins_from_top(np.asarray(topv[j][keep]))
            correct = topk[j, keep, 0] == labels[keep]
            frames.append(pd.DataFrame({"model": name, "margin": margin, "correct": np.where(correct, "correct", "incorrect")}))
        return pd.concat(frames, ignore_index=True)

    def margin_summary(self, method: str, dataset: str, alpha: float | None = None) -> pd.DataFrame:
        """Count, mean and median margin per model and correctness, over every example."""
        i = None if alpha is None else self.snap(method, alpha)[0]

        def build():
            frame = self.margins(method, dataset, alpha, max_rows=None)
            return frame.groupby(["model", "correct"], sort=False).margin.agg(["count", "mean", "median"])

        return self._memo(("margin_summary", method, dataset, i), build)

    def overrides(self, method: str, alpha: float) -> pd.DataFrame:
        """Per dataset: where zero-shot and fine-tuned disagree, whom theta(alpha) sides with."""
        i, a = self.snap(method, alpha)
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

    # --------------------------------------------------------------------- examples & classes
    def per_class(self, method: str, dataset: str, alpha: float) -> pd.DataFrame:
        """Per class: accuracy of zero-shot, fine-tuned and theta(alpha), and the two changes vs zero-shot.

        Each change has a paired 95% interval resampled within the class (``... low`` / ``... high``,
        fractions) and a verdict; with a few dozen images per class most are not distinguishable.
        """
        i, a = self.snap(method, alpha)

        def build():
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

    def disagreements(
        self, method: str, dataset: str, alpha: float, who: str = "any", class_name: str | None = None, limit: int = 48
    ) -> pd.DataFrame:
        """Examples where zero-shot and fine-tuned disagree, with each model's top-3 predictions.

        ``who``: ``any``, ``zero-shot right``, ``fine-tuned right``, ``both wrong``.
        """
        i, a = self.snap(method, alpha)
        topk = self.topk(method, dataset)
        labels = self.labels(dataset)
        names = self.store.classnames(dataset)
        zs, ft, mid = topk[0], topk[-1], topk[i]
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

        def top3(rows):
            return [", ".join(names[c] for c in row) for row in rows]

        return pd.DataFrame(
            {
                "index": idx,
                "label": [names[labels[k]] for k in idx],
                "zero-shot top-3": top3(zs[idx]),
                "fine-tuned top-3": top3(ft[idx]),
                f"θ({a:.2f}) top-3": top3(mid[idx]),
                "zero-shot right": zs[idx, 0] == labels[idx],
                "fine-tuned right": ft[idx, 0] == labels[idx],
                "θ(α) right": mid[idx, 0] == labels[idx],
            }
        )

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

    # ------------------------------------------------------------------- narration from data
    # Every sentence a page shows that states a direction comes from here: the numbers are the store's and
    # the 95% interval (plus McNemar for single sets) decides between a direction and "not distinguishable".
    def narrate_tradeoff(self, method: str, alpha: float) -> list[str]:
        """theta(alpha) against both endpoints on ID and OOD avg, in words decided by the paired intervals."""
        _, a = self.snap(method, alpha)
        out = []
        for col, name in ((self.id, f"ID ({self.id})"), *([(OOD_AVG, "OOD avg")] if self.shifts else [])):
            for reference in REFERENCES:
                row = self.paired(method, a, reference, col)
                iv = evidence.Interval(row.estimate / 100, row.low / 100, row.high / 100, evidence.LEVEL, int(row.n))
                p = None if col == OOD_AVG else row.mcnemar_p
                out.append(evidence.compare(iv, f"{name} at α = {a:.2f}", f"the {reference} model", p_value=p) + ".")
        return out

    def narrate_path(self, method: str) -> list[str]:
        """What the alpha grid does: fine-tuned vs zero-shot on ID, and where OOD avg peaks against both endpoints."""
        alphas = self.alphas(method)
        out = []
        row = self.paired(method, alphas[-1], "zero-shot", self.id)
        iv = evidence.Interval(row.estimate / 100, row.low / 100, row.high / 100, evidence.LEVEL, int(row.n))
        out.append(evidence.compare(iv, f"On ID ({self.id}) the fine-tuned model", "the zero-shot model", p_value=row.mcnemar_p) + ".")
        if self.shifts:
            wise = self.curves(method)
            best = float(metrics.select_alpha(alphas, wise[OOD_AVG]))
            parts = []
            for reference in REFERENCES:
                row = self.paired(method, best, reference, OOD_AVG)
                iv = evidence.Interval(row.estimate / 100, row.low / 100, row.high / 100, evidence.LEVEL, int(row.n))
                parts.append(evidence.compare(iv, "it", f"the {reference} model"))
            out.append(
                f"OOD avg is highest at α = {best:.2f} on this grid; there {parts[0]}, and {parts[1]} (the peak is "
                "picked on these same test sets, so these two differences lean optimistic)."
            )
        return out

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

    def confidence_evidence(self, method: str, dataset: str) -> dict:
        """Fine-tuned minus zero-shot mean margin, among each model's correct and among its incorrect predictions.

        Examples resampled jointly (the two models are scored on the same images). ``n`` is the set size.
        Returns {"correct": Interval | None, "incorrect": Interval | None} in margin units.
        """

        def build():
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

    def narrate_er(self, method: str, target: str, transform: str = "logit") -> list[str]:
        """Where zero-shot and fine-tuned sit against the baseline line, and the change in rho, in words."""
        er = self.er_data(method, target, transform)
        if er["baseline"].get("source") is None:
            return []
        ends = er["endpoints"]
        ends = ends[ends.method == method]
        out = []
        for _, row in ends.iterrows():
            name = "The zero-shot model" if row["index"] == 0 else f"The fine-tuned model ({self.method_label(method)})"
            verdict = row["vs line"]
            where = "is " + verdict if not verdict.startswith("not") else "is " + verdict
            out.append(
                f"{name} {where}: ρ = {row.rho:+.1f} points (examples resampled: {row['rho low']:+.1f} to {row['rho high']:+.1f}; "
                f"standard models resampled: {row['rho fit low']:+.1f} to {row['rho fit high']:+.1f})."
            )
        diff = self.rho_difference(method, target, transform)
        if diff is not None:
            iv = evidence.Interval(diff.estimate / 100, diff.low / 100, diff.high / 100, diff.level, diff.n)
            out.append(evidence.compare(iv, "Fine-tuning's ρ", "zero-shot's") + ", paired over the same examples with the line fixed.")
        return out

    def narrate_per_class(self, method: str, dataset: str, alpha: float, column: str = "θ(α) − zero-shot") -> str:
        """How many classes change distinguishably (per-class paired interval and McNemar), in words."""
        table = self.per_class(method, dataset, alpha)
        verdicts = table[f"{column} verdict"]
        up, down = int((verdicts == "higher").sum()), int((verdicts == "lower").sum())
        who = "θ(α)" if column.startswith("θ") else "the fine-tuned model"
        flat = len(table) - up - down
        return (
            f"On {dataset}, {who} is distinguishably better than zero-shot on {up} of {len(table)} classes and worse on "
            f"{down}; {flat} are not distinguishable at their n (median {int(table.n.median())} images per class; "
            "95% paired interval within the class and McNemar's exact test must agree)."
        )
