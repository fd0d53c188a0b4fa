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
