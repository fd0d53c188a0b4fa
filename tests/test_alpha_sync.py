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
    label_free_figure,
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

    specs = alpha_sync.built_with_frames(_Owner(), (kind,), build, n)
    frames = alpha_sync.frames_of(specs[0])
    figs = [build(k) for k in range(n)]
    for start in (0, 3, n - 1):
        for k in range(n):
            assert _apply(_spec(figs[start]), frames, k) == _spec(figs[k]), (start, k)
    for k in range(n):  # frame k applied to the bare chart gives build k
        assert _spec_of(specs[k]) == _spec(figs[k]), k
    # numpy arrays travel as plain lists, one value per attribute (never as typed-array fields)
    attrs = {a for trace in frames["frames"][0]["data"] for a in trace}
    assert not any(a.endswith((".bdata", ".dtype", ".shape")) for a in attrs), attrs
    assert all(isinstance(v, list) for trace in frames["frames"][0]["data"] for a, v in trace.items() if a in ("x", "y", "customdata"))


class _Owner:  # stands in for a RunView: specs and frames are shared per view object, never across views
    pass


def _one_trace():
    return go.Figure(go.Scatter(x=[0], y=[0]))


def _move_y(fig, k):
    fig.data[0].update(y=[k])


def test_figures_whose_traces_change_move_with_the_rerun_only():
    def build(k):
        return go.Figure([go.Scatter(x=[0], y=[k])] * (1 + k % 2))

    assert alpha_sync.built_with_frames(_Owner(), ("pc",), build, 3) is None  # no frames: the page shows build(i)

    def grow(fig, k):
        fig.add_scatter(x=[k], y=[k])

    assert alpha_sync.shared_specs(_Owner(), ("grow",), go.Figure, grow, 3) is None  # the page moves its own figure


def test_indices_are_checked():
    specs = alpha_sync.shared_specs(_Owner(), ("c",), _one_trace, _move_y, 4)
    assert len(specs) == 4
    assert [_spec_of(specs[k])["data"][0]["y"] for k in range(4)] == [[0], [1], [2], [3]]
    with pytest.raises(IndexError, match="outside"):
        specs[4]
    with pytest.raises(ValueError, match="at least one point"):
        alpha_sync.compute_frames(go.Figure(), lambda f, k: None, 0)
    with pytest.raises(ValueError, match="at least one point"):
        alpha_sync.built_with_frames(_Owner(), ("c",), lambda k: go.Figure(), 0)


def test_each_alpha_spec_is_the_bare_chart_with_that_frame_and_says_its_index():
    """specs[k] is the chart without its alpha parts (bare) with frame k applied, carrying every alpha's frames and
    k; the same object for every session asking for k (what a session keeps sending while the slider moves)."""

    def move(fig, k):
        fig.data[1].update(x=[k], y=[k])
        fig.update_layout(shapes=[dict(type="line", x0=k, x1=k, y0=0, y1=1)])

    def build():
        return go.Figure([go.Scatter(x=[0, 1, 2], y=[5, 6, 7], name="curve"), go.Scatter(x=[0], y=[0], name="alpha")])

    owner = _Owner()
    specs = alpha_sync.shared_specs(owner, ("s",), build, move, 3)
    bare = _decode(copy.deepcopy(specs.bare))
    assert bare["data"][0]["y"] == [5, 6, 7]  # the curve is there, the alpha marker and line are not
    assert "x" not in bare["data"][1] and "y" not in bare["data"][1] and "shapes" not in bare["layout"]
    at1 = _decode(copy.deepcopy(specs[1].to_dict()))
    assert at1["data"][1]["x"] == [1] and at1["layout"]["shapes"][0]["x0"] == 1
    assert alpha_sync.frames_of(specs[1])["index"] == 1 and alpha_sync.frames_of(specs[1])["traces"] == [1]
    assert alpha_sync.shared_specs(owner, ("s",), build, move, 3)[1] is specs[1]  # any session
    assert [f["layout"]["shapes"][0]["x0"] for f in alpha_sync.frames_of(specs[2])["frames"]] == [0, 1, 2]


def test_frames_survive_plotly_serialisation_with_numpy_values():
    def move(fig, k):
        fig.data[0].update(y=np.arange(3, dtype=float) * k, marker=dict(color=["red", "blue", "green"][k]))

    spec = alpha_sync.shared_specs(_Owner(), ("np",), lambda: go.Figure(go.Scatter(x=np.arange(3), y=np.zeros(3))), move, 3)[2]
    meta = json.loads(pio.to_json(spec.to_dict(), validate=False))["layout"]["meta"]
    sent = json.loads(meta[alpha_sync.META_KEY])  # one JSON string, parsed by the page script
    assert sent["traces"] == [0]
    assert [f["data"][0]["marker.color"] for f in sent["frames"]] == ["red", "blue", "green"]
    assert "y" in sent["frames"][0]["data"][0]


def _spec_of(spec: alpha_sync.FigureSpec) -> dict:
    out = _decode(copy.deepcopy(spec.to_dict()))
    out["layout"].pop("meta", None)
    out["layout"].pop("template", None)
    return out


@pytest.mark.parametrize("chart", ["tradeoff", "er", "label-free", "reliability"])
def test_each_shared_spec_is_the_figure_the_pages_setter_draws_there(view, chart):
    """specs[k] (frame k applied to the chart without its alpha parts) equals a fresh build moved to k by the
    page's own setter; from any specs[j], frame k gives the same (what the page script does)."""
    if chart == "tradeoff":
        wise, ensemble = view.curves("ft", "wise"), view.curves("ft", "ensemble")
        n = len(wise)

        def build():
            return tradeoff_figure(wise, ensemble, view.id, view.shifts, n // 2, True)

        def move(f, k):
            return set_tradeoff_alpha(f, wise, k)
    elif chart == "er":
        er = view.er_data("ft", OOD_AVG, "logit")
        n = len(er["curve"])

        def build():
            return er_figure(er, "logit", n // 2, view.id, OOD_AVG, "FT", None, show_cloud=True, zoom=True)

        def move(f, k):
            return set_er_alpha(f, er, "logit", k)
    elif chart == "label-free":
        lf = view.label_free("ft")
        alphas = [float(a) for a in lf.index]
        n = len(alphas)

        def build():
            return label_free_figure(lf, alphas[n // 2])

        def move(f, k):
            return set_vline_alpha(f, alphas[k])
    else:
        n = len(view.alphas("ft"))

        def build():
            return reliability_figure(view.reliability("ft", view.id, n // 2, False), "r")

        def move(f, k):
            return set_reliability_alpha(f, view.reliability("ft", view.id, k, False))

    specs = alpha_sync.shared_specs(_Owner(), (chart,), build, move, n)
    for k in range(n):
        assert _spec_of(specs[k]) == _spec(move(build(), k)), k
        assert alpha_sync.frames_of(specs[k])["index"] == k
    for start in (0, n - 1):
        for k in range(n):
            assert _apply(_spec_of(specs[start]), specs.frames, k) == _spec_of(specs[k]), (start, k)


def test_plotly_chart_sends_a_figure_spec_as_it_sends_the_figure_and_leaves_it_unchanged():
    """st.plotly_chart given a FigureSpec sends the same spec as for the plotly figure (no re-validation, no copy),
    and does not change the shared dict; a Streamlit upgrade that reads figures another way fails here."""
    from streamlit.testing.v1 import AppTest

    def script():
        import numpy as np
        import plotly.graph_objects as go
        import streamlit as st

        from dashboard import alpha_sync

        fig = go.Figure(go.Bar(x=["a", "b", "c"], y=np.array([1.5, -2.0, np.nan]), customdata=np.eye(3)))
        fig.update_layout(title="t", height=300)
        spec = alpha_sync.freeze(fig)
        before = repr(spec.to_dict())
        st.plotly_chart(fig, key="figure")
        st.plotly_chart(spec, key="spec")
        st.session_state["unchanged"] = repr(spec.to_dict()) == before

    at = AppTest.from_function(script).run()
    assert not at.exception
    charts = at.get("plotly_chart")
    sent = [_decode(json.loads(c.proto.spec)) for c in charts]
    assert sent[0] == sent[1]
    assert at.session_state["unchanged"]


def test_a_figure_spec_is_not_a_figure_to_change():
    spec = alpha_sync.freeze(_one_trace())
    assert alpha_sync.freeze(spec) is spec
    assert spec == alpha_sync.freeze(_one_trace()) and "1 traces" in repr(spec)
    with pytest.raises(AttributeError):
        spec.data  # noqa: B018 - plotly's figure API is not there: nothing can move a shared spec


def test_shared_specs_are_computed_once_per_view_and_key():
    calls = []

    def move(fig, k):
        calls.append(k)
        fig.data[0].update(y=[k])

    first, second = _Owner(), _Owner()
    a = alpha_sync.shared_specs(first, ("chart", "ft"), _one_trace, move, 3)
    assert calls == [0, 1, 2]
    b = alpha_sync.shared_specs(first, ("chart", "ft"), _one_trace, move, 3)
    assert b is a and calls == [0, 1, 2]  # the second session reuses them
    assert a[1] is a[1]  # each index's spec is made once
    alpha_sync.shared_specs(first, ("chart", "lp"), _one_trace, move, 3)
    alpha_sync.shared_specs(second, ("chart", "ft"), _one_trace, move, 3)
    assert len(calls) == 9  # another key, another view: computed anew


def test_rebuilt_figures_are_built_once_per_view_and_key():
    builds = []

    def build(k):
        builds.append(k)
        return go.Figure(go.Bar(x=["a", "b"], y=[k, -k]))

    owner = _Owner()
    specs = alpha_sync.built_with_frames(owner, ("pc", "ft"), build, 4)
    assert alpha_sync.built_with_frames(owner, ("pc", "ft"), build, 4) is specs and builds == [0, 1, 2, 3]
    assert alpha_sync.frames_of(specs[0])["frames"][3]["data"][0]["y"] == [3, -3]
    assert "y" not in specs.bare["data"][0]  # the bars change along alpha
    assert _spec_of(specs[2])["data"][0]["y"] == [2, -2]
