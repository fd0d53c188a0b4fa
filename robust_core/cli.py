"""Command line: ``python -m robust_core {finetune,eval,info,export,demo,datasets}``.

Each subcommand's ``--help`` ends with a runnable example.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

EXAMPLES = {
    "finetune": """example (GPU box, ImageNet under /data):
  python -m robust_core finetune --arch ViT-B-32 --pretrained openai --method ft \\
      --train imagenet-train --data-root /data --out runs/vitb32
example (any ImageFolder, offline, local weights):
  python -m robust_core finetune --arch ViT-B-32 --checkpoint vitb32.safetensors --method lpft \\
      --train mytask=/data/mytask/train --out runs/mytask --epochs 5 --batch-size 128
several GPUs:
  torchrun --nproc_per_node 8 -m robust_core finetune ... (same arguments)""",
    "eval": """example (ImageNet and its shifts, every alpha 0..1 step 0.05):
  python -m robust_core eval --arch ViT-B-32 --pretrained openai \\
      --finetuned ft=runs/vitb32/ft.safetensors --finetuned lp=runs/vitb32/lp.safetensors \\
      --id imagenet --shift imagenetv2 --shift imagenet-r --shift imagenet-sketch --shift objectnet \\
      --shift imagenet-a --data-root /data --out cache/vitb32-imagenet
example (ImageFolders):
  python -m robust_core eval --arch ViT-B-32 --checkpoint vitb32.safetensors \\
      --finetuned ft=runs/mytask/ft.safetensors --id mytask=/data/mytask/test \\
      --id-val mytask-val=/data/mytask/val --shift photos=/data/photos --out cache/mytask
An interrupted run resumes when the same command is run again.""",
    "info": """example:
  python -m robust_core info cache/demo
  python -m robust_core info cache/demo --json""",
    "summarize": """example (precompute the per-alpha tables the dashboard shows, once):
  python -m robust_core summarize cache/mytask""",
    "export": """example (theta(0.5) of the FT run, weights + metrics JSON):
  python -m robust_core export cache/demo --method ft --alpha 0.5 --out wise_ft_0.5.safetensors""",
    "demo": """example (full build, ~20 min on 2 CPU cores; refuses to replace cache/demo without --force):
  python -m robust_core demo
example (a miniature in seconds, to check the set-up):
  python -m robust_core demo --miniature --out /tmp/demo-mini""",
    "datasets": """example:
  python -m robust_core datasets""",
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m robust_core",
        description="Robust fine-tuning explorer: fine-tune zero-shot CLIP models, interpolate (WiSE-FT) "
        "and store logits for every alpha and eval set.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run `python -m robust_core SUBCOMMAND --help` for each subcommand's options and an example.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def add(name, help_):
        return sub.add_parser(
            name, help=help_, description=help_, epilog=EXAMPLES[name], formatter_class=argparse.RawDescriptionHelpFormatter
        )

    def model_args(p):
        p.add_argument("--arch", required=True, help="open_clip architecture (open_clip.list_models()), e.g. ViT-B-32")
        p.add_argument("--pretrained", default=None, help="open_clip pretrained tag (e.g. openai) or a local weights file")
        p.add_argument("--checkpoint", default=None, help="local CLIP weights (.safetensors, or a torch state dict)")
        p.add_argument("--offline", action="store_true", help="never contact the hub (also: HF_HUB_OFFLINE=1)")
        p.add_argument("--templates", default=None, help="template set (default: the ID dataset's), see `datasets`")
        p.add_argument("--data-root", default=None, help="folder holding the registered datasets")
        p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
        p.add_argument("--amp", default="auto", choices=["auto", "bf16", "fp16", "fp32"], help="autocast on CUDA")
        p.add_argument("--workers", type=int, default=None, help="DataLoader workers (default 8 on CUDA, 2 on CPU)")
        p.add_argument("--batch-size", type=int, default=None, help="batch size")

    p = add("finetune", "Fine-tune a CLIP model with FT, LP, LP-FT or FLYP; writes safetensors + JSON.")
    model_args(p)
    p.add_argument(
        "--method",
        required=True,
        choices=["ft", "lp", "lpft", "flyp", "ft-random-head"],
        help="ft-random-head: FT from a random head (Kumar et al.'s baseline; not on theta_0's scale, no WiSE-FT curve)",
    )
    p.add_argument("--train", required=True, help="training set: registered NAME or NAME=PATH (ImageFolder)")
    p.add_argument("--out", required=True, help="output folder for <method>.safetensors and zeroshot.safetensors")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--lr", type=float, default=3e-5)
    p.add_argument("--wd", type=float, default=0.1)
    p.add_argument("--warmup", type=int, default=500)
    p.add_argument("--lp-l2", type=float, default=1e-3, help="LP: L2 pull towards the zero-shot head")
    p.add_argument("--freeze-bn", choices=["auto", "yes", "no"], default="auto", help="freeze BatchNorm statistics")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--augment", action="store_true", help="random translation/rotation per image (soup ingredients)")
    p.add_argument("--label-smoothing", type=float, default=0.0)
    p.add_argument("--max-examples", type=int, default=None, help="train on a seeded subset (quick runs)")
    p.add_argument("--download", action="store_true", help="let torchvision download CIFAR-10/STL-10")

    p = add("eval", "Compute logits for every alpha on the grid and every eval set into a store.")
    model_args(p)
    p.add_argument("--finetuned", action="append", default=[], metavar="METHOD=PATH", help="a fine-tuned classifier (repeatable)")
    p.add_argument("--id", required=True, help="ID test set: NAME or NAME=PATH")
    p.add_argument("--id-val", default=None, help="ID held-out validation set (for choosing alpha): NAME or NAME=PATH")
    p.add_argument("--shift", action="append", default=[], help="a distribution-shift set: NAME or NAME=PATH (repeatable)")
    p.add_argument("--alphas", default="0:1:0.05", help="start:stop:step or a comma list; must include 0 and 1")
    p.add_argument("--out", required=True, help="store directory (e.g. cache/myrun)")
    p.add_argument("--max-examples", type=int, default=None, help="evaluate a seeded subset of each set")
    p.add_argument("--logits-dtype", default="float16", choices=["float16", "float32"])
    p.add_argument("--chunk-batches", type=int, default=8, help="decoded batches kept on device per alpha sweep")
    p.add_argument("--feature-rows", type=int, default=2000, help="features kept per set for CKA (0 = none)")
    p.add_argument(
        "--store-logits",
        default="full",
        choices=["full", "topk"],
        help="full: every alpha's logits; topk: top-3 classes and logits per alpha plus full logits at alpha 0 and 1 "
        "(for 21k-class heads or many seeds; the ImageNet class-subset x axis of ImageNet-R/A/ObjectNet then needs a full store)",
    )
    p.add_argument("--download", action="store_true", help="let torchvision download CIFAR-10/STL-10")
    p.add_argument(
        "--force",
        action="store_true",
        help="rebuild a finished store (built in a staging folder beside it; the old one stays readable until the new one is complete)",
    )

    p.add_argument(
        "--no-summaries",
        action="store_true",
        help="skip the per-alpha tables kept for the dashboard (`summarize` adds them later; the app computes them on first use)",
    )

    p = add("info", "Describe a store (sets, methods, accuracy at alpha 0, 0.5, 1).")
    p.add_argument("store")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = add(
        "summarize",
        "Compute the per-alpha tables the dashboard shows (paired intervals, per-class, overrides, margins) once and keep "
        "them in the store, so the first visit of any alpha is a lookup.",
    )
    p.add_argument("store")

    p = add("export", "Write theta(alpha) as safetensors plus a JSON of its metrics.")
    p.add_argument("store")
    p.add_argument("--method", required=True)
    p.add_argument("--alpha", type=float, required=True)
    p.add_argument("--out", required=True, help="output .safetensors path (the JSON goes beside it)")

    p = add("demo", "Build the embedded demo store from nothing (render, pretrain, fine-tune, evaluate).")
    p.add_argument("--out", default=None, help="store directory (default cache/demo; --miniature: a temporary folder)")
    p.add_argument("--miniature", action="store_true", help="tiny sizes, seconds (for checks and CI)")
    p.add_argument("--force", action="store_true", help="replace an existing store at --out")
    p.add_argument("--build-dir", default=None, help="cache of rendered data and checkpoints (default OUT/_build)")
    p.add_argument("--criteria", action="store_true", help="print the acceptance criteria with their paired intervals")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)

    add("datasets", "List registered datasets and template sets.")
    return parser


_WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin")  # models._looks_like_file's rule, kept torch-free here


def _prepare(args) -> None:
    """Cheap checks and settings that must come before any heavy import; raises with a one-line fix.

    ``--offline`` sets ``HF_HUB_OFFLINE=1`` here because huggingface_hub reads it once, at import (set
    later, a missing download waits ~57 s of hub retries instead of failing at once). Local files
    (``--checkpoint``, a ``--pretrained`` path, ``--finetuned`` files, ``NAME=PATH`` folders) and the
    ``--templates`` name are checked before the model loads, so a typo costs no model load.
    """
    if getattr(args, "offline", False):
        os.environ["HF_HUB_OFFLINE"] = "1"
    if getattr(args, "checkpoint", None) and not Path(args.checkpoint).is_file():
        raise FileNotFoundError(
            f"--checkpoint {args.checkpoint} not found. Pass an existing local weights file (.safetensors or a torch state dict)."
        )
    pretrained = getattr(args, "pretrained", None)
    if pretrained and (os.sep in pretrained or pretrained.endswith(_WEIGHT_SUFFIXES)) and not Path(pretrained).is_file():
        raise FileNotFoundError(
            f"--pretrained {pretrained} looks like a file but is not found. Pass an existing weights file, or an open_clip tag such as openai."
        )
    if getattr(args, "templates", None):
        from .templates import list_template_sets

        if args.templates not in list_template_sets():
            raise ValueError(f"Unknown --templates {args.templates!r}; pick one of {', '.join(list_template_sets())} (see `datasets`).")
    if args.command == "eval":
        if not args.finetuned:
            raise ValueError("pass at least one --finetuned METHOD=PATH (from `python -m robust_core finetune`).")
        for item in args.finetuned:
            method, path = _split_named(item)
            if not path or not method:
                raise ValueError(f"--finetuned {item!r} must be METHOD=PATH, e.g. ft=runs/vitb32/ft.safetensors.")
            if not Path(path).is_file():
                raise FileNotFoundError(
                    f"--finetuned {method}: file {path} not found. Pass METHOD=PATH of a file written by `python -m robust_core finetune`."
                )
    specs = [getattr(args, "train", None), getattr(args, "id", None), getattr(args, "id_val", None), *(getattr(args, "shift", None) or [])]
    for spec in [] if getattr(args, "download", False) else specs:  # --download may create the folder
        name, root = _split_named(spec) if spec else (None, None)
        if root is not None and not Path(root).is_dir():
            raise FileNotFoundError(f"Dataset {name}: folder {root} does not exist. Pass NAME=PATH with an existing ImageFolder.")


def _split_named(value: str) -> tuple[str, str | None]:
    if "=" in value:
        name, path = value.split("=", 1)
        return name, path
    return value, None


def _load_base(args):
    from .models import load_clip

    return load_clip(args.arch, pretrained=args.pretrained, checkpoint=args.checkpoint, offline=args.offline or None)


def cmd_finetune(args) -> int:
    from .datasets import head_classnames_for, resolve, templates_for
    from .finetune import FinetuneConfig, finetune
    from .models import CheckpointInfo, build_classifier, build_zeroshot_head, save_classifier
    from .runtime import init_distributed, rank_world
    from .templates import get_templates

    init_distributed()
    rank0 = rank_world()[0] == 0
    model, preprocess, tokenizer = _load_base(args)
    name, root = _split_named(args.train)
    classnames = head_classnames_for(name, root)
    train = resolve(name, root, args.data_root, preprocess, download=args.download, max_examples=args.max_examples, seed=args.seed)
    templates = get_templates(args.templates) if args.templates else templates_for(name)
    head = build_zeroshot_head(model, tokenizer, classnames, templates)
    zeroshot = build_classifier(model, head).eval()
    # theta_0's identity, taken before training touches anything; only rank 0 writes files
    identity = _zeroshot_identity(args, model, zeroshot, classnames, templates, name) if rank0 else None
    out = Path(args.out)
    pretrained = args.pretrained or args.checkpoint
    if rank0:
        save_classifier(
            zeroshot,
            out / "zeroshot.safetensors",
            CheckpointInfo(args.arch, pretrained, "zeroshot", classnames, {"templates": templates}, identity),
        )
    freeze = {"auto": None, "yes": True, "no": False}[args.freeze_bn]
    config = FinetuneConfig(
        method=args.method,
        epochs=args.epochs,
        lr=args.lr,
        weight_decay=args.wd,
        batch_size=args.batch_size or 512,
        warmup_steps=args.warmup,
        freeze_bn=freeze,
        augment=args.augment,
        label_smoothing=args.label_smoothing,
        lp_l2=args.lp_l2,
        seed=args.seed,
        device=args.device,
        amp=args.amp,
        num_workers=args.workers,
    )
    classifier, info = finetune(model, tokenizer, zeroshot, train.dataset, classnames, templates, config, out)
    info["train_set"] = args.train
    if not rank0:
        return 0
    save_classifier(
        classifier, out / f"{args.method}.safetensors", CheckpointInfo(args.arch, pretrained, args.method, classnames, info, identity)
    )
    print(f"wrote {out / (args.method + '.safetensors')} (+ .json) and {out / 'zeroshot.safetensors'}")
    if info.get("lp", {}).get("warning"):
        print("WARNING:", info["lp"]["warning"], file=sys.stderr)
    return 0


def cmd_eval(args) -> int:
    from .datasets import head_classnames_for, templates_for
    from .models import build_classifier, build_zeroshot_head
    from .pipeline import build_store
    from .runtime import init_distributed, rank_world
    from .templates import get_templates
    from .wise import parse_alphas

    init_distributed()
    rank0 = rank_world()[0] == 0
    alphas = parse_alphas(args.alphas)
    model, preprocess, tokenizer = _load_base(args)
    id_name, id_root = _split_named(args.id)
    classnames = head_classnames_for(id_name, id_root)
    templates = get_templates(args.templates) if args.templates else templates_for(id_name)
    zeroshot = build_classifier(model, build_zeroshot_head(model, tokenizer, classnames, templates)).eval()
    identity = _zeroshot_identity(args, model, zeroshot, classnames, templates, id_name)
    methods = _eval_methods(args, zeroshot, identity, alphas, warn=rank0)
    sets = _eval_sets(args, preprocess, classnames)
    out = Path(args.out)

    def save_zeroshot(folder: Path) -> None:  # rank 0, into the folder being built (the staging one under --force)
        from .models import CheckpointInfo, save_classifier

        sha = save_classifier(
            zeroshot,
            folder / "checkpoints" / "zeroshot.safetensors",
            CheckpointInfo(args.arch, args.pretrained, "zeroshot", classnames, {"templates": templates}, identity),
        )
        for m in methods:
            m.info["checkpoints"]["zeroshot"]["sha256"] = sha

    store = build_store(
        out,
        zeroshot,
        methods,
        sets,
        sets[0].name,
        _split_named(args.id_val)[0] if args.id_val else None,
        [_split_named(s)[0] for s in args.shift],
        provenance=_eval_provenance(args, templates, alphas, identity),
        eval_config=_eval_config(args),
        logits_dtype=args.logits_dtype,
        force=args.force,
        on_start=save_zeroshot,
    )
    if store is not None:
        if not args.no_summaries and "summaries" not in store.manifest:  # a re-run of a finished store keeps its tables
            from .summaries import write_summaries

            store = write_summaries(store)  # the per-alpha tables the dashboard shows, computed once
        print(f"wrote store {out}")
        _print_info(store)
    return 0


def _eval_methods(args, zeroshot, identity: dict, alphas: list[float], warn: bool = True) -> list:
    """One ``MethodSpec`` per ``--finetuned METHOD=PATH``, each checked against theta_0 before any data is read."""
    from .evaluate import MethodSpec, linear_is_valid
    from .models import load_state_dict, read_checkpoint_info, sha256_file
    from .wise import check_compatible

    theta_zeroshot = {k: v.detach().clone() for k, v in zeroshot.state_dict().items()}
    methods = []
    for item in args.finetuned:
        method, path = _split_named(item)  # _prepare checked the form and that the file exists
        theta_ft = load_state_dict(path)
        try:
            check_compatible(theta_zeroshot, theta_ft)
        except ValueError as exc:
            raise SystemExit(f"error: {path} cannot be interpolated with the zero-shot model of {args.arch}: {exc}") from exc
        meta = read_checkpoint_info(path) if Path(str(path) + ".json").exists() else {}
        _check_zeroshot_start(path, meta, identity, warn=warn)
        checkpoints = {
            "finetuned": {"path": str(Path(path).resolve()), "sha256": sha256_file(path)},
            # written by rank 0 when the store starts (cmd_eval's save_zeroshot fills in the digest)
            "zeroshot": {"path": "checkpoints/zeroshot.safetensors", "sha256": None},
        }
        methods.append(
            MethodSpec(
                method,
                theta_zeroshot,
                theta_ft,
                alphas,
                linear=linear_is_valid(theta_zeroshot, theta_ft),
                info={"checkpoints": checkpoints, "hyperparameters": meta.get("extra", {}).get("config", {})},
            )
        )
    return methods


def _eval_sets(args, preprocess, classnames: list[str]) -> list:
    """The ID set, then the ID validation set if given, then the shifts, as ``EvalSet``s."""
    from .datasets import resolve

    specs = [args.id, *([args.id_val] if args.id_val else []), *args.shift]
    sets = []
    for spec in specs:
        name, root = _split_named(spec)
        sets.append(
            resolve(
                name, root, args.data_root, preprocess, head_classnames=classnames, download=args.download, max_examples=args.max_examples
            )
        )
    return sets


def _eval_provenance(args, templates: list[str], alphas: list[float], identity: dict) -> dict:
    from .models import sha256_file

    return {
        "model": {
            "arch": args.arch,
            "pretrained": args.pretrained,
            "checkpoint": args.checkpoint,
            "checkpoint_sha256": sha256_file(args.checkpoint) if args.checkpoint else None,
        },
        "templates": templates,
        "alphas": alphas,
        "command": " ".join(sys.argv),
        # theta_0's inputs (not its head's last bits, which vary with a machine's float summation order)
        "zeroshot_identity": {k: v for k, v in identity.items() if k not in ("weights_sha256", "head_sha256")},
    }


def _eval_config(args):
    from .evaluate import EvalConfig

    return EvalConfig(
        batch_size=args.batch_size or EvalConfig.batch_size,
        chunk_batches=args.chunk_batches,
        num_workers=args.workers,
        feature_rows=args.feature_rows,
        store_logits=args.store_logits,
        amp=args.amp,
        device=args.device,
    )


def _zeroshot_identity(args, model, zeroshot, classnames: list[str], templates: list[str], dataset: str) -> dict:
    """``models.zeroshot_identity`` plus the options that built theta_0 (shown when eval refuses a file)."""
    from .models import zeroshot_identity

    identity = zeroshot_identity(model, zeroshot, classnames, templates)
    identity["source"] = {
        "arch": args.arch,
        "pretrained": args.pretrained,
        "checkpoint": args.checkpoint,
        "templates": args.templates or f"<default for {dataset}>",
    }
    return identity


def _check_zeroshot_start(path: str, meta: dict, identity: dict, warn: bool = True) -> None:
    """Refuse a fine-tuned file whose recorded zero-shot start is not this eval's theta_0.

    Files without a record (no JSON beside them, or written before robust_core recorded the start) are
    accepted with a warning: only their shapes can be checked.
    """
    from .models import ZeroshotMismatchError, zeroshot_mismatch

    recorded = meta.get("zeroshot_identity")
    if recorded is None:
        if warn:
            why = "its JSON has no zero-shot record (older robust_core?)" if meta else f"no {Path(path).name}.json beside it"
            print(
                f"warning: {path}: cannot verify its zero-shot start ({why}); only its shapes are checked against theta_0.", file=sys.stderr
            )
        return
    what = zeroshot_mismatch(recorded, identity)
    if what is None:
        return
    source = recorded.get("source") or {}
    used = " ".join(f"--{k} {v}" for k, v in source.items() if v is not None)
    raise ZeroshotMismatchError(
        f"{path} was fine-tuned from another zero-shot start than this eval builds: {what}"
        + (f" (finetune used {used})" if used else "")
        + ". Pass the same --arch/--pretrained/--checkpoint/--templates as finetune did, or re-run finetune from this start."
    )


def store_info(store) -> dict:
    """The machine-readable description printed by ``info --json`` (read through the app's own RunView)."""
    from .analysis import OOD_AVG, RunView

    view = RunView(store)
    methods = {}
    for method in store.methods:
        curves = view.curves(method)
        methods[method] = {
            "label": view.method_label(method),
            "alphas": [float(a) for a in view.alphas(method)],
            "accuracy": {ds: [float(x) for x in curves[ds]] for ds in store.datasets},
            "ood_avg": [float(x) for x in curves[OOD_AVG]] if store.shifts else None,
        }
    baselines = {name: {ds: float(row[ds]) for ds in store.datasets if ds in row} for name, row in view.baseline_table().iterrows()}
    datasets = {ds: {"n": store.dataset(ds).n, "n_classes": store.dataset(ds).n_classes} for ds in store.datasets}
    return {
        "id": store.id,
        "id_val": store.id_val,
        "shifts": store.shifts,
        "datasets": datasets,
        "methods": methods,
        "baselines": baselines,
    }


def _print_info(store) -> None:
    info = store_info(store)
    print(f"store {store.path}  ({store.created or '?'})")
    if store.description:
        print(f"  {store.description}")
    print(f"  ID: {info['id']}   ID-val: {info['id_val']}   shifts: {', '.join(info['shifts'])}")
    for ds, d in info["datasets"].items():
        print(f"  {ds:<16} n={d['n']:<7} classes={d['n_classes']}")
    width = max(8, *(len(m) for m in info["methods"]))
    header = f"  {'method':<{width}} alpha  " + "  ".join(f"{ds[:10]:>10}" for ds in store.datasets) + "  OOD-avg"
    print(header)
    for method, m in info["methods"].items():
        shown = sorted({store.alpha_index(method, t) for t in (0.0, 0.5, 1.0)})
        for i in shown:
            accs = [m["accuracy"][ds][i] for ds in store.datasets]
            ood = f"{100 * m['ood_avg'][i]:6.1f}%" if m["ood_avg"] else "     –"
            print(f"  {method:<{width}} {m['alphas'][i]:<5.2f}  " + "  ".join(f"{100 * a:>9.1f}%" for a in accs) + f"  {ood}")
    if info["baselines"]:
        print(f"  baselines: {len(info['baselines'])} standard models")


def cmd_info(args) -> int:
    from .store import open_store

    store = open_store(args.store)
    if args.json:
        print(json.dumps(store_info(store), indent=1))
    else:
        _print_info(store)
    return 0


def cmd_summarize(args) -> int:
    import time

    from .store import open_store
    from .summaries import write_summaries

    store = open_store(args.store)
    start = time.perf_counter()
    store = write_summaries(store)
    n = sum(1 for rel in store.manifest["files"] if rel.startswith("summaries/"))
    print(f"wrote {n} summary tables into {store.path} in {time.perf_counter() - start:.1f} s")
    return 0


def cmd_export(args) -> int:
    from .export import export_interpolated

    weights, meta = export_interpolated(args.store, args.method, args.alpha, args.out)
    print(f"wrote {weights} and {meta}")
    return 0


def cmd_demo(args) -> int:
    from .demo import DemoConfig, DemoExistsError, build_demo, default_miniature_out, format_criteria, miniature_config

    config = miniature_config() if args.miniature else DemoConfig()
    config.seed = args.seed
    config.world.seed = args.seed
    out = args.out or (default_miniature_out() if args.miniature else "cache/demo")
    try:
        store = build_demo(out, config, device=args.device, force=args.force, build_dir=args.build_dir)
    except DemoExistsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    _print_info(store)
    if args.criteria:
        print(format_criteria(store))
    return 0


def cmd_datasets(args) -> int:
    from .datasets import get_spec, list_datasets
    from .templates import get_templates, list_template_sets

    print("registered datasets (pass NAME with --data-root, or NAME=PATH):")
    for name in list_datasets():
        spec = get_spec(name)
        print(f"  {name:<16} loader={spec['loader']:<20} folder={spec['root_subdir']:<42} head={spec['head']}")
    print("  any other NAME=PATH is read as an ImageFolder (one sub-folder per class)")
    print("template sets:")
    for name in list_template_sets():
        print(f"  {name:<16} {len(get_templates(name))} templates")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        _prepare(args)  # before anything imports torch, open_clip or huggingface_hub
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 2
    from .datasets import DatasetError
    from .models import ModelLoadError
    from .store import StoreError
    from .wise import InterpolationError

    handler = {
        "finetune": cmd_finetune,
        "eval": cmd_eval,
        "info": cmd_info,
        "summarize": cmd_summarize,
        "export": cmd_export,
        "demo": cmd_demo,
        "datasets": cmd_datasets,
    }[args.command]
    try:
        return handler(args)
    except (DatasetError, ModelLoadError, StoreError, InterpolationError, ValueError, FileNotFoundError) as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except OSError as exc:  # read-only or full disk, permissions, a path that is a file
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        print(f"error: {exc.strerror or exc}{where}. Check that the output folder exists, is writable and has free space.", file=sys.stderr)
        return 2
    except SystemExit as exc:  # a command's own `raise SystemExit("error: ...")`: one line, exit 2 like every error
        if isinstance(exc.code, str):
            message = _one_line(Exception(exc.code))
            print(message if message.startswith("error:") else f"error: {message}", file=sys.stderr)
            return 2
        raise
    except KeyboardInterrupt:
        print("interrupted: finished parts are kept; re-run the same command to resume.", file=sys.stderr)
        return 130
    except Exception as exc:  # anything else: one line, never a traceback (ROBUST_DEBUG=1 shows it)
        if os.environ.get("ROBUST_DEBUG"):
            raise
        print(f"error: {type(exc).__name__}: {_one_line(exc)} (set ROBUST_DEBUG=1 for the traceback)", file=sys.stderr)
        return 2


def _one_line(exc: BaseException) -> str:
    text = str(exc)
    if "Original Traceback" in text:  # re-raised from a DataLoader worker: keep the worker's own message
        last = [line for line in text.strip().splitlines() if line.strip()][-1]
        text = last.split(": ", 1)[1] if ": " in last and last.split(": ", 1)[0].isidentifier() else last
    text = " ".join(text.split())
    return text if len(text) <= 600 else text[:600] + " ..."
