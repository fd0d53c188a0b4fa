"""Shared dashboard state: store discovery and opening (once per process), the sidebar, URL binding.

Only composition lives here; every number comes from ``robust_core.analysis``.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from dashboard import alpha_sync
from robust_core.analysis import AlphaPoint, RunView
from robust_core.store import StoreError, list_stores, open_store

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_STORE_ROOT = ROOT / "cache"
DEFAULT_RUN = "demo"


def store_root() -> Path:
    return Path(os.environ.get("ROBUST_STORE_ROOT", DEFAULT_STORE_ROOT))


@st.cache_resource(show_spinner="Opening store…")
def _open(path: str, mtime: float) -> RunView:
    """One RunView per store and process (arrays memory-mapped, tables cached on the view).

    ``mtime`` of the manifest is part of the key so a rebuilt store is reopened.
    """
    return RunView(open_store(path))


def open_view(path: Path) -> RunView:
    manifest = path / "manifest.json"
    return _open(str(path), manifest.stat().st_mtime if manifest.exists() else 0.0)


@dataclass
class Selection:
    """The sidebar's choice. ``alpha`` is a point of the method's grid, resolved here once; pages pass its index."""

    view: RunView | None
    run: str
    method: str | None
    alpha: AlphaPoint | None
    error: str | None = None


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:])")


@functools.lru_cache(maxsize=8)
def _root_spellings(root: str) -> tuple[str, ...]:
    """The store root as given and resolved (resolving touches the disk: once per root, not once per message)."""
    return tuple({str(Path(root).resolve()), root})


def plain(text: str) -> str:
    """``text`` with server paths replaced by store-root-relative ones and markdown/HTML escaped.

    Anything that can come from a URL or a file name goes through this before st.markdown/warning/error,
    so ``?run=[x](http://...)`` shows as text, never as a link or an image the browser fetches.
    """
    text = str(text)
    for root in _root_spellings(str(store_root())):
        text = text.replace(root + os.sep, "").replace(root, "the store folder")
    text = _MARKDOWN_SPECIAL.sub(r"\\\1", text)
    # GFM autolinks URLs, www. hosts and e-mail addresses even when escaped: a zero-width space breaks them
    text = text.replace("\\://", "\\:\u200b//").replace("@", "@\u200b")
    return re.sub(r"(?i)(www)(\\\.)", "\\1\u200b\\2", text)


def shown_path(path) -> str:
    """A path as a message shows it: relative to the project folder when inside it, never the server's absolute root."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path) if not path.is_absolute() else path.name


def _notice(message: str) -> None:
    st.session_state.setdefault("_notices", []).append(message)


def show_notices() -> None:
    for message in st.session_state.pop("_notices", []):
        st.warning(plain(message), icon="⚠️")


def sidebar() -> Selection:
    """Run, method and the one alpha shared by all pages, bound to the URL (?run=&method=&alpha=)."""
    params = st.query_params
    stores = {p.name: p for p in list_stores(store_root())}
    st.sidebar.markdown("### Run")
    if not stores:
        st.sidebar.error("No stores in the store folder (cache/ or $ROBUST_STORE_ROOT). Build the demo with `python -m robust_core demo`.")
        return Selection(None, "", None, None, f"No stores found under {store_root()}.")
    names = sorted(stores, key=lambda n: (n != DEFAULT_RUN, n))
    wanted = params.get("run", DEFAULT_RUN)
    if wanted not in stores:
        if "run" in params:
            _notice(f"Run {wanted!r} from the URL does not exist; showing {names[0]!r}.")
        wanted = names[0]
    if st.session_state.get("run") not in stores:
        st.session_state["run"] = wanted
    run = st.sidebar.selectbox("Store", names, key="run", help="Run directories under cache/ (or $ROBUST_STORE_ROOT).")
    try:
        view = open_view(stores[run])
    except StoreError as exc:
        params["run"] = run
        return Selection(None, run, None, None, str(exc))
    methods = view.store.wise_methods  # single models (soups, random-head FT) have no alpha to slide
    if st.session_state.get("method") not in methods:
        url_method = params.get("method")
        if url_method is not None and url_method not in methods:
            _notice(f"Method {url_method!r} from the URL is not in run {run!r}; using {methods[0]!r}.")
        st.session_state["method"] = url_method if url_method in methods else methods[0]
    method = st.sidebar.selectbox("Fine-tuning method", methods, key="method", format_func=view.method_label)
    alphas = [float(a) for a in view.alphas(method)]
    if st.session_state.get("alpha") not in alphas:
        raw = params.get("alpha")
        target = 0.5
        if raw is not None:
            try:
                value = float(raw)
                if not value == value:  # NaN
                    raise ValueError
                if value < 0 or value > 1:
                    _notice(f"alpha={raw} in the URL is outside [0, 1]; clamped to {min(max(value, 0.0), 1.0):g}.")
                target = min(max(value, 0.0), 1.0)
            except ValueError:
                _notice(f"alpha={raw!r} in the URL is not a number; using 0.5.")
        snapped = view.alpha_point(method, target).value
        if raw is not None and 0 <= target <= 1 and abs(snapped - target) > 1e-9:
            _notice(f"alpha={raw} in the URL is not on this run's α grid; showing the nearest grid value {snapped:.2f}.")
        st.session_state["alpha"] = snapped
    alpha = st.sidebar.select_slider(
        "Mixing coefficient α",
        options=alphas,
        key="alpha",
        format_func=lambda a: f"{a:.2f}",
        help="θ(α) = (1 − α)·θ_zero-shot + α·θ_fine-tuned. α = 0 is zero-shot, α = 1 fine-tuned. Shared by all pages.",
    )
    params["run"], params["method"], params["alpha"] = run, method, f"{alpha:g}"
    st.sidebar.caption(plain(view.store.description))
    with st.sidebar:
        alpha_sync.mount()  # charts with alpha frames follow the slider in the browser (dashboard/alpha_sync.js)
    return Selection(view, run, method, AlphaPoint(alphas.index(alpha), float(alpha)))


def mount_alpha_sync(sel: Selection | None) -> None:
    """Tell the page script (``dashboard/alpha_sync.js``) the grid index this run drew the page at; called in the
    sidebar after the page has run (``app.py``), so it reaches the browser after the page's numbers."""
    with st.sidebar:
        alpha_sync.mount_done(sel.alpha.index if sel is not None and sel.alpha is not None else None)


def require_view(sel: Selection) -> RunView:
    """Stop the page with a clear message when the selected store cannot be used."""
    show_notices()
    if sel.view is None:
        st.error(f"This store cannot be opened: {plain(sel.error)}", icon="🚫")
        st.info("Pick another run in the sidebar, or rebuild this one (re-run the command that created it).")
        st.stop()
    return sel.view


@dataclass
class MethodPage:
    """What a per-method page works with: the open run, the method and the sidebar's grid point.

    ``i`` is the grid index every ``RunView`` method takes; ``alpha`` its value, for labels only.
    """

    run: str
    view: RunView
    method: str
    label: str
    point: AlphaPoint

    @property
    def i(self) -> int:
        return self.point.index

    @property
    def alpha(self) -> float:
        return self.point.value


def method_page(title: str) -> MethodPage:
    """Stop with a message if the store is unusable, else render ``title`` and return the selection.

    ``title`` may use ``{label}`` (the method's label) and ``{alpha}`` (the grid alpha).
    """
    sel: Selection = st.session_state["selection"]
    view = require_view(sel)
    label = view.method_label(sel.method)
    st.title(title.format(label=label, alpha=sel.alpha.value))
    return MethodPage(sel.run, view, sel.method, label, sel.alpha)


def pct(x: float) -> str:
    return "–" if x != x else f"{100 * x:.1f}%"


def points(x: float) -> str:
    return "–" if x != x else f"{100 * x:+.1f} pts"


def ci_text(estimate: float, low: float, high: float, digits: int = 1) -> str:
    """``+3.1 [+1.2, +5.0]`` for a difference and its 95% interval, already in points."""
    if estimate != estimate:
        return "–"
    return f"{estimate:+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}]"


def ci_texts(frame, estimate: str, low: str, high: str, digits: int = 1, scale: float = 1.0) -> list[str]:
    """``ci_text`` for every row of ``frame`` (columns named), times ``scale``; without pandas' per-row Series
    (``iterrows`` over a 1,000-class table cost 60 ms per slider move)."""
    columns = (frame[c].to_numpy(dtype=float) * scale for c in (estimate, low, high))
    return [ci_text(e, lo, hi, digits) for e, lo, hi in zip(*columns)]


def delta_caption(interval, reference: str) -> str:
    """Caption under a metric card: the paired interval, and words when it includes 0."""
    ci = f"95% CI {interval.low:+.1f} to {interval.high:+.1f} pts"
    if interval.sign == 0:
        return f"vs {reference}: not distinguishable at n = {interval.n:,} ({ci})"
    return f"vs {reference}: {ci} (paired bootstrap, n = {interval.n:,})"


def how_to_read(text: str) -> None:
    with st.expander("How to read this", expanded=False):
        st.markdown(text)


def download_csv(frame, name: str, label: str = "Download CSV", index: bool = True) -> None:
    """A CSV download whose bytes are built when the button is clicked, not on every rerun (slider moves).

    ``frame`` is a DataFrame or a function returning one (for a table that is only assembled for the file)."""
    st.download_button(
        label,
        lambda: (frame() if callable(frame) else frame).to_csv(index=index).encode(),
        file_name=name,
        mime="text/csv",
        key=f"dl-{name}",
        on_click="ignore",
    )


def session_table(key: tuple, build):
    """``build()``'s DataFrame as the Arrow table ``st.dataframe`` sends, made once per session and key.

    ``st.dataframe`` converts a DataFrame to Arrow on every rerun (most of its cost); given the ``pyarrow.Table`` it
    only writes it out. The conversion is pyarrow's ``Table.from_pandas``, as Streamlit's own, so the index and
    the pandas types show the same (column_config applies by column name as before).
    """
    import pyarrow as pa

    return session_figure(("table", *key), lambda: pa.Table.from_pandas(build()))


def moving_figure(view: RunView, key: tuple, build, move, n: int, i: int):
    """A figure whose α parts move: ``build()`` once per process, its α frames from the page's own setter
    ``move(fig, k)`` and its spec at every grid index shared by the sessions (``alpha_sync.shared_specs``). A
    session sends the spec at the α it first drew the chart at (``i`` then) and keeps sending that one while the
    slider moves; the page script shows the slider's frame on it. So a slider move changes nothing in the chart
    Streamlit sends (no redraw in the browser; nothing moved, copied or re-validated on the server), and a new
    chart (first visit, method switch, other options) arrives drawn at the slider's α.

    A chart whose traces change along α has no frames: this session builds its own figure and moves it to ``i``.
    ``key`` names the chart and its options (``("tradeoff", method, show_shifts)``), without the view.
    """
    specs = alpha_sync.shared_specs(view, key, build, move, n)
    if specs is not None:  # the spec at the alpha this session first drew the chart at, kept while the slider moves
        return session_figure((key[0], id(view), *key[1:], "drawn at"), lambda: specs[i])
    fig = session_figure((key[0], id(view), *key[1:]), build)
    move(fig, i)
    return fig


def shared_figure(view: RunView, key: tuple, build):
    """An α-independent figure, built once per process and shared by sessions (``alpha_sync.shared_figure``)."""
    return alpha_sync.shared_figure(view, key, build)


def session_figure(key: tuple, build):
    """A figure (or a formatted table) kept for this browser session (LRU); pages update a figure's α parts in place.

    Per-session, not st.cache_resource: figures are mutated on every slider move, and sessions must
    not share mutable objects.
    """
    cache = st.session_state.setdefault("_figure_cache", {})
    if key in cache:
        cache[key] = cache.pop(key)  # most recently used last
    else:
        while len(cache) >= 96:  # figures and formatted tables of a few methods' alpha grids
            cache.pop(next(iter(cache)))
        cache[key] = build()
    return cache[key]
