"""One `build_store` over a synthetic set, for the eval benchmarks (run as a script, alone or under torchrun).

    python bench/synthetic_eval.py N CLASSES N_ALPHAS OUT [--image-size 32] [--arch tiny-vit-test]

A random-init open_clip image tower (the tensors' values are not what is measured), a ``CLASSES``-way
head, one end-to-end method on an ``N_ALPHAS`` grid and ``N`` images generated from their index (no
dataset in memory, no decoding). Prints one JSON line (rank 0): peak RSS (VmHWM), RSS before eval,
eval seconds, images per second, world size, store bytes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import Dataset

sys.path.insert(0, os.environ.get("ROBUST_CODE") or str(Path(__file__).resolve().parent.parent))  # --code of the benchmarks

from robust_core.datasets import EvalSet  # noqa: E402
from robust_core.evaluate import EvalConfig, MethodSpec  # noqa: E402
from robust_core.models import ClassificationHead, build_classifier, load_clip  # noqa: E402
from robust_core.pipeline import build_store  # noqa: E402
from robust_core.runtime import rank_world  # noqa: E402


def rss(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field):
                return int(line.split()[1]) * 1024
    return 0


class Synthetic(Dataset):
    def __init__(self, n: int, classes: int, size: int):
        self.n, self.classes, self.size = n, classes, size

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        g = torch.Generator().manual_seed(i)
        return torch.randn(3, self.size, self.size, generator=g), i % self.classes


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("n", type=int)
    p.add_argument("classes", type=int)
    p.add_argument("alphas", type=int)
    p.add_argument("out")
    p.add_argument("--arch", default="tiny-vit-test")
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=256)
    args = p.parse_args()
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        torch.distributed.init_process_group("gloo")
    torch.manual_seed(0)
    model, _, _ = load_clip(args.arch)
    dim = model.visual.output_dim
    head = ClassificationHead(torch.nn.functional.normalize(torch.randn(args.classes, dim), dim=-1) * 100)
    zs = build_classifier(model, head).eval()
    theta0 = {k: v.clone() for k, v in zs.state_dict().items()}
    theta1 = {k: v + 0.02 * torch.randn_like(v) for k, v in theta0.items()}
    alphas = [round(i / (args.alphas - 1), 4) for i in range(args.alphas)]
    evalset = EvalSet("synthetic", Synthetic(args.n, args.classes, args.image_size), [f"c{i}" for i in range(args.classes)])
    before = rss("VmRSS:")
    t = time.time()
    build_store(
        args.out,
        zs,
        [MethodSpec("ft", theta0, theta1, alphas, features=False)],
        [evalset],
        "synthetic",
        None,
        [],
        provenance={},
        eval_config=EvalConfig(batch_size=args.batch_size, num_workers=0, progress=False, device="cpu"),
    )
    seconds = time.time() - t
    rank, world = rank_world()
    if rank == 0:
        store_bytes = sum(p.stat().st_size for p in Path(args.out).rglob("*") if p.is_file())
        row = {"n": args.n, "classes": args.classes, "alphas": args.alphas, "world": world, "rss_before_eval": before}
        row.update(peak_rss=rss("VmHWM:"), seconds=seconds, images_per_s=args.n / seconds, store_bytes=store_bytes)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
