"""Tables and figure data the dashboard shows, computed from a store (no streamlit, no torch).

``RunView(store)`` is built once per store and process. Everything that depends only on the store is
computed on first use and cached on the view; everything that depends on alpha is a lookup into
precomputed per-alpha arrays (``topk``), so a slider move costs milliseconds even for ImageNet-sized
stores. Alpha is resolved once to a grid point (``RunView.alpha_point``); every method takes its index.

One module per concept:
    _base.py       the store, memo, labels, top-k, correctness, accuracy curves, AlphaPoint
    accuracy.py    theta(alpha) vs the endpoints (paired intervals), single models, alpha choice
    robustness.py  effective robustness: baseline line, rho and its two intervals
    diversity.py   prediction diversity, margins (confidence), overrides
    examples.py    per-class changes and disagreeing examples
    calibration.py ECE, reliability bins, temperature scaling on ID val, paired ECE differences
"""

from __future__ import annotations

from ..store import Store
from ._base import OOD_AVG, REFERENCES, AlphaPoint, RunViewBase, ood_avg
from .accuracy import AccuracyViews
from .calibration import CalibrationViews
from .diversity import DiversityViews
from .examples import ExampleViews
from .robustness import RobustnessViews

__all__ = ["OOD_AVG", "REFERENCES", "AlphaPoint", "RunView", "ood_avg"]


class RunView(AccuracyViews, RobustnessViews, DiversityViews, ExampleViews, CalibrationViews, RunViewBase):
    """Read-only analysis of one store."""

    def __init__(self, store: Store):
        super().__init__(store)
