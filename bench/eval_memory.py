"""Benchmark: peak host memory of `eval` against the eval-set size (issue 14: flat within 10%).

Each configuration runs ``bench/synthetic_eval.py`` in a fresh subprocess: a tiny random CLIP image
tower (the model is not what is measured) with a 1,000-class head, one fine-tuned method on a 21-point
alpha grid, and a synthetic set of N examples generated on the fly (no dataset in memory). The child
reports its peak RSS (VmHWM), its RSS after the model is built (before evaluation) and the wall time;
the store it wrote is deleted. ``--code`` measures another checkout's robust_core with the same script.

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


def run_one(n: int, classes: int, alphas: int, code: Path) -> dict:
    with tempfile.TemporaryDirectory(prefix="evalmem-") as tmp:
        env = dict(os.environ, ROBUST_CODE=str(code), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
        proc = subprocess.run(
            [sys.executable, str(ROOT / "bench" / "synthetic_eval.py"), str(n), str(classes), str(alphas), str(Path(tmp) / "store")],
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
