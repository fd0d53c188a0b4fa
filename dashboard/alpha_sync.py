"""Client-side alpha: charts follow the sidebar's alpha slider in the browser, before the rerun arrives.

Streamlit sends a slider's value to the server only after a debounce, then reruns the page; a chart's α
marker used to move only when that rerun had been drawn (a few hundred ms after the key press). Here a figure
carries its own α frames: for every grid point, the values of the traces and layout keys that change along α
(``shared_specs``, ``built_with_frames``). A small script in the page (``alpha_sync.js``, mounted once in the sidebar by ``mount``)
watches the slider and applies the frame of the slider's grid index to every such chart as the thumb moves.
The page's numbers, cards and tables still come from the rerun; the rerun also redraws every chart at the
server's α, so the browser never keeps a state the server did not compute.

On the server a framed chart is built once per process: its spec at grid index k is frame k applied to that
build without its α parts (``apply_frame``, what the page script does), kept as a ``FigureSpec`` that every
session sends as it is (``shared_specs``); tests check it against the figure the page's setter moves to k. A
session keeps sending the spec its chart was first drawn at while the slider moves (``AlphaSpecs``), so the
browser does not redraw it; the page script shows the slider's frame.

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
import plotly.io as pio

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


def built_with_frames(owner: object, key: tuple, build: Callable[[int], go.Figure], n: int) -> AlphaSpecs | None:
    """For a figure rebuilt at each α (per-class bars): ``build(k)`` at every grid index, once per process for
    ``(owner, key)``, as one ``AlphaSpecs`` (its frames are the builds' differences); None when the builds have
    other traces at other alphas (the page then shows ``build(i)`` of its own)."""
    if n < 1:
        raise ValueError(f"an alpha grid has at least one point, got n={n}")
    specs = _shared_get(owner, ("built", key))
    if specs is _MISSING:
        figs = [build(k) for k in range(n)]
        try:
            frames = _frames([_snapshot(f) for f in figs])
        except ValueError:  # the builds have other traces at other alphas: server-only moves
            specs = None
        else:
            specs = AlphaSpecs(_json_ready(figs[-1]), frames)
        _shared_put(owner, ("built", key), specs)
    return specs


def frames_of(fig) -> dict | None:
    """The frames a chart carries, as the page script reads them (``traces``, ``frames``, and ``index``: the grid
    index the chart is drawn at, None for ``AlphaSpecs.bare``), or None."""
    meta = (fig.to_dict()["layout"] if isinstance(fig, (FigureSpec, dict)) else fig.layout.to_plotly_json()).get("meta")
    if not isinstance(meta, dict) or META_KEY not in meta:
        return None
    return {**json.loads(meta[META_KEY]), "index": meta.get(f"{META_KEY}_index")}


class FigureSpec(go.Figure):
    """A finished figure held as the JSON-ready dict plotly made of it (``freeze``), for ``st.plotly_chart``.

    ``st.plotly_chart`` calls ``to_dict()`` on a plotly Figure: a deep copy of the whole figure with every array
    base64-encoded, on every rerun (1-3 ms a chart); a plain dict it would re-validate through ``go.Figure``
    (slower). A FigureSpec is a Figure whose ``to_dict`` returns the dict it was made from, so a chart that did
    not change costs nothing to prepare; the dict was built and validated by plotly once. It is shared between
    sessions and must not be changed (Streamlit only reads it; ``tests/test_alpha_sync.py`` checks both). Use
    ``to_dict()`` to read it: plotly's figure API (``.data``, ``.layout``, ``update``) is not available.
    """

    def __init__(self, spec: dict):  # noqa: D107 - plotly's __init__ would validate the spec again
        object.__setattr__(self, "_spec", spec)

    def to_dict(self) -> dict:
        return self._spec

    to_plotly_json = to_dict

    def __repr__(self) -> str:
        return f"FigureSpec({len(self._spec.get('data', []))} traces)"

    def __eq__(self, other) -> bool:
        return isinstance(other, FigureSpec) and other._spec == self._spec

    __hash__ = None


def _json_ready(fig: go.Figure) -> dict:
    """The figure as plotly.js reads it: plotly's own JSON (numeric arrays as base64 typed arrays), parsed back.

    Each rerun, Streamlit's ``plotly.io.to_json`` walks the dict it is given; ``to_dict()``'s nested numpy arrays
    and lists make that walk ten times longer than this form's strings."""
    return json.loads(pio.to_json(fig, validate=False))


def freeze(fig: go.Figure) -> FigureSpec:
    """``fig`` as a FigureSpec (what ``st.plotly_chart`` would send for it, prepared once)."""
    return fig if isinstance(fig, FigureSpec) else FigureSpec(_json_ready(fig))


def _set_path(obj: dict, path: str, value) -> None:
    """Set ``marker.color`` in a trace dict, copying each dict on the way (the spec's dicts are shared)."""
    *head, last = path.split(".")
    for key in head:
        obj[key] = obj = dict(obj.get(key) or {})
    if value is None:  # what Plotly.update does with null: the attribute goes back to its default
        obj.pop(last, None)
    else:
        obj[last] = value


def apply_frame(spec: dict, frames: dict, k: int) -> dict:
    """``spec`` (a figure's dict) with frame ``k`` applied as the page script applies it (``Plotly.update`` of the
    changed attributes of the changed traces and the changed layout keys); ``spec`` is not changed (only what the
    frame touches is copied)."""
    frame = frames["frames"][k]
    data = list(spec["data"])
    for p, j in enumerate(frames["traces"]):
        trace = data[j] = dict(data[j])
        for attr, value in frame["data"][p].items():
            _set_path(trace, attr, value)
    layout = dict(spec["layout"])
    for key, value in frame["layout"].items():
        if value is None:
            layout.pop(key, None)
        else:
            layout[key] = value
    return {**spec, "data": data, "layout": layout}


def _without_alpha(spec: dict, frames: dict) -> dict:
    """``spec`` without anything that changes along α (each changed trace attribute and layout key removed), with
    the frames in ``layout.meta``: what every grid index's spec is made from."""
    data = list(spec["data"])
    for p, j in enumerate(frames["traces"]):
        trace = data[j] = dict(data[j])
        for attr in frames["frames"][0]["data"][p]:
            _set_path(trace, attr, None)
    layout = {key: value for key, value in spec["layout"].items() if key not in frames["frames"][0]["layout"]}
    layout["meta"] = {META_KEY: json.dumps(frames, separators=(",", ":"), allow_nan=False)}
    return {**spec, "data": data, "layout": layout}


class AlphaSpecs:
    """One chart at every grid index, from its frames: ``specs[k]`` is the chart at grid index ``k`` carrying every
    α's frames (and ``k``, in ``layout.meta``), so the page script can move it to any other α in the browser.

    A page sends one of them per session and chart, the one at the α the chart was first drawn at
    (``dashboard.state.moving_figure``), and keeps sending that same spec while the slider moves: Streamlit keys a
    Plotly element by its spec, so a changed spec would be a new chart, remounted and drawn twice from scratch
    (about 250 ms of the browser's time per move on Tradeoff); the page script shows the slider's frame on it.
    ``bare`` is the chart without its α parts, what every ``specs[k]`` is made from (``apply_frame``); tests check
    each against the figure the page's own α setter draws at ``k``.
    """

    def __init__(self, base: dict, frames: dict):
        self.frames = frames
        self.bare = _without_alpha(base, frames)
        self._specs: list[FigureSpec | None] = [None] * len(frames["frames"])

    def __len__(self) -> int:
        return len(self._specs)

    def __getitem__(self, k: int) -> FigureSpec:
        if not 0 <= k < len(self._specs):
            raise IndexError(f"grid index {k} is outside this figure's {len(self._specs)} α frames")
        spec = self._specs[k]
        if spec is None:
            at = apply_frame(self.bare, self.frames, k)
            at["layout"]["meta"] = {**at["layout"]["meta"], f"{META_KEY}_index": int(k)}
            spec = self._specs[k] = FigureSpec(at)
        return spec


def shared_specs(owner: object, key: tuple, build: Callable[[], go.Figure], move: Callable[[go.Figure, int], object], n: int):
    """The chart ``build()`` moved along the grid by the page's α setter ``move(fig, k)``: an ``AlphaSpecs`` made
    once per process for ``(owner, key)`` and shared by every session (read-only), or None when the chart's traces
    change along α (it has no frames; the caller builds and moves a figure of its own)."""
    specs = _shared_get(owner, ("specs", key))
    if specs is _MISSING:
        fig = build()
        try:
            frames = compute_frames(fig, move, n)
        except ValueError:  # the setter adds or removes traces: the figure moves with the rerun only
            specs = None
        else:
            specs = AlphaSpecs(_json_ready(fig), frames)
        _shared_put(owner, ("specs", key), specs)
    return specs


def shared_figure(owner: object, key: tuple, build: Callable[[], go.Figure]) -> FigureSpec:
    """An α-independent chart as a FigureSpec, built once per process for ``(owner, key)`` and shared by sessions."""
    fig = _shared_get(owner, ("figure", key))
    if fig is _MISSING:
        fig = freeze(build())
        _shared_put(owner, ("figure", key), fig)
    return fig


def _mount(key: str, data: dict) -> None:
    import streamlit as st

    global _component
    if _component is None:
        _component = st.components.v2.component("robust_alpha_sync", js=_JS)
    _component(key=key, data=data, height=0)


def mount() -> None:
    """Mount the page script that moves charts with the slider (early in the run, before the charts arrive; it
    renders nothing)."""
    _mount("robust-alpha-sync", {})


def mount_done(index: int | None) -> None:
    """Tell the page script the grid index this run drew the page's numbers at (``None`` without a store). Call it
    last in the run (``app.py``): the numbers are faded while the slider is elsewhere, and they are this run's once
    everything before this call has reached the browser."""
    _mount("robust-alpha-sync-done", {"index": index})


_component = None
