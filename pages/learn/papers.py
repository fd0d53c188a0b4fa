"""The papers' numbers: WiSE-FT, LP-FT and FLYP tables as printed, on the same axes as your run."""

import streamlit as st

from dashboard.charts import PLOTLY_CONFIG, er_figure, lpft_average_figure
from dashboard.state import download_csv, how_to_read, show_notices
from robust_core import reference

show_notices()
st.title("The papers' numbers")
how_to_read(
    "Rows as printed in the papers (percent), with their sources. The scatter places the WiSE-FT and FLYP ImageNet "
    "rows on logit axes against the imagenet-testbed's standard models, the same construction as the "
    "Effective-robustness page uses for your run, with one difference: the published rows only report accuracy on "
    "all of ImageNet, so **every point here, the testbed's included, sits at its full-ImageNet x** and the line is "
    "fitted on that x. (The testbed's own ImageNet-R/A/ObjectNet plots use ImageNet restricted to the shift's "
    "classes; a full-ImageNet point against that line would overstate ρ by about 15 points.) Rows labelled *not a "
    "single model* take each column at its own α: they are drawn hollow and get no ρ."
)
papers = reference.paper_tables()
st.subheader("WiSE-FT (Wortsman et al., CVPR 2022) and FLYP (Goyal et al., CVPR 2023) on ImageNet")
cols = [
    "source",
    "single_model",
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
shown = papers[cols].assign(alpha=[("per column" if a is None or a != a else f"{float(a):g}") for a in papers.alpha])
st.dataframe(shown, hide_index=True, width="stretch", column_config={"single_model": st.column_config.CheckboxColumn("single model")})
download_csv(papers[cols], "paper_tables.csv")

target = st.selectbox("OOD target", ["ood-avg", *reference.OOD_AVG_SHIFTS], key="papers_target")
er = reference.paper_er_data(target)
base = er["baseline"]
fig = er_figure(
    er,
    "logit",
    list(er["curve"].alpha).index(0.5),
    "ImageNet (all classes)",
    target,
    "ViT-B/16 end-to-end (Table 5: α = 0, 0.5, 1)",
    er["overlays"],
)
st.plotly_chart(fig, width="stretch", config=PLOTLY_CONFIG, key="papers-chart")
notes = [
    f"Line: {base['n_models']} testbed standard models, logit fit on full-ImageNet x "
    f"T(y) = {base['slope']:.3f}·T(x) {'+' if base['intercept'] >= 0 else '−'} {abs(base['intercept']):.3f}.",
    base.get("note", ""),
]
if (papers.table == "talk slide").any():
    notes.append(
        "FLYP rows come from the authors' talk slides, not from the paper's tables; the slide's 'ImageNet OOD' is an "
        "average whose shift set the slide does not state, so compare it with the OOD avg here with care."
    )
st.caption(" ".join(n for n in notes if n))
table = er["table"].copy()
table["ρ"] = [f"{r:+.1f}" if r == r else "no ρ: not a single model" for r in table.rho]
st.dataframe(table.drop(columns=["rho"]), hide_index=True, width="stretch")

st.subheader("LP-FT (Kumar et al., ICLR 2022)")
other = reference.paper_tables_other()
lpft = other[other.paper.str.startswith("LP-FT")]
avg = lpft[lpft.dataset == "average"].pivot_table(index="method", columns="split", values="value")
if "OOD" in avg:
    ranked = avg["OOD"].sort_values(ascending=False)
    st.markdown(
        "Averages over the paper's ID and OOD benchmarks (percent), as printed: out of distribution "
        + " > ".join(f"{m} {v:.1f}" for m, v in ranked.items())
        + ". The paper gives 90% intervals over three runs per dataset (table below), not for these averages."
    )
st.dataframe(avg, width="stretch")
st.plotly_chart(lpft_average_figure(avg), width="stretch", config=PLOTLY_CONFIG, key="lpft-chart")
with st.expander("All LP-FT and FLYP (WILDS) rows"):
    st.dataframe(other, hide_index=True, width="stretch")
    download_csv(other, "paper_tables_other.csv")
st.caption("Sources: see robust_core/reference_data/README.md (paper_tables.csv, paper_tables_other.csv).")
