"""Published tables: the testbed baseline rules, checked against an independent pandas/scipy route."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from robust_core import metrics, reference

RAW = reference.DATA / "imagenet_testbed_natural_shifts.csv"


def _logit(p):
    return np.log(p / (1 - p))


def test_imagenetv2_logit_fit_matches_linregress_on_the_raw_table():
    raw = pd.read_csv(RAW)
    rows = raw[raw.eligible_for_line_fit & (raw.val >= 55) & ~raw.model.str.contains("subsample")]
    rows = rows.dropna(subset=["val", "imagenetv2-matched-frequency-format-val"])
    ref = stats.linregress(_logit(rows.val / 100), _logit(rows["imagenetv2-matched-frequency-format-val"] / 100))
    fit = reference.imagenet_baseline("imagenetv2")
    assert fit["n_models"] == len(rows)
    assert fit["slope"] == pytest.approx(ref.slope, rel=1e-9)
    assert fit["intercept"] == pytest.approx(ref.intercept, rel=1e-9)


def test_class_subset_x_axes_and_cutoffs():
    raw = pd.read_csv(RAW)
    pts = reference.testbed_points("imagenet-r")
    clip = pts[pts.model == "vit_b_32_clip_zeroshot"].iloc[0]
    row = raw[raw.model == "vit_b_32_clip_zeroshot"].iloc[0]
    assert clip.x == pytest.approx(row["val-on-imagenet-r-classes"] / 100)  # not ImageNet val
    assert clip.y == pytest.approx(row["imagenet-r"] / 100)
    fitted = pts[pts.fit]
    assert (fitted.x >= 0.75).all()  # the testbed's ImageNet-R plot cut-off
    assert not pts[pts.fit].model.isin(raw[~raw.eligible_for_line_fit].model).any()


def test_clip_zero_shot_has_large_positive_effective_robustness():
    rho = {}
    for shift in ("imagenetv2", "objectnet", "imagenet-r", "imagenet-sketch"):
        fit = reference.imagenet_baseline(shift)
        p = fit["points"]
        clip = p[p.model == "vit_b_32_clip_zeroshot"].iloc[0]
        rho[shift] = 100 * float(metrics.effective_robustness(clip.x, clip.y, fit["slope"], fit["intercept"]))
    assert all(v > 0 for v in rho.values()), rho
    assert rho["imagenet-r"] > rho["imagenetv2"]  # the classic picture: small gain on V2, large on R


def test_overlays_are_fractions_and_named():
    for shift in ("ood-avg", "imagenet-r", "objectnet"):
        over = reference.overlay_points(shift)
        assert set(over.source) == {"open_clip zero-shot", "model soups (ViT-B/32 fine-tunes)", "papers (WiSE-FT, FLYP)"}
        assert over.x.between(0, 1).all() and over.y.between(0, 1).all()
    papers = reference.paper_tables()
    row = papers[(papers.table == "Table 5") & (papers.method == "end-to-end") & (papers.alpha == 0.5)].iloc[0]
    assert row.imagenet == pytest.approx(0.817) and row["ood-avg"] == pytest.approx(0.630)
    lpft = reference.paper_tables_other()
    avg = lpft[(lpft.dataset == "average") & (lpft.split == "OOD")].set_index("method").value
    assert avg.to_dict() == {"FT": 59.3, "LP": 66.2, "LP-FT": 68.9}


def test_full_imagenet_x_line_for_published_rows_on_subset_shifts():
    """A full-ImageNet point must be compared with a line fitted on full-ImageNet x (issue 12)."""
    raw = pd.read_csv(RAW)
    clip = raw[raw.model == "vit_b_32_clip_zeroshot"].iloc[0]
    subset = reference.imagenet_baseline("imagenet-r")
    full = reference.imagenet_baseline("imagenet-r", x_axis="full")
    assert subset["x_axis"] == "class-subset" and full["x_axis"] == "full"
    # same models, other x: an independent fit on the raw table's val column
    fitted = full["points"][full["points"].fit]
    rows = raw.set_index("model").loc[fitted.model]
    ref = stats.linregress(_logit(rows.val / 100), _logit(rows["imagenet-r"] / 100))
    assert full["slope"] == pytest.approx(ref.slope, rel=1e-9) and full["intercept"] == pytest.approx(ref.intercept, rel=1e-9)
    assert set(fitted.model) == set(subset["points"][subset["points"].fit].model)
    rho = lambda x, fit: 100 * float(metrics.effective_robustness(x / 100, clip["imagenet-r"] / 100, fit["slope"], fit["intercept"]))  # noqa: E731
    consistent = rho(clip["val-on-imagenet-r-classes"], subset)
    mixed = rho(clip["val"], subset)  # the old, inconsistent comparison
    assert consistent == pytest.approx(39.0, abs=0.5) and mixed == pytest.approx(54.6, abs=0.5)
    assert abs(rho(clip["val"], full) - consistent) < abs(mixed - consistent)
    # V2 and Sketch have one x axis
    assert reference.imagenet_baseline("imagenetv2", x_axis="full")["slope"] == reference.imagenet_baseline("imagenetv2")["slope"]


def test_near_zero_models_and_resnet50_are_left_out_of_the_imagenet_a_fit():
    pts = reference.testbed_points("imagenet-a")
    r50 = pts[pts.model == "resnet50"].iloc[0]
    assert not r50.fit and not r50.in_plot and "ResNet-50" in r50.why_not_fit
    assert (pts[pts.fit].y >= reference.NEAR_ZERO).all()
    assert "paper_imagenet_a.py" in reference.imagenet_baseline("imagenet-a")["note"]
    assert set(pts.x_n) == {10000} and set(reference.testbed_points("imagenet-a", "full").x_n) == {50000}


def test_per_column_optimum_rows_are_not_single_models_and_flyp_is_labelled_by_source():
    papers = reference.paper_tables()
    optimum = papers.method.str.contains("optimal alpha per column")
    assert optimum.any() and not papers[optimum].single_model.any() and papers[~optimum].single_model.all()
    assert (papers[papers.paper.str.startswith("FLYP")].source == "FLYP talk slide").all()
    over = reference.overlay_points("ood-avg")
    assert over[~over.single_model].label.str.endswith("(not a single model)").all()


def test_reference_readme_lists_only_files_that_ship():
    import re

    readme = (reference.DATA / "README.md").read_text()
    table = [line for line in readme.splitlines() if line.startswith("| ") and not line.startswith("| file")]
    for line in table:
        for name in re.findall(r"[\w./]+\.(?:csv|jsonl|json)", line.split("|")[1]):
            assert (reference.DATA / name).exists() or (reference.DATA / "model_soups" / name).exists(), name
    shipped = {p.name for p in reference.DATA.rglob("*") if p.is_file() and p.name != "README.md"}
    listed = " ".join(line.split("|")[1] for line in table)
    assert all(name in listed for name in shipped), shipped
