"""Effective robustness: ID vs OOD accuracy on logit axes against the baseline of standard models."""

import streamlit as st

from dashboard.charts import PLOTLY_CONFIG, er_figure, set_er_alpha
from dashboard.state import download_csv, how_to_read, method_page, session_figure
from robust_core.analysis import OOD_AVG

page = method_page("Effective robustness · {label}")
view, method, label, alpha = page.view, page.method, page.label, page.alpha
how_to_read(
    "Each point is a model: x = ID accuracy, y = accuracy under shift, both on a logit scale where standard "
    "models trained on ID data fall on a line (blue; Taori et al. 2020, Miller et al. 2021). **Effective "
    "robustness ρ** is the vertical distance above that line, in accuracy points. Zero-shot CLIP sits far above it; "
    "fine-tuning slides the model toward the line; the red WiSE-FT curve shows what the α grid buys. Error bars are "
    "99.5% Clopper-Pearson intervals."
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
overlays = None
if overlay:
    from robust_core.reference import overlay_points

    overlays = overlay_points("ood-avg" if target == OOD_AVG else target)
x_label = view.id
if view.is_imagenet and target in ("imagenet-r", "imagenet-a", "objectnet"):
    x_label = f"ImageNet (on {target}'s classes)"
fig = session_figure(
    ("er", id(view), method, target, transform, overlay, zoom),
    lambda: er_figure(er, transform, alpha, x_label, target, label, overlays, zoom=zoom),
)
set_er_alpha(fig, er, transform, alpha)
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
st.subheader("ρ for each model")
table = er["table"].copy()
table["x (%)"], table["y (%)"] = 100 * table.x, 100 * table.y
cols = ["model", "x (%)", "y (%)"] + (["rho"] if "rho" in table else [])
st.dataframe(table[cols].rename(columns={"rho": "ρ (points)"}).style.format(precision=2), hide_index=True, width="stretch")
download_csv(table, f"{page.run}-{method}-effective-robustness-{target}.csv")
if base.get("source"):
    with st.expander("Standard models used for the line"):
        st.dataframe(base["points"], width="stretch")
