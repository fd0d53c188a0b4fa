"""Fine-tuning runs for ``tests/test_distributed_finetune.py``: a tiny random-init CLIP on tiny tensor sets.

Under torchrun every rank runs each entry of ``RUNS`` and writes ``OUT/<run>.rank<r>.safetensors`` and
``.json`` (history, images this rank encoded for LP features); imported, ``run(name)`` is the 1-rank
reference::

    python -m torch.distributed.run --standalone --nproc_per_node 2 tests/dist_finetune_worker.py OUT
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from torch.utils.data import TensorDataset

TINY_ARCH = "tiny-vit-test"
CLASSNAMES = ["cat", "dog", "fish"]
RUNS = {
    # several global batches, a short tail dropped, two epochs, augmentation drawn per global batch
    "ft": {"method": "ft", "n": 27, "batch_size": 8, "epochs": 2, "augment": True},
    # one global batch of 7 split 4 + 3 across 2 ranks: the loss scaling must still give the global mean
    "ft-uneven": {"method": "ft", "n": 7, "batch_size": 8, "epochs": 2, "augment": False},
    # features of 21 images, sharded 11 + 10 and gathered back in order
    "lp": {"method": "lp", "n": 21, "batch_size": 8, "epochs": 1, "augment": False},
}


def run(name: str) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict, int]:
    """Fine-tune run ``name``; returns (theta_zeroshot, theta_finetuned, info, images this process encoded for LP)."""
    from robust_core.finetune import FinetuneConfig, finetune
    from robust_core.models import build_classifier, build_zeroshot_head, load_clip

    spec = RUNS[name]
    torch.manual_seed(0)
    model, _, tokenizer = load_clip(TINY_ARCH)
    templates = ["a photo of a {c}."]
    zeroshot = build_classifier(model, build_zeroshot_head(model, tokenizer, CLASSNAMES, templates)).eval()
    theta_zeroshot = {k: v.detach().clone() for k, v in zeroshot.state_dict().items()}
    encoded = [0]
    hook = zeroshot.image_encoder.register_forward_hook(lambda module, inputs, output: encoded.__setitem__(0, encoded[0] + len(output)))
    generator = torch.Generator().manual_seed(1)
    images = torch.randn(spec["n"], 3, 32, 32, generator=generator)
    labels = torch.arange(spec["n"]) % len(CLASSNAMES)
    config = FinetuneConfig(
        method=spec["method"],
        epochs=spec["epochs"],
        lr=1e-3,
        batch_size=spec["batch_size"],
        warmup_steps=1,
        augment=spec["augment"],
        lp_steps=30,
        device="cpu",
        num_workers=0,
        progress=False,
    )
    classifier, info = finetune(model, tokenizer, zeroshot, TensorDataset(images, labels), CLASSNAMES, templates, config)
    hook.remove()
    theta_finetuned = {k: v.detach().cpu().clone().contiguous() for k, v in classifier.state_dict().items()}
    return theta_zeroshot, theta_finetuned, info, encoded[0] if spec["method"] in ("lp", "lpft") else 0


def main(out: Path) -> None:
    from safetensors.torch import save_file

    from robust_core.runtime import init_distributed

    init_distributed()
    rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
    for name in RUNS:
        _, theta_finetuned, info, encoded = run(name)
        save_file(theta_finetuned, str(out / f"{name}.rank{rank}.safetensors"))
        (out / f"{name}.rank{rank}.json").write_text(json.dumps({"history": info.get("history", []), "encoded": encoded}))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
