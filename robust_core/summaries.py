"""Per-alpha summaries computed once, when a store is built, and kept with it (``summaries/``).

The dashboard's slow tables are functions of (method, alpha index, set) only: the paired intervals of
theta(alpha) against both endpoints at every grid alpha, the per-class table with its per-class intervals,
the overrides, the margin summaries and the single models (soups) against theta(alpha); and, once per method,
the diversity table (KL and CKA read the full logits) and the label-free OOD estimate along the grid. ``write_summaries(store)`` computes them with the same ``RunView``
code the app runs and stores them as parquet files listed (with their sha256) in the manifest; ``RunView``
then reads them instead of recomputing, so the first visit of any alpha is a lookup. A store without
them (built before, or with ``--no-summaries``) works the same, computing on first use.

    python -m robust_core summarize STORE      # add or refresh them on an existing store
"""

from __future__ import annotations

import json

import pandas as pd

from .store import Store, _republish, atomic_write_parquet, sha256_file

SUMMARY_VERSION = 1


def summary_files(store: Store) -> dict[str, str]:
    """{relative path: what it holds} for every summary table of ``store`` (whether written yet or not)."""
    out = {}
    for m in store.wise_methods:
        for ref in ("zero-shot", "fine-tuned"):
            out[f"summaries/{m}/paired-{ref}.parquet"] = f"theta(alpha) - {ref}, every alpha and set"
        out[f"summaries/{m}/diversity.parquet"] = "zero-shot vs fine-tuned diversity per set (KL, CKA over full logits)"
        out[f"summaries/{m}/label_free-aline-d.parquet"] = "label-free OOD estimate along alpha"
        out[f"summaries/{m}/overrides.parquet"] = "overrides, every alpha"
        if store.point_methods:
            out[f"summaries/{m}/single_models.parquet"] = "soups and single models against theta(alpha), every alpha"
        for ds in store.datasets:
            out[f"summaries/{m}/per_class-{ds}.parquet"] = f"per-class table on {ds}, every alpha"
            out[f"summaries/{m}/margins-{ds}.parquet"] = f"margin summary on {ds}, every alpha"
    return out


def _tables(store: Store):
    """(relative path, frame) for every summary, computed by the app's own RunView."""
    from .analysis import REFERENCES, RunView

    view = RunView(store)
    for m in store.wise_methods:
        n = len(view.alphas(m))
        for ref in REFERENCES:
            yield f"summaries/{m}/paired-{ref}.parquet", view.paired_grid(m, ref).reset_index()
        yield f"summaries/{m}/diversity.parquet", view.diversity(m).reset_index()
        yield f"summaries/{m}/label_free-aline-d.parquet", view.label_free(m).reset_index()
        yield f"summaries/{m}/overrides.parquet", pd.concat([view.overrides(m, i).reset_index().assign(alpha_index=i) for i in range(n)])
        if store.point_methods:
            yield f"summaries/{m}/single_models.parquet", pd.concat([view.single_models(m, i).assign(alpha_index=i) for i in range(n)])
        for ds in store.datasets:
            yield f"summaries/{m}/per_class-{ds}.parquet", pd.concat([view.per_class(m, ds, i).assign(alpha_index=i) for i in range(n)])
            margins = [view.margin_summary(m, ds, i).reset_index().assign(alpha_index=i) for i in range(n)]
            yield f"summaries/{m}/margins-{ds}.parquet", pd.concat(margins)


def write_summaries(store: Store, log=None) -> Store:
    """Compute every summary table, write each atomically, then re-publish the manifest once (so a store never
    lists a summary that is not complete on disk). Returns the reopened store."""
    files = dict(store.manifest["files"])
    for rel, frame in _tables(store):
        path = store.path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_parquet(path, frame.reset_index(drop=True))
        files[rel] = {"bytes": path.stat().st_size, "sha256": sha256_file(path)}
        if log:
            log(f"summary {rel}")
    return _republish(store, files=files, summaries={"version": SUMMARY_VERSION})


def read_summary(store: Store, rel: str) -> pd.DataFrame | None:
    """A stored summary table, or None when the store has none (or one from another summary version)."""
    if store.manifest.get("summaries", {}).get("version") != SUMMARY_VERSION or rel not in store.manifest["files"]:
        return None
    return pd.read_parquet(store.path / rel)


def describe(store: Store) -> str:
    return json.dumps(sorted(summary_files(store)), indent=1)
