"""Client-side alpha: charts follow the sidebar's alpha slider in the browser, before the rerun arrives.

Streamlit sends a slider's value to the server only after a debounce, then reruns the page; a chart's α
marker used to move only when that rerun had been drawn (a few hundred ms after the key press). Here a figure
carries its own α frames: for every grid point, the values of the traces and layout keys that change along α
(``attach_frames``). A small script in the page (``alpha_sync.js``, mounted once in the sidebar by ``mount``)
watches the slider and applies the frame of the slider's grid index to every such chart as the thumb moves.
The page's numbers, cards and tables still come from the rerun; the rerun also redraws every chart at the
server's α, so the browser never keeps a state the server did not compute.

Frames are computed from the page's own α setters (the functions that move a figure's α parts on the server),
so the browser shows exactly what a rerun at that α would draw.
"""

from __future__ import annotations

import json
import math
import threading
import weakref
from collections.abc import Callable
from pathlib import Path

import numpy as np
import plotly.graph_objects as go

META_KEY = "robust_alpha"
_JS = Path(__file__).with_name("alpha_sync.js").read_text()


def _flat(value, prefix: str, out: dict) -> dict:
    """Nested dicts as Plotly attribute paths (``marker.color``); lists and scalars are leaves."""
    if isinstance(value, dict) and value:
        for key, sub in value.items():
            _flat(sub, f"{prefix}.{key}" if prefix else key, out)
    else:
        out[prefix] = value
    return out


def _plain(value):
    """JSON-ready Python values: numpy arrays as lists, numpy scalars as numbers, NaN and inf as None (what
    plotly's encoder writes), so that equal figures compare equal."""
    if isinstance(value, dict):
        return {key: _plain(sub) for key, sub in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(sub) for sub in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        return _plain(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _snapshot(fig: go.Figure) -> tuple[list[dict], dict]:
    """The figure's own properties (what it was given, without plotly's defaults), as plain values.

    Read from the figure's property dicts rather than through ``to_json``: that copies the whole figure and
    base64-encodes every array (70% of the frames' cost on a method's first visit)."""
    layout = {key: _plain(value) for key, value in fig._layout.items() if key not in ("meta", "template")}  # noqa: SLF001
    data = [_flat(_plain(trace), "", {}) for trace in fig._data]  # noqa: SLF001
    return data, layout


def _frames(snaps: list[tuple[list[dict], dict]]) -> dict:
    """Only what differs between grid points: the changed attributes of the changed traces, and the changed
    top-level layout keys (``shapes``, ``annotations``, ...), each at every grid point."""
    data0, layout0 = snaps[0]
    if any(len(data) != len(data0) for data, _ in snaps):
        raise ValueError("the figure has other traces at other α; frames need the same traces at every α")
    changed: dict[int, list[str]] = {}
    for j, trace0 in enumerate(data0):
        keys = set(trace0)
        for data, _ in snaps[1:]:
            keys |= set(data[j])
        attrs = sorted(a for a in keys if any(data[j].get(a) != trace0.get(a) for data, _ in snaps[1:]))
        if attrs:
            changed[j] = attrs
    layout_keys = set(layout0)
    for _, layout in snaps[1:]:
        layout_keys |= set(layout)
    layout_changed = sorted(key for key in layout_keys if any(layout.get(key) != layout0.get(key) for _, layout in snaps[1:]))
    traces = sorted(changed)
    frames = [
        {
            "data": [{a: data[j].get(a) for a in changed[j]} for j in traces],
            "layout": {key: layout.get(key) for key in layout_changed},
        }
        for data, layout in snaps
    ]
    return {"traces": traces, "frames": frames}


def compute_frames(fig: go.Figure, move: Callable[[go.Figure, int], object], n: int) -> dict:
    """The per-alpha frames of ``fig``: ``move(fig, k)`` puts the figure at grid index ``k`` (0 <= k < n).

    ``fig`` is left at index ``n - 1``; the page moves it to its own index afterwards.
    """
    if n < 1:
        raise ValueError(f"an alpha grid has at least one point, got n={n}")
    snaps = []
    for k in range(n):
        move(fig, k)
        snaps.append(_snapshot(fig))
    return _frames(snaps)


def _pack(frames: dict | None) -> dict | None:
    """Frames as the figure carries them: one JSON string (a string is not deep-copied or walked by plotly's
    serialiser on every rerun, as nested lists would be), parsed once per chart by the page script."""
    if frames is None:
        return None
    return {"n": len(frames["frames"]), "json": json.dumps(frames, separators=(",", ":"), allow_nan=False)}


# Frames are plain data fixed by (store, method, chart options): computed once per process and shared by every
# session (read-only), keyed on the RunView object itself so a reopened (rebuilt) store never reuses stale ones.
_SHARED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_SHARED_LOCK = threading.Lock()
_SHARED_PER_VIEW = 256
_MISSING = object()


def _shared_get(owner: object, key: tuple):
    with _SHARED_LOCK:
        return _SHARED.get(owner, {}).get(key, _MISSING)


def _shared_put(owner: object, key: tuple, value) -> None:
    with _SHARED_LOCK:
        cache = _SHARED.setdefault(owner, {})
        while len(cache) >= _SHARED_PER_VIEW:
            cache.pop(next(iter(cache)))
        cache[key] = value


def attach_frames(
    fig: go.Figure, move: Callable[[go.Figure, int], object], n: int, shared: tuple[object, tuple] | None = None
) -> go.Figure:
    """Compute ``fig``'s α frames (``compute_frames``) and keep them on the figure for the browser.

    ``shared=(view, key)``: the frames of this chart are the same for every session that draws it with the same
    key; the first session computes them, later ones reuse them (``move`` is then not called at all).
    """
    packed = _MISSING if shared is None else _shared_get(*shared)
    if packed is _MISSING:
        try:
            packed = _pack(compute_frames(fig, move, n))
        except ValueError:  # the setter adds or removes traces: the figure moves with the rerun only
            packed = None
        if shared is not None:
            _shared_put(*shared, packed)
    fig._robust_alpha_frames = packed  # noqa: SLF001 - reused by set_index without re-reading the validated meta
    return fig if packed is None else set_index(fig, n - 1)


def built_with_frames(build: Callable[[int], go.Figure], n: int) -> list[go.Figure]:
    """For a figure rebuilt at each α (per-class bars): the figure at every grid index, each carrying the frames
    of all of them (show ``figs[i]`` after ``set_index(figs[i], i)``). The builds must have the same traces."""
    if n < 1:
        raise ValueError(f"an alpha grid has at least one point, got n={n}")
    figs = [build(k) for k in range(n)]
    try:
        frames = _pack(_frames([_snapshot(f) for f in figs]))
    except ValueError:  # the builds have other traces at other alphas: server-only moves
        frames = None
    for fig in figs:
        fig._robust_alpha_frames = frames  # noqa: SLF001
    return figs


def shared_built_with_frames(owner: object, key: tuple, build: Callable[[int], go.Figure], n: int) -> list[go.Figure]:
    """``built_with_frames`` once per process for ``(owner, key)``, each figure already marked with its own grid
    index: the figures are never changed afterwards, so every session draws them as they are (``st.plotly_chart``
    copies a figure before sending it) and a slider move on the server is a list lookup."""
    figs = _shared_get(owner, ("built", key))
    if figs is _MISSING:
        figs = built_with_frames(build, n)
        for k, fig in enumerate(figs):
            set_index(fig, k)
        _shared_put(owner, ("built", key), figs)
    return figs


def set_index(fig: go.Figure, i: int) -> go.Figure:
    """Tell the browser which grid index the server drew ``fig`` at (call after the page's own α setter)."""
    if not hasattr(fig, "_robust_alpha_frames"):
        raise ValueError("this figure has no α frames: build it with attach_frames or built_with_frames first")
    frames = fig._robust_alpha_frames  # noqa: SLF001
    if frames is None:  # the figure's traces differ along alpha: it moves with the rerun only
        return fig
    if not 0 <= i < frames["n"]:
        raise IndexError(f"grid index {i} is outside this figure's {frames['n']} α frames")
    fig.layout.meta = {META_KEY: frames["json"], f"{META_KEY}_index": int(i)}
    return fig


def frames_of(fig: go.Figure) -> dict | None:
    """The frames a figure carries, as the browser reads them (``traces``, ``frames``, ``index``), or None."""
    meta = fig.layout.meta
    if not isinstance(meta, dict) or META_KEY not in meta:
        return None
    return {**json.loads(meta[META_KEY]), "index": meta[f"{META_KEY}_index"]}


def mount() -> None:
    """Mount the page script that moves charts with the slider (once per page run; it renders nothing)."""
    import streamlit as st

    global _component
    if _component is None:
        _component = st.components.v2.component("robust_alpha_sync", js=_JS)
    _component(key="robust-alpha-sync", height=0)


_component = None
