"""Export theta(alpha) of a stored run as safetensors, with a JSON of its metrics beside it.

python -m robust_core export cache/demo --method ft --alpha 0.5 --out wise_ft_0.5.safetensors
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .store import StoreError, open_store


def metrics_at(view, method: str, i: int, requested: float | None = None) -> dict:
    """Accuracy of theta(alpha_i) on every set, as the dashboard shows it (``view`` is the store's RunView).

    ``requested``: the alpha a user asked for (CLI), when it may be off the grid; the note says so.
    """
    from .analysis import OOD_AVG

    grid_alpha = view.alpha_at(method, i)
    on_grid = requested is None or abs(grid_alpha - requested) < 1e-9
    curves, counts = view.curves(method), view.counts(method)
    acc = {
        ds: {"accuracy": float(curves[ds].iloc[i]), "correct": int(counts[ds].iloc[i]), "n": view.dataset_size(ds)}
        for ds in view.store.datasets
    }
    return {
        "grid_alpha": grid_alpha,
        "on_grid": on_grid,
        "note": ""
        if on_grid
        else f"alpha {requested} is not on the store's grid: these are the metrics of the nearest grid alpha {grid_alpha}",
        "datasets": acc,
        "ood_avg": float(curves[OOD_AVG].iloc[i]) if view.shifts else None,
    }


def _full_precision(state: dict) -> dict:
    """fp16 weights shipped inside a store are interpolated (and exported) in fp32."""
    import torch

    return {k: v.float() if v.dtype in (torch.float16, torch.bfloat16) else v for k, v in state.items()}


def load_endpoints(store, method: str) -> tuple[dict, dict]:
    """theta_0 and theta_1 of ``method`` in fp32, from the checkpoints the store references.

    Each file is checked against the sha256 the store recorded; a fine-tuned file stored without the keys it
    shares with zero-shot (LP's frozen encoder, ``"base": "zeroshot"``) is completed from theta_0. Raises
    StoreError for a missing or changed file and ModelLoadError for one that is not a state dict.
    """
    from .models import load_state_dict
    from .store import sha256_file

    info = store.method(method)
    theta = {}
    for which in ("zeroshot", "finetuned"):
        path = store.checkpoint(method, which)
        if path is None or not path.exists():
            raise StoreError(
                f"The {which} checkpoint of {method} is not available ({path or 'not referenced by the store'}). "
                "Stores keep only logits; the weights live where the run wrote them. For the demo run "
                "`python -m robust_core demo` once to rebuild them under cache/demo/_build."
            )
        expected = info.checkpoint_ref(which).get("sha256")
        if expected and sha256_file(path) != expected:
            raise StoreError(f"{path} ({which} of {method}) does not match the sha256 recorded in the store; it was changed after the run.")
        theta[which] = _full_precision(load_state_dict(path))
    if info.checkpoint_ref("finetuned").get("base") == "zeroshot":
        theta["finetuned"] = {**theta["zeroshot"], **theta["finetuned"]}  # stored without the keys it shares (LP's encoder)
    return theta["zeroshot"], theta["finetuned"]


def export_interpolated(store_path, method: str, alpha: float, out) -> tuple[Path, Path]:
    """Interpolate the stored endpoints at ``alpha`` and write weights + metrics JSON atomically."""
    import math

    from safetensors.torch import save_file

    from .analysis import RunView
    from .store import sha256_file
    from .wise import interpolate

    if not isinstance(alpha, (int, float)) or not math.isfinite(alpha) or not 0 <= alpha <= 1:
        raise ValueError(f"--alpha must be a finite number in [0, 1] (got {alpha}); e.g. --alpha 0.5.")
    out = Path(out)
    if out.is_dir():
        raise ValueError(f"--out {out} is a directory; give a file name such as {out / 'theta.safetensors'}.")
    store = open_store(store_path)
    view = RunView(store)
    if method not in store.methods:
        raise StoreError(f"Store {store.path} has no method {method!r}; it has {store.methods}.")
    theta_zeroshot, theta_finetuned = load_endpoints(store, method)
    theta = interpolate(theta_zeroshot, theta_finetuned, alpha)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    save_file({k: v.contiguous() for k, v in theta.items()}, str(tmp), metadata={"method": method, "alpha": str(alpha)})
    os.replace(tmp, out)
    meta = {
        "store": str(store.path),
        "method": method,
        "alpha": alpha,
        "arch": store.arch,
        "classnames": store.classnames(store.id),
        "weights_sha256": sha256_file(out),
        "metrics": metrics_at(view, method, view.alpha_point(method, alpha).index, requested=alpha),
        "note": "theta(alpha) = (1 - alpha) * theta_zeroshot + alpha * theta_finetuned (WiSE-FT); "
        "load into robust_core.models.ImageClassifier.",
    }
    meta_path = out.with_suffix(".json")
    meta_tmp = meta_path.with_name(meta_path.name + ".tmp")
    meta_tmp.write_text(json.dumps(meta, indent=1))
    os.replace(meta_tmp, meta_path)
    return out, meta_path
