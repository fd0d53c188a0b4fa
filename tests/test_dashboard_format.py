"""The dashboard's text formatting of differences and intervals (dashboard/state.py)."""

import numpy as np
import pandas as pd

from dashboard.state import ci_text, ci_texts


def test_ci_texts_equals_ci_text_row_by_row():
    frame = pd.DataFrame({"d": [0.031, -0.0125, np.nan, 0.0], "lo": [0.012, -0.03, np.nan, -0.001], "hi": [0.05, 0.004, np.nan, 0.002]})
    want = [ci_text(100 * r.d, 100 * r.lo, 100 * r.hi, 0) for r in frame.itertuples()]
    assert ci_texts(frame, "d", "lo", "hi", 0, scale=100) == want
    assert ci_texts(frame, "d", "lo", "hi")[:2] == ["+0.0 [+0.0, +0.1]", "-0.0 [-0.0, +0.0]"]
    assert ci_texts(frame, "d", "lo", "hi", scale=100)[0] == "+3.1 [+1.2, +5.0]"
    assert ci_texts(frame, "d", "lo", "hi")[2] == "–"  # NaN: no interval
    assert ci_texts(frame.iloc[:0], "d", "lo", "hi") == []


def test_margin_violins_sit_at_their_model_without_per_point_positions():
    from dashboard.charts import margin_figure

    frame = pd.DataFrame(
        {
            "model": ["zero-shot"] * 3 + ["fine-tuned"] * 2,
            "correct": ["correct", "incorrect", "correct", "correct", "incorrect"],
            "margin": [1.0, 0.2, 2.0, 3.0, 0.1],
        }
    )
    fig = margin_figure(frame)
    got = {(t.x0, t.side): sorted(t.y) for t in fig.data}
    assert got == {
        ("zero-shot", "positive"): [1.0, 2.0],
        ("zero-shot", "negative"): [0.2],
        ("fine-tuned", "positive"): [3.0],
        ("fine-tuned", "negative"): [0.1],
    }
    assert all(t.x is None for t in fig.data)  # no 4,000-string position list copied on every rerun
