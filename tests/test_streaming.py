"""Streamed evaluation: resume inside a set, example-level sharding under torchrun, a full disk up front."""

import dataclasses
import errno
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_ARCH, clip_workspace, ft_and_lp_endpoints, make_image_folder

from robust_core.datasets import resolve
from robust_core.evaluate import EvalConfig, MethodSpec, evaluate_alpha_grid
from robust_core.models import build_classifier, build_zeroshot_head, load_clip
from robust_core.pipeline import build_store
from robust_core.runtime import shard_bounds
from robust_core.store import StoreError, StoreWriter, open_store

ROOT = Path(__file__).resolve().parent.parent


class Counting(torch.utils.data.Dataset):
    """Counts decoded examples; raises KeyboardInterrupt (a kill) when example ``stop_at`` is requested."""

    def __init__(self, base, stop_at=None):
        self.base, self.stop_at, self.seen = base, stop_at, []

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        if i == self.stop_at:
            raise KeyboardInterrupt(f"killed at example {i}")
        self.seen.append(i)
        return self.base[i]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("stream")
    zs, preprocess, theta0, theta1, lin = ft_and_lp_endpoints()
    methods = [MethodSpec("ft", theta0, theta1, [0.0, 0.5, 1.0]), MethodSpec("lp", theta0, lin, [0.0, 0.5, 1.0], linear=True)]
    evalset = resolve("id", root=make_image_folder(tmp / "id", per_class=10), transform=preprocess)
    return zs, methods, evalset


CONFIG = EvalConfig(batch_size=3, chunk_batches=1, num_workers=0, progress=False, feature_rows=8, amp="fp32")


def _store(out, zs, methods, evalset):
    return build_store(out, zs, methods, [evalset], "id", None, [], provenance={}, eval_config=CONFIG, logits_dtype="float32")


def test_a_kill_at_60_percent_of_a_set_resumes_there_and_equals_an_uninterrupted_run(setup, tmp_path):
    zs, methods, evalset = setup
    reference = _store(tmp_path / "ref", zs, methods, evalset)
    n = len(evalset.dataset)
    killed = Counting(evalset.dataset, stop_at=int(0.6 * n))
    with pytest.raises(KeyboardInterrupt):
        _store(tmp_path / "run", zs, methods, dataclasses.replace(evalset, dataset=killed))
    with pytest.raises(StoreError, match="interrupted"):
        open_store(tmp_path / "run")
    resumed_data = Counting(evalset.dataset)
    resumed = _store(tmp_path / "run", zs, methods, dataclasses.replace(evalset, dataset=resumed_data))
    assert resumed_data.seen == list(range(int(0.6 * n), n))  # only the last 40% was decoded again
    for m in ("ft", "lp"):
        np.testing.assert_array_equal(np.asarray(resumed.logits(m, "id")), np.asarray(reference.logits(m, "id")))
    np.testing.assert_array_equal(np.asarray(resumed.labels("id")), np.asarray(reference.labels("id")))
    np.testing.assert_array_equal(np.asarray(resumed.features("ft", "id")[0]), np.asarray(reference.features("ft", "id")[0]))
    assert not (tmp_path / "run" / "_parts").exists()


def test_slices_written_as_if_by_three_ranks_assemble_to_the_single_process_store(setup, tmp_path, monkeypatch):
    """The rank logic without processes: each 'rank' writes only its slice; rank 0 assembles."""
    import robust_core.evaluate as ev

    zs, methods, evalset = setup
    single = _store(tmp_path / "single", zs, methods, evalset)
    writer = StoreWriter(tmp_path / "sharded", {"sharded": True}, logits_dtype="float32")
    for rank in range(3):
        monkeypatch.setattr(ev, "rank_world", lambda rank=rank: (rank, 3))
        evaluate_alpha_grid(zs, methods, [evalset], writer, CONFIG)
    bounds = shard_bounds(len(evalset.dataset), 3)
    assert [b - a for a, b in bounds] == [10, 10, 10] and all(writer.shard_done("id", a, b) for a, b in bounds)
    writer.assemble("id", bounds)
    for m in ("ft", "lp"):
        got = np.load(tmp_path / "sharded" / "logits" / m / "id.npy")
        np.testing.assert_allclose(got, np.asarray(single.logits(m, "id")), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(np.load(tmp_path / "sharded" / "labels" / "id.npy"), np.asarray(single.labels("id")))
    feats = np.load(tmp_path / "sharded" / "features" / "ft" / "id.npy")
    np.testing.assert_allclose(feats, np.asarray(single.features("ft", "id")[0]), rtol=1e-3, atol=1e-3)


def test_shard_bounds_cover_every_example_once_even_when_uneven():
    for n, world in [(0, 2), (1, 4), (7, 3), (50_000, 8), (50_889, 8)]:
        bounds = shard_bounds(n, world)
        assert bounds[0][0] == 0 and bounds[-1][1] == n and all(a <= b for a, b in bounds)
        assert all(bounds[i][1] == bounds[i + 1][0] for i in range(world - 1))
        assert max(b - a for a, b in bounds) - min(b - a for a, b in bounds) <= 1


def test_a_full_disk_fails_when_the_slice_is_allocated_not_midway(setup, tmp_path, monkeypatch):
    import robust_core.store as store_mod

    zs, methods, evalset = setup

    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store_mod.os, "posix_fallocate", full)
    data = Counting(evalset.dataset)
    with pytest.raises(OSError, match="No space left"):
        _store(tmp_path / "full", zs, methods, dataclasses.replace(evalset, dataset=data))
    assert data.seen == []  # nothing was computed into a file that could not hold it


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_torchrun_two_ranks_give_the_single_process_store(tmp_path):
    """Real torchrun, gloo on CPU: each rank evaluates half of every set; rank 0 assembles."""
    from robust_core.models import CheckpointInfo, save_classifier

    w = tmp_path
    model, tokenizer = clip_workspace(w)
    make_image_folder(w / "odd", per_class=7, seed=5)  # 21 examples: uneven slices (10 + 11)
    zs = build_classifier(model, build_zeroshot_head(model, tokenizer, ["cat", "dog", "fish"], ["a photo of a {c}."]))
    for p in zs.parameters():
        p.data.add_(0.05 * torch.randn_like(p))
    save_classifier(zs, w / "ft.safetensors", CheckpointInfo(TINY_ARCH, None, "ft", ["cat", "dog", "fish"], {}))
    args = ["-m", "robust_core", "eval", "--arch", TINY_ARCH, "--checkpoint", str(w / "clip.safetensors"), "--workers", "0"]
    args += ["--templates", "simple", "--finetuned", f"ft={w / 'ft.safetensors'}", "--id", f"toy={w / 'test'}", "--device", "cpu"]
    args += ["--shift", f"shift={w / 'shift'}", "--shift", f"odd={w / 'odd'}", "--alphas", "0:1:0.5", "--batch-size", "4"]
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    single = subprocess.run([sys.executable, *args, "--out", str(w / "single")], cwd=ROOT, env=env, capture_output=True, text=True)
    assert single.returncode == 0, single.stderr
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_free_port())]
    multi = subprocess.run([*launcher, *args, "--out", str(w / "ddp")], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert multi.returncode == 0, multi.stderr[-3000:]
    a, b = open_store(w / "single"), open_store(w / "ddp")
    assert a.datasets == b.datasets and a.methods == b.methods
    for ds in a.datasets:
        np.testing.assert_array_equal(np.asarray(a.labels(ds)), np.asarray(b.labels(ds)))
        # float16 logits: batches start at other rows on rank 1, so allow one float16 ulp
        np.testing.assert_allclose(
            np.asarray(b.logits("ft", ds), np.float32), np.asarray(a.logits("ft", ds), np.float32), rtol=2e-3, atol=2e-3
        )
    assert a.summary()["correct"].tolist() == b.summary()["correct"].tolist()
    assert not (w / "ddp" / "_parts").exists()


@pytest.mark.slow
def test_a_topk_only_store_reads_like_the_full_one_where_it_can(setup, tmp_path, monkeypatch):
    """eval --store-logits topk: same summary, top-3 and endpoint logits as a full store; views needing
    every alpha's logits say so; the pages render."""
    import pandas as pd

    from robust_core.analysis import RunView

    zs, methods, evalset = setup
    _, preprocess, _ = load_clip(TINY_ARCH)
    make_image_folder(tmp_path / "shift-data", classes=("dog", "fish"), per_class=6, seed=3)
    shift = resolve("shift", root=tmp_path / "shift-data", transform=preprocess, head_classnames=["cat", "dog", "fish"])

    def build(out, mode):
        cfg = dataclasses.replace(CONFIG, store_logits=mode)
        return build_store(
            out, zs, methods, [evalset, shift], "id", None, ["shift"], provenance={}, eval_config=cfg, logits_dtype="float32"
        )

    stores = tmp_path / "stores"
    full, top = build(stores / "full", "full"), build(stores / "top", "topk")
    cols = ["method", "kind", "alpha", "dataset", "correct"]
    assert full.summary()[cols].equals(top.summary()[cols])
    for m in ("ft", "lp"):
        for ds in ("id", "shift"):
            np.testing.assert_array_equal(np.asarray(top.topk(m, ds)), np.asarray(full.topk(m, ds)))
            np.testing.assert_array_equal(np.asarray(top.topv(m, ds)), np.asarray(full.topv(m, ds)))
            for a, b in zip(top.endpoint_logits(m, ds), full.endpoint_logits(m, ds)):
                np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        with pytest.raises(StoreError, match="--store-logits full"):
            top.logits(m, "id")
    assert (stores / "top" / "logits" / "ft" / "id.npy").stat().st_size < (stores / "full" / "logits" / "ft" / "id.npy").stat().st_size
    pd.testing.assert_frame_equal(RunView(top).diversity("ft"), RunView(full).diversity("ft"))

    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("ROBUST_STORE_ROOT", str(stores))
    for page in (
        "pages/explore/tradeoff.py",
        "pages/explore/effective_robustness.py",
        "pages/explore/diversity.py",
        "pages/explore/examples.py",
        "pages/explore/calibration.py",  # theta(alpha) is calibrated at the endpoints only: its diagram moves with the rerun
    ):
        app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=180)
        app.query_params["run"] = "top"
        app.run()
        app.switch_page(page)
        app.run()
        assert not app.exception, [str(e.value)[:300] for e in app.exception]
        assert not app.error, [e.value for e in app.error]
        alphas = app.select_slider(key="alpha").options
        app.select_slider(key="alpha").set_value(float(alphas[1])).run()  # an alpha without full logits in this store
        assert not app.exception, [str(e.value)[:300] for e in app.exception]
