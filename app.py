"""Robust Fine-Tuning Explorer — Streamlit entry point.

    streamlit run app.py

Opens on the embedded demo store (cache/demo); any store under cache/ (or $ROBUST_STORE_ROOT) can be
picked in the sidebar. The run, method and alpha live in the URL, so a view can be shared as a link.
"""

import streamlit as st

from dashboard.state import mount_alpha_sync, sidebar

st.set_page_config(page_title="Robust Fine-Tuning Explorer", page_icon="🧭", layout="wide")

PAGES = {
    "Explore": [
        st.Page("pages/explore/home.py", title="Overview", icon="🏠", default=True),
        st.Page("pages/explore/tradeoff.py", title="Tradeoff", icon="📈"),
        st.Page("pages/explore/effective_robustness.py", title="Effective robustness", icon="🎯"),
        st.Page("pages/explore/diversity.py", title="Diversity & confidence", icon="🔀"),
        st.Page("pages/explore/calibration.py", title="Calibration", icon="🌡️"),
        st.Page("pages/explore/examples.py", title="Examples & classes", icon="🖼️"),
        st.Page("pages/explore/export.py", title="Export", icon="📦"),
    ],
    "Learn": [
        st.Page("pages/learn/tour.py", title="Guided tour", icon="🧑‍🏫"),
        st.Page("pages/learn/feature_distortion.py", title="Why fine-tuning distorts features", icon="🧪"),
        st.Page("pages/learn/papers.py", title="The papers' numbers", icon="📚"),
    ],
    "Lab": [
        st.Page("pages/lab/live.py", title="Live lab", icon="✏️"),
    ],
}

navigation = st.navigation(PAGES)
with st.sidebar:
    st.session_state["selection"] = sidebar()
try:
    navigation.run()
finally:  # last, also after st.stop(): tells the page script which alpha this run's numbers are at
    mount_alpha_sync(st.session_state.get("selection"))
