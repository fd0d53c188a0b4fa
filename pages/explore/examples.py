"""Examples & classes: which images and classes flip between zero-shot, fine-tuned and theta(alpha)."""

import pandas as pd
import streamlit as st

from dashboard.alpha_sync import built_with_frames
from dashboard.charts import PLOTLY_CONFIG, example_cards_html, per_class_figure
from dashboard.state import download_csv, how_to_read, method_page, session_figure, session_table, shared_figure

page = method_page("Examples & classes · {label}")
view, method, i, alpha = page.view, page.method, page.i, page.alpha
how_to_read(
    "Images on which the zero-shot and fine-tuned models disagree, with each model's top-3 guesses and those of "
    "θ(α) at the current α. Green ✓ marks a correct top-1. Below, the per-class accuracy change on the chosen set, "
    "with a paired 95% interval per class (images resampled within the class). Bars drawn pale are not "
    "distinguishable from 0 at that class's n (the interval includes 0 or McNemar's exact test is not significant)."
)


@st.fragment
def examples_and_classes() -> None:
    """The filters (set, class, who is right) rerun only this body; the sidebar's alpha reruns the page."""
    c1, c2, c3 = st.columns(3)
    dataset = c1.selectbox(
        "Dataset", view.store.datasets, index=view.store.datasets.index(view.shifts[0]) if view.shifts else 0, key="ex_ds"
    )
    classes = view.store.classnames(dataset)
    class_name = c2.selectbox("Class", ["(all)", *classes], key="ex_class")
    who = c3.radio("Who is right", ["any", "zero-shot right", "fine-tuned right", "both wrong"], horizontal=True, key="ex_who")
    table = view.disagreements(method, dataset, i, who, None if class_name == "(all)" else class_name, limit=48)
    st.caption(f"{len(table)} examples shown (at most 48).")
    if table.empty:
        st.info("No disagreements match these filters.")
    else:
        # one HTML element for the whole grid (48 cards as Streamlit containers were ~1,200 elements per rerun)
        grid = session_figure(
            ("example-grid", id(view), method, dataset, i, who, class_name),
            lambda: example_cards_html(table, [view.thumbnail(dataset, k) for k in table["index"]], alpha),
        )
        st.html(grid)
        if view.thumbnail(dataset, table["index"].iloc[0]) is None:
            st.caption("This store has no thumbnails (stores built with `eval` keep only logits); the table lists the examples.")
        with st.expander("As a table"):
            st.dataframe(
                session_table(("example-table", id(view), method, dataset, i, who, class_name), lambda: table),
                hide_index=True,
                width="stretch",
            )
            download_csv(table, f"{page.run}-{method}-{dataset}-disagreements.csv")

    st.subheader(f"Per-class accuracy change on {dataset}")
    per_class = view.per_class(method, dataset, i)
    selected = None if class_name == "(all)" else class_name
    st.markdown(
        view.narrate_per_class(method, dataset, i, "fine-tuned − zero-shot")
        + " "
        + view.narrate_per_class(method, dataset, i).replace(f"On {dataset}, ", "At this α, ")
    )
    c1, c2 = st.columns(2)
    c1.plotly_chart(
        shared_figure(  # alpha-independent: built once per set, class and process
            view,
            ("pc-ft", method, dataset, selected),
            lambda: per_class_figure(per_class, "fine-tuned − zero-shot", "fine-tuned vs zero-shot", selected=selected),
        ),
        width="stretch",
        config=PLOTLY_CONFIG,
        key="pc-ft",
    )
    alphas = view.alphas(method)

    def _per_class_at(k):
        return per_class_figure(
            view.per_class(method, dataset, k), "θ(α) − zero-shot", f"θ({alphas[k]:.2f}) vs zero-shot", selected=selected
        )

    # built at every grid alpha once per process and shared by the sessions, each carrying every alpha's bars; a
    # session keeps sending the one at the alpha it first drew (the page script shows the slider's bars on it).
    # Built per alpha by the session only if the builds' traces differ.
    per_alpha = built_with_frames(view, ("pc-alpha", method, dataset, selected), _per_class_at, len(alphas))
    c2.plotly_chart(
        session_figure(("pc-alpha", id(view), method, dataset, selected), lambda: per_alpha[i])
        if per_alpha is not None
        else session_figure(("pc-alpha", id(view), method, dataset, selected, i), lambda: _per_class_at(i)),
        width="stretch",
        config=PLOTLY_CONFIG,
        key="pc-alpha",
    )

    # numbers, not "+3.1 [+1.2, +5.0]" strings: the columns sort as numbers, and 1,000 classes are not formatted
    # into 2,000 strings on every slider move (the grid formats them in the browser)
    def _per_class_shown():
        shown = {c: per_class[c].to_numpy() for c in ("class", "n", "zero-shot", "fine-tuned", "theta(alpha)")}
        for col in ("fine-tuned − zero-shot", "θ(α) − zero-shot"):
            for suffix in ("", " low", " high"):
                shown[f"{col}{suffix}"] = 100 * per_class[f"{col}{suffix}"].to_numpy(float)
            shown[f"{col}: verdict"] = per_class[f"{col} verdict"].to_numpy()
        return pd.DataFrame(shown)

    shown = session_table(("per-class", id(view), method, dataset, i), _per_class_shown)
    points_format = {}
    for col, short in (("fine-tuned − zero-shot", "FT − ZS"), ("θ(α) − zero-shot", f"θ({alpha:.2f}) − ZS")):
        for suffix, name in (("", f"{short}, pts"), (" low", f"{short}: 95% low"), (" high", f"{short}: 95% high")):
            points_format[f"{col}{suffix}"] = st.column_config.NumberColumn(name, format="%+.1f")
        points_format[f"{col}: verdict"] = st.column_config.TextColumn(f"{short}: verdict")
    st.dataframe(
        shown,
        hide_index=True,
        width="stretch",
        column_config={
            **{c: st.column_config.NumberColumn(c, format="percent") for c in ("zero-shot", "fine-tuned")},
            "theta(alpha)": st.column_config.NumberColumn(f"θ({alpha:.2f})", format="percent"),
            **points_format,
        },
    )
    st.caption("Differences in accuracy points with their paired 95% interval; sort any column by clicking its header.")
    download_csv(per_class, f"{page.run}-{method}-{dataset}-per-class.csv")


examples_and_classes()
