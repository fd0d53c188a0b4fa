"""Client-side alpha frames (dashboard/alpha_sync.py): applying frame k, as the page script does, gives the
figure the server draws at k, for every chart that carries frames; figures whose traces change fall back."""

import base64
import copy
import json
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
import pytest

from dashboard import alpha_sync
from dashboard.charts import (
    er_figure,
    per_class_figure,
    reliability_figure,
    set_er_alpha,
    set_reliability_alpha,
    set_tradeoff_alpha,
    set_vline_alpha,
    tradeoff_figure,
)
from robust_core.analysis import OOD_AVG, RunView
from robust_core.store import open_store

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def view():
    return RunView(open_store(ROOT / "cache" / "demo"))


def _decode(value):
    """plotly.py's JSON as plotly.js reads it: typed arrays ({"dtype", "bdata"}) as lists."""
    if isinstance(value, dict):
        if "bdata" in value and "dtype" in value:
            array = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
            if "shape" in value:
                array = array.reshape([int(d) for d in str(value["shape"]).split(",")])
            return _decode(array.tolist())
        return {key: _decode(sub) for key, sub in value.items()}
    if isinstance(value, list):
        return [_decode(sub) for sub in value]
    if isinstance(value, float) and value != value:
        return None
    return value


def _spec(fig: go.Figure) -> dict:
    """What the browser gets for the figure (plotly's own serialisation, as st.plotly_chart sends it)."""
    spec = _decode(json.loads(pio.to_json(fig, validate=False)))
    spec["layout"].pop("meta", None)
    spec["layout"].pop("template", None)
    return spec


def _set_path(obj: dict, path: str, value) -> None:
    *head, last = path.split(".")
    for key in head:
        obj = obj.setdefault(key, {})
    if value is None:
        obj.pop(last, None)
    else:
        obj[last] = value


def _apply(spec: dict, frames: dict, k: int) -> dict:
    """What Plotly.update(gd, frame's traces, frame's layout, traces) does to the figure's spec."""
    out = copy.deepcopy(spec)
    frame = frames["frames"][k]
    for p, j in enumerate(frames["traces"]):
        for attr, value in frame["data"][p].items():
            _set_path(out["data"][j], attr, value)
    for key, value in frame["layout"].items():
        if value is None:
            out["layout"].pop(key, None)
        else:
            out["layout"][key] = value
    return out


def _check_every_move(fig: go.Figure, move, n: int) -> dict:
    frames = alpha_sync.compute_frames(fig, move, n)
    assert len(frames["frames"]) == n
    for start in (0, n // 2, n - 1):
        move(fig, start)
        at_start = _spec(fig)
        for k in range(n):
            move(fig, k)
            assert _apply(at_start, frames, k) == _spec(fig), (start, k)
    return frames


def test_tradeoff_frames_reproduce_the_server_figure_at_every_alpha(view):
    wise, ensemble = view.curves("ft", "wise"), view.curves("ft", "ensemble")
    fig = tradeoff_figure(wise, ensemble, view.id, view.shifts, 0, True)
    frames = _check_every_move(fig, lambda f, k: set_tradeoff_alpha(f, wise, k), len(wise))
    # only the alpha markers and the alpha line move: the curves are not resent per alpha
    assert 0 < len(frames["traces"]) < len(fig.data)
    assert set(frames["frames"][0]["layout"]) == {"shapes", "annotations"}


def test_er_frames_move_only_the_ring(view):
    er = view.er_data("ft", OOD_AVG, "logit")
    fig = er_figure(er, "logit", 0, view.id, OOD_AVG, "FT", None, show_cloud=True, zoom=True)
    frames = _check_every_move(fig, lambda f, k: set_er_alpha(f, er, "logit", k), len(er["curve"]))
    assert [fig.data[j].meta for j in frames["traces"]] == ["alpha:current"]


def test_label_free_vline_frames(view):
    from dashboard.charts import label_free_figure

    lf = view.label_free("ft")
    alphas = [float(a) for a in lf.index]
    fig = label_free_figure(lf, 0.5)
    frames = _check_every_move(fig, lambda f, k: set_vline_alpha(f, alphas[k]), len(alphas))
    assert frames["traces"] == [] and [s["x0"] for s in (fr["layout"]["shapes"][0] for fr in frames["frames"])] == alphas


def test_moving_the_reliability_diagram_equals_building_it_at_that_alpha(view):
    """Calibration moves the reliability diagram instead of rebuilding it at every alpha: the moved figure equals
    the one built at that alpha, and so do its frames applied in the browser."""
    dataset, n = view.shifts[0], len(view.alphas("ft"))

    def build(k):
        return reliability_figure(view.reliability("ft", dataset, k), "Reliability")

    def move(f, k):
        return set_reliability_alpha(f, view.reliability("ft", dataset, k))

    fig = build(n // 2)
    _check_every_move(fig, move, n)
    for k in range(n):
        assert _spec(move(fig, k)) == _spec(build(k)), k


@pytest.mark.parametrize("kind", ["reliability", "per-class"])
def test_rebuilt_figures_frames_reproduce_each_build(view, kind):
    dataset, n = view.shifts[0], len(view.alphas("ft"))
    if kind == "reliability":

        def build(k):
            return reliability_figure(view.reliability("ft", dataset, k), "Reliability")
    else:

        def build(k):
            return per_class_figure(view.per_class("ft", dataset, k), "θ(α) − zero-shot", f"θ({view.alphas('ft')[k]:.2f})")

    figs = alpha_sync.built_with_frames(build, n)
    frames = alpha_sync.frames_of(alpha_sync.set_index(figs[3], 3))
    assert frames["index"] == 3
    for start in (0, 3, n - 1):
        for k in range(n):
            assert _apply(_spec(figs[start]), frames, k) == _spec(figs[k]), (start, k)
    # numpy arrays travel as plain lists, one value per attribute (never as typed-array fields)
    attrs = {a for trace in frames["frames"][0]["data"] for a in trace}
    assert not any(a.endswith((".bdata", ".dtype", ".shape")) for a in attrs), attrs
    assert all(isinstance(v, list) for trace in frames["frames"][0]["data"] for a, v in trace.items() if a in ("x", "y", "customdata"))


def test_figures_whose_traces_change_move_with_the_rerun_only():
    def build(k):
        return go.Figure([go.Scatter(x=[0], y=[k])] * (1 + k % 2))

    figs = alpha_sync.built_with_frames(build, 3)
    assert alpha_sync.frames_of(alpha_sync.set_index(figs[1], 1)) is None  # no frames: nothing for the browser to apply

    def grow(fig, k):
        fig.add_scatter(x=[k], y=[k])

    fig = alpha_sync.attach_frames(go.Figure(), grow, 3)
    assert alpha_sync.frames_of(alpha_sync.set_index(fig, 0)) is None


def test_set_index_checks_its_inputs():
    fig = alpha_sync.attach_frames(go.Figure(go.Scatter(x=[0], y=[0])), lambda f, k: f.data[0].update(y=[k]), 4)
    assert alpha_sync.frames_of(fig)["index"] == 3
    assert alpha_sync.frames_of(alpha_sync.set_index(fig, 1))["index"] == 1
    with pytest.raises(IndexError, match="outside"):
        alpha_sync.set_index(fig, 4)
    with pytest.raises(ValueError, match="no α frames"):
        alpha_sync.set_index(go.Figure(), 0)
    with pytest.raises(ValueError, match="at least one point"):
        alpha_sync.compute_frames(go.Figure(), lambda f, k: None, 0)


def test_frames_survive_plotly_serialisation_with_numpy_values():
    def move(fig, k):
        fig.data[0].update(y=np.arange(3, dtype=float) * k, marker=dict(color=["red", "blue", "green"][k]))

    fig = alpha_sync.attach_frames(go.Figure(go.Scatter(x=np.arange(3), y=np.zeros(3))), move, 3)
    meta = json.loads(pio.to_json(fig, validate=False))["layout"]["meta"]
    sent = json.loads(meta[alpha_sync.META_KEY])  # one JSON string, parsed by the page script
    assert meta[f"{alpha_sync.META_KEY}_index"] == 2
    assert sent["traces"] == [0]
    assert [f["data"][0]["marker.color"] for f in sent["frames"]] == ["red", "blue", "green"]
    assert "y" in sent["frames"][0]["data"][0]


def test_shared_frames_are_computed_once_per_view_and_key():
    class View:  # stands in for a RunView: frames are shared per view object, never across views
        pass

    calls = []

    def move(fig, k):
        calls.append(k)
        fig.data[0].update(y=[k])

    def chart():
        return go.Figure(go.Scatter(x=[0], y=[0]))

    first, second = View(), View()
    a = alpha_sync.attach_frames(chart(), move, 3, shared=(first, ("chart", "ft")))
    assert calls == [0, 1, 2]
    b = alpha_sync.attach_frames(chart(), move, 3, shared=(first, ("chart", "ft")))
    assert calls == [0, 1, 2]  # the second session reuses them
    assert alpha_sync.frames_of(a) == alpha_sync.frames_of(b)
    alpha_sync.attach_frames(chart(), move, 3, shared=(first, ("chart", "lp")))
    alpha_sync.attach_frames(chart(), move, 3, shared=(second, ("chart", "ft")))
    assert len(calls) == 9  # another key, another view: computed anew


def test_shared_built_figures_carry_their_own_index_and_are_built_once():
    class View:
        pass

    builds = []

    def build(k):
        builds.append(k)
        return go.Figure(go.Bar(x=["a", "b"], y=[k, -k]))

    owner = View()
    figs = alpha_sync.shared_built_with_frames(owner, ("pc", "ft"), build, 4)
    assert [alpha_sync.frames_of(f)["index"] for f in figs] == [0, 1, 2, 3]
    assert alpha_sync.shared_built_with_frames(owner, ("pc", "ft"), build, 4) is figs and builds == [0, 1, 2, 3]
    assert alpha_sync.frames_of(figs[0])["frames"][3]["data"][0]["y"] == [3, -3]
