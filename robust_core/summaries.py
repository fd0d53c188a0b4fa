"""Per-alpha summaries computed once, when a store is built, and kept with it (``summaries/``).

The dashboard's slow tables are functions of (method, alpha index, set) only: the paired intervals of
theta(alpha) against both endpoints at every grid alpha, the per-class table with its per-class intervals,
the overrides, the margin summaries, the confidence intervals (mean margins, fine-tuned − zero-shot) and the single models (soups) against theta(alpha); and, once per method,
the diversity table (KL and CKA read the full logits) and the label-free OOD estimate along the grid. ``write_summaries(store)`` computes them with the same ``RunView``
code the app runs and stores them as parquet files listed (with their sha256) in the manifest; ``RunView``
then reads them instead of recomputing, so the first visit of any alpha is a lookup. A store without
them (built before, or with ``--no-summaries``) works the same, computing on first use.

    python -m robust_core summarize STORE      # add or refresh them on an existing store
"""

from __future__ import annotations

import pandas as pd

from .store import Store, _republish, atomic_write_parquet, sha256_file

SUMMARY_VERSION = 1


def table_path(method: str, table: str) -> str:
    """Where summary ``table`` of ``method`` lives in a store (``paired-zero-shot``, ``per_class-<set>``, ...)."""
    return f"summaries/{method}/{table}.parquet"


def _tables(store: Store):
    """(relative path, frame) for every summary, computed by the app's own RunView."""
    from .analysis import REFERENCES, RunView

    view = RunView(store)
    for m in store.wise_methods:
        n = len(view.alphas(m))
        for ref in REFERENCES:
            yield table_path(m, f"paired-{ref}"), view.paired_grid(m, ref).reset_index()
        yield table_path(m, "diversity"), view.diversity(m).reset_index()
        yield table_path(m, "label_free-aline-d"), view.label_free(m).reset_index()
        yield table_path(m, "overrides"), pd.concat([view.overrides(m, i).reset_index().assign(alpha_index=i) for i in range(n)])
        if store.point_methods:
            yield table_path(m, "single_models"), pd.concat([view.single_models(m, i).assign(alpha_index=i) for i in range(n)])
        for ds in store.datasets:
            yield table_path(m, f"per_class-{ds}"), pd.concat([view.per_class(m, ds, i).assign(alpha_index=i) for i in range(n)])
            margins = [view.margin_summary(m, ds, i).reset_index().assign(alpha_index=i) for i in range(n)]
            yield table_path(m, f"margins-{ds}"), pd.concat(margins)
            yield table_path(m, f"confidence-{ds}"), _confidence_table(view.confidence_evidence(m, ds))


def _confidence_table(intervals: dict) -> pd.DataFrame:
    """``confidence_evidence``'s two intervals as rows (``n`` = 0 where one model has no such predictions)."""
    nan = float("nan")
    return pd.DataFrame(
        [
            {"name": name, "estimate": iv.estimate, "low": iv.low, "high": iv.high, "level": iv.level, "n": iv.n}
            if iv is not None
            else {"name": name, "estimate": nan, "low": nan, "high": nan, "level": nan, "n": 0}
            for name, iv in intervals.items()
        ]
    )


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
