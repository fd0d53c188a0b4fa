"""The embedded demo: render a glyph world, pretrain a tiny CLIP, fine-tune it four ways, build the store.

Run (about 10-15 minutes on 2 CPU cores; writes ``cache/demo``)::

    python -m robust_core demo

Every step goes through the general code: ``finetune.finetune`` (FT, LP, LP-FT, FLYP),
``pipeline.build_store`` (decode-once alpha grid), ``baselines`` (standard models for the line).
Intermediate files (rendered data, checkpoints) go to ``cache/demo/_build`` (not committed); the
store itself is small enough to commit.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import open_clip
import torch

from .baselines import BaselineSpec, default_family, train_standard_model
from .datasets import EvalSet
from .datasets import demo_world as world
from .evaluate import EvalConfig, MethodSpec
from .finetune import FinetuneConfig, contrastive_train, finetune, set_seed
from .models import CheckpointInfo, build_classifier, build_zeroshot_head, load_clip, save_classifier
from .pipeline import TensorImageDataset, build_store
from .store import Store, _publish, annotate_manifest, attach_table, recover_swap, staging_path, swap_in
from .summaries import write_summaries
from .templates import get_templates
from .wise import default_alpha_grid

DEMO_ARCH = "tiny-rn16-demo"


@dataclass
class SoupIngredient:
    """One FT run of the soup: the hyper-parameters that differ between ingredients (Wortsman et al. 2022)."""

    lr: float
    epochs: int
    seed: int
    augment: bool = False
    label_smoothing: float = 0.0

    @property
    def label(self) -> str:
        extras = (
            [f"seed {self.seed}"]
            + (["augmented"] if self.augment else [])
            + ([f"label smoothing {self.label_smoothing:g}"] if self.label_smoothing else [])
        )
        return f"FT run (lr {self.lr:g}, {self.epochs} epochs, {', '.join(extras)})"

    @property
    def name(self) -> str:
        aug = "-aug" if self.augment else ""
        ls = f"-ls{self.label_smoothing:g}" if self.label_smoothing else ""
        return f"ft-lr{self.lr:g}-e{self.epochs}-s{self.seed}{aug}{ls}"


def default_soup() -> list[SoupIngredient]:
    """Five FT runs from the zero-shot head that differ in lr, epochs, seed, augmentation, smoothing."""
    return [
        SoupIngredient(5e-5, 6, 1),
        SoupIngredient(1e-4, 4, 2, augment=True),
        SoupIngredient(2e-4, 6, 3),
        SoupIngredient(1e-4, 8, 4, augment=True, label_smoothing=0.1),
        SoupIngredient(3e-5, 8, 5, augment=True),
    ]


def ingredient_labels(config: DemoConfig) -> dict[str, str]:
    """Readable labels of the soups and their ingredients (FT itself is the first ingredient)."""
    return {**{ing.name: ing.label for ing in config.soup}, "uniform-soup": "uniform soup", "greedy-soup": "greedy soup"}


METHOD_LABELS = {
    "ft": "FT (end-to-end)",
    "lp": "LP (linear probe)",
    "lpft": "LP-FT",
    "flyp": "FLYP",
    "ft-random-head": "FT from a random head (Kumar et al.'s baseline)",
}


@dataclass
class DemoConfig:
    world: world.DemoWorldConfig = field(default_factory=world.DemoWorldConfig)
    arch: str = DEMO_ARCH  # open_clip config in robust_core/model_configs (ModifiedResNet, width 16)
    pretrain_epochs: int = 12  # contrastive epochs over the captioned set (5: ~30% zero-shot ID, 8: ~60%)
    pretrain_lr: float = 2e-3
    pretrain_batch: int = 256
    finetune_epochs: int = 6  # FT / LP-FT / FLYP epochs on the ID training set
    finetune_lr: float = 1e-4
    flyp_lr: float = 1e-4
    random_head_lr: float = 2e-4  # FT from a random head: lr, epochs and head scale chosen so its ID accuracy
    random_head_epochs: int = 10  # matches LP-FT's (Kumar et al. compare the two at equal ID accuracy); at
    random_head_scale: float = 1.0  # FT's lr and epochs it reached only 51% ID (the head must first grow)
    finetune_batch: int = 128
    warmup_steps: int = 50
    lp_l2: float = 1e-3
    methods: tuple[str, ...] = ("ft", "lp", "lpft", "flyp", "ft-random-head")
    soup: list[SoupIngredient] = field(default_factory=default_soup)  # extra FT runs; FT itself is the first ingredient
    baselines: list[BaselineSpec] = field(default_factory=default_family)
    alpha_step: float = 0.1  # 11 alphas (the committed store must stay under 50 MiB)
    eval_sizes: dict | None = None  # examples per set (None: the whole rendered set)
    feature_rows: int = 500  # examples per set whose alpha-0/alpha-1 features are kept (CKA, feature distortion)
    thumbnails_per_set: int = 120  # PNG thumbnails of disagreements kept per set
    ship_weights: bool = True  # fp16 image tower + head of zero-shot and of every method's endpoint in the store
    seed: int = 0
    threads: int | None = None  # torch CPU threads (None: torch default)


def miniature_config() -> DemoConfig:
    """A seconds-long version of the demo for tests (same code paths, tiny sizes)."""
    return DemoConfig(
        world=world.DemoWorldConfig(n_pretrain=512, n_id_train=144, n_id_val=72, n_id_test=72, n_shift=36, workers=1),
        pretrain_epochs=1,
        pretrain_batch=128,
        finetune_epochs=1,
        random_head_epochs=1,
        finetune_batch=72,
        warmup_steps=2,
        soup=[SoupIngredient(2e-4, 1, 1, augment=True)],
        baselines=[BaselineSpec(4, 2, 1), BaselineSpec(8, 2, 1), BaselineSpec(8, 3, 1)],
        alpha_step=0.5,
        feature_rows=36,
        thumbnails_per_set=8,
    )


def _log(msg: str) -> None:
    print(f"[demo {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _png(image: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _key(*parts) -> str:
    """A short content hash of JSON-able parts (cache keys of the build steps)."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


class DemoExistsError(RuntimeError):
    pass


def default_miniature_out() -> Path:
    return Path(tempfile.gettempdir()) / "robust-demo-miniature"


def _render(config: DemoConfig, build: Path) -> dict:
    data_file = build / f"world-{_key(asdict(config.world))}.npz"
    if data_file.exists():
        loaded = np.load(data_file, allow_pickle=False)
        data: dict = {}
        for key in loaded.files:
            split, part = key.rsplit("/", 1)
            data.setdefault(split, {})[part] = loaded[key]
        _log(f"reusing rendered data {data_file.name}")
        _REUSED.add("render")
        return data
    _log(f"rendering the glyph world ({config.world.n_pretrain} pretraining images)...")
    data = world.render_world(config.world, progress=lambda s, n: _log(f"  rendered {s}: {n}"))
    flat = {f"{s}/{k}": v for s, d in data.items() for k, v in d.items()}
    tmp = build / (data_file.name + ".tmp.npz")
    np.savez_compressed(tmp, allow_pickle=False, **flat)
    _publish(tmp, data_file)
    return data


def _pretrain(config: DemoConfig, data: dict, build: Path, device: str):
    """The tiny CLIP, pretrained contrastively (cached by everything it depends on)."""
    from safetensors.torch import load_file, save_file

    from .models import _CONFIG_DIR

    arch_file = _CONFIG_DIR / f"{config.arch}.json"
    key = _key(
        asdict(config.world),
        arch_file.read_text() if arch_file.exists() else config.arch,
        config.pretrain_epochs,
        config.pretrain_lr,
        config.pretrain_batch,
        config.seed,
    )
    model, _, tokenizer = load_clip(config.arch, pretrained=None)
    clip_path = build / f"clip-{key}.safetensors"
    if clip_path.exists():
        model.load_state_dict(load_file(str(clip_path)))
        _log("reusing pretrained tiny CLIP")
        _REUSED.add("pretrain")
        return model.cpu().eval(), tokenizer, key
    mean, std = open_clip.OPENAI_DATASET_MEAN, open_clip.OPENAI_DATASET_STD
    captions = data["pretrain"]["captions"]
    pretrain_set = TensorImageDataset(data["pretrain"]["images"], np.arange(len(captions)), mean, std)
    cfg = FinetuneConfig(
        method="pretrain",
        epochs=config.pretrain_epochs,
        lr=config.pretrain_lr,
        weight_decay=0.1,
        batch_size=config.pretrain_batch,
        warmup_steps=50,
        freeze_bn=False,
        seed=config.seed,
        device=device,
        num_workers=0,
    )
    _log(f"pretraining {config.arch} contrastively ({config.pretrain_epochs} epochs)...")
    model, _ = contrastive_train(
        model,
        tokenizer,
        pretrain_set,
        lambda idx, rng: [str(captions[int(i)]) for i in idx],
        cfg,
        resume_path=build / f"pretrain-{key}.resume.pt",
        desc="pretrain",
    )
    tmp = build / (clip_path.name + ".tmp")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp))
    _publish(tmp, clip_path)
    (build / f"pretrain-{key}.resume.pt").unlink(missing_ok=True)
    return model.cpu().eval(), tokenizer, key


_NEUTRAL = {"head_init_scale": 1.0}
_REUSED: set[str] = (
    set()
)  # build steps taken from the cache in this process (reported with the timings)  # FinetuneConfig options added after the first cached builds


def _finetune_cached(name, cfg, model, tokenizer, zeroshot, train_set, classnames, templates, arch, build, parent_key):
    """Fine-tune once per (pretrained model, config); returns (state dict, info, sha256)."""
    from .models import load_state_dict

    # Options at their neutral value are left out of the key, so adding an option keeps old caches valid.
    key = _key(parent_key, {k: v for k, v in asdict(cfg).items() if _NEUTRAL.get(k, object()) != v})
    ckpt_dir = build / "ckpt" / f"{name}-{key}"
    ckpt = ckpt_dir / "classifier.safetensors"
    if ckpt.exists():
        meta = json.loads(Path(str(ckpt) + ".json").read_text())
        _REUSED.add(name)
        return load_state_dict(ckpt), meta["extra"], meta["sha256"]
    _log(f"fine-tuning: {name}")
    classifier, info = finetune(model, tokenizer, zeroshot, train_set, classnames, templates, cfg, ckpt_dir)
    sha = save_classifier(classifier, ckpt, CheckpointInfo(arch, None, cfg.method, list(classnames), info))
    for stale in ckpt_dir.glob("*.resume.pt"):
        stale.unlink()
    return {k: v.detach().cpu().clone() for k, v in classifier.state_dict().items()}, info, sha


def _soups(ingredients: dict[str, dict], val_correct: dict[str, float], evaluate_val) -> tuple[dict, dict]:
    """Uniform soup (mean of all ingredients) and greedy soup (Wortsman et al. 2022, Recipe 1).

    Greedy: ingredients sorted by ID-validation accuracy, each added if the soup's validation accuracy
    does not drop. Returns ``({"uniform-soup": theta, "greedy-soup": theta}, info)``.
    """

    def mean(names):
        out = {}
        for k, v in ingredients[names[0]].items():
            if torch.is_floating_point(v):
                out[k] = sum(ingredients[n][k].float() for n in names) / len(names)
            else:
                out[k] = v.clone()
        return out

    order = sorted(ingredients, key=lambda n: -val_correct[n])
    chosen, best = [order[0]], val_correct[order[0]]
    trace = [{"ingredient": order[0], "val_accuracy": best, "added": True}]
    for name in order[1:]:
        acc = evaluate_val(mean([*chosen, name]))
        added = acc >= best
        trace.append({"ingredient": name, "val_accuracy": acc, "added": added})
        if added:
            chosen.append(name)
            best = acc
    uniform = mean(list(ingredients))
    info = {
        "ingredients": list(ingredients),
        "ingredient_val_accuracy": val_correct,
        "greedy_order": order,
        "greedy_trace": trace,
        "greedy_members": chosen,
        "greedy_val_accuracy": best,
        "uniform_val_accuracy": evaluate_val(uniform),
    }
    return {"uniform-soup": uniform, "greedy-soup": mean(chosen)}, info


def _ship_weights(out: Path, name: str, theta: dict, base: dict | None = None) -> dict:
    """Write fp16 weights into ``out/weights/<name>.safetensors``; keys equal to ``base`` are left out."""
    from safetensors.torch import save_file

    from .models import sha256_file

    keep = {}
    for k, v in theta.items():
        if base is not None and k in base and base[k].shape == v.shape and torch.equal(base[k], v):
            continue
        keep[k] = (v.half() if torch.is_floating_point(v) else v).contiguous()
    path = out / "weights" / f"{name}.safetensors"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(keep, str(tmp), metadata={"dtype": "float16", "base": "zeroshot" if base is not None else ""})
    _publish(tmp, path)
    path.chmod(0o644)
    ref = {"path": f"weights/{name}.safetensors", "sha256": sha256_file(path), "dtype": "float16"}
    if base is not None:
        ref["base"] = "zeroshot"  # missing keys (the frozen encoder) are the zero-shot model's
    return ref


@dataclass
class _Build:
    """What the build steps after pretraining share: the config, the caches, the data and theta_0."""

    config: DemoConfig
    device: str
    build: Path  # cache of rendered data and checkpoints
    data: dict  # rendered splits: data[split]["images" | "labels" | ...]
    model: torch.nn.Module  # the pretrained tiny CLIP
    tokenizer: object
    pretrain_key: str  # cache key of the pretrained model (parent of every fine-tuning key)
    head: torch.nn.Module  # zero-shot head
    zeroshot: torch.nn.Module  # zero-shot classifier (theta_0)
    theta_zeroshot: dict
    classnames: list[str]
    templates: list[str]

    def dataset(self, split: str, limit: int | None = None) -> TensorImageDataset:
        mean, std = open_clip.OPENAI_DATASET_MEAN, open_clip.OPENAI_DATASET_STD
        return TensorImageDataset(self.data[split]["images"][:limit], self.data[split]["labels"][:limit], mean, std)

    def eval_size(self, split: str) -> int | None:
        sizes = self.config.eval_sizes
        return sizes.get(split, sizes.get("shift")) if sizes else None

    def ft_config(self, method, lr, epochs=None, seed=None, augment=False, label_smoothing=0.0, head_init_scale=1.0) -> FinetuneConfig:
        config = self.config
        return FinetuneConfig(
            method=method,
            epochs=epochs or config.finetune_epochs,
            lr=lr,
            weight_decay=0.1,
            batch_size=config.finetune_batch,
            warmup_steps=config.warmup_steps,
            freeze_bn=None,
            lp_l2=config.lp_l2,
            augment=augment,
            label_smoothing=label_smoothing,
            head_init_scale=head_init_scale,
            seed=config.seed if seed is None else seed,
            device=self.device,
            num_workers=0,
            progress=False,
        )

    def run(self, name: str, cfg: FinetuneConfig, train_set) -> tuple[dict, dict, str]:
        return _finetune_cached(
            name,
            cfg,
            self.model,
            self.tokenizer,
            self.zeroshot,
            train_set,
            self.classnames,
            self.templates,
            self.config.arch,
            self.build,
            self.pretrain_key,
        )


def _prepare_out(out: str | Path, force: bool, build_dir) -> tuple[Path, Path, Path | None, Path]:
    """``(final, out, staging, build)``: refuse an existing store unless ``force``; build beside it if so."""
    final = Path(out)
    recover_swap(final)
    if (final / "manifest.json").exists() and not force:
        raise DemoExistsError(f"{final} already holds a store. Pass --force to rebuild it in place, or --out DIR to build elsewhere.")
    build = Path(build_dir) if build_dir else final / "_build"
    # A store that exists is replaced only when the new one is complete: build in a staging folder beside it.
    staging = staging_path(final) if (final / "manifest.json").exists() else None
    if staging is not None:
        shutil.rmtree(staging, ignore_errors=True)
    build.mkdir(parents=True, exist_ok=True)
    return final, staging or final, staging, build


def _zeroshot_build(config: DemoConfig, device: str, build: Path, data: dict, model, tokenizer, pretrain_key: str) -> _Build:
    """The zero-shot classifier from the pretrained model and the demo's templates."""
    classnames = world.ID_CLASSNAMES
    templates = get_templates("demo_glyphs")
    head = build_zeroshot_head(model, tokenizer, classnames, templates)
    zeroshot = build_classifier(model, head).eval()
    theta_zeroshot = {k: v.detach().clone() for k, v in zeroshot.state_dict().items()}
    return _Build(config, device, build, data, model, tokenizer, pretrain_key, head, zeroshot, theta_zeroshot, classnames, templates)


def _finetune_methods(b: _Build, train_set, timings: dict) -> tuple[dict, dict]:
    """Fine-tune with every method: ``(endpoints, infos)`` by method name."""
    config = b.config
    lrs = {"flyp": config.flyp_lr, "ft-random-head": config.random_head_lr}
    endpoints, infos = {}, {}
    for method in config.methods:
        t = time.time()
        if method == "ft-random-head":
            cfg = b.ft_config(method, config.random_head_lr, config.random_head_epochs, head_init_scale=config.random_head_scale)
        else:
            cfg = b.ft_config(method, lrs.get(method, config.finetune_lr))
        endpoints[method], infos[method], _ = b.run(method, cfg, train_set)
        timings[f"finetune_{method}"] = time.time() - t
    return endpoints, infos


def _add_soups(b: _Build, train_set, endpoints: dict, timings: dict) -> dict | None:
    """FT itself plus the extra ingredients, then uniform and greedy soups (greedy by ID val).

    Adds the soups and the extra ingredients to ``endpoints``; returns the soups' info (None: no soups).
    """
    config = b.config
    if not (config.soup and "ft" in endpoints):
        return None
    t = time.time()
    ingredients = {"ft": endpoints["ft"]}
    for ing in config.soup:
        cfg = b.ft_config("ft", ing.lr, ing.epochs, ing.seed, ing.augment, ing.label_smoothing)
        ingredients[ing.name], _, _ = b.run(ing.name, cfg, train_set)
    val = b.dataset("id-val", b.eval_size("id-val"))
    val_loader = torch.utils.data.DataLoader(val, batch_size=512)
    probe = build_classifier(copy.deepcopy(b.model), copy.deepcopy(b.head)).eval()

    @torch.no_grad()
    def evaluate_val(theta):
        probe.load_state_dict(theta)
        right = sum(int((probe(x).argmax(1) == y).sum()) for x, y in val_loader)
        return right / len(val)

    val_acc = {n: evaluate_val(th) for n, th in ingredients.items()}
    soups, soup_info = _soups(ingredients, val_acc, evaluate_val)
    for n, th in {**soups, **{k: v for k, v in ingredients.items() if k != "ft"}}.items():
        endpoints[n] = th
    timings["soups"] = time.time() - t
    return soup_info


def _train_baselines(b: _Build, train_set, timings: dict) -> tuple[dict, dict]:
    """The baseline family: standard models trained on ID data only. ``(models, info)`` by name."""
    t = time.time()
    baselines, baseline_info = {}, {}
    for spec in b.config.baselines:
        _log(f"training standard model {spec.name}")
        baselines[spec.name] = train_standard_model(spec, train_set, len(b.classnames), device=b.device)
        baseline_info[spec.name] = {"description": "conv net trained from scratch on ID data only", **asdict(spec)}
    timings["baselines"] = time.time() - t
    return baselines, baseline_info


def _clear_out(out: Path, build: Path) -> None:
    """Remove leftovers of an interrupted build from ``out`` (never a published store: see staging)."""
    if out.exists():
        for child in out.iterdir():
            if child.resolve() != build.resolve():
                shutil.rmtree(child) if child.is_dir() else child.unlink()
    out.mkdir(parents=True, exist_ok=True)


def _method_specs(b: _Build, out: Path, endpoints: dict, infos: dict, soup_info: dict | None) -> list[MethodSpec]:
    """One ``MethodSpec`` per endpoint, with its label, role and kind; ships fp16 weights when configured."""
    config = b.config
    alphas = default_alpha_grid(config.alpha_step)
    zs_ref = _ship_weights(out, "zeroshot", b.theta_zeroshot) if config.ship_weights else None
    labels = ingredient_labels(config)
    specs = []
    for name, theta in endpoints.items():
        role = "wise" if name in config.methods and name != "ft-random-head" else "point"
        if name in ("uniform-soup", "greedy-soup"):
            kind = "soup"
        elif name in config.methods:
            kind = "method"
        else:
            kind = "soup-ingredient"
        info = {
            "label": METHOD_LABELS.get(name) or labels.get(name, name.replace("-", " ")),
            "role": role,  # wise: a WiSE-FT curve on the alpha grid; point: a single model (alphas 0 and 1 only)
            "kind": kind,
            "hyperparameters": {k: v for k, v in infos.get(name, {}).get("config", {}).items() if k not in ("device", "progress")},
            "lp": infos.get(name, {}).get("lp"),
        }
        if kind == "soup":
            info["soup"] = soup_info
        if config.ship_weights and kind == "method":  # soups: logits only (the 50 MiB budget)
            base = b.theta_zeroshot if name == "lp" else None  # LP's encoder is the zero-shot encoder
            info["checkpoints"] = {"zeroshot": zs_ref, "finetuned": _ship_weights(out, name, theta, base)}
        grid = alphas if role == "wise" else [0.0, 1.0]
        # Features (feature distortion, CKA) for the methods, not for soups and their ingredients.
        specs.append(MethodSpec(name, b.theta_zeroshot, theta, grid, linear=name == "lp", info=info, features=kind == "method"))
    return specs


_EVAL_SETS = ["id-test", "id-val", *world.SHIFTS]


def _evaluate(b: _Build, out: Path, specs: list[MethodSpec], baselines: dict, baseline_info: dict) -> Store:
    """Every alpha on every set, decoded once, into the store at ``out``."""
    config = b.config
    evalsets = [
        EvalSet(n, b.dataset(n, b.eval_size(n)), list(b.classnames), None, {"loader": "demo_world", "split": n}) for n in _EVAL_SETS
    ]
    _log("evaluating the alpha grid on every set")
    return build_store(
        out,
        b.zeroshot,
        specs,
        evalsets,
        "id-test",
        "id-val",
        list(world.SHIFTS),
        provenance={
            "model": {"arch": config.arch, "pretrained": "demo contrastive pretraining (robust_core.demo)"},
            "demo_config": json.loads(json.dumps(asdict(config), default=str)),
            "templates": b.templates,
        },
        baselines=baselines,
        baseline_info=baseline_info,
        eval_config=EvalConfig(
            batch_size=512, chunk_batches=4, num_workers=0, feature_rows=config.feature_rows, device=b.device, progress=False
        ),
        name="demo",
        description="Embedded demo: a tiny CLIP pretrained here on rendered glyphs, fine-tuned on 36 plain-font classes, "
        "evaluated on 8 shifts. Built by `python -m robust_core demo`.",
        compact=True,
    )


def _attach_thumbnails(store: Store, config: DemoConfig, data: dict) -> Store:
    """Thumbnails for the examples the explorer can show: where the WiSE-FT methods' endpoints disagree."""
    import pandas as pd

    rows = []
    rng = np.random.default_rng(config.seed)
    for n in _EVAL_SETS:
        shown = np.zeros(len(store.labels(n)), bool)
        for method in store.methods:
            if store.method_role(method) != "wise":
                continue
            top1 = store.topk(method, n)[..., 0]
            shown |= top1[0] != top1[-1]
        picked = np.flatnonzero(shown)
        if len(picked) > config.thumbnails_per_set:
            picked = np.sort(rng.choice(picked, config.thumbnails_per_set, replace=False))
        for i in picked:
            rows.append((n, int(i), int(data[n]["labels"][i]), _png(data[n]["images"][i])))
    return attach_table(store, "examples.parquet", pd.DataFrame(rows, columns=["dataset", "index", "label", "png"]))


def _record_build(store: Store, build: Path, timings: dict) -> Store:
    """Write the step timings beside the cache and into the store's manifest (with what came from the cache)."""
    import platform

    (build / "timings.json").write_text(json.dumps(timings, indent=1))
    _log("timings (s): " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()))
    build_info = {"timings_s": timings, "reused_from_cache": sorted(_REUSED), "cpu_count": os.cpu_count(), "machine": platform.machine()}
    return annotate_manifest(store, "build", build_info)


def build_demo(
    out: str | Path = "cache/demo", config: DemoConfig | None = None, device: str = "auto", force: bool = False, build_dir=None
) -> Store:
    """Build the demo store from nothing. Returns the opened store.

    Refuses to replace an existing store unless ``force``. Intermediate results (rendered data,
    pretrained CLIP, fine-tuned checkpoints) are cached under ``build_dir`` (default ``<out>/_build``)
    keyed by everything they depend on, so changing one step re-runs only what follows it.
    """
    config = config or DemoConfig()
    if config.threads:
        torch.set_num_threads(config.threads)
    final, out, staging, build = _prepare_out(out, force, build_dir)
    timings: dict[str, float] = {}
    t_all = time.time()
    set_seed(config.seed)
    _REUSED.clear()

    t = time.time()
    data = _render(config, build)
    timings["render"] = time.time() - t

    t = time.time()
    model, tokenizer, pretrain_key = _pretrain(config, data, build, device)
    timings["pretrain"] = time.time() - t

    b = _zeroshot_build(config, device, build, data, model, tokenizer, pretrain_key)
    train_set = b.dataset("id-train")
    endpoints, infos = _finetune_methods(b, train_set, timings)
    soup_info = _add_soups(b, train_set, endpoints, timings)
    baselines, baseline_info = _train_baselines(b, train_set, timings)

    t = time.time()
    _clear_out(out, build)
    specs = _method_specs(b, out, endpoints, infos, soup_info)
    store = _evaluate(b, out, specs, baselines, baseline_info)
    if config.thumbnails_per_set:
        store = _attach_thumbnails(store, config, data)
    timings["evaluate"] = time.time() - t
    t = time.time()
    store = write_summaries(store)  # the per-alpha tables the pages show, inside the staging folder
    timings["summaries"] = time.time() - t
    timings["total"] = time.time() - t_all
    store = _record_build(store, build, timings)
    return store if staging is None else swap_in(staging, final)


RESAMPLES = 2000  # paired bootstrap resamples for the criteria (issue: 2,000; 95% intervals)


def _relative_feature_change(store: Store, method: str, datasets) -> np.ndarray:
    """Per example ||f_1(x) - f_0(x)|| / ||f_0(x)|| (Kumar et al.'s feature distortion), pooled over ``datasets``."""
    out = []
    for ds in datasets:
        if not store.has_features(method, ds):
            continue
        feats, _ = store.features(method, ds)
        f0, f1 = np.asarray(feats[0], np.float32), np.asarray(feats[1], np.float32)
        out.append(np.linalg.norm(f1 - f0, axis=1) / np.maximum(np.linalg.norm(f0, axis=1), 1e-12))
    return np.concatenate(out) if out else np.zeros(0)


def check_criteria(store: Store, resamples: int = RESAMPLES) -> dict:
    """The demo's acceptance criteria (issue 11), computed from a store with paired bootstraps.

    Returns ``{"criteria": [{"name", "holds", "text", "estimate", "low", "high"}, ...], "numbers": {...}}``;
    accuracies and differences are fractions. "A > B" holds when the 95% interval of A - B excludes 0.
    """
    from . import evidence
    from .analysis import OOD_AVG, RunView

    view = RunView(store)
    shifts, id_, val = store.shifts, store.id, store.id_val
    methods = store.methods
    crit: list[dict] = []

    def add(name, holds, text, interval=None):
        row = {"name": name, "holds": bool(holds), "text": text}
        if interval is not None:
            row.update(estimate=float(interval.estimate), low=float(interval.low), high=float(interval.high))
        crit.append(row)

    def correct(method, alpha_index):
        return {ds: view.correct(method, ds)[alpha_index] for ds in store.datasets}

    def ood(a, b, seed=0):
        return evidence.paired_difference_ood({s: a[s] for s in shifts}, {s: b[s] for s in shifts}, resamples=resamples, seed=seed)

    def on_id(a, b, seed=0):
        return evidence.paired_difference(a[id_], b[id_], resamples=resamples, seed=seed)

    def acc(c, ds):
        return float(np.mean(c[ds])) if ds != OOD_AVG else float(np.mean([np.mean(c[s]) for s in shifts]))

    zs = correct("ft", 0)
    end = {m: correct(m, -1) for m in methods}
    n_classes = len(store.classnames(id_))

    # 0. the world itself: sizes, no dead shift, standard models where the CLIP models are
    sizes = {ds: store.dataset(ds).n for ds in store.datasets}
    add(
        "eval set sizes",
        sizes[id_] >= 2000 and (val is None or sizes[val] >= 1000) and min(sizes[s] for s in shifts) >= 500,
        f"ID test {sizes[id_]} (>= 2,000), ID val {sizes.get(val)} (>= 1,000), smallest shift {min(sizes[s] for s in shifts)} (>= 500)",
    )
    best_on_shift = {s: max(float(v) for m in methods for v in view.curves(m)[s]) for s in shifts}
    worst = min(best_on_shift, key=best_on_shift.get)
    add(
        "no dead shift",
        best_on_shift[worst] - 1 / n_classes >= 0.15,
        f"every shift's best model beats chance ({100 / n_classes:.1f}%) by >= 15 points; lowest: {worst} "
        f"{100 * best_on_shift[worst]:.1f}%",
    )
    btable = view.baseline_table()
    bx = btable[id_].to_numpy() if len(btable) else np.zeros(0)
    add(
        "standard models",
        len(bx) >= 12 and (bx.max() - bx.min() >= 0.40) and (bx >= 0.5).sum() >= 5,
        f"{len(bx)} standard models (>= 12), ID {100 * bx.min():.1f}-{100 * bx.max():.1f}% (span >= 40 points), "
        f"{int((bx >= 0.5).sum())} at >= 50% ID (>= 5)",
    )

    # 1. zero-shot effective robustness on OOD avg
    er = view.er_data("ft", OOD_AVG, "logit")
    slope, intercept = er["baseline"].get("slope"), er["baseline"].get("intercept")
    if slope is None:
        add("1 zero-shot effective robustness", False, f"no baseline line: {er['baseline'].get('reason', 'fit failed')}")
    else:
        rho = evidence.effective_robustness_interval(
            zs[id_], {s: zs[s] for s in shifts}, slope, intercept, transform="logit", resamples=resamples
        )
        add("1 zero-shot effective robustness", rho.estimate >= 0.10 and rho.low > 0, "rho(OOD avg) >= 10 points, interval > 0", rho)

    # 2. FT gains ID, loses OOD
    ft_id = on_id(end["ft"], zs)
    ft_ood = ood(end["ft"], zs)
    add("2a FT gains >= 15 ID points", ft_id.estimate >= 0.15 and ft_id.low > 0, "FT - zero-shot on ID", ft_id)
    add("2b FT loses OOD avg", ft_ood.high < 0, "FT - zero-shot on OOD avg", ft_ood)

    # 3. WiSE-FT(FT) beats both endpoints on OOD avg at some alpha in [0.3, 0.7], keeping >= 75% of the ID gain
    alphas = store.alphas("ft")
    gain = acc(end["ft"], id_) - acc(zs, id_)
    best3 = None
    for i, a in enumerate(alphas):
        if not 0.3 - 1e-9 <= a <= 0.7 + 1e-9:
            continue
        mid = correct("ft", i)
        keeps = (acc(mid, id_) - acc(zs, id_)) / gain if gain > 0 else 0.0
        vs_zs, vs_ft = ood(mid, zs), ood(mid, end["ft"])
        score = min(vs_zs.low, vs_ft.low)
        cand = (score, a, keeps, vs_zs, vs_ft)
        if keeps >= 0.75 and (best3 is None or score > best3[0]):
            best3 = cand
    if best3 is None:
        add("3 WiSE-FT beats both endpoints", False, "no alpha in [0.3, 0.7] keeps >= 75% of FT's ID gain")
    else:
        _, a, keeps, vs_zs, vs_ft = best3
        add(
            "3 WiSE-FT beats both endpoints",
            vs_zs.low > 0 and vs_ft.low > 0,
            f"alpha {a:.1f} keeps {100 * keeps:.0f}% of FT's ID gain; OOD avg vs zero-shot "
            f"{100 * vs_zs.estimate:+.1f} [{100 * vs_zs.low:+.1f}, {100 * vs_zs.high:+.1f}], vs FT",
            vs_ft,
        )

    # 4. WiSE-FT lifts FT's, LP-FT's and FLYP's OOD avg at its best alpha over alpha = 1
    for m in ("ft", "lpft", "flyp"):
        if m not in methods:
            continue
        curve = view.curves(m)[OOD_AVG].to_numpy()
        i = int(curve.argmax())
        d = ood(correct(m, i), end[m])
        add(f"4 WiSE-FT lifts {m}", d.low > 0, f"OOD avg at alpha {store.alphas(m)[i]:.1f} - alpha 1", d)

    # 5. LP-FT vs FT from a random head (Kumar et al.)
    if "lpft" in methods and "ft-random-head" in methods:
        d_ood = ood(end["lpft"], end["ft-random-head"])
        d_id = on_id(end["lpft"], end["ft-random-head"])
        add("5a LP-FT > random-head FT on OOD avg", d_ood.low > 0, "LP-FT - random-head FT, OOD avg", d_ood)
        add("5b LP-FT ~ random-head FT on ID", abs(d_id.estimate) <= 0.01, "|LP-FT - random-head FT| on ID <= 1 point", d_id)

    # 6. FLYP vs FT (Goyal et al.)
    if "flyp" in methods:
        d_id = on_id(end["flyp"], end["ft"])
        d_ood = ood(end["flyp"], end["ft"])
        add("6a FLYP >= FT on ID (within 0.5)", d_id.estimate >= -0.005, "FLYP - FT on ID", d_id)
        add("6b FLYP > FT on OOD avg", d_ood.low > 0, "FLYP - FT, OOD avg", d_ood)

    # 7. feature distortion (Kumar et al.)
    fd = {}
    for m in ("ft", "lpft", "ft-random-head"):
        if m in methods:
            fd[m] = {"id": _relative_feature_change(store, m, [id_]), "ood": _relative_feature_change(store, m, shifts)}
    if "ft" in fd and len(fd["ft"]["id"]) and len(fd["ft"]["ood"]):
        d = evidence.mean_difference(fd["ft"]["id"], fd["ft"]["ood"], paired=False, resamples=resamples, seed=7)
        add(
            "7a FT changes ID features more than OOD",
            d.low > 0,
            f"FT relative feature change ID {fd['ft']['id'].mean():.4f} vs OOD {fd['ft']['ood'].mean():.4f}; ID - OOD",
            d,
        )
    if "lpft" in fd and "ft-random-head" in fd:
        a = np.concatenate([fd["lpft"]["id"], fd["lpft"]["ood"]])
        b = np.concatenate([fd["ft-random-head"]["id"], fd["ft-random-head"]["ood"]])
        d = evidence.mean_difference(a, b, paired=True, resamples=resamples, seed=8)  # the same examples
        add(
            "7b LP-FT distorts features less than random-head FT",
            d.high < 0,
            f"relative feature change LP-FT {a.mean():.4f} vs random-head FT {b.mean():.4f}; LP-FT - random-head",
            d,
        )

    # 8. soups
    if "greedy-soup" in methods and val:
        ingredients = store.manifest["methods"]["greedy-soup"].get("soup", {}).get("ingredients", [])  # the soup's recipe (free-form)
        val_acc = {m: acc(end[m], val) for m in ingredients if m in end}
        best_single = max(val_acc, key=val_acc.get) if val_acc else None
        greedy_val = acc(end["greedy-soup"], val)
        add(
            "8 greedy soup >= best single FT run on ID val",
            best_single is not None and greedy_val >= val_acc[best_single],
            f"greedy soup {100 * greedy_val:.1f}% vs best ingredient {best_single} "
            f"{100 * val_acc.get(best_single, float('nan')):.1f}% on ID val; greedy soup OOD avg "
            f"{100 * acc(end['greedy-soup'], OOD_AVG):.1f}%, uniform soup OOD avg {100 * acc(end['uniform-soup'], OOD_AVG):.1f}%",
        )

    ids = [float(v) for m in methods for v in view.curves(m)[id_]] + [float(v) for v in bx]
    add("ID accuracies inside (3%, 97%)", 0.03 < min(ids) and max(ids) < 0.97, f"ID range {100 * min(ids):.1f}-{100 * max(ids):.1f}%")
    numbers = {
        "baseline_slope": slope,
        "baseline_intercept": intercept,
        "zeroshot": {"id": acc(zs, id_), "ood_avg": acc(zs, OOD_AVG)},
        "endpoints": {m: {"id": acc(end[m], id_), "ood_avg": acc(end[m], OOD_AVG)} for m in methods},
        "best_on_shift": best_on_shift,
        "feature_change": {m: {k: float(v.mean()) for k, v in d.items() if len(v)} for m, d in fd.items()},
    }
    return {"criteria": crit, "numbers": numbers, "all_hold": all(c["holds"] for c in crit)}


def format_criteria(store: Store) -> str:
    """The criteria as printed by ``python -m robust_core demo --criteria`` (points, 95% paired intervals)."""
    result = check_criteria(store)
    lines = ["acceptance criteria (paired bootstrap, 2,000 resamples, 95% intervals; differences in points):"]
    for c in result["criteria"]:
        interval = ""
        if "estimate" in c:
            scale = 100 if not c["name"].startswith("7") else 1
            unit = "" if scale == 1 else " pts"
            interval = f"  {scale * c['estimate']:+.{1 if scale == 100 else 4}f} [{scale * c['low']:+.{1 if scale == 100 else 4}f}, {scale * c['high']:+.{1 if scale == 100 else 4}f}]{unit}"
        lines.append(f"  [{'x' if c['holds'] else ' '}] {c['name']}: {c['text']}{interval}")
    lines.append("all criteria hold" if result["all_hold"] else "NOT ALL CRITERIA HOLD")
    return "\n".join(lines)


def markdown_report(store: Store) -> str:
    """The README's demo section (tables and criteria), generated from the store: never typed by hand.

    ``python scripts/update_readme.py`` rewrites the README block; a test checks it is current.
    """
    from .analysis import OOD_AVG, RunView

    view = RunView(store)
    pct = lambda x: f"{100 * x:.1f}"  # noqa: E731
    sizes = {ds: store.dataset(ds).n for ds in store.datasets}
    shift_sizes = sorted({sizes[s] for s in store.shifts})
    lines = [
        f"Evaluation sets: ID test {sizes[store.id]:,}, ID validation {sizes[store.id_val]:,}, "
        f"{len(store.shifts)} shifts of {', '.join(f'{n:,}' for n in shift_sizes)} examples; "
        f"{len(store.alphas('ft'))} alphas; {len(store.baselines)} standard models. ID = `{store.id}`, "
        f"OOD avg = mean over the shifts.",
        "",
        "| method | α = 0 (zero-shot) ID / OOD avg | α = 0.5 ID / OOD avg | α = 1 ID / OOD avg | best OOD avg on the grid |",
        "| --- | --- | --- | --- | --- |",
    ]
    for m in store.wise_methods:
        c = view.curves(m)
        i5 = view.alpha_point(m, 0.5).index
        best = c[OOD_AVG].idxmax()
        lines.append(
            f"| {view.method_label(m)} | {pct(c[store.id].iloc[0])} / {pct(c[OOD_AVG].iloc[0])} | "
            f"{pct(c[store.id].iloc[i5])} / {pct(c[OOD_AVG].iloc[i5])} | {pct(c[store.id].iloc[-1])} / {pct(c[OOD_AVG].iloc[-1])} | "
            f"{pct(c[OOD_AVG].max())} (α = {best:.1f}) |"
        )
    lines += ["", "Single models (no WiSE-FT curve): ID / OOD avg / ID validation", ""]
    lines += ["| model | ID | OOD avg | ID val |", "| --- | --- | --- | --- |"]
    for m in store.point_methods:
        c = view.curves(m)
        lines.append(
            f"| {view.method_label(m)} | {pct(c[store.id].iloc[-1])} | {pct(c[OOD_AVG].iloc[-1])} | {pct(c[store.id_val].iloc[-1])} |"
        )
    bt = view.baseline_table()
    if len(bt):
        lines += [
            "",
            f"Standard models: ID {pct(bt[store.id].min())}-{pct(bt[store.id].max())}%, "
            f"{int((bt[store.id] >= 0.5).sum())} of {len(bt)} at >= 50%.",
        ]
    lines += ["", "Acceptance criteria (`python -m robust_core demo --criteria`, asserted by `tests/test_demo.py`):", "", "```"]
    lines += [format_criteria(store), "```"]
    build = store.manifest.get("build", {})
    if build.get("timings_s"):
        t = build["timings_s"]
        reused = build.get("reused_from_cache", [])
        lines += [
            "",
            f"This store's build on {build.get('cpu_count', '?')} CPU cores: {t['total'] / 60:.1f} min ("
            + ", ".join(f"{k.replace('finetune_', '')} {v:.0f} s" for k, v in t.items() if k != "total")
            + ")"
            + (f"; reused from the build cache: {', '.join(reused)}." if reused else "; nothing reused from a cache."),
        ]
    total = sum(p.stat().st_size for p in store.path.rglob("*") if p.is_file() and "_build" not in p.relative_to(store.path).parts)
    weights = sum(p.stat().st_size for p in (store.path / "weights").glob("*.safetensors"))
    lines.append(f"Store size: {total / 2**20:.1f} MiB, of which fp16 weights {weights / 2**20:.1f} MiB.")
    return "\n".join(lines)
