"""Export: the per-alpha results as CSV/JSON, and theta(alpha) weights as safetensors."""

import json
from pathlib import Path

import streamlit as st

from dashboard.state import ROOT, download_csv, how_to_read, method_page, plain, shown_path, store_root
from robust_core.export import export_interpolated, metrics_at
from robust_core.store import StoreError

page = method_page("Export · {label} at α = {alpha:.2f}")
view, method, alpha = page.view, page.method, page.alpha
how_to_read(
    "Download every number behind the dashboard, or write the interpolated weights θ(α) for deployment. The same "
    "code runs from the command line: `python -m robust_core export STORE --method M --alpha A --out FILE`."
)
results = view.results_table()
download_csv(
    results, f"{page.run}-results.csv", "Download all results (CSV: method, kind, alpha, dataset, correct, n, accuracy)", index=False
)
snapshot = {"run": page.run, "method": method, **metrics_at(view, method, page.i)}
st.download_button(
    "Download metrics at this α (JSON)",
    json.dumps(snapshot, indent=1).encode(),
    file_name=f"{page.run}-{method}-alpha{alpha:.2f}.json",
    mime="application/json",
    key="dl-json",
)
st.json(snapshot, expanded=False)

st.subheader("θ(α) weights")
zs, ft = view.store.checkpoint(method, "zeroshot"), view.store.checkpoint(method, "finetuned")
if zs is None or ft is None or not zs.exists() or not ft.exists():
    st.info(
        "The endpoint checkpoints of this run are not on this machine (stores keep logits; weights stay where the run "
        f"wrote them: `{shown_path(ft) if ft else 'not recorded'}`). For the demo, run `python -m robust_core demo` once to rebuild them, then come back."
    )
else:
    default = store_root() / "exports" / f"{page.run}-{method}-alpha{alpha:.2f}.safetensors"
    target = st.text_input("Write to", shown_path(default), help="A path relative to the project folder, or an absolute one.")
    if st.button("Write θ(α) as safetensors", type="primary"):
        try:
            out = Path(target) if Path(target).is_absolute() else ROOT / target
            weights, meta = export_interpolated(view.store.path, method, alpha, out)
        except (StoreError, ValueError, OSError) as exc:
            st.error(f"Export failed: {plain(exc)}")
        else:
            st.success(f"Wrote {shown_path(weights)} and {shown_path(meta)}.")
            if weights.stat().st_size < 200 * 2**20:
                st.download_button("Download the weights", weights.read_bytes(), file_name=weights.name, key="dl-weights")
