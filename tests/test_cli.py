"""The CLI end to end on a tiny generated ImageFolder of JPEGs (random-init model, no downloads)."""

import json

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
    assert main(eval_args) == 0
    capsys.readouterr()
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
            f"ft={w / 'run' / 'ft.safetensors'}",
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
    for sub in ("finetune", "eval", "info", "export", "demo", "datasets"):
        assert sub in out
