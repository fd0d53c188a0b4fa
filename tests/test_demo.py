"""The embedded demo: a miniature build through the same code, and the shipped store with its criteria."""

import json
from pathlib import Path

import numpy as np
import pytest

from robust_core.demo import DemoExistsError, build_demo, check_criteria, miniature_config
from robust_core.store import StoreError, open_store

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "cache" / "demo"


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "mini"
    build_demo(out, miniature_config())
    return open_store(out)  # full validation from disk


@pytest.mark.slow
def test_miniature_demo_builds_a_complete_valid_store(mini):
    store = mini
    wise = [m for m in store.methods if store.manifest["methods"][m]["role"] == "wise"]
    points = [m for m in store.methods if store.manifest["methods"][m]["role"] == "point"]
    assert wise == ["ft", "lp", "lpft", "flyp"]
    assert set(points) == {"ft-random-head", "uniform-soup", "greedy-soup", miniature_config().soup[0].name}
    assert store.id == "id-test" and store.id_val == "id-val" and len(store.shifts) == 8
    assert len(store.baselines) == 3
    summary = store.summary()
    n_alphas = len(store.alphas("ft"))
    assert len(summary) == (4 * n_alphas + 4 * 2) * 10 * 2 + 3 * 10
    assert summary.accuracy.between(0, 1).all()
    examples = store.examples()
    assert examples.png.str[:8].eq(b"\x89PNG\r\n\x1a\n").all()
    assert store.manifest["methods"]["lp"]["linear"] is True
    for method in store.methods:  # alpha 0 is the same zero-shot model for every method
        np.testing.assert_allclose(
            np.asarray(store.logits(method, "id-test")[0], np.float32), np.asarray(store.logits("ft", "id-test")[0], np.float32), atol=2e-2
        )
    soup = store.manifest["methods"]["greedy-soup"]["soup"]
    assert soup["greedy_members"][0] == soup["greedy_order"][0] and set(soup["ingredients"]) == {"ft", miniature_config().soup[0].name}


@pytest.mark.slow
def test_miniature_demo_ships_weights_and_exports_from_the_store_alone(mini, tmp_path):
    """export reads the fp16 weights inside the store (no _build needed); LP's encoder comes from zero-shot."""
    import shutil

    from robust_core.export import export_interpolated
    from robust_core.models import load_state_dict

    copy = tmp_path / "copy"
    shutil.copytree(mini.path, copy, ignore=shutil.ignore_patterns("_build"))
    for method, alpha in (("ft", 0.5), ("lp", 0.5), ("ft-random-head", 1.0)):
        weights, meta = export_interpolated(copy, method, alpha, tmp_path / f"{method}.safetensors")
        theta = load_state_dict(weights)
        assert json.loads(meta.read_text())["metrics"]["grid_alpha"] == alpha
        zs = load_state_dict(copy / "weights" / "zeroshot.safetensors")
        assert set(theta) == set(zs)
    # a single model has no grid between its endpoints: the metrics JSON says so instead of guessing
    _, meta = export_interpolated(copy, "ft-random-head", 0.5, tmp_path / "rh-half.safetensors")
    metrics = json.loads(meta.read_text())["metrics"]
    assert metrics["on_grid"] is False and "not on the store's grid" in metrics["note"]
    lp = load_state_dict(copy / "weights" / "lp.safetensors")
    assert set(lp) == {"head.weight", "head.bias"}  # the frozen encoder is not stored twice
    with pytest.raises(StoreError, match="not available"):
        export_interpolated(copy, "greedy-soup", 1.0, tmp_path / "soup.safetensors")


@pytest.mark.slow
def test_demo_never_replaces_an_existing_store_without_force(mini):
    with pytest.raises(DemoExistsError, match="--force"):
        build_demo(mini.path, miniature_config())


def test_cli_demo_refuses_to_overwrite(tmp_path, capsys):
    from robust_core.cli import main

    (tmp_path / "manifest.json").write_text("{}")
    assert main(["demo", "--miniature", "--out", str(tmp_path)]) == 2
    assert "--force" in capsys.readouterr().err


def test_shipped_store_opens_and_matches_manifest():
    store = open_store(SHIPPED)  # validates sizes, shapes, dtypes of every file
    manifest = json.loads((SHIPPED / "manifest.json").read_text())
    for name, info in manifest["datasets"].items():
        assert len(store.labels(name)) == info["n"]
        assert store.logits("ft", name).shape == (len(manifest["methods"]["ft"]["alphas"]), info["n"], info["n_classes"])
    total = sum(p.stat().st_size for p in SHIPPED.rglob("*") if p.is_file() and "_build" not in p.parts)
    assert total <= 50 * 2**20, f"shipped store is {total / 2**20:.1f} MiB"
    summary = store.summary()
    labels = np.asarray(store.labels("id-test"))
    for method in ("ft", "lp"):
        logits = np.asarray(store.logits(method, "id-test")[-1], np.float32)
        stored = summary[(summary.method == method) & (summary.kind == "wise") & (summary.alpha == 1.0) & (summary.dataset == "id-test")]
        assert stored.accuracy.item() == pytest.approx((logits.argmax(1) == labels).mean())
    for method in ("ft", "lpft", "flyp", "ft-random-head", "lp"):
        assert store.checkpoint(method, "finetuned").exists()


@pytest.fixture(scope="module")
def shipped_criteria():
    return check_criteria(open_store(SHIPPED))


CRITERIA = [
    "eval set sizes",
    "no dead shift",
    "standard models",
    "1 zero-shot effective robustness",
    "2a FT gains >= 15 ID points",
    "2b FT loses OOD avg",
    "3 WiSE-FT beats both endpoints",
    "4 WiSE-FT lifts ft",
    "4 WiSE-FT lifts lpft",
    "4 WiSE-FT lifts flyp",
    "5a LP-FT > random-head FT on OOD avg",
    "5b LP-FT ~ random-head FT on ID",
    "6a FLYP >= FT on ID (within 0.5)",
    "6b FLYP > FT on OOD avg",
    "7a FT changes ID features more than OOD",
    "7b LP-FT distorts features less than random-head FT",
    "8 greedy soup >= best single FT run on ID val",
    "ID accuracies inside (3%, 97%)",
]


# Criteria the shipped store does not meet (intervals and what was tried: README, "How the v2 recipe was
# found"). strict=True: if a rebuilt store starts to meet one, this test fails until the README says so.
NOT_MET = {
    "3 WiSE-FT beats both endpoints": "at alpha 0.6 (76% of FT's ID gain) OOD avg is +0.6 [-0.4, +1.7] over zero-shot",
    "6b FLYP > FT on OOD avg": "FLYP - FT OOD avg +0.2 [-0.5, +0.9]",
    "7a FT changes ID features more than OOD": "relative change ID 0.611 < OOD 0.659 (inverted: 1.03)",
}


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=NOT_MET[n])) if n in NOT_MET else n for n in CRITERIA]
)
def test_shipped_store_meets_the_demo_criteria(shipped_criteria, name):
    rows = {c["name"]: c for c in shipped_criteria["criteria"]}
    assert name in rows, sorted(rows)
    assert rows[name]["holds"], rows[name]


def test_readme_demo_block_is_generated_from_the_shipped_store():
    """The README's demo numbers come from the store (scripts/update_readme.py), never typed by hand."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("update_readme", ROOT / "scripts" / "update_readme.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    readme = (ROOT / "README.md").read_text()
    assert module.render(readme) == readme, "README.md's demo block is stale: run .venv/bin/python scripts/update_readme.py"


@pytest.mark.slow
def test_forced_rebuild_replaces_the_store_only_when_the_new_one_is_complete(mini, tmp_path, monkeypatch):
    import shutil

    import robust_core.demo as demo

    out = tmp_path / "demo"
    shutil.copytree(mini.path, out)  # with its _build cache: the rebuild reuses every trained model
    before = (out / "manifest.json").read_bytes()

    def broken(*args, **kwargs):
        raise RuntimeError("evaluation failed half-way")

    monkeypatch.setattr(demo, "build_store", broken)
    with pytest.raises(RuntimeError):
        build_demo(out, miniature_config(), force=True)
    assert (out / "manifest.json").read_bytes() == before
    open_store(out)  # the old store is untouched and valid
    monkeypatch.undo()
    store = build_demo(out, miniature_config(), force=True)
    assert store.path == out and open_store(out).methods == mini.methods
    assert (out / "_build").is_dir() and not list(tmp_path.glob(".demo.*"))
