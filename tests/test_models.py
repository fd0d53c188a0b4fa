import os
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
    state_sha256,
    zeroshot_identity,
    zeroshot_mismatch,
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


def test_offline_works_after_the_hub_was_imported(monkeypatch, tmp_path):
    # huggingface_hub read HF_HUB_OFFLINE when it was imported; load_clip(offline=True) must still be offline
    import huggingface_hub.constants as hub_constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path))  # nothing cached
    start = time.time()
    with pytest.raises(ModelLoadError, match="offline"):
        load_clip("RN50", pretrained="openai", offline=True)
    assert time.time() - start < 5
    assert hub_constants.HF_HUB_OFFLINE is False and "HF_HUB_OFFLINE" not in os.environ  # restored


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


def test_state_sha256_is_the_weights_not_the_file(tmp_path, tiny_clip):
    from safetensors.torch import save_file

    model, _, _ = tiny_clip
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(tmp_path / "w.safetensors"))
    torch.save(dict(reversed(list(state.items()))), tmp_path / "w.pt")  # other format, other key order
    digest = state_sha256(state)
    assert state_sha256(load_state_dict(tmp_path / "w.safetensors")) == digest == state_sha256(load_state_dict(tmp_path / "w.pt"))
    key = next(iter(state))
    nudged = dict(state, **{key: state[key].clone()})
    nudged[key].view(-1)[0] = torch.nextafter(nudged[key].view(-1)[0], torch.tensor(float("inf")))  # one ulp
    assert state_sha256(nudged) != digest
    assert state_sha256({**state, key: state[key].double()}) != digest  # dtype is part of the identity
    assert state_sha256({("x" + k): v for k, v in state.items()}) != digest  # so are the names


def test_zeroshot_identity_says_what_differs(tiny_clip):
    model, _, tokenizer = tiny_clip
    classes, templates = ["cat", "dog"], ["a photo of a {c}."]
    zeroshot = build_classifier(model, build_zeroshot_head(model, tokenizer, classes, templates))
    identity = zeroshot_identity(model, zeroshot, classes, templates)
    assert zeroshot_identity(model, zeroshot, classes, templates) == identity
    assert zeroshot_mismatch(identity, identity) is None
    other = ["a drawing of a {c}."]
    changed = zeroshot_identity(model, build_classifier(model, build_zeroshot_head(model, tokenizer, classes, other)), classes, other)
    assert zeroshot_mismatch(identity, changed) == "head templates (1 recorded, 1 now) differ"
    swapped = classes[::-1]
    changed = zeroshot_identity(
        model, build_classifier(model, build_zeroshot_head(model, tokenizer, swapped, templates)), swapped, templates
    )
    assert zeroshot_mismatch(identity, changed) == "head class names (2 recorded, 2 now) differ"
    # same inputs, head bits differing in the last place (another CPU's summation order): the same start
    noisy = dict(identity, head_sha256="0" * 64, weights_sha256="1" * 64)
    assert zeroshot_mismatch(identity, noisy) is None
    assert zeroshot_mismatch(identity, dict(noisy, image_encoder_sha256="2" * 64)) == "image-tower weights differ"
