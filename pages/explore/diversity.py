"""Diversity & confidence (WiSE-FT section 5.1): how differently zero-shot and fine-tuned models err."""

import streamlit as st

from dashboard.charts import PLOTLY_CONFIG, diversity_figure, margin_figure
from dashboard.state import ci_texts, download_csv, how_to_read, method_page, session_table, shared_figure

page = method_page("Diversity & confidence · {label}")
view, method, i, alpha = page.view, page.method, page.i, page.alpha
how_to_read(
    "Ensembling helps when the two models make *different* mistakes. **Prediction diversity** is the fraction of "
    "examples where exactly one of them is right; **1 − Cohen's κ** measures disagreement beyond chance; **KL** "
    "compares their softmax outputs; **1 − CKA** compares their features (0 = same representation). The WiSE-FT "
    "paper asks whether diversity is larger under shift than on ID; the sentence below answers it for this run, "
    "shift by shift, with a 95% bootstrap interval of the difference (the shift and the ID set are different images, "
    "so they are resampled independently)."
)
div = view.diversity(method)
st.plotly_chart(  # alpha-independent: built once per method and process
    shared_figure(view, ("diversity", method), lambda: diversity_figure(div)), width="stretch", config=PLOTLY_CONFIG, key="div-chart"
)
st.markdown(view.narrate_diversity(method))
st.dataframe(
    div,
    width="stretch",
    column_config={
        "prediction diversity": st.column_config.NumberColumn(format="%.3f", help="fraction of examples where exactly one is right"),
        "1 - Cohen's κ": st.column_config.NumberColumn(format="%.3f"),
        "KL(zero-shot ‖ fine-tuned)": st.column_config.NumberColumn(format="%.3f", help="nats per example; not bounded by 1"),
        "1 - CKA": st.column_config.NumberColumn(format="%.3f", help="empty where the store keeps no features"),
    },
)
download_csv(div, f"{page.run}-{method}-diversity.csv")
div_ev = view.diversity_evidence(method)
if not div_ev.empty:
    with st.expander("Prediction diversity under each shift minus on ID, with 95% intervals"):
        shown = div_ev.drop(columns=["sign"]).assign(**{"Δ vs ID, pts [95% CI]": ci_texts(div_ev, "Δ vs ID (points)", "low", "high")})
        st.dataframe(
            shown.drop(columns=["Δ vs ID (points)", "low", "high"]),
            width="stretch",
            column_config={c: st.column_config.NumberColumn(format="%.1f") for c in shown.columns if c.endswith("(%)")},
        )

st.subheader("Confidence: margins of correct and incorrect predictions")
how_to_read(
    "Margin = top-1 minus top-2 output. The right half of each violin is correct predictions, the left half "
    "incorrect ones. The WiSE-FT paper (App. E) relates a model's confidence to how much it dominates a plain "
    "average of outputs. The sentence under the chart compares the mean margins of this run's two models on the "
    "chosen set, among each model's correct and among its incorrect predictions (images resampled jointly, 95%)."
)


@st.fragment
def confidence_section() -> None:
    """Its dataset picker reruns only this section (not the sidebar and the rest of the page)."""
    dataset = st.selectbox(
        "Dataset", view.store.datasets, index=view.store.datasets.index(view.shifts[0]) if view.shifts else 0, key="margin_ds"
    )
    fig = shared_figure(view, ("margins", method, dataset), lambda: margin_figure(view.margins(method, dataset, None, max_rows=4000)))
    st.plotly_chart(fig, width="stretch", config=PLOTLY_CONFIG, key="margin-chart")
    st.markdown(view.narrate_confidence(method, dataset))
    st.caption(f"Violins: zero-shot and fine-tuned (up to 4,000 examples each). The table adds θ({alpha:.2f}) and uses every example.")
    st.dataframe(
        session_table(("margins", id(view), method, dataset, i), lambda: view.margin_summary(method, dataset, i)),
        width="stretch",
        column_config={
            "count": st.column_config.NumberColumn(format="%d"),
            "mean": st.column_config.NumberColumn("mean margin", format="%.3f"),
            "median": st.column_config.NumberColumn("median margin", format="%.3f"),
        },
    )


confidence_section()

st.subheader(f"Who wins a disagreement at α = {alpha:.2f}?")
how_to_read(
    "Among examples where zero-shot and fine-tuned predict different classes: **zero-shot overrides** is how often "
    "θ(α) sides with the zero-shot model, **is overridden** how often it sides with the fine-tuned one."
)
over = view.overrides(method, i)
st.dataframe(
    session_table(("overrides", id(view), method, i), lambda: over),
    width="stretch",
    column_config={c: st.column_config.NumberColumn(format="percent") for c in over.columns},
)
download_csv(over, f"{page.run}-{method}-overrides-alpha{alpha:.2f}.csv")
