"""Calibration of zero-shot, theta(alpha) and fine-tuned: ECE, reliability bins, temperature scaling on ID val.

Confidence is the maximum softmax probability; ECE uses ``metrics.ECE_BINS`` (15) equal-width bins (Guo et
al. 2017) and is reported in points (%). Softmax needs every class's logit, so a method stored with
``--store-logits topk`` is calibrated at its endpoints only (the store keeps full logits at alpha 0 and 1).

Per (method, dataset, temperature scaling on/off) one pass over the logits in row blocks gives a (A, n)
float32 confidence matrix, memoised; everything else (ECE along alpha, reliability bins, intervals) is
computed from it. Temperature scaling fits one T per model of the grid on the ID validation set (NLL) and
applies it to every set; the paired intervals hold T fixed (it is not refitted in each resample).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import evidence, metrics
from ._base import OOD_AVG, REFERENCES, memoized, ood_avg

_SEED = 0  # bootstrap seed; dataset k of the store draws from the stream [seed, k] (independent sets)
# Per-example bin columns (float64) resampled at once: every model of an ImageNet-sized grid (21 alphas, 50,000 rows)
# fits one chunk, so the index draws are made once per set. The cost is the (R, n) x (n, models * bins) product:
# ~1 s per set on the demo, ~20 s per 50,000-image set on a busy 2-core machine; once per method and mode (memoised).
_COLUMN_BYTES = 128 * 2**20


class CalibrationViews:
    """ECE and reliability of every model on the grid, with and without temperature scaling fitted on ID val."""

    # ---- which models have full logits
    def calibration_grid(self, method: str) -> list[int]:
        """Grid indices whose full logits the store keeps: every alpha, or the two endpoints (``--store-logits topk``)."""
        n = len(self.alphas(method))
        return list(range(n)) if self.store.has_full_logits(method) else [0, n - 1]

    def calibration_note(self, method: str) -> str | None:
        """Why only the endpoints are calibrated (``None`` when every alpha is)."""
        if self.store.has_full_logits(method):
            return None
        return (
            f"This store keeps {self.method_label(method)}'s full logits at α = 0 and α = 1 only (built with "
            "`--store-logits topk`): confidence needs the softmax over every class, so ECE is shown for zero-shot and "
            "fine-tuned only. Re-run eval with `--store-logits full` for θ(α)."
        )

    def has_calibration(self, method: str, i: int) -> bool:
        """Whether grid point ``i`` has full logits (always, except the middle of a top-k-only method)."""
        return self.grid_index(method, i) in self.calibration_grid(method)

    # ---- temperature scaling
    @property
    def temperature_set(self) -> str | None:
        """The set temperatures are fitted on (ID validation), or ``None`` when the run has none."""
        return self.store.id_val

    def temperatures(self, method: str) -> pd.Series:
        """T per grid alpha with full logits, fitted by minimising NLL on ID val (index: alpha).

        Raises:
            ValueError: the run has no ID validation set.
        """
        if self.temperature_set is None:
            raise ValueError("This run has no ID validation set to fit temperatures on (eval --id-val).")

        def build():
            labels = self.labels(self.temperature_set)
            grid = self.calibration_grid(method)
            fitted = [metrics.fit_temperature(self.store.logits_at(method, self.temperature_set, j), labels) for j in grid]
            return pd.Series(fitted, index=pd.Index(self.alphas(method)[grid], name="alpha"), name="temperature")

        return self._memo(("temperatures", method), build)

    def temperature(self, method: str, i: int) -> float:
        """T of grid point ``i`` (see ``temperatures``)."""
        return float(self.temperatures(method).loc[self.alpha_at(method, i)])

    # ---- per-example confidence and ECE
    def confidence(self, method: str, dataset: str, scaled: bool = False) -> np.ndarray:
        """(len(calibration_grid), n) float32 max-softmax confidence per model and example; ``scaled``: after T."""

        def build():
            grid = self.calibration_grid(method)
            temps = self.temperatures(method).to_numpy() if scaled else np.ones(len(grid))
            return np.stack([metrics.max_softmax(self.store.logits_at(method, dataset, j), t) for j, t in zip(grid, temps)])

        return self._memo(("confidence", method, dataset, bool(scaled)), build)

    def _calibration_correct(self, method: str, dataset: str) -> np.ndarray:
        """Correctness of the calibrated models (top-1 of the store, as every accuracy of the app)."""
        return self.correct(method, dataset)[self.calibration_grid(method)]

    def _ece_stats(self, method: str, dataset: str, scaled: bool) -> tuple[np.ndarray, np.ndarray]:
        """ECE (fraction) of every calibrated model, and its (R, models) bootstrap samples (examples resampled jointly)."""

        def build():
            conf, correct = self.confidence(method, dataset, scaled), self._calibration_correct(method, dataset)
            n_models, n = conf.shape
            seed = [_SEED, self.store.datasets.index(dataset)]
            bins = metrics.ECE_BINS
            # models in chunks of <= _COLUMN_BYTES of float64 columns; one seed = the same resamples for every chunk
            per_chunk = max(1, _COLUMN_BYTES // (8 * n * bins))
            estimate, samples = [], []
            for start in range(0, n_models, per_chunk):
                stop = min(n_models, start + per_chunk)
                columns = np.concatenate([metrics.calibration_columns(conf[m], correct[m]) for m in range(start, stop)], axis=1)
                estimate.append(np.abs(columns.sum(axis=0)).reshape(stop - start, bins).sum(axis=1) / n)
                sums = evidence.resampled_sums(columns, seed=seed)  # (R, models * bins)
                samples.append(np.abs(sums).reshape(len(sums), stop - start, bins).sum(axis=2) / n)
            return np.concatenate(estimate), np.concatenate(samples, axis=1)

        return self._memo(("ece_stats", method, dataset, bool(scaled)), build)

    def ece_curve(self, method: str, scaled: bool = False) -> pd.DataFrame:
        """ECE (points) per calibrated grid alpha (rows) and set (columns), plus ``OOD avg`` (mean over shifts)."""

        def build():
            alphas = self.alphas(method)[self.calibration_grid(method)]
            table = pd.DataFrame(
                {ds: 100 * self._ece_estimate(method, ds, scaled) for ds in self.store.datasets}, index=pd.Index(alphas, name="alpha")
            )
            if self.shifts:
                table[OOD_AVG] = ood_avg(table, self.shifts)
            return table

        return self._memo(("ece_curve", method, bool(scaled)), build)

    def _ece_estimate(self, method: str, dataset: str, scaled: bool) -> np.ndarray:
        conf, correct = self.confidence(method, dataset, scaled), self._calibration_correct(method, dataset)
        return np.array([metrics.expected_calibration_error(c, k) for c, k in zip(conf, correct)])

    def ece(self, method: str, dataset: str, i: int, scaled: bool = False) -> float:
        """ECE (points) of grid point ``i`` on ``dataset`` (or ``OOD avg``); NaN where the store has no full logits."""
        if not self.has_calibration(method, i):
            return float("nan")
        return float(self.ece_curve(method, scaled)[dataset].loc[self.alpha_at(method, i)])

    def reliability(self, method: str, dataset: str, i: int, scaled: bool = False) -> pd.DataFrame:
        """Reliability bins of zero-shot, theta(alpha_i) (when calibrated) and fine-tuned on ``dataset``.

        Long table: ``model, bin, low, high, count, confidence, accuracy`` (fractions; NaN in empty bins).
        """
        i = self.grid_index(method, i)
        grid = self.calibration_grid(method)
        conf, correct = self.confidence(method, dataset, scaled), self._calibration_correct(method, dataset)
        models = [(0, "zero-shot")]
        if i in grid:
            models.append((grid.index(i), f"θ(α={self.alpha_at(method, i):.2f})"))
        models.append((len(grid) - 1, "fine-tuned"))
        frames = []
        for row, name in models:
            bins = pd.DataFrame(metrics.reliability_bins(conf[row], correct[row]))
            frames.append(bins.assign(model=name, bin=np.arange(len(bins))))
        return pd.concat(frames, ignore_index=True)[["model", "bin", "low", "high", "count", "confidence", "accuracy"]]

    # ---- paired intervals and words
    @memoized
    def ece_interval(self, method: str, dataset: str, i: int, reference: str = "zero-shot", scaled: bool = False) -> evidence.Interval:
        """ECE(theta(alpha_i)) - ECE(reference) in points on ``dataset`` or ``OOD avg``, paired 95% bootstrap.

        Examples are resampled jointly for both models; the OOD avg resamples within each shift, then averages.
        Raises ValueError where ``i`` has no full logits.
        """
        if not self.has_calibration(method, i):
            raise ValueError(f"α = {self.alpha_at(method, i):.2f} of {method} has no full logits in this store.")
        grid = self.calibration_grid(method)
        a, b = grid.index(self.grid_index(method, i)), grid.index(self.grid_index(method, REFERENCES[reference]))
        sets = self.shifts if dataset == OOD_AVG else [dataset]
        if not sets:
            raise ValueError("An OOD average needs at least one shift.")
        stats = [self._ece_stats(method, ds, scaled) for ds in sets]
        estimate = np.mean([est[a] - est[b] for est, _ in stats])
        samples = np.mean([s[:, a] - s[:, b] for _, s in stats], axis=0)
        n = sum(self.dataset_size(ds) for ds in sets)
        return evidence.percentile_interval(estimate, samples, n).scaled(100)

    @memoized
    def calibration_table(self, method: str, i: int, scaled: bool = False) -> pd.DataFrame:
        """Per set and OOD avg: ECE (points) of zero-shot, theta(alpha_i), fine-tuned and both paired differences."""
        i = self.grid_index(method, i)
        curve = self.ece_curve(method, scaled)
        has_mid = self.has_calibration(method, i)
        rows = []
        for ds in curve.columns:
            row = {"dataset": ds, "zero-shot": curve[ds].iloc[0], "θ(α)": self.ece(method, ds, i, scaled), "fine-tuned": curve[ds].iloc[-1]}
            for key, idx, ok in (("θ(α)", i, has_mid), ("fine-tuned", -1, True)):
                iv = self.ece_interval(method, ds, idx, "zero-shot", scaled) if ok else None
                row[f"{key} − zero-shot"] = iv.estimate if iv else np.nan
                row[f"{key} − zero-shot low"] = iv.low if iv else np.nan
                row[f"{key} − zero-shot high"] = iv.high if iv else np.nan
                row[f"{key} vs zero-shot"] = evidence.verdict(iv, "higher ECE", "lower ECE") if iv else "no full logits"
            row["n"] = sum(self.dataset_size(s) for s in self.shifts) if ds == OOD_AVG else self.dataset_size(ds)
            rows.append(row)
        return pd.DataFrame(rows).set_index("dataset")

    @memoized
    def narrate_calibration(self, method: str, i: int, dataset: str, scaled: bool = False) -> list[str]:
        """Sentences on ``dataset``: theta(alpha_i) and fine-tuned against zero-shot (direction only when the
        95% interval excludes 0), then a count over every set of where fine-tuning changes ECE distinguishably."""
        i = self.grid_index(method, i)
        which = "after temperature scaling" if scaled else "without temperature scaling"
        out = []
        names = [("fine-tuned", -1)]
        if self.has_calibration(method, i) and i not in (0, len(self.alphas(method)) - 1):
            names.insert(0, (f"θ(α={self.alpha_at(method, i):.2f})", i))
        for name, idx in names:
            iv = self.ece_interval(method, dataset, idx, "zero-shot", scaled)
            out.append(f"On {dataset} ({which}), " + evidence.compare(iv, f"the ECE of {name}", "zero-shot's", scale=1.0, digits=2) + ".")
        table = self.calibration_table(method, i, scaled).drop(index=OOD_AVG, errors="ignore")
        verdicts = table["fine-tuned vs zero-shot"]
        worse = list(table.index[verdicts == "higher ECE"])
        better = list(table.index[verdicts == "lower ECE"])
        flat = list(table.index[verdicts.str.startswith("not")])
        parts = [f"higher on {len(worse)} ({', '.join(worse)})"] if worse else []
        parts += [f"lower on {len(better)} ({', '.join(better)})"] if better else []
        parts += [f"not distinguishable on {len(flat)} ({', '.join(flat)})"] if flat else []
        out.append(f"Over the {len(table)} sets, fine-tuned's ECE minus zero-shot's is " + "; ".join(parts) + " (paired 95% intervals).")
        return out
