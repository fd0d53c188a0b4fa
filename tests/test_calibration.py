"""Calibration: ECE against a hand count and a plain loop, temperature recovery, the top-k-store fallback, and
paired ECE intervals whose sign follows the data."""

import numpy as np
import pytest
from scipy.special import softmax

from robust_core import evidence, metrics
from robust_core.analysis import OOD_AVG, RunView
from robust_core.store import StoreWriter, _topk, atomic_save_npy

N_CLASSES = 10


# ------------------------------------------------------------------------------------ primitives
def _loop_ece(confidence, correct, n_bins=15):
    """ECE the textbook way: for each bin (m/M, (m+1)/M], |accuracy - mean confidence| weighted by its share."""
    total = 0.0
    for m in range(n_bins):
        lo, hi = m / n_bins, (m + 1) / n_bins
        inside = [(c, k) for c, k in zip(confidence, correct) if (lo < c <= hi) or (m == 0 and c == 0)]
        if inside:
            acc = sum(k for _, k in inside) / len(inside)
            conf = sum(c for c, _ in inside) / len(inside)
            total += len(inside) / len(confidence) * abs(acc - conf)
    return total


def test_ece_hand_computed():
    # bins (15): 0.95 -> 14, 0.9 -> 13, 0.5 -> 7, 0.3 -> 4
    confidence = [0.95, 0.95, 0.9, 0.5, 0.5, 0.3]
    correct = [True, False, True, True, True, False]
    # (2/6)|0.5 - 0.95| + (1/6)|1 - 0.9| + (2/6)|1 - 0.5| + (1/6)|0 - 0.3| = 0.15 + 0.01667 + 0.16667 + 0.05
    assert metrics.expected_calibration_error(confidence, correct) == pytest.approx(0.15 + 0.1 / 6 + 1 / 6 + 0.05)
    bins = metrics.reliability_bins(confidence, correct)
    assert bins["count"].tolist() == [0, 0, 0, 0, 1, 0, 0, 2, 0, 0, 0, 0, 0, 1, 2]
    assert bins["accuracy"][14] == 0.5 and bins["confidence"][14] == pytest.approx(0.95)
    assert np.isnan(bins["accuracy"][0])
    assert metrics.expected_calibration_error([1.0, 1.0], [True, True]) == 0.0  # confidence 1 sits in the last bin


def test_ece_equals_a_plain_loop():
    rng = np.random.default_rng(1)
    for n, n_bins in ((1, 15), (37, 15), (2000, 15), (500, 10)):
        confidence = rng.uniform(0.1, 1.0, n)
        correct = rng.random(n) < confidence**2
        assert metrics.expected_calibration_error(confidence, correct, n_bins) == pytest.approx(_loop_ece(confidence, correct, n_bins))
        bins = metrics.reliability_bins(confidence, correct, n_bins)
        assert bins["count"].sum() == n


def test_max_softmax_and_nll_match_scipy_in_small_blocks(monkeypatch):
    monkeypatch.setattr(metrics, "_BLOCK_BYTES", 4 * N_CLASSES * 7)  # 7-row blocks: the last one is partial
    rng = np.random.default_rng(2)
    logits = (3 * rng.normal(size=(50, N_CLASSES))).astype(np.float16)
    labels = rng.integers(0, N_CLASSES, 50)
    z = logits.astype(np.float64)
    for t in (1.0, 0.4, 3.0):
        p = softmax(z / t, axis=1)
        np.testing.assert_allclose(metrics.max_softmax(logits, t), p.max(axis=1), rtol=1e-6)
        assert metrics.nll(logits, labels, t) == pytest.approx(-np.log(p[np.arange(50), labels]).mean())
    with pytest.raises(ValueError):
        metrics.max_softmax(logits, 0.0)


@pytest.mark.parametrize("t_true", [0.5, 2.5])
def test_temperature_fit_recovers_a_known_temperature(t_true):
    """Labels drawn from softmax(z), logits stored as z * T: the NLL-optimal temperature is T."""
    rng = np.random.default_rng(3)
    z = 2.0 * rng.normal(size=(20000, N_CLASSES))
    p = softmax(z, axis=1)
    labels = (p.cumsum(axis=1) > rng.random((len(z), 1))).argmax(axis=1)
    t_fit = metrics.fit_temperature((z * t_true).astype(np.float32), labels)
    assert t_fit == pytest.approx(t_true, rel=0.04)
    # and scaling by it calibrates: ECE after is small and below ECE before
    before = metrics.expected_calibration_error(metrics.max_softmax(z * t_true), z.argmax(1) == labels)
    after = metrics.expected_calibration_error(metrics.max_softmax(z * t_true, t_fit), z.argmax(1) == labels)
    assert after < 0.015 and after < before


# ----------------------------------------------------------------------------------- RunView
def _logits_with_confidence(pred, confidence):
    """Logits whose softmax puts ``confidence`` on the class ``pred`` and spreads the rest evenly."""
    out = np.zeros((len(pred), N_CLASSES), np.float32)
    out[np.arange(len(pred)), pred] = np.log(confidence * (N_CLASSES - 1) / (1 - confidence))
    return out


def _models(n, seed, confidence_of):
    """Labels and (calibrated, over-confident) logits: both right on the same examples, drawn with probability p;
    the calibrated model says p, the over-confident one ``confidence_of(p)``."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, N_CLASSES, n)
    p = rng.uniform(0.3, 0.9, n)
    right = rng.random(n) < p
    pred = np.where(right, labels, (labels + 1 + rng.integers(0, N_CLASSES - 1, n)) % N_CLASSES)
    return labels, _logits_with_confidence(pred, p), _logits_with_confidence(pred, confidence_of(p))


def _store(path, grids: dict, labels: dict, alphas=(0.0, 0.5, 1.0), id_val=None, topk_only=False):
    """Method ``ft`` with ``grids[dataset]`` (n_alphas, n, C); first set ID, ``id_val`` ID validation, the rest shifts.
    ``topk_only``: stored like ``eval --store-logits topk`` (top-3 per alpha, full logits at the endpoints)."""
    writer = StoreWriter(path, {"t": 1}, logits_dtype="float32")
    for ds, grid in grids.items():
        grid = np.asarray(grid, np.float32)
        writer.write_labels(ds, labels[ds])
        if topk_only:
            writer.write_logits("ft", ds, grid[[0, -1]])
            idx, val = _topk(grid)
            atomic_save_npy(path / "topk" / "ft" / f"{ds}.npy", idx)
            atomic_save_npy(path / "topv" / "ft" / f"{ds}.npy", val)
        else:
            writer.write_logits("ft", ds, grid)
    sets = list(grids)
    method = {"alphas": list(alphas), **({"logits_stored": "endpoints"} if topk_only else {})}
    manifest = {
        "run": {"id": sets[0], "id_val": id_val, "shifts": [d for d in sets[1:] if d != id_val]},
        "datasets": {ds: {"classnames": [f"c{k}" for k in range(N_CLASSES)]} for ds in sets},
        "methods": {"ft": method},
    }
    return RunView(writer.finalize(manifest))


def _calibrated_then_overconfident(n, seed, swap=False):
    labels, calibrated, sure = _models(n, seed, lambda p: np.full_like(p, 0.99))
    first, last = (sure, calibrated) if swap else (calibrated, sure)
    return labels, np.stack([first, 0.5 * (first + last), last])


def test_view_ece_matches_the_metric_on_the_logits(tmp_path):
    labels, grid = _calibrated_then_overconfident(600, 4)
    view = _store(tmp_path / "s", {"id": grid, "shift": grid[:, :300]}, {"id": labels, "shift": labels[:300]})
    curve = view.ece_curve("ft")
    for j in range(3):
        conf = softmax(grid[j].astype(np.float64), axis=1).max(1)
        right = grid[j].argmax(1) == labels
        assert curve["id"].iloc[j] == pytest.approx(100 * metrics.expected_calibration_error(conf, right), abs=1e-4)
        assert view.ece("ft", "id", j) == curve["id"].iloc[j]
    assert curve[OOD_AVG].tolist() == curve["shift"].tolist()  # one shift: the OOD avg is that shift
    rel = view.reliability("ft", "id", 1)
    assert list(rel.model.unique()) == ["zero-shot", "θ(α=0.50)", "fine-tuned"]
    assert (rel.groupby("model")["count"].sum() == 600).all()


def test_interval_sign_flips_with_the_data(tmp_path):
    """Over-confident fine-tuned -> ECE higher than zero-shot; swapped -> lower; identical -> not distinguishable."""
    labels, worse = _calibrated_then_overconfident(1500, 5)
    _, better = _calibrated_then_overconfident(1500, 5, swap=True)
    up = _store(tmp_path / "up", {"id": worse}, {"id": labels})
    down = _store(tmp_path / "down", {"id": better}, {"id": labels})
    same = _store(tmp_path / "same", {"id": np.stack([worse[0]] * 3)}, {"id": labels})
    iv_up, iv_down = up.ece_interval("ft", "id", -1), down.ece_interval("ft", "id", -1)
    assert iv_up.sign == 1 and iv_down.sign == -1
    assert iv_up.estimate == pytest.approx(up.ece("ft", "id", -1) - up.ece("ft", "id", 0))
    assert up.calibration_table("ft", 1).loc["id", "fine-tuned vs zero-shot"] == "higher ECE"
    assert down.calibration_table("ft", 1).loc["id", "fine-tuned vs zero-shot"] == "lower ECE"
    assert "ECE of fine-tuned is higher than zero-shot's" in up.narrate_calibration("ft", 1, "id")[-2]
    assert "ECE of fine-tuned is lower than zero-shot's" in down.narrate_calibration("ft", 1, "id")[-2]
    flat = same.narrate_calibration("ft", 1, "id")
    assert "not distinguishable at n = 1,500" in flat[-2] and "higher" not in flat[-2] and "lower" not in flat[-2]
    assert same.calibration_table("ft", 1).loc["id", "fine-tuned vs zero-shot"].startswith("not distinguishable")


def test_ood_avg_interval_averages_the_shifts(tmp_path):
    labels, grid = _calibrated_then_overconfident(800, 6)
    halves = {"id": grid, "a": grid[:, :400], "b": grid[:, 400:]}
    view = _store(tmp_path / "s", halves, {"id": labels, "a": labels[:400], "b": labels[400:]})
    iv = view.ece_interval("ft", OOD_AVG, -1)
    a, b = view.ece_interval("ft", "a", -1), view.ece_interval("ft", "b", -1)
    assert iv.estimate == pytest.approx((a.estimate + b.estimate) / 2)
    assert iv.n == 800 and iv.high - iv.low < max(a.high - a.low, b.high - b.low)  # averaging two shifts narrows it


def test_temperature_scaling_fitted_on_id_val_fixes_overconfidence(tmp_path):
    """An over-confident fine-tuned model (logits x3): T fitted on ID val is ~3 and its ECE drops on every set."""
    rng = np.random.default_rng(7)
    sets, labels = {}, {}
    for ds in ("id", "val", "shift"):
        z = 2.0 * rng.normal(size=(3000, N_CLASSES))
        labels[ds] = (softmax(z, axis=1).cumsum(axis=1) > rng.random((len(z), 1))).argmax(axis=1)
        sets[ds] = np.stack([z, 2 * z, 3 * z]).astype(np.float32)
    view = _store(tmp_path / "s", sets, labels, id_val="val")
    temps = view.temperatures("ft")
    assert temps.to_numpy() == pytest.approx([1.0, 2.0, 3.0], rel=0.06)
    assert view.temperature("ft", -1) == temps.iloc[-1]
    raw, scaled = view.ece_curve("ft"), view.ece_curve("ft", scaled=True)
    assert (scaled.iloc[-1] < 4.0).all() and (raw.iloc[-1] > 20.0).all()  # ~2 points left: ECE's bias at n = 3,000
    np.testing.assert_array_equal(view._calibration_correct("ft", "id"), view.correct("ft", "id"))  # T never changes a prediction


def test_no_id_val_means_no_temperature(tmp_path):
    labels, grid = _calibrated_then_overconfident(200, 8)
    view = _store(tmp_path / "s", {"id": grid}, {"id": labels})
    assert view.temperature_set is None
    with pytest.raises(ValueError, match="no ID validation set"):
        view.temperatures("ft")


def test_topk_store_calibrates_the_endpoints_only(tmp_path):
    labels, grid = _calibrated_then_overconfident(500, 9)
    args = ({"id": grid, "val": grid[:, :200], "shift": grid[:, 200:]}, {"id": labels, "val": labels[:200], "shift": labels[200:]})
    full = _store(tmp_path / "full", *args, id_val="val")
    top = _store(tmp_path / "top", *args, id_val="val", topk_only=True)
    assert top.calibration_grid("ft") == [0, 2] and full.calibration_grid("ft") == [0, 1, 2]
    assert top.calibration_note("ft") and "--store-logits topk" in top.calibration_note("ft") and full.calibration_note("ft") is None
    assert not top.has_calibration("ft", 1) and np.isnan(top.ece("ft", "id", 1))
    for scaled in (False, True):
        for j in (0, -1):
            assert top.ece("ft", "shift", j, scaled) == pytest.approx(full.ece("ft", "shift", j, scaled))
        assert list(top.ece_curve("ft", scaled).index) == [0.0, 1.0]
    assert top.temperatures("ft").to_numpy() == pytest.approx(full.temperatures("ft").to_numpy()[[0, -1]])
    table = top.calibration_table("ft", 1)
    assert (table["θ(α) vs zero-shot"] == "no full logits").all() and table["θ(α)"].isna().all()
    assert table["fine-tuned vs zero-shot"].iloc[0] == full.calibration_table("ft", 1)["fine-tuned vs zero-shot"].iloc[0]
    assert list(top.reliability("ft", "id", 1).model.unique()) == ["zero-shot", "fine-tuned"]
    assert len(top.narrate_calibration("ft", 1, "id")) == 2  # no theta(alpha) sentence
    with pytest.raises(ValueError, match="no full logits"):
        top.ece_interval("ft", "id", 1)


def test_resampled_sums_are_one_joint_resample_across_column_chunks():
    rng = np.random.default_rng(10)
    columns = rng.normal(size=(300, 6))
    whole = evidence.resampled_sums(columns, resamples=50, seed=[0, 3])
    parts = np.concatenate([evidence.resampled_sums(columns[:, :2], 50, [0, 3]), evidence.resampled_sums(columns[:, 2:], 50, [0, 3])], 1)
    np.testing.assert_allclose(whole, parts)
    iv = evidence.percentile_interval(1.0, np.arange(101.0), 7)
    assert (iv.low, iv.high, iv.n) == (pytest.approx(2.5), pytest.approx(97.5), 7)
