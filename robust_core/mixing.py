"""WiSE-FT's one formula, torch-free: ``mix(a, b, alpha) = (1 - alpha) * a + alpha * b``.

Computed as ``a + alpha * (b - a)`` (the form the in-place interpolator uses with a precomputed
``b - a``) and exact at the endpoints: ``mix(a, b, 0) is a`` and ``mix(a, b, 1) is b``. Works on numpy
arrays, torch tensors and floats alike, so weights (``wise.interpolate``), logits (the output-space
ensemble, a linear head's grid) and the dashboard all mix the same way.
"""

from __future__ import annotations


def mix(a, b, alpha: float):
    """``(1 - alpha) * a + alpha * b``; returns ``a`` / ``b`` themselves at alpha 0 / 1."""
    alpha = float(alpha)
    if alpha == 0.0:
        return a
    if alpha == 1.0:
        return b
    return a + alpha * (b - a)
