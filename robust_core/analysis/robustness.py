"""Effective robustness: the baseline line of standard models, rho along the alpha grid, and its intervals."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import evidence, labelspace, metrics
from ..mixing import mix
from ._base import OOD_AVG, memoized


def _line_verdict(examples: evidence.Interval, fit: evidence.Interval, n_models: int) -> str:
    """Above / below the baseline line only when both of rho's intervals exclude 0 on the same side."""
    if examples.sign == fit.sign == 1:
        return "above the line"
    if examples.sign == fit.sign == -1:
        return "below the line"
    return f"not distinguishable from the line at n = {examples.n:,} ({n_models} models in the fit)"


class RobustnessViews:
    """Where models sit against 'accuracy on the line' (Taori et al. 2020; Miller et al. 2021)."""

    def _baseline_pred(self, name: str, dataset: str) -> np.ndarray:
        def build():
            return self.store.baseline_predictions(name, dataset)

        return self._memo(("bpred", name, dataset), build)

    def _subset_correct(self, method: str, shift: str, kind: str = "wise") -> np.ndarray | None:
        """ImageNet stores: per alpha, is the model right on ImageNet val restricted to ``shift``'s classes.

        (n_alphas, n_subset) bool, or None when ``shift`` has no class-subset x axis. ``kind="ensemble"``
        scores the output-space ensemble of the endpoints instead of theta(alpha).
        """
        if not self.is_imagenet or not labelspace.has_class_subset_axis(shift):
            return None
        if not self.store.has_full_logits(method):
            return None  # --store-logits topk: the class-subset x axis needs every alpha's full ImageNet logits

        def build():
            # every ImageNet label -> its class in the shift's label space (R/A: one column; ObjectNet: a group) or -1
            mapper = labelspace.head_to_subset(shift, n_head=1000)
            labels = self.labels(self.id)
            keep = mapper[labels] >= 0
            logits = self.store.logits(method, self.id)
            first, last = (np.asarray(logits[j][keep], np.float32) for j in (0, -1))
            rows_out = []
            for j, alpha in enumerate(self.alphas(method)):
                rows = mix(first, last, alpha) if kind == "ensemble" else np.asarray(logits[j][keep], np.float32)
                rows_out.append(labelspace.project(rows, shift).argmax(1) == mapper[labels[keep]])
            return np.stack(rows_out)

        return self._memo(("subset_correct", method, shift, kind), build)

    def _subset_x(self, method: str, shift: str, kind: str = "wise") -> np.ndarray | None:
        """ImageNet stores: accuracy on ImageNet val restricted to ``shift``'s classes, per alpha."""
        correct = self._subset_correct(method, shift, kind)
        return None if correct is None else correct.mean(axis=1)

    def er_data(self, method: str, target: str, transform: str = "logit", intervals: bool = True) -> dict:
        """Everything the effective-robustness scatter needs for ``target`` (a shift or ``OOD avg``).

        Returns a dict with ``baseline`` (slope, intercept, source, points), ``curve`` (alpha, x, y, CI),
        ``endpoints`` (every method's zero-shot and fine-tuned points) and ``table`` (rho per model, points).
        ``intervals=False`` skips rho's bootstrap intervals (the per-shift small multiples need only the points).
        """
        key = ("er", method, target, transform, intervals)
        return self._memo(key, lambda: self._er_build(method, target, transform, intervals))

    def er_curves(self, target: str, axis_of: str | None = None) -> dict[str, pd.DataFrame]:
        """Every WiSE-FT method's curve for ``target``: {method: DataFrame(alpha, x, y)} (x = ID, or class-subset x).

        ``axis_of``: keep only the methods whose x axis is that method's (on ImageNet-R/A/ObjectNet a
        ``--store-logits topk`` method has full-ImageNet x, the others class-subset x: never on one chart).
        """

        def build():
            out = {}
            for m in self.store.wise_methods:
                if axis_of is not None and self.x_axis(m, target) != self.x_axis(axis_of, target):
                    continue
                x, y, _, _ = self._xy(m, target)
                out[m] = pd.DataFrame({"alpha": self.alphas(m), "x": x, "y": y})
            return out

        return self._memo(("er_curves", target, axis_of), build)

    def x_axis(self, method: str, target: str) -> str:
        """``class-subset`` when ``method``'s x for ``target`` is ImageNet on the shift's classes, else ``full``."""
        subset = self.is_imagenet and target != OOD_AVG and labelspace.has_class_subset_axis(target)
        return "class-subset" if subset and self.store.has_full_logits(method) else "full"

    def _xy(self, method, target, kind="wise"):
        wise = self.curves(method, kind)
        counts = self.counts(method, kind)
        x = wise[self.id].to_numpy()
        x_k = counts[self.id].to_numpy()
        x_n = np.full_like(x_k, self.dataset_size(self.id))
        if target == OOD_AVG:
            y = wise[OOD_AVG].to_numpy()
            y_k = counts[self.shifts].sum(axis=1).to_numpy()
            y_n = np.full_like(y_k, sum(self.dataset_size(s) for s in self.shifts))
        else:
            y = wise[target].to_numpy()
            y_k = counts[target].to_numpy()
            y_n = np.full_like(y_k, self.dataset_size(target))
        sub = self._subset_correct(method, target, kind) if target != OOD_AVG else None
        if sub is not None:  # class-subset x: its accuracy, and its own k and n for the error bars
            x = sub.mean(axis=1)
            x_k = sub.sum(axis=1)
            x_n = np.full_like(x_k, sub.shape[1])
        return x, y, (x_k, x_n), (y_k, y_n)

    def _er_build(self, method, target, transform, intervals=True):
        baseline: dict = {"source": None}
        if self.is_imagenet:
            from .. import reference

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
            if self.x_axis(m, target) != self.x_axis(method, target):
                continue  # another x axis (a top-k-only method on a class-subset shift): not on this chart
            mx, my, _, _ = self._xy(m, target)
            rows.append({"model": "zero-shot", "method": m, "index": 0, "x": mx[0], "y": my[0], "group": "zero-shot"})
            group = self.point_group(m)
            name = f"fine-tuned · {self.method_label(m)}" if group == "fine-tuned" else self.method_label(m)
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
            if intervals:
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
            rho_cols = ["rho", "rho low", "rho high", "rho fit low", "rho fit high", "vs line"] if intervals else ["rho"]
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

    @memoized
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

    @memoized
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
