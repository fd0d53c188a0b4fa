"""Benchmark: peak host memory of `eval` against the eval-set size (issue 14: flat within 10%).

Each configuration runs in a fresh subprocess: a tiny random CLIP image tower (the model is not what is
measured) with a 1,000-class head, one fine-tuned method on a 21-point alpha grid, and a synthetic set
of N examples generated on the fly (no dataset in memory). The child reports its peak RSS (VmHWM),
its RSS after the model is built (before evaluation) and the wall time; the store it wrote is deleted.

    python bench/eval_memory.py                               # 4k vs 16k examples, this checkout
    python bench/eval_memory.py --sizes 4000 16000 --code /path/to/other/checkout   # e.g. the old code
    python bench/eval_memory.py --out bench/results/eval_memory_cpu.json

Disk: the 16k configuration writes 16,000 x 1,000 x 21 float16 logits (672 MB) into a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, os, sys, time
import torch
from torch.utils.data import Dataset

def rss(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1]) * 1024
    return 0

from robust_core.evaluate import EvalConfig, MethodSpec
from robust_core.datasets import EvalSet
from robust_core.models import ClassificationHead, build_classifier, load_clip
from robust_core.pipeline import build_store

n, classes, n_alphas, out = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
torch.manual_seed(0)
torch.set_num_threads(1)
model, _, _ = load_clip("tiny-vit-test")
dim = model.visual.output_dim
zs = build_classifier(model, ClassificationHead(torch.nn.functional.normalize(torch.randn(classes, dim), dim=-1) * 100)).eval()
theta0 = {k: v.clone() for k, v in zs.state_dict().items()}
theta1 = {k: v + 0.02 * torch.randn_like(v) for k, v in theta0.items()}

class Synthetic(Dataset):
    def __len__(self):
        return n
    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        return torch.randn(3, 32, 32, generator=g), i % classes

alphas = [round(i / (n_alphas - 1), 4) for i in range(n_alphas)]
evalset = EvalSet("synthetic", Synthetic(), [f"c{i}" for i in range(classes)])
before = rss("VmRSS:")
t = time.time()
build_store(out, zs, [MethodSpec("ft", theta0, theta1, alphas, features=False)], [evalset], "synthetic", None, [],
            provenance={}, eval_config=EvalConfig(batch_size=256, num_workers=0, progress=False, device="cpu"))
print(json.dumps({"n": n, "classes": classes, "alphas": n_alphas, "rss_before_eval": before,
                  "peak_rss": rss("VmHWM:"), "seconds": time.time() - t,
                  "store_bytes": sum(p.stat().st_size for p in __import__("pathlib").Path(out).rglob("*") if p.is_file())}))
"""


def run_one(n: int, classes: int, alphas: int, code: Path) -> dict:
    with tempfile.TemporaryDirectory(prefix="evalmem-") as tmp:
        env = dict(os.environ, PYTHONPATH=str(code), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, str(n), str(classes), str(alphas), str(Path(tmp) / "store")],
            cwd=code,
            env=env,
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise SystemExit(f"child failed for n={n}:\n{proc.stderr[-3000:]}")
        return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[4000, 16000])
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--alphas", type=int, default=21)
    parser.add_argument("--code", type=Path, default=ROOT, help="checkout whose robust_core is measured (default: this one)")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args()
    rows = []
    for n in args.sizes:
        t = time.time()
        row = run_one(n, args.classes, args.alphas, args.code.resolve())
        rows.append(row)
        print(
            f"n={n:>6}  peak RSS {row['peak_rss'] / 2**20:7.0f} MiB  (before eval {row['rss_before_eval'] / 2**20:5.0f} MiB)"
            f"  store {row['store_bytes'] / 2**20:6.0f} MiB  eval {row['seconds']:6.1f} s  (wall {time.time() - t:.0f} s)",
            flush=True,
        )
    ratio = rows[-1]["peak_rss"] / rows[0]["peak_rss"]
    print(f"peak RSS ratio {rows[-1]['n']} / {rows[0]['n']} examples: {ratio:.3f}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        result = {"code": str(args.code), "cpu_count": os.cpu_count(), "runs": rows, "peak_ratio": ratio}
        args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
