"""Tradeoff: accuracy vs alpha for ID, each shift and OOD avg; the alphas a user might pick."""

import streamlit as st

from dashboard.charts import PLOTLY_CONFIG, label_free_figure, set_tradeoff_alpha, set_vline_alpha, tradeoff_figure
from dashboard.state import download_csv, how_to_read, method_page, pct, points, session_figure

page = method_page("ID / OOD tradeoff · {label}")
view, method, alpha = page.view, page.method, page.alpha
how_to_read(
    "Each line is accuracy as α moves from the zero-shot model (α = 0) to the fine-tuned one (α = 1). "
    "Solid lines are **WiSE-FT** (weights interpolated); dashed lines are the **output-space ensemble** of the two "
    "endpoints (a different, twice-as-expensive model). The robustness story is in the red OOD-avg line: "
    "if it bulges above both endpoints, a middle α gets ID gains without paying for them under shift."
)
cards = view.cards(method, alpha)
c = st.columns(4)
c[0].metric(f"ID ({view.id}) at α={cards['alpha']:.2f}", pct(cards["id"]), points(cards["id_vs_zeroshot"]) + " vs zero-shot")
c[1].metric("ID vs fine-tuned", points(cards["id_vs_finetuned"]))
c[2].metric("OOD avg", pct(cards["ood"]), points(cards["ood_vs_zeroshot"]) + " vs zero-shot")
c[3].metric("OOD avg vs fine-tuned", points(cards["ood_vs_finetuned"]))

show_shifts = st.toggle("Show every shift", value=True)
wise, ensemble = view.curves(method, "wise"), view.curves(method, "ensemble")
fig = session_figure(
    ("tradeoff", id(view), method, show_shifts),
    lambda: tradeoff_figure(wise, ensemble, view.id, view.shifts, cards["alpha"], show_shifts),
)
set_tradeoff_alpha(fig, wise, cards["alpha"])
st.plotly_chart(fig, width="stretch", config=PLOTLY_CONFIG, key="tradeoff-chart")

st.subheader(f"Every set at α = {cards['alpha']:.2f}")
table = view.point_table(method, alpha)
# column_config formatting instead of a pandas Styler: the same look, far cheaper on every slider move
st.dataframe(100 * table, width="stretch", column_config={c: st.column_config.NumberColumn(c, format="%.2f") for c in table.columns})
download_csv(table, f"{page.run}-{method}-alpha{cards['alpha']:.2f}.csv")

st.subheader("Which α would you pick?")
how_to_read(
    "Four rules side by side. *Best on ID validation* uses only held-out ID labels — what you can do in practice. "
    "*0.5* is the WiSE-FT paper's default. The *OOD oracle* peeks at OOD test labels (an upper bound, not a method). "
    "The *label-free estimate* predicts OOD accuracy from how often models agree on unlabelled OOD images "
    "(agreement-on-the-line, Baek et al. 2022)."
)
picks = view.picks(method)
st.dataframe(
    picks.assign(ID=100 * picks["ID"], **{"OOD avg": 100 * picks["OOD avg"]}),
    hide_index=True,
    width="stretch",
    column_config={
        "alpha": st.column_config.NumberColumn("α", format="%.2f"),
        "ID": st.column_config.NumberColumn("ID (%)", format="%.1f"),
        "OOD avg": st.column_config.NumberColumn("OOD avg (%)", format="%.1f"),
    },
)
download_csv(picks, f"{page.run}-{method}-alpha-picks.csv")

st.subheader("How good is the label-free OOD estimate?")
lf = view.label_free(method)
lf_fig = session_figure(("label-free", id(view), method), lambda: label_free_figure(lf, cards["alpha"]))
st.plotly_chart(set_vline_alpha(lf_fig, cards["alpha"]), width="stretch", config=PLOTLY_CONFIG, key="labelfree-chart")
st.caption(f"Mean absolute error of the estimate across the α grid: {100 * lf['error'].abs().mean():.2f} points.")
download_csv(lf, f"{page.run}-{method}-label-free.csv")
