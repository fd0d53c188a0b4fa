"""Every formula against an independent route (scipy, sklearn, statsmodels, hand-made cases)."""

import numpy as np
import pytest
from scipy import stats

from robust_core import metrics


@pytest.mark.parametrize("kind", ["logit", "probit", "linear"])
def test_transforms_roundtrip_every_branch(kind):
    acc = np.array([0.01, 0.3, 0.5, 0.9, 0.999])
    back = metrics.inverse_transform(metrics.transform(acc, kind), kind)
    np.testing.assert_allclose(back, acc, rtol=1e-12)
    expected = {"logit": np.log(acc / (1 - acc)), "probit": stats.norm.ppf(acc), "linear": acc}[kind]
    np.testing.assert_allclose(metrics.transform(acc, kind), expected, rtol=1e-12)
    assert np.isfinite(metrics.transform([0.0, 1.0], kind)).all()  # clipped, not infinite
    with pytest.raises(ValueError, match="Unknown transform"):
        metrics.transform(acc, "logti")


@pytest.mark.parametrize("kind", ["logit", "probit", "linear"])
def test_fit_matches_linregress_on_transformed_values(kind):
    rng = np.random.default_rng(0)
    x = rng.uniform(0.4, 0.9, 40)
    y = (
        metrics.inverse_transform(0.9 * metrics.transform(x, kind) - 0.4 + rng.normal(0, 0.05, 40), kind)
        if kind != "linear"
        else 0.8 * x - 0.1 + rng.normal(0, 0.01, 40)
    )
    slope, intercept = metrics.fit_baseline(x, y, kind)
    ref = stats.linregress(metrics.transform(x, kind), metrics.transform(y, kind))
    assert slope == pytest.approx(ref.slope, rel=1e-10)
    assert intercept == pytest.approx(ref.intercept, rel=1e-10, abs=1e-12)
    with pytest.raises(ValueError, match="at least two"):
        metrics.fit_baseline([0.5, 0.5], [0.2, 0.3], kind)


def test_effective_robustness_in_accuracy_points():
    # a model exactly on the line has rho 0; a model above by a known amount has that rho
    slope, intercept = 1.1, -0.7
    x = 0.76
    on_line = metrics.inverse_transform(slope * metrics.transform(x) + intercept)
    assert metrics.effective_robustness(x, on_line, slope, intercept) == pytest.approx(0.0, abs=1e-15)
    assert metrics.effective_robustness(x, on_line + 0.05, slope, intercept) == pytest.approx(0.05)
    # hand computation: logit line through (0.5 -> 0.5) with slope 1, model at (0.5, 0.6): rho = 0.1
    assert metrics.effective_robustness(0.5, 0.6, 1.0, 0.0) == pytest.approx(0.1)


def test_clopper_pearson_matches_statsmodels_and_beta():
    from statsmodels.stats.proportion import proportion_confint

    for k, n in [(0, 50), (1, 50), (37, 50), (50, 50), (7321, 10000)]:
        lo, hi = metrics.clopper_pearson(k, n, 0.995)
        ref_lo, ref_hi = proportion_confint(k, n, alpha=0.005, method="beta")
        assert float(lo) == pytest.approx(ref_lo, abs=1e-12)
        assert float(hi) == pytest.approx(ref_hi, abs=1e-12)
    lo, hi = metrics.clopper_pearson(np.array([5, 9]), np.array([10, 10]), 0.95)
    assert lo[0] == pytest.approx(stats.beta.ppf(0.025, 5, 6)) and hi[1] == pytest.approx(stats.beta.ppf(0.975, 10, 1))
    with pytest.raises(ValueError):
        metrics.clopper_pearson(11, 10)


def test_bootstrap_band_contains_the_fit():
    rng = np.random.default_rng(1)
    x = rng.uniform(0.5, 0.9, 30)
    y = metrics.inverse_transform(metrics.transform(x) - 0.8 + rng.normal(0, 0.1, 30))
    grid = np.linspace(0.55, 0.85, 7)
    lo, hi = metrics.bootstrap_fit_band(x, y, grid, n_boot=400)
    slope, intercept = metrics.fit_baseline(x, y)
    line = metrics.baseline_prediction(grid, slope, intercept)
    assert np.all(lo <= line + 1e-9) and np.all(line <= hi + 1e-9) and np.all(hi - lo > 0)


def test_prediction_diversity_and_kappa():
    from sklearn.metrics import cohen_kappa_score

    rng = np.random.default_rng(2)
    labels = rng.integers(0, 5, 500)
    f = np.where(rng.random(500) < 0.7, labels, rng.integers(0, 5, 500))
    g = np.where(rng.random(500) < 0.6, labels, rng.integers(0, 5, 500))
    expected_pd = np.mean((f == labels) != (g == labels))
    assert metrics.prediction_diversity(f, g, labels) == pytest.approx(expected_pd)
    assert metrics.cohen_kappa_complement(f, g, 5) == pytest.approx(1 - cohen_kappa_score(f, g))
    assert metrics.prediction_diversity([0, 1, 2], [0, 1, 2], [0, 1, 1]) == 0.0
    assert metrics.prediction_diversity([0, 1], [1, 1], [0, 0]) == 0.5  # one-right, both-wrong


def test_mean_kl_against_scipy_entropy():
    rng = np.random.default_rng(3)
    p, q = rng.normal(size=(20, 6)), rng.normal(size=(20, 6))
    from scipy.special import softmax

    expected = np.mean([stats.entropy(softmax(a), softmax(b)) for a, b in zip(p, q)])
    assert metrics.mean_kl(p, q) == pytest.approx(expected, rel=1e-10)
    assert metrics.mean_kl(p, p) == pytest.approx(0.0, abs=1e-12)


def test_linear_cka_against_direct_hsic_formula():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(100, 8))
    y = x @ rng.normal(size=(8, 5)) + 0.5 * rng.normal(size=(100, 5))
    n = len(x)
    h = np.eye(n) - np.ones((n, n)) / n
    kx, ky = h @ (x @ x.T) @ h, h @ (y @ y.T) @ h
    expected = np.trace(kx @ ky) / np.sqrt(np.trace(kx @ kx) * np.trace(ky @ ky))
    assert metrics.linear_cka(x, y) == pytest.approx(expected, rel=1e-10)
    assert metrics.linear_cka(x, 3 * x @ np.linalg.qr(rng.normal(size=(8, 8)))[0]) == pytest.approx(1.0)  # invariant to rotation+scale
    assert metrics.cka_complement(x, x) == pytest.approx(0.0, abs=1e-12)


def test_margins_and_overrides():
    logits = np.array([[3.0, 1.0, 2.5], [0.0, 5.0, -1.0]])
    top = -np.sort(-logits, axis=1)[:, :3]  # the store's sorted top-k values
    np.testing.assert_allclose(metrics.margins_from_top(top), [0.5, 5.0])
    np.testing.assert_allclose(metrics.margins_from_top(np.array([[3.0, 2.5, 1.0]])), [0.5])
    zs = np.array([0, 1, 2, 3, 4, 5])
    ft = np.array([0, 2, 3, 4, 5, 6])  # disagree on 5 of 6
    ens = np.array([0, 1, 3, 9, 4, 6])  # sides with zs twice (1, 4), with ft twice (3, 6), neither once
    r = metrics.override_rates(zs, ft, ens)
    assert r["disagree"] == pytest.approx(5 / 6)
    assert r["zeroshot_overrides"] == pytest.approx(2 / 5) and r["is_overridden"] == pytest.approx(2 / 5)
    assert r["neither"] == pytest.approx(1 / 5)


def test_per_class_and_selection():
    labels = np.array([0, 0, 1, 1, 2])
    a = np.array([0, 1, 1, 1, 0])
    b = np.array([0, 0, 0, 1, 2])
    np.testing.assert_allclose(metrics.per_class_accuracy(a, labels, 4)[:3], [0.5, 1.0, 0.0])
    assert np.isnan(metrics.per_class_accuracy(a, labels, 4)[3])
    np.testing.assert_allclose(metrics.per_class_accuracy(b, labels, 3), [1.0, 0.5, 1.0])
    assert metrics.select_alpha([0, 0.5, 1], [0.7, 0.8, 0.8]) == 0.5  # ties go to the smaller alpha


def test_aline_recovers_ood_accuracy_on_synthetic_models():
    """Models whose ID and OOD errors are generated from one latent ability per model lie on the line."""
    rng = np.random.default_rng(5)
    n_models, n_id, n_ood = 12, 4000, 4000
    abilities = np.linspace(-0.5, 2.0, n_models)
    slope, intercept = 0.8, -0.6
    id_labels = rng.integers(0, 10, n_id)
    ood_labels = rng.integers(0, 10, n_ood)
    u_id, u_ood = rng.random(n_id), rng.random(n_ood)  # shared difficulty -> agreement structure
    id_preds, ood_preds, true_ood = [], [], []
    for a in abilities:
        p_id = stats.norm.cdf(a)
        p_ood = stats.norm.cdf(slope * a + intercept)
        wrong_id = rng.integers(1, 10, n_id)
        wrong_ood = rng.integers(1, 10, n_ood)
        id_preds.append(np.where(u_id < p_id, id_labels, (id_labels + wrong_id) % 10))
        pred = np.where(u_ood < p_ood, ood_labels, (ood_labels + wrong_ood) % 10)
        ood_preds.append(pred)
        true_ood.append(np.mean(pred == ood_labels))
    for method in ("aline-s", "aline-d"):
        est = metrics.aline_estimate(np.array(id_preds), np.array(ood_preds), id_labels, method)
        assert np.max(np.abs(est - np.array(true_ood))) < 0.06, method
    with pytest.raises(ValueError, match="at least 3"):
        metrics.aline_estimate(np.array(id_preds[:2]), np.array(ood_preds[:2]), id_labels)
