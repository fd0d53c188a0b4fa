"""The demo world: glyph images rendered from system fonts, with captions, and eight distribution shifts.

A tiny CLIP is pretrained contrastively on a broad captioned set (62 characters in hundreds of fonts,
random colours, backgrounds, rotations, outlines, sketches and corruptions). The ID task is 36 classes
(digits and capital letters) in a few plain fonts with ID-style nuisances (grey levels, noise, jitter).
Shifts change one factor at a time; the fonts of the ``decorative`` and ``handwriting`` shifts are
held out *by family* from pretraining and from ID.

Everything is deterministic given the seed. Fonts come from the system (``fc-list``); on Debian the
set-up installs the packages in ``shared/data/demo/debian-font-packages.txt`` (copied to
``metadata/demo_font_packages.txt``). On other systems any folder of .ttf/.otf files can be passed with
``ROBUST_DEMO_FONT_DIRS=/path/a:/path/b``.
"""

from __future__ import annotations

import os
import subprocess
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

import numpy as np

DIGITS = "0123456789"
UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
LOWER = "abcdefghijklmnopqrstuvwxyz"
ID_CHARS = DIGITS + UPPER  # the 36 ID classes
ALL_CHARS = DIGITS + UPPER + LOWER  # what pretraining captions describe
_NUMBER_WORDS = "zero one two three four five six seven eight nine".split()

SHIFTS = (
    "backgrounds",  # colour and photo-texture backgrounds
    "corruptions",  # ImageNet-C-style noise, blur, pixelation, contrast
    "decorative",  # held-out decorative / display font families
    "handwriting",  # held-out handwriting font families
    "inverted",  # light glyph on dark ground
    "rotation",  # rotation (15-40 degrees) and scale changes
    "sketch",  # outline-only glyphs
    "sklearn-digits",  # real handwritten digits (sklearn's 8x8 set), classes 0-9
)

# Font families held out of pretraining and ID (matched against the font's path, lower case).
HANDWRITING_KEYS = (
    "dkg-handwriting",
    "breip",
    "bwht",
    "femkeklaver",
    "humor-sans",
    "humor",
    "comic-neue",
    "comicneue",
    "dancingscript",
    "kaushanscript",
    "kristi",
    "rufscript",
    "sjfonts",
    "tomsontalks",
    "leckerli",
    "lobster",
    "isabella",
    "cabinsketch",
    "havana",
    "joscelyn",
    "yusei",
)
DECORATIVE_KEYS = (
    "unifont",
    "sixtyfour",
    "dotgothic",
    "train",
    "f500",
    "radisnoir",
    "gotico",
    "bebas",
    "yanone",
    "ocr-a",
    "ocr-b",
    "ocra",
    "ocrb",
    "beteckna",
    "opendyslexic",
    "averia",
)
# Plain families used for the ID task (also seen in pretraining, as in real CLIP data).
ID_FONT_KEYS = ("dejavusans.ttf", "liberationsans-regular", "freesans.ttf", "nimbussans-regular", "lato-regular", "roboto-regular")


def class_prompt_name(char: str) -> str:
    """The text name of a character class, e.g. ``digit seven``, ``capital letter a``."""
    if char in DIGITS:
        return f"digit {_NUMBER_WORDS[int(char)]}"
    if char in UPPER:
        return f"capital letter {char.lower()}"
    return f"small letter {char}"


ID_CLASSNAMES = [class_prompt_name(c) for c in ID_CHARS]


class FontError(RuntimeError):
    pass


def _font_files() -> list[str]:
    dirs = os.environ.get("ROBUST_DEMO_FONT_DIRS")
    files: list[str] = []
    if dirs:
        for d in dirs.split(os.pathsep):
            files += [str(p) for p in Path(d).rglob("*") if p.suffix.lower() in (".ttf", ".otf")]
    else:
        try:
            out = subprocess.run(["fc-list", ":", "file"], capture_output=True, text=True, check=True).stdout
            files = [line.split(":")[0].strip() for line in out.splitlines() if line.strip()]
        except (OSError, subprocess.CalledProcessError):
            for d in ("/usr/share/fonts", "/usr/local/share/fonts", "/Library/Fonts", "C:/Windows/Fonts"):
                files += [str(p) for p in Path(d).rglob("*") if p.suffix.lower() in (".ttf", ".otf")]
    return sorted({f for f in files if f.lower().endswith((".ttf", ".otf")) and "noto" not in f.lower()})


def _usable(path: str) -> bool:
    """A font is usable if digits and letters render as distinct non-empty glyphs."""
    from PIL import ImageFont

    try:
        font = ImageFont.truetype(path, 24)
        masks = []
        for ch in "0A8aBg":
            mask = font.getmask(ch)
            if mask.getbbox() is None:
                return False
            masks.append(bytes(mask))
        return len(set(masks)) == len(masks)
    except Exception:
        return False


@cache
def discover_fonts() -> dict[str, list[str]]:
    """Split usable system fonts into ``id``, ``pretrain``, ``decorative`` and ``handwriting`` groups."""
    files = [f for f in _font_files() if _usable(f)]
    groups = {"id": [], "pretrain": [], "decorative": [], "handwriting": []}
    for f in files:
        low = f.lower()
        if any(k in low for k in HANDWRITING_KEYS):
            groups["handwriting"].append(f)
        elif any(k in low for k in DECORATIVE_KEYS):
            groups["decorative"].append(f)
        else:
            groups["pretrain"].append(f)
            if any(Path(low).name.startswith(k) or Path(low).name == k for k in ID_FONT_KEYS):
                groups["id"].append(f)
    missing = [k for k, v in groups.items() if not v]
    if missing or len(groups["pretrain"]) < 20:
        raise FontError(
            f"The demo needs system fonts (found {len(files)} usable; empty groups: {missing}). On Debian/Ubuntu "
            "run: apt-get install -y --no-install-recommends $(cat robust_core/datasets/metadata/demo_font_packages.txt). "
            "Elsewhere set ROBUST_DEMO_FONT_DIRS to folders of .ttf/.otf files (include handwriting and "
            "decorative fonts whose paths contain the names listed in robust_core/datasets/demo_world.py)."
        )
    return groups


# ---------------------------------------------------------------------------------------- rendering
@cache
def _backgrounds() -> list[np.ndarray]:
    """Photo textures from scikit-image's bundled images, as float RGB in [0, 1]."""
    import skimage.data as sd

    out = []
    for name in (
        "astronaut",
        "coffee",
        "chelsea",
        "rocket",
        "brick",
        "grass",
        "gravel",
        "coins",
        "moon",
        "page",
        "text",
        "retina",
        "immunohistochemistry",
        "colorwheel",
    ):
        img = np.asarray(getattr(sd, name)(), dtype=np.float32)
        img = img / 255.0 if img.max() > 1.5 else img
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        out.append(img[..., :3])
    return out


@lru_cache(maxsize=256)
def _font(path: str, size: int):
    from PIL import ImageFont

    return ImageFont.truetype(path, size)


def _glyph_mask(
    char: str,
    font_path: str,
    size: int,
    rng: np.random.Generator,
    rotation: float,
    scale: float,
    outline: bool,
    canvas: int = 32,
    jitter: float = 2.0,
) -> np.ndarray:
    """Render one glyph as a float mask in [0, 1] on a ``canvas`` square (supersampled 2x)."""
    from PIL import Image, ImageDraw, ImageFilter

    big = canvas * 2
    img = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(img)
    font = _font(font_path, max(8, int(size * 2 * scale)))
    box = draw.textbbox((0, 0), char, font=font)
    w, h = box[2] - box[0], box[3] - box[1]
    x = (big - w) / 2 - box[0] + rng.normal(0, jitter * 2)
    y = (big - h) / 2 - box[1] + rng.normal(0, jitter * 2)
    if outline:
        draw.text((x, y), char, fill=255, font=font, stroke_width=2, stroke_fill=255)
        inner = Image.new("L", (big, big), 0)
        ImageDraw.Draw(inner).text((x, y), char, fill=255, font=font)
        img = Image.fromarray(
            np.clip(np.asarray(img, np.int16) - np.asarray(inner.filter(ImageFilter.MinFilter(3)), np.int16), 0, 255).astype(np.uint8)
        )
    else:
        draw.text((x, y), char, fill=255, font=font)
    if rotation:
        img = img.rotate(rotation, resample=Image.BILINEAR)
    img = img.resize((canvas, canvas), Image.LANCZOS)
    return np.asarray(img, np.float32) / 255.0


def _background(rng: np.random.Generator, kind: str, canvas: int = 32) -> np.ndarray:
    if kind == "plain":
        return np.ones((canvas, canvas, 3), np.float32) * rng.uniform(0.8, 1.0)
    if kind == "colour":
        return np.ones((canvas, canvas, 3), np.float32) * rng.uniform(0, 1, 3).astype(np.float32)
    if kind == "gradient":
        a, b = rng.uniform(0, 1, 3), rng.uniform(0, 1, 3)
        t = np.linspace(0, 1, canvas, dtype=np.float32)[:, None, None]
        grad = a * (1 - t) + b * t
        return np.broadcast_to(grad if rng.random() < 0.5 else grad.transpose(1, 0, 2), (canvas, canvas, 3)).astype(np.float32)
    photos = _backgrounds()
    photo = photos[rng.integers(len(photos))]
    size = int(rng.integers(canvas, min(photo.shape[:2]) // 2))
    y0 = rng.integers(0, photo.shape[0] - size)
    x0 = rng.integers(0, photo.shape[1] - size)
    crop = photo[y0 : y0 + size, x0 : x0 + size]
    idx = (np.arange(canvas) * size / canvas).astype(int)
    return crop[idx][:, idx].astype(np.float32)


_COLOURS = {
    "black": (0.05, 0.05, 0.05),
    "white": (0.97, 0.97, 0.97),
    "red": (0.85, 0.1, 0.1),
    "green": (0.1, 0.65, 0.15),
    "blue": (0.1, 0.2, 0.85),
    "yellow": (0.95, 0.85, 0.1),
    "orange": (0.95, 0.55, 0.05),
    "purple": (0.55, 0.15, 0.7),
    "grey": (0.5, 0.5, 0.5),
    "pink": (0.95, 0.5, 0.7),
    "brown": (0.5, 0.3, 0.1),
    "cyan": (0.1, 0.8, 0.85),
}


def _corrupt(img: np.ndarray, rng: np.random.Generator, kind: str, severity: float) -> np.ndarray:
    if kind == "noise":
        img = img + rng.normal(0, 0.08 + 0.12 * severity, img.shape)
    elif kind == "blur":
        from scipy.ndimage import gaussian_filter

        img = gaussian_filter(img, sigma=(0.6 + 0.9 * severity, 0.6 + 0.9 * severity, 0))
    elif kind == "pixelate":
        f = 2 + int(severity * 2)
        small = img[::f, ::f]
        img = np.repeat(np.repeat(small, f, 0), f, 1)[: img.shape[0], : img.shape[1]]
    elif kind == "contrast":
        mean = img.mean()
        img = mean + (img - mean) * (0.35 - 0.2 * severity)
    elif kind == "saltpepper":
        mask = rng.random(img.shape[:2]) < 0.05 + 0.1 * severity
        img = img.copy()
        img[mask] = rng.integers(0, 2, (mask.sum(), 1))
    return np.clip(img, 0, 1)


def _compose(mask, ink, background):
    return background * (1 - mask[..., None]) + np.asarray(ink, np.float32) * mask[..., None]


@dataclass
class Sample:
    image: np.ndarray  # uint8 (32, 32, 3)
    label: int  # index into the character list of the split
    caption: str


def _render_id_style(char, font, rng, canvas=32) -> np.ndarray:
    """ID style: dark-grey ink on light-grey paper, jitter, sensor noise, mild blur, sometimes an occluding bar.

    The nuisances keep ID accuracy of every model below saturation (logit axes need it under ~97%).
    """
    mask = _glyph_mask(char, font, int(rng.uniform(19, 26)), rng, rotation=rng.normal(0, 6), scale=1.0, outline=False, jitter=2.2)
    paper = rng.uniform(0.7, 0.95)
    ink = rng.uniform(0.05, paper - 0.4)
    img = _compose(mask, (ink,) * 3, np.full((canvas, canvas, 3), paper, np.float32))
    img = _corrupt(img, rng, "blur", rng.uniform(0, 0.3))
    img = img + rng.normal(0, rng.uniform(0.04, 0.14), img.shape)
    if rng.random() < 0.35:  # an occluding bar hides part of the glyph
        y = int(rng.integers(6, canvas - 9))
        img[y : y + int(rng.integers(3, 6))] = rng.uniform(0.3, 0.9)
    return np.clip(img, 0, 1)


def _render_shift(shift, char, fonts, rng, canvas=32) -> np.ndarray:
    id_font = fonts["id"][rng.integers(len(fonts["id"]))]
    if shift == "backgrounds":
        mask = _glyph_mask(char, id_font, int(rng.uniform(18, 24)), rng, 0, 1.0, False)
        bg = _background(rng, ["colour", "gradient", "photo", "photo"][rng.integers(4)])
        ink = _COLOURS[list(_COLOURS)[rng.integers(len(_COLOURS))]]
        return _compose(mask, ink, bg)
    if shift == "corruptions":
        img = _render_id_style(char, id_font, rng)
        kind = ["noise", "blur", "pixelate", "contrast", "saltpepper"][rng.integers(5)]
        return _corrupt(img, rng, kind, rng.uniform(0.4, 1.0))
    if shift in ("decorative", "handwriting"):
        font = fonts[shift][rng.integers(len(fonts[shift]))]
        mask = _glyph_mask(char, font, int(rng.uniform(18, 24)), rng, rng.normal(0, 5), 1.0, False)
        return _compose(mask, (0.1,) * 3, np.full((canvas, canvas, 3), 0.9, np.float32))
    if shift == "inverted":
        return 1.0 - _render_id_style(char, id_font, rng)
    if shift == "rotation":
        # 15-40 degrees: v1 used 25-70 and every model sat at chance there (a dead shift).
        angle = rng.choice([-1, 1]) * rng.uniform(15, 40)
        mask = _glyph_mask(char, id_font, 20, rng, angle, rng.uniform(0.6, 1.3), False)
        return _compose(mask, (0.1,) * 3, np.full((canvas, canvas, 3), 0.9, np.float32))
    if shift == "sketch":
        mask = _glyph_mask(char, id_font, int(rng.uniform(20, 26)), rng, 0, 1.0, True)
        return _compose(mask, (0.1,) * 3, np.full((canvas, canvas, 3), 0.92, np.float32))
    raise ValueError(f"unknown shift {shift}")


def _caption(char: str, style: str, ink: str, bg: str, rng) -> str:
    """Captions always name the character; style and colour words appear in some of them."""
    name = class_prompt_name(char)
    forms = [
        f"the {name}",
        f"the {name}",
        f"a {style} of the {name}",
        f"an image of the {name}",
        f"the {name} in {ink}",
        f"a {style} of the {name} in {ink} on a {bg} background",
    ]
    return forms[rng.integers(len(forms))]


def _luminance(rgb) -> float:
    return float(np.dot(np.asarray(rgb, np.float32), [0.299, 0.587, 0.114]))


def _contrasting_ink(rng, background: np.ndarray) -> tuple[str, tuple]:
    """A named ink colour that stands out from the background (luminance gap >= 0.3)."""
    bg_lum = _luminance(background.reshape(-1, 3).mean(0))
    names = list(_COLOURS)
    for _ in range(8):
        name = names[rng.integers(len(names))]
        if abs(_luminance(_COLOURS[name]) - bg_lum) >= 0.3:
            return name, _COLOURS[name]
    return ("black", _COLOURS["black"]) if bg_lum > 0.5 else ("white", _COLOURS["white"])


def _pretrain_sample(args) -> tuple[np.ndarray, str]:
    """One captioned pretraining image: broad styles, but the glyph always stands out."""
    seed, fonts = args
    rng = np.random.default_rng(seed)
    char = ALL_CHARS[rng.integers(len(ALL_CHARS))]
    font = fonts[rng.integers(len(fonts))]
    style = ["photo", "photo", "photo", "rendering", "sketch", "outline", "drawing", "rotated photo", "noisy photo", "blurry photo"][
        rng.integers(10)
    ]
    rotation = rng.normal(0, 25) if "rotated" in style else rng.normal(0, 5)
    scale = rng.uniform(0.8, 1.2)
    mask = _glyph_mask(char, font, int(rng.uniform(20, 27)), rng, rotation, scale, style in ("sketch", "outline"), jitter=1.5)
    bg_kind = ["plain", "plain", "plain", "colour", "gradient", "photo", "texture"][rng.integers(7)]
    bg_name = {"plain": "white", "texture": "textured", "photo": "photo"}.get(bg_kind, "coloured")
    bg = _background(rng, "photo" if bg_kind == "texture" else bg_kind)
    if bg_kind == "plain" and rng.random() < 0.3:
        bg = 1.0 - bg
        bg_name = "dark"
    ink_name, ink = _contrasting_ink(rng, bg)
    img = _compose(mask, ink, bg)
    if "noisy" in style:
        img = _corrupt(img, rng, "noise", rng.uniform(0, 0.8))
    elif "blurry" in style:
        img = _corrupt(img, rng, "blur", rng.uniform(0, 0.7))
    elif rng.random() < 0.2:
        img = _corrupt(img, rng, ["noise", "blur", "pixelate", "contrast", "saltpepper"][rng.integers(5)], rng.uniform(0, 0.6))
    caption = _caption(char, style, ink_name, bg_name, rng)
    if rng.random() < 0.03:  # a few wrong captions, as in web data
        caption = _caption(ALL_CHARS[rng.integers(len(ALL_CHARS))], style, ink_name, bg_name, rng)
    return (np.clip(img, 0, 1) * 255).round().astype(np.uint8), caption


def _id_sample(args):
    seed, char_index, fonts = args
    rng = np.random.default_rng(seed)
    font = fonts["id"][rng.integers(len(fonts["id"]))]
    return (_render_id_style(ID_CHARS[char_index], font, rng) * 255).round().astype(np.uint8)


def _shift_sample(args):
    seed, shift, char_index, fonts = args
    rng = np.random.default_rng(seed)
    return (_render_shift(shift, ID_CHARS[char_index], fonts, rng) * 255).round().astype(np.uint8)


def _map(fn, items, workers):
    if workers <= 1:
        return [fn(i) for i in items]
    with ProcessPoolExecutor(workers) as pool:
        return list(pool.map(fn, items, chunksize=256))


def sklearn_digits(n: int, seed: int, canvas: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """sklearn's bundled 8x8 handwritten digits, upsampled, dark ink on light ground."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(digits.images), min(n, len(digits.images)), replace=False)
    out = []
    for i in pick:
        img = 1.0 - digits.images[i] / 16.0
        pil = Image.fromarray((img * 255).astype(np.uint8)).resize((22, 22), Image.BILINEAR)
        canvas_img = np.full((canvas, canvas), 255, np.uint8)
        canvas_img[5:27, 5:27] = np.asarray(pil)
        out.append(np.repeat(canvas_img[..., None], 3, axis=2))
    return np.stack(out), digits.target[pick].astype(np.int64)  # digit d is class d of ID_CHARS


@dataclass
class DemoWorldConfig:
    seed: int = 0  # all rendering is a function of this seed
    n_pretrain: int = 56000  # captioned pretraining images (62 characters, all non-held-out fonts)
    n_id_train: int = 7200  # ID training images (36 classes, balanced)
    n_id_val: int = 1000  # ID held-out validation (choosing alpha, greedy soup)
    n_id_test: int = 2000  # ID test (paired differences of ~2 points are decisive at this size)
    n_shift: int = 500  # images per shift
    workers: int = 2  # rendering processes


def render_world(config: DemoWorldConfig, progress=None) -> dict[str, dict]:
    """Render every split. Returns ``{split: {"images": uint8 (N,32,32,3), "labels" | "captions"}}``."""
    fonts = discover_fonts()
    base = np.random.SeedSequence(config.seed)
    seeds = iter(base.spawn(20))

    def seeds_for(n):
        return np.random.default_rng(next(seeds)).integers(0, 2**63 - 1, n)

    out: dict[str, dict] = {}
    pt_seeds = seeds_for(config.n_pretrain)
    pretrain = _map(_pretrain_sample, [(int(s), fonts["pretrain"]) for s in pt_seeds], config.workers)
    out["pretrain"] = {"images": np.stack([p[0] for p in pretrain]), "captions": np.array([p[1] for p in pretrain])}
    if progress:
        progress("pretrain", len(pretrain))
    for split, n in (("id-train", config.n_id_train), ("id-val", config.n_id_val), ("id-test", config.n_id_test)):
        labels = np.arange(n) % len(ID_CHARS)
        s = seeds_for(n)
        images = _map(_id_sample, [(int(s[i]), int(labels[i]), fonts) for i in range(n)], config.workers)
        out[split] = {"images": np.stack(images), "labels": labels.astype(np.int64)}
        if progress:
            progress(split, n)
    for shift in SHIFTS:
        s = seeds_for(config.n_shift)
        if shift == "sklearn-digits":
            images, labels = sklearn_digits(config.n_shift, int(s[0]) % (2**32))
        else:
            labels = np.arange(config.n_shift) % len(ID_CHARS)
            images = np.stack(
                _map(_shift_sample, [(int(s[i]), shift, int(labels[i]), fonts) for i in range(config.n_shift)], config.workers)
            )
        out[shift] = {"images": images, "labels": labels.astype(np.int64)}
        if progress:
            progress(shift, len(labels))
    return out
