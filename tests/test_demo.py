"""The embedded demo: a miniature build through the same code, and the shipped store with its criteria."""

import json
from pathlib import Path

import numpy as np
import pytest

from robust_core.demo import build_demo, check_criteria, miniature_config
from robust_core.store import open_store

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "cache" / "demo"


@pytest.mark.slow
def test_miniature_demo_builds_a_complete_valid_store(tmp_path):
    store = build_demo(tmp_path / "mini", miniature_config())
    store = open_store(store.path)  # full validation from disk
    assert store.methods == ["ft", "lp", "lpft", "flyp"]
    assert store.id == "id-test" and store.id_val == "id-val" and len(store.shifts) == 8
    assert len(store.baselines) == 3
    summary = store.summary()
    n_alphas = len(store.alphas("ft"))
    assert len(summary) == 4 * 10 * n_alphas * 2 + 3 * 10
    assert summary.accuracy.between(0, 1).all()
    examples = store.examples()
    assert examples.png.str[:8].eq(b"\x89PNG\r\n\x1a\n").all()
    assert store.manifest["methods"]["lp"]["linear"] is True
    for method in store.methods:  # alpha 0 is the same zero-shot model for every method
        np.testing.assert_allclose(
            np.asarray(store.logits(method, "id-test")[0], np.float32), np.asarray(store.logits("ft", "id-test")[0], np.float32), atol=2e-2
        )
    # checkpoints referenced by the store exist and match their hashes (export works)
    from robust_core.export import export_interpolated

    weights, meta = export_interpolated(store.path, "ft", 0.5, tmp_path / "theta.safetensors")
    assert weights.exists() and json.loads(meta.read_text())["metrics"]["grid_alpha"] == 0.5


def test_shipped_store_opens_and_matches_manifest():
    store = open_store(SHIPPED)  # validates sizes, shapes, dtypes of every file
    manifest = json.loads((SHIPPED / "manifest.json").read_text())
    for name, info in manifest["datasets"].items():
        assert len(store.labels(name)) == info["n"]
        assert store.logits("ft", name).shape == (len(manifest["methods"]["ft"]["alphas"]), info["n"], info["n_classes"])
    total = sum(p.stat().st_size for p in SHIPPED.rglob("*") if p.is_file() and "_build" not in p.parts)
    assert total <= 20 * 2**20, f"shipped store is {total / 2**20:.1f} MB"
    summary = store.summary()
    labels = np.asarray(store.labels("id-test"))
    logits = np.asarray(store.logits("ft", "id-test")[-1], np.float32)
    stored = summary[(summary.method == "ft") & (summary.kind == "wise") & (summary.alpha == 1.0) & (summary.dataset == "id-test")]
    assert stored.accuracy.item() == pytest.approx((logits.argmax(1) == labels).mean())


def test_shipped_store_meets_the_demo_criteria():
    c = check_criteria(open_store(SHIPPED))
    assert c["zeroshot_positive_effective_robustness"], c
    assert c["ft_id_gain_ge_10pts"], c
    assert c["ft_ood_below_zeroshot"], c
    assert c["some_alpha_keeps_half_gain_without_ood_loss"], c
    assert c["all_id_within_3_97"], c
