"""Models: open_clip loading, the zero-shot head and the image classifier.

A *classifier* here is what WiSE-FT interpolates: the image tower of an open_clip model followed by a
linear head applied to L2-normalised features (wise-ft's ``ImageClassifier`` with
``ClassificationHead(normalize=True)``). The zero-shot head is built from class names x templates and
scaled by the model's logit scale, so a fine-tuned head initialised from it lives on the same scale.

Example::

    model, preprocess, tokenizer = load_clip("ViT-B-32", pretrained="openai")
    head = build_zeroshot_head(model, tokenizer, classnames, templates)
    classifier = ImageClassifier(model.visual, head)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .store import _publish, sha256_file  # noqa: F401  (sha256_file: torch-free home in store; cli, export and demo import it from here)

_CONFIG_DIR = Path(__file__).parent / "model_configs"
_registered_local_configs = False


class ModelLoadError(RuntimeError):
    """Raised when a model or checkpoint cannot be loaded; the message says how to fix it."""


class ZeroshotMismatchError(ModelLoadError):
    """Raised when a fine-tuned checkpoint records another zero-shot start than the theta_0 it is paired with."""


def register_local_model_configs() -> None:
    """Register the project's own open_clip configs (e.g. the tiny demo CLIP) with open_clip."""
    global _registered_local_configs
    if _registered_local_configs:
        return
    import open_clip

    open_clip.add_model_config(_CONFIG_DIR)
    _registered_local_configs = True


def _looks_like_file(pretrained: str) -> bool:
    return os.sep in pretrained or pretrained.endswith((".safetensors", ".pt", ".pth", ".bin"))


def load_clip(
    arch: str,
    pretrained: str | None = None,
    device: str | torch.device = "cpu",
    checkpoint: str | os.PathLike | None = None,
    offline: bool | None = None,
):
    """Load an open_clip model, its eval transform and tokenizer.

    Args:
        arch: open_clip architecture name (``open_clip.list_models()``), e.g. ``ViT-B-32``, or one of
            this project's configs in ``robust_core/model_configs`` (e.g. ``tiny-rn-demo``).
        pretrained: an open_clip pretrained tag (``openai``, ``laion2b_s34b_b79k``) fetched through
            open_clip's cache, or ``None`` for random initialisation.
        device: where to put the model.
        checkpoint: a local weights file (safetensors preferred; torch files are read with
            ``weights_only=True``) loaded *after* construction. Use this on machines without network.
        offline: never touch the network (default: the ``HF_HUB_OFFLINE`` environment variable); weights
            missing from the local cache then fail at once instead of after ~57 s of hub retries.

    Returns:
        ``(model, preprocess, tokenizer)``.

    Raises:
        ModelLoadError: unknown architecture, weights that cannot be fetched (offline), or a checkpoint
            that does not match the architecture.
    """
    import open_clip

    register_local_model_configs()
    if arch not in open_clip.list_models():
        raise ModelLoadError(
            f"Unknown open_clip architecture {arch!r}. Pick one of open_clip.list_models() "
            f"(e.g. ViT-B-32, ViT-B-16, RN50) or add a JSON config to {_CONFIG_DIR}."
        )
    tag = pretrained
    if pretrained and _looks_like_file(pretrained):
        checkpoint, tag = pretrained, None
    if tag:
        known = {t for a, t in open_clip.list_pretrained() if a == arch}
        if tag not in known:
            raise ModelLoadError(
                f"open_clip has no pretrained tag {tag!r} for {arch}. Known tags: "
                f"{sorted(known) or 'none'}. To use your own weights pass --checkpoint FILE."
            )
    if offline is None:
        offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
    try:
        with _hub_offline(bool(tag and offline)), _held_root_log():
            model, _, preprocess = open_clip.create_model_and_transforms(arch, pretrained=tag, device=device)
    except Exception as exc:  # open_clip raises many types for download failures
        if not tag:  # nothing to fetch: the architecture itself failed to build
            raise ModelLoadError(f"Could not build open_clip model {arch}: {type(exc).__name__}: {exc}") from exc
        # The fix first: the CLI shortens long messages, and the cause (open_clip's text) can be long.
        if offline:
            why = "offline (HF_HUB_OFFLINE / --offline) and not in the local cache?"
            fix = "Download them on a machine with network (open_clip caches them under ~/.cache/huggingface)"
        else:
            why = "this machine may have no network"
            fix = "Download them elsewhere (open_clip caches them under ~/.cache/huggingface), or add --offline to fail at once"
        raise ModelLoadError(
            f"Could not load pretrained weights {arch}/{tag} ({why}). {fix}, or pass a local file with "
            f"--checkpoint PATH.safetensors. Cause: {type(exc).__name__}: {exc}"
        ) from exc
    if checkpoint is not None:
        state = load_state_dict(checkpoint)
        state = _strip_prefix(state, ("module.", "model."))
        try:
            missing, unexpected = model.load_state_dict(state, strict=False)
        except RuntimeError as exc:  # same keys, other shapes: another size of the architecture
            first = next((ln.strip() for ln in str(exc).splitlines() if "size mismatch" in ln), str(exc)[:200])
            raise ModelLoadError(
                f"Checkpoint {checkpoint} does not match architecture {arch} ({first}). "
                "Check that --arch names the architecture the checkpoint was trained with."
            ) from None
        if missing or unexpected:
            raise ModelLoadError(
                f"Checkpoint {checkpoint} does not match architecture {arch}: "
                f"missing keys {list(missing)[:5]}..., unexpected keys {list(unexpected)[:5]}... "
                "Check that --arch names the architecture the checkpoint was trained with."
            )
    tokenizer = open_clip.get_tokenizer(arch)
    model.eval()
    return model, preprocess, tokenizer


@contextlib.contextmanager
def _hub_offline(enabled: bool) -> Iterator[None]:
    """Make huggingface_hub offline for the block (a missing download then fails in ~0.02 s, not ~57 s).

    huggingface_hub reads ``HF_HUB_OFFLINE`` once, at import: the variable alone only works when set
    before the first import (the CLI sets it while parsing ``--offline``). If the hub is already imported
    its constant is switched too, and both are restored afterwards. Cached weights still load.
    """
    if not enabled:
        yield
        return
    saved_env = os.environ.get("HF_HUB_OFFLINE")
    constants = sys.modules.get("huggingface_hub.constants")
    saved_constant = getattr(constants, "HF_HUB_OFFLINE", None)
    os.environ["HF_HUB_OFFLINE"] = "1"
    if constants is not None:
        constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        if saved_env is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = saved_env
        if constants is not None:
            constants.HF_HUB_OFFLINE = saved_constant


@contextlib.contextmanager
def _held_root_log() -> Iterator[None]:
    """Hold root-logger records for the block; replay them if it succeeds, drop them if it raises.

    open_clip logs a download failure with ``logging.error`` and then raises the same text; our
    ``ModelLoadError`` already carries it, so the log line would only make the CLI's error two lines.
    Only applies while the root logger has no handlers (records would go to ``logging.lastResort``).
    """
    root = logging.getLogger()
    if root.handlers:
        yield
        return
    held: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = held.append  # type: ignore[method-assign]
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
    for record in held:  # success: pass them on as if never held
        logging.getLogger(record.name).handle(record)


def _strip_prefix(state: dict, prefixes: Sequence[str]) -> dict:
    for prefix in prefixes:
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    return state


def load_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read a state dict from safetensors, or from a torch file with ``weights_only=True``."""
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"Checkpoint file not found: {path}. Pass an existing .safetensors or .pt file.")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except Exception as exc:
            raise ModelLoadError(f"{path} is not a readable safetensors file ({exc}).") from exc
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelLoadError(
            f"{path} could not be read with torch.load(weights_only=True) ({exc}). Only plain state dicts "
            "are accepted; convert pickled modules to safetensors first."
        ) from exc
    if isinstance(obj, dict) and "state_dict" in obj:
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise ModelLoadError(f"{path} does not hold a state dict (got {type(obj).__name__}).")
    return obj


class ClassificationHead(nn.Linear):
    """Linear head on L2-normalised features (weights already carry the logit scale)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None = None, normalize: bool = True):
        out_features, in_features = weight.shape
        super().__init__(in_features, out_features, bias=True)
        self.normalize = normalize
        with torch.no_grad():
            self.weight.copy_(weight)
            self.bias.copy_(bias if bias is not None else torch.zeros(out_features))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if self.normalize:
            features = F.normalize(features, dim=-1)
        return super().forward(features)


class ImageClassifier(nn.Module):
    """Image encoder followed by a ``ClassificationHead`` (the object WiSE-FT interpolates)."""

    def __init__(self, image_encoder: nn.Module, head: ClassificationHead):
        super().__init__()
        self.image_encoder = image_encoder
        self.head = head

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.image_encoder(images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.image_encoder(images))


def _format_template(template: str | Callable[[str], str], classname: str) -> str:
    return template(classname) if callable(template) else template.format(c=classname)


@torch.no_grad()
def build_zeroshot_head(
    model: nn.Module,
    tokenizer: Callable,
    classnames: Sequence[str],
    templates: Sequence[str | Callable[[str], str]],
    device: str | torch.device | None = None,
    batch_size: int = 256,
) -> ClassificationHead:
    """Zero-shot head: per class, normalise each template embedding, average, normalise, scale.

    The weight rows are ``logit_scale.exp() * normalize(mean_t normalize(encode_text(t(c))))``, as in
    CLIP's notebook and wise-ft's ``get_zeroshot_classifier``. Templates are ``"... {c} ..."`` strings or
    callables (open_clip's ``OPENAI_IMAGENET_TEMPLATES``).
    """
    if not classnames:
        raise ValueError("build_zeroshot_head needs at least one class name.")
    if not templates:
        raise ValueError("build_zeroshot_head needs at least one template.")
    device = device or next(model.parameters()).device
    rows = []
    texts = [_format_template(t, c) for c in classnames for t in templates]
    embeddings = []
    for start in range(0, len(texts), batch_size):
        tokens = tokenizer(texts[start : start + batch_size]).to(device)
        embeddings.append(F.normalize(model.encode_text(tokens).float(), dim=-1))
    embeddings = torch.cat(embeddings).view(len(classnames), len(templates), -1)
    rows = F.normalize(embeddings.mean(dim=1), dim=-1)
    scale = model.logit_scale.exp().float() if hasattr(model, "logit_scale") else torch.tensor(100.0)
    return ClassificationHead(scale.to(rows.device) * rows).cpu()


def build_classifier(model: nn.Module, head: ClassificationHead) -> ImageClassifier:
    """Wrap an open_clip model's image tower and a head into an ``ImageClassifier``."""
    return ImageClassifier(model.visual, head)


@dataclass
class CheckpointInfo:
    """JSON metadata saved beside every classifier checkpoint."""

    arch: str  # open_clip architecture name
    pretrained: str | None  # open_clip tag or path the encoder came from
    method: str  # zeroshot | ft | lp | lpft | flyp | baseline
    classnames: list[str]  # head classes, in head row order
    extra: dict  # hyper-parameters, training curves, etc.
    zeroshot_identity: dict | None = None  # zeroshot_identity() of the theta_0 it started from; eval checks it


def save_classifier(classifier: nn.Module, path: str | os.PathLike, info: CheckpointInfo) -> str:
    """Save a classifier state dict as safetensors plus ``<path>.json`` metadata, atomically.

    Returns the sha256 of the weights file.
    """
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in classifier.state_dict().items()}
    tmp = path.with_name(path.name + ".tmp")
    save_file(state, str(tmp), metadata={"arch": info.arch, "method": info.method})
    _publish(tmp, path)
    digest = sha256_file(path)
    meta = {
        "arch": info.arch,
        "pretrained": info.pretrained,
        "method": info.method,
        "classnames": list(info.classnames),
        "sha256": digest,
        "extra": info.extra,
    }
    if info.zeroshot_identity is not None:
        meta["zeroshot_identity"] = info.zeroshot_identity
    tmp_json = path.with_name(path.name + ".json.tmp")
    tmp_json.write_text(json.dumps(meta, indent=1))
    _publish(tmp_json, path.with_name(path.name + ".json"))
    return digest


# ------------------------------------------------------------------------------ theta_0 identity
def state_sha256(state: Mapping[str, torch.Tensor]) -> str:
    """sha256 of a state dict's tensors, independent of file format and device.

    Keys in sorted order; per tensor its key, dtype and shape (as JSON) then its raw bytes. Bitwise-equal
    weights give equal digests whichever file (safetensors, torch) or device they came from.
    """
    digest = hashlib.sha256()
    for key in sorted(state):
        tensor = state[key].detach().cpu().contiguous()
        digest.update(json.dumps([key, str(tensor.dtype).removeprefix("torch."), list(tensor.shape)]).encode() + b"\0")
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def _json_sha256(value) -> str:
    return hashlib.sha256(json.dumps(value, ensure_ascii=False).encode()).hexdigest()


def zeroshot_identity(model: nn.Module, zeroshot: ImageClassifier, classnames: Sequence[str], templates: Sequence[str]) -> dict:
    """The identity of a zero-shot classifier theta_0, recorded in fine-tuned checkpoints and checked by eval.

    ``weights_sha256`` identifies theta_0 itself (image tower + head; the digest of the two parts'
    ``state_sha256``). The head's inputs are identified too (text tower with the logit scale, class names,
    templates) so a mismatch can say what differs, and so a head rebuilt from identical inputs that
    differs only in its last bits (another CPU's float summation order) is recognised as the same start.

    Args:
        model: the open_clip model the head was built from (its non-``visual.`` weights are the text side).
        zeroshot: the zero-shot ``ImageClassifier``.
        classnames: the head's class names, in row order.
        templates: the templates the head was built with.
    """
    state = zeroshot.state_dict()
    image_encoder = state_sha256({k: v for k, v in state.items() if k.startswith("image_encoder.")})
    head = state_sha256({k: v for k, v in state.items() if k.startswith("head.")})
    return {
        "weights_sha256": _json_sha256({"image_encoder": image_encoder, "head": head}),
        "image_encoder_sha256": image_encoder,
        "head_sha256": head,
        "text_sha256": state_sha256({k: v for k, v in model.state_dict().items() if not k.startswith("visual.")}),
        "classnames_sha256": _json_sha256(list(classnames)),
        "templates_sha256": _json_sha256(list(templates)),
        "n_classes": len(classnames),
        "n_templates": len(templates),
    }


def zeroshot_mismatch(recorded: Mapping, current: Mapping) -> str | None:
    """What differs between two ``zeroshot_identity`` records, or ``None`` when they are the same start.

    Identical image towers with identical head inputs (text tower, class names, templates) count as the
    same start even if the head's bits differ: the head is recomputed, and float summation order may vary
    between machines and thread counts.
    """
    if recorded.get("weights_sha256") == current.get("weights_sha256"):
        return None
    differs = []
    if recorded.get("image_encoder_sha256") != current.get("image_encoder_sha256"):
        differs.append("image-tower weights")
    if recorded.get("text_sha256") != current.get("text_sha256"):
        differs.append("text-tower weights (so the head)")
    if recorded.get("classnames_sha256") != current.get("classnames_sha256"):
        differs.append(f"head class names ({recorded.get('n_classes', '?')} recorded, {current.get('n_classes', '?')} now)")
    if recorded.get("templates_sha256") != current.get("templates_sha256"):
        differs.append(f"head templates ({recorded.get('n_templates', '?')} recorded, {current.get('n_templates', '?')} now)")
    return ", ".join(differs) + " differ" if differs else None


def read_checkpoint_info(path: str | os.PathLike) -> dict:
    """Read the JSON metadata written by ``save_classifier``."""
    meta_path = Path(str(path) + ".json")
    if not meta_path.is_file():
        raise ModelLoadError(f"No metadata {meta_path} beside checkpoint {path}; it was not written by robust_core.")
    return json.loads(meta_path.read_text())


def load_classifier(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[ImageClassifier, dict]:
    """Rebuild an ``ImageClassifier`` from ``save_classifier`` output (architecture from its JSON)."""
    meta = read_checkpoint_info(path)
    model, _, _ = load_clip(meta["arch"], pretrained=None, device="cpu")
    state = load_state_dict(path)
    n_classes, dim = state["head.weight"].shape
    classifier = ImageClassifier(model.visual, ClassificationHead(torch.zeros(n_classes, dim)))
    classifier.load_state_dict(state)
    return classifier.to(device).eval(), meta
