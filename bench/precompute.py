"""Benchmark: decode-once alpha-grid evaluation vs the per-alpha re-evaluation loop (wise-ft's).

A data-bound configuration: an ImageFolder of JPEGs at ImageNet-like size (500x375) resized and
cropped to 224 px, a small open_clip ViT (random init: the weights do not change the timing), 11
alphas. Both routes must give the same logits; the script reports the wall-clock ratio.

    python bench/precompute.py                 # CPU, ~1-2 minutes on 2 cores
    python bench/precompute.py --device cuda --images 2000 --workers 8
    python bench/precompute.py --tower ViT-B-32 --images 60 --out bench/results/precompute_cpu_vitb32.json

``--tower ViT-B-32`` is the compute-bound configuration: open_clip's ViT-B/32 image tower (random init,
nothing downloaded) costs far more than decoding a JPEG on a CPU, so decoding once saves little there;
decode-once wins where decoding dominates (small towers, or a GPU fed by a few CPU workers).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from robust_core.datasets import resolve  # noqa: E402
from robust_core.evaluate import EvalConfig, MethodSpec, evaluate_alpha_grid, evaluate_per_alpha  # noqa: E402
from robust_core.models import build_classifier, build_zeroshot_head, load_clip  # noqa: E402
from robust_core.store import StoreWriter  # noqa: E402

BENCH_ARCH = "tiny-vit-224-bench"
BENCH_CONFIG = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 224, "layers": 2, "width": 128, "patch_size": 32},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 1},
}


def make_jpeg_folder(root: Path, n_images: int, n_classes: int = 10, seed: int = 0) -> Path:
    from PIL import Image

    rng = np.random.default_rng(seed)
    for k in range(n_classes):
        (root / f"class{k:02d}").mkdir(parents=True, exist_ok=True)
    for i in range(n_images):
        k = i % n_classes
        # smooth random image (JPEG-realistic size and entropy), 500x375 like ImageNet photos
        small = rng.integers(0, 255, (12, 16, 3), dtype=np.uint8)
        img = Image.fromarray(small).resize((500, 375), Image.BICUBIC)
        noise = rng.normal(0, 12, (375, 500, 3))
        img = Image.fromarray(np.clip(np.asarray(img, np.float32) + noise, 0, 255).astype(np.uint8))
        img.save(root / f"class{k:02d}" / f"{i:05d}.JPEG", quality=90)
    return root


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--alphas", type=int, default=11)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument(
        "--tower", default=BENCH_ARCH, help=f"open_clip architecture (default: the small {BENCH_ARCH}; ViT-B-32: compute-bound)"
    )
    parser.add_argument("--out", default=None, help="write the result JSON here")
    args = parser.parse_args(argv)

    import open_clip

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "cfg").mkdir()
        (tmp / "cfg" / f"{BENCH_ARCH}.json").write_text(json.dumps(BENCH_CONFIG))
        open_clip.add_model_config(tmp / "cfg")
        torch.manual_seed(0)
        model, preprocess, tokenizer = load_clip(args.tower)
        folder = make_jpeg_folder(tmp / "data", args.images)
        evalset = resolve("bench", root=folder, transform=preprocess)
        classes = evalset.classnames
        zeroshot = build_classifier(model, build_zeroshot_head(model, tokenizer, classes, ["a photo of a {c}."])).eval()
        theta0 = {k: v.clone() for k, v in zeroshot.state_dict().items()}
        gen = torch.Generator().manual_seed(1)
        theta1 = {k: v + 0.02 * torch.randn(v.shape, generator=gen) if v.is_floating_point() else v.clone() for k, v in theta0.items()}
        alphas = [round(a, 4) for a in np.linspace(0, 1, args.alphas)]
        spec = MethodSpec("ft", theta0, theta1, alphas)
        config = EvalConfig(
            batch_size=args.batch_size,
            chunk_batches=4,
            num_workers=args.workers,
            device=args.device,
            progress=False,
            feature_rows=0,
            amp="fp32",
        )
        torch.set_num_threads(torch.get_num_threads())

        # warm-up (file cache, allocator) so neither route pays first-touch costs
        evaluate_per_alpha(zeroshot, MethodSpec("ft", theta0, theta1, [0.0, 1.0]), evalset, config)

        start = time.perf_counter()
        reference = evaluate_per_alpha(zeroshot, spec, evalset, config)
        t_loop = time.perf_counter() - start

        writer = StoreWriter(tmp / "store", {"bench": True}, logits_dtype="float32")
        start = time.perf_counter()
        evaluate_alpha_grid(zeroshot, [spec], [evalset], writer, config)
        t_once = time.perf_counter() - start

        writer.assemble("bench", [(0, len(evalset.dataset))])
        grid = np.load(tmp / "store" / "logits" / "ft" / "bench.npy")
        max_diff = max(float(np.abs(grid[i] - reference[a]).max()) for i, a in enumerate(alphas))
    result = {
        "images": args.images,
        "alphas": len(alphas),
        "device": args.device,
        "workers": args.workers,
        "image_size": 224,
        "model": args.tower,
        "per_alpha_loop_s": round(t_loop, 2),
        "decode_once_s": round(t_once, 2),
        "speedup": round(t_loop / t_once, 2),
        "max_abs_logit_diff": max_diff,
    }
    print(json.dumps(result, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))
    assert max_diff < 1e-3, "decode-once and per-alpha logits differ"
    return result


if __name__ == "__main__":
    main()
