"""Why fine-tuning distorts features: the two-layer linear toy of Kumar et al. (2022, LP-FT)."""

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from dashboard.charts import PLOTLY_CONFIG
from dashboard.state import how_to_read, show_notices
from robust_core.toy import ToyConfig, run_toy

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
colours = {"lp": "#2ca02c", "ft": "#d62728", "lpft": "#1f77b4"}
names = {"lp": "LP", "ft": f"FT (head: {head})", "lpft": "LP-FT"}
fig = make_subplots(rows=1, cols=2, subplot_titles=("loss during training", "‖B − B₀‖ on ID vs OOD directions"))
x = np.arange(steps + 1)
for key in ("lp", "ft", "lpft"):
    h = result[key]
    fig.add_trace(go.Scatter(x=x, y=h["id_loss"], name=f"{names[key]} · ID loss", line=dict(color=colours[key])), row=1, col=1)
    fig.add_trace(
        go.Scatter(x=x, y=h["ood_loss"], name=f"{names[key]} · OOD loss", line=dict(color=colours[key], dash="dash")), row=1, col=1
    )
    fig.add_trace(
        go.Scatter(x=x, y=h["change_id"], name=f"{names[key]} · change on ID subspace", line=dict(color=colours[key])), row=1, col=2
    )
    fig.add_trace(
        go.Scatter(
            x=x, y=h["change_ood"] + 1e-18, name=f"{names[key]} · change on OOD directions", line=dict(color=colours[key], dash="dot")
        ),
        row=1,
        col=2,
    )
top = max(float(np.max(result[k][c])) for k in ("lp", "ft", "lpft") for c in ("id_loss", "ood_loss"))
# floor at 1e-5: below that the ID losses are just converged, and the OOD gap is what matters
fig.update_yaxes(type="log", range=[-5, np.log10(top) + 0.3], row=1, col=1, title="squared loss (log, floored at 1e-5)")
fig.update_yaxes(type="log", row=1, col=2, title="Frobenius norm", exponentformat="e")
fig.update_xaxes(title="step")
fig.update_layout(height=520, margin=dict(l=60, r=20, t=40, b=50))
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
st.dataframe(rows, width="stretch")


def _compare(a: float, b: float, name_a: str, name_b: str, what: str) -> str:
    """A deterministic simulation has no sampling noise: the words follow the numbers (ties within 1%)."""
    if abs(a - b) <= 0.01 * max(abs(a), abs(b), 1e-12):
        return f"{name_a} and {name_b} end with about the same {what} ({a:.3g} vs {b:.3g})"
    return f"{name_a} ends with a {'higher' if a > b else 'lower'} {what} than {name_b} ({a:.3g} vs {b:.3g})"


ood_move = max(float(result[k]["change_ood"][-1]) for k in ("lp", "ft", "lpft"))
st.markdown(
    "With these settings: "
    + _compare(result["ft"]["ood_loss"][-1], result["lpft"]["ood_loss"][-1], names["ft"], "LP-FT", "OOD loss")
    + "; "
    + _compare(result["ft"]["change_id"][-1], result["lpft"]["change_id"][-1], names["ft"], "LP-FT", "feature change on the ID subspace")
    + f"; the largest feature change on the OOD directions is {ood_move:.1e}"
    + (" (zero up to rounding)." if ood_move < 1e-8 else ".")
)
st.caption(
    "Kumar, Raghunathan, Jones, Ma, Liang. *Fine-Tuning can Distort Pretrained Features and Underperform "
    "Out-of-Distribution*, ICLR 2022. Computed by `robust_core.toy.run_toy` (numpy)."
)
