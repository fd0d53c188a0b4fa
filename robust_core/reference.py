"""Published accuracy tables (shipped in ``reference_data/``, see its README for sources and licences).

All accuracies returned here are **fractions** (the testbed and timm files are in percent, open_clip and
model-soups in fractions; this module converts).

The ImageNet baselines follow the imagenet-testbed's plotting scripts: a model is fitted if it is a
standard model (``eligible_for_line_fit``) and passes the per-plot accuracy cut-off; for ImageNet-R,
ImageNet-A and ObjectNet the x axis is ImageNet val restricted to the shift's classes. Which testbed
columns, x axes and cut-offs belong to which shift is read from ``datasets/registry.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

from . import labelspace, metrics

DATA = Path(__file__).parent / "reference_data"


@dataclass(frozen=True)
class ShiftAxis:
    """How the testbed plots one ImageNet shift."""

    y: str  # testbed column of the shift
    x: str  # testbed column of the x axis (ImageNet val, or val on the shift's classes)
    cutoff_column: str  # column the in-plot cut-off applies to
    cutoff: float  # fraction; models below are not shown or fitted
    note: str = ""


# Why a shift's fit departs from the testbed's plot (the axes themselves are registry data).
_NOTES = {
    "imagenet-a": (
        "ImageNet-A was collected adversarially against ResNet-50, which scores ~0% on it; imagenet-testbed "
        "(plotting/paper_imagenet_a.py) leaves resnet50 out of the plot and fits two lines split at its x "
        "(91.86% on the A classes, 76.13% on full ImageNet). Here resnet50 and any model at ~0% are left out "
        "of the fit and one line is fitted over the rest."
    ),
}


def _imagenet_shifts() -> dict[str, ShiftAxis]:
    """Every registry entry with a testbed x axis: its columns and cut-off, in registry order."""
    return {
        name: ShiftAxis(entry["testbed_column"], entry["testbed_x"], entry["testbed_x"], entry["testbed_cutoff"], _NOTES.get(name, ""))
        for name, entry in labelspace.registry().items()
        if "testbed_x" in entry
    }


IMAGENET_SHIFTS = _imagenet_shifts()
SUBSET_SHIFTS = labelspace.class_subset_shifts()  # shifts whose testbed x axis is ImageNet val on their classes
NEAR_ZERO = 0.005  # a model below 0.5% on a shift is left out of that shift's fit (its logit is off the scale)
# Left out of the plot and the fit per shift, following the testbed's plotting scripts.
EXCLUDED = {"imagenet-a": {"resnet50": "ImageNet-A was filtered adversarially against ResNet-50 (testbed: paper_imagenet_a.py)"}}
X_AXES = ("class-subset", "full")
OOD_AVG_SHIFTS = tuple(IMAGENET_SHIFTS)  # WiSE-FT's five ImageNet shifts, in its tables' order

# Our dataset names -> open_clip results / model-soups column names.
OPENCLIP_COLUMNS = {
    "imagenet": "ImageNet 1k",
    "imagenetv2": "ImageNet v2",
    "imagenet-sketch": "ImageNet Sketch",
    "imagenet-a": "ImageNet-A",
    "imagenet-r": "ImageNet-R",
    "objectnet": "ObjectNet",
}
SOUPS_COLUMNS = {
    "imagenet": "ImageNet",
    "imagenetv2": "ImageNetV2",
    "imagenet-sketch": "ImageNetSketch",
    "imagenet-r": "ImageNetR",
    "objectnet": "ObjectNet",
    "imagenet-a": "ImageNetA",
    "imagenet-heldout": "ImageNet2p",
}
PAPER_COLUMNS = {
    "imagenet": "ImageNet",
    "imagenetv2": "ImageNetV2",
    "imagenet-r": "ImageNet-R",
    "imagenet-sketch": "ImageNet-Sketch",
    "objectnet": "ObjectNet",
    "imagenet-a": "ImageNet-A",
}


@cache
def testbed() -> pd.DataFrame:
    """imagenet-testbed natural-shift table (Taori et al. 2020), accuracies as fractions."""
    df = pd.read_csv(DATA / "imagenet_testbed_natural_shifts.csv")
    acc_cols = [c for c in df.columns if c not in ("model", "model_type", "nat_model_type", "eligible_for_line_fit")]
    df[acc_cols] = df[acc_cols] / 100.0
    return df


@cache
def eval_set_sizes() -> dict[str, int]:
    df = pd.read_csv(DATA / "imagenet_testbed_eval_set_sizes.csv")
    return dict(zip(df.column, df.n_images))


def testbed_points(shift: str, x_axis: str = "class-subset") -> pd.DataFrame:
    """Testbed models for one shift: ``model, model_type, x, y, x_n, y_n, in_plot, fit, why_not_fit`` (fractions).

    ``x_axis="class-subset"`` is the testbed's axis (ImageNet val on the shift's classes for R/A/ObjectNet);
    ``"full"`` puts the same models at their full-ImageNet accuracy (the axis published rows live on).
    The plotted and fitted models are the same on both axes. ``x_n`` / ``y_n`` are the eval-set sizes
    behind x and y (for Clopper-Pearson bars: the subset's n for a class-subset x).
    """
    if x_axis not in X_AXES:
        raise ValueError(f"x_axis must be one of {X_AXES}; got {x_axis!r}.")
    sizes = eval_set_sizes()
    if shift == "ood-avg":
        df = testbed()
        cols = [IMAGENET_SHIFTS[s].y for s in OOD_AVG_SHIFTS]
        rows = df.dropna(subset=["val", *cols])
        out = pd.DataFrame({"model": rows.model, "model_type": rows.model_type, "x": rows.val, "y": rows[cols].mean(axis=1)})
        out["x_n"], out["y_n"] = sizes["val"], sum(sizes[c] for c in cols)
        out["in_plot"] = rows.val >= 0.55
        out["fit"] = rows.eligible_for_line_fit.astype(bool) & out.in_plot
        out["why_not_fit"] = np.where(out.fit, "", np.where(out.in_plot, "not a standard model", "below the plot's cut-off"))
        return out.reset_index(drop=True)
    if shift not in IMAGENET_SHIFTS:
        raise KeyError(f"No testbed axis for {shift!r}; known: {', '.join(IMAGENET_SHIFTS)} and ood-avg.")
    axis = IMAGENET_SHIFTS[shift]
    x_col = axis.x if x_axis == "class-subset" else "val"
    rows = testbed().dropna(subset=list({axis.x, axis.y, x_col}))
    out = pd.DataFrame({"model": rows.model, "model_type": rows.model_type, "x": rows[x_col], "y": rows[axis.y]})
    out["x_n"], out["y_n"] = sizes.get(x_col, np.nan), sizes.get(axis.y, np.nan)
    excluded = EXCLUDED.get(shift, {})
    out["in_plot"] = (
        (rows[axis.cutoff_column] >= axis.cutoff) & ~rows.model.str.lower().str.contains("subsample") & ~rows.model.isin(excluded)
    )
    near_zero = out.y < NEAR_ZERO
    out["fit"] = rows.eligible_for_line_fit.astype(bool) & out.in_plot & ~near_zero
    why = np.array([excluded.get(m, "") for m in rows.model], dtype=object)
    why = np.where((why == "") & near_zero, f"~0% on {shift} (below {100 * NEAR_ZERO:g}%)", why)
    why = np.where((why == "") & ~out.in_plot, "below the plot's cut-off", why)
    why = np.where((why == "") & ~out.fit, "not a standard model", why)
    out["why_not_fit"] = why
    return out.reset_index(drop=True)


def imagenet_baseline(shift: str, transform: str = "logit", x_axis: str = "class-subset") -> dict:
    """The testbed baseline line for ``shift`` (or ``ood-avg``): slope, intercept, models used.

    ``x_axis="full"`` fits the same models against full-ImageNet accuracy: the line to compare a published
    row with when only its full-ImageNet accuracy is known (for V2, Sketch and the OOD avg both axes are the same).
    """
    points = testbed_points(shift, x_axis)
    fit = points[points.fit]
    slope, intercept = metrics.fit_baseline(fit.x.to_numpy(), fit.y.to_numpy(), transform)
    subset = shift in SUBSET_SHIFTS and x_axis == "class-subset"
    return {
        "slope": slope,
        "intercept": intercept,
        "n_models": int(len(fit)),
        "points": points,
        "x_column": IMAGENET_SHIFTS[shift].x if subset else "val",
        "x_axis": "class-subset" if subset else "full",
        "note": "" if shift == "ood-avg" else IMAGENET_SHIFTS[shift].note,
    }


def testbed_model(name: str) -> pd.Series:
    df = testbed()
    rows = df[df.model == name]
    if rows.empty:
        raise KeyError(f"No testbed model {name!r}.")
    return rows.iloc[0]


@cache
def openclip_zeroshot() -> pd.DataFrame:
    """open_clip zero-shot results (fractions), with our dataset names as extra columns."""
    df = pd.read_csv(DATA / "openclip_zeroshot_results.csv")
    for ours, col in OPENCLIP_COLUMNS.items():
        df[ours] = df[col]
    df["label"] = df["name"] + " / " + df["pretrained"]
    return df


@cache
def model_soups() -> pd.DataFrame:
    """Model-soups ViT-B/32 fine-tunes (72 individual + greedy and uniform soups), fractions."""
    rows = []
    for kind, fname in (
        ("individual", "individual_model_results.jsonl"),
        ("greedy soup", "greedy_soup_results.jsonl"),
        ("uniform soup", "uniform_soup_results.jsonl"),
    ):
        for line in (DATA / "model_soups" / fname).read_text().splitlines():
            if line.strip():
                rec = json.loads(line)
                rec["kind"] = kind
                rows.append(rec)
    df = pd.DataFrame(rows)
    for ours, col in SOUPS_COLUMNS.items():
        if col in df:
            df[ours] = df[col]
    df["model_name"] = df.get("model_name", pd.Series(index=df.index, dtype=object)).fillna(df["kind"])
    return df


@cache
def paper_tables() -> pd.DataFrame:
    """WiSE-FT / FLYP ImageNet rows as printed in the papers (percent converted to fractions).

    Extra columns: ``single_model`` (False for WiSE-FT's "optimal alpha per column" rows, where each column
    comes from its own alpha: they are not one model, so they get no rho and are drawn hollow) and
    ``source`` (paper and table, e.g. "FLYP talk slide": the FLYP numbers shipped here come from the
    authors' talk slides, not from the paper's tables).
    """
    df = pd.read_csv(DATA / "paper_tables.csv")
    for ours, col in PAPER_COLUMNS.items():
        df[ours] = df[col] / 100.0
    df["ood-avg"] = df["avg_shifts"] / 100.0
    df["single_model"] = ~df.method.str.contains("optimal alpha per column", regex=False)
    short = df.paper.str.extract(r"^([^(]+)\(", expand=False).str.strip().fillna(df.paper)
    df["source"] = short + " " + df.table
    return df


@cache
def paper_tables_other() -> pd.DataFrame:
    """LP-FT (and FLYP WILDS) rows as printed: ``paper, table, method, dataset, split, metric, value, ci`` (percent)."""
    return pd.read_csv(DATA / "paper_tables_other.csv")


def overlay_points(shift: str) -> pd.DataFrame:
    """Published models to overlay on an ImageNet effective-robustness plot: ``source, label, x, y, single_model``.

    x is full-ImageNet accuracy (all 1000 classes): none of these sources publishes class-subset
    accuracy. Those points therefore belong on a full-ImageNet x axis; for ImageNet-R/A/ObjectNet, whose
    testbed axis is class-subset x, compare them with ``imagenet_baseline(shift, x_axis="full")``.
    """
    frames = []
    target = shift
    oc = openclip_zeroshot()
    if target == "ood-avg":
        y = oc[list(OOD_AVG_SHIFTS)].mean(axis=1)
    else:
        y = oc[target]
    frames.append(pd.DataFrame({"source": "open_clip zero-shot", "label": oc.label, "x": oc.imagenet, "y": y}))
    soups = model_soups()
    ys = soups[list(OOD_AVG_SHIFTS)].mean(axis=1) if target == "ood-avg" else soups[target]
    frames.append(pd.DataFrame({"source": "model soups (ViT-B/32 fine-tunes)", "label": soups.model_name, "x": soups.imagenet, "y": ys}))
    papers = paper_tables()
    papers = papers[papers.imagenet.notna()]
    yp = papers["ood-avg"] if target == "ood-avg" else papers[target]
    label = papers.source + " · " + papers.model + ": " + papers.method
    label = label.where(papers.single_model, label + " (not a single model)")
    frames.append(
        pd.DataFrame(
            {"source": "papers (WiSE-FT, FLYP)", "label": label, "x": papers.imagenet, "y": yp, "single_model": papers.single_model}
        )
    )
    out = pd.concat(frames, ignore_index=True)
    out["single_model"] = out["single_model"].fillna(True).astype(bool)
    return out[np.isfinite(out.x.astype(float)) & np.isfinite(out.y.astype(float))].reset_index(drop=True)


def paper_er_data(target: str = "ood-avg", transform: str = "logit") -> dict:
    """What ``RunView.er_data`` returns, for the published ImageNet rows (WiSE-FT Table 5 as the curve).

    Every point, the testbed's included, sits at its full-ImageNet x (the papers report no class-subset
    accuracy), and the line is fitted on that x. Rows that take each column at its own alpha (``not a single
    model``) get no rho and come back in ``overlays`` (drawn hollow). Paper rows carry no per-example data,
    so there are no error bars and no rho intervals: ``x_lo``/``x_hi`` equal ``x``.
    """
    base = imagenet_baseline(target, transform, x_axis="full")
    fit_pts = base["points"][base["points"].fit]
    grid = np.linspace(0.3, 0.95, 60)
    base.update(
        source="imagenet-testbed standard models, full-ImageNet x",
        grid=grid,
        line=metrics.baseline_prediction(grid, base["slope"], base["intercept"], transform),
        band=metrics.bootstrap_fit_band(fit_pts.x.to_numpy(), fit_pts.y.to_numpy(), grid, transform, n_boot=200),
    )

    def rho(x, y):
        return 100 * metrics.effective_robustness(x, y, base["slope"], base["intercept"], transform)

    papers = paper_tables()
    y_col = "ood-avg" if target == "ood-avg" else target
    vit = papers[(papers.table == "Table 5") & (papers.method == "end-to-end")].sort_values("alpha")
    curve = pd.DataFrame({"alpha": vit.alpha.astype(float), "x": vit.imagenet, "y": vit[y_col]}).reset_index(drop=True)
    for c in ("x", "y"):
        curve[f"{c}_lo"] = curve[f"{c}_hi"] = curve[c]
    curve["rho"] = rho(curve.x, curve.y)
    others = papers[papers.table != "Table 5"].dropna(subset=["imagenet", y_col])
    labels = others.source + " · " + others.model + ": " + others.method
    rows = pd.DataFrame({"model": labels, "x": others.imagenet, "y": others[y_col], "single": others.single_model})
    rows["rho"] = np.where(rows.single, rho(rows.x, rows.y), np.nan)
    endpoints = rows[rows.single].drop(columns=["single"]).reset_index(drop=True)
    endpoints["group"] = np.where(endpoints.model.str.contains("zero-shot"), "zero-shot", "fine-tuned")
    hollow = rows[~rows.single]
    overlays = pd.DataFrame(
        {"source": "papers (WiSE-FT, FLYP)", "label": hollow.model + " (not a single model)", "x": hollow.x, "y": hollow.y}
    ).assign(single_model=False)
    table = pd.concat(
        [curve[["alpha", "x", "y", "rho"]].assign(model="WiSE-FT ViT-B/16 (Table 5)"), rows.drop(columns=["single"])],
        ignore_index=True,
    )
    return {
        "baseline": base,
        "curve": curve,
        "ensemble": curve.iloc[:0][["alpha", "x", "y"]],
        "endpoints": endpoints,
        "table": table,
        "overlays": overlays.reset_index(drop=True),
    }
