"""Overview: what this run is, the headline numbers, and where to go next."""

import pandas as pd
import streamlit as st

from dashboard.state import delta_caption, how_to_read, pct, points, require_view, show_notices, store_root
from robust_core.analysis import OOD_AVG
from robust_core.store import StoreError, list_stores, open_store

sel = st.session_state["selection"]
st.title("Robust Fine-Tuning Explorer")
st.markdown(
    "In the papers behind this dashboard, fine-tuning a zero-shot model (CLIP) raises accuracy on the task it is "
    "tuned for (**ID**) but often lowers it under **distribution shift** (OOD); WiSE-FT interpolates the weights, "
    "θ(α) = (1 − α)·θ<sub>zero-shot</sub> + α·θ<sub>fine-tuned</sub>, and often gets both. Whether that holds for "
    "the run you open is stated below with paired 95% intervals. This dashboard reads logits "
    "computed once for every α and every eval set, so you can move α and watch every number follow.",
    unsafe_allow_html=True,
)
st.page_link("pages/learn/tour.py", label="New here? Take the guided tour of the demo", icon="🧑‍🏫")
how_to_read(
    "Pick a run and a fine-tuning method in the sidebar and move α. The three columns below are the zero-shot "
    "model, the WiSE-FT model at the current α and the fine-tuned model; OOD avg is the mean accuracy over the "
    "run's distribution shifts. The pages in the left menu look at the same run from different angles."
)

view = require_view(sel)
store = view.store
st.subheader(f"Run: {sel.run}")
if store.description:
    st.caption(store.description)
wise = view.curves(sel.method)
i, a = sel.alpha
c1, c2, c3 = st.columns(3)
for col, (label, row) in zip((c1, c2, c3), (("zero-shot (α=0)", 0), (f"WiSE-FT (α={a:.2f})", i), ("fine-tuned (α=1)", -1))):
    col.metric(f"{label} · ID", pct(wise[view.id].iloc[row]))
    # the change vs zero-shot is the paired interval's own estimate, greyed out when the interval includes 0
    iv = view.interval(sel.method, row, OOD_AVG) if row != 0 and view.shifts else None
    delta = points(iv.estimate / 100) if iv is not None else None
    col.metric(f"{label} · OOD avg", pct(wise[OOD_AVG].iloc[row]), delta, delta_color="normal" if iv is None or iv.sign else "off")
    if iv is not None:
        col.caption(delta_caption(iv, "zero-shot"))
st.markdown("\n".join(f"- {sentence}" for sentence in view.narrate_path(sel.method)))

st.markdown(
    f"**ID test**: `{view.id}` · **ID validation**: `{store.id_val}` · **shifts** ({len(view.shifts)}): "
    + ", ".join(f"`{s}`" for s in view.shifts)
    + f" · **methods**: {', '.join(view.method_label(m) for m in store.methods)}"
    + f" · **standard models**: {len(store.baselines)}"
)
st.markdown(
    "**Pages** — *Tradeoff*: accuracy along α for every set; *Effective robustness*: where each model sits "
    "against the 'accuracy on the line' baseline; *Diversity & confidence*: how differently zero-shot and "
    "fine-tuned models err; *Calibration*: whether confidence matches accuracy along α; *Examples & classes*: which "
    "images and classes flip; *Export*: numbers and θ(α) weights; *Live lab*: your own input through every model."
)

with st.expander("All stores in the store folder (cache/ or $ROBUST_STORE_ROOT)"):
    rows = []
    for path in list_stores(store_root()):
        try:
            s = open_store(path, verify_arrays=False)
            rows.append(
                {
                    "run": path.name,
                    "status": "ok",
                    "ID": s.id,
                    "shifts": len(s.shifts),
                    "methods": ", ".join(s.methods),
                    "created": s.created,
                }
            )
        except StoreError as exc:
            # st.dataframe shows text as text (no markdown); server paths are still taken out
            status = f"invalid: {exc}".replace(str(path.parent.resolve()) + "/", "").replace(str(path.parent) + "/", "")
            rows.append({"run": path.name, "status": status, "ID": "–", "shifts": None, "methods": "–", "created": "–"})
    st.dataframe(
        pd.DataFrame(rows),
        hide_index=True,
        width="stretch",
        column_config={"shifts": st.column_config.NumberColumn(format="%d"), "created": st.column_config.TextColumn("created (UTC)")},
    )
show_notices()
