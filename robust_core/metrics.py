"""Metrics over stored predictions: pure numpy/scipy (no torch, no streamlit).

Effective robustness follows Taori et al. (2020) and the imagenet-testbed plotting code: accuracies
are fractions, the transform T is logit (probit and linear selectable), the baseline is an unweighted
least-squares line ``T(y) = slope * T(x) + intercept`` over standard models, and

    rho(f) = acc_y(f) - T^-1(slope * T(acc_x(f)) + intercept)      (in accuracy, not in logit units).

Diversity follows WiSE-FT section 5.1 / appendix E; the label-free OOD estimate follows Baek et al.
(2022), "Agreement-on-the-line" (ALine-S and ALine-D, probit space).
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
from scipy import stats
from scipy.special import expit, log_softmax, logit

TRANSFORMS = ("logit", "probit", "linear")
_EPS = 1e-6  # accuracies are clipped to [eps, 1-eps] before logit/probit (0% or 100% would be infinite)


# ------------------------------------------------------------------------------------------ basics
def accuracy_from_counts(correct, n) -> np.ndarray:
    """k / n with n = 0 giving NaN."""
    correct, n = np.asarray(correct, np.float64), np.asarray(n, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, correct / np.where(n > 0, n, 1), np.nan)


def accuracy(predictions: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy as a fraction."""
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    if predictions.shape != labels.shape:
        raise ValueError(f"predictions {predictions.shape} and labels {labels.shape} differ in shape.")
    return float((predictions == labels).mean()) if len(labels) else float("nan")


def transform(acc, kind: str = "logit") -> np.ndarray:
    """T(acc) for acc given as fractions: ``logit``, ``probit`` or ``linear`` (identity)."""
    acc = np.asarray(acc, dtype=np.float64)
    if kind == "linear":
        return acc
    clipped = np.clip(acc, _EPS, 1 - _EPS)
    if kind == "logit":
        return logit(clipped)
    if kind == "probit":
        return stats.norm.ppf(clipped)
    raise ValueError(f"Unknown transform {kind!r}; use one of {TRANSFORMS}.")


_transform = transform  # alias: several functions take a parameter named ``transform``


def inverse_transform(value, kind: str = "logit") -> np.ndarray:
    """T^-1, back to accuracy fractions."""
    value = np.asarray(value, dtype=np.float64)
    if kind == "linear":
        return value
    if kind == "logit":
        return expit(value)
    if kind == "probit":
        return stats.norm.cdf(value)
    raise ValueError(f"Unknown transform {kind!r}; use one of {TRANSFORMS}.")


# ------------------------------------------------------------------------------ effective robustness
def fit_baseline(acc_x, acc_y, transform: str = "logit") -> tuple[float, float]:
    """Unweighted least squares ``T(y) = slope * T(x) + intercept`` (accuracies as fractions).

    Raises:
        ValueError: fewer than two models, or all x equal (the line is undefined).
    """
    tx, ty = _transform(acc_x, transform), _transform(acc_y, transform)
    mask = np.isfinite(tx) & np.isfinite(ty)
    tx, ty = tx[mask], ty[mask]
    if len(tx) < 2 or np.ptp(tx) == 0:
        raise ValueError(
            f"A baseline fit needs at least two models with different x accuracies (got {len(tx)}). "
            "Add standard models (baselines) to the run."
        )
    slope, intercept = np.polyfit(tx, ty, 1)
    return float(slope), float(intercept)


def baseline_prediction(acc_x, slope: float, intercept: float, transform: str = "logit") -> np.ndarray:
    """The baseline's predicted OOD accuracy at ID accuracy ``acc_x``."""
    return inverse_transform(slope * _transform(acc_x, transform) + intercept, transform)


def effective_robustness(acc_x, acc_y, slope: float, intercept: float, transform: str = "logit") -> np.ndarray:
    """rho = acc_y - T^-1(slope * T(acc_x) + intercept), as a fraction (x100 for points)."""
    return np.asarray(acc_y, np.float64) - baseline_prediction(acc_x, slope, intercept, transform)


def clopper_pearson(correct, n, confidence: float = 0.995) -> tuple[np.ndarray, np.ndarray]:
    """Exact binomial (Clopper-Pearson) interval for k correct of n, as fractions.

    ``confidence=0.995`` is the testbed's 99.5% interval. k = 0 gives a lower bound of 0, k = n an
    upper bound of 1.
    """
    k, n = np.asarray(correct, np.float64), np.asarray(n, np.float64)
    if np.any(k < 0) or np.any(k > n):
        raise ValueError("Clopper-Pearson needs 0 <= correct <= n.")
    tail = (1 - confidence) / 2
    with np.errstate(invalid="ignore"):
        lower = np.where(k > 0, stats.beta.ppf(tail, k, n - k + 1), 0.0)
        upper = np.where(k < n, stats.beta.ppf(1 - tail, k + 1, n - k), 1.0)
    return lower, upper


def bootstrap_fit_band(
    acc_x,
    acc_y,
    grid,
    transform: str = "logit",
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Pointwise bootstrap band (resampling models) of the baseline line at ``grid`` x accuracies."""
    acc_x, acc_y = np.asarray(acc_x, np.float64), np.asarray(acc_y, np.float64)
    rng = np.random.default_rng(seed)
    tx = _transform(acc_x, transform)
    ty = _transform(acc_y, transform)
    tg = _transform(grid, transform)
    curves = []
    for _ in range(n_boot):
        pick = rng.integers(0, len(tx), len(tx))
        if np.ptp(tx[pick]) == 0:
            continue
        slope, intercept = np.polyfit(tx[pick], ty[pick], 1)
        curves.append(slope * tg + intercept)
    curves = np.asarray(curves)
    tail = (1 - confidence) / 2 * 100
    lo, hi = np.percentile(curves, [tail, 100 - tail], axis=0)
    return inverse_transform(lo, transform), inverse_transform(hi, transform)


def axis_ticks(lo: float, hi: float, transform: str = "logit") -> tuple[list[float], list[str]]:
    """Tick positions T(tick) and percent labels for a transformed accuracy axis spanning [lo, hi]."""
    candidates = np.array([0.5, 1, 2, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 98, 99, 99.5]) / 100
    inside = candidates[(candidates >= lo) & (candidates <= hi)]
    if len(inside) < 4:  # a zoomed axis: round steps (0.1 ... 10 points), at most 8 ticks, never 50.35%
        lo_p, hi_p = 100 * max(lo, 0.001), 100 * min(hi, 0.999)
        for step in (0.1, 0.2, 0.25, 0.5, 1, 2, 2.5, 5, 10):
            ticks = np.arange(np.ceil(lo_p / step - 1e-9) * step, hi_p + 1e-9, step)
            if len(ticks) <= 8:
                break
        inside = np.round(ticks, 2) / 100 if len(ticks) >= 2 else inside
    return list(map(float, _transform(inside, transform))), [f"{100 * t:g}%" for t in np.round(inside, 4)]


# -------------------------------------------------------------------------- diversity & confidence
def prediction_diversity(pred_f, pred_g, labels) -> float:
    """PD: fraction of examples where exactly one of the two models is right."""
    right_f = np.asarray(pred_f) == np.asarray(labels)
    right_g = np.asarray(pred_g) == np.asarray(labels)
    return float(np.mean(right_f ^ right_g))


def cohen_kappa_complement(pred_f, pred_g, n_classes: int | None = None) -> float:
    """1 - Cohen's kappa between the two models' predicted labels (WiSE-FT App. E)."""
    pred_f, pred_g = np.asarray(pred_f, np.int64), np.asarray(pred_g, np.int64)
    n_classes = n_classes or int(max(pred_f.max(), pred_g.max())) + 1
    observed = np.mean(pred_f == pred_g)
    pf = np.bincount(pred_f, minlength=n_classes) / len(pred_f)
    pg = np.bincount(pred_g, minlength=n_classes) / len(pred_g)
    expected = float(pf @ pg)
    if expected == 1.0:
        return 0.0
    return float(1 - (observed - expected) / (1 - expected))


def mean_kl(logits_p, logits_q, chunk: int = 8192) -> float:
    """Mean over examples of KL(softmax(p) || softmax(q))."""
    total, n = 0.0, len(logits_p)
    for s in range(0, n, chunk):
        lp = log_softmax(np.asarray(logits_p[s : s + chunk], np.float64), axis=-1)
        lq = log_softmax(np.asarray(logits_q[s : s + chunk], np.float64), axis=-1)
        total += float(np.sum(np.exp(lp) * (lp - lq)))
    return total / n if n else float("nan")


def linear_cka(features_x, features_y) -> float:
    """Linear CKA (Kornblith et al. 2019) between two feature matrices with the same rows."""
    x = np.asarray(features_x, np.float64)
    y = np.asarray(features_y, np.float64)
    x = x - x.mean(0)
    y = y - y.mean(0)
    cross = np.linalg.norm(y.T @ x, "fro") ** 2
    return float(cross / (np.linalg.norm(x.T @ x, "fro") * np.linalg.norm(y.T @ y, "fro")))


def cka_complement(features_x, features_y, max_rows: int = 10000, seed: int = 0) -> float:
    """1 - linear CKA, on at most ``max_rows`` rows (a seeded subsample)."""
    n = len(features_x)
    if n > max_rows:
        keep = np.sort(np.random.default_rng(seed).choice(n, max_rows, replace=False))
        features_x, features_y = np.asarray(features_x)[keep], np.asarray(features_y)[keep]
    return 1.0 - linear_cka(features_x, features_y)


def margins_from_top(top_values) -> np.ndarray:
    """Top-1 minus top-2 unnormalised output, from sorted top-k values (..., k>=2)."""
    top_values = np.asarray(top_values, np.float32)
    return top_values[..., 0] - top_values[..., 1]


def override_rates(pred_zeroshot, pred_finetuned, pred_ensemble) -> dict:
    """Where zero-shot and fine-tuned disagree, how often the ensemble sides with each.

    Returns a dict with ``disagree`` (fraction of all examples), ``zeroshot_overrides`` (ensemble agrees
    with zero-shot, as a fraction of the disagreements), ``is_overridden`` (agrees with fine-tuned) and
    ``neither``.
    """
    zs, ft, ens = (np.asarray(p) for p in (pred_zeroshot, pred_finetuned, pred_ensemble))
    disagree = zs != ft
    n_dis = int(disagree.sum())
    if n_dis == 0:
        return {"disagree": 0.0, "zeroshot_overrides": float("nan"), "is_overridden": float("nan"), "neither": float("nan")}
    with_zs = float(np.mean(ens[disagree] == zs[disagree]))
    with_ft = float(np.mean(ens[disagree] == ft[disagree]))
    return {
        "disagree": n_dis / len(zs),
        "zeroshot_overrides": with_zs,
        "is_overridden": with_ft,
        "neither": 1.0 - with_zs - with_ft,
    }


def per_class_accuracy(predictions, labels, n_classes: int) -> np.ndarray:
    """Accuracy per true class (NaN for classes absent from ``labels``)."""
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    total = np.bincount(labels, minlength=n_classes).astype(np.float64)
    right = np.bincount(labels[predictions == labels], minlength=n_classes).astype(np.float64)
    return accuracy_from_counts(right, total)


# -------------------------------------------------------------------------------- alpha selection
def select_alpha(alphas, scores) -> float:
    """The alpha with the highest score; ties go to the smallest alpha (closest to zero-shot)."""
    alphas, scores = np.asarray(alphas, np.float64), np.asarray(scores, np.float64)
    if len(alphas) != len(scores) or not len(alphas):
        raise ValueError("select_alpha needs one score per alpha.")
    best = np.nanmax(scores)
    return float(alphas[np.flatnonzero(scores >= best - 1e-12)[0]])


def agreement(pred_f, pred_g) -> float:
    """Fraction of examples on which two models predict the same class (needs no labels)."""
    return float(np.mean(np.asarray(pred_f) == np.asarray(pred_g)))


def aline_estimate(
    id_predictions: np.ndarray,
    ood_predictions: np.ndarray,
    id_labels: np.ndarray,
    method: str = "aline-d",
) -> np.ndarray:
    """Label-free OOD accuracy estimates for a set of models (Baek et al. 2022, probit space).

    Args:
        id_predictions: (n_models, n_id) predicted classes on labelled ID data.
        ood_predictions: (n_models, n_ood) predicted classes on *unlabelled* OOD data.
        id_labels: (n_id,) ID labels.
        method: ``aline-s`` (fit the agreement line, apply it to ID accuracy) or ``aline-d`` (solve the
            pairwise system for every model's OOD accuracy jointly; more accurate in the paper).

    Returns:
        (n_models,) estimated OOD accuracies (fractions).
    """
    id_predictions, ood_predictions = np.asarray(id_predictions), np.asarray(ood_predictions)
    m = len(id_predictions)
    if m < 3:
        raise ValueError("Agreement-on-the-line needs at least 3 models.")
    acc_id = np.array([accuracy(p, id_labels) for p in id_predictions])
    pairs = list(combinations(range(m), 2))
    agr_id = np.array([agreement(id_predictions[i], id_predictions[j]) for i, j in pairs])
    agr_ood = np.array([agreement(ood_predictions[i], ood_predictions[j]) for i, j in pairs])
    p_agr_id, p_agr_ood = transform(agr_id, "probit"), transform(agr_ood, "probit")
    if np.ptp(p_agr_id) == 0:
        raise ValueError("All models agree equally on ID data; the agreement line is undefined.")
    slope, intercept = np.polyfit(p_agr_id, p_agr_ood, 1)
    p_acc_id = transform(acc_id, "probit")
    if method == "aline-s":
        return inverse_transform(slope * p_acc_id + intercept, "probit")
    if method != "aline-d":
        raise ValueError(f"Unknown method {method!r}; use aline-s or aline-d.")
    # For every pair: (P(ood_i) + P(ood_j)) / 2 = P(agr_ood_ij) + slope * ((P(id_i) + P(id_j)) / 2 - P(agr_id_ij))
    design = np.zeros((len(pairs), m))
    target = np.empty(len(pairs))
    for row, (i, j) in enumerate(pairs):
        design[row, i] = design[row, j] = 0.5
        target[row] = p_agr_ood[row] + slope * ((p_acc_id[i] + p_acc_id[j]) / 2 - p_agr_id[row])
    solution, *_ = np.linalg.lstsq(design, target, rcond=None)
    return inverse_transform(solution, "probit")


# ------------------------------------------------------------------------------------- calibration
# Calibration follows Guo et al. (2017),
# "On calibration of modern neural networks": confidence is the maximum softmax probability, ECE uses
# equal-width confidence bins (lo, hi] and weighs each bin's |accuracy - mean confidence| by its share
# of the examples; temperature scaling divides the logits by one scalar T fitted by minimising the NLL
# on held-out (ID validation) data, which changes confidence but never the predicted class.


def softmax(logits) -> np.ndarray:
    """Softmax over the last axis, in float64 (rows sum to 1 to 1e-12)."""
    z = np.asarray(logits, np.float64)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


ECE_BINS = 15  # equal-width confidence bins of the standard ECE (Guo et al. 2017)
_BLOCK_BYTES = 16 * 2**20  # float32 logits converted per block: memory stays flat in the set size


def _row_blocks(n: int, n_classes: int):
    step = max(1, _BLOCK_BYTES // (4 * max(1, int(n_classes))))
    return ((s, min(n, s + step)) for s in range(0, n, step))


def max_softmax(logits, temperature: float = 1.0) -> np.ndarray:
    """Confidence: the maximum of softmax(logits / T) per row, (n, C) -> (n,) float32, in row blocks.

    Computed as 1 / sum_j exp((z_j - z_max) / T), so float16 memory maps are read once per block and
    never copied whole.
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0; got {temperature}.")
    n, n_classes = logits.shape
    out = np.empty(n, np.float32)
    for s, e in _row_blocks(n, n_classes):
        z = np.asarray(logits[s:e], np.float32)
        z = (z - z.max(axis=1, keepdims=True)) / np.float32(temperature)
        out[s:e] = 1.0 / np.exp(z, out=z).sum(axis=1, dtype=np.float64)
    return out


def nll(logits, labels, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood (nats) of the labels under softmax(logits / T), in row blocks."""
    labels = np.asarray(labels)
    n, n_classes = logits.shape
    if len(labels) != n or not n:
        raise ValueError(f"nll needs one label per row and at least one row; got {len(labels)} labels for {n} rows.")
    total = 0.0
    for s, e in _row_blocks(n, n_classes):
        z = log_softmax(np.asarray(logits[s:e], np.float64) / temperature, axis=1)
        total -= float(z[np.arange(e - s), labels[s:e]].sum())
    return total / n


def fit_temperature(logits, labels, bounds: tuple[float, float] = (0.05, 20.0)) -> float:
    """The temperature T > 0 minimising ``nll(logits, labels, T)`` (bounded 1-D search over log T).

    The NLL is convex in 1 / T, so the bounded search finds the global minimum; a T at a bound means the
    data asks for a more extreme value than ``bounds`` allow.
    """
    from scipy import optimize  # imported here so this appended block leaves the module's header alone

    result = optimize.minimize_scalar(
        lambda log_t: nll(logits, labels, float(np.exp(log_t))), bounds=np.log(bounds), method="bounded", options={"xatol": 1e-4}
    )
    return float(np.exp(result.x))


def confidence_bin(confidence, n_bins: int = ECE_BINS) -> np.ndarray:
    """Index of each confidence's equal-width bin (lo, hi] of [0, 1] (0 falls in the first bin)."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return np.clip(np.searchsorted(edges, np.asarray(confidence, np.float64), side="left") - 1, 0, n_bins - 1)


def calibration_columns(confidence, correct, n_bins: int = ECE_BINS) -> np.ndarray:
    """(n, n_bins) per-example values whose column sums give the ECE: confidence - correct in its bin's column.

    ``ECE = sum_b |column sum b| / n``, so any resample of the examples is scored from resampled column
    sums (``evidence.paired_statistic``) without recomputing bins.
    """
    confidence, correct = np.asarray(confidence, np.float64), np.asarray(correct, bool)
    out = np.zeros((len(confidence), n_bins))
    out[np.arange(len(confidence)), confidence_bin(confidence, n_bins)] = confidence - correct
    return out


def reliability_bins(confidence, correct, n_bins: int = ECE_BINS) -> dict[str, np.ndarray]:
    """Per equal-width bin: ``low``, ``high``, ``count``, mean ``confidence`` and ``accuracy`` (NaN where empty)."""
    confidence, correct = np.asarray(confidence, np.float64), np.asarray(correct, bool)
    if confidence.shape != correct.shape:
        raise ValueError(f"confidence {confidence.shape} and correct {correct.shape} differ in shape.")
    which = confidence_bin(confidence, n_bins)
    count = np.bincount(which, minlength=n_bins)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(which, confidence, minlength=n_bins) / count
        acc = np.bincount(which, correct.astype(np.float64), minlength=n_bins) / count
    return {"low": edges[:-1], "high": edges[1:], "count": count, "confidence": mean_conf, "accuracy": acc}


def expected_calibration_error(confidence, correct, n_bins: int = ECE_BINS) -> float:
    """ECE as a fraction (x100 for points): sum over bins of count / n * |accuracy - mean confidence|."""
    confidence = np.asarray(confidence)
    if not len(confidence):
        return float("nan")
    return float(np.abs(calibration_columns(confidence, correct, n_bins).sum(axis=0)).sum() / len(confidence))


__all__ = [
    "ECE_BINS",
    "TRANSFORMS",
    "accuracy",
    "accuracy_from_counts",
    "agreement",
    "aline_estimate",
    "axis_ticks",
    "baseline_prediction",
    "bootstrap_fit_band",
    "calibration_columns",
    "cka_complement",
    "clopper_pearson",
    "cohen_kappa_complement",
    "confidence_bin",
    "effective_robustness",
    "expected_calibration_error",
    "fit_baseline",
    "fit_temperature",
    "inverse_transform",
    "linear_cka",
    "margins_from_top",
    "max_softmax",
    "mean_kl",
    "nll",
    "override_rates",
    "per_class_accuracy",
    "prediction_diversity",
    "reliability_bins",
    "select_alpha",
    "softmax",
    "transform",
]
