"""Page smoke tests with streamlit's AppTest: every page, the slider, bad URLs, a corrupted store."""

import os
import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from robust_core.analysis import RunView
from robust_core.store import open_store

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "cache" / "demo"
PAGES = [
    "pages/explore/home.py",
    "pages/explore/tradeoff.py",
    "pages/explore/effective_robustness.py",
    "pages/explore/diversity.py",
    "pages/explore/calibration.py",
    "pages/explore/examples.py",
    "pages/explore/export.py",
    "pages/learn/tour.py",
    "pages/learn/feature_distortion.py",
    "pages/learn/papers.py",
    "pages/lab/live.py",
]


@pytest.fixture(scope="module")
def store_root(tmp_path_factory):
    """A store root with the shipped demo store and a corrupted copy of it."""
    root = tmp_path_factory.mktemp("stores")
    shutil.copytree(DEMO, root / "demo", ignore=shutil.ignore_patterns("_build"))
    shutil.copytree(DEMO, root / "broken", ignore=shutil.ignore_patterns("_build"))
    target = root / "broken" / "logits" / "ft" / "id-test.npy"
    target.write_bytes(target.read_bytes()[:-100])
    return root


@pytest.fixture()
def app(store_root, monkeypatch):
    monkeypatch.setenv("ROBUST_STORE_ROOT", str(store_root))
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)


def _problems(at):
    return [str(e.value)[:500] for e in at.exception]


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_without_exception(app, page):
    app.run()
    app.switch_page(page)
    app.run()
    assert not _problems(app), _problems(app)
    assert not [e.value for e in app.error], [e.value for e in app.error]


def test_slider_moves_numbers_equal_core(app, store_root):
    view = RunView(open_store(store_root / "demo"))
    app.run()
    app.switch_page("pages/explore/tradeoff.py")
    app.run()
    for alpha in (0.3, 0.8, 0.0):
        app.select_slider(key="alpha").set_value(alpha).run()
        assert not _problems(app)
        cards = view.cards("ft", view.alpha_point("ft", alpha).index)
        metrics = {m.label: m.value for m in app.metric}
        label = f"ID ({view.id}) at α={cards['alpha']:.2f}"
        assert metrics[label] == f"{100 * cards['id']:.1f}%"
        assert metrics["OOD avg"] == f"{100 * cards['ood']:.1f}%"
        assert app.query_params["alpha"] in (f"{alpha:g}", [f"{alpha:g}"])


def test_method_switch_and_er_page_numbers(app, store_root):
    view = RunView(open_store(store_root / "demo"))
    app.run()
    app.selectbox(key="method").set_value("lpft").run()
    app.switch_page("pages/explore/effective_robustness.py")
    app.run()
    assert not _problems(app)
    er = view.er_data("lpft", "OOD avg", "logit")
    table = app.dataframe[0].value
    zs = table[table.model == "zero-shot"].iloc[0]
    expected = er["table"][er["table"].model == "zero-shot"].iloc[0]
    assert zs["ρ (points)"] == pytest.approx(expected.rho)


@pytest.mark.parametrize(
    "raw, expected, notice",
    [
        ("abc", 0.5, "not a number"),
        ("7", 1.0, "clamped"),
        ("-1", 0.0, "clamped"),
        ("0.33", 0.3, "nearest grid value"),
        ("0.3", 0.3, None),
    ],
)
def test_bad_url_alpha_is_clamped_or_ignored_with_notice(app, raw, expected, notice):
    app.query_params["alpha"] = raw
    app.run()
    assert not _problems(app)
    assert app.select_slider(key="alpha").value == pytest.approx(expected)
    warnings = " ".join(w.value for w in app.warning)
    if notice:
        assert notice in warnings
    else:
        assert "alpha" not in warnings


def test_unknown_run_in_url_falls_back_with_notice(app):
    app.query_params["run"] = "nope"
    app.run()
    assert not _problems(app)
    assert "does not exist" in " ".join(w.value for w in app.warning)
    assert app.selectbox(key="run").value == "demo"


def test_corrupted_store_shows_clear_message_and_others_still_work(app):
    app.run()
    app.switch_page("pages/explore/tradeoff.py")
    app.run()
    app.selectbox(key="run").set_value("broken").run()
    assert not _problems(app)
    errors = " ".join(e.value for e in app.error).replace("\\", "")  # markdown escapes (dashboard.state.plain)
    assert "id-test.npy" in errors and "truncated" in errors
    assert "broken/logits" in errors and os.sep + "tmp" not in errors  # store-relative, no server path
    app.selectbox(key="run").set_value("demo").run()
    assert not _problems(app) and not app.error
    assert any(m.label == "OOD avg" for m in app.metric)


def _table(app, k):
    frame = app.dataframe[k].value
    return [(c.removeprefix("✓ "), round(p, 6)) for c, p in zip(frame["class"], frame["probability"])]


def test_live_lab_tables_equal_core_and_follow_the_inputs(app, store_root):
    from robust_core import live

    app.run()
    app.switch_page("pages/lab/live.py")
    app.run()
    assert not _problems(app) and not app.error
    assert [m.value for m in app.markdown if m.value.startswith("**")][:3] == [
        "**Zero-shot · α = 0**",
        "**θ(0.50) · WiSE-FT**",
        "**Fine-tuned · α = 1**",
    ]
    app.selectbox(key="live_char").set_value("7").run()
    app.selectbox(key="live_family").set_value("handwriting").run()
    app.slider(key="live_rotation").set_value(25).run()
    assert not _problems(app) and not app.error
    spec = live.GlyphSpec(character="7", font_family="handwriting", rotation=25.0)
    model = live.LiveModel(store_root / "demo", "ft")
    grid = model.grid(live.compose_glyph(spec))
    expected = [live.top_k(p, model.classnames) for p in (grid.probs[0], grid.probs[5], grid.probs[-1])]
    for k in range(3):  # theta(alpha) is run by its own cached model (model_at), the endpoints by the batched grid
        table = _table(app, k)
        assert [name for name, _ in table] == [name for _, name, _ in expected[k]]
        assert [p for _, p in table] == pytest.approx([100 * p for *_, p in expected[k]], abs=1e-3)
    assert any("True class **digit seven**" in m.value for m in app.markdown)
    before = _table(app, 2)
    app.select_slider(key="alpha").set_value(0.8).run()
    assert any("θ(0.80)" in m.value for m in app.markdown)
    app.selectbox(key="live_char").set_value("X").run()
    assert _table(app, 2) != before and any("True class **capital letter x**" in m.value for m in app.markdown)
    app.toggle(key="live_all").set_value(True).run()
    assert not _problems(app) and not app.error
    app.radio(key="live_source").set_value("Upload an image").run()
    assert not _problems(app) and any("Upload an image" in i.value for i in app.info)


def test_live_lab_without_weights_names_the_command(tmp_path, monkeypatch):
    import json

    shutil.copytree(DEMO, tmp_path / "demo", ignore=shutil.ignore_patterns("_build"))
    manifest = json.loads((tmp_path / "demo" / "manifest.json").read_text())
    for method in manifest["methods"].values():
        method.pop("checkpoints", None)
    (tmp_path / "demo" / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.setenv("ROBUST_STORE_ROOT", str(tmp_path))
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
    app.run()
    app.switch_page("pages/lab/live.py")
    app.run()
    assert not _problems(app)
    errors = " ".join(e.value for e in app.error).replace("\\", "")
    assert "keeps no weights" in errors and "python -m robust_core demo --force" in errors


def test_calibration_page_numbers_equal_core(app, store_root):
    view = RunView(open_store(store_root / "demo"))
    app.run()
    app.switch_page("pages/explore/calibration.py")
    app.run()
    app.select_slider(key="alpha").set_value(0.3).run()
    assert not _problems(app) and not app.error
    dataset = app.selectbox(key="cal_ds").value
    assert dataset == view.shifts[0]
    i = view.alpha_point("ft", 0.3).index
    for scaled in (False, True):
        app.toggle(key="cal_temperature").set_value(scaled).run()
        assert not _problems(app)
        metrics = {m.label: m.value for m in app.metric}
        assert metrics["ECE θ(α=0.30)"] == f"{view.ece('ft', dataset, i, scaled):.2f} pts"
        assert metrics["ECE fine-tuned"] == f"{view.ece('ft', dataset, -1, scaled):.2f} pts"
        table = app.dataframe[0].value
        assert table.loc["OOD avg", "fine-tuned"] == pytest.approx(view.ece_curve("ft", scaled)["OOD avg"].iloc[-1])


def test_example_grid_escapes_names_and_embeds_thumbnails():
    import pandas as pd

    from dashboard.charts import example_cards_html

    table = pd.DataFrame(
        {
            "index": [3, 5],
            "label": ["<script>alert(1)</script>", "cat"],
            "zero-shot top-3": ["<b>x</b> 50%, y 20%, z 10%", "cat 90%, dog 5%, cow 1%"],
            "fine-tuned top-3": ["y 70%, x 20%, z 5%", "dog 60%, cat 30%, cow 5%"],
            "θ(0.50) top-3": ["y 40%, x 35%, z 10%", "cat 50%, dog 45%, cow 2%"],
            "zero-shot right": [True, True],
            "fine-tuned right": [False, False],
            "θ(α) right": [False, True],
        }
    )
    html = example_cards_html(table, [b"\x89PNG fake", None], 0.5)
    assert "<script>" not in html and "&lt;script&gt;" in html and "&lt;b&gt;x&lt;/b&gt;" in html
    assert html.count("class='card'") == 2 and html.count("data:image/png;base64,") == 1
    assert "#3" in html and "θ(0.50)" in html


def test_er_panels_toggle_draws_one_panel_per_shift(app, store_root):
    view = RunView(open_store(store_root / "demo"))
    app.run()
    app.switch_page("pages/explore/effective_robustness.py")
    app.run()
    charts_before = len(app.get("plotly_chart"))
    app.toggle(key="er_panels").set_value(True).run()
    assert not _problems(app) and not app.error
    assert len(app.get("plotly_chart")) == charts_before + 1
    panels = app.get("plotly_chart")[-1].proto.spec
    assert all(f'"text":"{s}"' in panels.replace(" ", "") for s in view.shifts)  # one subplot title per shift


@pytest.mark.parametrize(
    "page", ["tradeoff", "effective_robustness", "calibration", "examples"], ids=["tradeoff", "er", "calibration", "examples"]
)
def test_alpha_charts_are_sent_unchanged_as_alpha_moves_and_the_run_says_where_it_drew(app, page):
    """A slider move changes the page's numbers, not the charts Streamlit sends: each framed chart's spec (drawn
    at the alpha the session first drew it at, 0.2 here, with every alpha's frames) is byte-identical at 0.2 and
    0.8, so the browser keeps it and only the page script moves it. The run's last element tells that script
    which grid index the numbers were drawn at."""
    import json

    app.query_params["run"] = "demo"
    app.run()
    app.switch_page(f"pages/explore/{page}.py")

    def framed_specs_and_index(alpha):
        app.select_slider(key="alpha").set_value(alpha).run()
        assert not _problems(app)
        specs = [c.proto.spec for c in app.get("plotly_chart") if '"robust_alpha"' in c.proto.spec]
        done = [json.loads(c.proto.json) for c in app.sidebar.get("bidi_component") if c.proto.id.endswith("robust-alpha-sync-done")]
        return specs, done

    low, low_done = framed_specs_and_index(0.2)
    high, high_done = framed_specs_and_index(0.8)
    assert low and low == high
    assert all(json.loads(spec)["layout"]["meta"]["robust_alpha_index"] == 2 for spec in low)  # first drawn at 0.2
    assert low_done == [{"index": 2}] and high_done == [{"index": 8}]
