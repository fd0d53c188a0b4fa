"""Effective robustness: ID vs OOD accuracy on logit axes against the baseline of standard models."""

import streamlit as st

from dashboard.charts import PLOTLY_CONFIG, er_figure, set_er_alpha
from dashboard.state import download_csv, how_to_read, method_page, session_figure
from robust_core.analysis import OOD_AVG
from robust_core.labelspace import has_class_subset_axis

page = method_page("Effective robustness · {label}")
view, method, label, i = page.view, page.method, page.label, page.i
how_to_read(
    "Each point is a model: x = ID accuracy, y = accuracy under shift, both on a logit scale where standard "
    "models trained on ID data fall on a line (blue; Taori et al. 2020, Miller et al. 2021). **Effective "
    "robustness ρ** is the vertical distance from that line, in accuracy points (above = positive); the red WiSE-FT "
    "curve shows ρ along the α grid. Where this run's zero-shot and fine-tuned models sit is stated below the chart, "
    "from the numbers. Error bars on the chart are 99.5% Clopper-Pearson intervals per model (the testbed's "
    "convention).\n\n"
    "**ρ's uncertainty** has two sources, shown separately in the table: the *examples* (test images resampled, "
    "line fixed) and the *fit* (the standard models resampled and the line refitted, accuracies fixed). A model is "
    "called above or below the line only when both 95% intervals exclude 0."
)
c1, c2, c3, c4 = st.columns([2, 1.2, 1, 1])
target = c1.selectbox("OOD target (y axis)", [OOD_AVG, *view.shifts], key="er_target")
transform = c2.radio("Axis scale", ["logit", "probit", "linear"], horizontal=True, key="er_transform")
overlay = False
if view.is_imagenet:
    overlay = c3.toggle("Overlay published models", value=True, help="open_clip zero-shot, model soups, the WiSE-FT/FLYP tables")
zoom = c4.toggle("Zoom on this run's models", value=False, key="er_zoom")
er = view.er_data(method, target, transform)
base = er["baseline"]
subset_axis = view.is_imagenet and has_class_subset_axis(target)
if subset_axis and not view.store.has_full_logits(method):
    subset_axis = False
    st.info(
        f"This store keeps the top-3 classes per α for {label} (built with `--store-logits topk`), so the x axis here is "
        f"full ImageNet, not ImageNet restricted to {target}'s classes, which needs every α's full logits. Re-run `eval` "
        "with `--store-logits full` for the class-subset axis."
    )
overlays = None
if overlay:
    from robust_core.reference import overlay_points

    if subset_axis:
        # Published rows only report full-ImageNet accuracy; this axis is ImageNet on the shift's classes.
        st.info(
            f"Published models are not drawn here and get no ρ on {target}: their sources report only full-ImageNet "
            f"accuracy, while this chart's x axis is ImageNet restricted to {target}'s classes (about 15 points higher "
            "for standard models). The *papers' numbers* page compares them with a line fitted on full-ImageNet x."
        )
    else:
        overlays = overlay_points("ood-avg" if target == OOD_AVG else target)
x_label = f"ImageNet (on {target}'s classes)" if subset_axis else view.id
fig = session_figure(
    ("er", id(view), method, target, transform, overlay, zoom),
    lambda: er_figure(er, transform, i, x_label, target, label, overlays, zoom=zoom),
)
set_er_alpha(fig, er, transform, i)
st.plotly_chart(fig, width="stretch", config=PLOTLY_CONFIG, key="er-chart")
if base.get("source"):
    st.caption(
        f"Baseline: {base['source']}, {base['n_models']} models, {transform} fit "
        f"T(y) = {base['slope']:.3f}·T(x) + {base['intercept']:.3f}. {base.get('note', '')}"
    )
else:
    st.warning(
        "No baseline line and no ρ for this store: "
        + base.get("reason", "it has no standard models.")
        + " Add a family of standard models trained on the ID data when building the store."
    )
if base.get("source"):
    st.markdown("\n".join(f"- {sentence}" for sentence in view.narrate_er(method, target, transform)))
st.subheader("ρ for each model")
table = er["table"].copy()
table["x (%)"], table["y (%)"] = 100 * table.x, 100 * table.y
cols = ["model", "x (%)", "y (%)"]
if "rho" in table:
    table["ρ 95% CI, examples"] = [f"[{lo:+.1f}, {hi:+.1f}]" for lo, hi in zip(table["rho low"], table["rho high"])]
    table["ρ 95% CI, fit"] = [f"[{lo:+.1f}, {hi:+.1f}]" for lo, hi in zip(table["rho fit low"], table["rho fit high"])]
    cols += ["rho", "ρ 95% CI, examples", "ρ 95% CI, fit", "vs line"]
st.dataframe(
    table[cols].rename(columns={"rho": "ρ (points)"}),
    hide_index=True,
    width="stretch",
    column_config={c: st.column_config.NumberColumn(format="%.2f") for c in ("x (%)", "y (%)", "ρ (points)")},
)
download_csv(table, f"{page.run}-{method}-effective-robustness-{target}.csv")
if base.get("source"):
    with st.expander("Standard models used for the line"):
        st.dataframe(base["points"], width="stretch")
