"""Tradeoff: accuracy vs alpha for ID, each shift and OOD avg, with paired intervals; the alphas a user might pick."""

import streamlit as st

from dashboard.charts import (
    PLOTLY_CONFIG,
    label_free_figure,
    set_single_models_alpha,
    set_tradeoff_alpha,
    set_vline_alpha,
    single_models_figure,
    tradeoff_figure,
)
from dashboard.state import ci_texts, delta_caption, download_csv, how_to_read, method_page, moving_figure, pct, points, session_table
from robust_core.analysis import REFERENCES

page = method_page("ID / OOD tradeoff · {label}")
view, method, i, alpha = page.view, page.method, page.i, page.alpha
how_to_read(
    "Each line is accuracy as α moves from the zero-shot model (α = 0) to the fine-tuned one (α = 1). "
    "Solid lines are **WiSE-FT** (weights interpolated); dashed lines are the **output-space ensemble** of the two "
    "endpoints (a different, twice-as-expensive model). If the OOD-avg line rises above both endpoints, a middle α "
    "gets ID gains without paying for them under shift; whether it does on this run is stated below the cards.\n\n"
    "**Evidence.** Every difference is *paired*: the models are scored on the same images, so the images are "
    "resampled once and both models re-scored (percentile bootstrap, 2,000 resamples, 95%; OOD avg resamples within "
    "each shift, then averages). McNemar's exact test on the images where exactly one model is right is shown beside "
    "it. Two per-model error bars that overlap do **not** mean a difference is noise; read the paired interval. "
    "Where it includes 0 the page says *not distinguishable at n = …* instead of naming a direction."
)
cards = view.cards(method, i)
c = st.columns(4)


def card(col, label, value, delta, interval, reference):
    col.metric(label, value, delta, delta_color="normal" if interval is None or interval.sign else "off")
    if interval is not None:
        col.caption(delta_caption(interval, reference))


card(
    c[0],
    f"ID ({view.id}) at α={cards['alpha']:.2f}",
    pct(cards["id"]),
    points(cards["id_vs_zeroshot"]) + " vs zero-shot",
    cards.get("id_vs_zeroshot_ci"),
    "zero-shot",
)
card(c[1], "ID vs fine-tuned", points(cards["id_vs_finetuned"]), None, cards.get("id_vs_finetuned_ci"), "fine-tuned")
card(c[2], "OOD avg", pct(cards["ood"]), points(cards["ood_vs_zeroshot"]) + " vs zero-shot", cards.get("ood_vs_zeroshot_ci"), "zero-shot")
card(c[3], "OOD avg vs fine-tuned", points(cards["ood_vs_finetuned"]), None, cards.get("ood_vs_finetuned_ci"), "fine-tuned")
st.markdown("\n".join(f"- {sentence}" for sentence in view.narrate_tradeoff(method, i)))

show_shifts = st.toggle("Show every shift", value=True)
wise, ensemble = view.curves(method, "wise"), view.curves(method, "ensemble")
fig = moving_figure(
    view,
    ("tradeoff", method, show_shifts),
    lambda: tradeoff_figure(wise, ensemble, view.id, view.shifts, i, show_shifts),
    lambda f, k: set_tradeoff_alpha(f, wise, k),
    len(wise),
    i,
)
st.plotly_chart(fig, width="stretch", config=PLOTLY_CONFIG, key="tradeoff-chart")
st.caption(" ".join(view.narrate_path(method)))

st.subheader(f"Every set at α = {cards['alpha']:.2f}: θ(α) against both endpoints")
ev = view.evidence_table(method, i)


def _evidence_shown():
    shown = ev[["θ(α) (%)"]].copy()
    for ref in REFERENCES:
        shown[f"Δ vs {ref}, pts [95% CI]"] = ci_texts(ev, f"Δ vs {ref}", f"Δ vs {ref} low", f"Δ vs {ref} high")
        shown[f"McNemar p vs {ref}"] = ev[f"McNemar p vs {ref}"]
        shown[f"vs {ref}"] = ev[f"vs {ref}"]
    shown["n"] = ev["n"]
    return shown


# formatted tables are built once per (method, alpha) and session, then reused on every later visit of that alpha
shown = session_table(("evidence-shown", id(view), method, i), _evidence_shown)
st.dataframe(
    shown,
    width="stretch",
    height=35 * (shown.num_rows + 1) + 3,  # every set visible without scrolling
    column_config={
        "θ(α) (%)": st.column_config.NumberColumn(format="%.1f"),
        **{f"McNemar p vs {ref}": st.column_config.NumberColumn(format="%.3f") for ref in REFERENCES},
    },
)
st.caption("OOD avg has no McNemar test (it averages several sets); its interval resamples within each shift.")
table = view.point_table(method, i)
with st.expander("Accuracy of every model at this α (zero-shot, fine-tuned, WiSE-FT, output-space ensemble)"):
    # column_config formatting instead of a pandas Styler: the same look, far cheaper on every slider move
    st.dataframe(
        session_table(("points", id(view), method, i), lambda: 100 * table),
        width="stretch",
        column_config={c: st.column_config.NumberColumn(c, format="%.2f") for c in table.columns},
    )
download_csv(
    lambda: table.join(ev.drop(columns=["θ(α) (%)"]).add_suffix(" (points, paired)")), f"{page.run}-{method}-alpha{cards['alpha']:.2f}.csv"
)

if len(view.store.methods) > 1:
    with st.expander(f"Fine-tuned {page.label} against the other methods' fine-tuned models"):
        mvm = view.method_vs_method(method)
        mvm_shown = mvm.assign(**{"Δ, pts [95% CI]": ci_texts(mvm, "Δ (points)", "low", "high")})[
            ["other method", "dataset", "Δ, pts [95% CI]", "McNemar p", "verdict", "n"]
        ]
        st.dataframe(mvm_shown, hide_index=True, width="stretch", column_config={"McNemar p": st.column_config.NumberColumn(format="%.3f")})
        st.caption(f"Δ = fine-tuned {page.label} minus the other method's fine-tuned model, on the same images.")
        download_csv(mvm, f"{page.run}-{method}-method-vs-method.csv")

singles = view.single_models(method, i)
if len(singles):
    st.subheader("Model soups and single models beside the curve")
    how_to_read(
        "Single models stored with this run, drawn beside the WiSE-FT curve of the selected method: **model soups** "
        "(Wortsman et al. 2022; the uniform soup averages the weights of every FT run, the greedy soup adds runs in "
        "order of ID-validation accuracy while that accuracy does not drop), the **soup's ingredients** (FT runs with "
        "different learning rates, epochs, seeds and augmentation) and, where present, **FT from a random head** "
        "(Kumar et al.'s baseline for LP-FT). Each is compared with θ(α) on the same images (paired intervals)."
    )
    curve = view.curves(method)
    singles_fig = moving_figure(
        view,
        ("single-models", method),
        lambda: single_models_figure(curve, view.id, singles, i, page.label),
        lambda f, k: set_single_models_alpha(f, curve, view.id, k),
        len(curve),
        i,
    )
    st.plotly_chart(singles_fig, width="stretch", config=PLOTLY_CONFIG, key="single-models")
    shown = singles.assign(
        **{
            "Δ ID vs θ(α) [95% CI]": ci_texts(singles, "Δ ID vs θ(α)", "ID low", "ID high"),
            **(
                {"Δ OOD avg vs θ(α) [95% CI]": ci_texts(singles, "Δ OOD avg vs θ(α)", "OOD low", "OOD high")}
                if "OOD avg" in singles
                else {}
            ),
        }
    )
    cols = [
        c
        for c in (
            "model",
            "group",
            "ID",
            "ID val",
            "OOD avg",
            "Δ ID vs θ(α) [95% CI]",
            "ID verdict",
            "Δ OOD avg vs θ(α) [95% CI]",
            "OOD verdict",
        )
        if c in shown
    ]
    st.dataframe(
        shown[cols],
        hide_index=True,
        width="stretch",
        column_config={c: st.column_config.NumberColumn(c + " (%)", format="%.1f") for c in ("ID", "ID val", "OOD avg")},
    )
    download_csv(singles, f"{page.run}-{method}-single-models-alpha{cards['alpha']:.2f}.csv")

st.subheader("Which α would you pick?")
how_to_read(
    "Four rules side by side. *Best on ID validation* uses only held-out ID labels — what you can do in practice. "
    "*0.5* is the WiSE-FT paper's default. The *OOD oracle* peeks at OOD test labels (an upper bound, not a method). "
    "The *label-free estimate* predicts OOD accuracy from how often models agree on unlabelled OOD images "
    "(agreement-on-the-line, Baek et al. 2022). Each rule's outcome is compared with both endpoints by the paired "
    "interval at the α it picked (the noise in picking that α is not included)."
)
picks = view.picks(method)


def _picks_shown():
    shown = picks[["rule", "alpha", "needs"]].assign(ID=100 * picks["ID"], **{"OOD avg": 100 * picks["OOD avg"]})
    for col in ("ID", "OOD avg"):
        for ref in REFERENCES:
            if f"{col} − {ref}" in picks:
                shown[f"{col} − {ref}, pts [95% CI]"] = ci_texts(picks, f"{col} − {ref}", f"{col} − {ref} low", f"{col} − {ref} high")
                shown[f"{col} vs {ref}"] = picks[f"{col} vs {ref}"]
    return shown


picks_shown = session_table(("picks-shown", id(view), method), _picks_shown)
st.dataframe(
    picks_shown,
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
lf_alphas = [float(a) for a in lf.index]
lf_fig = moving_figure(
    view,
    ("label-free", method),
    lambda: label_free_figure(lf, alpha),
    lambda f, k: set_vline_alpha(f, lf_alphas[k]),
    len(lf_alphas),
    i,
)
st.plotly_chart(lf_fig, width="stretch", config=PLOTLY_CONFIG, key="labelfree-chart")
st.caption(f"Mean absolute error of the estimate across the α grid: {100 * lf['error'].abs().mean():.2f} points.")
download_csv(lf, f"{page.run}-{method}-label-free.csv")
