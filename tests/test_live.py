"""robust_core.live: one input through zero-shot, fine-tuned and theta(alpha), checked against the store's own logits.

The strongest check is that the live models, fed a stored example's image, give the logits the store holds for
that example at every alpha: it fails if preprocessing, the architecture, the weights or the interpolation differ
from evaluation's.
"""

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from robust_core import live
from robust_core.store import open_store

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "cache" / "demo"
# Stored logits are float16 and the shipped weights float16 (evaluation ran the float32 weights): logits of the
# demo (|logit| up to ~60) agree to a few hundredths; 0.06 is ~10x the largest difference seen.
LOGIT_ATOL = 0.06


@pytest.fixture(scope="module")
def demo():
    return open_store(DEMO)


@pytest.fixture(scope="module")
def models():
    return {m: live.LiveModel(DEMO, m) for m in ("ft", "lp")}


def _examples(demo, per_set=2):
    frame = demo.examples()
    picked = frame.groupby("dataset", sort=False).head(per_set)
    return [(r.dataset, int(r.index), int(r.label), np.asarray(Image.open(io.BytesIO(r.png)).convert("RGB"))) for r in picked.itertuples()]


def test_importing_live_and_the_dashboard_core_does_not_import_torch():
    code = (
        "import sys; import robust_core.live, robust_core.analysis, dashboard.state; "
        "print('torch' in sys.modules, 'open_clip' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]


def test_softmax_rows_sum_to_one_and_top_k_is_sorted():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 30, (11, 36))
    probs = live.softmax(logits)
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-12) and (probs >= 0).all()
    names = [f"c{i}" for i in range(36)]
    top = live.top_k(probs[3], names, k=5)
    assert [i for i, _, _ in top] == list(np.argsort(-logits[3])[:5])
    assert all(a[2] >= b[2] for a, b in zip(top, top[1:])) and top[0][1] == names[top[0][0]]


def test_preprocessing_equals_evaluation_for_demo_images(demo, models):
    from open_clip import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

    from robust_core.pipeline import TensorImageDataset

    images = np.stack([img for *_, img in _examples(demo, 1)])
    evaluated = TensorImageDataset(images, np.zeros(len(images)), OPENAI_DATASET_MEAN, OPENAI_DATASET_STD)
    for i, img in enumerate(images):
        assert np.allclose(models["ft"].preprocess(img), evaluated[i][0].numpy(), atol=1e-6)


@pytest.mark.parametrize("method", ["ft", "lp"])
def test_every_alpha_equals_the_stored_logits_of_stored_examples(demo, models, method):
    model = models[method]
    examples = _examples(demo)
    assert {d for d, *_ in examples} >= {demo.id, *demo.shifts[:3]}
    for dataset, index, label, image in examples:
        stored = np.asarray(demo.logits(method, dataset)[:, index], np.float32)
        grid = model.grid(image)
        assert np.array_equal(grid.alphas, demo.alphas(method))
        assert np.abs(grid.logits - stored).max() < LOGIT_ATOL, (dataset, index)
        assert grid.logits[0].argmax() == stored[0].argmax() and grid.logits[-1].argmax() == stored[-1].argmax()
        assert np.allclose(grid.probs.sum(axis=1), 1.0)
        assert label == int(demo.labels(dataset)[index])
    # alpha 0 is the zero-shot model: the same for every method
    image = examples[0][3]
    assert np.allclose(models["ft"].grid(image).logits[0], models["lp"].grid(image).logits[0], atol=1e-4)


def test_batched_grid_equals_alpha_by_alpha_and_model_at(models):
    import torch

    model = models["ft"]
    threads = torch.get_num_threads()
    image = live.compose_glyph(live.GlyphSpec(character="7", font_family="handwriting", rotation=20))
    assert model.grid_batched  # the demo's stacked grid fits the budget
    batched = model.grid(image).logits
    model.grid_batched = False
    try:
        looped = model.grid(image).logits
    finally:
        model.grid_batched = True
    assert np.allclose(batched, looped, atol=1e-4)
    at = model.logits_at(image, [0.0, 0.3, 1.0])
    assert np.allclose(at, batched[[0, 3, -1]], atol=1e-4)
    assert torch.get_num_threads() == threads  # live runs use 1 thread and restore the process's setting


def test_theta_alpha_models_are_cached_per_alpha_in_an_lru():
    model = live.LiveModel(DEMO, "ft", models_per_method=2)
    first = model.model_at(0.3)
    assert model.model_at(0.3) is first
    model.model_at(0.5)
    model.model_at(0.7)  # evicts 0.3
    assert model.model_at(0.3) is not first
    assert list(model._models) == [0.7, 0.3]


def test_compose_glyph_changes_one_factor_at_a_time():
    base = live.GlyphSpec(character="R")
    image = live.compose_glyph(base)
    assert image.shape == (32, 32, 3) and image.dtype == np.uint8
    assert np.array_equal(image, live.compose_glyph(base))  # deterministic
    from dataclasses import replace

    for change in (
        {"character": "B"},
        {"font_family": "decorative"},
        {"font_family": "handwriting"},
        {"background": "photo"},
        {"inverted": True},
        {"outline": True},
        {"rotation": 30.0},
        {"corruption": "blur", "severity": 1.0},
        {"ink": "red"},
    ):
        assert not np.array_equal(image, live.compose_glyph(replace(base, **change))), change
    inverted = live.compose_glyph(replace(base, inverted=True))
    assert np.abs(inverted.astype(int) - (255 - image.astype(int))).max() <= 1
    with pytest.raises(live.LiveError, match="not a class"):
        live.compose_glyph(replace(base, character="a"))
    with pytest.raises(live.LiveError, match="Unknown font family"):
        live.font_choices("gothic")


def test_drawing_to_image_fits_strokes_and_ignores_a_blank_canvas():
    blank = np.zeros((256, 256, 4), np.uint8)  # transparent, nothing drawn
    assert live.drawing_to_image(blank) is None
    assert live.drawing_to_image(None) is None
    drawn = blank.copy()
    drawn[100:140, 30:50] = (20, 20, 20, 255)  # a small bar in the left half
    fitted = live.drawing_to_image(drawn)
    assert fitted.shape[0] == fitted.shape[1] and fitted.dtype == np.uint8
    dark = fitted.mean(axis=2) < 128
    rows, cols = np.flatnonzero(dark.any(1)), np.flatnonzero(dark.any(0))
    assert abs((rows[0] + rows[-1]) / 2 - fitted.shape[0] / 2) <= 2 and abs((cols[0] + cols[-1]) / 2 - fitted.shape[1] / 2) <= 2
    assert (rows[-1] - rows[0] + 1) / fitted.shape[0] == pytest.approx(0.55, abs=0.02)
    raw = live.drawing_to_image(drawn, fit=False)
    assert raw.shape == (256, 256, 3) and raw[0, 0].tolist() == [255, 255, 255]


def _encoded(image: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kw)
    return buf.getvalue()


def test_bad_uploads_give_one_clear_message():
    ok = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 30, 3), dtype=np.uint8))  # ~3.6 kB as PNG
    png = _encoded(ok, "PNG")
    image, notes = live.read_upload(png)
    assert image.mode == "RGB" and image.size == (30, 40) and notes == []
    cases = [
        (b"", r"empty \(0 bytes\)"),
        (b"%PDF-1.4 not an image at all", "not an image"),
        (png[: len(png) // 2], "cannot be decoded"),
    ]
    for data, message in cases:
        with pytest.raises(live.UploadError, match=message) as err:
            live.read_upload(data)
        assert "\n" not in str(err.value)
    with pytest.raises(live.UploadError, match=r"limit is 0\.001 MB"):  # 1 kB
        live.read_upload(png, max_mb=0.001)
    with pytest.raises(live.UploadError, match="million pixels"):
        live.read_upload(png, max_pixels=1000)
    # CMYK and animated files are read as evaluation reads them (PIL convert, first frame), with a note
    cmyk = _encoded(Image.new("CMYK", (20, 20), (0, 255, 255, 0)), "JPEG")
    image, notes = live.read_upload(cmyk)
    assert image.mode == "RGB" and "CMYK" in notes[0]
    frames = [Image.new("RGB", (16, 16), c) for c in ((255, 0, 0), (0, 0, 255), (0, 255, 0))]
    gif = _encoded(frames[0], "GIF", save_all=True, append_images=frames[1:])
    image, notes = live.read_upload(gif)
    assert "3 frames" in notes[0] and image.getpixel((0, 0))[0] > 200  # the first (red) frame


@pytest.fixture()
def demo_copy(tmp_path):
    target = tmp_path / "demo"
    shutil.copytree(DEMO, target, ignore=shutil.ignore_patterns("_build"))
    return target


def test_missing_weights_say_what_to_run(demo_copy):
    manifest = json.loads((demo_copy / "manifest.json").read_text())
    del manifest["files"]["weights/lpft.safetensors"]  # a store whose index never listed the file (else it fails to open)
    del manifest["methods"]["flyp"]["checkpoints"]  # a store built without weights
    (demo_copy / "manifest.json").write_text(json.dumps(manifest))
    (demo_copy / "weights" / "lpft.safetensors").unlink()
    store = open_store(demo_copy)
    assert "only its logits" in live.weights_problem(store, "flyp") and "robust_core demo --force" in live.weights_problem(store, "flyp")
    problem = live.weights_problem(store, "lpft")
    assert "not on this machine" in problem and "git checkout cache/demo/weights" in problem and "robust_core demo --force" in problem
    assert live.live_methods(store) == ["ft", "lp"]
    assert "logits only" in live.weights_problem(store, "greedy-soup")
    with pytest.raises(live.LiveError, match="not on this machine"):
        live.LiveModel(demo_copy, "lpft")


def test_other_architecture_checkpoint_is_one_line(demo_copy):
    manifest = json.loads((demo_copy / "manifest.json").read_text())
    manifest["provenance"]["model"]["arch"] = "tiny-vit-test"
    (demo_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(live.LiveError, match="do not fit architecture tiny-vit-test") as err:
        live.LiveModel(demo_copy, "ft")
    assert "\n" not in str(err.value)


def test_changed_weights_are_refused(demo_copy):
    path = demo_copy / "weights" / "ft.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(live.LiveError, match="sha256"):
        live.LiveModel(demo_copy, "ft")


def test_upload_to_an_imagefolder_run_equals_its_stored_logits(tmp_path):
    """An `eval` store of JPEG folders: an uploaded file of the test set gives the stored logits (resize, crop, AMP off)."""
    from conftest import TINY_ARCH, clip_workspace

    from robust_core.cli import main
    from robust_core.datasets import imagefolder_samples

    clip_workspace(tmp_path, ("train", "test"))
    common = ["--arch", TINY_ARCH, "--checkpoint", str(tmp_path / "clip.safetensors"), "--workers", "0", "--templates", "simple"]
    run = ["--train", f"toy={tmp_path / 'train'}", "--out", str(tmp_path / "run"), "--epochs", "1", "--batch-size", "8", "--warmup", "1"]
    assert main(["finetune", *common, "--method", "ft", *run]) == 0
    store_dir = tmp_path / "store"
    evaluate = ["--finetuned", f"ft={tmp_path / 'run' / 'ft.safetensors'}", "--id", f"toy={tmp_path / 'test'}", "--alphas", "0:1:0.5"]
    assert main(["eval", *common, *evaluate, "--out", str(store_dir), "--logits-dtype", "float32"]) == 0
    store = open_store(store_dir)
    assert live.live_methods(store) == ["ft"] and not live.composes_for(store)
    model = live.LiveModel(store_dir, "ft")
    samples, _ = imagefolder_samples(tmp_path / "test")
    stored = np.asarray(store.logits("ft", "toy"), np.float32)
    for i in (0, len(samples) - 1):
        image, notes = live.read_upload(Path(samples[i][0]).read_bytes())  # 40 px JPEG: resized to 32 and cropped
        assert notes == []
        assert np.allclose(model.grid(image).logits, stored[:, i], atol=1e-4)
    # the fine-tuned file moved away: a one-line message naming the method and the fix
    (tmp_path / "run" / "ft.safetensors").rename(tmp_path / "elsewhere.safetensors")
    assert "re-run `python -m robust_core eval" in live.weights_problem(open_store(store_dir), "ft")
