"""Alpha-grid evaluation: decode each batch once, run every alpha's model on it.

wise-ft evaluates each alpha with a full pass over every dataset, so JPEG decoding and resizing (the
bottleneck for small models) is repeated ``len(alphas)`` times. Here each chunk of decoded batches
stays on the device while the model's weights are set to theta(alpha) in place for each alpha
(``InPlaceInterpolator``: one pass over the parameters), so data work is done once per dataset.
Linear-head methods (LP) share the zero-shot encoder: features are computed once and every alpha is
a matmul with the interpolated head.

Run under ``torchrun --nproc_per_node N`` datasets are split across ranks; every rank writes its own
(method, dataset, alpha) parts and rank 0 finalizes the store.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from .datasets import EvalSet
from .store import StoreWriter
from .wise import InPlaceInterpolator, check_compatible


@dataclass
class MethodSpec:
    """One fine-tuning method to evaluate along the alpha grid.

    Attributes:
        name: store key (``ft``, ``lp``, ``lpft``, ``flyp``).
        theta_zeroshot: state dict of the zero-shot ``ImageClassifier`` (alpha 0).
        theta_finetuned: state dict of the fine-tuned ``ImageClassifier`` (alpha 1).
        alphas: the grid (must contain 0 and 1).
        linear: encoder frozen (identical in both), only the head differs: every alpha is a matmul.
    """

    name: str
    theta_zeroshot: dict
    theta_finetuned: dict
    alphas: list[float]
    linear: bool = False
    info: dict = field(default_factory=dict)
    features: bool = True  # keep alpha-0/alpha-1 features of ``EvalConfig.feature_rows`` examples (CKA)


@dataclass
class EvalConfig:
    batch_size: int = 256  # images per forward pass
    chunk_batches: int = 8  # decoded batches kept on device while every alpha runs over them
    num_workers: int | None = None  # DataLoader workers; default: 8 on CUDA, 2 on CPU
    feature_rows: int = 2000  # rows of alpha-0/alpha-1 features kept per dataset (for CKA), 0 = none
    amp: str = "auto"  # auto (bf16 on CUDA, fp32 on CPU) | bf16 | fp16 | fp32
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    progress: bool = True


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        if int(os.environ.get("WORLD_SIZE", "1")) > 1 and torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def autocast_for(device: torch.device, amp: str):
    if device.type != "cuda" or amp == "fp32":
        return contextlib.nullcontext()
    dtype = torch.float16 if amp == "fp16" else torch.bfloat16
    return torch.autocast("cuda", dtype=dtype)


def linear_is_valid(theta_zeroshot: dict, theta_finetuned: dict) -> bool:
    """True when the two classifiers differ only in the head (the encoder was frozen)."""
    for key, t0 in theta_zeroshot.items():
        if key.startswith("head."):
            continue
        if not torch.equal(t0, theta_finetuned[key]):
            return False
    return True


def rank_world() -> tuple[int, int]:
    """(rank, world size) under torchrun, (0, 1) otherwise."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def feature_index(n: int, rows: int) -> np.ndarray:
    """Evenly spaced example indices for the stored feature subsample (deterministic)."""
    if rows <= 0 or n == 0:
        return np.zeros(0, np.int64)
    return np.unique(np.linspace(0, n - 1, min(rows, n)).round().astype(np.int64))


@torch.no_grad()
def evaluate_alpha_grid(
    classifier: torch.nn.Module,
    methods: Sequence[MethodSpec],
    evalsets: Sequence[EvalSet],
    writer: StoreWriter,
    config: EvalConfig | None = None,
    baselines: dict[str, torch.nn.Module] | None = None,
) -> None:
    """Compute logits of every (method, alpha, dataset) into ``writer``'s parts, decoding data once.

    Args:
        classifier: an ``ImageClassifier`` whose weights are overwritten with theta(alpha) per alpha.
        methods: the methods and their endpoint state dicts.
        evalsets: datasets with their projections.
        writer: the store being built; finished parts are skipped (resume).
        config: batch sizes, workers, AMP, device.
        baselines: the run's standard models, evaluated on the same decoded batches.
    """
    config = config or EvalConfig()
    device = pick_device(config.device)
    rank, world = rank_world()
    classifier = classifier.to(device).eval()
    baselines = {k: m.to(device).eval() for k, m in (baselines or {}).items()}
    for spec in methods:
        check_compatible(classifier.state_dict(), spec.theta_finetuned)
        if spec.linear and not linear_is_valid(spec.theta_zeroshot, spec.theta_finetuned):
            raise ValueError(f"Method {spec.name} is marked linear but its encoder weights differ from zero-shot.")
    workers = config.num_workers if config.num_workers is not None else (8 if device.type == "cuda" else 2)

    for d_i, evalset in enumerate(evalsets):
        if d_i % world != rank:
            continue
        todo = {spec.name: [a for a in spec.alphas if not writer.has_part(spec.name, evalset.name, a)] for spec in methods}
        for spec in methods:
            # Features come from the alpha-0 and alpha-1 passes: if a kill left one of them done and the
            # features unwritten, redo both rather than publish a store without features.
            wants = spec.features and not spec.linear and config.feature_rows > 0
            if wants and not writer.has_features(spec.name, evalset.name):
                todo[spec.name] = sorted(set(todo[spec.name]) | {spec.alphas[0], spec.alphas[-1]})
        todo_baselines = [b for b in baselines if not writer.has_baseline(b, evalset.name)]
        if not any(todo.values()) and not todo_baselines and writer.has_labels(evalset.name):
            continue
        _evaluate_one(classifier, methods, todo, todo_baselines, baselines, evalset, writer, config, device, workers)


def _evaluate_one(classifier, methods, todo, todo_baselines, baselines, evalset, writer, config, device, workers):
    n = len(evalset.dataset)
    loader = DataLoader(
        evalset.dataset,
        batch_size=config.batch_size,
        shuffle=False,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=False,
    )
    project = evalset.projection or (lambda t: t)
    outputs = {(m, a): [] for m, alphas in todo.items() for a in alphas}
    base_out = {b: [] for b in todo_baselines}
    feat_idx = feature_index(n, config.feature_rows)
    feats = {spec.name: ([], []) for spec in methods if not spec.linear and spec.features and todo[spec.name]}
    labels = []
    interpolators = {
        spec.name: InPlaceInterpolator(classifier, spec.theta_zeroshot, spec.theta_finetuned)
        for spec in methods
        if not spec.linear and todo[spec.name]
    }
    linear_specs = [s for s in methods if s.linear and todo[s.name]]
    heads = {}
    for spec in linear_specs:
        w0, b0 = spec.theta_zeroshot["head.weight"].to(device), spec.theta_zeroshot["head.bias"].to(device)
        w1, b1 = spec.theta_finetuned["head.weight"].to(device), spec.theta_finetuned["head.bias"].to(device)
        heads[spec.name] = (w0, b0, w1, b1)
    encoder_zeroshot = None
    if linear_specs:
        encoder_zeroshot = {k: v for k, v in linear_specs[0].theta_zeroshot.items()}

    chunk, chunk_start = [], 0
    seen = 0
    bar = tqdm(total=n, desc=f"eval {evalset.name}", unit="img", disable=not config.progress, leave=False)

    def run_chunk(chunk, start):
        # Baselines and the linear methods: one forward each.
        for name in todo_baselines:
            with autocast_for(device, config.amp):
                base_out[name] += [project(baselines[name](x).float()).cpu() for x in chunk]
        if linear_specs:
            classifier.load_state_dict(encoder_zeroshot)
            with autocast_for(device, config.amp):
                feats_lin = [F.normalize(classifier.image_encoder(x).float(), dim=-1) for x in chunk]
            for spec in linear_specs:
                w0, b0, w1, b1 = heads[spec.name]
                for alpha in todo[spec.name]:
                    w, b = torch.lerp(w0, w1, alpha), torch.lerp(b0, b1, alpha)
                    outputs[(spec.name, alpha)] += [project(f @ w.T + b).cpu() for f in feats_lin]
        # End-to-end methods: every alpha over the decoded chunk.
        for spec in methods:
            if spec.linear or not todo[spec.name]:
                continue
            interp = interpolators[spec.name]
            interp.alpha = None  # weights may have been changed by another method
            for alpha in todo[spec.name]:
                interp.set_alpha(alpha)
                pos = start
                for x in chunk:
                    with autocast_for(device, config.amp):
                        f = classifier.image_encoder(x)
                    logits = classifier.head(f.float())  # head in fp32: logits carry the 100x scale
                    outputs[(spec.name, alpha)].append(project(logits.float()).cpu())
                    if alpha in (0.0, 1.0) and len(feat_idx) and spec.name in feats:
                        sel = feat_idx[(feat_idx >= pos) & (feat_idx < pos + len(x))] - pos
                        if len(sel):
                            feats[spec.name][0 if alpha == 0.0 else 1].append(f[sel].float().cpu())
                    pos += len(x)

    for images, targets in loader:
        images = images.to(device, non_blocking=True)
        labels.append(torch.as_tensor(targets))
        chunk.append(images)
        seen += len(images)
        if len(chunk) >= config.chunk_batches:
            run_chunk(chunk, chunk_start)
            chunk_start, chunk = seen, []
        bar.update(len(images))
    if chunk:
        run_chunk(chunk, chunk_start)
    bar.close()

    label_arr = torch.cat(labels).numpy() if labels else np.zeros(0, np.int64)
    n_classes = len(evalset.classnames)
    for (method, alpha), parts in outputs.items():
        arr = torch.cat(parts).numpy() if parts else np.zeros((0, n_classes), np.float32)
        writer.write_part(method, evalset.name, alpha, arr)
    for name, parts in base_out.items():
        writer.write_baseline(name, evalset.name, torch.cat(parts).numpy() if parts else np.zeros((0, n_classes)))
    for method, (f0, f1) in feats.items():
        if f0 and f1 and 0.0 in todo[method] and 1.0 in todo[method]:
            writer.write_features(method, evalset.name, np.stack([torch.cat(f0).numpy(), torch.cat(f1).numpy()]), feat_idx)
    writer.write_labels(evalset.name, label_arr)


@torch.no_grad()
def evaluate_per_alpha(classifier, spec: MethodSpec, evalset: EvalSet, config: EvalConfig | None = None) -> dict:
    """Reference loop (wise-ft's): one full pass over the data per alpha. Used by tests and the benchmark."""
    from .wise import interpolate

    config = config or EvalConfig()
    device = pick_device(config.device)
    workers = config.num_workers if config.num_workers is not None else (8 if device.type == "cuda" else 2)
    project = evalset.projection or (lambda t: t)
    out = {}
    for alpha in spec.alphas:
        classifier.load_state_dict(interpolate(spec.theta_zeroshot, spec.theta_finetuned, alpha))
        classifier.to(device).eval()
        loader = DataLoader(evalset.dataset, batch_size=config.batch_size, num_workers=workers, pin_memory=device.type == "cuda")
        parts = []
        for images, _ in loader:
            with autocast_for(device, config.amp):
                parts.append(project(classifier(images.to(device, non_blocking=True)).float()).cpu())
        out[alpha] = torch.cat(parts).numpy()
    return out
