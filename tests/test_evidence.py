"""Paired evidence (robust_core.evidence) against independent computations.

scipy.stats.bootstrap with paired resampling for differences, statsmodels' McNemar, explicit index
resampling for the OOD average and the per-class strata, hand-made cases, and a synthetic store whose
models lie on its own baseline line (rho = 0 inside its interval).
"""

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar

from robust_core import evidence, metrics
from robust_core.store import StoreWriter


def _pair(n, p_a=0.75, p_b=0.7, agree=0.8, seed=0):
    """Two correlated correctness vectors on the same n examples."""
    rng = np.random.default_rng(seed)
    a = rng.random(n) < p_a
    b = np.where(rng.random(n) < agree, a, rng.random(n) < p_b)
    return a, b


def _scipy_paired(a, b, level=0.95, seed=1):
    res = stats.bootstrap(
        (a.astype(float), b.astype(float)),
        lambda x, y, axis: x.mean(axis) - y.mean(axis),
        paired=True,
        vectorized=True,
        n_resamples=4000,
        confidence_level=level,
        method="percentile",
        random_state=seed,
    )
    return res.confidence_interval


# --------------------------------------------------------------------------------- weights
def test_bootstrap_weights_are_multinomial_counts_and_seeded():
    w = evidence.bootstrap_weights(37, resamples=300, seed=3)
    assert w.shape == (300, 37)
    assert np.all(w.sum(axis=1) == 37)
    assert np.array_equal(w, evidence.bootstrap_weights(37, resamples=300, seed=3))
    assert not np.array_equal(w, evidence.bootstrap_weights(37, resamples=300, seed=4))
    # each example is drawn once per resample on average
    assert w.mean() == pytest.approx(1.0)


# ---------------------------------------------------------------------- paired differences
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_paired_difference_matches_scipy_paired_bootstrap(seed):
    a, b = _pair(500, seed=seed)
    got = evidence.paired_difference(a, b)
    ref = _scipy_paired(a, b)
    assert got.estimate == pytest.approx(a.mean() - b.mean())
    assert got.low == pytest.approx(ref.low, abs=0.01)
    assert got.high == pytest.approx(ref.high, abs=0.01)
    assert got.n == 500 and got.level == 0.95


def test_paired_interval_is_narrower_than_independent_intervals():
    a, b = _pair(500, agree=0.9)
    paired = evidence.paired_difference(a, b)
    ia, ib = evidence.accuracy_interval(a), evidence.accuracy_interval(b)
    # the independent (unpaired) spread of a difference is roughly the sum of the half-widths
    assert (paired.high - paired.low) < 0.6 * ((ia.high - ia.low) + (ib.high - ib.low))


def test_explicit_weights_agree_with_the_multinomial_shortcut():
    a, b = _pair(400, seed=5)
    w = evidence.bootstrap_weights(400, resamples=4000, seed=9)
    joint = evidence.paired_difference(a, b, weights=w)
    fast = evidence.paired_difference(a, b, resamples=4000)
    assert joint.estimate == fast.estimate
    assert joint.low == pytest.approx(fast.low, abs=0.01)
    assert joint.high == pytest.approx(fast.high, abs=0.01)


def test_stack_rows_equal_single_calls_and_broadcast_a_reference():
    rng = np.random.default_rng(0)
    ref = rng.random(300) < 0.6
    grid = np.stack([rng.random(300) < p for p in (0.5, 0.6, 0.7)])
    many = evidence.paired_difference(grid, ref)
    assert isinstance(many, evidence.Intervals) and len(many) == 3
    for row, interval in zip(grid, many):
        assert interval == evidence.paired_difference(row, ref)
    assert list(many.sign) == [iv.sign for iv in many]


def test_hand_made_cases():
    same = np.array([True, False, True, True])
    iv = evidence.paired_difference(same, same)
    assert (iv.estimate, iv.low, iv.high, iv.sign, iv.excludes_zero) == (0, 0, 0, 0, False)
    right, wrong = np.ones(50, bool), np.zeros(50, bool)
    iv = evidence.paired_difference(right, wrong)
    assert (iv.estimate, iv.low, iv.high, iv.sign) == (1, 1, 1, 1)
    assert evidence.paired_difference(wrong, right).sign == -1
    # 3 discordant pairs out of 1000 can not establish a direction
    a = np.zeros(1000, bool)
    a[:3] = True
    assert evidence.paired_difference(a, np.zeros(1000, bool)).low == 0.0
    with pytest.raises(ValueError, match="same examples"):
        evidence.paired_difference(np.ones(3, bool), np.ones(4, bool))


def test_interval_scaled_and_words():
    iv = evidence.Interval(0.031, 0.012, 0.050, 0.95, 224)
    assert iv.scaled(100).estimate == pytest.approx(3.1)
    assert "higher than" in evidence.compare(iv, "A", "B")
    flat = evidence.Interval(0.01, -0.01, 0.03, 0.95, 224)
    assert "not distinguishable at n = 224" in evidence.compare(flat, "A", "B")
    assert evidence.verdict(flat) == "not distinguishable at n = 224"
    neg = evidence.Interval(-0.02, -0.03, -0.01, 0.95, 5000)
    assert evidence.compare(neg, "A", "B").startswith("A is lower than B by 2.0 points")


# --------------------------------------------------------------------------------- OOD avg
def _explicit_ood(a_by_set, b_by_set, resamples=3000, seed=11):
    """Index resampling within each shift, per-shift differences averaged."""
    rng = np.random.default_rng(seed)
    per_shift = []
    for s in a_by_set:
        a, b = a_by_set[s].astype(float), b_by_set[s].astype(float)
        idx = rng.integers(0, len(a), size=(resamples, len(a)))
        per_shift.append(a[idx].mean(1) - b[idx].mean(1))
    return np.quantile(np.mean(per_shift, axis=0), [0.025, 0.975])


def test_paired_difference_ood_is_the_unweighted_mean_resampled_within_shifts():
    a_by, b_by = {}, {}
    for j, (n, pa, pb) in enumerate([(200, 0.6, 0.5), (800, 0.4, 0.45), (500, 0.7, 0.6)]):
        a_by[f"s{j}"], b_by[f"s{j}"] = _pair(n, pa, pb, agree=0.7, seed=j)
    got = evidence.paired_difference_ood(a_by, b_by)
    expected = np.mean([a_by[s].mean() - b_by[s].mean() for s in a_by])
    assert got.estimate == pytest.approx(expected)
    low, high = _explicit_ood(a_by, b_by)
    assert got.low == pytest.approx(low, abs=0.01)
    assert got.high == pytest.approx(high, abs=0.01)
    assert got.n == 1500
    # a stack per shift gives one interval per row
    stacked = evidence.paired_difference_ood({s: np.stack([a_by[s], b_by[s]]) for s in a_by}, b_by)
    assert len(stacked) == 2 and stacked[1].estimate == 0 and stacked[0] == got


def test_accuracy_intervals_match_scipy():
    a, _ = _pair(500, seed=3)
    got = evidence.accuracy_interval(a)
    ref = stats.bootstrap((a.astype(float),), np.mean, n_resamples=4000, method="percentile", random_state=0).confidence_interval
    assert got.estimate == pytest.approx(a.mean())
    assert got.low == pytest.approx(ref.low, abs=0.01) and got.high == pytest.approx(ref.high, abs=0.01)
    by_set = {"x": a, "y": _pair(300, seed=4)[0]}
    ood = evidence.accuracy_interval_ood(by_set)
    low, high = _explicit_ood(by_set, {k: np.zeros_like(v) for k, v in by_set.items()})
    assert ood.estimate == pytest.approx(np.mean([v.mean() for v in by_set.values()]))
    assert ood.low == pytest.approx(low, abs=0.01) and ood.high == pytest.approx(high, abs=0.01)


# ------------------------------------------------------------------------------- per class
def test_per_class_difference_is_stratified_and_matches_per_class_calls():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 250)  # class 3 has no examples
    a, b = _pair(250, seed=7)
    got = evidence.per_class_difference(a, b, labels, n_classes=4)
    assert len(got) == 4 and got.n[3] == 0 and np.isnan(got.estimate[3]) and np.isnan(got.low[3])
    delta = [a[labels == c].mean() - b[labels == c].mean() for c in range(3)]  # independent: class by class
    assert np.allclose(got.estimate[:3], delta)
    for c in range(3):
        ref = _scipy_paired(a[labels == c], b[labels == c])
        assert got.low[c] == pytest.approx(ref.low, abs=0.02)
        assert got.high[c] == pytest.approx(ref.high, abs=0.02)


# ---------------------------------------------------------------------------------- McNemar
def test_mcnemar_matches_statsmodels():
    rng = np.random.default_rng(0)
    for trial in range(30):
        n = int(rng.integers(5, 400))
        a, b = _pair(n, p_a=rng.random(), p_b=rng.random(), agree=rng.random(), seed=trial)
        table = [[np.sum(a & b), np.sum(a & ~b)], [np.sum(~a & b), np.sum(~a & ~b)]]
        assert evidence.mcnemar_exact(a, b) == pytest.approx(mcnemar(table, exact=True).pvalue, rel=1e-10, abs=1e-300)


def test_mcnemar_hand_made_and_stacks():
    a = np.array([True] * 5 + [False] * 5)
    b = np.zeros(10, bool)
    assert evidence.mcnemar_exact(a, b) == pytest.approx(2 * 0.5**5)
    assert evidence.mcnemar_exact(a, a) == 1.0
    stacked = evidence.mcnemar_exact(np.stack([a, b]), b)
    assert stacked.shape == (2,) and stacked[1] == 1.0


# ------------------------------------------------------------------- effective robustness
SLOPE, INTERCEPT = 0.9, -0.6  # logit-space baseline line used by the known-answer tests


def _on_line(x):
    return float(metrics.baseline_prediction(x, SLOPE, INTERCEPT))


def _correct(n, acc, seed):
    out = np.zeros(n, bool)
    out[: round(acc * n)] = True
    return np.random.default_rng(seed).permutation(out)


def test_rho_interval_examples_resampled_against_explicit_resampling():
    cx, cy = _correct(1000, 0.7, 0), _correct(600, 0.5, 1)
    got = evidence.effective_robustness_interval(cx, cy, SLOPE, INTERCEPT)
    assert got.estimate == pytest.approx(metrics.effective_robustness(0.7, 0.5, SLOPE, INTERCEPT))
    rng = np.random.default_rng(0)
    xs = cx[rng.integers(0, 1000, (4000, 1000))].mean(1)
    ys = cy[rng.integers(0, 600, (4000, 600))].mean(1)
    low, high = np.quantile(metrics.effective_robustness(xs, ys, SLOPE, INTERCEPT), [0.025, 0.975])
    assert got.low == pytest.approx(low, abs=0.01) and got.high == pytest.approx(high, abs=0.01)
    # a dict of shifts is the OOD average
    ood = evidence.effective_robustness_interval(cx, {"a": cy, "b": _correct(400, 0.3, 2)}, SLOPE, INTERCEPT)
    assert ood.estimate == pytest.approx(metrics.effective_robustness(0.7, 0.4, SLOPE, INTERCEPT))
    assert ood.n == 1000


def test_rho_fit_band_matches_metrics_bootstrap_fit_band():
    rng = np.random.default_rng(1)
    bx = rng.uniform(0.4, 0.9, 12)
    by = metrics.baseline_prediction(bx, SLOPE, INTERCEPT) + rng.normal(0, 0.02, 12)
    got = evidence.effective_robustness_fit_band(0.75, 0.55, bx, by, resamples=1000, seed=4)
    slope, intercept = metrics.fit_baseline(bx, by)
    assert got.estimate == pytest.approx(metrics.effective_robustness(0.75, 0.55, slope, intercept))
    band_lo, band_hi = metrics.bootstrap_fit_band(bx, by, [0.75], n_boot=1000, seed=4)
    # rho = y - line, so rho's band is y minus the line's band (same resampled models)
    assert got.low == pytest.approx(0.55 - band_hi[0], abs=1e-9)
    assert got.high == pytest.approx(0.55 - band_lo[0], abs=1e-9)
    assert got.n == 12
    many = evidence.effective_robustness_fit_band([0.6, 0.75], [0.4, 0.55], bx, by, resamples=1000, seed=4)
    assert many[1] == got


def _onehot_logits(labels, correct, n_classes):
    pred = np.where(correct, labels, (labels + 1) % n_classes)
    out = np.zeros((len(labels), n_classes), np.float32)
    out[np.arange(len(labels)), pred] = 1.0
    return out


def test_store_whose_models_lie_on_its_baseline_line_has_rho_zero_inside_the_interval(tmp_path):
    """Known answer: standard models and both endpoints on T(y) = 0.9 T(x) - 0.6 give rho ~ 0."""
    n_classes, n_id, n_ood = 10, 2000, 2000
    rng = np.random.default_rng(0)
    writer = StoreWriter(tmp_path / "store", {"t": 1}, logits_dtype="float32")
    labels = {"id-test": rng.integers(0, n_classes, n_id), "shift": rng.integers(0, n_classes, n_ood)}
    for ds, y in labels.items():
        writer.write_labels(ds, y)
    baseline_x = [0.45, 0.55, 0.65, 0.75, 0.85]
    scatter = [0.02, -0.02, 0.0, 0.015, -0.015]  # standard models scatter around the line, as real ones do
    for j, (x, off) in enumerate(zip(baseline_x, scatter)):
        for ds, acc in (("id-test", x), ("shift", _on_line(x) + off)):
            writer.write_baseline(f"standard-{j}", ds, _onehot_logits(labels[ds], _correct(len(labels[ds]), acc, j), n_classes))
    endpoint_x = [0.6, 0.8]  # zero-shot and fine-tuned
    for ds in labels:
        grid = [
            _onehot_logits(labels[ds], _correct(len(labels[ds]), x if ds == "id-test" else _on_line(x), 10 + k), n_classes)
            for k, x in enumerate(endpoint_x)
        ]
        writer.write_logits("ft", ds, np.stack(grid))
    names = [f"c{k}" for k in range(n_classes)]
    store = writer.finalize(
        {
            "run": {"id": "id-test", "id_val": None, "shifts": ["shift"]},
            "datasets": {"id-test": {"classnames": names}, "shift": {"classnames": names}},
            "methods": {"ft": {"alphas": [0.0, 1.0]}},
            "baselines": {f"standard-{j}": {} for j in range(len(baseline_x))},
        }
    )
    # everything below goes through the Store's public API only
    correct = {(b, ds): np.asarray(store.baseline_logits(b, ds)).argmax(-1) == store.labels(ds) for b in store.baselines for ds in labels}
    bx = [correct[(b, "id-test")].mean() for b in store.baselines]
    by = [correct[(b, "shift")].mean() for b in store.baselines]
    slope, intercept = metrics.fit_baseline(bx, by)
    assert slope == pytest.approx(SLOPE, abs=0.1) and intercept == pytest.approx(INTERCEPT, abs=0.1)
    model_x = np.asarray(store.topk("ft", "id-test"))[..., 0] == store.labels("id-test")
    model_y = np.asarray(store.topk("ft", "shift"))[..., 0] == store.labels("shift")
    rho = evidence.effective_robustness_interval(model_x, model_y, slope, intercept)
    band = evidence.effective_robustness_fit_band(model_x.mean(1), model_y.mean(1), bx, by)
    for interval in (*rho, *band):
        assert abs(interval.estimate) < 0.01
        assert interval.low < 0 < interval.high and interval.sign == 0


# ------------------------------------------------------------------- continuous statistics
def test_mean_difference_paired_and_independent_match_scipy():
    rng = np.random.default_rng(2)
    a = rng.normal(1.0, 1.0, 400)
    b = a + rng.normal(0.1, 0.5, 400)
    got = evidence.mean_difference(a, b)
    ref = _scipy_paired(a, b)
    assert got.estimate == pytest.approx(a.mean() - b.mean())
    assert got.low == pytest.approx(ref.low, abs=0.01) and got.high == pytest.approx(ref.high, abs=0.01)
    c = rng.normal(0.8, 1.0, 250)
    ind = evidence.mean_difference(a, c, paired=False)
    ref = stats.bootstrap(
        (a, c), lambda x, y, axis: x.mean(axis) - y.mean(axis), n_resamples=4000, method="percentile", random_state=0
    ).confidence_interval
    assert ind.low == pytest.approx(ref.low, abs=0.02) and ind.high == pytest.approx(ref.high, abs=0.02)


def test_paired_statistic_conditional_means_against_a_loop():
    rng = np.random.default_rng(3)
    m_a, m_b = rng.gamma(2, 1, 300), rng.gamma(2, 1.1, 300)
    c_a, c_b = rng.random(300) < 0.7, rng.random(300) < 0.6
    cols = np.stack([m_a * c_a, c_a, m_b * c_b, c_b], axis=1)
    stat = lambda s: s[..., 0] / s[..., 1] - s[..., 2] / s[..., 3]  # noqa: E731
    got = evidence.paired_statistic(cols, stat, resamples=3000)
    assert got.estimate == pytest.approx(m_a[c_a].mean() - m_b[c_b].mean())
    loop = []
    r = np.random.default_rng(7)
    for _ in range(3000):
        i = r.integers(0, 300, 300)
        loop.append(m_a[i][c_a[i]].mean() - m_b[i][c_b[i]].mean())
    low, high = np.quantile(loop, [0.025, 0.975])
    assert got.low == pytest.approx(low, abs=0.05) and got.high == pytest.approx(high, abs=0.05)


def test_rho_difference_is_paired_and_matches_explicit_resampling():
    rng = np.random.default_rng(4)
    xa, ya = _correct(800, 0.7, 0), _correct(500, 0.5, 1)
    flip_x, flip_y = rng.random(800) < 0.1, rng.random(500) < 0.15
    xb, yb = xa ^ flip_x, ya ^ flip_y
    got = evidence.effective_robustness_difference(xa, xb, ya, yb, SLOPE, INTERCEPT)
    rho = lambda x, y: metrics.effective_robustness(x, y, SLOPE, INTERCEPT)  # noqa: E731
    assert got.estimate == pytest.approx(rho(xa.mean(), ya.mean()) - rho(xb.mean(), yb.mean()))
    ix, iy = rng.integers(0, 800, (4000, 800)), rng.integers(0, 500, (4000, 500))
    loop = rho(xa[ix].mean(1), ya[iy].mean(1)) - rho(xb[ix].mean(1), yb[iy].mean(1))
    low, high = np.quantile(loop, [0.025, 0.975])
    assert got.low == pytest.approx(low, abs=0.01) and got.high == pytest.approx(high, abs=0.01)
    same = evidence.effective_robustness_difference(xa, xa, {"s": ya}, {"s": ya}, SLOPE, INTERCEPT)
    assert (same.estimate, same.low, same.high) == (0, 0, 0)


def test_direction_needs_mcnemar_to_agree_when_given():
    iv = evidence.Interval(0.43, 0.14, 0.71, 0.95, 7)  # 3 of 7 discordant, all one way: bootstrap excludes 0
    assert iv.sign == 1
    p = evidence.mcnemar_from_counts(3, 0)
    assert p == pytest.approx(0.25)
    assert evidence.direction(iv, p) == 0 and evidence.verdict(iv, p_value=p) == "not distinguishable at n = 7"
    assert evidence.direction(iv, 0.01) == 1 and "higher" in evidence.compare(iv, "A", "B", p_value=0.01)


def test_independent_difference_of_proportions_bool_shortcut_matches_float_path():
    a, b = _correct(300, 0.3, 0), _correct(500, 0.2, 1)
    fast = evidence.mean_difference(a, b, paired=False)
    slow = evidence.mean_difference(a.astype(float), b.astype(float), paired=False)
    assert fast.estimate == pytest.approx(0.1)
    assert fast.low == pytest.approx(slow.low, abs=0.01) and fast.high == pytest.approx(slow.high, abs=0.01)


def test_a_card_and_its_sentence_round_one_difference_the_same_way():
    """The demo at FT alpha 0.9 has an OOD-avg difference of exactly -2.05 points: the card's delta and the
    sentence beside it must both come from the interval's estimate (they said -2.1 and 2.0 before)."""
    from pathlib import Path

    from robust_core.analysis import RunView
    from robust_core.store import open_store

    view = RunView(open_store(Path(__file__).resolve().parent.parent / "cache" / "demo"))
    for alpha in (0.3, 0.6, 0.9):
        i = view.alpha_point("ft", alpha).index
        cards = view.cards("ft", i)
        for key, sentence in zip(
            ("id_vs_zeroshot", "id_vs_finetuned", "ood_vs_zeroshot", "ood_vs_finetuned"), view.narrate_tradeoff("ft", i)
        ):
            shown = f"{abs(100 * cards[key]):.1f} points"
            assert shown in sentence or "not distinguishable" in sentence, (alpha, key, shown, sentence)
