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

from .evaluate import autocast_for, pick_device, rank_world
from .models import ClassificationHead, ImageClassifier, build_zeroshot_head

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


def init_distributed() -> bool:
    """Initialise torch.distributed when launched by torchrun (WORLD_SIZE > 1). Returns True if so."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        torch.distributed.init_process_group(backend)
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return True


def _loader(dataset: Dataset, batch_size: int, shuffle: bool, workers: int, device, seed: int, epoch: int = 0):
    rank, world = rank_world()
    sampler = None
    if world > 1:
        sampler = torch.utils.data.distributed.DistributedSampler(dataset, shuffle=shuffle, seed=seed, drop_last=shuffle)
        sampler.set_epoch(epoch)
    generator = torch.Generator().manual_seed(seed + epoch)
    return DataLoader(
        dataset,
        batch_size=max(1, batch_size // world),
        shuffle=shuffle and sampler is None,
        sampler=sampler,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        drop_last=shuffle and len(dataset) > batch_size,
        generator=generator,
    )


# ------------------------------------------------------------------------------------ LP (frozen)
@torch.no_grad()
def extract_features(encoder: nn.Module, dataset: Dataset, config: FinetuneConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """L2-normalised features and labels of a whole dataset (frozen encoder, eval mode)."""
    device = pick_device(config.device)
    encoder = encoder.to(device).eval()
    workers = config.num_workers if config.num_workers is not None else (8 if device.type == "cuda" else 2)
    loader = DataLoader(dataset, batch_size=512, shuffle=False, num_workers=workers, pin_memory=device.type == "cuda")
    feats, labels = [], []
    for images, targets in tqdm(loader, desc="features", disable=not config.progress, leave=False):
        with autocast_for(device, config.amp):
            f = encoder(images.to(device, non_blocking=True))
        feats.append(F.normalize(f.float(), dim=-1).cpu())
        labels.append(torch.as_tensor(targets))
    return torch.cat(feats), torch.cat(labels)


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
def _load_resume(path: Path | None, module: nn.Module, optimizer) -> tuple[int, list]:
    """Restore module + optimizer from ``path`` (weights_only); returns (epochs done, history)."""
    if path is None or not path.exists():
        return 0, []
    state = torch.load(path, map_location="cpu", weights_only=True)
    module.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    return int(state["epoch"]), list(state["history"])


def _save_resume(path: Path | None, module: nn.Module, optimizer, epoch: int, history: list) -> None:
    """Write the end-of-epoch state atomically (temp file + os.replace)."""
    if path is None:
        return
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"model": module.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch, "history": history}, tmp)
    os.replace(tmp, path)


# ------------------------------------------------------------------------------------ FT / LP-FT
def train_classifier(
    classifier: ImageClassifier,
    dataset: Dataset,
    config: FinetuneConfig,
    resume_path: Path | None = None,
) -> tuple[ImageClassifier, dict]:
    """End-to-end cross-entropy fine-tuning (FT; LP-FT when the head comes from LP)."""
    device = pick_device(config.device)
    rank, world = rank_world()
    freeze_bn = has_batchnorm(classifier.image_encoder) if config.freeze_bn is None else config.freeze_bn
    classifier = classifier.to(device)
    model: nn.Module = classifier
    if world > 1:
        model = nn.parallel.DistributedDataParallel(classifier, device_ids=[device.index] if device.type == "cuda" else None)
    params = [p for p in classifier.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    workers = config.num_workers if config.num_workers is not None else (8 if device.type == "cuda" else 2)
    steps_per_epoch = len(_loader(dataset, config.batch_size, True, 0, device, config.seed))
    total = steps_per_epoch * config.epochs
    start_epoch, history = _load_resume(resume_path, classifier, optimizer)
    step = start_epoch * steps_per_epoch
    generator = torch.Generator(device=device).manual_seed(config.seed * 7919 + start_epoch)
    for epoch in range(start_epoch, config.epochs):
        train_mode(model, freeze_bn)
        loader = _loader(dataset, config.batch_size, True, workers, device, config.seed, epoch)
        total_loss, total_right, seen = 0.0, 0, 0
        bar = tqdm(loader, desc=f"{config.method} epoch {epoch + 1}/{config.epochs}", disable=not config.progress or rank, leave=False)
        for images, labels in bar:
            for group in optimizer.param_groups:
                group["lr"] = cosine_lr(step, total, config.lr, config.warmup_steps)
            images, labels = images.to(device, non_blocking=True), torch.as_tensor(labels).to(device)
            if config.augment:
                images = _augment(images, generator)
            with autocast_for(device, config.amp):
                logits = model(images)
            loss = F.cross_entropy(logits.float(), labels, label_smoothing=config.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            step += 1
            total_loss += float(loss.detach()) * len(labels)
            total_right += int((logits.argmax(1) == labels).sum())
            seen += len(labels)
            bar.set_postfix(loss=f"{total_loss / seen:.3f}")
        history.append({"epoch": epoch + 1, "loss": total_loss / max(seen, 1), "train_accuracy": total_right / max(seen, 1)})
        if rank == 0:
            _save_resume(resume_path, classifier, optimizer, epoch + 1, history)
    classifier.eval()
    return classifier, {"history": history, "freeze_bn": freeze_bn, "steps": total}


def _augment(images: torch.Tensor, generator: torch.Generator, shift: float = 0.0625, degrees: float = 8.0) -> torch.Tensor:
    """Random translation (a fraction ``shift`` of the half-width) and rotation per image (no flips: glyphs)."""
    n = images.shape[0]
    angle = (torch.rand(n, generator=generator, device=images.device) * 2 - 1) * math.radians(degrees)
    offset = (torch.rand(n, 2, generator=generator, device=images.device) * 2 - 1) * shift * 2
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack([torch.stack([cos, -sin, offset[:, 0]], 1), torch.stack([sin, cos, offset[:, 1]], 1)], 1)
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
    wrapped: nn.Module = model
    if world > 1:
        wrapped = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    loss_fn = ClipLoss(rank=rank, world_size=world, gather_with_grad=world > 1)
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "logit_scale" not in n]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2 or "logit_scale" in n]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=config.lr
    )
    workers = config.num_workers if config.num_workers is not None else (8 if device.type == "cuda" else 2)
    steps_per_epoch = len(_loader(dataset, config.batch_size, True, 0, device, config.seed))
    total = steps_per_epoch * config.epochs
    start_epoch, history = _load_resume(resume_path, model, optimizer)
    rng = np.random.default_rng(config.seed + 1000 * start_epoch + rank)
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
        loader = _loader(dataset, config.batch_size, True, workers, device, config.seed, epoch)
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
        history.append({"epoch": epoch + 1, "loss": total_loss / max(seen, 1)})
        if rank == 0:
            _save_resume(resume_path, model, optimizer, epoch + 1, history)
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
