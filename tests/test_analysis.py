"""RunView on an ImageNet-shaped store: class-subset x axes for ImageNet-R (WiSE-FT and output-space ensemble)."""

import numpy as np
import pytest

from robust_core import evidence
from robust_core.analysis import OOD_AVG, RunView
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


def _store_from_logits(path, logits: dict, labels: dict, alphas=(0.0, 0.5, 1.0), id_val=None, baselines=None, linear=False):
    """A store with method ``ft``: ``logits[dataset]`` is (n_alphas, n, N_CLASSES); the first set is ID, the one
    named ``id_val`` (if any) ID validation, the rest shifts. ``baselines[name][dataset]``: (n, N_CLASSES) logits."""
    writer = StoreWriter(path, {"t": 1}, logits_dtype="float32")
    for ds, grid in logits.items():
        writer.write_labels(ds, labels[ds])
        writer.write_logits("ft", ds, np.asarray(grid, np.float32))
        for name, per_ds in (baselines or {}).items():
            writer.write_baseline(name, ds, np.asarray(per_ds[ds], np.float32))
    names = [f"c{k}" for k in range(N_CLASSES)]
    sets = list(logits)
    manifest = {
        "run": {"id": sets[0], "id_val": id_val, "shifts": [d for d in sets[1:] if d != id_val]},
        "datasets": {ds: {"classnames": names} for ds in sets},
        "methods": {"ft": {"alphas": list(alphas), "linear": linear}},
        "baselines": {name: {} for name in (baselines or {})},
    }
    return RunView(writer.finalize(manifest))


def _store(path, correct: dict, margins: dict | None = None, baselines: dict | None = None):
    """A store with datasets ``id`` and ``shift``, method ``ft`` on alphas (0, 0.5, 1).

    ``correct[dataset]`` is a (3, n) bool array (zero-shot, theta(0.5), fine-tuned); ``margins[dataset]`` the
    three margins; ``baselines[name][dataset]`` a bool array per standard model.
    """
    rng = np.random.default_rng(0)
    labels = {ds: rng.integers(0, N_CLASSES, grid.shape[1]) for ds, grid in correct.items()}
    logits = {}
    for ds, grid in correct.items():
        m = (margins or {}).get(ds, (1.0, 1.0, 1.0))
        logits[ds] = np.stack([_logits(labels[ds], grid[j], m[j]) for j in range(3)])
    base = {name: {ds: _logits(labels[ds], per_ds[ds], 1.0) for ds in correct} for name, per_ds in (baselines or {}).items()}
    return _store_from_logits(path, logits, labels, baselines=base)


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
    assert "ID (id) at α = 0.50 is higher than the zero-shot model by 14.0 points" in " ".join(up.narrate_tradeoff("ft", 1))
    assert "ID (id) at α = 0.50 and the zero-shot model are not distinguishable at n = 500" in " ".join(flat.narrate_tradeoff("ft", 1))
    assert up.cards("ft", 1)["id_vs_zeroshot_ci"].sign == 1 and flat.cards("ft", 1)["id_vs_zeroshot_ci"].sign == 0
    table = flat.evidence_table("ft", 1)
    assert table.loc["id", "vs zero-shot"] == "not distinguishable at n = 500"
    assert table.loc["id", "McNemar p vs zero-shot"] == pytest.approx(0.5)  # 2 discordant, both one way
    assert up.evidence_table("ft", 1).loc["id", "vs fine-tuned"] == "lower"


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


# ------------------------------------------------------------- alpha choice, label-free, diversity, overrides
ALPHAS5 = (0.0, 0.25, 0.5, 0.75, 1.0)


def _grid_from_accuracy(labels, accuracies, seed):
    """(len(accuracies), n, N_CLASSES) logits whose top-1 is right on the first round(acc * n) examples (shuffled)."""
    order = np.random.default_rng(seed).permutation(len(labels))
    out = []
    for acc in accuracies:
        right = np.zeros(len(labels), bool)
        right[order[: int(round(acc * len(labels)))]] = True
        out.append(_logits(labels, right, 2.0))
    return np.stack(out)


@pytest.fixture(scope="module")
def five_alpha_view(tmp_path_factory):
    """ID rises with alpha, ID validation peaks at 0.75, the shift peaks at 0.25; four standard models."""
    rng = np.random.default_rng(1)
    n = 400
    labels = {ds: rng.integers(0, N_CLASSES, n) for ds in ("id", "val", "shift")}
    curves = {"id": (0.5, 0.6, 0.7, 0.8, 0.85), "val": (0.5, 0.6, 0.7, 0.9, 0.8), "shift": (0.4, 0.6, 0.5, 0.45, 0.3)}
    logits = {ds: _grid_from_accuracy(labels[ds], acc, k) for k, (ds, acc) in enumerate(curves.items())}
    baselines = {
        f"b{k}": {ds: _grid_from_accuracy(labels[ds], [acc], 10 + k)[0] for ds, acc in (("id", a), ("val", a), ("shift", a - 0.2))}
        for k, a in enumerate((0.45, 0.55, 0.65, 0.75))
    }
    view = _store_from_logits(tmp_path_factory.mktemp("five") / "store", logits, labels, ALPHAS5, id_val="val", baselines=baselines)
    return view, curves


def test_alpha_point_resolves_once_and_analysis_takes_indices(five_alpha_view):
    view, _ = five_alpha_view
    assert view.alpha_point("ft", 0.33) == (1, 0.25) and view.alpha_point("ft", 0.9) == (4, 1.0)
    assert view.alpha_at("ft", -1) == 1.0 and view.grid_index("ft", -1) == 4
    with pytest.raises(IndexError, match="off ft's grid"):
        view.cards("ft", 5)
    with pytest.raises(TypeError, match="alpha_point"):
        view.cards("ft", 0.5)  # a float alpha is refused, never re-snapped


def test_picks_follow_their_rules(five_alpha_view):
    view, curves = five_alpha_view
    picks = view.picks("ft").set_index("rule")
    assert picks.loc["best on ID held-out validation", "alpha"] == 0.75
    assert picks.loc["fixed 0.5 (WiSE-FT default)", "alpha"] == 0.5
    assert picks.loc["OOD oracle (uses OOD labels)", "alpha"] == 0.25
    for _, row in picks.iterrows():
        assert ALPHAS5[row["index"]] == row["alpha"]
        assert row["ID"] == pytest.approx(curves["id"][row["index"]])
        assert row["OOD avg"] == pytest.approx(curves["shift"][row["index"]])
        paired = view.paired("ft", int(row["index"]), "zero-shot", "id")
        assert row["ID − zero-shot"] == pytest.approx(paired.estimate)
    # the oracle is 20 points above zero-shot on 400 shift images: a direction; ID validation's pick is 5 points below it
    assert picks.loc["OOD oracle (uses OOD labels)", "OOD avg vs zero-shot"] == "higher"


def test_label_free_is_aline_over_every_model_of_the_store(five_alpha_view):
    from robust_core import metrics

    view, curves = five_alpha_view
    lf = view.label_free("ft")
    id_preds = np.concatenate([view.topk("ft", "id")[:, :, 0], [view.store.baseline_predictions(b, "id") for b in view.store.baselines]])
    ood_preds = np.concatenate(
        [view.topk("ft", "shift")[:, :, 0], [view.store.baseline_predictions(b, "shift") for b in view.store.baselines]]
    )
    direct = metrics.aline_estimate(id_preds, ood_preds, view.labels("id"), "aline-d")[: len(ALPHAS5)]
    np.testing.assert_allclose(lf["estimated OOD avg"], direct)
    np.testing.assert_allclose(lf["true OOD avg"], curves["shift"])
    np.testing.assert_allclose(lf["error"], direct - np.asarray(curves["shift"]))


def test_diversity_and_overrides_against_direct_counts(tmp_path):
    from robust_core import metrics

    # 8 examples, labels 0..7; zero-shot, theta(0.5) and fine-tuned predictions chosen by hand
    labels = np.arange(8) % N_CLASSES
    zs = np.array([0, 1, 2, 3, 9, 9, 9, 9])  # right on 0-3
    mid = np.array([0, 1, 5, 5, 4, 9, 8, 8])
    ft = np.array([0, 1, 5, 5, 4, 5, 8, 8])  # right on 0, 1, 4, 5; disagrees with zero-shot on 2-7
    logits = np.stack([np.eye(N_CLASSES, dtype=np.float32)[p] * 3 for p in (zs, mid, ft)])
    view = _store_from_logits(tmp_path / "s", {"id": logits, "shift": logits}, {"id": labels, "shift": labels}, linear=True)
    div = view.diversity("ft").loc["id"]
    assert div["prediction diversity"] == pytest.approx(metrics.prediction_diversity(zs, ft, labels)) == pytest.approx(4 / 8)
    assert div["1 - Cohen's κ"] == pytest.approx(metrics.cohen_kappa_complement(zs, ft, N_CLASSES))
    assert div["KL(zero-shot ‖ fine-tuned)"] == pytest.approx(metrics.mean_kl(logits[0], logits[2]), rel=1e-6)
    assert div["1 - CKA"] == 0.0  # a linear probe keeps the zero-shot encoder
    over = view.overrides("ft", 1).loc["id"]
    # disagreements: examples 2-7 (6 of 8); theta sides with fine-tuned on 2, 3, 4, 6, 7 and with zero-shot on 5
    assert over["disagreement"] == pytest.approx(6 / 8)
    assert over["is overridden (sides with fine-tuned)"] == pytest.approx(5 / 6)
    assert over["zero-shot overrides"] == pytest.approx(1 / 6) and over["neither"] == 0.0
    assert over["fine-tuned right when it wins"] == pytest.approx(1 / 5)  # only example 4 (label 4) is right
    assert over["zero-shot right when overriding"] == 0.0  # example 5: both theta and zero-shot say 9, the label is 5


def test_stored_summaries_equal_what_the_view_computes(five_alpha_view, tmp_path, capsys):
    """``summarize`` keeps the per-alpha tables with the store; a view reading them shows the same numbers."""
    import shutil

    from pandas.testing import assert_frame_equal

    from robust_core.cli import main
    from robust_core.store import open_store

    view, _ = five_alpha_view
    copy = tmp_path / "store"
    shutil.copytree(view.store.path, copy)
    assert main(["summarize", str(copy)]) == 0
    assert "summary tables" in capsys.readouterr().out
    stored = RunView(open_store(copy))  # opening verifies every summary's sha256
    assert stored._stored("ft", "paired-zero-shot") is not None
    for ref in ("zero-shot", "fine-tuned"):
        assert_frame_equal(stored.paired_grid("ft", ref), view.paired_grid("ft", ref))
    assert_frame_equal(stored.diversity("ft"), view.diversity("ft"))
    assert_frame_equal(stored.label_free("ft"), view.label_free("ft"))
    for i in range(len(ALPHAS5)):
        assert_frame_equal(stored.overrides("ft", i), view.overrides("ft", i), check_names=False)
        for ds in ("id", "shift"):
            assert_frame_equal(stored.per_class("ft", ds, i), view.per_class("ft", ds, i))
            assert_frame_equal(stored.margin_summary("ft", ds, i), view.margin_summary("ft", ds, i))
        assert stored.narrate_tradeoff("ft", i) == view.narrate_tradeoff("ft", i)
    for ds in ("id", "val", "shift"):
        assert stored._stored("ft", f"confidence-{ds}") is not None
        assert stored.confidence_evidence("ft", ds) == view.confidence_evidence("ft", ds)
        assert stored.narrate_confidence("ft", ds) == view.narrate_confidence("ft", ds)


def test_per_alpha_tables_built_for_the_whole_grid_are_each_alphas_own(five_alpha_view):
    """evidence_table and point_table are built for every alpha at once: each row is that alpha's paired interval
    and accuracy, read here one by one from paired() and the curves."""
    view, _ = five_alpha_view
    wise, ens = view.curves("ft", "wise"), view.curves("ft", "ensemble")
    for i in range(len(ALPHAS5)):
        ev, pt = view.evidence_table("ft", i), view.point_table("ft", i)
        assert list(ev.index) == ["id", "val", "shift", OOD_AVG] and list(pt.index) == ["id", "val", "shift", OOD_AVG]
        for ds in ev.index:
            assert ev.loc[ds, "θ(α) (%)"] == pytest.approx(100 * wise.iloc[i][ds])
            for ref in ("zero-shot", "fine-tuned"):
                row = view.paired("ft", i, ref, ds)
                assert (ev.loc[ds, f"Δ vs {ref}"], ev.loc[ds, f"Δ vs {ref} low"], ev.loc[ds, f"Δ vs {ref} high"]) == (
                    row.estimate,
                    row.low,
                    row.high,
                )
                assert ev.loc[ds, f"vs {ref}"] == evidence.verdict(view.interval("ft", i, ds, ref), "higher", "lower", row.mcnemar_p)
            assert ev.loc[ds, "n"] == view.paired("ft", i, "zero-shot", ds).n
            a = ALPHAS5[i]
            assert (
                pt.loc[ds, f"WiSE-FT α={a:.2f}"] == wise.iloc[i][ds] and pt.loc[ds, f"output-space ensemble α={a:.2f}"] == ens.iloc[i][ds]
            )
            assert pt.loc[ds, "Δ vs zero-shot"] == pytest.approx(wise.iloc[i][ds] - wise.iloc[0][ds])
            assert pt.loc[ds, "Δ vs fine-tuned"] == pytest.approx(wise.iloc[i][ds] - wise.iloc[-1][ds])


def test_disagreements_are_the_examples_the_endpoints_disagree_on_with_each_models_top3(five_alpha_view):
    """Independent of the memoized endpoint part: which examples, in order, and each model's top-3 and rightness,
    on a small store and on the demo (where every filter has examples)."""
    from pathlib import Path

    from robust_core.store import open_store

    demo = RunView(open_store(Path(__file__).resolve().parent.parent / "cache" / "demo"))
    for view, ds, grid in ((five_alpha_view[0], "shift", (1, 2)), (demo, demo.shifts[0], (3, 7))):
        topk, labels, names = view.topk("ft", ds), view.labels(ds), view.store.classnames(ds)
        zs, ft = topk[0, :, 0], topk[-1, :, 0]
        filters = {
            "any": True,
            "zero-shot right": zs == labels,
            "fine-tuned right": ft == labels,
            "both wrong": (zs != labels) & (ft != labels),
        }
        for i in grid:
            a = view.alpha_at("ft", i)
            for who, extra in filters.items():
                table = view.disagreements("ft", ds, i, who, limit=10)
                expected = np.flatnonzero((zs != ft) & extra)[:10]
                assert list(table["index"]) == list(expected) and (len(expected) > 0 or view is not demo)
                assert list(table.columns) == [
                    "index",
                    "label",
                    "zero-shot top-3",
                    "fine-tuned top-3",
                    f"θ({a:.2f}) top-3",
                    "zero-shot right",
                    "fine-tuned right",
                    "θ(α) right",
                ]
                for r, k in enumerate(expected):
                    for col, j in (("zero-shot top-3", 0), ("fine-tuned top-3", -1), (f"θ({a:.2f}) top-3", i)):
                        assert [part.rsplit(" ", 1)[0] for part in table[col].iloc[r].split(", ")] == [names[c] for c in topk[j, k]]
                    assert table["label"].iloc[r] == names[labels[k]]
                    assert table["θ(α) right"].iloc[r] == (topk[i, k, 0] == labels[k])
                    assert table["zero-shot right"].iloc[r] == (zs[k] == labels[k]) and table["fine-tuned right"].iloc[r] == (
                        ft[k] == labels[k]
                    )


def test_the_demo_stores_summaries_equal_a_fresh_computation():
    """The committed demo keeps its per-alpha tables; they must be what the current code computes."""
    from pathlib import Path

    from pandas.testing import assert_frame_equal

    from robust_core.store import open_store

    demo = Path(__file__).resolve().parent.parent / "cache" / "demo"
    stored = RunView(open_store(demo))
    fresh = RunView(open_store(demo))
    fresh._stored = lambda method, name, i=None: None  # compute everything, read nothing
    assert stored._stored("ft", "paired-zero-shot") is not None
    shift = stored.shifts[0]
    assert_frame_equal(stored.paired_grid("ft", "fine-tuned"), fresh.paired_grid("ft", "fine-tuned"))
    assert_frame_equal(stored.diversity("ft"), fresh.diversity("ft"))
    assert_frame_equal(stored.label_free("ft"), fresh.label_free("ft"))
    for i in (0, 4, -1):
        assert_frame_equal(stored.single_models("ft", i), fresh.single_models("ft", i))
        assert_frame_equal(stored.per_class("ft", shift, i), fresh.per_class("ft", shift, i))
        assert_frame_equal(stored.overrides("ft", i), fresh.overrides("ft", i), check_names=False)
        assert_frame_equal(stored.margin_summary("ft", shift, i), fresh.margin_summary("ft", shift, i))


def test_curves_and_endpoints_on_other_x_axes_are_left_off_the_chart(tmp_path, monkeypatch):
    """ImageNet-R: a --store-logits topk method has full-ImageNet x, the others class-subset x; one chart never mixes them."""
    rng = np.random.default_rng(1)
    writer = StoreWriter(tmp_path / "store", {"t": 1}, logits_dtype="float32")
    labels = rng.integers(0, 1000, 200)
    writer.write_labels("imagenet", labels)
    writer.write_labels("imagenet-r", rng.integers(0, 200, 40))
    for m in ("ft", "lp"):
        writer.write_logits(m, "imagenet", rng.normal(size=(3, 200, 1000)).astype(np.float32))
        writer.write_logits(m, "imagenet-r", rng.normal(size=(3, 40, 200)).astype(np.float32))
    manifest = {
        "run": {"id": "imagenet", "id_val": None, "shifts": ["imagenet-r"]},
        "datasets": {"imagenet": {"classnames": classnames_for("imagenet")}, "imagenet-r": {"classnames": classnames_for("imagenet_r")}},
        "methods": {"ft": {"alphas": [0.0, 0.5, 1.0]}, "lp": {"alphas": [0.0, 0.5, 1.0]}},
    }
    view = RunView(writer.finalize(manifest))
    monkeypatch.setattr(view.store, "has_full_logits", lambda m: m != "lp")  # lp as if built with --store-logits topk
    assert view.x_axis("ft", "imagenet-r") == "class-subset" and view.x_axis("lp", "imagenet-r") == "full"
    assert view.x_axis("lp", "OOD avg") == view.x_axis("ft", "OOD avg") == "full"
    assert set(view.er_curves("imagenet-r", axis_of="ft")) == {"ft"}
    assert set(view.er_curves("imagenet-r", axis_of="lp")) == {"lp"}
    assert set(view.er_curves("OOD avg", axis_of="ft")) == {"ft", "lp"}
    assert set(view.er_data("ft", "imagenet-r", intervals=False)["endpoints"].method) == {"ft"}
    assert set(view.er_data("ft", "OOD avg", intervals=False)["endpoints"].method) == {"ft", "lp"}
