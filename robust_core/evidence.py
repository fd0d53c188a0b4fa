"""Paired uncertainty for comparisons on one test set: pure numpy/scipy (no torch, no streamlit).

Two models scored on the same examples are compared *paired*: the examples are resampled once and
acc(A) - acc(B) is taken in every resample (percentile bootstrap, 95% by default). Independent
per-model intervals (Clopper-Pearson) are far wider than the paired interval of a difference, so a
difference is never judged by whether two such bars overlap.

Implementation note: for a statistic that is a mean of per-example values with few distinct values
(correct in {0, 1}; a paired difference in {-1, 0, +1}), resampling n examples with replacement is
*the same distribution* as drawing multinomial counts of the distinct values with their empirical
frequencies. So every interval here costs O(resamples), not O(resamples * n): 2000 resamples of a
50,000-example set take well under a millisecond, which keeps slider moves instant. For statistics
that need one joint resample across many comparisons, ``bootstrap_weights`` gives the explicit
(resamples, n) count matrix and ``paired_difference(..., weights=W)`` uses it.

Seeds: every row of a stack is drawn from a fresh ``default_rng(seed)``, so a comparison's interval is
the same whether it is computed alone or inside a stack; shifts of an OOD average are drawn from
independent streams ``default_rng([seed, j])``.

McNemar's exact test is the classical companion: a two-sided binomial test on the discordant pairs.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import stats

from . import metrics

RESAMPLES = 2000  # bootstrap resamples; the percentile interval's Monte-Carlo error is ~0.1 point at this R
LEVEL = 0.95  # two-sided confidence level of every interval


# ------------------------------------------------------------------------------------------ results
@dataclass(frozen=True)
class Interval:
    """A point estimate with a two-sided percentile-bootstrap interval (fractions unless scaled).

    ``n`` is the number of examples behind it (for an OOD average: the total over shifts).
    """

    estimate: float
    low: float
    high: float
    level: float
    n: int

    @property
    def excludes_zero(self) -> bool:
        return bool(self.low > 0 or self.high < 0)

    @property
    def sign(self) -> int:
        """+1 if the whole interval is above 0, -1 if below, 0 if it includes 0 (not distinguishable)."""
        return 1 if self.low > 0 else -1 if self.high < 0 else 0

    def scaled(self, factor: float) -> Interval:
        """The same interval in other units, e.g. ``scaled(100)`` for accuracy points."""
        return Interval(self.estimate * factor, self.low * factor, self.high * factor, self.level, self.n)


@dataclass(frozen=True)
class Intervals:
    """Many intervals at once (one per row of a stack, per class, per alpha), as arrays."""

    estimate: np.ndarray
    low: np.ndarray
    high: np.ndarray
    level: float
    n: np.ndarray

    def __len__(self) -> int:
        return len(self.estimate)

    def __getitem__(self, i) -> Interval:
        return Interval(float(self.estimate[i]), float(self.low[i]), float(self.high[i]), self.level, int(self.n[i]))

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    @property
    def sign(self) -> np.ndarray:
        """Per row: +1 / -1 where the interval excludes 0 on that side, 0 where it includes 0 (or is NaN)."""
        return np.where(self.low > 0, 1, np.where(self.high < 0, -1, 0))

    def scaled(self, factor: float) -> Intervals:
        return Intervals(self.estimate * factor, self.low * factor, self.high * factor, self.level, self.n)


# ------------------------------------------------------------------------------------------ helpers
def bootstrap_weights(n: int, resamples: int = RESAMPLES, seed: int = 0, chunk: int = 256) -> np.ndarray:
    """Multinomial count matrix of the example bootstrap: row r says how often each example is drawn.

    Each row sums to ``n``; ``W @ values / n`` is the resampled mean of ``values``. Deterministic by
    ``seed`` (rows are generated in fixed chunks of ``chunk`` resamples). Memory is resamples * n * 2
    bytes (uint16), so for large n prefer the sufficient-statistic functions of this module.
    """
    rng = np.random.default_rng(seed)
    out = np.empty((resamples, n), np.uint16)
    for start in range(0, resamples, chunk):
        rows = min(chunk, resamples - start)
        idx = rng.integers(0, n, size=(rows, n)) + (np.arange(rows) * n)[:, None]
        out[start : start + rows] = np.bincount(idx.ravel(), minlength=rows * n).reshape(rows, n)
    return out


def _as_stack(correct) -> tuple[np.ndarray, bool]:
    """(k, n) bool array and whether the input was a single (n,) vector."""
    arr = np.asarray(correct)
    if arr.ndim == 1:
        return arr[None].astype(bool), True
    if arr.ndim == 2:
        return arr.astype(bool), False
    raise ValueError(f"Correctness must be shape (n,) or (k, n); got {arr.shape}.")


def _quantiles(samples: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval along axis 0 (NaN resamples ignored)."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1); got {level}.")
    tail = (1 - level) / 2
    nan = np.isnan(samples)
    if not nan.any():
        low, high = np.quantile(samples, [tail, 1 - tail], axis=0)
        return low, high
    empty = nan.all(axis=0)
    if np.array_equal(nan, np.broadcast_to(empty, nan.shape)):  # whole columns NaN (empty classes): fast path
        low, high = np.full(samples.shape[1:], np.nan), np.full(samples.shape[1:], np.nan)
        if (~empty).any():
            low[~empty], high[~empty] = np.quantile(samples[:, ~empty], [tail, 1 - tail], axis=0)
        return low, high
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns give NaN on purpose
        low, high = np.nanquantile(samples, [tail, 1 - tail], axis=0)
    return low, high


def _resampled_mean_diff(a: np.ndarray, b: np.ndarray, resamples: int, rng_seed) -> np.ndarray:
    """(R,) bootstrap means of a - b for one pair of bool vectors, via multinomial counts of {+1, -1, 0}."""
    n = len(a)
    if n == 0:
        return np.full(resamples, np.nan)
    plus = int(np.count_nonzero(a & ~b))
    minus = int(np.count_nonzero(~a & b))
    p = np.array([plus, minus, n - plus - minus], np.float64) / n
    counts = np.random.default_rng(rng_seed).multinomial(n, p, size=resamples)
    return (counts[:, 0] - counts[:, 1]) / n


def _resampled_mean(a: np.ndarray, resamples: int, rng_seed) -> np.ndarray:
    """(R,) bootstrap accuracies of one bool vector (binomial counts)."""
    n = len(a)
    if n == 0:
        return np.full(resamples, np.nan)
    return np.random.default_rng(rng_seed).binomial(n, np.count_nonzero(a) / n, size=resamples) / n


def _pack(estimates, samples, level, n, single):
    estimates = np.asarray(estimates, np.float64)
    low, high = _quantiles(np.asarray(samples, np.float64).T, level) if len(estimates) else (estimates, estimates)
    result = Intervals(estimates, np.asarray(low), np.asarray(high), level, np.asarray(n, np.int64))
    return result[0] if single else result


def _check_sets(a_by_set: Mapping, b_by_set: Mapping | None = None) -> list[str]:
    names = list(a_by_set)
    if not names:
        raise ValueError("An OOD average needs at least one shift.")
    if b_by_set is not None and set(b_by_set) != set(names):
        raise ValueError(f"Both models need the same shifts; got {sorted(a_by_set)} and {sorted(b_by_set)}.")
    return names


# ------------------------------------------------------------------------------ single-model accuracy
def accuracy_interval(correct, resamples: int = RESAMPLES, level: float = LEVEL, seed: int = 0) -> Interval | Intervals:
    """Bootstrap interval of accuracy (fraction) from per-example correctness, shape (n,) or (k, n)."""
    stack, single = _as_stack(correct)
    samples = [_resampled_mean(row, resamples, seed) for row in stack]
    est = stack.mean(axis=1) if stack.shape[1] else np.full(len(stack), np.nan)
    return _pack(est, samples, level, [stack.shape[1]] * len(stack), single)


def accuracy_interval_ood(
    correct_by_set: Mapping[str, np.ndarray], resamples: int = RESAMPLES, level: float = LEVEL, seed: int = 0
) -> Interval | Intervals:
    """OOD avg (unweighted mean over shifts) with examples resampled within each shift independently."""
    names = _check_sets(correct_by_set)
    stacks = [_as_stack(correct_by_set[s]) for s in names]
    single = stacks[0][1]
    k = len(stacks[0][0])
    est = np.mean([st.mean(axis=1) for st, _ in stacks], axis=0)
    samples = [np.mean([_resampled_mean(st[r], resamples, [seed, j]) for j, (st, _) in enumerate(stacks)], axis=0) for r in range(k)]
    n = sum(st.shape[1] for st, _ in stacks)
    return _pack(est, samples, level, [n] * k, single)


# ---------------------------------------------------------------------------- paired differences
def paired_difference(
    correct_a,
    correct_b,
    resamples: int = RESAMPLES,
    level: float = LEVEL,
    seed: int = 0,
    weights: np.ndarray | None = None,
) -> Interval | Intervals:
    """acc(A) - acc(B) on the same examples, with a paired percentile-bootstrap interval (fractions).

    Args:
        correct_a, correct_b: bool correctness, shape (n,) or (k, n); a (n,) side is broadcast against
            a (k, n) side (e.g. every alpha of a grid vs one reference model).
        resamples, level, seed: bootstrap settings.
        weights: optional (R, n) count matrix from ``bootstrap_weights``: every comparison then uses the
            same explicit resamples (a joint bootstrap); otherwise the exact multinomial shortcut.

    Returns:
        An ``Interval`` for two (n,) inputs, else ``Intervals`` with one row per k.
    """
    a, single_a = _as_stack(correct_a)
    b, single_b = _as_stack(correct_b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"Paired comparison needs the same examples: {a.shape[1]} vs {b.shape[1]}.")
    a, b = np.broadcast_arrays(a, b)
    single = single_a and single_b
    n = a.shape[1]
    est = (a.mean(axis=1) - b.mean(axis=1)) if n else np.full(len(a), np.nan)
    if weights is not None:
        if weights.shape[1] != n:
            raise ValueError(f"weights have {weights.shape[1]} columns for {n} examples.")
        diff = a.astype(np.float32) - b.astype(np.float32)  # (k, n) in {-1, 0, 1}
        samples = (weights.astype(np.float32) @ diff.T).T / n  # (k, R)
    else:
        samples = [_resampled_mean_diff(a[r], b[r], resamples, seed) for r in range(len(a))]
    return _pack(est, samples, level, [n] * len(a), single)


def paired_difference_ood(
    correct_a_by_set: Mapping[str, np.ndarray],
    correct_b_by_set: Mapping[str, np.ndarray],
    resamples: int = RESAMPLES,
    level: float = LEVEL,
    seed: int = 0,
) -> Interval | Intervals:
    """OOD-avg difference: the per-shift paired differences, resampled within each shift, then averaged.

    Values per shift are (n_s,) or (k, n_s) as in ``paired_difference``; the OOD avg is the unweighted
    mean over shifts, so a small shift counts as much as a large one (as in the papers' tables).
    """
    names = _check_sets(correct_a_by_set, correct_b_by_set)
    pairs = []
    for s in names:
        a, sa = _as_stack(correct_a_by_set[s])
        b, sb = _as_stack(correct_b_by_set[s])
        if a.shape[1] != b.shape[1]:
            raise ValueError(f"{s}: paired comparison needs the same examples: {a.shape[1]} vs {b.shape[1]}.")
        a, b = np.broadcast_arrays(a, b)
        pairs.append((a, b, sa and sb))
    k = max(len(a) for a, _, _ in pairs)
    pairs = [(np.broadcast_to(a, (k, a.shape[1])), np.broadcast_to(b, (k, b.shape[1])), s) for a, b, s in pairs]
    single = all(s for _, _, s in pairs)
    est = np.mean([a.mean(axis=1) - b.mean(axis=1) for a, b, _ in pairs], axis=0)
    samples = [
        np.mean([_resampled_mean_diff(a[r], b[r], resamples, [seed, j]) for j, (a, b, _) in enumerate(pairs)], axis=0) for r in range(k)
    ]
    n = sum(a.shape[1] for a, _, _ in pairs)
    return _pack(est, samples, level, [n] * k, single)


def per_class_difference(
    correct_a,
    correct_b,
    labels,
    n_classes: int,
    resamples: int = RESAMPLES,
    level: float = LEVEL,
    seed: int = 0,
) -> Intervals:
    """Per-class acc(A) - acc(B) with a paired bootstrap *within* each class (classes are strata).

    Classes without examples get NaN. One row per class id 0..n_classes-1; ``n`` is the class size.
    """
    a, b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    labels = np.asarray(labels)
    if not (a.shape == b.shape == labels.shape):
        raise ValueError("per_class_difference needs (n,) correctness for both models and (n,) labels.")
    n_c = np.bincount(labels, minlength=n_classes)
    plus = np.bincount(labels[a & ~b], minlength=n_classes)
    minus = np.bincount(labels[~a & b], minlength=n_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        est = (plus - minus) / n_c
        p = np.stack([plus, minus, n_c - plus - minus], axis=1) / np.maximum(n_c, 1)[:, None]
    p[n_c == 0] = [0.0, 0.0, 1.0]
    # Multinomial (N+, N-, N0) per class as two binomials (N+, then N- among the rest): the same
    # distribution, about 10x faster than Generator.multinomial broadcast over (R, C).
    rng = np.random.default_rng(seed)
    n_plus = rng.binomial(n_c, p[:, 0], size=(resamples, n_classes))
    with np.errstate(invalid="ignore", divide="ignore"):
        rest = np.where(p[:, 0] < 1, p[:, 1] / np.where(p[:, 0] < 1, 1 - p[:, 0], 1), 0.0)
    n_minus = rng.binomial(n_c - n_plus, np.clip(rest, 0, 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        samples = (n_plus - n_minus) / n_c  # (R, C); NaN for empty classes
    low, high = _quantiles(samples, level)
    return Intervals(np.asarray(est, np.float64), low, high, level, n_c.astype(np.int64))


# ------------------------------------------------------------------------- continuous statistics
def _resampled_sums(columns: np.ndarray, resamples: int, seed, max_block: int = 2_000_000) -> np.ndarray:
    """(R, c) column sums over examples resampled with replacement (one index draw per resample, shared by columns)."""
    columns = np.asarray(columns, np.float64)
    n = len(columns)
    rng = np.random.default_rng(seed)
    out = np.empty((resamples, columns.shape[1]))
    rows = max(1, max_block // max(n, 1))
    offsets = None
    for start in range(0, resamples, rows):
        stop = min(resamples, start + rows)
        idx = rng.integers(0, n, size=(stop - start, n), dtype=np.int64 if n * resamples > 2**31 else np.int32)
        if offsets is None or len(offsets) != stop - start:
            offsets = (np.arange(stop - start) * n)[:, None]
        # draw counts per example (bincount), then one matrix product: cheaper than gathering c columns
        counts = np.bincount((idx + offsets).ravel(), minlength=(stop - start) * n).reshape(stop - start, n)
        out[start:stop] = counts.astype(np.float64) @ columns  # float matmul uses BLAS; int64 does not
    return out


def paired_statistic(
    columns,
    statistic,
    resamples: int = RESAMPLES,
    level: float = LEVEL,
    seed: int = 0,
) -> Interval:
    """Percentile interval of ``statistic(column sums)`` with the examples (rows) resampled jointly.

    ``columns`` is (n, c) per-example values; ``statistic`` maps an (..., c) array of column sums to
    (...,) values, e.g. a difference of two conditional means ``s[..., 0] / s[..., 1] - s[..., 2] / s[..., 3]``.
    Index resampling (O(R * n)), for statistics the sufficient-count shortcut does not cover.
    """
    columns = np.asarray(columns, np.float64)
    if columns.ndim != 2 or not len(columns):
        raise ValueError(f"paired_statistic needs (n, c) values with n > 0; got {columns.shape}.")
    with np.errstate(invalid="ignore", divide="ignore"):
        est = float(statistic(columns.sum(axis=0)))
        samples = np.asarray(statistic(_resampled_sums(columns, resamples, seed)), np.float64)
    low, high = _quantiles(samples[:, None], level)
    return Interval(est, float(low[0]), float(high[0]), level, len(columns))


def resampled_sums(columns, resamples: int = RESAMPLES, seed=0) -> np.ndarray:
    """(R, c) column sums of per-example ``columns`` (n, c) over the example bootstrap (index resampling).

    The resamples depend only on ``seed``, ``n`` and ``resamples``, so several calls with the same seed on
    the same examples (e.g. column chunks of a large matrix) are one joint resample: statistics built from
    their sums are paired. Memory is bounded by the block size of the index draws, not by R * n.
    """
    columns = np.asarray(columns, np.float64)
    if columns.ndim != 2 or not len(columns):
        raise ValueError(f"resampled_sums needs (n, c) values with n > 0; got {columns.shape}.")
    return _resampled_sums(columns, resamples, seed)


def percentile_interval(estimate: float, samples, n: int, level: float = LEVEL) -> Interval:
    """An ``Interval`` from a point estimate and its (R,) bootstrap samples (NaN samples ignored)."""
    low, high = _quantiles(np.asarray(samples, np.float64)[:, None], level)
    return Interval(float(estimate), float(low[0]), float(high[0]), level, int(n))


def mean_difference(
    values_a,
    values_b,
    paired: bool = True,
    resamples: int = RESAMPLES,
    level: float = LEVEL,
    seed: int = 0,
) -> Interval:
    """mean(a) - mean(b) for per-example values (e.g. margins, or 0/1 indicators on two *different* sets).

    ``paired=True``: a and b are measured on the same examples (resampled together). ``paired=False``:
    two independent samples, each resampled on its own (``n`` is then the smaller sample size).
    """
    a, b = np.asarray(values_a, np.float64), np.asarray(values_b, np.float64)
    if paired:
        if a.shape != b.shape:
            raise ValueError(f"Paired values need the same examples: {a.shape} vs {b.shape}.")
        return paired_statistic((a - b)[:, None], lambda s: s[..., 0] / len(a), resamples, level, seed)
    if not len(a) or not len(b):
        raise ValueError("mean_difference needs at least one value on each side.")
    if np.asarray(values_a).dtype == bool and np.asarray(values_b).dtype == bool:  # 0/1 data: binomial shortcut, O(R)
        sa = _resampled_mean(np.asarray(values_a), resamples, [seed, 0])
        sb = _resampled_mean(np.asarray(values_b), resamples, [seed, 1])
        low, high = _quantiles((sa - sb)[:, None], level)
        return Interval(float(a.mean() - b.mean()), float(low[0]), float(high[0]), level, int(min(len(a), len(b))))
    sa = _resampled_sums(a[:, None], resamples, [seed, 0])[:, 0] / len(a)
    sb = _resampled_sums(b[:, None], resamples, [seed, 1])[:, 0] / len(b)
    low, high = _quantiles((sa - sb)[:, None], level)
    return Interval(float(a.mean() - b.mean()), float(low[0]), float(high[0]), level, int(min(len(a), len(b))))


# ------------------------------------------------------------------------------------------ McNemar
def discordant_counts(correct_a, correct_b) -> tuple[np.ndarray, np.ndarray]:
    """(only A right, only B right) per row of the (n,) or (k, n) inputs."""
    a, b = np.broadcast_arrays(np.asarray(correct_a, bool), np.asarray(correct_b, bool))
    return np.count_nonzero(a & ~b, axis=-1), np.count_nonzero(~a & b, axis=-1)


def mcnemar_exact(correct_a, correct_b):
    """Two-sided exact McNemar p-value: a binomial(b + c, 1/2) test on the discordant pairs.

    Same as ``statsmodels.stats.contingency_tables.mcnemar(table, exact=True).pvalue``; 1.0 when the two
    models never disagree on correctness. Returns a float for (n,) inputs, an array for (k, n).
    """
    return mcnemar_from_counts(*discordant_counts(correct_a, correct_b))


def mcnemar_from_counts(only_a, only_b):
    """Exact McNemar p-value from the discordant counts (arrays broadcast; float for scalars)."""
    only_a, only_b = np.asarray(only_a), np.asarray(only_b)
    total = only_a + only_b
    p = np.minimum(1.0, 2 * stats.binom.cdf(np.minimum(only_a, only_b), total, 0.5))
    p = np.where(total == 0, 1.0, p)
    return float(p) if np.ndim(p) == 0 else p


# ------------------------------------------------------------------------------ effective robustness
def _resampled_y(correct_y, k: int, resamples: int, seed: int, offset: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Point estimate (k,), resampled accuracy (k, R) and n for y given as a stack or a dict of shifts."""
    if isinstance(correct_y, Mapping):
        names = _check_sets(correct_y)
        stacks = [np.broadcast_to(_as_stack(correct_y[s])[0], (k, np.shape(correct_y[s])[-1])) for s in names]
        est = np.mean([st.mean(axis=1) for st in stacks], axis=0)
        samples = np.array(
            [np.mean([_resampled_mean(st[r], resamples, [seed, offset + j]) for j, st in enumerate(stacks)], axis=0) for r in range(k)]
        )
        return est, samples, sum(st.shape[1] for st in stacks)
    st = np.broadcast_to(_as_stack(correct_y)[0], (k, np.shape(correct_y)[-1]))
    return st.mean(axis=1), np.array([_resampled_mean(st[r], resamples, [seed, offset]) for r in range(k)]), st.shape[1]


def effective_robustness_interval(
    correct_x,
    correct_y,
    slope: float,
    intercept: float,
    transform: str = "logit",
    resamples: int = RESAMPLES,
    level: float = LEVEL,
    seed: int = 0,
) -> Interval | Intervals:
    """rho = acc_y - T^-1(slope * T(acc_x) + intercept) with the *examples* resampled (fit held fixed).

    Args:
        correct_x: ID (x-axis) correctness, (n_x,) or (k, n_x), e.g. ImageNet val or its class subset.
        correct_y: OOD correctness, (n_y,) / (k, n_y), or a dict shift -> correctness for the OOD avg
            (resampled within each shift, then averaged).
        slope, intercept, transform: the baseline line (``metrics.fit_baseline``).

    x and y are different test sets, so they are resampled independently. Fractions (x100 for points).
    """
    x, single = _as_stack(correct_x)
    k = len(x)
    if isinstance(correct_y, Mapping):
        k = max(k, *(len(_as_stack(v)[0]) for v in correct_y.values()))
        single = single and all(np.ndim(v) == 1 for v in correct_y.values())
    else:
        k = max(k, len(_as_stack(correct_y)[0]))
        single = single and np.ndim(correct_y) == 1
    x = np.broadcast_to(x, (k, x.shape[1]))
    y_est, y_samples, n_y = _resampled_y(correct_y, k, resamples, seed, offset=1)
    x_est = x.mean(axis=1)
    x_samples = np.array([_resampled_mean(x[r], resamples, [seed, 0]) for r in range(k)])
    est = metrics.effective_robustness(x_est, y_est, slope, intercept, transform)
    samples = metrics.effective_robustness(x_samples, y_samples, slope, intercept, transform)
    return _pack(est, samples, level, [n_y] * k, single)


def _paired_means(a: np.ndarray, b: np.ndarray, resamples: int, seed) -> np.ndarray:
    """(R, 2) resampled (acc_a, acc_b) on the same examples: multinomial counts of the 4 joint outcomes."""
    n = len(a)
    both = int(np.count_nonzero(a & b))
    only_a = int(np.count_nonzero(a & ~b))
    only_b = int(np.count_nonzero(~a & b))
    p = np.array([both, only_a, only_b, n - both - only_a - only_b], np.float64) / n
    c = np.random.default_rng(seed).multinomial(n, p, size=resamples)
    return np.stack([c[:, 0] + c[:, 1], c[:, 0] + c[:, 2]], axis=1) / n


def effective_robustness_difference(
    correct_x_a,
    correct_x_b,
    correct_y_a,
    correct_y_b,
    slope: float,
    intercept: float,
    transform: str = "logit",
    resamples: int = RESAMPLES,
    level: float = LEVEL,
    seed: int = 0,
) -> Interval:
    """rho(A) - rho(B) for two models scored on the same x and y examples (paired; fit held fixed).

    ``correct_y_*`` are (n_y,) arrays or dicts shift -> (n_s,) for the OOD avg (resampled within shifts).
    """
    xa, xb = np.asarray(correct_x_a, bool), np.asarray(correct_x_b, bool)
    x_s = _paired_means(xa, xb, resamples, [seed, 0])
    if isinstance(correct_y_a, Mapping):
        names = _check_sets(correct_y_a, correct_y_b)
        ys = [
            _paired_means(np.asarray(correct_y_a[s], bool), np.asarray(correct_y_b[s], bool), resamples, [seed, 1 + j])
            for j, s in enumerate(names)
        ]
        y_s = np.mean(ys, axis=0)
        y_est = np.mean([[np.mean(correct_y_a[s]), np.mean(correct_y_b[s])] for s in names], axis=0)
        n = sum(len(correct_y_a[s]) for s in names)
    else:
        ya, yb = np.asarray(correct_y_a, bool), np.asarray(correct_y_b, bool)
        y_s = _paired_means(ya, yb, resamples, [seed, 1])
        y_est, n = np.array([ya.mean(), yb.mean()]), len(ya)
    x_est = np.array([xa.mean(), xb.mean()])

    def rho_diff(x, y):
        rho = metrics.effective_robustness(x, y, slope, intercept, transform)
        return rho[..., 0] - rho[..., 1]

    samples = rho_diff(x_s, y_s)
    low, high = _quantiles(samples[:, None], level)
    return Interval(float(rho_diff(x_est, y_est)), float(low[0]), float(high[0]), level, int(n))


def effective_robustness_fit_band(
    acc_x,
    acc_y,
    baseline_x,
    baseline_y,
    transform: str = "logit",
    resamples: int = RESAMPLES,
    level: float = LEVEL,
    seed: int = 0,
) -> Interval | Intervals:
    """rho's interval from resampling the *baseline models* (refit the line each time; accuracies fixed).

    Args:
        acc_x, acc_y: the model's accuracies (fractions), scalars or (k,) arrays.
        baseline_x, baseline_y: the standard models' accuracies the line is fitted on.

    ``n`` of the result is the number of baseline models. Resamples whose models all share one x (the
    line is undefined) are dropped.
    """
    single = np.ndim(acc_x) == 0 and np.ndim(acc_y) == 0
    acc_x, acc_y = np.broadcast_arrays(np.atleast_1d(np.asarray(acc_x, np.float64)), np.atleast_1d(np.asarray(acc_y, np.float64)))
    tx = metrics.transform(np.asarray(baseline_x, np.float64), transform)
    ty = metrics.transform(np.asarray(baseline_y, np.float64), transform)
    m = len(tx)
    slope, intercept = metrics.fit_baseline(baseline_x, baseline_y, transform)
    pick = np.random.default_rng(seed).integers(0, m, size=(resamples, m))
    px, py = tx[pick], ty[pick]
    mx, my = px.mean(axis=1, keepdims=True), py.mean(axis=1, keepdims=True)
    var = ((px - mx) ** 2).sum(axis=1)
    ok = var > 1e-12
    slopes = np.where(ok, ((px - mx) * (py - my)).sum(axis=1) / np.where(ok, var, 1), np.nan)
    intercepts = my[:, 0] - slopes * mx[:, 0]
    est = metrics.effective_robustness(acc_x, acc_y, slope, intercept, transform)
    pred = metrics.inverse_transform(slopes[:, None] * metrics.transform(acc_x, transform)[None] + intercepts[:, None], transform)
    samples = acc_y[None] - pred  # (R, k); NaN rows for degenerate resamples
    return _pack(est, samples.T, level, [m] * len(acc_x), single)


# ------------------------------------------------------------------------------------------ words
def compare(
    interval: Interval, a: str, b: str, unit: str = "points", scale: float = 100.0, digits: int = 1, p_value: float | None = None
) -> str:
    """One sentence comparing A with B whose direction is decided by the interval.

    ``interval`` is acc(A) - acc(B) as a fraction; it is shown x``scale`` in ``unit``. If the interval
    includes 0 (or McNemar's ``p_value``, if given, is not significant) the sentence says the two are not
    distinguishable at this n instead of naming a direction.
    """
    s = interval.scaled(scale)
    ci = f"{100 * interval.level:g}% CI {s.low:+.{digits}f} to {s.high:+.{digits}f}"
    sign = direction(interval, p_value)
    if sign > 0:
        return f"{a} is higher than {b} by {s.estimate:.{digits}f} {unit} ({ci})"
    if sign < 0:
        return f"{a} is lower than {b} by {-s.estimate:.{digits}f} {unit} ({ci})"
    return f"{a} and {b} are not distinguishable at n = {interval.n:,} (difference {s.estimate:+.{digits}f} {unit}, {ci})"


def direction(interval: Interval, p_value: float | None = None) -> int:
    """+1 / -1 / 0 like ``Interval.sign``, but 0 also when McNemar's p (if given) is not below 1 - level.

    At a few dozen examples the percentile bootstrap can exclude 0 while the exact test does not; a
    direction is then only claimed when both agree.
    """
    if p_value is not None and np.isfinite(p_value) and p_value >= 1 - interval.level:
        return 0
    return interval.sign


def verdict(interval: Interval, higher: str = "higher", lower: str = "lower", p_value: float | None = None) -> str:
    """Short label for a table cell: ``higher`` / ``lower`` / ``not distinguishable at n = N``."""
    sign = direction(interval, p_value)
    if sign > 0:
        return higher
    if sign < 0:
        return lower
    return f"not distinguishable at n = {interval.n:,}"


__all__ = [
    "LEVEL",
    "RESAMPLES",
    "Interval",
    "Intervals",
    "accuracy_interval",
    "accuracy_interval_ood",
    "bootstrap_weights",
    "compare",
    "direction",
    "discordant_counts",
    "effective_robustness_difference",
    "effective_robustness_fit_band",
    "effective_robustness_interval",
    "mcnemar_exact",
    "mcnemar_from_counts",
    "mean_difference",
    "paired_statistic",
    "paired_difference",
    "paired_difference_ood",
    "per_class_difference",
    "percentile_interval",
    "resampled_sums",
    "verdict",
]
