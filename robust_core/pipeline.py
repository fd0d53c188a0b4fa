"""From classifiers and eval sets to a finished store (shared by ``eval``, ``demo`` and the benchmark)."""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from . import __version__
from .datasets import EvalSet
from .evaluate import EvalConfig, MethodSpec, evaluate_alpha_grid
from .store import Store, StoreWriter


class TensorImageDataset(Dataset):
    """uint8 images (N, H, W, 3) normalised on the fly; equals open_clip's eval transform when the
    images already have the model's input size (Resize/CenterCrop are then identities)."""

    def __init__(self, images: np.ndarray, targets: np.ndarray, mean: Sequence[float], std: Sequence[float]):
        self.images = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
        self.targets = torch.as_tensor(np.asarray(targets))
        self.mean = torch.tensor(mean).view(3, 1, 1)
        self.std = torch.tensor(std).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int):
        return (self.images[i].float() / 255.0 - self.mean) / self.std, self.targets[i]


def _finished_store(out, run_config: dict) -> Store | None:
    """The store at ``out`` if it is complete and was built from the same ``run_config``, else None."""
    from .store import StoreError, open_store, same_run

    out = Path(out)
    if not (out / "manifest.json").exists():
        return None
    try:
        return open_store(out) if same_run(out, run_config) else None
    except (StoreError, ValueError, OSError):
        return None


def build_store(
    out: str | os.PathLike,
    classifier: torch.nn.Module,
    methods: Sequence[MethodSpec],
    evalsets: Sequence[EvalSet],
    id_name: str,
    id_val_name: str | None,
    shift_names: Sequence[str],
    provenance: dict,
    baselines: dict[str, torch.nn.Module] | None = None,
    baseline_info: dict | None = None,
    eval_config: EvalConfig | None = None,
    logits_dtype: str = "float16",
    name: str | None = None,
    examples=None,
    description: str = "",
    compact: bool = False,
) -> Store | None:
    """Evaluate every method's alpha grid on every set and publish the store (rank 0 under torchrun).

    Resumable: re-running with the same arguments skips finished (method, dataset, alpha) parts.
    ``compact`` stores fewer bytes for small stores (see ``StoreWriter.finalize``).
    Returns the opened store on rank 0, ``None`` on other ranks.
    """
    names = [e.name for e in evalsets]
    for needed in [id_name, id_val_name, *shift_names]:
        if needed is not None and needed not in names:
            raise ValueError(f"{needed!r} is named as a role but is not among the eval sets {names}.")
    run_config = {
        "methods": {m.name: {"alphas": list(m.alphas), "linear": m.linear} for m in methods},
        "datasets": {e.name: len(e.dataset) for e in evalsets},
        "baselines": sorted(baselines or {}),
        "provenance": provenance,
        "logits_dtype": logits_dtype,
    }
    finished = _finished_store(out, run_config)
    if finished is not None:
        return finished  # re-running a finished run is a no-op (delete the folder, or use another --out, to rebuild)
    writer = StoreWriter(out, run_config, logits_dtype=logits_dtype)
    evaluate_alpha_grid(classifier, methods, evalsets, writer, eval_config, baselines)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()
        if torch.distributed.get_rank() != 0:
            return None
    if examples is not None:
        writer.write_examples(examples)
    manifest = {
        "name": name or Path(out).name,
        "description": description,
        "run": {"id": id_name, "id_val": id_val_name, "shifts": list(shift_names)},
        "datasets": {
            e.name: {
                "role": "id" if e.name == id_name else "id_val" if e.name == id_val_name else "shift",
                "classnames": list(e.classnames),
                "info": {k: v for k, v in e.info.items() if isinstance(v, (str, int, float, bool, type(None), list, dict))},
            }
            for e in evalsets
        },
        "methods": {m.name: {"alphas": list(m.alphas), "linear": m.linear, **m.info} for m in methods},
        "baselines": baseline_info or {k: {} for k in (baselines or {})},
        "provenance": {
            **provenance,
            "robust_core": __version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "device": eval_config.device if eval_config else "auto",
        },
    }
    return writer.finalize(manifest, compact=compact)
