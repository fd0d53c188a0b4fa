"""Published accuracy tables (shipped in ``reference_data/``, see its README for sources and licences).

All accuracies returned here are **fractions** (the testbed and timm files are in percent, open_clip and
model-soups in fractions; this module converts).

The ImageNet baselines follow the imagenet-testbed's plotting scripts: a model is fitted if it is a
standard model (``eligible_for_line_fit``) and passes the per-plot accuracy cut-off; for ImageNet-R,
ImageNet-A and ObjectNet the x axis is ImageNet val restricted to the shift's classes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

from . import metrics

DATA = Path(__file__).parent / "reference_data"


@dataclass(frozen=True)
class ShiftAxis:
    """How the testbed plots one ImageNet shift."""

    y: str  # testbed column of the shift
    x: str  # testbed column of the x axis (ImageNet val, or val on the shift's classes)
    cutoff_column: str  # column the in-plot cut-off applies to
    cutoff: float  # fraction; models below are not shown or fitted
    note: str = ""


IMAGENET_SHIFTS = {
    "imagenetv2": ShiftAxis("imagenetv2-matched-frequency-format-val", "val", "val", 0.55),
    "imagenet-sketch": ShiftAxis("imagenet-sketch", "val", "val", 0.55),
    "objectnet": ShiftAxis("objectnet-1.0-beta", "val-on-objectnet-classes", "val-on-objectnet-classes", 0.55),
    "imagenet-r": ShiftAxis("imagenet-r", "val-on-imagenet-r-classes", "val-on-imagenet-r-classes", 0.75),
    "imagenet-a": ShiftAxis(
        "imagenet-a",
        "val-on-imagenet-a-classes",
        "val-on-imagenet-a-classes",
        0.75,
        note="The testbed fits ImageNet-A piecewise (split at 91.86% x); one line is fitted here.",
    ),
}
OOD_AVG_SHIFTS = ("imagenetv2", "imagenet-r", "imagenet-sketch", "objectnet", "imagenet-a")

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


def testbed_points(shift: str) -> pd.DataFrame:
    """Testbed models for one shift: ``model, model_type, x, y, in_plot, fit`` (fractions)."""
    if shift == "ood-avg":
        df = testbed()
        cols = [IMAGENET_SHIFTS[s].y for s in OOD_AVG_SHIFTS]
        rows = df.dropna(subset=["val", *cols])
        out = pd.DataFrame({"model": rows.model, "model_type": rows.model_type, "x": rows.val, "y": rows[cols].mean(axis=1)})
        out["in_plot"] = rows.val >= 0.55
        out["fit"] = rows.eligible_for_line_fit.astype(bool) & out.in_plot
        return out.reset_index(drop=True)
    if shift not in IMAGENET_SHIFTS:
        raise KeyError(f"No testbed axis for {shift!r}; known: {', '.join(IMAGENET_SHIFTS)} and ood-avg.")
    axis = IMAGENET_SHIFTS[shift]
    rows = testbed().dropna(subset=[axis.x, axis.y])
    out = pd.DataFrame({"model": rows.model, "model_type": rows.model_type, "x": rows[axis.x], "y": rows[axis.y]})
    out["in_plot"] = (rows[axis.cutoff_column] >= axis.cutoff) & ~rows.model.str.lower().str.contains("subsample")
    out["fit"] = rows.eligible_for_line_fit.astype(bool) & out.in_plot
    return out.reset_index(drop=True)


def imagenet_baseline(shift: str, transform: str = "logit") -> dict:
    """The testbed baseline line for ``shift`` (or ``ood-avg``): slope, intercept, models used."""
    points = testbed_points(shift)
    fit = points[points.fit]
    slope, intercept = metrics.fit_baseline(fit.x.to_numpy(), fit.y.to_numpy(), transform)
    return {
        "slope": slope,
        "intercept": intercept,
        "n_models": int(len(fit)),
        "points": points,
        "x_column": "val" if shift == "ood-avg" else IMAGENET_SHIFTS[shift].x,
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
    """WiSE-FT / FLYP ImageNet rows as printed in the papers (percent converted to fractions)."""
    df = pd.read_csv(DATA / "paper_tables.csv")
    for ours, col in PAPER_COLUMNS.items():
        df[ours] = df[col] / 100.0
    df["ood-avg"] = df["avg_shifts"] / 100.0
    return df


@cache
def paper_tables_other() -> pd.DataFrame:
    """LP-FT (and FLYP WILDS) rows as printed: ``paper, table, method, dataset, split, metric, value, ci`` (percent)."""
    return pd.read_csv(DATA / "paper_tables_other.csv")


def overlay_points(shift: str) -> pd.DataFrame:
    """Published models to overlay on an ImageNet effective-robustness plot: ``source, label, x, y``.

    x is ImageNet accuracy (all classes; the sources do not publish class-subset accuracies, so for
    R/A/ObjectNet these points sit on a different x than the testbed cloud, as in the WiSE-FT paper).
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
    frames.append(
        pd.DataFrame({"source": "papers (WiSE-FT, FLYP)", "label": papers.model + ": " + papers.method, "x": papers.imagenet, "y": yp})
    )
    out = pd.concat(frames, ignore_index=True)
    return out[np.isfinite(out.x.astype(float)) & np.isfinite(out.y.astype(float))].reset_index(drop=True)
