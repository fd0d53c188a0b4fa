"""From classifiers and eval sets to a finished store (shared by ``eval``, ``demo`` and the benchmark)."""

from __future__ import annotations

import os
import platform
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from . import __version__
from .datasets import EvalSet
from .evaluate import EvalConfig, MethodSpec, evaluate_alpha_grid, wait_for_slices
from .runtime import rank_world, shard_bounds
from .store import Store, StoreWriter, recover_swap, same_run, staging_path, swap_in


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
    from .store import StoreError, open_store

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
    force: bool = False,
    on_start: Callable[[Path], None] | None = None,
) -> Store | None:
    """Evaluate every method's alpha grid on every set and publish the store (rank 0 under torchrun).

    Resumable: re-running with the same arguments skips finished slices and resumes a started one at its
    last committed chunk.
    ``compact`` stores fewer bytes for small stores (see ``StoreWriter.finalize``).
    ``force`` rebuilds a finished store in a staging folder beside it (``store.staging_path``) and swaps it
    in only when complete: until then the old store stays readable. A killed ``force`` run resumes from
    its staging folder when re-run with the same arguments.
    ``on_start(folder)`` is called on rank 0 with the folder being built (e.g. to save checkpoints into it).
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
        "store_logits": eval_config.store_logits if eval_config else "full",
    }
    final = Path(out)
    rank, world = rank_world()
    if rank == 0:
        recover_swap(final)
    if world > 1:
        torch.distributed.barrier()  # every rank decides from the same folder state below
    finished = _finished_store(final, run_config)
    if finished is not None and not force:
        return finished if rank == 0 else None  # re-running a finished run is a no-op (use force to rebuild it)
    out = final
    if force and (final / "manifest.json").exists():
        out = staging_path(final)
        if rank == 0 and same_run(out, run_config) is False:
            shutil.rmtree(out)  # a staging folder of another run: start it over
        if world > 1:
            torch.distributed.barrier()
    writer = StoreWriter(out, run_config, logits_dtype=logits_dtype)
    if rank == 0 and on_start is not None:
        on_start(out)
    evaluate_alpha_grid(classifier, methods, evalsets, writer, eval_config, baselines)
    if rank != 0:
        return None  # rank 0 assembles once every slice is committed
    if world > 1:
        wait_for_slices(writer, evalsets, world, eval_config.shard_wait_s if eval_config else None)
    for e in evalsets:
        writer.assemble(e.name, shard_bounds(len(e.dataset), world))
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
        "methods": {
            m.name: {
                "alphas": list(m.alphas),
                "linear": m.linear,
                **m.info,
                **({"logits_stored": "endpoints"} if run_config["store_logits"] == "topk" else {}),
            }
            for m in methods
        },
        "baselines": baseline_info or {k: {} for k in (baselines or {})},
        "provenance": {
            **provenance,
            "robust_core": __version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "device": eval_config.device if eval_config else "auto",
        },
    }
    store = writer.finalize(manifest, compact=compact)
    return swap_in(out, final) if out != final else store
