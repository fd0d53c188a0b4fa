"""Benchmark: Live lab latency per input on the demo model (composition -> probabilities on every alpha).

One "input" is what the Live lab page computes when a factor changes: render a glyph with the demo
world's renderer, preprocess it as evaluation does, run the whole alpha grid of every WiSE-FT method of
the store (theta(alpha) batched over the grid; LP by one encoder pass and a matmul per alpha) and take the
softmax. Models are loaded once beforehand (the page caches them per store and method), as are the fonts.

    python bench/live.py                                  # 60 random compositions, demo store, all methods
    python bench/live.py --inputs 200 --out bench/results/live_cpu.json
    python bench/live.py --threads 2                      # torch's default on this machine (the page sets 1)
    python bench/live.py --loop                           # alpha by alpha in place instead of one batch
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from robust_core import live  # noqa: E402
from robust_core.store import open_store  # noqa: E402


def random_spec(rng: np.random.Generator) -> live.GlyphSpec:
    chars, _ = live.glyph_classes()
    return live.GlyphSpec(
        character=chars[rng.integers(len(chars))],
        font_family=list(live.FONT_FAMILIES)[rng.integers(len(live.FONT_FAMILIES))],
        font_index=int(rng.integers(100)),
        background=live.BACKGROUNDS[rng.integers(len(live.BACKGROUNDS))],
        ink=["black", "blue", "red", "white"][rng.integers(4)],
        outline=bool(rng.random() < 0.2),
        inverted=bool(rng.random() < 0.3),
        rotation=float(rng.uniform(-40, 40)),
        corruption=live.CORRUPTIONS[rng.integers(len(live.CORRUPTIONS))],
        severity=float(rng.uniform(0, 1)),
        seed=int(rng.integers(1000)),
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default=str(ROOT / "cache" / "demo"))
    parser.add_argument("--inputs", type=int, default=60, help="timed inputs (after 5 warm-up inputs)")
    parser.add_argument("--threads", type=int, default=live.TORCH_THREADS, help="torch intra-op threads (default: the page's, 1)")
    parser.add_argument("--loop", action="store_true", help="alpha by alpha with the in-place interpolator, not one batch")
    parser.add_argument("--out", default=None, help="write the figures as JSON here")
    args = parser.parse_args(argv)

    import torch

    store = open_store(args.store)
    methods = live.live_methods(store)
    t = time.perf_counter()
    models = {m: live.LiveModel(args.store, m, threads=args.threads) for m in methods}
    load_s = time.perf_counter() - t
    if args.loop:
        for model in models.values():
            model.grid_batched = False
    live.font_choices("id")  # font discovery (fc-list) is cached once per process, as in the server

    def one(spec):
        t0 = time.perf_counter()
        image = live.compose_glyph(spec)
        t1 = time.perf_counter()
        x = next(iter(models.values())).preprocess(image)  # one transform serves every method of a store
        probs = {m: model.grid(x).probs for m, model in models.items()}
        t2 = time.perf_counter()
        assert all(np.allclose(p.sum(axis=1), 1.0) for p in probs.values())
        return t1 - t0, t2 - t1

    rng = np.random.default_rng(0)
    for _ in range(5):
        one(random_spec(rng))
    render, compute = [], []
    for _ in range(args.inputs):
        r, c = one(random_spec(rng))
        render.append(r)
        compute.append(c)
    total = np.asarray(render) + np.asarray(compute)
    ms = lambda a, q: float(1000 * np.percentile(a, q))  # noqa: E731
    alphas = {m: len(model.alphas) for m, model in models.items()}
    result = {
        "store": Path(args.store).name,
        "methods": alphas,
        "route": "loop (in place, alpha by alpha)" if args.loop else "grid batch (vmap over stacked theta(alpha); LP: matmul)",
        "inputs": args.inputs,
        "torch_threads": args.threads or torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_avg_1min": os.getloadavg()[0],
        "machine": platform.machine(),
        "model_load_s": load_s,
        "total_ms": {"median": ms(total, 50), "p95": ms(total, 95), "max": float(1000 * total.max())},
        "render_ms": {"median": ms(render, 50), "p95": ms(render, 95)},
        "models_ms": {"median": ms(compute, 50), "p95": ms(compute, 95)},
    }
    print(
        f"{result['store']}: {len(alphas)} methods ({', '.join(f'{m} {n} alphas' for m, n in alphas.items())}), {result['route']}, "
        f"{result['torch_threads']} torch threads, {args.inputs} inputs, load average {result['load_avg_1min']:.2f}"
    )
    print(f"  models loaded once: {load_s:.1f} s")
    print(
        f"  per input, composition -> probabilities of every alpha of every method: median {ms(total, 50):.0f} ms, p95 {ms(total, 95):.0f} ms"
    )
    print(f"    render (demo world) median {ms(render, 50):.1f} ms; models median {ms(compute, 50):.0f} ms, p95 {ms(compute, 95):.0f} ms")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1))
        print(f"  wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
