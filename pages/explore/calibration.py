"""Calibration: ECE and reliability of zero-shot, theta(alpha) and fine-tuned; ECE along alpha; temperature scaling on ID val."""

import streamlit as st

from dashboard.charts import PLOTLY_CONFIG, ece_curve_figure, reliability_figure, set_ece_alpha, set_reliability_alpha
from dashboard.state import ci_texts, download_csv, how_to_read, method_page, moving_figure, plain, session_figure, session_table

page = method_page("Calibration · {label}")
view, method, i, alpha = page.view, page.method, page.i, page.alpha
how_to_read(
    "A model is **calibrated** when its confidence matches how often it is right: of the images it labels with 80% "
    "confidence, 80% should be correct. Confidence here is the **maximum softmax probability**. The **reliability "
    "diagram** sorts the images into 15 equal-width confidence bins and plots each bin's accuracy against its mean "
    "confidence: points below the diagonal are *over-confident*, above it *under-confident*; the bars beneath show how "
    "many images fall in each bin (hover for counts). **ECE** (expected calibration error, Guo et al. 2017) is the "
    "average gap |accuracy − confidence| over the bins, weighted by their share of images, in points (%); 0 is "
    "perfect.\n\n"
    "**Temperature scaling** (optional, labelled wherever it is on) divides each model's logits by one number T "
    "fitted by minimising the negative log-likelihood on the ID validation set, then applies that T to every set. "
    "It never changes a prediction, only the confidence, so it shows how much of a model's miscalibration one scalar "
    "fixes on ID, and whether the fix carries over to the shifts. On the ID validation set itself the scaled ECE is "
    "in-sample.\n\n"
    "**Evidence.** ECE(θ(α)) − ECE(zero-shot) and ECE(fine-tuned) − ECE(zero-shot) get a *paired* 95% interval: the "
    "images are resampled once and both models re-scored (2,000 resamples; OOD avg resamples within each shift, then "
    "averages; T is held fixed). A direction is named only when the interval excludes 0, otherwise the page says "
    "*not distinguishable at n = …*. ECE is biased upwards on small sets, so compare models on the same set, as the "
    "paired difference does, rather than across sets of different size."
)
note = view.calibration_note(method)
if note:
    st.info(note, icon="ℹ️")  # our own text; markdown code spans intended

id_val = view.temperature_set
scaled = st.toggle(
    f"Temperature scaling (T fitted on ID validation: {id_val})" if id_val else "Temperature scaling (needs an ID validation set)",
    key="cal_temperature",
    disabled=id_val is None,
    help="One temperature per model on the α grid, fitted by minimising NLL on the ID validation logits; applied to every set."
    if id_val
    else "This run has no ID validation split (eval --id-val), so no temperature can be fitted without touching a test set.",
)
scaled = bool(scaled and id_val)
which = "after temperature scaling" if scaled else "raw softmax"
datasets = view.store.datasets
dataset = st.selectbox("Dataset", datasets, index=datasets.index(view.shifts[0]) if view.shifts else 0, key="cal_ds")

st.caption(f"ECE on {plain(dataset)}, {which}, in points (15 equal-width confidence bins)")
c = st.columns(3)
ece_zs, ece_mid, ece_ft = (view.ece(method, dataset, j, scaled) for j in (0, i, -1))
c[0].metric("ECE zero-shot", f"{ece_zs:.2f} pts")
for col, label, value, j in ((c[1], f"ECE θ(α={alpha:.2f})", ece_mid, i), (c[2], "ECE fine-tuned", ece_ft, -1)):
    if value != value:  # NaN: no full logits at this alpha (top-k store)
        col.metric(label, "–")
        col.caption("no full logits at this α in this store")
        continue
    iv = view.ece_interval(method, dataset, j, "zero-shot", scaled)
    col.metric(label, f"{value:.2f} pts", f"{iv.estimate:+.2f} pts vs zero-shot", delta_color="inverse" if iv.sign else "off")
    ci = f"95% CI {iv.low:+.2f} to {iv.high:+.2f} pts"
    col.caption(
        f"vs zero-shot: not distinguishable at n = {iv.n:,} ({ci})"
        if iv.sign == 0
        else f"vs zero-shot: {ci} (paired bootstrap, n = {iv.n:,})"
    )
if scaled:
    temps = " · ".join(
        f"{name} T = {view.temperature(method, j):.3f}"
        for name, j in (("zero-shot", 0), (f"θ(α={alpha:.2f})", i), ("fine-tuned", -1))
        if view.has_calibration(method, j)
    )
    st.caption(f"Temperatures fitted on {plain(id_val)}: {plain(temps)}.")
st.markdown("\n".join(f"- {plain(sentence)}" for sentence in view.narrate_calibration(method, i, dataset, scaled)))

n_alphas = len(view.alphas(method))
reliability_title = f"Reliability on {dataset} ({which})"


def _reliability_table(k):
    return view.reliability(method, dataset, k, scaled)


if all(view.has_calibration(method, k) for k in range(n_alphas)):  # theta(alpha) has bins at every alpha: it moves
    reliability = moving_figure(
        view,
        ("reliability", method, dataset, scaled),
        lambda: reliability_figure(_reliability_table(i), reliability_title),
        lambda f, k: set_reliability_alpha(f, _reliability_table(k)),
        n_alphas,
        i,
    )
else:  # a top-k store calibrates its endpoints only: one figure per alpha, moved by the rerun
    reliability = session_figure(
        ("reliability", id(view), method, dataset, i, scaled), lambda: reliability_figure(_reliability_table(i), reliability_title)
    )
st.plotly_chart(
    reliability,
    width="stretch",
    config=PLOTLY_CONFIG,
    key="reliability-chart",
)

st.subheader("ECE along α")
curve = view.ece_curve(method, scaled)
grid = [float(a) for a in view.alphas(method)]
fig = moving_figure(
    view,
    ("ece-curve", method, scaled),
    lambda: ece_curve_figure(curve, view.id, view.shifts, alpha, f"ECE of θ(α) per set ({which})"),
    lambda f, k: set_ece_alpha(f, curve, grid[k]),
    len(grid),
    i,
)
st.plotly_chart(fig, width="stretch", config=PLOTLY_CONFIG, key="ece-curve-chart")
st.caption(
    "α = 0 is the zero-shot model, α = 1 the fine-tuned one; OOD avg is the mean ECE over the shifts. Dotted: the ID "
    "validation set" + (", where the temperatures were fitted (in-sample)." if scaled else ".")
)

st.subheader(f"Every set at α = {alpha:.2f}: ECE and paired differences from zero-shot")
table = view.calibration_table(method, i, scaled)


def _calibration_shown():
    shown = table[["zero-shot", "θ(α)", "fine-tuned"]].rename(columns={"θ(α)": f"θ(α={alpha:.2f})"})
    for key in ("θ(α)", "fine-tuned"):
        shown[f"{key} − zero-shot [95% CI]"] = ci_texts(table, f"{key} − zero-shot", f"{key} − zero-shot low", f"{key} − zero-shot high", 2)
        shown[f"{key} vs zero-shot"] = table[f"{key} vs zero-shot"]
    shown["n"] = table["n"]
    return shown


shown = session_table(("calibration", id(view), method, i, scaled), _calibration_shown)
st.dataframe(
    shown,
    width="stretch",
    height=35 * (shown.num_rows + 1) + 3,
    column_config={
        **{
            col: st.column_config.NumberColumn(f"ECE {col} (pts)", format="%.2f", help=f"{which}; 15 equal-width bins")
            for col in ("zero-shot", f"θ(α={alpha:.2f})", "fine-tuned")
        },
        **{
            f"{key} − zero-shot [95% CI]": st.column_config.TextColumn(help="ECE difference in points, paired bootstrap")
            for key in ("θ(α)", "fine-tuned")
        },
        "n": st.column_config.NumberColumn(format="%d"),
    },
)
download_csv(table, f"{page.run}-{method}-calibration-alpha{alpha:.2f}{'-temperature' if scaled else ''}.csv")
if scaled:
    with st.expander("Fitted temperatures along α"):
        temps = view.temperatures(method).to_frame()
        st.dataframe(temps, width="stretch", column_config={"temperature": st.column_config.NumberColumn("T", format="%.3f")})
