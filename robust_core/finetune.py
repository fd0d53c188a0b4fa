"""Fine-tuning methods: FT, LP, LP-FT and FLYP (and the contrastive loop the demo pretrains with).

- **FT**: end-to-end cross-entropy from the zero-shot classifier (head initialised to the zero-shot
  head, so theta_1 lives on theta_0's scale and WiSE-FT interpolation is meaningful).
- **LP**: multinomial logistic regression on frozen, L2-normalised zero-shot features, initialised
  from the zero-shot head (full-batch L-BFGS with an L2 penalty pulling towards that init, so the head
  stays on the zero-shot scale).
- **LP-FT** (Kumar et al. 2022): LP first, then FT from the LP head.
- **FT, random head** (``ft-random-head``): end-to-end cross-entropy from a randomly initialised head
  (random directions at the zero-shot head's row norm). Not a WiSE-FT recipe: it is the baseline LP-FT
  was designed against (Kumar et al.: a random head distorts the pretrained features).
- **FLYP** (Goyal et al. 2023): fine-tune both towers with the CLIP contrastive loss on
  (image, "template(class name)") pairs; the classifier is the fine-tuned image tower with a
  zero-shot head rebuilt from the fine-tuned text tower.

Defaults are the WiSE-FT paper's (AdamW lr 3e-5, wd 0.1, batch 512, 10 epochs, cosine, 500 warm-up
steps). BatchNorm statistics are frozen by default for towers that have BatchNorm (the demo showed
that updating them destroys the WiSE-FT effect). Training resumes from ``<out>/<method>.resume.pt``.

Under torchrun every step takes the same global batch as a 1-rank run (each rank a contiguous slice,
gradient = mean over the global batch, see ``train_classifier``), LP features are encoded in shards
and all-gathered, and logged losses are the global batch's; W ranks equal 1 rank up to float noise.

Run::

    python -m robust_core finetune --arch ViT-B-32 --pretrained openai --method ft \
        --train imagenet-train --data-root /data --out runs/vitb32
"""

from __future__ import annotations

import copy
import math
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from .models import ClassificationHead, ImageClassifier, build_zeroshot_head
from .runtime import autocast_for, pick_device, rank_world, shard_bounds, workers_for

METHODS = ("ft", "lp", "lpft", "flyp", "ft-random-head")


@dataclass
class FinetuneConfig:
    method: str = "ft"  # ft | lp | lpft | flyp | ft-random-head
    epochs: int = 10  # WiSE-FT paper
    lr: float = 3e-5  # AdamW learning rate (WiSE-FT paper)
    weight_decay: float = 0.1  # AdamW weight decay (WiSE-FT paper)
    batch_size: int = 512  # global batch (split across ranks under torchrun)
    warmup_steps: int = 500  # linear warm-up before the cosine decay
    freeze_bn: bool | None = None  # None: freeze BatchNorm statistics when the encoder has BatchNorm
    lp_l2: float = 1e-3  # LP: L2 penalty towards the zero-shot head (keeps the scale)
    lp_steps: int = 200  # LP: L-BFGS iterations
    label_smoothing: float = 0.0
    augment: bool = False  # FT / LP-FT: random translation (+-2 px at 32 px) and rotation (+-8 deg) per image
    head_init_scale: float = 1.0  # ft-random-head: row norms of the random head, as a fraction of the zero-shot head's
    seed: int = 0
    device: str = "auto"
    amp: str = "auto"  # auto | bf16 | fp16 | fp32 (CUDA only)
    num_workers: int | None = None  # default 8 on CUDA, 2 on CPU
    progress: bool = True


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def cosine_lr(step: int, total: int, base_lr: float, warmup: int) -> float:
    """Linear warm-up then cosine decay to 0 (wise-ft's schedule)."""
    warmup = min(warmup, max(total // 10, 1)) if total < warmup * 2 else warmup
    if step < warmup:
        return base_lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * progress)) * base_lr


def has_batchnorm(module: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())


def train_mode(module: nn.Module, freeze_bn: bool) -> None:
    """``module.train()``, but BatchNorm layers stay in eval mode (statistics frozen) if asked."""
    module.train()
    if freeze_bn:
        for m in module.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()


def _global_batches(n: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """One epoch's *global* batches: a permutation seeded by ``(seed, epoch)`` cut into ``batch_size`` chunks.

    The batches depend on neither the rank nor the number of ranks, so a run on W ranks takes each step
    on exactly the examples a 1-rank run takes it on (each rank gets a contiguous slice of every global
    batch, ``_rank_batches``). A short last batch is dropped when the set holds more than one batch; a
    set smaller than one batch is a single batch. One draw is skipped before the permutation: that is the
    order a shuffled ``DataLoader(generator=seed + epoch)`` gave before this sampler, so 1-rank runs (the
    demo) are unchanged.
    """
    generator = torch.Generator().manual_seed(seed + epoch)
    torch.empty((), dtype=torch.int64).random_(generator=generator)  # the draw DataLoader spent on its base seed
    order = torch.randperm(n, generator=generator).tolist()
    if n <= batch_size:
        return [order]
    return [order[start : start + batch_size] for start in range(0, n - batch_size + 1, batch_size)]


def _rank_batches(n: int, batch_size: int, seed: int, epoch: int, equal_slices: bool = False) -> tuple[list[list[int]], list[int]]:
    """This rank's slice of each global batch, and each global batch's size.

    ``equal_slices``: trim every global batch to a multiple of the number of ranks (the contrastive loss
    all-gathers equal-sized feature blocks); needs ``batch_size`` divisible by it.
    """
    rank, world = rank_world()
    if n == 0 or n < world:
        raise ValueError(
            f"The training set has {n} examples; each of the {world} rank(s) needs at least one. Use more data or fewer ranks."
        )
    if equal_slices and batch_size % world:
        raise ValueError(f"--batch-size {batch_size} (the global batch) is not divisible by the {world} ranks; pass a multiple of {world}.")
    batches = _global_batches(n, batch_size, seed, epoch)
    if equal_slices:
        batches = [b[: len(b) - len(b) % world] for b in batches]
    slices = []
    for batch in batches:
        lo, hi = shard_bounds(len(batch), world)[rank]
        slices.append(batch[lo:hi])
    return slices, [len(b) for b in batches]


def _loader(dataset: Dataset, batch_indices: list[list[int]], workers: int, device) -> DataLoader:
    return DataLoader(dataset, batch_sampler=batch_indices, num_workers=workers, pin_memory=device.type == "cuda")


def _distributed(module: nn.Module, device: torch.device, world: int) -> nn.Module:
    """``module`` wrapped in DDP under torchrun (on this rank's GPU, or on the CPU with gloo); itself otherwise."""
    if world <= 1:
        return module
    return nn.parallel.DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None)


def _comm_device(device: torch.device) -> torch.device:
    """Where collective tensors live: the GPU under NCCL, the CPU under gloo."""
    return device if torch.distributed.get_backend() == "nccl" else torch.device("cpu")


def _sum_over_ranks(values: Sequence[float], device: torch.device) -> list[float]:
    """Element-wise sum of ``values`` over all ranks (the values themselves on 1 rank)."""
    if rank_world()[1] == 1:
        return [float(v) for v in values]
    total = torch.tensor([float(v) for v in values], dtype=torch.float64, device=_comm_device(device))
    torch.distributed.all_reduce(total)
    return total.tolist()


def _all_gather_rows(local: torch.Tensor, device: torch.device, chunk_rows: int = 32768) -> torch.Tensor:
    """Every rank's rows concatenated in rank order, on every rank (CPU); row counts may differ by rank.

    Rows travel in zero-padded chunks of ``chunk_rows`` so device memory stays bounded for large sets.
    A rank without rows may pass a ``(0, 0)`` tensor; the trailing shape comes from the other ranks.
    """
    dist = torch.distributed
    world = rank_world()[1]
    comm = _comm_device(device)
    shape = torch.tensor([local.shape[0], *local.shape[1:]], dtype=torch.int64, device=comm)
    shapes = [torch.zeros_like(shape) for _ in range(world)]
    dist.all_gather(shapes, shape)
    rows = [int(s[0]) for s in shapes]
    trailing = next((tuple(int(x) for x in s[1:]) for s, r in zip(shapes, rows) if r), tuple(local.shape[1:]))
    per_rank: list[list[torch.Tensor]] = [[] for _ in range(world)]
    for start in range(0, max(rows), chunk_rows):
        size = min(chunk_rows, max(rows) - start)
        send = torch.zeros((size, *trailing), dtype=local.dtype, device=comm)
        mine = local[start : start + size]
        if len(mine):
            send[: len(mine)] = mine.to(comm)
        received = [torch.empty_like(send) for _ in range(world)]
        dist.all_gather(received, send)
        for r in range(world):
            keep = min(size, rows[r] - start)
            if keep > 0:
                per_rank[r].append(received[r][:keep].cpu())
    parts = [chunk for chunks in per_rank for chunk in chunks]  # rank order = dataset order
    return torch.cat(parts) if parts else local.new_zeros((0, *trailing))


# ------------------------------------------------------------------------------------ LP (frozen)
@torch.no_grad()
def extract_features(encoder: nn.Module, dataset: Dataset, config: FinetuneConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """L2-normalised features and labels of a whole dataset (frozen encoder, eval mode), in dataset order.

    Under torchrun each rank encodes a contiguous slice of the set and the slices are all-gathered, so
    every rank ends with the whole set's features having encoded only 1/world of it.
    """
    device = pick_device(config.device)
    rank, world = rank_world()
    encoder = encoder.to(device).eval()
    workers = workers_for(device, config.num_workers)
    lo, hi = shard_bounds(len(dataset), world)[rank]
    shard = dataset if world == 1 else torch.utils.data.Subset(dataset, range(lo, hi))
    loader = DataLoader(shard, batch_size=512, shuffle=False, num_workers=workers, pin_memory=device.type == "cuda")
    feats, labels = [], []
    for images, targets in tqdm(loader, desc="features", disable=not config.progress or rank > 0, leave=False):
        with autocast_for(device, config.amp):
            f = encoder(images.to(device, non_blocking=True))
        feats.append(F.normalize(f.float(), dim=-1).cpu())
        labels.append(torch.as_tensor(targets))
    local_feats = torch.cat(feats) if feats else torch.zeros((0, 0))
    local_labels = torch.cat(labels).long() if labels else torch.zeros(0, dtype=torch.int64)
    if world == 1:
        return local_feats, local_labels
    return _all_gather_rows(local_feats, device), _all_gather_rows(local_labels, device)


def fit_linear_probe(
    features: torch.Tensor,
    labels: torch.Tensor,
    init_head: ClassificationHead,
    l2: float = 1e-3,
    steps: int = 200,
) -> tuple[ClassificationHead, dict]:
    """Logistic regression on normalised features, starting at (and regularised towards) ``init_head``.

    The penalty ``l2 * ||W - W_zs||^2`` keeps the probe on the zero-shot head's scale, which WiSE-FT
    needs: interpolating towards a head of a different norm would mostly rescale the logits.
    """
    w0 = init_head.weight.detach().clone().float()
    b0 = init_head.bias.detach().clone().float()
    weight = w0.clone().requires_grad_(True)
    bias = b0.clone().requires_grad_(True)
    opt = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=steps, history_size=20, line_search_fn="strong_wolfe")
    feats, labels = features.float(), labels.long()

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(feats @ weight.T + bias, labels) + l2 * ((weight - w0) ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        final_loss = float(F.cross_entropy(feats @ weight.T + bias, labels))
        train_acc = float(((feats @ weight.T + bias).argmax(1) == labels).float().mean())
    ratio = float(weight.detach().norm() / w0.norm())
    info = {"train_loss": final_loss, "train_accuracy": train_acc, "head_norm_ratio": ratio}
    if not 0.2 < ratio < 5:
        info["warning"] = f"LP head norm is {ratio:.2f}x the zero-shot head's; interpolation will mostly rescale logits. Increase --lp-l2."
    return ClassificationHead(weight.detach(), bias.detach()), info


# ------------------------------------------------------------------------------------ resume files
def _load_resume(path: Path | None, module: nn.Module, optimizer) -> tuple[int, list, object]:
    """Restore module + optimizer from ``path`` (weights_only); returns (epochs done, history, saved RNG state or None)."""
    if path is None or not path.exists():
        return 0, [], None
    state = torch.load(path, map_location="cpu", weights_only=True)
    module.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    return int(state["epoch"]), list(state["history"]), state.get("rng")


def _save_resume(path: Path | None, module: nn.Module, optimizer, epoch: int, history: list, rng=None) -> None:
    """Write the end-of-epoch state atomically (temp file + rename), with the RNG state the next epoch
    starts from (augmentation / caption draws), so a resumed run continues exactly as an uninterrupted one."""
    from .store import _publish

    if path is None:
        return
    tmp = path.with_name(path.name + ".tmp")
    state = {"model": module.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch, "history": history}
    if rng is not None:
        state["rng"] = rng
    torch.save(state, tmp)
    _publish(tmp, path)  # through the store's fault-injection hook (tests/test_faults.py)


# ------------------------------------------------------------------------------------ FT / LP-FT
def train_classifier(
    classifier: ImageClassifier,
    dataset: Dataset,
    config: FinetuneConfig,
    resume_path: Path | None = None,
) -> tuple[ImageClassifier, dict]:
    """End-to-end cross-entropy fine-tuning (FT; LP-FT when the head comes from LP).

    Under torchrun the model is wrapped in DistributedDataParallel and each rank takes a contiguous
    slice of every global batch (``config.batch_size`` examples, the same ones a 1-rank run takes). Each
    rank's loss is its summed cross-entropy times ``world / global batch size``; DDP averages gradients
    over ranks, so the gradient is the mean over the global batch even when slices are uneven, and a
    W-rank run equals a 1-rank run up to float summation order (BatchNorm towers with unfrozen
    statistics excepted: those see per-rank batch statistics). The logged loss and accuracy are summed
    over ranks, so they describe the whole global batch, not rank 0's slice.
    """
    device = pick_device(config.device)
    rank, world = rank_world()
    freeze_bn = has_batchnorm(classifier.image_encoder) if config.freeze_bn is None else config.freeze_bn
    classifier = classifier.to(device)
    model = _distributed(classifier, device, world)
    params = [p for p in classifier.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    workers = workers_for(device, config.num_workers)
    steps_per_epoch = len(_global_batches(len(dataset), config.batch_size, config.seed, 0))
    total = steps_per_epoch * config.epochs
    start_epoch, history, rng_state = _load_resume(resume_path, classifier, optimizer)
    step = start_epoch * steps_per_epoch
    generator = torch.Generator(device=device).manual_seed(config.seed * 7919 + start_epoch)
    if rng_state is not None:
        generator.set_state(rng_state)  # where the uninterrupted run's augmentation stream stood
    for epoch in range(start_epoch, config.epochs):
        train_mode(model, freeze_bn)
        batches, global_sizes = _rank_batches(len(dataset), config.batch_size, config.seed, epoch)
        loader = _loader(dataset, batches, workers, device)
        total_loss, total_right, seen = 0.0, 0, 0
        bar = tqdm(loader, desc=f"{config.method} epoch {epoch + 1}/{config.epochs}", disable=not config.progress or rank, leave=False)
        for (images, labels), global_size in zip(bar, global_sizes):
            for group in optimizer.param_groups:
                group["lr"] = cosine_lr(step, total, config.lr, config.warmup_steps)
            images, labels = images.to(device, non_blocking=True), torch.as_tensor(labels).to(device)
            if config.augment:  # draws for the whole global batch, keeps this rank's slice: same as on 1 rank
                images = _augment(images, generator, offset=shard_bounds(global_size, world)[rank][0], total=global_size)
            with autocast_for(device, config.amp):
                logits = model(images)
            loss_sum = F.cross_entropy(logits.float(), labels, label_smoothing=config.label_smoothing, reduction="sum")
            optimizer.zero_grad(set_to_none=True)
            (loss_sum * (world / global_size)).backward()  # DDP's mean over ranks turns this into the global-batch mean
            optimizer.step()
            step += 1
            total_loss += float(loss_sum.detach())
            total_right += int((logits.argmax(1) == labels).sum())
            seen += len(labels)
            bar.set_postfix(loss=f"{total_loss / seen:.3f}")
        total_loss, total_right, seen = _sum_over_ranks([total_loss, total_right, seen], device)
        history.append({"epoch": epoch + 1, "loss": total_loss / max(seen, 1), "train_accuracy": total_right / max(seen, 1)})
        if rank == 0:
            _save_resume(resume_path, classifier, optimizer, epoch + 1, history, generator.get_state())
    classifier.eval()
    return classifier, {"history": history, "freeze_bn": freeze_bn, "steps": total}


def _augment(
    images: torch.Tensor,
    generator: torch.Generator,
    shift: float = 0.0625,
    degrees: float = 8.0,
    offset: int = 0,
    total: int | None = None,
) -> torch.Tensor:
    """Random translation (a fraction ``shift`` of the half-width) and rotation per image (no flips: glyphs).

    ``offset``/``total``: the images are rows ``offset..`` of a global batch of ``total``; parameters are
    drawn for all ``total`` images and this slice's are used, so every rank consumes the same draws.
    """
    n = images.shape[0]
    total = n if total is None else total
    angle = (torch.rand(total, generator=generator, device=images.device) * 2 - 1) * math.radians(degrees)
    shifts = (torch.rand(total, 2, generator=generator, device=images.device) * 2 - 1) * shift * 2
    angle, shifts = angle[offset : offset + n], shifts[offset : offset + n]
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack([torch.stack([cos, -sin, shifts[:, 0]], 1), torch.stack([sin, cos, shifts[:, 1]], 1)], 1)
    grid = F.affine_grid(theta.to(images.dtype), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def random_head_like(head: ClassificationHead, seed: int, scale: float = 1.0) -> ClassificationHead:
    """A randomly initialised head whose rows have ``scale`` times the norms of ``head``'s rows."""
    gen = torch.Generator().manual_seed(seed)
    weight = torch.randn(head.weight.shape, generator=gen)
    weight = F.normalize(weight, dim=1) * head.weight.detach().norm(dim=1, keepdim=True).cpu() * scale
    return ClassificationHead(weight.to(head.weight.dtype), torch.zeros_like(head.bias.detach().cpu()), normalize=head.normalize)


# -------------------------------------------------------------------------------- contrastive (FLYP)
def contrastive_train(
    model: nn.Module,
    tokenizer: Callable,
    dataset: Dataset,
    texts_for: Callable[[Sequence, np.random.Generator], list[str]],
    config: FinetuneConfig,
    resume_path: Path | None = None,
    desc: str = "contrastive",
) -> tuple[nn.Module, dict]:
    """CLIP contrastive training of both towers (open_clip's ClipLoss).

    ``dataset`` yields ``(image, target)``; ``texts_for(targets, rng)`` turns a batch of targets into
    captions (FLYP: a random template filled with the class name; demo pretraining: the captions).
    """
    from open_clip.loss import ClipLoss

    device = pick_device(config.device)
    rank, world = rank_world()
    freeze_bn = has_batchnorm(model.visual) if config.freeze_bn is None else config.freeze_bn
    model = model.to(device)
    wrapped = _distributed(model, device, world)
    loss_fn = ClipLoss(rank=rank, world_size=world, gather_with_grad=world > 1)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "logit_scale" not in n]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2 or "logit_scale" in n]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=config.lr
    )
    workers = workers_for(device, config.num_workers)
    steps_per_epoch = len(_global_batches(len(dataset), config.batch_size, config.seed, 0))
    total = steps_per_epoch * config.epochs
    start_epoch, history, rng_state = _load_resume(resume_path, model, optimizer)
    rng = np.random.default_rng(config.seed + 1000 * start_epoch + rank)
    if rng_state is not None and world == 1:  # rank 0 saves its own stream; other ranks re-seed as before
        rng.bit_generator.state = rng_state
    token_cache: dict[str, torch.Tensor] = {}

    def tokenize(texts: list[str]) -> torch.Tensor:
        # Captions repeat (class prompts, caption templates): tokenise each distinct string once.
        missing = [t for t in dict.fromkeys(texts) if t not in token_cache]
        if missing:
            for text, row in zip(missing, tokenizer(missing)):
                token_cache[text] = row
        return torch.stack([token_cache[t] for t in texts])

    step = start_epoch * steps_per_epoch
    for epoch in range(start_epoch, config.epochs):
        train_mode(wrapped, freeze_bn)
        batches, _ = _rank_batches(len(dataset), config.batch_size, config.seed, epoch, equal_slices=True)
        loader = _loader(dataset, batches, workers, device)
        total_loss, seen = 0.0, 0
        bar = tqdm(loader, desc=f"{desc} epoch {epoch + 1}/{config.epochs}", disable=not config.progress or rank, leave=False)
        for images, targets in bar:
            for group in optimizer.param_groups:
                group["lr"] = cosine_lr(step, total, config.lr, config.warmup_steps)
            tokens = tokenize(texts_for(targets, rng)).to(device)
            with autocast_for(device, config.amp):
                image_features, text_features, logit_scale = wrapped(images.to(device, non_blocking=True), tokens)[:3]
            loss = loss_fn(image_features.float(), text_features.float(), logit_scale.float())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            with torch.no_grad():  # CLIP clamps the temperature at 100
                model.logit_scale.clamp_(0, math.log(100))
            step += 1
            total_loss += float(loss.detach()) * len(images)
            seen += len(images)
            bar.set_postfix(loss=f"{total_loss / seen:.3f}")
        total_loss, seen = _sum_over_ranks([total_loss, seen], device)
        history.append({"epoch": epoch + 1, "loss": total_loss / max(seen, 1)})
        if rank == 0:
            _save_resume(resume_path, model, optimizer, epoch + 1, history, rng.bit_generator.state)
    model.eval()
    return model, {"history": history, "freeze_bn": freeze_bn, "steps": total}


# ------------------------------------------------------------------------------------- entry point
def finetune(
    model: nn.Module,
    tokenizer: Callable,
    zeroshot: ImageClassifier,
    train_set: Dataset,
    classnames: Sequence[str],
    templates: Sequence[str],
    config: FinetuneConfig,
    out_dir: str | os.PathLike | None = None,
) -> tuple[ImageClassifier, dict]:
    """Fine-tune with ``config.method`` and return ``(theta_1 classifier, info)``.

    ``zeroshot`` (theta_0) is never modified. ``model`` is the open_clip model (FLYP trains a copy of it).
    """
    if config.method not in METHODS:
        raise ValueError(f"Unknown method {config.method!r}; choose one of {', '.join(METHODS)}.")
    set_seed(config.seed)
    out = Path(out_dir) if out_dir else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
    resume = (out / f"{config.method}.resume.pt") if out else None
    info: dict = {"config": asdict(config)}
    if config.method in ("lp", "lpft"):
        feats, labels = extract_features(zeroshot.image_encoder, train_set, config)
        head, lp_info = fit_linear_probe(feats, labels, zeroshot.head, config.lp_l2, config.lp_steps)
        info["lp"] = lp_info
        classifier = ImageClassifier(copy.deepcopy(zeroshot.image_encoder), head)
        if config.method == "lp":
            return classifier.eval(), info
        classifier, train_info = train_classifier(classifier, train_set, config, resume)
        info.update(train_info)
        return classifier, info
    if config.method in ("ft", "ft-random-head"):
        classifier = copy.deepcopy(zeroshot)
        if config.method == "ft-random-head":
            classifier.head = random_head_like(zeroshot.head, config.seed, config.head_init_scale)
        classifier, train_info = train_classifier(classifier, train_set, config, resume)
        info.update(train_info)
        return classifier, info
    # FLYP
    clip = copy.deepcopy(model)
    names = list(classnames)

    def texts_for(targets, rng):
        return [templates[rng.integers(len(templates))].format(c=names[int(t)]) for t in targets]

    clip, train_info = contrastive_train(clip, tokenizer, train_set, texts_for, config, resume, desc="flyp")
    info.update(train_info)
    head = build_zeroshot_head(clip, tokenizer, names, templates)
    return ImageClassifier(clip.visual, head).eval(), info
