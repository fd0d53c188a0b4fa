"""Benchmark: eval throughput on ONE set against the number of ranks (example-level sharding, issue 14).

Runs ``bench/synthetic_eval.py`` under ``torch.distributed.run`` with 1, 2, ... processes (gloo on CPU
here; on a GPU machine pass ``--device-note`` and run the same command with as many processes as GPUs:
the evaluator puts rank r on cuda:r when CUDA is present). Every rank gets ``--threads`` intra-op
threads, so on a CPU machine the ratio shows what slicing the set buys when each rank owns its share of
the cores (2 ranks x 1 thread against 1 rank x 1 thread; on this 2-core machine that is the whole box).

    python bench/eval_scaling.py                        # 1 and 2 ranks, 4,096 images, 1,000 classes, 11 alphas
    python bench/eval_scaling.py --ranks 1 2 4 --n 16384 --out bench/results/eval_scaling_cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(world: int, args) -> dict:
    with tempfile.TemporaryDirectory(prefix="evalscale-") as tmp:
        env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS=str(args.threads))
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(world), "--master_port", str(_free_port())]
        cmd += [str(ROOT / "bench" / "synthetic_eval.py"), str(args.n), str(args.classes), str(args.alphas), str(Path(tmp) / "s")]
        cmd += ["--arch", args.arch, "--image-size", str(args.image_size), "--batch-size", str(args.batch_size)]
        proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"{world} ranks failed:\n{proc.stderr[-3000:]}")
        return json.loads([line for line in proc.stdout.splitlines() if line.startswith("{")][-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    p.add_argument("--n", type=int, default=4096)
    p.add_argument("--classes", type=int, default=1000)
    p.add_argument("--alphas", type=int, default=11)
    p.add_argument("--arch", default="tiny-vit-test")
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--threads", type=int, default=1, help="intra-op threads per rank")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    rows = [run(world, args) for world in args.ranks]
    base = rows[0]["images_per_s"]
    for row in rows:
        row["speedup"] = row["images_per_s"] / base
        print(f"{row['world']} rank(s): {row['images_per_s']:8.1f} images/s  x{row['speedup']:.2f}  ({row['seconds']:.1f} s)", flush=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(
            json.dumps({"config": {k: str(v) for k, v in vars(args).items()}, "cpu_count": os.cpu_count(), "runs": rows}, indent=1)
        )


if __name__ == "__main__":
    main()
