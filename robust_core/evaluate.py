"""Alpha-grid evaluation: decode each batch once, run every alpha's model on it.

wise-ft evaluates each alpha with a full pass over every dataset, so JPEG decoding and resizing (the
bottleneck for small models) is repeated ``len(alphas)`` times. Here each chunk of decoded batches
stays on the device while the model's weights are set to theta(alpha) in place for each alpha
(``InPlaceInterpolator``: one pass over the parameters), so data work is done once per dataset.
Linear-head methods (LP) share the zero-shot encoder: features are computed once and every alpha is
a matmul with the interpolated head.

Logits are streamed chunk by chunk into preallocated files (``store.ShardWriter``): host memory does
not grow with the set size, and a killed run resumes at its last committed chunk. Under
``torchrun --nproc_per_node N`` every set is split into N contiguous slices of examples, one per rank;
rank 0 waits for all slices and assembles the store.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset
from tqdm.auto import tqdm

from .datasets import EvalSet
from .mixing import mix
from .runtime import autocast_for, pick_device, rank_world, shard_bounds, workers_for
from .store import TOPK, StoreWriter, _topk
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
    chunk_batches: int = 8  # decoded batches kept on device while every alpha runs over them; progress is committed per chunk
    num_workers: int | None = None  # DataLoader workers; default: 8 on CUDA, 2 on CPU
    feature_rows: int = 2000  # rows of alpha-0/alpha-1 features kept per dataset (for CKA), 0 = none
    amp: str = "auto"  # auto (bf16 on CUDA, fp32 on CPU) | bf16 | fp16 | fp32
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    progress: bool = True
    store_logits: str = "full"  # full | topk: top-3 per alpha + full logits at alpha 0 and 1 only (21k classes, many seeds)
    shard_wait_s: float | None = None  # torchrun: how long rank 0 waits for the other ranks' slices (None: as long as they run)


def linear_is_valid(theta_zeroshot: dict, theta_finetuned: dict) -> bool:
    """True when the two classifiers differ only in the head (the encoder was frozen)."""
    for key, t0 in theta_zeroshot.items():
        if key.startswith("head."):
            continue
        if not torch.equal(t0, theta_finetuned[key]):
            return False
    return True


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
    """Stream logits of every (method, alpha) and standard model into ``writer``, decoding data once.

    Under torchrun each rank evaluates its contiguous slice of every set (``shard_bounds``). Every chunk of
    batches is written to the slice's preallocated files and committed (``ShardWriter``), so host memory
    is flat in the set size and a killed run resumes at its last committed chunk.

    Args:
        classifier: an ``ImageClassifier`` whose weights are overwritten with theta(alpha) per alpha.
        methods: the methods and their endpoint state dicts.
        evalsets: datasets with their projections.
        writer: the store being built; finished slices are skipped, started ones resumed.
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
    workers = workers_for(device, config.num_workers)
    for evalset in evalsets:
        start, stop = shard_bounds(len(evalset.dataset), world)[rank]
        if writer.shard_done(evalset.name, start, stop):
            continue
        _evaluate_slice(classifier, methods, baselines, evalset, start, stop, writer, config, device, workers)


def wait_for_slices(writer: StoreWriter, evalsets: Sequence[EvalSet], world: int, timeout_s: float | None = None) -> None:
    """Rank 0: wait until every rank's slice of every set is committed (polls the shared store folder).

    A file-based wait instead of a collective: a rank resuming from 95% waits for one restarting from 0%
    without hitting the process group's timeout; torchrun stops the whole job if a rank dies.
    """
    import time

    t0 = time.time()
    pending = [(e.name, a, b) for e in evalsets for a, b in shard_bounds(len(e.dataset), world)]
    while pending := [p for p in pending if not writer.shard_done(*p)]:
        if timeout_s is not None and time.time() - t0 > timeout_s:
            raise TimeoutError(f"Slices {pending[:4]} were not finished by their ranks within {timeout_s:.0f} s.")
        time.sleep(1.0)


def _evaluate_slice(classifier, methods, baselines, evalset, start, stop, writer, config, device, workers):
    n_classes = len(evalset.classnames)
    feat_idx = feature_index(len(evalset.dataset), config.feature_rows)
    feat_idx = feat_idx[(feat_idx >= start) & (feat_idx < stop)]
    dim = classifier.head.weight.shape[1]
    feat_methods = [s.name for s in methods if s.features and not s.linear and config.feature_rows > 0]
    if config.store_logits not in ("full", "topk"):
        raise ValueError(f"store_logits must be 'full' or 'topk', not {config.store_logits!r}.")
    topk_only = config.store_logits == "topk"
    layout = {
        "n_classes": n_classes,
        "logits": {s.name: [2 if topk_only else len(s.alphas), n_classes] for s in methods},
        "top": {s.name: [len(s.alphas), min(TOPK, n_classes)] for s in methods} if topk_only else {},
        "baselines": {b: n_classes for b in baselines},
        "features": {m: [len(feat_idx), dim] for m in feat_methods},
        "feature_rows": len(feat_idx) if feat_methods else 0,
    }
    shard = writer.shard(evalset.name, start, stop, layout)
    try:
        _stream_slice(classifier, methods, baselines, evalset, start, stop, shard, feat_idx, feat_methods, config, device, workers)
    finally:
        shard.close()


def _stream_slice(classifier, methods, baselines, evalset, start, stop, shard, feat_idx, feat_methods, config, device, workers):
    if feat_methods:
        shard.write_feature_index(feat_idx)
    if shard.done >= stop - start:
        shard.commit(stop - start)
        return
    loader = DataLoader(
        Subset(evalset.dataset, range(start + shard.done, stop)),
        batch_size=config.batch_size,
        shuffle=False,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=False,
    )
    project = evalset.projection or (lambda t: t)
    interpolators = {s.name: InPlaceInterpolator(classifier, s.theta_zeroshot, s.theta_finetuned) for s in methods if not s.linear}
    linear_specs = [s for s in methods if s.linear]
    heads = {
        s.name: tuple(s.theta_zeroshot[k].to(device) for k in ("head.weight", "head.bias"))
        + tuple(s.theta_finetuned[k].to(device) for k in ("head.weight", "head.bias"))
        for s in linear_specs
    }
    encoder_zeroshot = dict(linear_specs[0].theta_zeroshot) if linear_specs else None

    def out(t: torch.Tensor) -> np.ndarray:
        return project(t.float()).cpu().numpy()

    def emit(spec: MethodSpec, a_i: int, row: int, values: np.ndarray) -> None:
        """One alpha's logits of a batch: all of them, or (``store_logits="topk"``) their top-3 and, at the
        endpoints, the full row (the ensemble curve and KL need those)."""
        if not shard.layout["top"]:
            shard.write_logits(spec.name, a_i, row, values)
            return
        if a_i in (0, len(spec.alphas) - 1):
            shard.write_logits(spec.name, 0 if a_i == 0 else 1, row, values)
        idx, val = _topk(values.astype(shard.dtype))  # from the stored precision, as a full store's top-k is
        shard.write_top(spec.name, a_i, row, idx, val)

    def run_chunk(chunk: list[torch.Tensor], row: int) -> None:
        """Every model over the decoded chunk; ``row`` is the chunk's first row within the slice."""
        offsets = np.cumsum([row] + [len(x) for x in chunk])
        for name, model in baselines.items():
            for x, r in zip(chunk, offsets):
                with autocast_for(device, config.amp):
                    shard.write_baseline(name, int(r), out(model(x)))
        if linear_specs:  # linear heads share the zero-shot encoder: one forward, every alpha a matmul
            classifier.load_state_dict(encoder_zeroshot)
            with autocast_for(device, config.amp):
                feats_lin = [F.normalize(classifier.image_encoder(x).float(), dim=-1) for x in chunk]
            for spec in linear_specs:
                w0, b0, w1, b1 = heads[spec.name]
                for a_i, alpha in enumerate(spec.alphas):
                    w, b = mix(w0, w1, alpha), mix(b0, b1, alpha)
                    for f, r in zip(feats_lin, offsets):
                        emit(spec, a_i, int(r), out(f @ w.T + b))
        for spec in methods:  # end-to-end methods: theta(alpha) set in place, every alpha over the chunk
            if spec.linear:
                continue
            interp = interpolators[spec.name]
            interp.alpha = None  # weights may have been changed by another method
            for a_i, alpha in enumerate(spec.alphas):
                interp.set_alpha(alpha)
                for x, r in zip(chunk, offsets):
                    with autocast_for(device, config.amp):
                        f = classifier.image_encoder(x)
                    emit(spec, a_i, int(r), out(classifier.head(f.float())))  # head in fp32
                    if alpha in (0.0, 1.0) and spec.name in feat_methods:
                        lo, hi = np.searchsorted(feat_idx, [start + r, start + r + len(x)])
                        if hi > lo:
                            rows = torch.as_tensor(feat_idx[lo:hi] - start - r, device=f.device)
                            shard.write_features(spec.name, int(alpha), int(lo), f[rows].float().cpu().numpy())

    bar = tqdm(total=stop - start, initial=shard.done, desc=f"eval {evalset.name}", unit="img", disable=not config.progress, leave=False)
    chunk, row, seen = [], shard.done, shard.done
    try:
        for images, targets in loader:
            shard.write_labels(seen, torch.as_tensor(targets).numpy())
            chunk.append(images.to(device, non_blocking=True))
            seen += len(images)
            if len(chunk) >= config.chunk_batches:
                run_chunk(chunk, row)
                shard.commit(seen)
                chunk, row = [], seen
            bar.update(len(images))
        if chunk:
            run_chunk(chunk, row)
        shard.commit(seen)
    finally:
        bar.close()  # clears its line, so an error message starts on a line of its own


@torch.no_grad()
def evaluate_per_alpha(classifier, spec: MethodSpec, evalset: EvalSet, config: EvalConfig | None = None) -> dict:
    """Reference loop (wise-ft's): one full pass over the data per alpha. Used by tests and the benchmark."""
    from .wise import interpolate

    config = config or EvalConfig()
    device = pick_device(config.device)
    workers = workers_for(device, config.num_workers)
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
