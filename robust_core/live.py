"""Live lab: put one image of your own through zero-shot, fine-tuned and theta(alpha) of a stored run.

Every other view replays the store's precomputed logits; this module runs the models. It rebuilds the
run's classifier from the weights the store references (the demo ships its endpoints in
``cache/demo/weights``; an ``eval`` run keeps ``checkpoints/zeroshot.safetensors`` and points at its
fine-tuned files), preprocesses an image exactly as evaluation did, and returns the logits of every alpha
of the grid for that one image::

    from robust_core import live
    model = live.LiveModel("cache/demo", "ft")
    image = live.compose_glyph(live.GlyphSpec(character="R", font_family="handwriting"))
    grid = model.grid(image)                # (n_alphas, n_classes) logits, alpha 0 = zero-shot
    live.top_k(live.softmax(grid.logits[-1]), model.classnames)

Importing this module does not import torch (the dashboard's pages stay torch-free); ``LiveModel``
imports it when a model is built. ``python bench/live.py`` measures the latency per input.
"""

from __future__ import annotations

import contextlib
import copy
import io
import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .metrics import softmax  # noqa: F401  (one softmax for the app; the page calls it as live.softmax)
from .store import Store, StoreError, open_store

TOP_K = 5  # classes listed per model
MAX_UPLOAD_MB = 10  # uploads above this are refused before decoding (also the page's file_uploader limit)
MAX_UPLOAD_PIXELS = 40_000_000  # width x height above this is refused before decoding (decompression bombs)
GRID_BATCH_BYTES = 128 * 2**20  # keep theta(alpha) of the whole grid stacked (one batched call) while it fits in this
TORCH_THREADS = 1  # intra-op threads for live inference (see LiveModel); None leaves torch's setting
MODELS_PER_METHOD = 4  # theta(alpha) modules kept per (store, method): an LRU over alpha


class LiveError(RuntimeError):
    """The live lab cannot run this store, method or input; the one-line message says what to do."""


class UploadError(LiveError):
    """An uploaded file cannot be used as an image; the message says why."""


# ------------------------------------------------------------------------------------ weights
def _is_demo(store: Store) -> bool:
    return "demo_config" in store.provenance


def weights_problem(store: Store, method: str) -> str | None:
    """``None`` when both endpoints of ``method`` are on this machine, else what is missing and how to get it."""
    if method not in store.methods:
        return f"Store {store.name} has no method {method!r}."
    info = store.method(method)
    refs = info.checkpoints
    if "zeroshot" not in refs or "finetuned" not in refs:
        if info.kind in ("soup", "soup-ingredient"):
            return f"The store keeps no weights for {method} (soups and their ingredients are stored as logits only)."
        if _is_demo(store):
            fix = "Rebuild the demo with `python -m robust_core demo --force`: it ships every method's weights in cache/demo/weights."
        else:
            fix = f"Re-run `python -m robust_core eval ... --finetuned {method}=PATH`: this version records the checkpoints in the store."
        return f"The store keeps no weights for {method}, only its logits. {fix}"
    for which in ("zeroshot", "finetuned"):
        try:
            path = store.checkpoint(method, which)
        except StoreError as exc:
            return str(exc)
        if path is None or not path.is_file():
            shown = refs[which]["path"]
            if _is_demo(store):
                fix = (
                    "Restore the shipped weights with `git checkout cache/demo/weights`, or rebuild the demo with "
                    "`python -m robust_core demo --force` (about 30 minutes on 2 cores)."
                )
            else:
                fix = (
                    "Copy the checkpoint to that path on this machine, or re-run `python -m robust_core eval ... "
                    f"--finetuned {method}=PATH` here so the store points at a file that exists."
                )
            return f"The {which} weights of {method} are not on this machine ({shown}). {fix}"
    return None


def live_methods(store: Store) -> list[str]:
    """The store's WiSE-FT methods whose two endpoints are on this machine."""
    return [m for m in store.wise_methods if weights_problem(store, m) is None]


def _arch(store: Store) -> tuple[str, str | None]:
    model = store.provenance.get("model", {})
    if not model.get("arch"):
        raise LiveError(f"Store {store.name} does not record its model architecture (provenance.model.arch).")
    return model["arch"], model.get("pretrained")


def _build_tower(arch: str, pretrained: str | None):
    """The open_clip model of ``arch`` (random init, nothing downloaded) and its eval transform.

    An open_clip pretrained tag changes the model (QuickGELU for OpenAI's weights) and the transform
    (mean, std, interpolation, resize mode); both are taken from the tag's config without its weights,
    so the architecture and preprocessing equal what ``eval --pretrained TAG`` built.
    """
    import open_clip

    from .models import _held_root_log, register_local_model_configs

    register_local_model_configs()
    if arch not in open_clip.list_models():
        raise LiveError(f"The store's architecture {arch!r} is not known to open_clip on this machine.")
    tag_cfg = open_clip.get_pretrained_cfg(arch, pretrained) if pretrained else {}
    try:
        with _held_root_log():  # open_clip logs "no pretrained weights loaded" for a random init
            model, _, preprocess = open_clip.create_model_and_transforms(
                arch,
                pretrained=None,
                force_quick_gelu=bool(tag_cfg.get("quick_gelu", False)),
                image_mean=tag_cfg.get("mean"),
                image_std=tag_cfg.get("std"),
                image_interpolation=tag_cfg.get("interpolation"),
                image_resize_mode=tag_cfg.get("resize_mode"),
            )
    except Exception as exc:  # noqa: BLE001 - open_clip raises many types
        raise LiveError(f"Could not build {arch}: {type(exc).__name__}: {exc}") from None
    return model, preprocess


# ------------------------------------------------------------------------------------- models
@contextlib.contextmanager
def _torch_threads(threads: int | None):
    """torch's intra-op thread count set to ``threads`` for the block, then restored (None: unchanged)."""
    import torch

    if not threads:
        yield
        return
    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


@dataclass
class Grid:
    """Logits of one input for every alpha of a method's grid (row 0 = zero-shot, last row = fine-tuned)."""

    method: str
    alphas: np.ndarray  # (n_alphas,)
    logits: np.ndarray  # (n_alphas, n_classes) float32

    @property
    def probs(self) -> np.ndarray:
        return softmax(self.logits)


class LiveModel:
    """theta(alpha) of one method of one store, for single inputs.

    ``theta(alpha) = (1 - alpha) * theta_zeroshot + alpha * theta_finetuned`` is set with
    ``wise.InPlaceInterpolator`` on one working classifier. ``model_at(alpha)`` keeps up to
    ``MODELS_PER_METHOD`` interpolated classifiers (LRU over alpha); ``grid(image)`` runs the whole alpha
    grid on one input as one batch (the grid's weights stacked and the classifier vmapped over them) when
    the stacked weights fit in ``GRID_BATCH_BYTES``, else alpha by alpha in place. Thread-safe: Streamlit
    sessions share one instance.

    Args:
        store_path: the store directory.
        method: a method whose two endpoints are on this machine (``weights_problem`` is None).
        models_per_method: theta(alpha) classifiers kept by ``model_at``.
        threads: torch intra-op threads while this model runs (restored after each call), or None.

    Raises:
        LiveError: missing or changed weights, another architecture's checkpoint.
    """

    def __init__(
        self, store_path: str | Path, method: str, models_per_method: int = MODELS_PER_METHOD, threads: int | None = TORCH_THREADS
    ):
        import torch

        from .models import ClassificationHead, ImageClassifier
        from .wise import InPlaceInterpolator, InterpolationError

        store = open_store(store_path, verify_arrays=False)
        if method not in store.methods:
            raise LiveError(f"Store {store.name} has no method {method!r}; it has {', '.join(store.methods)}.")
        problem = weights_problem(store, method)
        if problem:
            raise LiveError(problem)
        self.store_path, self.method = Path(store_path), method
        info = store.method(method)
        self.label = info.label
        self.classnames = store.classnames(store.id)
        self.alphas = store.alphas(method)
        self.linear = info.linear
        self.arch, pretrained = _arch(store)
        from .export import load_endpoints  # the same files, checks and fp32 as `export` (sha256, LP's shared keys)
        from .models import ModelLoadError

        try:
            theta_zeroshot, theta_finetuned = load_endpoints(store, method)
        except (StoreError, ModelLoadError) as exc:
            raise LiveError(str(exc)) from None
        model, self._transform = _build_tower(self.arch, pretrained)
        head = theta_zeroshot.get("head.weight")
        if head is None or head.ndim != 2:
            raise LiveError(f"The zero-shot weights of {method} hold no classifier head (head.weight); not an ImageClassifier state dict.")
        if head.shape[0] != len(self.classnames):
            raise LiveError(f"The zero-shot head of {method} has {head.shape[0]} classes; the store's ID set has {len(self.classnames)}.")
        work = ImageClassifier(model.visual, ClassificationHead(torch.zeros(head.shape))).eval()
        del model  # the text tower is not needed
        try:
            work.load_state_dict(theta_zeroshot)
        except RuntimeError as exc:
            first = next((ln.strip() for ln in str(exc).splitlines() if "size mismatch" in ln or "Missing" in ln), str(exc)[:160])
            raise LiveError(
                f"The weights of {method} do not fit architecture {self.arch} ({first}); they come from another model."
            ) from None
        for p in work.parameters():
            p.requires_grad_(False)
        try:
            self._interpolator = InPlaceInterpolator(work, theta_zeroshot, theta_finetuned)
        except InterpolationError as exc:
            raise LiveError(f"The endpoints of {method} cannot be interpolated: {exc}") from None
        self._work = work
        self._lock = threading.Lock()
        self._models: OrderedDict[float, torch.nn.Module] = OrderedDict()
        self._models_max = max(1, models_per_method)
        n_params = sum(t.numel() for t in self._interpolator.targets)
        self.grid_batched = n_params * len(self.alphas) * 4 <= GRID_BATCH_BYTES
        self._stacked = None
        # One input at a time is bound by per-operator overhead, not arithmetic: a second intra-op thread only waits
        # for a busy core on every operator of a shared machine (demo, 2 cores at load 4: 1.05 s per input with 2
        # threads, 0.15 s with 1). Set around each call and restored, so the rest of the process keeps its setting.
        self.threads = threads

    # ---- preprocessing
    def preprocess(self, image) -> np.ndarray:
        """The eval transform of the run (open_clip's, as ``eval`` used) applied to a PIL image or uint8 RGB array.

        For the demo (32 px inputs) it equals ``pipeline.TensorImageDataset``: resize and crop are identities.
        Returns a float32 array (3, H, W).
        """
        from PIL import Image

        if isinstance(image, np.ndarray):
            image = Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8))
        return self._transform(image.convert("RGB")).numpy()

    def model_view(self, image) -> np.ndarray:
        """What the model gets, as a uint8 RGB image (H, W, 3): the preprocessed input with the normalisation undone."""
        from torchvision.transforms import Normalize

        x = self._as_input(image)
        norm = next((t for t in getattr(self._transform, "transforms", []) if isinstance(t, Normalize)), None)
        if norm is not None:
            x = x * np.asarray(norm.std, np.float32)[:, None, None] + np.asarray(norm.mean, np.float32)[:, None, None]
        return (np.clip(x.transpose(1, 2, 0), 0, 1) * 255).round().astype(np.uint8)

    # ---- theta(alpha)
    def model_at(self, alpha: float):
        """The classifier at theta(alpha), built with the in-place interpolator and kept in an LRU over alpha."""
        alpha = round(float(alpha), 6)
        with self._lock:
            if alpha in self._models:
                self._models.move_to_end(alpha)
                return self._models[alpha]
            self._interpolator.set_alpha(alpha)
            model = copy.deepcopy(self._work)
            self._models[alpha] = model
            while len(self._models) > self._models_max:
                self._models.popitem(last=False)
            return model

    def logits_at(self, image, alphas) -> np.ndarray:
        """Logits (len(alphas), n_classes) of theta(alpha) for each alpha, one forward pass each."""
        import torch

        x = torch.from_numpy(self._as_input(image))[None]
        models = [self.model_at(a) for a in alphas]
        with torch.no_grad(), self._lock, _torch_threads(self.threads):
            return np.stack([model(x)[0].float().numpy() for model in models])

    def grid(self, image) -> Grid:
        """Logits of every alpha of the method's grid for one input (raw image or ``preprocess`` output)."""
        import torch

        x = torch.from_numpy(self._as_input(image))[None]
        with torch.no_grad(), self._lock, _torch_threads(self.threads):
            if self.linear:
                logits = self._grid_linear(x)
            elif self.grid_batched:
                try:
                    logits = self._grid_vmap(x)
                except Exception:  # noqa: BLE001 - an operator without a batching rule: fall back, same numbers
                    self.grid_batched = False
                    logits = self._grid_loop(x)
            else:
                logits = self._grid_loop(x)
        return Grid(self.method, self.alphas.copy(), logits.float().numpy())

    def _as_input(self, image) -> np.ndarray:
        if isinstance(image, np.ndarray) and image.dtype == np.float32 and image.ndim == 3 and image.shape[0] == 3:
            return image
        return self.preprocess(image)

    def _alpha_tensor(self):
        import torch

        return torch.as_tensor(self.alphas, dtype=torch.float32)

    def _grid_loop(self, x):
        """Alpha by alpha: set theta(alpha) in place, run, stack the outputs."""
        import torch

        rows = []
        for alpha in self.alphas:
            self._interpolator.set_alpha(float(alpha))
            rows.append(self._work(x)[0])
        return torch.stack(rows)

    def _grid_vmap(self, x):
        """The whole grid in one call: theta(alpha) stacked along a new first axis, the classifier vmapped over it."""
        import torch
        from torch.func import functional_call, vmap

        if self._stacked is None:  # theta(alpha) of every grid alpha, kept: rebuilding it costs more than the forward
            interp = self._interpolator
            names = [n for n, t in self._work.state_dict(keep_vars=True).items() if torch.is_floating_point(t)]
            a = self._alpha_tensor()
            self._stacked = {
                name: torch.addcmul(start[None], a.view(-1, *([1] * start.dim())), delta[None])
                for name, start, delta in zip(names, interp.start, interp.delta)
            }
        stacked = self._stacked

        def run(params, inputs):
            return functional_call(self._work, params, (inputs,))

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "no batching rule for ... attention": slower, not wrong
            out = vmap(run, in_dims=(0, None))(stacked, x)
        return out[:, 0]

    def _grid_linear(self, x):
        """Linear probe: one encoder pass (the encoder is the zero-shot one), every alpha a matmul with its head."""
        import torch
        import torch.nn.functional as F

        self._interpolator.set_alpha(0.0)
        features = self._work.image_encoder(x)
        if self._work.head.normalize:
            features = F.normalize(features, dim=-1)
        state = self._work.state_dict()
        names = [n for n, t in state.items() if torch.is_floating_point(t)]
        parts = dict(zip(names, zip(self._interpolator.start, self._interpolator.delta)))
        a = self._alpha_tensor()
        w0, dw = parts["head.weight"]
        b0, db = parts["head.bias"]
        weights = w0[None] + a.view(-1, 1, 1) * dw[None]  # (A, C, D)
        bias = b0[None] + a.view(-1, 1) * db[None]  # (A, C)
        return torch.einsum("d,acd->ac", features[0], weights) + bias


# --------------------------------------------------------------------------------- probabilities
def top_k(probs: np.ndarray, classnames: list[str], k: int = TOP_K) -> list[tuple[int, str, float]]:
    """The ``k`` most probable classes of one probability vector: ``(class index, name, probability)``."""
    probs = np.asarray(probs)
    order = np.argsort(-probs, kind="stable")[:k]
    return [(int(i), classnames[i], float(probs[i])) for i in order]


# ------------------------------------------------------------------------------------- inputs
FONT_FAMILIES = {
    "id": "plain (the ID fonts)",
    "pretrain": "seen in pretraining",
    "decorative": "decorative (held out)",
    "handwriting": "handwriting (held out)",
}
BACKGROUNDS = ("paper", "colour", "gradient", "photo")
CORRUPTIONS = ("none", "noise", "blur", "pixelate", "contrast", "saltpepper")


def ink_colours() -> list[str]:
    from .datasets.demo_world import _COLOURS

    return list(_COLOURS)


def glyph_classes() -> tuple[str, list[str]]:
    """The demo world's characters and their class names (``demo_world.ID_CHARS``, ``ID_CLASSNAMES``)."""
    from .datasets.demo_world import ID_CHARS, ID_CLASSNAMES

    return ID_CHARS, list(ID_CLASSNAMES)


def composes_for(store: Store) -> bool:
    """True when the store's ID classes are the demo world's, so composed or drawn glyphs have a true class."""
    return store.classnames(store.id) == glyph_classes()[1]


def font_choices(family: str) -> list[str]:
    """Font files of a family of the demo world (``demo_world.discover_fonts``); LiveError without fonts."""
    from .datasets.demo_world import FontError, discover_fonts

    if family not in FONT_FAMILIES:
        raise LiveError(f"Unknown font family {family!r}; pick one of {', '.join(FONT_FAMILIES)}.")
    try:
        return list(discover_fonts()[family])
    except FontError as exc:
        raise LiveError(
            str(exc).split(". On Debian")[0] + ". Composing needs the demo's fonts; drawing and uploading still work."
        ) from None


@dataclass
class GlyphSpec:
    """One glyph of the demo world, factor by factor (each factor is what one shift changes)."""

    character: str = "A"  # one of demo_world.ID_CHARS (the 36 classes)
    font_family: str = "id"  # id | pretrain | decorative | handwriting (the last two held out of pretraining and ID)
    font_index: int = 0  # which font of the family (wraps around)
    size: int = 22  # font size in px on the 32 px canvas (ID images use 19-26)
    background: str = "paper"  # paper (ID-like light grey) | colour | gradient | photo (the backgrounds shift)
    ink: str = "black"  # a demo_world colour name
    outline: bool = False  # outline-only glyph (the sketch shift)
    inverted: bool = False  # light glyph on dark ground (the inverted shift)
    rotation: float = 0.0  # degrees, counter-clockwise (the rotation shift uses 15-40)
    corruption: str = "none"  # none | noise | blur | pixelate | contrast | saltpepper (the corruptions shift)
    severity: float = 0.5  # corruption severity in [0, 1]
    seed: int = 0  # the random parts: photo crop, colours, noise


def compose_glyph(spec: GlyphSpec) -> np.ndarray:
    """Render a glyph with the demo world's own renderer. Returns uint8 RGB (32, 32, 3), as the store's images."""
    from .datasets import demo_world as world

    chars = world.ID_CHARS
    if spec.character not in chars:
        raise LiveError(f"Character {spec.character!r} is not a class of the demo; pick one of {chars}.")
    if spec.background not in BACKGROUNDS:
        raise LiveError(f"Unknown background {spec.background!r}; pick one of {', '.join(BACKGROUNDS)}.")
    if spec.corruption not in CORRUPTIONS:
        raise LiveError(f"Unknown corruption {spec.corruption!r}; pick one of {', '.join(CORRUPTIONS)}.")
    if spec.ink not in world._COLOURS:
        raise LiveError(f"Unknown ink colour {spec.ink!r}; pick one of {', '.join(world._COLOURS)}.")
    fonts = font_choices(spec.font_family)
    rng = np.random.default_rng(int(spec.seed))
    font = fonts[int(spec.font_index) % len(fonts)]
    mask = world._glyph_mask(spec.character, font, int(spec.size), rng, float(spec.rotation), 1.0, bool(spec.outline), jitter=0.0)
    if spec.background == "paper":
        ground = np.full((32, 32, 3), 0.9, np.float32)
    else:
        ground = world._background(rng, spec.background)
    img = world._compose(mask, world._COLOURS[spec.ink], ground)
    if spec.corruption != "none":
        img = world._corrupt(img, rng, spec.corruption, float(np.clip(spec.severity, 0.0, 1.0)))
    if spec.inverted:
        img = 1.0 - img
    return (np.clip(img, 0, 1) * 255).round().astype(np.uint8)


def drawing_to_image(rgba: np.ndarray | None, fit: bool = True, fill: float = 0.55) -> np.ndarray | None:
    """A canvas drawing (RGBA, transparent or white ground) as uint8 RGB on white; ``None`` when it is blank.

    ``fit`` crops a square around the strokes so that the glyph fills ``fill`` of the side, as the demo's
    rendered characters do (a glyph drawn small in a corner is otherwise a few pixels at 32 px).
    """
    if rgba is None:
        return None
    rgba = np.asarray(rgba)
    if rgba.ndim != 3 or rgba.shape[2] not in (3, 4) or rgba.size == 0:
        return None
    rgb = rgba[..., :3].astype(np.float32)
    alpha = rgba[..., 3:4].astype(np.float32) / 255.0 if rgba.shape[2] == 4 else np.ones(rgb.shape[:2] + (1,), np.float32)
    on_white = rgb * alpha + 255.0 * (1.0 - alpha)
    ink = 255.0 - on_white.mean(axis=2)
    rows, cols = np.flatnonzero((ink > 24).any(axis=1)), np.flatnonzero((ink > 24).any(axis=0))
    if len(rows) == 0:
        return None
    image = np.clip(on_white.round(), 0, 255).astype(np.uint8)
    if not fit:
        return image
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    side = int(np.ceil(max(bottom - top, right - left) / fill))
    cy, cx = (top + bottom) / 2, (left + right) / 2
    y0, x0 = int(round(cy - side / 2)), int(round(cx - side / 2))
    out = np.full((side, side, 3), 255, np.uint8)
    sy0, sx0 = max(y0, 0), max(x0, 0)
    sy1, sx1 = min(y0 + side, image.shape[0]), min(x0 + side, image.shape[1])
    out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = image[sy0:sy1, sx0:sx1]
    return out


def read_upload(data: bytes | None, max_mb: float = MAX_UPLOAD_MB, max_pixels: int = MAX_UPLOAD_PIXELS):
    """Decode an uploaded file the way evaluation reads images (PIL, first frame, ``convert("RGB")``).

    Returns ``(image, notes)``: a PIL RGB image and sentences to show beside it (a CMYK or animated
    file is read, as evaluation would read it, with a note saying what happened).

    Raises:
        UploadError: empty, over ``max_mb``, over ``max_pixels``, not an image, or truncated.
    """
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise UploadError("The file is empty (0 bytes). Upload a PNG, JPEG, WebP, BMP or GIF image.")
    if len(data) > max_mb * 2**20:
        raise UploadError(f"The file is {len(data) / 2**20:.1f} MB; the limit is {max_mb:g} MB. Upload a smaller image.")
    notes = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            width, height = img.size
            if width * height > max_pixels:
                raise UploadError(
                    f"The image is {width:,} x {height:,} pixels; the limit is {max_pixels / 1e6:.0f} million pixels. Resize it first."
                )
            if width == 0 or height == 0:
                raise UploadError("The image has no pixels (width or height 0).")
            frames = getattr(img, "n_frames", 1)
            if frames > 1:
                notes.append(f"Animated image ({frames} frames): only the first frame is classified, as evaluation would read it.")
            if img.mode == "CMYK":
                notes.append("CMYK image: converted to RGB with PIL's convert('RGB'), as evaluation does; colours may look different.")
            img.load()
            rgb = img.convert("RGB")
    except UploadError:
        raise
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise UploadError(f"The image is too large to decode safely (over {max_pixels / 1e6:.0f} million pixels).") from None
    except UnidentifiedImageError:
        raise UploadError("This file is not an image PIL can read. Upload a PNG, JPEG, WebP, BMP or GIF image.") from None
    except (OSError, SyntaxError, ValueError) as exc:  # truncated or corrupt data
        raise UploadError(f"The image cannot be decoded ({type(exc).__name__}: {str(exc)[:120]}). The file may be truncated.") from None
    return rgb, notes
