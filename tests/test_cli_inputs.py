"""Bad inputs to the CLI that used to give tracebacks: a corrupt or truncated JPEG, a checkpoint of another
architecture. Each is one `error:` line naming the file and the fix, exit 2; nothing finished is lost."""

import shutil

import numpy as np
import pytest
import torch
from conftest import TINY_ARCH, clip_workspace

from robust_core.cli import main
from robust_core.store import open_store


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    from robust_core.models import CheckpointInfo, build_classifier, build_zeroshot_head, save_classifier

    w = tmp_path_factory.mktemp("inputs")
    model, tokenizer = clip_workspace(w, ("test",))
    zs = build_classifier(model, build_zeroshot_head(model, tokenizer, ["cat", "dog", "fish"], ["a photo of a {c}."]))
    for p in zs.parameters():
        p.data.add_(0.05 * torch.randn_like(p))
    save_classifier(zs, w / "ft.safetensors", CheckpointInfo(TINY_ARCH, None, "ft", ["cat", "dog", "fish"], {}))
    return w


def _eval(w, data, out, workers="0", checkpoint=None, finetuned=None):
    args = ["eval", "--arch", TINY_ARCH, "--checkpoint", str(checkpoint or w / "clip.safetensors"), "--workers", workers]
    args += ["--templates", "simple", "--finetuned", f"ft={finetuned or w / 'ft.safetensors'}", "--id", f"toy={data}"]
    return main([*args, "--alphas", "0,0.5,1", "--out", str(out), "--batch-size", "3", "--chunk-batches", "1", "--device", "cpu"])


def _one_error(capsys) -> str:
    err = capsys.readouterr().err
    lines = [line for line in err.replace("\r", "\n").splitlines() if line.strip() and "%|" not in line and not line.startswith("warning:")]
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
@pytest.mark.parametrize("workers", ["0", "2"])
def test_a_corrupt_jpeg_is_one_line_naming_it_and_the_run_resumes_after_the_fix(workspace, tmp_path, capsys, damage, workers):
    w = workspace
    data = tmp_path / "data"
    shutil.copytree(w / "test", data)
    victim = sorted((data / "fish").iterdir())[-1]  # the last class: earlier chunks are committed first
    original = victim.read_bytes()
    victim.write_bytes(b"not a jpeg at all" * 10 if damage == "garbage" else original[: len(original) // 3])
    assert _eval(w, data, tmp_path / "store", workers) == 2
    line = _one_error(capsys)
    assert victim.name in line and "Replace or remove" in line
    progress = list((tmp_path / "store" / "_parts").rglob("progress.json"))
    assert progress, "the examples evaluated before the bad file were thrown away"
    victim.write_bytes(original)
    assert _eval(w, data, tmp_path / "store", workers) == 0
    assert _eval(w, w / "test", tmp_path / "clean", workers) == 0
    a, b = open_store(tmp_path / "store"), open_store(tmp_path / "clean")
    np.testing.assert_array_equal(np.asarray(a.logits("ft", "toy")), np.asarray(b.logits("ft", "toy")))
    assert not (tmp_path / "store" / "_parts").exists()


def test_a_checkpoint_of_another_architecture_is_one_line(workspace, tmp_path, capsys):
    from safetensors.torch import save_file

    from robust_core.models import load_clip

    w = workspace
    other, _, _ = load_clip("tiny-rn16-demo")
    save_file({k: v.contiguous() for k, v in other.state_dict().items()}, str(tmp_path / "rn.safetensors"))
    assert _eval(w, w / "test", tmp_path / "a", checkpoint=tmp_path / "rn.safetensors") == 2
    line = _one_error(capsys)
    assert "rn.safetensors" in line and "--arch" in line
    # a fine-tuned classifier of another architecture: refused before any evaluation
    from robust_core.models import CheckpointInfo, build_classifier, build_zeroshot_head, save_classifier

    _, _, tok = load_clip("tiny-rn16-demo")
    rn = build_classifier(other, build_zeroshot_head(other, tok, ["cat", "dog", "fish"], ["a photo of a {c}."]))
    save_classifier(rn, tmp_path / "rn-ft.safetensors", CheckpointInfo("tiny-rn16-demo", None, "ft", ["cat", "dog", "fish"], {}))
    assert _eval(w, w / "test", tmp_path / "b", finetuned=tmp_path / "rn-ft.safetensors") == 2
    line = _one_error(capsys)
    assert "rn-ft.safetensors" in line
    assert not (tmp_path / "b" / "manifest.json").exists()
