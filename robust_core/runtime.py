"""Where code runs: device, mixed precision, torchrun rank and world size, DataLoader workers.

One home for defaults that fine-tuning and evaluation share (they were repeated in both).
"""

from __future__ import annotations

import contextlib
import os

import torch


def pick_device(device: str = "auto") -> torch.device:
    """``auto``: this rank's GPU under torchrun, else the first GPU, else the CPU; otherwise ``device`` as given."""
    if device == "auto":
        if int(os.environ.get("WORLD_SIZE", "1")) > 1 and torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def autocast_for(device: torch.device, amp: str):
    """bf16 autocast on CUDA (``auto``/``bf16``), fp16 if asked, nothing on CPU or with ``fp32``."""
    if device.type != "cuda" or amp == "fp32":
        return contextlib.nullcontext()
    dtype = torch.float16 if amp == "fp16" else torch.bfloat16
    return torch.autocast("cuda", dtype=dtype)


def workers_for(device: torch.device, requested: int | None) -> int:
    """DataLoader workers: as requested, else 8 on CUDA (decoding must keep a GPU fed) and 2 on CPU."""
    return requested if requested is not None else (8 if device.type == "cuda" else 2)


def rank_world() -> tuple[int, int]:
    """(rank, world size) under torchrun, (0, 1) otherwise."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def shard_bounds(n: int, world: int) -> list[tuple[int, int]]:
    """Contiguous, near-equal slices of ``range(n)``, one per rank (sizes differ by at most one)."""
    return [(n * r // world, n * (r + 1) // world) for r in range(world)]


def init_distributed() -> bool:
    """Initialise torch.distributed when launched by torchrun (WORLD_SIZE > 1). Returns True if so."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        torch.distributed.init_process_group(backend)
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return True
