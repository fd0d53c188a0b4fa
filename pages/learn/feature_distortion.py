"""Why fine-tuning distorts features: the two-layer linear toy of Kumar et al. (2022, LP-FT)."""

import streamlit as st

from dashboard.charts import PLOTLY_CONFIG, toy_figure
from dashboard.state import how_to_read, show_notices
from robust_core.toy import ToyConfig, narrate_toy, run_toy

show_notices()
st.title("Why fine-tuning distorts features")
st.markdown(
    "A two-layer linear model **y = vᵀ B x**. Pretraining gave features **B₀** close to the true ones. The ID "
    "training inputs span only a subspace *S*; OOD inputs live in the directions orthogonal to it. The gradient "
    "with respect to B is (residual · v) xᵀ, so its rows always lie in span(x) = *S*: **fine-tuning can only change "
    "B on the ID directions**. With a bad head, ID is fitted by bending B inside *S* to match that head, and the "
    "head no longer matches the untouched OOD features. Probing first (LP-FT) starts from a fitted head, so the "
    "features have less to bend; the sentence under the chart says what these settings actually do."
)
how_to_read(
    "Left: ID and OOD loss during training for LP (head only), FT (head + features, head initialised as chosen) and "
    "LP-FT. Right: how far B moved from B₀ on the ID subspace and on the OOD directions (by the gradient argument "
    "above, the latter can only move by rounding). Change the head initialisation to *probe* and FT becomes LP-FT."
)
c = st.columns(4)
lr = c[0].select_slider("Learning rate", [0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3], value=0.05)
steps = c[1].select_slider("Steps", [50, 100, 200, 400, 800, 1600], value=400)
head = c[2].radio("FT head initialisation", ["random", "zero", "probe"], horizontal=True)
error = c[3].select_slider("Pretrained feature error", [0.0, 0.05, 0.1, 0.2, 0.4], value=0.1)
seed = st.number_input("Seed", 0, 1000, 0, step=1)
result = run_toy(ToyConfig(lr=lr, steps=steps, head_init=head, feature_error=error, seed=int(seed)))
names = {"lp": "LP", "ft": f"FT (head: {head})", "lpft": "LP-FT"}
fig = toy_figure(result, names)
st.plotly_chart(fig, width="stretch", config=PLOTLY_CONFIG, key="toy-chart")
rows = {
    names[k]: {
        "final ID loss": result[k]["id_loss"][-1],
        "final OOD loss": result[k]["ood_loss"][-1],
        "‖ΔB‖ on ID subspace": result[k]["change_id"][-1],
        "‖ΔB‖ on OOD directions": result[k]["change_ood"][-1],
    }
    for k in ("lp", "ft", "lpft")
}
st.dataframe(rows, width="stretch", column_config={name: st.column_config.NumberColumn(name, format="%.3g") for name in rows})


st.markdown(narrate_toy(result, names))
st.caption(
    "Kumar, Raghunathan, Jones, Ma, Liang. *Fine-Tuning can Distort Pretrained Features and Underperform "
    "Out-of-Distribution*, ICLR 2022. Computed by `robust_core.toy.run_toy` (numpy)."
)
