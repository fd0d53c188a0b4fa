"""The embedded demo: render a glyph world, pretrain a tiny CLIP, fine-tune it four ways, build the store.

Run (about 10-15 minutes on 2 CPU cores; writes ``cache/demo``)::

    python -m robust_core demo

Every step goes through the general code: ``finetune.finetune`` (FT, LP, LP-FT, FLYP),
``pipeline.build_store`` (decode-once alpha grid), ``baselines`` (standard models for the line).
Intermediate files (rendered data, checkpoints) go to ``cache/demo/_build`` (not committed); the
store itself is small enough to commit.
"""

from __future__ import annotations

import io
import json
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from .baselines import BaselineSpec, default_family, train_standard_model
from .datasets import EvalSet
from .datasets import demo_world as world
from .evaluate import EvalConfig, MethodSpec
from .finetune import FinetuneConfig, contrastive_train, finetune, set_seed
from .models import CheckpointInfo, build_classifier, build_zeroshot_head, load_clip, save_classifier
from .pipeline import TensorImageDataset, build_store
from .store import Store, attach_table
from .templates import get_templates
from .wise import default_alpha_grid

DEMO_ARCH = "tiny-rn16-demo"


@dataclass
class DemoConfig:
    world: world.DemoWorldConfig = field(default_factory=world.DemoWorldConfig)
    arch: str = DEMO_ARCH  # open_clip config in robust_core/model_configs (ModifiedResNet, width 16)
    pretrain_epochs: int = 8  # contrastive epochs over the captioned set (5 left zero-shot near 30%)
    pretrain_lr: float = 2e-3
    pretrain_batch: int = 256
    finetune_epochs: int = 6  # FT / LP-FT / FLYP epochs on the ID training set
    finetune_lr: float = 1e-4
    flyp_lr: float = 1e-4
    finetune_batch: int = 128
    warmup_steps: int = 50
    lp_l2: float = 1e-3
    methods: tuple[str, ...] = ("ft", "lp", "lpft", "flyp")
    baselines: list[BaselineSpec] = field(default_factory=default_family)
    alpha_step: float = 0.1  # 11 alphas keep the committed store under 20 MB
    # Examples evaluated per set (prefixes of the rendered sets; the store must stay under 20 MB).
    eval_sizes: dict = field(default_factory=lambda: {"id-test": 900, "id-val": 540, "shift": 224})
    thumbnails: bool = True
    seed: int = 0
    threads: int | None = None  # torch CPU threads (None: torch default)


def miniature_config() -> DemoConfig:
    """A seconds-long version of the demo for tests (same code paths, tiny sizes)."""
    return DemoConfig(
        world=world.DemoWorldConfig(n_pretrain=512, n_id_train=144, n_id_val=72, n_id_test=72, n_shift=36, workers=1),
        pretrain_epochs=1,
        pretrain_batch=128,
        finetune_epochs=1,
        finetune_batch=72,
        warmup_steps=2,
        baselines=[BaselineSpec(4, 2, 1), BaselineSpec(8, 2, 1), BaselineSpec(8, 3, 1)],
        alpha_step=0.5,
        thumbnails=True,
    )


def _log(msg: str) -> None:
    print(f"[demo {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _png(image: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def build_demo(out: str | Path = "cache/demo", config: DemoConfig | None = None, device: str = "auto") -> Store:
    """Build the demo store from nothing. Returns the opened store."""
    import open_clip
    import pandas as pd

    config = config or DemoConfig()
    if config.threads:
        torch.set_num_threads(config.threads)
    out = Path(out)
    build = out / "_build"
    build.mkdir(parents=True, exist_ok=True)
    # Cached intermediate results are reused only when everything they depend on is unchanged.
    from .models import _CONFIG_DIR

    arch_file = _CONFIG_DIR / f"{config.arch}.json"
    # Only what the checkpoints depend on (not alphas, eval sizes, thumbnails, baselines).
    trained = {k: v for k, v in asdict(config).items() if k not in ("alpha_step", "thumbnails", "eval_sizes", "baselines", "threads")}
    key = json.dumps({"config": trained, "arch": arch_file.read_text() if arch_file.exists() else config.arch}, sort_keys=True, default=str)
    key_file = build / "key.json"
    if not key_file.exists() or key_file.read_text() != key:
        # A different configuration: drop the checkpoints (rendered data is keyed separately; the store
        # itself is rebuilt on every run, step 6).
        shutil.rmtree(build / "ckpt", ignore_errors=True)
        for stale in ("clip_pretrained.safetensors", "pretrain.resume.pt"):
            (build / stale).unlink(missing_ok=True)
        key_file.write_text(key)
    timings: dict[str, float] = {}
    t_all = time.time()
    set_seed(config.seed)

    # 1. Data
    t = time.time()
    data_file = build / f"world-{config.seed}.npz"
    world_key = json.dumps(asdict(config.world), sort_keys=True)
    if data_file.exists() and str(np.load(data_file, allow_pickle=False)["config"]) == world_key:
        loaded = np.load(data_file, allow_pickle=False)
        data = {}
        for key in loaded.files:
            if key == "config":
                continue
            split, part = key.rsplit("/", 1)
            data.setdefault(split, {})[part] = loaded[key]
        _log(f"reusing rendered data {data_file}")
    else:
        _log(f"rendering the glyph world ({config.world.n_pretrain} pretraining images)...")
        data = world.render_world(config.world, progress=lambda s, n: _log(f"  rendered {s}: {n}"))
        flat = {f"{s}/{k}": v for s, d in data.items() for k, v in d.items()}
        tmp = build / f"world-{config.seed}.tmp.npz"
        np.savez_compressed(tmp, config=np.array(world_key), allow_pickle=False, **flat)
        tmp.replace(data_file)
    timings["render"] = time.time() - t

    # 2. Pretrain a tiny CLIP contrastively
    t = time.time()
    model, _, tokenizer = load_clip(config.arch, pretrained=None)
    mean, std = open_clip.OPENAI_DATASET_MEAN, open_clip.OPENAI_DATASET_STD
    clip_path = build / "clip_pretrained.safetensors"
    if clip_path.exists():
        from safetensors.torch import load_file

        model.load_state_dict(load_file(str(clip_path)))
        _log("reusing pretrained tiny CLIP")
    else:
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
            resume_path=build / "pretrain.resume.pt",
            desc="pretrain",
        )
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(clip_path))
    model = model.cpu().eval()
    timings["pretrain"] = time.time() - t

    # 3. Zero-shot classifier
    classnames = world.ID_CLASSNAMES
    templates = get_templates("demo_glyphs")
    head = build_zeroshot_head(model, tokenizer, classnames, templates)
    zeroshot = build_classifier(model, head).eval()
    theta_zeroshot = {k: v.detach().clone() for k, v in zeroshot.state_dict().items()}
    zs_sha = save_classifier(
        zeroshot, build / "ckpt" / "zeroshot.safetensors", CheckpointInfo(config.arch, None, "zeroshot", classnames, {})
    )

    def dataset(split, limit=None):
        return TensorImageDataset(data[split]["images"][:limit], data[split]["labels"][:limit], mean, std)

    def eval_size(split):
        return config.eval_sizes.get(split, config.eval_sizes.get("shift")) if config.eval_sizes else None

    train_set = dataset("id-train")

    # 4. Fine-tune with every method
    methods = []
    alphas = default_alpha_grid(config.alpha_step)
    for method in config.methods:
        t = time.time()
        ckpt = build / "ckpt" / f"{method}.safetensors"
        cfg = FinetuneConfig(
            method=method,
            epochs=config.finetune_epochs,
            lr=config.flyp_lr if method == "flyp" else config.finetune_lr,
            weight_decay=0.1,
            batch_size=config.finetune_batch,
            warmup_steps=config.warmup_steps,
            freeze_bn=None,
            lp_l2=config.lp_l2,
            seed=config.seed,
            device=device,
            num_workers=0,
        )
        _log(f"fine-tuning: {method}")
        from .models import load_state_dict

        if ckpt.exists():
            theta_finetuned = load_state_dict(ckpt)
            meta = json.loads(Path(str(ckpt) + ".json").read_text())
            ft_info, sha = meta["extra"], meta["sha256"]
        else:
            classifier, ft_info = finetune(model, tokenizer, zeroshot, train_set, classnames, templates, cfg, build / "ckpt")
            theta_finetuned = {k: v.detach().cpu().clone() for k, v in classifier.state_dict().items()}
            sha = save_classifier(classifier, ckpt, CheckpointInfo(config.arch, None, method, classnames, ft_info))
        methods.append(
            MethodSpec(
                method,
                theta_zeroshot,
                theta_finetuned,
                alphas,
                linear=method == "lp",
                info={
                    "label": {"ft": "FT (end-to-end)", "lp": "LP (linear probe)", "lpft": "LP-FT", "flyp": "FLYP"}[method],
                    "checkpoints": {
                        "zeroshot": {"path": "_build/ckpt/zeroshot.safetensors", "sha256": zs_sha},
                        "finetuned": {"path": f"_build/ckpt/{method}.safetensors", "sha256": sha},
                    },
                    "hyperparameters": {k: v for k, v in ft_info.get("config", {}).items() if k not in ("device", "progress")},
                    "lp": ft_info.get("lp"),
                },
            )
        )
        timings[f"finetune_{method}"] = time.time() - t

    # 5. Baseline family (standard models trained on ID data only)
    t = time.time()
    baselines, baseline_info = {}, {}
    for spec in config.baselines:
        _log(f"training standard model {spec.name}")
        baselines[spec.name] = train_standard_model(spec, train_set, len(classnames), device=device)
        baseline_info[spec.name] = {"description": "conv net trained from scratch on ID data only", **asdict(spec)}
    timings["baselines"] = time.time() - t

    # 6. Evaluate every alpha on every set, decode once
    t = time.time()
    eval_names = ["id-test", "id-val", *world.SHIFTS]
    evalsets = [EvalSet(n, dataset(n, eval_size(n)), list(classnames), None, {"loader": "demo_world", "split": n}) for n in eval_names]
    _log("evaluating the alpha grid on every set")
    for child in out.iterdir():  # the evaluation is cheap: always rebuild the store itself
        if child.name != "_build":
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    store = build_store(
        out,
        zeroshot,
        methods,
        evalsets,
        "id-test",
        "id-val",
        list(world.SHIFTS),
        provenance={
            "model": {"arch": config.arch, "pretrained": "demo contrastive pretraining (robust_core.demo)"},
            "demo_config": json.loads(json.dumps(asdict(config), default=str)),
            "templates": templates,
        },
        baselines=baselines,
        baseline_info=baseline_info,
        eval_config=EvalConfig(batch_size=512, chunk_batches=4, num_workers=0, feature_rows=500, device=device, progress=False),
        name="demo",
        description="Embedded demo: a tiny CLIP pretrained here on rendered glyphs, fine-tuned on 36 plain-font classes, "
        "evaluated on 8 shifts. Built by `python -m robust_core demo`.",
    )
    if config.thumbnails:
        # Thumbnails for the examples the explorer can show: where some method's endpoints disagree.
        rows = []
        for n in eval_names:
            shown = np.zeros(len(store.labels(n)), bool)
            for method in store.methods:
                top1 = store.topk(method, n)[..., 0]
                shown |= top1[0] != top1[-1]
            for i in np.flatnonzero(shown):
                rows.append((n, int(i), int(data[n]["labels"][i]), _png(data[n]["images"][i])))
        store = attach_table(store, "examples.parquet", pd.DataFrame(rows, columns=["dataset", "index", "label", "png"]))
    timings["evaluate"] = time.time() - t
    timings["total"] = time.time() - t_all
    (build / "timings.json").write_text(json.dumps(timings, indent=1))
    _log("timings (s): " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()))
    return store


def check_criteria(store: Store) -> dict:
    """The demo's acceptance criteria (see the README), evaluated on a store.

    Returns a dict of named booleans plus the numbers behind them (fractions).
    """
    from .analysis import OOD_AVG, RunView

    view = RunView(store)
    ft = view.curves("ft")
    zs_id, zs_ood = float(ft[store.id].iloc[0]), float(ft[OOD_AVG].iloc[0])
    ft_id, ft_ood = float(ft[store.id].iloc[-1]), float(ft[OOD_AVG].iloc[-1])
    gain = ft_id - zs_id
    keeps = ft[(ft[store.id] - zs_id >= 0.5 * gain) & (ft[OOD_AVG] >= zs_ood)]
    er = view.er_data("ft", OOD_AVG, "logit")  # the same line and rho the Effective-robustness page shows
    slope, intercept = er["baseline"]["slope"], er["baseline"]["intercept"]
    rho_zs = float(er["curve"]["rho"].iloc[0]) / 100
    id_values = [float(v) for m in store.methods for v in view.curves(m)[store.id]] + [float(v) for v in er["baseline"]["points"].x]
    out = {
        "zeroshot_id": zs_id,
        "zeroshot_ood_avg": zs_ood,
        "ft_id": ft_id,
        "ft_ood_avg": ft_ood,
        "zeroshot_rho_ood_avg": rho_zs,
        "baseline_slope": slope,
        "baseline_intercept": intercept,
        "alphas_keeping_half_gain_and_zs_ood": [float(a) for a in keeps.index],
        "id_min": min(id_values),
        "id_max": max(id_values),
        "zeroshot_positive_effective_robustness": rho_zs > 0,
        "ft_id_gain_ge_10pts": gain >= 0.10,
        "ft_ood_below_zeroshot": ft_ood < zs_ood,
        "some_alpha_keeps_half_gain_without_ood_loss": len(keeps) > 0,
        "all_id_within_3_97": 0.03 < min(id_values) and max(id_values) < 0.97,
    }
    for method in store.methods:
        curve = view.curves(method)
        out[f"{method}_endpoints"] = {
            "id": [float(curve[store.id].iloc[0]), float(curve[store.id].iloc[-1])],
            "ood_avg": [float(curve[OOD_AVG].iloc[0]), float(curve[OOD_AVG].iloc[-1])],
            "best_ood_alpha": float(curve[OOD_AVG].idxmax()),
            "best_ood": float(curve[OOD_AVG].max()),
        }
    return out
