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

from . import metrics
from .store import Store

OOD_AVG = "OOD avg"


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
        return out

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
        return table

    # ------------------------------------------------------------------ effective robustness
    def _baseline_pred(self, name: str, dataset: str) -> np.ndarray:
        def build():
            return self.store.baseline_predictions(name, dataset)

        return self._memo(("bpred", name, dataset), build)

    def _subset_x(self, method: str, shift: str, kind: str = "wise") -> np.ndarray | None:
        """ImageNet stores: accuracy on ImageNet val restricted to ``shift``'s classes, per alpha.

        ``kind="ensemble"`` scores the output-space ensemble of the endpoints instead of theta(alpha).
        """
        from .datasets import get_spec, projection_for

        if not self.is_imagenet or shift not in ("imagenet-r", "imagenet-a", "objectnet"):
            return None
        project = projection_for(get_spec(shift))

        def build():
            import torch

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
            acc = []
            for j, alpha in enumerate(self.alphas(method)):
                rows = (1 - alpha) * first + alpha * last if kind == "ensemble" else np.asarray(logits[j][keep], np.float32)
                sub = project(torch.from_numpy(rows)).numpy()
                acc.append(float((sub.argmax(1) == mapper[labels[keep]]).mean()))
            return np.asarray(acc)

        return self._memo(("subset_x", method, shift, kind), build)

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
        sub = self._subset_x(method, target, kind) if target != OOD_AVG else None
        if sub is not None:
            x = sub
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
            rows.append({"model": "zero-shot", "method": m, "x": mx[0], "y": my[0]})
            rows.append({"model": f"fine-tuned ({self.method_label(m)})", "method": m, "x": mx[-1], "y": my[-1]})
        endpoints = pd.DataFrame(rows).drop_duplicates(subset=["model", "x", "y"])
        if baseline["source"] is not None:
            rho = lambda xs, ys: 100 * metrics.effective_robustness(xs, ys, baseline["slope"], baseline["intercept"], transform)  # noqa: E731
            curve["rho"] = rho(curve.x, curve.y)
            endpoints["rho"] = rho(endpoints.x, endpoints.y)
            baseline["points"]["rho"] = rho(baseline["points"].x, baseline["points"].y)
        table = pd.concat(
            [
                endpoints.assign(kind="endpoint")[["model", "x", "y", *(["rho"] if "rho" in endpoints else [])]],
                curve.assign(model=[f"WiSE-FT {self.method_label(method)} α={a:.2f}" for a in curve.alpha])[
                    ["model", "x", "y", *(["rho"] if "rho" in curve else [])]
                ],
            ],
            ignore_index=True,
        )
        return {"baseline": baseline, "curve": curve, "ensemble": ensemble, "endpoints": endpoints, "table": table}

    # ---------------------------------------------------------------- diversity & confidence
    def diversity(self, method: str) -> pd.DataFrame:
        """Zero-shot vs fine-tuned per dataset: PD, kappa complement, KL, CKA complement."""

        def build():
            rows = []
            for ds in self.store.datasets:
                labels = self.labels(ds)
                zs, ft = self.predictions(method, ds, 0), self.predictions(method, ds, -1)
                logits = self.store.logits(method, ds)
                row = {
                    "dataset": ds,
                    "prediction diversity": metrics.prediction_diversity(zs, ft, labels),
                    "1 - Cohen's κ": metrics.cohen_kappa_complement(zs, ft, len(self.store.classnames(ds))),
                    "KL(zero-shot ‖ fine-tuned)": metrics.mean_kl(logits[0], logits[-1]),
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
        i, a = self.snap(method, alpha)
        labels = self.labels(dataset)
        names = self.store.classnames(dataset)
        n = len(names)
        acc = {
            name: metrics.per_class_accuracy(self.predictions(method, dataset, j), labels, n)
            for name, j in (("zero-shot", 0), ("fine-tuned", -1), ("theta(alpha)", i))
        }
        table = pd.DataFrame({"class": names, "n": np.bincount(labels, minlength=n), **acc})
        table["fine-tuned − zero-shot"] = table["fine-tuned"] - table["zero-shot"]
        table["θ(α) − zero-shot"] = table["theta(alpha)"] - table["zero-shot"]
        return table[table.n > 0].reset_index(drop=True)

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
