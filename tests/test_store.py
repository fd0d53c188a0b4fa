import json

import numpy as np
import pytest
import torch
from conftest import TINY_ARCH, make_image_folder

from robust_core.datasets import resolve
from robust_core.evaluate import EvalConfig, MethodSpec
from robust_core.models import build_classifier, build_zeroshot_head, load_clip
from robust_core.pipeline import build_store
from robust_core.store import StoreError, StoreWriter, open_store


def _setup(tmp_path):
    torch.manual_seed(0)
    model, preprocess, tokenizer = load_clip(TINY_ARCH)
    zs = build_classifier(model, build_zeroshot_head(model, tokenizer, ["cat", "dog", "fish"], ["a {c}."])).eval()
    theta0 = {k: v.clone() for k, v in zs.state_dict().items()}
    theta1 = {k: v + 0.05 * torch.randn_like(v) if v.is_floating_point() else v.clone() for k, v in theta0.items()}
    make_image_folder(tmp_path / "id", per_class=5)
    make_image_folder(tmp_path / "shift", per_class=4, seed=1)
    sets = [resolve("id", root=tmp_path / "id", transform=preprocess), resolve("shift", root=tmp_path / "shift", transform=preprocess)]
    method = MethodSpec("ft", theta0, theta1, [0.0, 0.5, 1.0])
    return zs, method, sets


def _build(out, zs, method, sets, **kw):
    return build_store(
        out,
        zs,
        [method],
        sets,
        "id",
        None,
        ["shift"],
        provenance={"test": True},
        eval_config=EvalConfig(batch_size=4, chunk_batches=2, num_workers=0, progress=False),
        **kw,
    )


def test_store_roundtrip_and_resume_is_identical(tmp_path, monkeypatch):
    zs, method, sets = _setup(tmp_path)
    full = _build(tmp_path / "full", zs, method, sets)
    assert full.logits("ft", "id").shape == (3, 15, 3)
    assert not list((tmp_path / "full").rglob("*.tmp")) and not (tmp_path / "full" / "_parts").exists()

    # Interrupt a second run after its first dataset: no manifest, a clear error, then resume.
    import robust_core.evaluate as ev

    calls = {"n": 0}
    real = ev._evaluate_slice

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("simulated crash")
        return real(*args, **kwargs)

    monkeypatch.setattr(ev, "_evaluate_slice", flaky)
    with pytest.raises(KeyboardInterrupt):
        _build(tmp_path / "resumed", zs, method, sets)
    assert not (tmp_path / "resumed" / "manifest.json").exists()
    with pytest.raises(StoreError, match="interrupted"):
        open_store(tmp_path / "resumed")
    done = []
    monkeypatch.setattr(ev, "_evaluate_slice", lambda *a, **k: (done.append(a[3].name), real(*a, **k)))
    resumed = _build(tmp_path / "resumed", zs, method, sets)
    assert done == ["shift"]  # the finished dataset was skipped
    for ds in ("id", "shift"):
        np.testing.assert_array_equal(np.asarray(full.logits("ft", ds)), np.asarray(resumed.logits("ft", ds)))
        np.testing.assert_array_equal(np.asarray(full.labels(ds)), np.asarray(resumed.labels(ds)))
    # summary accuracies equal a direct computation from the stored logits
    summary = resumed.summary()
    for ds in ("id", "shift"):
        logits, labels = np.asarray(resumed.logits("ft", ds), np.float32), np.asarray(resumed.labels(ds))
        for i, alpha in enumerate(resumed.alphas("ft")):
            row = summary[(summary.kind == "wise") & (summary.dataset == ds) & (summary.alpha == alpha)]
            assert row.accuracy.item() == pytest.approx((logits[i].argmax(1) == labels).mean())


def test_different_run_in_same_folder_is_refused(tmp_path):
    StoreWriter(tmp_path / "s", {"a": 1})
    with pytest.raises(StoreError, match="different run"):
        StoreWriter(tmp_path / "s", {"a": 2})


def test_corruption_is_reported_with_file_name(tmp_path):
    zs, method, sets = _setup(tmp_path)
    _build(tmp_path / "s", zs, method, sets)
    root = tmp_path / "s"
    target = root / "logits" / "ft" / "shift.npy"
    data = target.read_bytes()
    target.write_bytes(data[: len(data) - 10])  # truncated
    with pytest.raises(StoreError, match="shift.npy.*truncated"):
        open_store(root)
    target.write_bytes(data)
    open_store(root)
    (root / "labels" / "id.npy").unlink()
    with pytest.raises(StoreError, match="id.npy.*missing"):
        open_store(root)
    (root / "manifest.json").write_text("{not json")
    with pytest.raises(StoreError, match="not valid JSON"):
        open_store(root)
    with pytest.raises(StoreError, match="does not exist"):
        open_store(tmp_path / "nope")


def test_header_mismatch_detected(tmp_path):
    zs, method, sets = _setup(tmp_path)
    _build(tmp_path / "s", zs, method, sets)
    root = tmp_path / "s"
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["files"]["labels/id.npy"]["shape"] = [99]
    (root / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(StoreError, match="labels/id.npy: shape"):
        open_store(root)


def test_topk_breaks_ties_like_argmax():
    from robust_core.store import _topk

    rng = np.random.default_rng(0)
    logits = rng.integers(0, 4, (2000, 37)).astype(np.float16)  # float16 logits tie often
    idx, val = _topk(logits)
    assert (idx[:, 0] == logits.astype(np.float32).argmax(1)).all()
    assert (np.diff(val.astype(np.float32), axis=1) <= 0).all()
    smooth = rng.normal(size=(4, 50, 9)).astype(np.float32)
    assert (_topk(smooth)[0] == np.argsort(-smooth, axis=-1)[..., :3]).all()


def test_compact_store_matches_the_full_store(tmp_path):
    """compact=True: LP keeps its endpoints, top-k is derived, baselines keep predictions; reads are the same."""
    from robust_core.baselines import StandardModel

    zs, ft, sets = _setup(tmp_path)
    theta0 = ft.theta_zeroshot
    theta_lp = {k: v.clone() for k, v in theta0.items()}
    theta_lp["head.weight"] = theta0["head.weight"] + 0.5 * torch.randn_like(theta0["head.weight"])
    ft = MethodSpec("ft", theta0, ft.theta_finetuned, [0.0, 0.25, 0.5, 0.75, 1.0])
    lp = MethodSpec("lp", theta0, theta_lp, [0.0, 0.25, 0.5, 0.75, 1.0], linear=True)
    torch.manual_seed(1)
    baseline = StandardModel(4, 2, 3).eval()

    def build(out, compact):
        return build_store(
            out,
            zs,
            [ft, lp],
            sets,
            "id",
            None,
            ["shift"],
            provenance={"test": True},
            baselines={"b": baseline},
            eval_config=EvalConfig(batch_size=4, chunk_batches=2, num_workers=0, progress=False),
            compact=compact,
        )

    full, small = build(tmp_path / "full", False), build(tmp_path / "small", True)
    small = open_store(small.path)  # validated from disk
    assert not (small.path / "topk").exists() and small.manifest["topk_stored"] is False
    assert np.load(small.path / "logits" / "lp" / "id.npy").shape[0] == 2
    assert small.manifest["methods"]["lp"]["logits_alphas"] == [0.0, 1.0]
    for ds in ("id", "shift"):
        for m in ("ft", "lp"):
            np.testing.assert_allclose(
                np.asarray(small.logits(m, ds), np.float32), np.asarray(full.logits(m, ds), np.float32), rtol=2e-3, atol=2e-3
            )
        np.testing.assert_array_equal(small.topk("ft", ds), full.topk("ft", ds))
        np.testing.assert_array_equal(small.baseline_predictions("b", ds), full.baseline_predictions("b", ds))
        with pytest.raises(StoreError, match="only the predictions"):
            small.baseline_logits("b", ds)
    # the summary agrees with predictions read back from the compact store
    summary = small.summary()
    for m in ("ft", "lp"):
        for i, alpha in enumerate(small.alphas(m)):
            row = summary[(summary.method == m) & (summary.kind == "wise") & (summary.alpha == alpha) & (summary.dataset == "id")]
            assert row.correct.item() == int((small.topk(m, "id")[i, :, 0] == small.labels("id")).sum())
