"""Robust Fine-Tuning Explorer — Streamlit entry point.

    streamlit run app.py

Opens on the embedded demo store (cache/demo); any store under cache/ (or $ROBUST_STORE_ROOT) can be
picked in the sidebar. The run, method and alpha live in the URL, so a view can be shared as a link.
"""

import streamlit as st

from dashboard.state import sidebar

st.set_page_config(page_title="Robust Fine-Tuning Explorer", page_icon="🧭", layout="wide")

PAGES = {
    "Explore": [
        st.Page("pages/home.py", title="Overview", icon="🏠", default=True),
        st.Page("pages/tradeoff.py", title="Tradeoff", icon="📈"),
        st.Page("pages/effective_robustness.py", title="Effective robustness", icon="🎯"),
        st.Page("pages/diversity.py", title="Diversity & confidence", icon="🔀"),
        st.Page("pages/examples.py", title="Examples & classes", icon="🖼️"),
        st.Page("pages/export.py", title="Export", icon="📦"),
    ],
    "Learn": [
        st.Page("pages/tour.py", title="Guided tour", icon="🧑‍🏫"),
        st.Page("pages/feature_distortion.py", title="Why fine-tuning distorts features", icon="🧪"),
        st.Page("pages/papers.py", title="The papers' numbers", icon="📚"),
    ],
}

navigation = st.navigation(PAGES)
st.session_state["selection"] = sidebar()
navigation.run()
