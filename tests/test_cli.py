"""The CLI end to end on a tiny generated ImageFolder of JPEGs (random-init model, no downloads)."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import TINY_ARCH, clip_workspace

from robust_core.cli import main


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    clip_workspace(root, ("train", "test", "val", "shift"))
    return root


def test_finetune_eval_info_export(workspace, capsys):
    w = workspace
    common = ["--arch", TINY_ARCH, "--checkpoint", str(w / "clip.safetensors"), "--workers", "0", "--templates", "simple"]
    for method in ("ft", "lp"):
        rc = main(
            [
                "finetune",
                *common,
                "--method",
                method,
                "--train",
                f"toy={w / 'train'}",
                "--out",
                str(w / "run"),
                "--epochs",
                "1",
                "--batch-size",
                "8",
                "--warmup",
                "2",
            ]
        )
        assert rc == 0
        assert (w / "run" / f"{method}.safetensors").exists() and (w / "run" / f"{method}.safetensors.json").exists()
    assert not (w / "run" / "lp.resume.pt").exists()
    assert (w / "run" / "ft.resume.pt").exists()  # resumable checkpoint of the last epoch

    eval_args = [
        "eval",
        *common,
        "--finetuned",
        f"ft={w / 'run' / 'ft.safetensors'}",
        "--finetuned",
        f"lp={w / 'run' / 'lp.safetensors'}",
        "--id",
        f"toy={w / 'test'}",
        "--id-val",
        f"toy-val={w / 'val'}",
        "--shift",
        f"shift={w / 'shift'}",
        "--alphas",
        "0:1:0.25",
        "--out",
        str(w / "store"),
        "--batch-size",
        "8",
    ]
    capsys.readouterr()
    assert main(eval_args) == 0
    assert "cannot verify" not in capsys.readouterr().err  # both files record their zero-shot start, and it matches
    assert main(["info", str(w / "store"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["id"] == "toy" and info["id_val"] == "toy-val" and info["shifts"] == ["shift"]
    assert set(info["methods"]) == {"ft", "lp"}
    assert info["methods"]["ft"]["alphas"] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert len(info["methods"]["lp"]["accuracy"]["shift"]) == 5
    assert info["methods"]["ft"]["accuracy"]["toy"][0] == info["methods"]["lp"]["accuracy"]["toy"][0]  # alpha 0 = zero-shot
    assert info["baselines"] == {}
    manifest = json.loads((w / "store" / "manifest.json").read_text())
    assert manifest["methods"]["lp"]["linear"] is True and manifest["methods"]["ft"]["linear"] is False
    assert manifest["datasets"]["shift"]["classnames"] == ["dog", "fish"]

    assert main(["export", str(w / "store"), "--method", "ft", "--alpha", "0.5", "--out", str(w / "wise.safetensors")]) == 0
    meta = json.loads((w / "wise.json").read_text())
    assert meta["metrics"]["grid_alpha"] == 0.5 and "toy" in meta["metrics"]["datasets"]
    # bad export arguments: one line, exit 2, nothing written
    for alpha, out, match in (("nan", "x.safetensors", "finite"), ("5", "x.safetensors", "[0, 1]"), ("0.5", ".", "directory")):
        capsys.readouterr()
        assert main(["export", str(w / "store"), "--method", "ft", "--alpha", alpha, "--out", str(w / out)]) == 2
        err = capsys.readouterr().err
        assert match in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (w / "x.safetensors").exists()
    from safetensors.torch import load_file

    from robust_core.models import load_state_dict
    from robust_core.wise import interpolate

    expected = interpolate(
        load_state_dict(w / "store" / "checkpoints" / "zeroshot.safetensors"), load_state_dict(w / "run" / "ft.safetensors"), 0.5
    )
    got = load_file(str(w / "wise.safetensors"))
    assert all(torch.allclose(got[k].float(), expected[k].float()) for k in expected)

    # re-running the same eval resumes (nothing to do) and gives the same store
    before = (w / "store" / "summary.parquet").read_bytes()
    assert main(eval_args) == 0
    import pandas as pd

    assert pd.read_parquet(w / "store" / "summary.parquet").equals(pd.read_parquet(__import__("io").BytesIO(before)))


def test_cli_errors_are_messages_not_tracebacks(workspace, capsys):
    w = workspace
    base = ["eval", "--arch", TINY_ARCH, "--checkpoint", str(w / "clip.safetensors")]
    rc = main(
        [
            *base,
            "--finetuned",
            f"ft={w / 'nope.safetensors'}",
            "--id",
            f"toy={w / 'test'}",
            "--out",
            str(w / "bad"),
        ]
    )
    assert rc == 2 and "not found" in capsys.readouterr().err
    rc = main(
        [
            *base,
            "--finetuned",
            f"ft={w / 'clip.safetensors'}",  # any existing file: the missing folder is reported first
            "--id",
            f"toy={w / 'missing-folder'}",
            "--out",
            str(w / "bad2"),
        ]
    )
    assert rc == 2 and "does not exist" in capsys.readouterr().err
    rc = main(["info", str(w / "nowhere")])
    assert rc == 2 and "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    assert "example" in capsys.readouterr().out


def test_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for sub in ("finetune", "eval", "info", "summarize", "export", "demo", "datasets"):
        assert sub in out


def _finetune_lp(w, out, checkpoint="clip.safetensors", templates="simple"):
    args = ["finetune", "--arch", TINY_ARCH, "--checkpoint", str(w / checkpoint), "--workers", "0", "--templates", templates]
    assert main([*args, "--method", "lp", "--train", f"toy={w / 'train'}", "--out", str(out)]) == 0
    return out / "lp.safetensors"


def test_eval_refuses_a_finetuned_file_from_another_zeroshot_start(workspace, tmp_path, capsys):
    w = workspace
    lp = _finetune_lp(w, tmp_path / "run")
    meta = json.loads(Path(str(lp) + ".json").read_text())
    zeroshot_meta = json.loads((tmp_path / "run" / "zeroshot.safetensors.json").read_text())
    assert meta["zeroshot_identity"] == zeroshot_meta["zeroshot_identity"]
    assert meta["zeroshot_identity"]["source"]["templates"] == "simple"

    def eval_with(*extra):
        capsys.readouterr()
        common = ["eval", "--arch", TINY_ARCH, "--workers", "0", "--finetuned", f"lp={lp}", "--id", f"toy={w / 'test'}"]
        rc = main([*common, "--out", str(tmp_path / "store"), *extra])
        return rc, capsys.readouterr().err

    # same network, other templates: the head differs
    rc, err = eval_with("--checkpoint", str(w / "clip.safetensors"), "--templates", "cifar")
    assert rc == 2 and err.count("\n") == 1 and str(lp) in err
    assert "head templates (1 recorded, 18 now) differ" in err and "image-tower" not in err
    assert "--templates simple" in err and "re-run finetune" in err
    # another random-init start (both towers differ)
    torch.manual_seed(1)
    from safetensors.torch import save_file

    from robust_core.models import load_clip

    other, _, _ = load_clip(TINY_ARCH)
    save_file({k: v.contiguous() for k, v in other.state_dict().items()}, str(tmp_path / "other.safetensors"))
    rc, err = eval_with("--checkpoint", str(tmp_path / "other.safetensors"), "--templates", "simple")
    assert rc == 2 and err.count("\n") == 1 and "image-tower weights, text-tower weights (so the head) differ" in err
    assert f"--checkpoint {w / 'clip.safetensors'}" in err
    assert not (tmp_path / "store").exists()  # refused before any work


def test_unrecorded_zeroshot_start_is_accepted_with_a_warning(tmp_path, capsys):
    from robust_core.cli import _check_zeroshot_start

    identity = {"weights_sha256": "a"}
    _check_zeroshot_start(str(tmp_path / "third-party.safetensors"), {}, identity)
    assert "no third-party.safetensors.json beside it" in capsys.readouterr().err
    _check_zeroshot_start(str(tmp_path / "old.safetensors"), {"arch": TINY_ARCH, "extra": {}}, identity)
    err = capsys.readouterr().err
    assert "no zero-shot record" in err and err.startswith("warning:") and err.count("\n") == 1
    _check_zeroshot_start(str(tmp_path / "old.safetensors"), {}, identity, warn=False)  # ranks > 0 stay quiet
    assert capsys.readouterr().err == ""
    _check_zeroshot_start(str(tmp_path / "same.safetensors"), {"zeroshot_identity": identity}, identity)
    assert capsys.readouterr().err == ""


def _run_cli(args, env_extra=None, timeout=120):
    """``python -m robust_core ARGS`` in a fresh process without HF_HUB_OFFLINE (so flags are what is tested)."""
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env.update(env_extra or {})
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "robust_core", *args],
        cwd=Path(__file__).parent.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return done, time.monotonic() - start


def test_offline_flag_fails_at_once(tmp_path):
    # huggingface_hub reads HF_HUB_OFFLINE at import: --offline must set it before open_clip is imported.
    # Without it, this machine (no network) spends ~57 s in hub retries; with it, the time is the imports.
    (tmp_path / "train" / "a").mkdir(parents=True)
    args = ["finetune", "--arch", "RN50", "--pretrained", "openai", "--offline", "--method", "ft"]
    done, seconds = _run_cli(
        [*args, "--train", f"toy={tmp_path / 'train'}", "--out", str(tmp_path / "out")], {"HF_HOME": str(tmp_path / "hf")}
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: Could not load pretrained weights RN50/openai (offline")
    assert "--checkpoint PATH.safetensors" in done.stderr
    if seconds >= 10:  # a loaded machine: allow the imports' own time (hub retries would add ~50 s on top)
        start = time.monotonic()
        subprocess.run([sys.executable, "-c", "import robust_core.finetune, open_clip"], cwd=Path(__file__).parent.parent, check=True)
        assert seconds < time.monotonic() - start + 5, seconds
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["finetune", "--checkpoint", "{tmp}/missing.safetensors", "--method", "ft", "--train", "toy={tmp}", "--out", "{tmp}/o"],
            "--checkpoint",
        ),
        (
            [
                "eval",
                "--pretrained",
                "{tmp}/missing.safetensors",
                "--finetuned",
                "ft={tmp}/ft.safetensors",
                "--id",
                "toy={tmp}",
                "--out",
                "{tmp}/o",
            ],
            "--pretrained",
        ),
        (["eval", "--finetuned", "ft={tmp}/missing.safetensors", "--id", "toy={tmp}", "--out", "{tmp}/o"], "--finetuned ft: file"),
        (["eval", "--finetuned", "ft.safetensors", "--id", "toy={tmp}", "--out", "{tmp}/o"], "must be METHOD=PATH"),
        (["eval", "--finetuned", "ft={tmp}/ft.safetensors", "--id", "toy={tmp}/nowhere", "--out", "{tmp}/o"], "does not exist"),
        (["finetune", "--templates", "nope", "--method", "ft", "--train", "toy={tmp}", "--out", "{tmp}/o"], "Unknown --templates"),
    ],
)
def test_missing_local_inputs_fail_before_torch_is_imported(tmp_path, args, message):
    (tmp_path / "ft.safetensors").write_bytes(b"")
    argv = [args[0], "--arch", TINY_ARCH, *[a.format(tmp=tmp_path) for a in args[1:]]]
    code = f"import sys; from robust_core.cli import main; rc = main({argv!r}); print('torch' in sys.modules); sys.exit(rc)"
    done = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parent.parent, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stdout.strip() == "False", (done.stdout, done.stderr)
    assert done.stderr.count("\n") == 1 and message in done.stderr
