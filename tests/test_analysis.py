"""RunView on an ImageNet-shaped store: class-subset x axes for ImageNet-R (WiSE-FT and output-space ensemble)."""

import numpy as np
import pytest

from robust_core.analysis import RunView
from robust_core.datasets import classnames_for, get_spec, projection_for
from robust_core.store import StoreWriter


@pytest.fixture(scope="module")
def imagenet_view(tmp_path_factory):
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("inet") / "store"
    alphas = [0.0, 0.5, 1.0]
    writer = StoreWriter(path, {"t": 1}, logits_dtype="float32")
    r_indices = np.flatnonzero(projection_for(get_spec("imagenet-r"))(__import__("torch").eye(1000)).numpy().sum(1))
    labels = np.concatenate([rng.choice(r_indices, 300), rng.integers(0, 1000, 100)])  # most val images in R's classes
    z0 = rng.normal(size=(400, 1000)).astype(np.float32)
    z1 = rng.normal(size=(400, 1000)).astype(np.float32)
    z0[np.arange(400), labels] += 2.5
    z1[np.arange(400), labels] += 1.0
    writer.write_labels("imagenet", labels)
    # theta(alpha) logits deliberately differ from the output-space mix of the endpoints
    grid = np.stack([z0, rng.normal(size=(400, 1000)).astype(np.float32), z1])
    writer.write_logits("ft", "imagenet", grid)
    r_labels = rng.integers(0, 200, 50)
    writer.write_labels("imagenet-r", r_labels)
    writer.write_logits("ft", "imagenet-r", rng.normal(size=(3, 50, 200)).astype(np.float32))
    manifest = {
        "run": {"id": "imagenet", "id_val": None, "shifts": ["imagenet-r"]},
        "datasets": {"imagenet": {"classnames": classnames_for("imagenet")}, "imagenet-r": {"classnames": classnames_for("imagenet_r")}},
        "methods": {"ft": {"alphas": alphas}},
    }
    return RunView(writer.finalize(manifest)), grid, labels, r_indices


def _direct(logits, labels, r_indices):
    keep = np.isin(labels, r_indices)
    pred = r_indices[logits[keep][:, r_indices].argmax(1)]
    return float((pred == labels[keep]).mean())


def test_subset_x_for_wise_and_ensemble(imagenet_view):
    view, grid, labels, r_indices = imagenet_view
    x_wise, *_ = view._xy("ft", "imagenet-r", "wise")
    x_ens, *_ = view._xy("ft", "imagenet-r", "ensemble")
    for j, alpha in enumerate([0.0, 0.5, 1.0]):
        assert x_wise[j] == pytest.approx(_direct(grid[j], labels, r_indices))
        mixed = (1 - alpha) * grid[0] + alpha * grid[-1]
        assert x_ens[j] == pytest.approx(_direct(mixed, labels, r_indices))
    assert x_wise[1] != pytest.approx(x_ens[1])  # the two models differ at alpha 0.5 here


# --------------------------------------------------------------- narration decided by the data
N_CLASSES = 10


def _logits(labels, correct, margin):
    """One-hot logits: the predicted class gets ``margin`` (so top-1 minus top-2 = margin), right or wrong."""
    pred = np.where(correct, labels, (labels + 1) % N_CLASSES)
    out = np.zeros((len(labels), N_CLASSES), np.float32)
    out[np.arange(len(labels)), pred] = margin
    return out


def _mask(n, k, offset=0):
    out = np.zeros(n, bool)
    out[offset : offset + k] = True
    return out


def _store(path, correct: dict, margins: dict | None = None, baselines: dict | None = None):
    """A store with datasets ``id`` and ``shift``, method ``ft`` on alphas (0, 0.5, 1).

    ``correct[dataset]`` is a (3, n) bool array (zero-shot, theta(0.5), fine-tuned); ``margins[dataset]`` the
    three margins; ``baselines[name][dataset]`` a bool array per standard model.
    """
    rng = np.random.default_rng(0)
    writer = StoreWriter(path, {"t": 1}, logits_dtype="float32")
    for ds, grid in correct.items():
        labels = rng.integers(0, N_CLASSES, grid.shape[1])
        writer.write_labels(ds, labels)
        m = (margins or {}).get(ds, (1.0, 1.0, 1.0))
        writer.write_logits("ft", ds, np.stack([_logits(labels, grid[j], m[j]) for j in range(3)]))
        for name, per_ds in (baselines or {}).items():
            writer.write_baseline(name, ds, _logits(labels, per_ds[ds], 1.0))
    names = [f"c{k}" for k in range(N_CLASSES)]
    manifest = {
        "run": {"id": "id", "id_val": None, "shifts": ["shift"]},
        "datasets": {ds: {"classnames": names} for ds in correct},
        "methods": {"ft": {"alphas": [0.0, 0.5, 1.0]}},
        "baselines": {name: {} for name in (baselines or {})},
    }
    return RunView(writer.finalize(manifest))


def _pd_grid(n, n_right, n_diff):
    """Zero-shot and fine-tuned with the same accuracy and ``n_diff`` examples where exactly one is right."""
    zs = _mask(n, n_right)
    ft = _mask(n, n_right, offset=n_diff // 2)  # shifted window: n_diff // 2 on each side differ
    return np.stack([zs, zs | ft, ft])


def test_diversity_sentence_flips_with_the_data(tmp_path):
    n = 400
    more = _store(tmp_path / "more", {"id": _pd_grid(n, 200, 20), "shift": _pd_grid(n, 200, 200)})
    less = _store(tmp_path / "less", {"id": _pd_grid(n, 200, 200), "shift": _pd_grid(n, 200, 20)})
    same = _store(tmp_path / "same", {"id": _pd_grid(n, 200, 100), "shift": _pd_grid(n, 200, 100)})
    assert "higher than on ID on 1 (shift)" in more.narrate_diversity("ft")
    assert "lower on 1 (shift)" in less.narrate_diversity("ft")
    assert "not distinguishable from ID on 1 (shift)" in same.narrate_diversity("ft")
    assert "larger under shift" not in more.narrate_diversity("ft")  # the old fixed claim is gone


def test_confidence_sentence_flips_with_the_data(tmp_path):
    grid = _pd_grid(300, 150, 60)
    surer = _store(tmp_path / "surer", {"id": grid, "shift": grid}, margins={"shift": (1.0, 1.5, 2.0)})
    shyer = _store(tmp_path / "shyer", {"id": grid, "shift": grid}, margins={"shift": (2.0, 1.5, 1.0)})
    equal = _store(tmp_path / "equal", {"id": grid, "shift": grid})
    assert surer.narrate_confidence("ft", "shift").count("mean margin is larger") == 2
    assert shyer.narrate_confidence("ft", "shift").count("mean margin is smaller") == 2
    assert equal.narrate_confidence("ft", "shift").count("not distinguishable at n = 300") == 2


def test_tradeoff_sentences_and_cards_follow_the_paired_interval(tmp_path):
    n = 500
    zs, ft = _mask(n, 250), _mask(n, 350)
    better = np.stack([zs, _mask(n, 320), ft])  # theta(0.5) right on 70 more images than zero-shot, none fewer
    tiny = np.stack([zs, _mask(n, 252), ft])  # 2 more: within noise
    up = _store(tmp_path / "up", {"id": better, "shift": better})
    flat = _store(tmp_path / "flat", {"id": tiny, "shift": tiny})
    assert "ID (id) at α = 0.50 is higher than the zero-shot model by 14.0 points" in " ".join(up.narrate_tradeoff("ft", 0.5))
    assert "ID (id) at α = 0.50 and the zero-shot model are not distinguishable at n = 500" in " ".join(flat.narrate_tradeoff("ft", 0.5))
    assert up.cards("ft", 0.5)["id_vs_zeroshot_ci"].sign == 1 and flat.cards("ft", 0.5)["id_vs_zeroshot_ci"].sign == 0
    table = flat.evidence_table("ft", 0.5)
    assert table.loc["id", "vs zero-shot"] == "not distinguishable at n = 500"
    assert table.loc["id", "McNemar p vs zero-shot"] == pytest.approx(0.5)  # 2 discordant, both one way
    assert up.evidence_table("ft", 0.5).loc["id", "vs fine-tuned"] == "lower"


def test_models_on_their_own_baseline_line_are_not_distinguishable_from_it(tmp_path):
    """Known answer through RunView: standard models and the endpoints share one logit line, so rho ~ 0."""
    from robust_core import metrics

    n = 2000
    slope, intercept = 1.0, -0.5
    on_line = lambda x: float(metrics.baseline_prediction(x, slope, intercept))  # noqa: E731
    base = {}
    for j, (x, off) in enumerate(zip([0.4, 0.5, 0.6, 0.7, 0.8], [0.02, -0.02, 0.0, 0.015, -0.015])):
        base[f"standard-{j}"] = {"id": _mask(n, round(x * n)), "shift": _mask(n, round((on_line(x) + off) * n))}
    grid = {
        "id": np.stack([_mask(n, round(x * n)) for x in (0.55, 0.65, 0.75)]),
        "shift": np.stack([_mask(n, round(on_line(x) * n)) for x in (0.55, 0.65, 0.75)]),
    }
    view = _store(tmp_path / "line", grid, baselines=base)
    er = view.er_data("ft", "shift")
    assert er["baseline"]["slope"] == pytest.approx(slope, abs=0.1)
    for frame in (er["curve"], er["endpoints"]):
        assert (frame["rho low"] < 0).all() and (frame["rho high"] > 0).all()
        assert frame["vs line"].str.startswith("not distinguishable from the line").all()
    sentences = " ".join(view.narrate_er("ft", "shift"))
    assert "above the line" not in sentences and "below the line" not in sentences
    assert "not distinguishable" in sentences
