"""Live lab: draw, compose or upload one image and put it through zero-shot, fine-tuned and theta(alpha).

Every number comes from ``robust_core.live`` (which imports torch when a model is first built); this page
only composes widgets and charts. Models are cached per (store, manifest mtime, method), grids per input.
"""

import hashlib

import numpy as np
import pandas as pd
import streamlit as st

from dashboard.charts import PLOTLY_CONFIG, live_alpha_figure
from dashboard.state import how_to_read, method_page, plain
from robust_core import live

page = method_page("Live lab · {label}")
view, method, alpha = page.view, page.method, page.alpha
store = view.store
how_to_read(
    "Make an input yourself and watch the models disagree. **Compose** a glyph from the demo world's factors "
    "(each factor is what one of the demo's shifts changes: font family, background, ink inversion, outline, "
    "rotation, corruption), **draw** one, or **upload** an image. It is preprocessed exactly as at evaluation "
    "and put through the zero-shot model (α = 0), the fine-tuned model (α = 1) and θ(α) at the sidebar's α and "
    "method, computed here from the weights, not read from the store. The curve shows the probability of the "
    "true class (solid) and of θ(α)'s predicted class (dashed) along the whole α grid; the toggle draws every "
    "method at once."
)
MANIFEST_MTIME = (store.path / "manifest.json").stat().st_mtime
# Streamlit forgets the state of widgets a run did not draw (a run that stops early, or another input source):
# writing the values back keeps every factor and the toggle where the user left them.
KEPT = ("live_all", "live_char", "live_family", "live_font", "live_bg", "live_ink", "live_invert", "live_outline", "live_seed")
KEPT += ("live_rotation", "live_size", "live_corruption", "live_severity", "live_pen", "live_drawn", "live_fit", "live_truth")
for key in KEPT:
    if key in st.session_state:
        st.session_state[key] = st.session_state[key]


@st.cache_resource(show_spinner="Loading the model's weights…", max_entries=16)
def _model(path: str, mtime: float, name: str) -> live.LiveModel:
    return live.LiveModel(path, name)


@st.cache_data(show_spinner=False, max_entries=512)
def _grid(path: str, mtime: float, name: str, input_key: str, _image) -> tuple[np.ndarray, np.ndarray]:
    grid = _model(path, mtime, name).grid(_image)
    return grid.alphas, grid.logits


@st.cache_data(show_spinner=False, max_entries=512)
def _at(path: str, mtime: float, name: str, input_key: str, at_alpha: float, _image) -> np.ndarray:
    return _model(path, mtime, name).logits_at(_image, [at_alpha])[0]


def model(name: str) -> live.LiveModel:
    return _model(str(store.path), MANIFEST_MTIME, name)


problem = live.weights_problem(store, method)
available = live.live_methods(store)
if problem:
    st.error(plain(problem), icon="🚫")
    if available:
        st.info(
            f"Methods of this run whose weights are here: {', '.join(view.method_label(m) for m in available)}. Pick one in the sidebar."
        )
    st.stop()
try:
    selected = model(method)
except live.LiveError as exc:
    st.error(plain(str(exc)), icon="🚫")
    st.stop()
classnames = selected.classnames

# ----------------------------------------------------------------------------------------- input
glyphs = live.composes_for(store)
sources = ["Compose a glyph", "Draw", "Upload an image"] if glyphs else ["Upload an image"]
left, right = st.columns([2, 3], gap="large")
with left:
    source = st.radio("Input", sources, horizontal=True, key="live_source")
    image, true_class, input_key, notes = None, None, None, []
    if source == "Compose a glyph":
        chars, _ = live.glyph_classes()
        c1, c2 = st.columns(2)
        character = c1.selectbox("Character", list(chars), index=chars.index("A"), key="live_char")
        families = list(live.FONT_FAMILIES)
        family = c2.selectbox("Font family", families, format_func=live.FONT_FAMILIES.get, key="live_family")
        try:
            fonts = live.font_choices(family)
        except live.LiveError as exc:
            st.error(plain(str(exc)), icon="🔤")
            st.stop()
        if st.session_state.get("live_font", 0) > len(fonts) - 1:  # another family with fewer fonts
            st.session_state["live_font"] = 0
        font_index = st.slider("Font", 0, len(fonts) - 1, 0, key="live_font", help="The fonts of the family on this machine.")
        st.caption(f"Font: {plain(fonts[font_index].rsplit('/', 1)[-1])}")
        c1, c2 = st.columns(2)
        background = c1.selectbox("Background", live.BACKGROUNDS, key="live_bg")
        ink = c2.selectbox("Ink", live.ink_colours(), key="live_ink")
        c1, c2, c3 = st.columns(3)
        inverted = c1.toggle("Invert ink", key="live_invert")
        outline = c2.toggle("Outline only", key="live_outline")
        seed = c3.number_input("Seed", 0, 10_000, 0, key="live_seed", help="The random parts: photo crop, colours, noise.")
        rotation = st.slider("Rotation (degrees)", -60, 60, 0, key="live_rotation", help="The rotation shift uses 15–40°.")
        size = st.slider("Size (px on the 32 px image)", 12, 30, 22, key="live_size")
        c1, c2 = st.columns(2)
        corruption = c1.selectbox("Corruption", live.CORRUPTIONS, key="live_corruption")
        severity = c2.slider("Severity", 0.0, 1.0, 0.5, 0.1, key="live_severity", disabled=corruption == "none")
        spec = live.GlyphSpec(
            character, family, font_index, size, background, ink, outline, inverted, float(rotation), corruption, severity, int(seed)
        )
        image = live.compose_glyph(spec)
        true_class = chars.index(character)  # composes_for: the store's classes are the demo world's, in this order
        input_key = "compose:" + repr(spec)
    elif source == "Draw":
        chars, _ = live.glyph_classes()
        try:
            from streamlit_drawable_canvas import st_canvas
        except ImportError:
            st.warning("Drawing needs `pip install streamlit-drawable-canvas==0.13.0` (in requirements.txt). Compose or upload meanwhile.")
            st.stop()
        c1, c2 = st.columns(2)
        stroke = c1.slider("Pen width", 8, 40, 22, key="live_pen")
        drawn = c2.selectbox("What you draw", ["(not saying)", *chars], key="live_drawn", help="The true class, for the curve.")
        st.caption("Draw one character with the mouse.")
        canvas = st_canvas(
            stroke_width=stroke,
            stroke_color="#1a1a1a",
            background_color="#ffffff",
            height=256,
            width=256,
            drawing_mode="freedraw",
            return_image_data=True,
            key="live_canvas",
        )
        fit = st.toggle("Centre and scale the strokes like the demo's glyphs", value=True, key="live_fit")
        rgba = canvas.image_data if canvas is not None else None
        image = live.drawing_to_image(rgba, fit=fit)
        if image is None:
            st.info("Draw a character on the canvas (a digit or a capital letter); the predictions appear when you lift the pen.")
        else:
            input_key = f"draw:{fit}:" + hashlib.sha1(np.ascontiguousarray(rgba).tobytes()).hexdigest()
        true_class = None if drawn == "(not saying)" else chars.index(drawn)
    else:
        upload = st.file_uploader(f"Image (at most {live.MAX_UPLOAD_MB} MB)", key="live_upload", max_upload_size=live.MAX_UPLOAD_MB)
        truth = st.selectbox("True class (optional)", ["(unknown)", *classnames], key="live_truth")
        true_class = None if truth == "(unknown)" else classnames.index(truth)
        if upload is None:
            st.info(f"Upload an image; it is resized and centre-cropped to the model's input as at evaluation ({plain(selected.arch)}).")
        else:
            data = upload.getvalue()
            try:
                image, notes = live.read_upload(data)
            except live.UploadError as exc:
                st.error(plain(str(exc)), icon="🖼️")
                image = None
            else:
                input_key = "upload:" + hashlib.sha1(data).hexdigest()
    for note in notes:
        st.warning(plain(note), icon="ℹ️")

if image is None:
    with right:
        st.info("No input yet.")
    st.stop()

# ----------------------------------------------------------------------------------- predictions
path = str(store.path)
try:
    alphas, logits = _grid(path, MANIFEST_MTIME, method, input_key, image)
    theta_logits = _at(path, MANIFEST_MTIME, method, input_key, alpha, image)
except live.LiveError as exc:
    st.error(plain(str(exc)), icon="🚫")
    st.stop()
probs = live.softmax(logits)
theta_probs = live.softmax(theta_logits)
truth_name = classnames[true_class] if true_class is not None else None
top = {name: int(np.argmax(p)) for name, p in (("zero-shot", probs[0]), ("θ(α)", theta_probs), ("fine-tuned", probs[-1]))}


def top_table(p: np.ndarray) -> pd.DataFrame:
    rows = live.top_k(p, classnames)
    return pd.DataFrame(
        {
            "class": [("✓ " if i == true_class else "") + name for i, name, _ in rows],
            "probability": [100 * q for _, _, q in rows],
        }
    )


with right:
    seen = selected.model_view(image)
    zoom = max(1, 128 // max(seen.shape[:2]))
    side, verdict_box = st.columns([1, 4], vertical_alignment="center")
    side.image(np.repeat(np.repeat(seen, zoom, 0), zoom, 1), width=min(128, seen.shape[1] * zoom))
    columns = st.columns(3)
    panels = [
        ("Zero-shot · α = 0", probs[0]),
        (f"θ({alpha:.2f}) · WiSE-FT", theta_probs),
        ("Fine-tuned · α = 1", probs[-1]),
    ]
    for col, (title, p) in zip(columns, panels):
        with col:
            st.markdown(f"**{title}**")
            st.dataframe(
                top_table(p),
                hide_index=True,
                width="stretch",
                column_config={"probability": st.column_config.NumberColumn("%", format="%.1f", width="small")},
            )
    with verdict_box:
        h, w = seen.shape[:2]
        st.caption(f"Left: what the model gets ({w} × {h} px{', enlarged' if zoom > 1 else ''}), preprocessed as at evaluation.")
        if truth_name is not None:
            verdict = ", ".join(f"{who} {'right' if k == true_class else 'wrong'}" for who, k in top.items())
            st.markdown(f"True class **{plain(truth_name)}**: {verdict}.")
        else:
            st.markdown(
                f"Top-1: zero-shot **{plain(classnames[top['zero-shot']])}**, θ({alpha:.2f}) **{plain(classnames[top['θ(α)']])}**, "
                f"fine-tuned **{plain(classnames[top['fine-tuned']])}**."
            )
        if alpha in (0.0, 1.0):
            st.caption(f"At α = {alpha:g}, θ(α) is the {'zero-shot' if alpha == 0 else 'fine-tuned'} model itself.")

    all_methods = st.toggle("Every method at once", key="live_all", help="θ(α) of every method of this run whose weights are here.")
    shown_methods = [m for m in available if m == method or all_methods]
    predicted = top["θ(α)"]
    curves = []  # (label, alphas, probabilities (n_alphas, n_classes), is the sidebar's method)
    for m in shown_methods:
        if m == method:
            a, lg = alphas, logits
        else:
            try:
                a, lg = _grid(path, MANIFEST_MTIME, m, input_key, image)
            except live.LiveError as exc:
                st.warning(plain(f"{view.method_label(m)}: {exc}"))
                continue
        curves.append((view.method_label(m), a, live.softmax(lg), m == method))
    fig = live_alpha_figure(curves, true_class, truth_name, predicted, classnames[predicted], alpha, all_methods)
    st.plotly_chart(fig, config=PLOTLY_CONFIG, key="live_curve")
    st.caption(
        "Solid: the true class (when known). Dashed: the class θ(α) predicts at the sidebar's α. Every point is a "
        "model run on your input now; the store's logits are not used."
    )
