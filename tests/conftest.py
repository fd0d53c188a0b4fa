"""Shared fixtures: tiny random-init open_clip models and small generated image folders (no downloads)."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never touch the network

import numpy as np
import pytest
import torch

TINY_ARCH = "tiny-vit-test"  # robust_core/model_configs/tiny-vit-test.json: 32 px ViT, ~0.3M params


@pytest.fixture(scope="session")
def tiny_clip():
    from robust_core.models import load_clip

    torch.manual_seed(0)
    model, preprocess, tokenizer = load_clip(TINY_ARCH)
    return model, preprocess, tokenizer


def ft_and_lp_endpoints():
    """A seeded tiny zero-shot classifier (3 classes) and two fine-tuned endpoints: every weight moved
    (end-to-end) and only the head moved (linear). Returns ``(zs, preprocess, theta0, theta_e2e, theta_lin)``."""
    from robust_core.models import build_classifier, build_zeroshot_head, load_clip

    torch.manual_seed(0)
    model, preprocess, tokenizer = load_clip(TINY_ARCH)
    zs = build_classifier(model, build_zeroshot_head(model, tokenizer, ["cat", "dog", "fish"], ["a {c}."])).eval()
    theta0 = {k: v.clone() for k, v in zs.state_dict().items()}
    theta_e2e = {k: v + 0.05 * torch.randn_like(v) for k, v in theta0.items()}
    theta_lin = dict(theta0, **{"head.weight": theta0["head.weight"] + torch.randn(3, 32), "head.bias": torch.randn(3)})
    return zs, preprocess, theta0, theta_e2e, theta_lin


def make_image_folder(root, classes=("cat", "dog", "fish"), per_class=6, size=40, seed=0, fmt="JPEG"):
    """Write a small ImageFolder of random-texture images whose colour depends on the class."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for k, name in enumerate(classes):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            base = np.zeros((size, size, 3))
            base[..., k % 3] = 180
            img = np.clip(base + rng.normal(0, 40, base.shape), 0, 255).astype(np.uint8)
            ext = "jpg" if fmt == "JPEG" else "png"
            Image.fromarray(img).save(folder / f"{i:03d}.{ext}", format=fmt)
    return root


@pytest.fixture()
def image_folder(tmp_path):
    return make_image_folder(tmp_path / "train")


def clip_workspace(root, splits=("test", "shift")):
    """A folder with a random-init tiny CLIP saved as ``clip.safetensors`` and generated ImageFolders
    (``train``, ``test``, ``val``: 3 classes; ``shift``: 2 of them). Returns ``(model, tokenizer)``."""
    from safetensors.torch import save_file

    from robust_core.models import load_clip

    torch.manual_seed(0)
    model, _, tokenizer = load_clip(TINY_ARCH)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(root / "clip.safetensors"))
    specs = {"train": (8, 0), "test": (5, 1), "val": (4, 2)}
    for split in splits:
        if split == "shift":
            make_image_folder(root / "shift", classes=("dog", "fish"), per_class=5, seed=3)
        else:
            per_class, seed = specs[split]
            make_image_folder(root / split, per_class=per_class, seed=seed)
    return model, tokenizer
