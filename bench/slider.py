"""Benchmark: server-side time per alpha-slider move and memory on an ImageNet-scale store.

Builds (once) a synthetic store: 6 eval sets, 200k examples in all, 1000 classes, 21 alphas, one
method (8.4 GB of float16 logits) plus 4 standard models, then drives the real app with streamlit's
AppTest (the same script run the server does for a browser) and times each slider move on the
Tradeoff, Effective-robustness, Diversity and Examples pages.

    python bench/slider.py                       # builds bench/out/stores/imagenet-scale once (~5 min)
    python bench/slider.py --moves 40 --out bench/out/slider.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from robust_core.store import StoreWriter, open_store  # noqa: E402

SETS = {"id": 50_000, "id-val": 10_000, "shift-a": 50_000, "shift-b": 30_000, "shift-c": 30_000, "shift-d": 30_000}
N_CLASSES = 1000
ALPHAS = [round(i * 0.05, 2) for i in range(21)]


def build_synthetic_store(path: Path, seed: int = 0) -> None:
    """Logits whose accuracy follows a WiSE-FT-like curve: theta(alpha) logits lerp two endpoints."""
    rng = np.random.default_rng(seed)
    writer = StoreWriter(path, {"synthetic": True, "sets": SETS, "classes": N_CLASSES, "alphas": ALPHAS})
    quality = {
        "id": (1.2, 2.2),
        "id-val": (1.2, 2.2),
        "shift-a": (1.0, 1.1),
        "shift-b": (0.8, 0.7),
        "shift-c": (0.9, 0.8),
        "shift-d": (0.6, 0.4),
    }
    for name, n in SETS.items():
        labels = rng.integers(0, N_CLASSES, n)
        writer.write_labels(name, labels)
        out = np.lib.format.open_memmap(path / f"_tmp_{name}.npy", mode="w+", dtype=np.float16, shape=(len(ALPHAS), n, N_CLASSES))
        q0, q1 = quality[name]
        for s in range(0, n, 10_000):
            e = min(n, s + 10_000)
            shared = rng.standard_normal((e - s, N_CLASSES), dtype=np.float32)
            zs = shared + rng.standard_normal((e - s, N_CLASSES), dtype=np.float32)
            ft = shared + rng.standard_normal((e - s, N_CLASSES), dtype=np.float32)
            rows = np.arange(e - s)
            zs[rows, labels[s:e]] += 3.0 * q0
            ft[rows, labels[s:e]] += 3.0 * q1
            for i, a in enumerate(ALPHAS):
                out[i, s:e] = ((1 - a) * zs + a * ft).astype(np.float16)
        out.flush()
        del out
        target = path / "logits" / "ft" / f"{name}.npy"
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path / f"_tmp_{name}.npy", target)
        for b in range(4):
            logits = rng.standard_normal((n, N_CLASSES), dtype=np.float32)
            logits[np.arange(n), labels] += 2.0 + 0.4 * b + (0.4 if name.startswith("id") else 0.0)
            writer.write_baseline(f"standard-{b}", name, logits)
        print(f"  wrote {name}", flush=True)
    manifest = {
        "name": "imagenet-scale",
        "description": "Synthetic ImageNet-scale store for bench/slider.py (random logits).",
        "run": {"id": "id", "id_val": "id-val", "shifts": [s for s in SETS if s.startswith("shift")]},
        "datasets": {s: {"classnames": [f"class {k}" for k in range(N_CLASSES)], "info": {}} for s in SETS},
        "methods": {"ft": {"alphas": ALPHAS, "linear": False, "label": "FT (synthetic)"}},
        "baselines": {f"standard-{b}": {} for b in range(4)},
        "provenance": {"synthetic": True},
    }
    writer.finalize(manifest)


def _rss_mb() -> dict:
    status = Path("/proc/self/status").read_text()
    values = {
        line.split(":")[0]: int(line.split()[1]) / 1024
        for line in status.splitlines()
        if line.startswith(("VmRSS", "VmHWM", "RssAnon", "RssFile"))
    }
    return {k: round(v, 1) for k, v in values.items()}


def _share_script_cache() -> None:
    """One compiled-script cache for every AppTest run, as the server keeps one per process (Runtime's ScriptCache).

    AppTest makes a new ScriptCache per run, so each move would also pay for compiling app.py and the page with
    Streamlit's magic transforms: ~15 ms on Tradeoff and less on a short page, which the server pays once.
    """
    import streamlit.testing.v1.app_test as app_test
    import streamlit.testing.v1.local_script_runner as local_script_runner
    from streamlit.runtime.scriptrunner.script_cache import ScriptCache

    shared = ScriptCache()
    app_test.ScriptCache = local_script_runner.ScriptCache = lambda: shared


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=str(ROOT / "bench" / "out" / "stores"))
    parser.add_argument("--moves", type=int, default=30)
    parser.add_argument("--out", default=None)
    parser.add_argument(
        "--no-script-cache",
        dest="script_cache",
        action="store_false",
        help="let AppTest recompile app.py and the page on every move (what this script measured before; the server does not)",
    )
    parser.add_argument(
        "--no-summaries", dest="summaries", action="store_false", help="time a store without stored per-alpha tables (as before)"
    )
    args = parser.parse_args(argv)
    root = Path(args.root)
    store_path = root / "imagenet-scale"
    if not (store_path / "manifest.json").exists():
        print(f"building {store_path} (once)...", flush=True)
        start = time.perf_counter()
        build_synthetic_store(store_path)
        print(f"built in {time.perf_counter() - start:.0f} s", flush=True)
    store = open_store(store_path)
    summaries_s = None
    if args.summaries and "summaries" not in store.manifest:
        from robust_core.summaries import write_summaries

        print("computing the per-alpha summaries (once)...", flush=True)
        start = time.perf_counter()
        write_summaries(store)
        summaries_s = round(time.perf_counter() - start, 1)
        print(f"summaries in {summaries_s} s", flush=True)
    elif not args.summaries and "summaries" in store.manifest:
        raise SystemExit(f"{store_path} has summaries; pass --root to another folder to time a store without them")

    os.environ["ROBUST_STORE_ROOT"] = str(root)
    from streamlit.testing.v1 import AppTest

    if args.script_cache:
        _share_script_cache()

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
    at.query_params["run"] = "imagenet-scale"
    result = {"store": {"sets": len(SETS), "examples": sum(SETS.values()), "classes": N_CLASSES, "alphas": len(ALPHAS)}, "pages": {}}
    result["summaries"] = {"stored": args.summaries, "compute_s": summaries_s}
    result["script_cache_shared"] = args.script_cache
    start = time.perf_counter()
    at.run()
    result["first_open_s"] = round(time.perf_counter() - start, 2)
    rng = np.random.default_rng(0)
    for page in (
        "pages/explore/tradeoff.py",
        "pages/explore/effective_robustness.py",
        "pages/explore/diversity.py",
        "pages/explore/examples.py",
    ):
        at.switch_page(page)
        start = time.perf_counter()
        at.run()
        first = time.perf_counter() - start
        assert not at.exception, [e.value for e in at.exception]
        times = []
        for _ in range(args.moves):
            alpha = float(rng.choice(ALPHAS))
            start = time.perf_counter()
            at.select_slider(key="alpha").set_value(alpha).run()
            times.append(1000 * (time.perf_counter() - start))
            assert not at.exception, [e.value for e in at.exception]
        times = np.asarray(times)
        result["pages"][page] = {
            "first_visit_s": round(first, 2),
            "move_ms_median": round(float(np.median(times)), 1),
            "move_ms_p95": round(float(np.percentile(times, 95)), 1),
            "move_ms_max": round(float(times.max()), 1),
        }
        print(page, result["pages"][page], flush=True)
    # The same moves without Streamlit: only robust_core's per-alpha lookups (what the pages compute).
    from robust_core.analysis import RunView

    view = RunView(open_store(store_path))
    lookups = {
        "tradeoff": lambda i: (view.cards("ft", i), view.point_table("ft", i), view.picks("ft")),
        "effective_robustness": lambda i: view.er_data("ft", "OOD avg", "logit"),
        "diversity": lambda i: (view.diversity("ft"), view.margin_summary("ft", "shift-a", i), view.overrides("ft", i)),
        "examples": lambda i: (view.disagreements("ft", "shift-a", i), view.per_class("ft", "shift-a", i)),
    }
    result["core_lookup_ms"] = {}
    for name, fn in lookups.items():
        fn(len(ALPHAS) // 2)  # first use fills the caches
        times = []
        for _ in range(args.moves):
            i = int(rng.integers(len(ALPHAS)))
            start = time.perf_counter()
            fn(i)
            times.append(1000 * (time.perf_counter() - start))
        result["core_lookup_ms"][name] = {"median": round(float(np.median(times)), 2), "p95": round(float(np.percentile(times, 95)), 2)}
    # Framework floor: the same slider move on a page that computes nothing.
    at.switch_page("pages/learn/tour.py")
    at.run()
    floor = []
    for _ in range(args.moves):
        start = time.perf_counter()
        at.select_slider(key="alpha").set_value(float(rng.choice(ALPHAS))).run()
        floor.append(1000 * (time.perf_counter() - start))
    result["streamlit_floor_ms"] = {"median": round(float(np.median(floor)), 1), "p95": round(float(np.percentile(floor, 95)), 1)}
    result["memory_mb"] = _rss_mb()
    print(json.dumps(result, indent=1))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
