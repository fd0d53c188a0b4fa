"""Effective robustness: ID vs OOD accuracy on logit axes against the baseline of standard models."""

import streamlit as st

from dashboard.charts import PLOTLY_CONFIG, er_figure, er_panels_figure, line_equation, set_er_alpha, set_panels_alpha
from dashboard.state import download_csv, how_to_read, method_page, moving_figure
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
c1, c2, c3, c4 = st.columns([2, 1.3, 1.2, 1.2])
target = c1.selectbox("OOD target (y axis)", [OOD_AVG, *view.shifts], key="er_target")
transform = c2.radio("Axis scale", ["logit", "probit", "linear"], horizontal=True, key="er_transform")
frame = c3.radio(
    "Frame",
    ["this run's models", "every standard model"],
    key="er_frame",
    help="Open on the run's own models with round ticks; widen to see the whole cloud of standard models.",
)
zoom = frame == "this run's models"
overlay = False
methods = view.store.wise_methods
all_curves = c4.toggle("Every method's curve", value=len(methods) > 1, key="er_all", disabled=len(methods) < 2)
if view.is_imagenet:
    overlay = c4.toggle("Overlay published models", value=True, help="open_clip zero-shot, model soups, the WiSE-FT/FLYP tables")
er = view.er_data(method, target, transform)
base = er["baseline"]
subset_axis = view.x_axis(method, target) == "class-subset"
if view.is_imagenet and has_class_subset_axis(target) and not subset_axis:
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
others = {view.method_label(m): c for m, c in view.er_curves(target, axis_of=method).items() if m != method} if all_curves else None
fig = moving_figure(
    view,
    ("er", method, target, transform, overlay, zoom, all_curves),
    lambda: er_figure(er, transform, i, x_label, target, label, overlays, show_cloud=True, zoom=zoom, others=others),
    lambda f, k: set_er_alpha(f, er, transform, k),
    len(er["curve"]),
    i,
)


def _set_alpha_from_click() -> None:
    """A click on a point of the selected method's WiSE-FT curve moves the sidebar's α there."""
    state = st.session_state.get("er-chart")
    points = (state or {}).get("selection", {}).get("points", [])
    curve_trace = next((k for k, t in enumerate(fig.to_dict()["data"]) if t.get("meta") == "curve:selected"), None)
    for point in points:
        if point.get("curve_number") == curve_trace and point.get("point_index") is not None:
            st.session_state["alpha"] = float(er["curve"].alpha.iloc[point["point_index"]])
            return


st.plotly_chart(fig, width="stretch", config=PLOTLY_CONFIG, key="er-chart", on_select=_set_alpha_from_click, selection_mode="points")
st.caption("Click a point of the red curve to move α there. Error bars: 99.5% Clopper-Pearson per model.")
if base.get("source"):
    st.caption(
        f"Baseline: {base['source']}, {base['n_models']} models, {transform} fit "
        f"{line_equation(base['slope'], base['intercept'])}. {base.get('note', '')}"
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
        st.dataframe(
            base["points"].assign(x=100 * base["points"].x, y=100 * base["points"].y),
            hide_index=True,
            width="stretch",
            column_config={
                "x": st.column_config.NumberColumn(f"{view.id} (%)", format="%.1f"),
                "y": st.column_config.NumberColumn(f"{target} (%)", format="%.1f"),
                "rho": st.column_config.NumberColumn("ρ (points)", format="%+.1f"),
                "fit": st.column_config.CheckboxColumn("in the fit"),
                "in_plot": None,
            },
        )

if len(view.shifts) > 1 and st.toggle(
    "One panel per shift",
    value=False,
    key="er_panels",
    help="Small multiples as in the WiSE-FT paper (off by default: eight more charts to redraw on every α move)",
):
    st.subheader("One panel per shift")
    how_to_read(
        "The WiSE-FT paper's layout: each shift on its own axes, with its own line of standard models, the selected "
        "method's curve (red), its zero-shot (star) and fine-tuned (triangle) ends and the current α (ring). Each "
        "panel frames its own models. ρ and its intervals for a shift: pick it as the OOD target above."
    )
    panels = {s: view.er_data(method, s, transform, intervals=False) for s in view.shifts}
    x_labels = {s: (f"ImageNet on {s}'s classes" if view.x_axis(method, s) == "class-subset" else view.id) for s in view.shifts}
    panel_fig = moving_figure(
        view,
        ("er-panels", method, transform),
        lambda: er_panels_figure(panels, transform, i, method, label, x_labels),
        lambda f, k: set_panels_alpha(f, panels, transform, k),
        len(view.alphas(method)),
        i,
    )
    st.plotly_chart(panel_fig, width="stretch", config=PLOTLY_CONFIG, key="er-panels")
