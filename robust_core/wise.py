"""WiSE-FT: weight-space interpolation, and (separately named) the output-space ensemble.

``theta(alpha) = (1 - alpha) * theta_zeroshot + alpha * theta_finetuned`` over every floating-point
tensor of the full classifier (image encoder + head). Integer and bool buffers (BatchNorm's
``num_batches_tracked``) are not interpolated: they are copied from the fine-tuned model unchanged.

Both use ``mixing.mix``, the formula the rest of the code mixes with. The output-space ensemble,
``mix(logits_zeroshot, logits_finetuned, alpha)``, mixes *outputs*, not weights: it is a different model
and is always labelled as such, never as WiSE-FT. For a linear head on frozen features the two coincide.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from .mixing import mix
from .store import ALPHA_KEY_DECIMALS


class InterpolationError(ValueError):
    """The two state dicts cannot be interpolated; the message names the offending keys."""


def check_compatible(theta_zeroshot: Mapping[str, torch.Tensor], theta_finetuned: Mapping[str, torch.Tensor]) -> None:
    """Raise ``InterpolationError`` naming mismatched keys, shapes or dtypes."""
    keys_0, keys_1 = set(theta_zeroshot), set(theta_finetuned)
    if keys_0 != keys_1:
        only_0 = sorted(keys_0 - keys_1)
        only_1 = sorted(keys_1 - keys_0)
        raise InterpolationError(
            "State dicts have different keys: only in theta_zeroshot "
            f"{only_0[:10]}{'...' if len(only_0) > 10 else ''}, only in theta_finetuned "
            f"{only_1[:10]}{'...' if len(only_1) > 10 else ''}. Both must come from the same architecture "
            "and head size."
        )
    bad_shape = [
        f"{k}: {tuple(theta_zeroshot[k].shape)} vs {tuple(theta_finetuned[k].shape)}"
        for k in sorted(keys_0)
        if theta_zeroshot[k].shape != theta_finetuned[k].shape
    ]
    if bad_shape:
        raise InterpolationError(
            f"Shape mismatch for {len(bad_shape)} tensors: {bad_shape[:5]}. Were the heads built for different class lists?"
        )
    bad_dtype = [
        f"{k}: {theta_zeroshot[k].dtype} vs {theta_finetuned[k].dtype}"
        for k in sorted(keys_0)
        if theta_zeroshot[k].dtype != theta_finetuned[k].dtype
    ]
    if bad_dtype:
        raise InterpolationError(f"Dtype mismatch for {len(bad_dtype)} tensors: {bad_dtype[:5]}. Cast both models to one dtype first.")


def interpolate(
    theta_zeroshot: Mapping[str, torch.Tensor],
    theta_finetuned: Mapping[str, torch.Tensor],
    alpha: float,
) -> dict[str, torch.Tensor]:
    """Return ``(1 - alpha) * theta_zeroshot + alpha * theta_finetuned`` (WiSE-FT), as new tensors.

    Args:
        theta_zeroshot: state dict of the zero-shot classifier (alpha = 0).
        theta_finetuned: state dict of the fine-tuned classifier (alpha = 1), same keys/shapes/dtypes.
        alpha: mixing coefficient; values outside [0, 1] extrapolate and are allowed.

    Raises:
        InterpolationError: keys, shapes or dtypes differ (the message names them).
    """
    check_compatible(theta_zeroshot, theta_finetuned)

    def merge(t0: torch.Tensor, t1: torch.Tensor) -> torch.Tensor:
        if not (torch.is_floating_point(t0) or torch.is_complex(t0)):
            return t1.clone()  # integer/bool buffers (num_batches_tracked) come from the fine-tuned model
        mixed = mix(t0, t1, alpha)
        return mixed.clone() if mixed is t0 or mixed is t1 else mixed  # mix returns an endpoint itself at 0 and 1

    return {key: merge(t0, theta_finetuned[key]) for key, t0 in theta_zeroshot.items()}


class InPlaceInterpolator:
    """Set a module's weights to theta(alpha) in place, without allocating a new state dict.

    The same formula as ``mixing.mix`` (``theta_zeroshot + alpha * (theta_finetuned - theta_zeroshot)``)
    with the difference computed once, so each alpha is one copy and one fused add per tensor. Used by
    the evaluator to run every alpha on a decoded batch: swapping weights costs one pass over the
    parameters (memory-bound), far cheaper than decoding the dataset again.
    """

    def __init__(self, module: torch.nn.Module, theta_zeroshot: Mapping, theta_finetuned: Mapping):
        check_compatible(theta_zeroshot, theta_finetuned)
        own = module.state_dict()
        check_compatible(own, theta_zeroshot)
        self.targets, self.start, self.delta = [], [], []
        self.int_targets, self.int_sources = [], []
        for key, tensor in own.items():
            if torch.is_floating_point(tensor):
                self.targets.append(tensor)
                t0 = theta_zeroshot[key].to(tensor.device, tensor.dtype)
                self.start.append(t0)
                self.delta.append(theta_finetuned[key].to(tensor.device, tensor.dtype) - t0)
            else:  # integer/bool buffers come from theta_finetuned unchanged
                self.int_targets.append(tensor)
                self.int_sources.append(theta_finetuned[key].to(tensor.device))
        self.alpha: float | None = None

    @torch.no_grad()
    def set_alpha(self, alpha: float) -> None:
        if self.alpha == alpha:
            return
        for target, source in zip(self.int_targets, self.int_sources):
            target.copy_(source)
        torch._foreach_copy_(self.targets, self.start)
        if alpha != 0.0:
            torch._foreach_add_(self.targets, self.delta, alpha=float(alpha))
        self.alpha = alpha


def default_alpha_grid(step: float = 0.05) -> list[float]:
    """The alpha grid 0, step, ..., 1 (rounded so that keys like 0.35 are exact)."""
    n = int(round(1.0 / step))
    if abs(n * step - 1.0) > 1e-9:
        raise ValueError(f"alpha step {step} does not divide 1; use e.g. 0.05 or 0.1.")
    return [round(i * step, 6) for i in range(n + 1)]


MAX_ALPHAS = 501  # a grid is evaluated once per alpha: more than this is a typo, not a plan


def parse_alphas(spec: str | Sequence[float]) -> list[float]:
    """Parse ``"0:1:0.05"`` (start:stop:step) or ``"0,0.5,1"`` into a sorted list of alphas.

    Alphas must be finite, in [0, 1], include both endpoints, be distinct at the store's key precision
    (``store.ALPHA_KEY_DECIMALS``) and number at most ``MAX_ALPHAS``.
    """
    import math

    if not isinstance(spec, str):
        values = [float(a) for a in spec]
    elif ":" in spec:
        try:
            start, stop, step = (float(x) for x in spec.split(":"))
        except ValueError as exc:
            raise ValueError(f"Bad alpha range {spec!r}: use start:stop:step, e.g. 0:1:0.05.") from exc
        if not all(math.isfinite(v) for v in (start, stop, step)):
            raise ValueError(f"Bad alpha range {spec!r}: start, stop and step must be finite numbers, e.g. 0:1:0.05.")
        if step <= 0:
            raise ValueError(f"Bad alpha range {spec!r}: step must be positive.")
        count = (stop - start) / step
        if count + 1 > MAX_ALPHAS:
            raise ValueError(f"Alpha range {spec!r} has {int(count) + 1} alphas; at most {MAX_ALPHAS} (use a larger step).")
        n = int(round(count))
        values = [round(start + i * step, 6) for i in range(n + 1)]
    else:
        try:
            values = [float(x) for x in spec.split(",") if x.strip()]
        except ValueError as exc:
            raise ValueError(f"Bad alpha list {spec!r}: use comma-separated numbers, e.g. 0,0.5,1.") from exc
    bad = [v for v in values if not math.isfinite(v) or v < 0 or v > 1]
    if bad:
        raise ValueError(f"Alphas must be finite numbers in [0, 1]; got {bad[:5]}. Example: --alphas 0:1:0.05.")
    values = sorted(set(values))
    if not values:
        raise ValueError("Empty alpha grid.")
    if len(values) > MAX_ALPHAS:
        raise ValueError(f"{len(values)} alphas; at most {MAX_ALPHAS}.")
    keys = [round(v, ALPHA_KEY_DECIMALS) for v in values]
    clash = [(a, b) for a, b, ka, kb in zip(values, values[1:], keys, keys[1:]) if ka == kb]
    if clash:
        raise ValueError(
            f"Alphas {clash[0][0]} and {clash[0][1]} are the same at the store's precision ({ALPHA_KEY_DECIMALS} decimals); "
            "keep alphas at least 1e-4 apart."
        )
    if values[0] != 0.0 or values[-1] != 1.0:
        raise ValueError(f"The alpha grid must include both endpoints 0 and 1 (got {values}).")
    return values
