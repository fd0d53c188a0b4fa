"""Guided tour: what to look at on each page of the demo, in order."""

import streamlit as st

from dashboard.state import how_to_read, show_notices

show_notices()
st.title("Guided tour of the demo")
how_to_read(
    "Six stops, about ten minutes. Each one names what to change in the sidebar and what to look for; the "
    "links open the page with the current run, method and α."
)
st.markdown(
    "The demo is a small world built on this machine: a tiny CLIP pretrained contrastively on ~50k captioned glyph "
    "images (hundreds of fonts, colours, backgrounds, sketches), then fine-tuned on 36 classes (digits and capital "
    "letters) in six plain fonts. Eight shifts change one thing at a time: coloured/photo backgrounds, corruptions, "
    "held-out decorative fonts, held-out handwriting fonts, inverted colours, rotation, outlines, and real "
    "handwritten digits. A dozen small convnets trained only on the ID data give the 'accuracy on the line' baseline."
)
steps = [
    (
        "pages/explore/tradeoff.py",
        "1 · Tradeoff",
        "Keep the method on **FT**. Drag α from 0 to 1 in the sidebar: ID (black) rises steadily, while OOD avg (red) "
        "peaks in the middle and falls at α = 1. Compare the solid WiSE-FT line with the dashed output-space ensemble. "
        "Then look at the α-picking table: how close does the ID-validation choice get to the OOD oracle?",
    ),
    (
        "pages/explore/effective_robustness.py",
        "2 · Effective robustness",
        "The blue line is where standard models live. The zero-shot star sits above it "
        "(positive ρ); the fine-tuned triangle sits closer to it. The red WiSE-FT curve bulges up and to the right. "
        "Switch the target to single shifts: the gap is largest for shifts the fine-tuning data never showed.",
    ),
    (
        "pages/explore/diversity.py",
        "3 · Diversity & confidence",
        "Prediction diversity is higher on the shifts than on ID: the two models fail "
        "on different images, which is why mixing them helps. The margin violins show the fine-tuned model is more "
        "confident, right or wrong.",
    ),
    (
        "pages/explore/examples.py",
        "4 · Examples & classes",
        "Pick a shift such as *handwriting* and filter to 'zero-shot right': these are the "
        "images fine-tuning broke. Per-class bars show which characters lost most.",
    ),
    (
        "pages/learn/feature_distortion.py",
        "5 · Why it happens",
        "The linear toy shows the mechanism behind FT's OOD loss and why LP-FT helps.",
    ),
    ("pages/learn/papers.py", "6 · Compare with the papers", "The same plots with the published ImageNet numbers."),
]
for page, title, text in steps:
    st.subheader(title)
    st.markdown(text)
    st.page_link(page, label=f"Open {title.split('· ')[1]}", icon="➡️")
st.info(
    "Every chart has a camera icon (PNG download) and every table a CSV button. The URL carries the run, method "
    "and α, so you can share exactly what you see."
)
