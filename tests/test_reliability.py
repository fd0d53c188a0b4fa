"""Reliability (issue 13, first part): hostile or broken manifests, paths that leave the store, resume
without losing features, re-running a finished eval, markdown from URLs. Each test failed before its fix."""

import json
import os

import numpy as np
import pytest
from test_store import _build, _setup

from robust_core.store import StoreError, StoreWriter, open_store


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rel")
    zs, method, sets = _setup(tmp)
    store = _build(tmp / "s", zs, method, sets)
    return tmp, store, (zs, method, sets)


def _copy(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda m: [m], "JSON list, not an object"),
        (lambda m: {**m, "files": None}, "field files"),
        (lambda m: {**m, "files": {**m["files"], "labels/id.npy": {"shape": [15]}}}, "'bytes' is a required property"),
        (lambda m: {**m, "methods": {"ft": {**m["methods"]["ft"], "alphas": [0, "half", 1]}}}, r"field methods\.ft\.alphas\.1"),
        (lambda m: {**m, "methods": {"ft": {**m["methods"]["ft"], "alphas": [0, 1.5]}}}, "maximum"),
        (lambda m: {**m, "datasets": {"../x": m["datasets"]["id"]}}, "does not match"),
        (lambda m: {**m, "files": {**m["files"], "../outside.npy": {"bytes": 1}}}, "outside the store"),
    ],
)
def test_bad_manifest_gives_a_store_error_naming_the_field(built, tmp_path, mutate, match):
    tmp, store, _ = built
    root = _copy(store.path, tmp_path / "bad")
    manifest = json.loads((root / "manifest.json").read_text())
    (root / "manifest.json").write_text(json.dumps(mutate(manifest)))
    with pytest.raises(StoreError, match=match):
        open_store(root)


def test_non_utf8_and_nan_alphas_are_refused(built, tmp_path):
    tmp, store, _ = built
    root = _copy(store.path, tmp_path / "bad")
    (root / "manifest.json").write_bytes(b'{"a": "\xff\xfe"}')
    with pytest.raises(StoreError, match="not UTF-8"):
        open_store(root)
    manifest = dict(store.manifest)
    manifest["methods"] = {"ft": {**manifest["methods"]["ft"], "alphas": [0.0, float("nan"), 1.0]}}
    (root / "manifest.json").write_text(json.dumps(manifest))  # json writes NaN, json.loads reads it back
    with pytest.raises(StoreError, match="non-finite"):
        open_store(root)


def test_same_size_garbage_in_a_small_file_is_caught_by_its_sha256(built, tmp_path):
    tmp, store, _ = built
    root = _copy(store.path, tmp_path / "bad")
    target = root / "summary.parquet"
    target.write_bytes(os.urandom(target.stat().st_size))
    with pytest.raises(StoreError, match="summary.parquet does not match the sha256"):
        open_store(root)


def test_names_that_would_leave_the_store_are_refused(tmp_path):
    writer = StoreWriter(tmp_path / "s", {"a": 1})
    for bad in ("../../x", "/etc/x", ".hidden", "a/b"):
        with pytest.raises(StoreError, match="cannot be used in a store"):
            writer.write_labels(bad, np.zeros(3, np.int64))
        with pytest.raises(StoreError, match="cannot be used in a store"):
            writer.shard(bad, 0, 3, {"n_classes": 2, "logits": {"ft": [2, 2]}, "baselines": {}, "features": {}, "feature_rows": 0})
    assert not (tmp_path / "x").exists() and not any((tmp_path / "s").rglob("*.npy"))


def test_checkpoint_path_leaving_the_store_is_refused(built, tmp_path):
    tmp, store, _ = built
    root = _copy(store.path, tmp_path / "bad")
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["methods"]["ft"]["checkpoints"] = {"finetuned": {"path": "../../../etc/passwd"}}
    (root / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(StoreError, match="leaves the store"):
        open_store(root).checkpoint("ft", "finetuned")


def test_rerunning_a_finished_eval_is_a_no_op_and_keeps_the_store_readable(built, monkeypatch):
    tmp, store, (zs, method, sets) = built
    import robust_core.evaluate as ev

    before = (store.path / "manifest.json").stat().st_mtime_ns
    monkeypatch.setattr(ev, "evaluate_alpha_grid", lambda *a, **k: pytest.fail("a finished run was evaluated again"))
    again = _build(store.path, zs, method, sets)
    assert (store.path / "manifest.json").stat().st_mtime_ns == before
    assert again.methods == store.methods
    # a writer opened on a finished store (a resume) no longer deletes its manifest: still readable
    StoreWriter(store.path, json.loads((store.path / "run_config.json").read_text()))
    open_store(store.path)


def test_a_kill_while_assembling_does_not_lose_the_features(built, tmp_path, monkeypatch):
    tmp, full, (zs, method, sets) = built
    import robust_core.store as store_mod

    real = store_mod._publish

    def killed(src, target):
        if "features" in str(target):
            raise KeyboardInterrupt("killed while the slices were moved into place")
        real(src, target)

    monkeypatch.setattr(store_mod, "_publish", killed)
    with pytest.raises(KeyboardInterrupt):
        _build(tmp_path / "r", zs, method, sets)
    assert list((tmp_path / "r" / "_parts").rglob("*.npy")) and not list((tmp_path / "r" / "features").rglob("*.npy"))
    with pytest.raises(StoreError, match="interrupted"):
        open_store(tmp_path / "r")
    monkeypatch.setattr(store_mod, "_publish", real)
    resumed = _build(tmp_path / "r", zs, method, sets)
    for ds in ("id", "shift"):
        assert resumed.has_features("ft", ds)
        np.testing.assert_array_equal(np.asarray(resumed.features("ft", ds)[0]), np.asarray(full.features("ft", ds)[0]))
        np.testing.assert_array_equal(np.asarray(resumed.logits("ft", ds)), np.asarray(full.logits("ft", ds)))


def test_url_text_is_never_rendered_as_markdown_and_server_paths_are_hidden(monkeypatch, tmp_path):
    monkeypatch.setenv("ROBUST_STORE_ROOT", str(tmp_path))
    from dashboard.state import plain

    out = plain(f"Run '[x](http://evil.example/a.png)' ![y](http://e) <img src=x> in {tmp_path}/demo/manifest.json")
    import re

    # every markdown/HTML metacharacter arrives backslash-escaped: no link, image, tag or autolink survives
    assert not re.search(r"(?<!\\)\]\(|(?<!\\)<img|(?<!\\)!\[", out) and "http://" not in out
    assert str(tmp_path) not in out and "demo/manifest" in out


def test_cli_errors_are_one_line(tmp_path, capsys):
    from robust_core.cli import main

    (tmp_path / "garbage.safetensors").write_bytes(b"not a safetensors file")
    store = tmp_path / "nostore"
    assert main(["info", str(store)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and "does not exist" in err
    assert main(["export", str(store), "--method", "ft", "--alpha", "0.5", "--out", str(tmp_path / "x.safetensors")]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_a_kill_between_the_two_renames_of_a_swap_is_recovered(built, tmp_path, monkeypatch):
    import robust_core.store as store_mod

    tmp, store, _ = built
    final, new = _copy(store.path, tmp_path / "live"), _copy(store.path, tmp_path / ".live.staging")
    (new / "marker").write_text("new")
    real, calls = os.replace, []

    def dies_on_second(a, b):
        calls.append(a)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed between the renames")
        real(a, b)

    monkeypatch.setattr(store_mod.os, "replace", dies_on_second)
    with pytest.raises(KeyboardInterrupt):
        store_mod.swap_in(new, final)
    monkeypatch.setattr(store_mod.os, "replace", real)
    assert not final.exists()
    store_mod.recover_swap(final)  # what the next eval / demo run does first
    assert (final / "marker").read_text() == "new" and open_store(final).methods == store.methods
    assert not (tmp_path / ".live.old").exists() and not new.exists()


def test_staging_and_leftover_folders_are_not_listed_as_runs(built, tmp_path):
    from robust_core.store import list_stores

    tmp, store, _ = built
    _copy(store.path, tmp_path / "run")
    _copy(store.path, tmp_path / ".run.staging")
    _copy(store.path, tmp_path / ".run.old")
    assert [p.name for p in list_stores(tmp_path)] == ["run"]
