import time

import pytest
import torch
import torch.nn.functional as F
from conftest import TINY_ARCH

from robust_core.models import (
    CheckpointInfo,
    ModelLoadError,
    build_classifier,
    build_zeroshot_head,
    load_classifier,
    load_clip,
    load_state_dict,
    save_classifier,
)


def test_random_init_roundtrip_through_safetensors(tmp_path, tiny_clip):
    from safetensors.torch import save_file

    model, preprocess, _ = tiny_clip
    path = tmp_path / "clip.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    torch.manual_seed(123)  # a different random init, overwritten by the checkpoint
    loaded, _, _ = load_clip(TINY_ARCH, checkpoint=path)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model.encode_image(x), loaded.encode_image(x))


def test_torch_checkpoint_needs_plain_state_dict(tmp_path, tiny_clip):
    model, _, _ = tiny_clip
    good = tmp_path / "clip.pt"
    torch.save({"state_dict": model.state_dict()}, good)
    assert set(load_state_dict(good)) == set(model.state_dict())
    bad = tmp_path / "module.pt"
    torch.save(torch.nn.Linear(2, 2), bad)  # a pickled module: refused by weights_only
    with pytest.raises(ModelLoadError, match="weights_only"):
        load_state_dict(bad)


def test_mismatched_checkpoint_is_refused(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "wrong.safetensors"
    save_file({"foo": torch.zeros(3)}, str(path))
    with pytest.raises(ModelLoadError, match="does not match architecture"):
        load_clip(TINY_ARCH, checkpoint=path)


def test_unknown_arch_and_tag():
    with pytest.raises(ModelLoadError, match="Unknown open_clip architecture"):
        load_clip("ViT-Nope-99")
    with pytest.raises(ModelLoadError, match="no pretrained tag"):
        load_clip(TINY_ARCH, pretrained="openai")


def test_offline_download_fails_fast_with_fix():
    start = time.time()
    with pytest.raises(ModelLoadError, match="--checkpoint"):
        load_clip("RN50", pretrained="openai", offline=True)
    assert time.time() - start < 30  # open_clip alone retries the hub for ~46 s


def test_zeroshot_head_matches_direct_computation(tiny_clip):
    model, _, tokenizer = tiny_clip
    classes = ["cat", "dog", "fish"]
    templates = ["a photo of a {c}.", "a drawing of a {c}."]
    head = build_zeroshot_head(model, tokenizer, classes, templates)
    with torch.no_grad():
        rows = []
        for c in classes:
            emb = model.encode_text(tokenizer([t.format(c=c) for t in templates]))
            emb = emb / emb.norm(dim=-1, keepdim=True)
            mean = emb.mean(0)
            rows.append(mean / mean.norm())
        expected = torch.stack(rows) * model.logit_scale.exp()
    assert torch.allclose(head.weight, expected, atol=1e-5)
    assert torch.count_nonzero(head.bias) == 0
    # the classifier normalises image features before the head
    clf = build_classifier(model, head).eval()
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        direct = F.normalize(model.encode_image(x), dim=-1) @ expected.T
        assert torch.allclose(clf(x), direct, atol=1e-4)


def test_classifier_checkpoint_roundtrip(tmp_path, tiny_clip):
    model, _, tokenizer = tiny_clip
    clf = build_classifier(model, build_zeroshot_head(model, tokenizer, ["a", "b"], ["{c}"])).eval()
    path = tmp_path / "zs.safetensors"
    digest = save_classifier(clf, path, CheckpointInfo(TINY_ARCH, None, "zeroshot", ["a", "b"], {}))
    loaded, meta = load_classifier(path)
    assert meta["sha256"] == digest and meta["classnames"] == ["a", "b"]
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(clf(x), loaded(x))
    assert not list(tmp_path.glob("*.tmp"))
