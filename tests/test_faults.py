"""Fault injection: SIGKILL and ENOSPC at every kind of write of `python -m robust_core eval`.

Each run is a real subprocess that kills itself (``ROBUST_FAULT_AT=N:kind``, see
``robust_core.store._FaultPoints``) at the N-th atomic write: between part writes, between a
temporary file and its rename, while consolidating arrays, during the summary and the manifest write.
After each fault, ``open_store`` must refuse the folder or return a complete store, and re-running the
same command must give a store array-equal to an uninterrupted one.
"""

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_ARCH, clip_workspace

from robust_core.store import StoreError, open_store

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    from robust_core.models import CheckpointInfo, build_classifier, build_zeroshot_head, save_classifier

    w = tmp_path_factory.mktemp("faults")
    model, tokenizer = clip_workspace(w)
    zs = build_classifier(model, build_zeroshot_head(model, tokenizer, ["cat", "dog", "fish"], ["a photo of a {c}."]))
    for p in zs.parameters():
        p.data.add_(0.05 * torch.randn_like(p))
    save_classifier(zs, w / "ft.safetensors", CheckpointInfo(TINY_ARCH, None, "ft", ["cat", "dog", "fish"], {}))

    def run(out, fault=None, extra=()):
        env = {k: v for k, v in os.environ.items() if k != "ROBUST_FAULT_AT"}
        env.update(HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT))
        if fault:
            env["ROBUST_FAULT_AT"] = fault
        cmd = [sys.executable, "-m", "robust_core", "eval", "--arch", TINY_ARCH, "--checkpoint", str(w / "clip.safetensors")]
        cmd += ["--workers", "0", "--templates", "simple", "--finetuned", f"ft={w / 'ft.safetensors'}", "--id", f"toy={w / 'test'}"]
        cmd += ["--shift", f"shift={w / 'shift'}", "--alphas", "0:1:0.5", "--out", str(out), "--batch-size", "8", "--device", "cpu"]
        cmd += list(extra)
        return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)

    reference = w / "reference"
    done = run(reference)
    assert done.returncode == 0, done.stderr
    return w, run, open_store(reference)


def _assert_equal(a, b):
    assert a.methods == b.methods and a.datasets == b.datasets
    for ds in a.datasets:
        np.testing.assert_array_equal(np.asarray(a.labels(ds)), np.asarray(b.labels(ds)))
        for m in a.methods:
            np.testing.assert_array_equal(np.asarray(a.logits(m, ds)), np.asarray(b.logits(m, ds)))
    assert a.summary()[["method", "kind", "alpha", "dataset", "correct"]].equals(
        b.summary()[["method", "kind", "alpha", "dataset", "correct"]]
    )


POINTS = [f"{n}:{kind}" for n, kind in [(1, "kill"), (2, "kill-before-replace"), (3, "kill"), (5, "kill-before-replace"), (7, "kill"),
          (9, "kill-before-replace"), (11, "kill"), (13, "kill-before-replace"), (15, "kill"), (17, "kill-before-replace"),
          (19, "kill"), (21, "kill-before-replace"), (4, "enospc"), (16, "enospc")]]  # fmt: skip


KILLED: list[str] = []


@pytest.mark.slow
@pytest.mark.parametrize("fault", POINTS)
def test_fault_then_resume_gives_the_uninterrupted_store(job, tmp_path, fault):
    w, run, reference = job
    out = tmp_path / "store"
    faulted = run(out, fault)
    if fault.endswith("enospc"):
        assert faulted.returncode == 2, faulted.stderr
        errors = [line for line in faulted.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "No space left" in errors[0] and "Traceback" not in faulted.stderr
    else:
        assert faulted.returncode in (-signal.SIGKILL, 0), faulted.stderr  # 0: N was past this run's last write
        if faulted.returncode == -signal.SIGKILL:
            KILLED.append(fault)
    if faulted.returncode != 0:
        try:  # never a half store: either refused, or complete and equal to the reference
            _assert_equal(open_store(out), reference)
        except StoreError:
            pass
    resumed = run(out)
    assert resumed.returncode == 0, resumed.stderr
    _assert_equal(open_store(out), reference)
    assert not list(out.rglob("*.tmp")) or all(p.parent.name != out.name for p in out.rglob("*.tmp"))


@pytest.mark.slow
def test_the_faults_really_happened():
    """The kill points above must land inside the run (at least 10 real SIGKILLs), not after its end."""
    assert len(KILLED) >= 10, KILLED


@pytest.mark.slow
def test_force_rebuild_killed_midway_keeps_the_old_store_then_replaces_it(job, tmp_path):
    w, run, reference = job
    out = tmp_path / "store"
    assert run(out).returncode == 0
    manifest = (out / "manifest.json").read_bytes()
    killed = run(out, "6:kill", extra=["--force"])
    assert killed.returncode == -signal.SIGKILL
    assert (out / "manifest.json").read_bytes() == manifest  # the old store is untouched and complete
    _assert_equal(open_store(out), reference)
    staging = out.parent / f".{out.name}.staging"
    assert staging.exists()
    rebuilt = run(out, extra=["--force"])  # resumes the staging folder, then swaps it in
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert not staging.exists() and (out / "manifest.json").read_bytes() != manifest
    _assert_equal(open_store(out), reference)
    assert (out / "checkpoints" / "zeroshot.safetensors").exists()


def _demo(out, fault=None):
    env = {k: v for k, v in os.environ.items() if k != "ROBUST_FAULT_AT"}
    env.update(HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT))
    if fault:
        env["ROBUST_FAULT_AT"] = fault
    cmd = [sys.executable, "-m", "robust_core", "demo", "--miniature", "--out", str(out), "--device", "cpu"]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_demo_killed_while_evaluating_resumes_from_its_caches_to_the_uninterrupted_store(tmp_path):
    reference = _demo(tmp_path / "reference")
    assert reference.returncode == 0, reference.stderr[-2000:]
    out = tmp_path / "demo"
    killed = _demo(out, "40:kill-before-replace")  # past the rendered data, the CLIP and the fine-tunes: inside eval
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    with pytest.raises(StoreError):
        open_store(out)
    resumed = _demo(out)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "reusing" in resumed.stdout + resumed.stderr  # the caches written before the kill were used
    _assert_equal(open_store(out), open_store(tmp_path / "reference"))


@pytest.mark.slow
def test_a_really_full_disk_gives_one_line_then_resumes_once_space_is_freed(job, tmp_path):
    """A small tmpfs (needs root): eval runs out of space for real, says so in one line, and resumes."""
    w, run, reference = job
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (the injected-ENOSPC cases above cover the rest)")
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    need = sum(p.stat().st_size for p in reference.path.rglob("*") if p.is_file())
    size = max(4096, (need // 2) // 4096 * 4096)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        out = mnt / "store"
        full = run(out)
        assert full.returncode == 2, full.stderr[-2000:]
        errors = [line for line in full.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "No space left" in errors[0] and "Traceback" not in full.stderr
        with pytest.raises(StoreError):
            open_store(out)
        subprocess.run(["mount", "-o", f"remount,size={need * 4 + 2**20}", str(mnt)], check=True)
        resumed = run(out)
        assert resumed.returncode == 0, resumed.stderr[-2000:]
        _assert_equal(open_store(out), reference)
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["ft", "flyp"])
def test_finetune_killed_after_an_epoch_resumes_to_the_uninterrupted_weights(tmp_path, method):
    """SIGKILL right after epoch 2's resume file is published; the re-run finishes epoch 3 from it, with the
    saved RNG stream (augmentation for FT, caption draws for FLYP), to exactly the uninterrupted weights."""
    from robust_core.models import load_state_dict

    clip_workspace(tmp_path, ("train",))

    def finetune(out, fault=None):
        env = {k: v for k, v in os.environ.items() if k != "ROBUST_FAULT_AT"}
        env.update(HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
        if fault:
            env["ROBUST_FAULT_AT"] = fault
        cmd = [sys.executable, "-m", "robust_core", "finetune", "--arch", TINY_ARCH, "--checkpoint", str(tmp_path / "clip.safetensors")]
        cmd += ["--workers", "0", "--templates", "simple", "--method", method, "--train", f"toy={tmp_path / 'train'}", "--out", str(out)]
        cmd += ["--epochs", "3", "--batch-size", "8", "--warmup", "2", "--device", "cpu"] + (["--augment"] if method == "ft" else [])
        return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)

    assert finetune(tmp_path / "ref").returncode == 0
    # publishes: zeroshot.safetensors (1) and its JSON (2), then one resume file per epoch (3, 4, 5)
    killed = finetune(tmp_path / "run", "4:kill")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert (tmp_path / "run" / f"{method}.resume.pt").exists() and not (tmp_path / "run" / f"{method}.safetensors").exists()
    resumed = finetune(tmp_path / "run")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a, b = load_state_dict(tmp_path / "ref" / f"{method}.safetensors"), load_state_dict(tmp_path / "run" / f"{method}.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
