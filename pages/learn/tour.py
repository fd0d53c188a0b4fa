"""Guided tour: what to look at on each page of the demo, in order.

Every sentence that states a direction is computed from the open store by ``RunView.narrate_*`` (the 95%
paired interval decides the wording), so the tour stays true when the demo is rebuilt.
"""

import streamlit as st

from dashboard.state import how_to_read, show_notices
from robust_core.analysis import OOD_AVG

show_notices()
st.title("Guided tour of the demo")
how_to_read(
    "Seven stops, about fifteen minutes. Each one names what to change in the sidebar and what to look for; the "
    "links open the page with the current run, method and α. The findings quoted under each stop are computed "
    "from the run open in the sidebar, with 95% paired intervals; where an interval includes 0 the tour says "
    "so instead of naming a direction."
)
sel = st.session_state.get("selection")
view = sel.view if sel is not None else None
method = sel.method if view is not None else None
if view is not None:
    n_classes = len(view.store.classnames(view.id))
    st.markdown(
        "The demo is a small world built on this machine: a tiny CLIP pretrained contrastively on captioned glyph "
        f"images (many fonts, colours, backgrounds, sketches), then fine-tuned on {n_classes} classes in a few plain "
        f"fonts. This run has {len(view.shifts)} shifts ({', '.join(view.shifts)}), each changing one thing about "
        f"the images, and {len(view.store.baselines)} small convnets trained only on the ID data give the "
        "'accuracy on the line' baseline."
    )
    label = view.method_label(method)


def findings(sentences):
    if sentences:
        st.info(f"**On this run, with {label}:** " + " ".join(sentences))


def _tradeoff():
    return view.narrate_path(method) if view is not None else []


def _er():
    return view.narrate_er(method, OOD_AVG) if view is not None and view.shifts else []


def _diversity():
    if view is None or not view.shifts:
        return []
    shift = view.shifts[0]
    return [view.narrate_diversity(method), view.narrate_confidence(method, shift), view.narrate_confidence(method, view.id)]


steps = [
    (
        "pages/explore/tradeoff.py",
        "1 · Tradeoff",
        "Pick a method in the sidebar and drag α from 0 to 1: watch ID (black) and OOD avg (red). Compare the solid "
        "WiSE-FT line with the dashed output-space ensemble. Then look at the α-picking table: how close does the "
        "ID-validation choice get to the OOD oracle, and is the gap distinguishable?",
        _tradeoff,
    ),
    (
        "pages/explore/effective_robustness.py",
        "2 · Effective robustness",
        "The blue line is where standard models live; ρ is the vertical distance from it. Find the zero-shot star, "
        "the fine-tuned triangle and the red WiSE-FT curve, then switch the target to single shifts and compare ρ "
        "(the table gives each ρ two intervals: images resampled, and standard models resampled).",
        _er,
    ),
    (
        "pages/explore/diversity.py",
        "3 · Diversity & confidence",
        "Compare prediction diversity on the shifts with ID: mixing two models can only help on images where exactly "
        "one of them is right. The margin violins compare how confident the two models are, right and wrong.",
        _diversity,
    ),
    (
        "pages/explore/examples.py",
        "4 · Examples & classes",
        "Pick a shift and filter to 'zero-shot right': these are the images fine-tuning broke. The per-class bars "
        "show which classes changed, with an interval each; with a handful of images per class most are within noise.",
        lambda: [view.narrate_per_class(method, view.shifts[0], -1, "fine-tuned − zero-shot")] if view is not None and view.shifts else [],
    ),
    (
        "pages/lab/live.py",
        "5 · Make the shift yourself",
        "Compose a glyph and change one factor at a time (a handwriting or decorative font, a photo background, "
        "inverted ink, a rotation, a corruption), or draw one: the page runs zero-shot, fine-tuned and θ(α) on your "
        "input and draws the true class's probability along the α grid. Look for inputs where the fine-tuned model "
        "is confidently wrong and a middle α is right.",
        lambda: [],
    ),
    (
        "pages/learn/feature_distortion.py",
        "6 · Why it happens",
        "The linear toy of the LP-FT paper: fine-tuning with a poor head changes the features only on the ID "
        "directions; the page shows what that does to OOD loss for LP, FT and LP-FT.",
        lambda: [],
    ),
    ("pages/learn/papers.py", "7 · Compare with the papers", "The published ImageNet numbers on the same axes.", lambda: []),
]
# link labels are the pages' own titles in the menu (app.py)
PAGE_TITLES = {
    "pages/explore/tradeoff.py": "Tradeoff",
    "pages/explore/effective_robustness.py": "Effective robustness",
    "pages/explore/diversity.py": "Diversity & confidence",
    "pages/explore/examples.py": "Examples & classes",
    "pages/learn/feature_distortion.py": "Why fine-tuning distorts features",
    "pages/learn/papers.py": "The papers' numbers",
    "pages/lab/live.py": "Live lab",
}
for page, title, text, found in steps:
    st.subheader(title)
    st.markdown(text)
    findings(found())
    st.page_link(page, label=f"Open {PAGE_TITLES.get(page, title.split('· ')[1])}", icon="➡️")
st.info(
    "Every chart has a camera icon (PNG download) and every table a CSV button. The URL carries the run, method "
    "and α, so you can share exactly what you see."
)
