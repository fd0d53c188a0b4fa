"""The papers' numbers: WiSE-FT, LP-FT and FLYP tables as printed, on the same axes as your run."""

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from dashboard.charts import PLOTLY_CONFIG, er_figure
from dashboard.state import download_csv, how_to_read, show_notices
from robust_core import metrics, reference

show_notices()
st.title("The papers' numbers")
how_to_read(
    "Rows as printed in the papers (percent), with their sources. The scatter places the WiSE-FT and FLYP ImageNet "
    "rows on logit axes against the imagenet-testbed's standard models, the same construction as the "
    "Effective-robustness page uses for your run."
)
papers = reference.paper_tables()
st.subheader("WiSE-FT (Wortsman et al., CVPR 2022) and FLYP (Goyal et al., CVPR 2023) on ImageNet")
cols = [
    "paper",
    "table",
    "model",
    "method",
    "alpha",
    "ImageNet",
    "ImageNetV2",
    "ImageNet-R",
    "ImageNet-Sketch",
    "ObjectNet",
    "ImageNet-A",
    "avg_shifts",
]
st.dataframe(papers[cols], hide_index=True, width="stretch")
download_csv(papers[cols], "paper_tables.csv")

target = st.selectbox("OOD target", ["ood-avg", *reference.OOD_AVG_SHIFTS], key="papers_target")
base = reference.imagenet_baseline(target)
grid = np.linspace(0.3, 0.95, 60)
base.update(
    source="imagenet-testbed standard models",
    grid=grid,
    line=metrics.baseline_prediction(grid, base["slope"], base["intercept"]),
    band=metrics.bootstrap_fit_band(base["points"][base["points"].fit].x, base["points"][base["points"].fit].y, grid, n_boot=200),
)
vit = papers[(papers.table == "Table 5") & (papers.method == "end-to-end")].sort_values("alpha")
y_col = "ood-avg" if target == "ood-avg" else target
curve = pd.DataFrame({"alpha": vit.alpha.astype(float), "x": vit.imagenet, "y": vit[y_col]})
for c in ("x", "y"):
    curve[f"{c}_lo"] = curve[f"{c}_hi"] = curve[c]
curve["rho"] = 100 * metrics.effective_robustness(curve.x, curve.y, base["slope"], base["intercept"])
others = papers[papers.table != "Table 5"].dropna(subset=["imagenet", y_col])
endpoints = pd.DataFrame({"model": others.model + ": " + others.method, "x": others.imagenet, "y": others[y_col]})
endpoints["rho"] = 100 * metrics.effective_robustness(endpoints.x, endpoints.y, base["slope"], base["intercept"])
er = {"baseline": base, "curve": curve, "ensemble": curve.iloc[:0].assign(alpha=[], x=[], y=[]), "endpoints": endpoints}
fig = er_figure(er, "logit", 0.5, "ImageNet", target, "ViT-B/16 end-to-end (Table 5: α = 0, 0.5, 1)")
st.plotly_chart(fig, width="stretch", config=PLOTLY_CONFIG, key="papers-chart")
st.caption("x is ImageNet top-1 on all 1000 classes for the paper rows; the testbed cloud for R/A/ObjectNet uses class-subset x.")
st.dataframe(
    pd.concat([curve[["alpha", "x", "y", "rho"]].assign(model="WiSE-FT ViT-B/16 (Table 5)"), endpoints]), hide_index=True, width="stretch"
)

st.subheader("LP-FT (Kumar et al., ICLR 2022)")
other = reference.paper_tables_other()
lpft = other[other.paper.str.startswith("LP-FT")]
avg = lpft[lpft.dataset == "average"].pivot_table(index="method", columns="split", values="value")
st.markdown("Averages over the paper's ID and OOD benchmarks (percent): LP-FT beats both FT and LP out of distribution.")
st.dataframe(avg, width="stretch")
fig2 = go.Figure()
for method, row in avg.iterrows():
    fig2.add_trace(
        go.Scatter(
            x=[row.get("ID")],
            y=[row.get("OOD")],
            mode="markers+text",
            text=[method],
            textposition="top center",
            marker=dict(size=16),
            name=method,
        )
    )
fig2.update_layout(xaxis_title="ID average (%)", yaxis_title="OOD average (%)", height=380, margin=dict(l=60, r=20, t=30, b=50))
st.plotly_chart(fig2, width="stretch", config=PLOTLY_CONFIG, key="lpft-chart")
with st.expander("All LP-FT and FLYP (WILDS) rows"):
    st.dataframe(other, hide_index=True, width="stretch")
    download_csv(other, "paper_tables_other.csv")
st.caption("Sources: see robust_core/reference_data/README.md (paper_tables.csv, paper_tables_other.csv).")
