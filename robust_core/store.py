"""The on-disk logit store: one directory per run, read by the dashboard.

Layout (all arrays plain ``.npy``, memory-mappable, written with ``allow_pickle=False``)::

    RUN/
      manifest.json                      written last; schema version, provenance, file index
      run_config.json                    what the run was asked to compute (checked on resume)
      labels/<dataset>.npy               int64 (n,)
      logits/<method>/<dataset>.npy      float16|float32 (n_alphas, n, n_classes); alpha 0 = zero-shot
      topk/<method>/<dataset>.npy        int16|int32 (n_alphas, n, 3) top-3 classes, for instant slider moves
      topv/<method>/<dataset>.npy        float16 (n_alphas, n, 3) their logits (margin = topv[...,0]-topv[...,1])
      baselines/<model>/<dataset>.npy    float16|float32 (n, n_classes), the run's standard models
                                         (compact stores: int16 (n,) their predictions only)
      features/<method>/<dataset>.npy    float16 (2, m, d): alpha 0 and alpha 1 features, m <= 10k rows
      features/index/<dataset>.npy       int64 (m,) which examples those rows are
      summary.parquet                    accuracy per (method, kind, alpha, dataset); kind wise|ensemble|baseline
      examples.parquet                   optional per-example table (dataset, index, label, png thumbnail)
      _parts/<dataset>/<start>-<stop>/   while a run is in progress: one slice of a set (a rank's share),
                                         streamed into preallocated files with a progress record (``ShardWriter``)

Compact stores (``finalize(compact=True)``, the demo) keep fewer bytes: no ``topk``/``topv`` files when
there are at most 256 classes (derived from the logits on first use), linear-probe methods keep only
their two endpoints (every alpha of a linear head is exactly the output-space ensemble of the
endpoints, rebuilt on read; the manifest's ``logits_alphas`` says so), and standard models keep only
their predictions. ``weights/<name>.safetensors`` (optional) hold fp16 endpoint weights referenced by
the methods' ``checkpoints``. Top-k-only methods (``eval --store-logits topk``, ``"logits_stored":
"endpoints"``) keep ``topk``/``topv`` for every alpha and full logits at alpha 0 and 1 only.

Every finished file is written to a temporary file first and moved into place with ``os.replace``
(slices are preallocated and trusted only up to their fsynced progress record); the manifest is
written after everything it lists, so a store with a manifest is complete. An interrupted run keeps
its committed slices and the next run with the same configuration resumes them where they stopped.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .mixing import mix

SCHEMA_VERSION = 1
TOPK = 3
DERIVED_TOPK_MAX_CLASSES = 256  # compact stores derive top-k on read at or below this many classes


class StoreError(RuntimeError):
    """A store is missing, truncated or inconsistent; the message names the file and the fix."""


NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$"  # dataset, method and baseline names (file names)
_NAME_RE = re.compile(NAME_PATTERN)
HASHED_MAX_BYTES = 64 * 2**20  # files up to this size (json, parquet, safetensors) carry a sha256 in the manifest


def safe_name(name: str, what: str = "name") -> str:
    """``name`` if it can be a file name inside a store (no path separators, no leading dot), else StoreError."""
    if not isinstance(name, str) or not _NAME_RE.match(name) or ".." in name:
        raise StoreError(
            f"{what} {name!r} cannot be used in a store: use letters, digits, '.', '_', '+', '-' (no '/', no '..', "
            "not starting with '.'), e.g. imagenet-r."
        )
    return name


_NAMED = {"type": "object", "propertyNames": {"pattern": NAME_PATTERN}}
MANIFEST_SCHEMA = {
    "type": "object",
    "required": ["schema_version", "run", "datasets", "methods", "files"],
    "properties": {
        "schema_version": {"type": "integer"},
        "name": {"type": "string"},
        "description": {"type": "string"},
        "run": {
            "type": "object",
            "required": ["id", "shifts"],
            "properties": {
                "id": {"type": "string", "pattern": NAME_PATTERN},
                "id_val": {"type": ["string", "null"]},
                "shifts": {"type": "array", "items": {"type": "string", "pattern": NAME_PATTERN}},
            },
        },
        "datasets": {
            **_NAMED,
            "minProperties": 1,
            "additionalProperties": {
                "type": "object",
                "required": ["classnames", "n", "n_classes"],
                "properties": {
                    "classnames": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                    "n": {"type": "integer", "minimum": 0},
                    "n_classes": {"type": "integer", "minimum": 1},
                    "role": {"type": "string"},
                },
            },
        },
        "methods": {
            **_NAMED,
            "minProperties": 1,
            "additionalProperties": {
                "type": "object",
                "required": ["alphas"],
                "properties": {
                    "alphas": {"type": "array", "items": {"type": "number", "minimum": 0, "maximum": 1}, "minItems": 1},
                    "logits_alphas": {"type": "array", "items": {"type": "number", "minimum": 0, "maximum": 1}},
                    "logits_stored": {"enum": ["full", "endpoints"]},
                    "role": {"enum": ["wise", "point"]},
                    "label": {"type": "string"},
                    "linear": {"type": "boolean"},
                    "checkpoints": {"type": "object"},
                },
            },
        },
        "baselines": _NAMED,
        "files": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "required": ["bytes"],
                "properties": {
                    "bytes": {"type": "integer", "minimum": 0},
                    "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
                    "dtype": {"type": "string"},
                    "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                },
            },
        },
    },
}


def _validate_manifest(manifest, mpath: Path) -> None:
    """Raise StoreError naming the first field of ``manifest`` that does not fit ``MANIFEST_SCHEMA``."""
    import math

    import jsonschema

    try:
        jsonschema.validate(manifest, MANIFEST_SCHEMA)
    except jsonschema.ValidationError as exc:
        field = ".".join(str(p) for p in exc.absolute_path) or "(top level)"
        raise StoreError(f"{mpath.name} of store {mpath.parent.name}: field {field}: {exc.message}. Rebuild the store.") from None
    for method, info in manifest["methods"].items():
        if any(not math.isfinite(a) for a in info["alphas"]):
            raise StoreError(f"{mpath.name} of store {mpath.parent.name}: field methods.{method}.alphas holds a non-finite alpha.")


ALPHA_KEY_DECIMALS = 4  # parts are keyed by alpha at this precision (``wise.parse_alphas`` refuses closer alphas)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file (checkpoint provenance, and the small files of a store's manifest)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def same_run(path: Path, run_config: dict) -> bool | None:
    """Whether the folder's ``run_config.json`` equals ``run_config`` (None when it has none)."""
    cfg_path = Path(path) / "run_config.json"
    if not cfg_path.exists():
        return None
    return json.loads(cfg_path.read_text()) == json.loads(json.dumps(run_config, sort_keys=True, default=str))


def alpha_key(alpha: float) -> str:
    """Stable file-name key for an alpha (``0.3500``)."""
    return f"{float(alpha):.{ALPHA_KEY_DECIMALS}f}"


class _FaultPoints:
    """Fault injection for the test suite (``tests/test_faults.py``), off unless its variables are set.

    ``ROBUST_FAULT_AT=N:kill|kill-before-replace|enospc`` makes the N-th atomic write of this process
    SIGKILL itself after (or just before) moving its file into place, or fail with ENOSPC; every
    ``os.replace`` the store does goes through ``_publish``, so N walks through parts, consolidated
    arrays, tables and the manifest.
    """

    def __init__(self):
        spec = os.environ.get("ROBUST_FAULT_AT", "")
        at, _, self.kind = spec.partition(":")
        self.at = int(at) if at.isdigit() else 0
        self.count = 0

    def check(self, when: str) -> None:
        if not self.at:
            return
        if when == "before":
            self.count += 1
        if self.count != self.at:
            return
        import errno
        import signal

        if self.kind == "enospc" and when == "before":
            raise OSError(errno.ENOSPC, "No space left on device (injected)")
        if (self.kind == "kill-before-replace") == (when == "before"):
            os.kill(os.getpid(), signal.SIGKILL)


_FAULTS = _FaultPoints()


def _publish(tmp: Path, path: Path) -> None:
    _FAULTS.check("before")
    os.replace(tmp, path)
    _FAULTS.check("after")


def atomic_save_npy(path: Path, array: np.ndarray) -> None:
    """Write ``array`` to ``path`` via a temporary file and ``os.replace`` (never half-written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        np.save(fh, np.ascontiguousarray(array), allow_pickle=False)
        fh.flush()
        os.fsync(fh.fileno())
    _publish(tmp, path)


def atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    _publish(tmp, path)


def atomic_write_parquet(path: Path, frame) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    frame.to_parquet(tmp, index=False)
    _publish(tmp, path)


def _index_dtype(n_classes: int):
    """int16 class indices up to 32767 classes (ImageNet included), int32 beyond (21k heads)."""
    return np.int16 if n_classes <= np.iinfo(np.int16).max else np.int32


def _rows_per_block(n_classes: int, budget_bytes: int = 16 * 2**20) -> int:
    """Rows of float32 logits that fit ``budget_bytes``: every pass over a store's logits works in such blocks,
    so memory stays flat in the set size (and in the class count: 1k classes give 4,096-row blocks, 21k give 192)."""
    return max(1, budget_bytes // (4 * max(1, int(n_classes))))


def _topk(logits: np.ndarray, k: int = TOPK, chunk: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Top-k indices (descending) and values along the last axis, in row blocks (memory flat in the row count).

    k passes of ``argmax`` over a float32 copy of each block, the chosen entry masked after each pass:
    ties (common in float16) go to the lower class index, so column 0 equals ``argmax`` and every
    accuracy computed from ``topk`` matches one computed from the logits.
    """
    flat = logits.reshape(-1, logits.shape[-1])
    chunk = chunk or _rows_per_block(flat.shape[-1])
    k = min(k, flat.shape[-1])
    idx = np.empty((flat.shape[0], k), _index_dtype(flat.shape[-1]))
    val = np.empty((flat.shape[0], k), np.float16)
    for s in range(0, flat.shape[0], chunk):
        block = np.array(flat[s : s + chunk], dtype=np.float32)
        rows = np.arange(len(block))
        for j in range(k):
            col = block.argmax(1)
            idx[s : s + chunk, j] = col
            val[s : s + chunk, j] = block[rows, col]
            block[rows, col] = -np.inf
    return idx.reshape(*logits.shape[:-1], k), val.reshape(*logits.shape[:-1], k)


def _top1(logits: np.ndarray) -> np.ndarray:
    """argmax with NaN-safe float32 upcast, chunked to bound memory."""
    out = np.empty(logits.shape[:-1], np.int64)
    flat_in, flat_out = logits.reshape(-1, logits.shape[-1]), out.reshape(-1)
    step = _rows_per_block(logits.shape[-1])
    for s in range(0, flat_in.shape[0], step):
        flat_out[s : s + step] = np.asarray(flat_in[s : s + step], np.float32).argmax(-1)
    return out


def _npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, byte offset of the data) of an .npy file, without touching its data pages."""
    arr = np.load(path, mmap_mode="r", allow_pickle=False)
    return tuple(arr.shape), arr.dtype, int(arr.offset)


def _alloc_npy(path: Path, dtype, shape: tuple[int, ...]) -> int:
    """Create ``path`` as an .npy of ``shape`` with its blocks reserved now (a full disk fails here, with ENOSPC,
    not later as SIGBUS in a memory map or a half-written array). Returns the data's byte offset."""
    arr = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)
    offset, size = int(arr.offset), int(arr.offset + arr.nbytes)
    del arr
    fd = os.open(path, os.O_RDWR)
    try:
        if size and hasattr(os, "posix_fallocate"):
            os.posix_fallocate(fd, 0, size)
        os.fsync(fd)
    finally:
        os.close(fd)
    return offset


class _NpyRows:
    """An .npy file read in blocks of rows with ``pread``: no memory map, so a pass over a file larger than
    RAM keeps the process's RSS flat (every touched page of a memory map counts as resident).

    Rows are the flattened leading axes: an (A, n, C) file has A * n rows of C values.
    """

    def __init__(self, path: Path):
        self.shape, self.dtype, self.offset = _npy_header(path)
        self.width = int(self.shape[-1]) if len(self.shape) > 1 else 1
        self.fd = os.open(path, os.O_RDONLY)

    def rows(self, r0: int, r1: int) -> np.ndarray:
        size = self.width * self.dtype.itemsize
        data = _pread_all(self.fd, (r1 - r0) * size, self.offset + r0 * size)
        return np.frombuffer(data, self.dtype).reshape(r1 - r0, self.width)

    def close(self) -> None:
        os.close(self.fd)


class _GridRows:
    """Blocks of one alpha's rows of an (A, n, C) grid, from a file (``_NpyRows``) or an in-memory array."""

    def __init__(self, path: Path | None = None, array: np.ndarray | None = None):
        self.reader = _NpyRows(path) if path is not None else None
        self.array = array
        shape = self.reader.shape if self.reader else array.shape
        self.n, self.n_classes = shape[1], shape[2]

    def block(self, a: int, s: int, e: int) -> np.ndarray:
        e = min(e, self.n)
        if self.reader is None:
            return self.array[a, s:e]
        return self.reader.rows(a * self.n + s, a * self.n + e)

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()


def _ensemble_hits(grid: _GridRows, alphas, labels: np.ndarray, last: int) -> np.ndarray:
    """Correct predictions of the output-space ensemble (1 - alpha) * l0 + alpha * l1 of the endpoints (grid
    rows 0 and ``last``) at every alpha, in row blocks (not WiSE-FT: the curve WiSE-FT is compared with)."""
    hits = np.zeros(len(alphas), np.int64)
    step = _rows_per_block(grid.n_classes)
    for s in range(0, len(labels), step):
        l0, l1 = np.asarray(grid.block(0, s, s + step), np.float32), np.asarray(grid.block(last, s, s + step), np.float32)
        for a_i, alpha in enumerate(alphas):
            hits[a_i] += int((mix(l0, l1, alpha).argmax(-1) == labels[s : s + step]).sum())
    return hits


def _pread_all(fd: int, length: int, offset: int) -> bytes:
    parts = []
    while length > 0:
        block = os.pread(fd, length, offset)
        if not block:
            raise StoreError(f"Unexpected end of file while reading {length} bytes at offset {offset}.")
        parts.append(block)
        length, offset = length - len(block), offset + len(block)
    return b"".join(parts)


def _pwrite_all(fd: int, data, offset: int) -> None:
    view = memoryview(data).cast("B")
    while len(view):
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


def _concatenate(sources: list[Path], target: Path, axis: int, block_bytes: int = 64 * 2**20) -> None:
    """Join .npy files along ``axis`` into ``target`` by byte ranges (pread/pwrite: memory and RSS bounded), then publish."""
    heads = [_NpyRows(p) for p in sources]
    try:
        shape = list(heads[0].shape)
        shape[axis] = sum(h.shape[axis] for h in heads)
        tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
        out_offset = _alloc_npy(tmp, heads[0].dtype, tuple(shape))  # a full disk fails here, before any copy
        lead = int(np.prod(shape[:axis], dtype=np.int64))
        row_bytes = int(np.prod(shape[axis + 1 :], dtype=np.int64)) * heads[0].dtype.itemsize
        fd = os.open(tmp, os.O_RDWR)
        try:
            for i in range(lead):
                pos = 0
                for h in heads:
                    rows = h.shape[axis]
                    src, dst, left = h.offset + i * rows * row_bytes, out_offset + (i * shape[axis] + pos) * row_bytes, rows * row_bytes
                    while left > 0:
                        n = min(left, block_bytes)
                        _pwrite_all(fd, _pread_all(h.fd, n, src), dst)
                        src, dst, left = src + n, dst + n, left - n
                    pos += rows
            os.fsync(fd)
        finally:
            os.close(fd)
    finally:
        for h in heads:
            h.close()
    _publish(tmp, target)


class ShardWriter:
    """Examples [start, stop) of one dataset, streamed batch by batch into preallocated .npy files.

    ``layout`` names the arrays: ``logits`` {method: [n_alphas, n_classes]}, ``baselines`` {name:
    n_classes}, ``features`` {method: [m, d]} (alpha 0 and 1 features of the ``m`` rows of this slice
    listed in ``feature_index``) and ``n_classes``. Files (in the slice's folder)::

        logits.<method>.npy     (n_alphas, rows, C) store dtype
        baseline.<name>.npy     (rows, C) store dtype
        features.<method>.npy   (2, m, d) float16;  features_index.npy (m,) int64 (global example indices)
        labels.npy              (rows,) int64
        progress.json           {"layout": ..., "done": rows written and fsynced}

    Host memory does not grow with the set: every batch is written at its offset with ``pwrite`` and
    ``commit`` fsyncs the files before recording progress atomically, so a kill loses at most the
    batches since the last commit and a resume starts at ``done``.
    """

    def __init__(self, folder: Path, rows: int, layout: dict, dtype):
        self.folder, self.rows, self.dtype = Path(folder), int(rows), np.dtype(dtype)
        self.layout = json.loads(json.dumps(layout, sort_keys=True))
        record = self._record(self.folder)
        if record is None or record.get("layout") != self.layout or record.get("rows") != self.rows:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder.mkdir(parents=True)
            self._create()
            record = {"layout": self.layout, "rows": self.rows, "done": 0}
            atomic_write_text(self.folder / "progress.json", json.dumps(record, sort_keys=True))
        self.done = int(record["done"])
        self._fds: dict[str, tuple[int, int, tuple]] = {}

    @staticmethod
    def _record(folder: Path) -> dict | None:
        try:
            return json.loads((folder / "progress.json").read_text())
        except (OSError, ValueError):
            return None

    @staticmethod
    def done_rows(folder: Path) -> int:
        record = ShardWriter._record(folder)
        return -1 if record is None else int(record.get("done", -1))

    def _files(self) -> dict[str, tuple[np.dtype, tuple]]:
        lay = self.layout
        files = {f"logits.{m}.npy": (self.dtype, (a, self.rows, c)) for m, (a, c) in lay["logits"].items()}
        files.update({f"baseline.{b}.npy": (self.dtype, (self.rows, cb)) for b, cb in lay["baselines"].items()})
        for m, (a, k) in lay.get("top", {}).items():
            files[f"topk.{m}.npy"] = (np.dtype(_index_dtype(lay["n_classes"])), (a, self.rows, k))
            files[f"topv.{m}.npy"] = (np.dtype(np.float16), (a, self.rows, k))
        files.update({f"features.{m}.npy": (np.dtype(np.float16), (2, md[0], md[1])) for m, md in lay["features"].items()})
        if lay["features"]:
            files["features_index.npy"] = (np.dtype(np.int64), (lay["feature_rows"],))
        files["labels.npy"] = (np.dtype(np.int64), (self.rows,))
        return files

    def _create(self) -> None:
        for name, (dtype, shape) in self._files().items():
            _alloc_npy(self.folder / name, dtype, shape)

    def _fd(self, name: str) -> tuple[int, int, tuple]:
        if name not in self._fds:
            shape, _, offset = _npy_header(self.folder / name)
            self._fds[name] = (os.open(self.folder / name, os.O_RDWR), offset, shape)
        return self._fds[name]

    def _pwrite(self, name: str, offset_items: int, values: np.ndarray, dtype) -> None:
        fd, header, _ = self._fd(name)
        _pwrite_all(fd, np.ascontiguousarray(values, dtype=dtype), header + offset_items * np.dtype(dtype).itemsize)

    def write_logits(self, method: str, alpha_index: int, row: int, values: np.ndarray) -> None:
        """Rows [row, row + len(values)) of this slice for one alpha (values (b, C))."""
        _, _, shape = self._fd(f"logits.{method}.npy")
        self._pwrite(f"logits.{method}.npy", (alpha_index * shape[1] + row) * shape[2], values, self.dtype)

    def write_top(self, method: str, alpha_index: int, row: int, idx: np.ndarray, val: np.ndarray) -> None:
        """Top-k classes and their logits of rows [row, row + len(idx)) for one alpha (``store_logits="topk"``)."""
        _, _, shape = self._fd(f"topk.{method}.npy")
        at = (alpha_index * shape[1] + row) * shape[2]
        self._pwrite(f"topk.{method}.npy", at, idx, _index_dtype(self.layout["n_classes"]))
        self._pwrite(f"topv.{method}.npy", at, val, np.float16)

    def write_baseline(self, name: str, row: int, values: np.ndarray) -> None:
        _, _, shape = self._fd(f"baseline.{name}.npy")
        self._pwrite(f"baseline.{name}.npy", row * shape[1], values, self.dtype)

    def write_labels(self, row: int, values: np.ndarray) -> None:
        self._pwrite("labels.npy", row, values, np.int64)

    def write_features(self, method: str, which: int, pos: int, values: np.ndarray) -> None:
        """Feature rows [pos, pos + len(values)) of alpha 0 (``which`` 0) or alpha 1 (1)."""
        _, _, shape = self._fd(f"features.{method}.npy")
        self._pwrite(f"features.{method}.npy", (which * shape[1] + pos) * shape[2], values, np.float16)

    def write_feature_index(self, index: np.ndarray) -> None:
        self._pwrite("features_index.npy", 0, index, np.int64)

    def commit(self, done: int) -> None:
        """Make everything written so far durable, then record that ``done`` rows are complete."""
        for fd, _, _ in self._fds.values():
            os.fsync(fd)
        self.done = int(done)
        atomic_write_text(
            self.folder / "progress.json", json.dumps({"layout": self.layout, "rows": self.rows, "done": self.done}, sort_keys=True)
        )

    def close(self) -> None:
        for fd, _, _ in self._fds.values():
            os.close(fd)
        self._fds.clear()


class StoreWriter:
    """Builds a store incrementally; resumable; publishes the manifest last.

    Args:
        path: run directory (created).
        run_config: JSON-able description of what is computed; on resume it must equal the saved one.
        logits_dtype: ``float16`` (default, half the disk) or ``float32``.
    """

    def __init__(self, path: str | os.PathLike, run_config: dict, logits_dtype: str = "float16"):
        self.path = Path(path)
        self.dtype = np.dtype(logits_dtype)
        self.path.mkdir(parents=True, exist_ok=True)
        same = same_run(self.path, run_config)
        if same is False:
            raise StoreError(
                f"{self.path} holds a different run (run_config.json differs). Choose another --out "
                "directory, or delete this one to start over."
            )
        if same is None:
            atomic_write_text(self.path / "run_config.json", json.dumps(run_config, sort_keys=True, indent=1, default=str))
        self.run_config = run_config
        # A finished store stays readable while it is resumed: its manifest is only replaced, atomically,
        # by finalize (a kill in between leaves the old, complete store).

    # -- streamed evaluation (resumable unit: a contiguous slice of one dataset's examples)
    def shard(self, dataset: str, start: int, stop: int, layout: dict) -> ShardWriter:
        """The writer for examples [start, stop) of ``dataset`` (resumed where its progress record says)."""
        return ShardWriter(self._shard_dir(dataset, start, stop), stop - start, layout, self.dtype)

    def _shard_dir(self, dataset: str, start: int, stop: int) -> Path:
        return self.path / "_parts" / safe_name(dataset, "dataset") / f"{int(start)}-{int(stop)}"

    def shard_done(self, dataset: str, start: int, stop: int) -> bool:
        """Whether the slice is complete (or its dataset already assembled)."""
        return self.has_labels(dataset) or ShardWriter.done_rows(self._shard_dir(dataset, start, stop)) == stop - start

    def assemble(self, dataset: str, bounds: list[tuple[int, int]]) -> None:
        """Join the complete slices ``bounds`` (tiling [0, n)) into the store's arrays; labels last.

        Idempotent under kills: a target already in place whose source is gone was moved by an earlier
        attempt; the dataset counts as assembled once ``labels/<dataset>.npy`` exists.
        """
        work = self.path / "_parts" / safe_name(dataset, "dataset")
        if self.has_labels(dataset):
            shutil.rmtree(work, ignore_errors=True)
            return
        dirs = [self._shard_dir(dataset, a, b) for a, b in bounds]
        for d, (a, b) in zip(dirs, bounds):
            if ShardWriter.done_rows(d) != b - a:
                raise StoreError(f"Cannot finalize {dataset}: examples {a}-{b} were never computed (re-run the same command).")
        layout = json.loads((dirs[0] / "progress.json").read_text())["layout"]
        targets = {f"logits.{m}.npy": (f"logits/{m}/{dataset}.npy", 1) for m in layout["logits"]}
        targets.update({f"baseline.{b}.npy": (f"baselines/{b}/{dataset}.npy", 0) for b in layout["baselines"]})
        for m in layout.get("top", {}):
            targets[f"topk.{m}.npy"] = (f"topk/{m}/{dataset}.npy", 1)
            targets[f"topv.{m}.npy"] = (f"topv/{m}/{dataset}.npy", 1)
        if layout["features"]:
            targets.update({f"features.{m}.npy": (f"features/{m}/{dataset}.npy", 1) for m in layout["features"]})
            targets["features_index.npy"] = (f"features/index/{dataset}.npy", 0)
        targets["labels.npy"] = (f"labels/{dataset}.npy", 0)  # last: marks the dataset as assembled
        for src, (rel, axis) in targets.items():
            target = self.path / rel
            sources = [d / src for d in dirs]
            if not all(p.exists() for p in sources):
                if target.exists():
                    continue  # moved into place by an interrupted earlier attempt
                raise StoreError(f"Cannot finalize {dataset}: {src} of a finished slice is missing; delete {work} and re-run.")
            target.parent.mkdir(parents=True, exist_ok=True)
            if len(sources) == 1:
                _publish(sources[0], target)  # one slice: the streamed file is already the final array
            else:
                _concatenate(sources, target, axis)
        shutil.rmtree(work, ignore_errors=True)

    def write_labels(self, dataset: str, labels: np.ndarray) -> None:
        atomic_save_npy(self.path / "labels" / f"{safe_name(dataset, 'dataset')}.npy", np.asarray(labels, dtype=np.int64))

    def has_labels(self, dataset: str) -> bool:
        return (self.path / "labels" / f"{dataset}.npy").exists()

    def write_logits(self, method: str, dataset: str, logits: np.ndarray) -> None:
        """Write all alphas of one (method, dataset) at once (n_alphas, n, C) (synthetic stores, LP)."""
        atomic_save_npy(self.path / "logits" / method / f"{dataset}.npy", np.asarray(logits, dtype=self.dtype))

    def write_baseline(self, name: str, dataset: str, logits: np.ndarray) -> None:
        path = self.path / "baselines" / safe_name(name, "baseline") / f"{safe_name(dataset, 'dataset')}.npy"
        atomic_save_npy(path, np.asarray(logits, dtype=self.dtype))

    def write_features(self, method: str, dataset: str, features: np.ndarray, index: np.ndarray) -> None:
        safe_name(method, "method"), safe_name(dataset, "dataset")
        atomic_save_npy(self.path / "features" / method / f"{dataset}.npy", np.asarray(features, np.float16))
        atomic_save_npy(self.path / "features" / "index" / f"{dataset}.npy", np.asarray(index, np.int64))

    def write_examples(self, frame) -> None:
        atomic_write_parquet(self.path / "examples.parquet", frame)

    # -- finalize
    def finalize(self, manifest: dict, topk: int = TOPK, compact: bool = False) -> Store:
        """Consolidate parts, derive top-k and the summary table, then write the manifest.

        ``manifest`` must hold ``run`` ({id, id_val, shifts}), ``datasets`` ({name: {classnames, ...}})
        and ``methods`` ({name: {alphas, ...}}); ``baselines`` and ``provenance`` are optional.
        ``compact``: linear methods keep their endpoints only, top-k is derived on read (<= 256 classes),
        standard models keep their predictions only (see the module docstring).
        """
        import pandas as pd

        from . import metrics

        manifest = json.loads(json.dumps(manifest, default=str))  # never mutate the caller's dicts
        methods, datasets = manifest["methods"], manifest["datasets"]
        for method in methods:
            for ds in datasets:
                if not (self.path / "logits" / method / f"{ds}.npy").exists():
                    raise StoreError(f"Cannot finalize {method}/{ds}: its logits were never computed.")
        store_topk = not compact or max(len(d["classnames"]) for d in datasets.values()) > DERIVED_TOPK_MAX_CLASSES
        if compact and any(info.get("logits_stored") == "endpoints" for info in methods.values()):
            raise StoreError("A compact store keeps full logits; it cannot be combined with --store-logits topk.")
        rows = []
        for ds, dinfo in datasets.items():
            labels = np.load(self.path / "labels" / f"{ds}.npy")
            dinfo["n"] = int(len(labels))
            dinfo["n_classes"] = len(dinfo["classnames"])
            for method, info in methods.items():
                target = self.path / "logits" / method / f"{ds}.npy"
                if info.get("logits_stored") == "endpoints":  # eval --store-logits topk: top-k streamed, endpoints kept
                    info["logits_alphas"] = [info["alphas"][0], info["alphas"][-1]]
                    rows += self._summarise_topk_only(method, ds, info["alphas"], labels)
                    continue
                if compact and info.get("linear") and len(info["alphas"]) > 2:
                    endpoints = np.ascontiguousarray(np.load(target, mmap_mode="r")[[0, -1]])
                    atomic_save_npy(target, endpoints)
                    info["logits_alphas"] = [info["alphas"][0], info["alphas"][-1]]
                    grid = _GridRows(array=derive_linear_grid(endpoints, info["alphas"], self.dtype))  # small stores only
                else:
                    grid = _GridRows(path=target)
                blocks, n_classes = grid.block, grid.n_classes
                step = _rows_per_block(n_classes)
                idx_parts, val_parts = [], []
                hits = np.zeros(len(info["alphas"]), np.int64)
                for a_i in range(len(info["alphas"])):
                    i_blocks, v_blocks = [], []
                    for s in range(0, len(labels), step):
                        i_b, v_b = _topk(blocks(a_i, s, s + step), topk)
                        i_blocks.append(i_b)
                        v_blocks.append(v_b)
                        hits[a_i] += int((i_b[:, 0] == labels[s : s + step]).sum())
                    idx_parts.append(np.concatenate(i_blocks) if i_blocks else np.zeros((0, min(topk, n_classes)), np.int16))
                    val_parts.append(np.concatenate(v_blocks) if v_blocks else np.zeros((0, min(topk, n_classes)), np.float16))
                ens = _ensemble_hits(grid, info["alphas"], labels, last=len(info["alphas"]) - 1)
                grid.close()
                if store_topk:
                    atomic_save_npy(self.path / "topk" / method / f"{ds}.npy", np.stack(idx_parts))
                    atomic_save_npy(self.path / "topv" / method / f"{ds}.npy", np.stack(val_parts))
                for alpha, k in zip(info["alphas"], hits):
                    rows.append((method, "wise", alpha, ds, int(k), len(labels)))
                for alpha, k in zip(info["alphas"], ens):
                    rows.append((method, "ensemble", alpha, ds, int(k), len(labels)))
            for name in manifest.get("baselines", {}):
                bpath = self.path / "baselines" / name / f"{ds}.npy"
                if bpath.exists():
                    reader = _NpyRows(bpath)
                    if len(reader.shape) == 2:
                        step = _rows_per_block(reader.shape[1])
                        pred = np.concatenate(
                            [_top1(reader.rows(s, min(len(labels), s + step))) for s in range(0, len(labels), step)]
                            or [np.zeros(0, np.int64)]
                        )
                    else:
                        pred = np.load(bpath).astype(np.int64)
                    reader.close()
                    if compact and len(reader.shape) == 2:
                        atomic_save_npy(bpath, pred.astype(np.int16 if len(dinfo["classnames"]) < 32768 else np.int32))
                    rows.append((name, "baseline", float("nan"), ds, int((pred == labels).sum()), len(labels)))
        summary = pd.DataFrame(rows, columns=["method", "kind", "alpha", "dataset", "correct", "n"])
        summary["accuracy"] = metrics.accuracy_from_counts(summary["correct"].to_numpy(), summary["n"].to_numpy())
        atomic_write_parquet(self.path / "summary.parquet", summary)
        shutil.rmtree(self.path / "_parts", ignore_errors=True)
        for stale in self.path.rglob("*.tmp"):  # temporary files of killed writers (named by their pid); all ranks are done
            stale.unlink(missing_ok=True)

        manifest["schema_version"] = SCHEMA_VERSION
        manifest.setdefault("created", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
        manifest.setdefault("baselines", {})
        manifest["logits_dtype"] = self.dtype.name
        manifest["topk_stored"] = store_topk
        manifest["files"] = _index_files(self.path)
        atomic_write_text(self.path / "manifest.json", json.dumps(manifest, indent=1, default=str))
        return open_store(self.path)

    def _summarise_topk_only(self, method: str, ds: str, alphas: list[float], labels: np.ndarray) -> list[tuple]:
        """Summary rows of a top-k-only method: theta(alpha) from the stored top-1, the ensemble from the endpoints."""
        top1 = np.load(self.path / "topk" / method / f"{ds}.npy", mmap_mode="r")
        rows = []
        for a_i, alpha in enumerate(alphas):
            rows.append((method, "wise", alpha, ds, int((np.asarray(top1[a_i, :, 0]) == labels).sum()), len(labels)))
        del top1
        grid = _GridRows(path=self.path / "logits" / method / f"{ds}.npy")
        hits = _ensemble_hits(grid, alphas, labels, last=1)
        grid.close()
        return rows + [(method, "ensemble", alpha, ds, int(k), len(labels)) for alpha, k in zip(alphas, hits)]


def staging_path(final: str | os.PathLike) -> Path:
    """Where a rebuild of the store at ``final`` is built before it replaces it (a hidden sibling folder)."""
    final = Path(final)
    return final.parent / f".{final.name}.staging"


def recover_swap(final: str | os.PathLike) -> None:
    """Finish a ``swap_in`` that was killed between its two renames (``final`` absent, a complete store beside it)."""
    final = Path(final)
    if final.exists():
        return
    for candidate in (staging_path(final), final.parent / f".{final.name}.old"):
        if (candidate / "manifest.json").exists():
            os.replace(candidate, final)
            break
    shutil.rmtree(final.parent / f".{final.name}.old", ignore_errors=True)


def swap_in(staging: str | os.PathLike, final: str | os.PathLike) -> Store:
    """Replace the store at ``final`` by the complete one at ``staging``: two renames, so a reader sees the
    old store or the new one, never a mix (a kill between them leaves ``final`` absent and the complete
    new store at ``staging`` and the old one at ``.<name>.old``). A ``_build`` cache of the old store moves along."""
    staging, final = Path(staging), Path(final)
    old = final.parent / f".{final.name}.old"
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.replace(final, old)
    os.replace(staging, final)
    if (old / "_build").exists() and not (final / "_build").exists():
        os.replace(old / "_build", final / "_build")
    shutil.rmtree(old, ignore_errors=True)
    return open_store(final)


def derive_linear_grid(endpoints: np.ndarray, alphas, dtype=np.float16) -> np.ndarray:
    """Every alpha of a linear head from its two endpoint logits: (1 - alpha) * l0 + alpha * l1.

    Exact for a linear classifier on frozen features (weight space == output space), up to the
    rounding of the stored endpoints.
    """
    l0 = np.asarray(endpoints[0], np.float32)
    l1 = np.asarray(endpoints[-1], np.float32)
    out = np.empty((len(alphas), *l0.shape), dtype=dtype)
    for i, alpha in enumerate(alphas):
        out[i] = mix(l0, l1, alpha)
    return out


def _republish(store: Store, **changes) -> Store:
    """Write ``store``'s manifest with ``changes`` applied, atomically, and reopen the store."""
    manifest = {**store.manifest, **json.loads(json.dumps(changes, default=str))}
    atomic_write_text(store.path / "manifest.json", json.dumps(manifest, indent=1, default=str))
    return open_store(store.path)


def attach_table(store: Store, name: str, frame) -> Store:
    """Add (or replace) a parquet table in a finished store and re-publish its manifest atomically."""
    path = store.path / name
    atomic_write_parquet(path, frame)
    return _republish(store, files={**store.manifest["files"], name: {"bytes": path.stat().st_size, "sha256": sha256_file(path)}})


def annotate_manifest(store: Store, key: str, value) -> Store:
    """Add a JSON-able ``key`` to a finished store's manifest (e.g. build timings), atomically."""
    return _republish(store, **{key: value})


def rehash_manifest(store: Store) -> Store:
    """Re-publish a store's manifest with the current file index (sizes, shapes, sha256 of small files)."""
    return _republish(store, files=_index_files(store.path))


def _index_files(root: Path) -> dict:
    files = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if (
            not path.is_file()
            or rel in ("manifest.json", "run_config.json")
            or rel.startswith(("_parts", "_build", "checkpoints", "exports"))
        ):
            continue
        if path.name.endswith(".tmp"):
            continue
        entry = {"bytes": path.stat().st_size}
        if path.suffix != ".npy" and entry["bytes"] <= HASHED_MAX_BYTES:
            entry["sha256"] = sha256_file(path)
        if path.suffix == ".npy":
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
            entry.update(shape=list(arr.shape), dtype=arr.dtype.name)
        files[rel] = entry
    return files


@dataclass(frozen=True)
class DatasetInfo:
    """One evaluation set as the manifest declares it (``datasets.<name>`` in ``MANIFEST_SCHEMA``)."""

    name: str
    role: str  # id | id_val | shift (free text in old stores)
    n: int
    classnames: tuple[str, ...]

    @property
    def n_classes(self) -> int:
        return len(self.classnames)


@dataclass(frozen=True)
class MethodInfo:
    """One method as the manifest declares it (``methods.<name>`` in ``MANIFEST_SCHEMA``)."""

    name: str
    label: str
    role: str  # wise: a WiSE-FT curve on the alpha grid; point: one model (soups, random-head FT)
    kind: str  # soup | soup-ingredient | "" (free text)
    linear: bool
    alphas: tuple[float, ...]
    logits_stored: str  # full | endpoints (``eval --store-logits topk``)
    checkpoints: dict

    @property
    def group(self) -> str:
        """How the method's alpha-1 model is shown: ``fine-tuned`` (a WiSE-FT endpoint), ``soup``,
        ``soup ingredient`` or ``single model`` (e.g. FT from a random head)."""
        if self.role == "wise":
            return "fine-tuned"
        return {"soup": "soup", "soup-ingredient": "soup ingredient"}.get(self.kind, "single model")

    def checkpoint_ref(self, which: str) -> dict | None:
        """The manifest's record of the ``zeroshot`` or ``finetuned`` checkpoint (path, sha256, base), if any."""
        return self.checkpoints.get(which) or None


@dataclass
class Store:
    """A validated, read-only view of a run directory (arrays are memory-mapped on demand)."""

    path: Path
    manifest: dict
    _derived: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    # ---- structure
    @property
    def name(self) -> str:
        return self.manifest.get("name", self.path.name)

    @property
    def id(self) -> str:
        return self.manifest["run"]["id"]

    @property
    def id_val(self) -> str | None:
        return self.manifest["run"].get("id_val")

    @property
    def shifts(self) -> list[str]:
        return list(self.manifest["run"]["shifts"])

    @property
    def datasets(self) -> list[str]:
        return list(self.manifest["datasets"])

    @property
    def methods(self) -> list[str]:
        return list(self.manifest["methods"])

    @property
    def description(self) -> str:
        return self.manifest.get("description", "")

    @property
    def created(self) -> str | None:
        return self.manifest.get("created")

    @property
    def provenance(self) -> dict:
        return self.manifest.get("provenance", {})

    @property
    def arch(self) -> str | None:
        return self.provenance.get("model", {}).get("arch")

    def dataset(self, name: str) -> DatasetInfo:
        """The manifest's record of evaluation set ``name`` (StoreError if the store has no such set)."""
        info = self.manifest["datasets"].get(name)
        if info is None:
            raise StoreError(f"Store {self.name} has no dataset {name!r}; it has {', '.join(self.datasets)}.")
        return DatasetInfo(name, info.get("role", ""), int(info["n"]), tuple(info["classnames"]))

    def method(self, name: str) -> MethodInfo:
        """The manifest's record of method ``name`` (StoreError if the store has no such method)."""
        info = self.manifest["methods"].get(name)
        if info is None:
            raise StoreError(f"Store {self.name} has no method {name!r}; it has {', '.join(self.methods)}.")
        return MethodInfo(
            name=name,
            label=info.get("label", name.upper()),
            role=info.get("role", "wise"),
            kind=info.get("kind", ""),
            linear=bool(info.get("linear", False)),
            alphas=tuple(float(a) for a in info["alphas"]),
            logits_stored=info.get("logits_stored", "full"),
            checkpoints=dict(info.get("checkpoints", {})),
        )

    def method_role(self, method: str) -> str:
        """``wise`` (a WiSE-FT curve on the alpha grid) or ``point`` (one model: soups, random-head FT)."""
        return self.method(method).role

    @property
    def wise_methods(self) -> list[str]:
        """Methods with a WiSE-FT curve (what the alpha slider moves along)."""
        return [m for m in self.methods if self.method_role(m) == "wise"]

    @property
    def point_methods(self) -> list[str]:
        """Single models stored beside the curves (alphas 0 and 1 only): soups, their ingredients, random-head FT."""
        return [m for m in self.methods if self.method_role(m) == "point"]

    @property
    def baselines(self) -> list[str]:
        return list(self.manifest.get("baselines", {}))

    def alphas(self, method: str) -> np.ndarray:
        return np.asarray(self.manifest["methods"][method]["alphas"], dtype=np.float64)

    def alpha_index(self, method: str, alpha: float) -> int:
        """Index of the grid alpha nearest to ``alpha``."""
        return int(np.abs(self.alphas(method) - alpha).argmin())

    def classnames(self, dataset: str) -> list[str]:
        return list(self.dataset(dataset).classnames)

    # ---- arrays (memory-mapped, read-only)
    def _npy(self, rel: str) -> np.ndarray:
        path = self.path / rel
        if not path.exists():
            raise StoreError(f"{path} is missing from store {self.path}.")
        return np.load(path, mmap_mode="r", allow_pickle=False)

    def labels(self, dataset: str) -> np.ndarray:
        return self._npy(f"labels/{dataset}.npy")

    def logits(self, method: str, dataset: str) -> np.ndarray:
        """(n_alphas, n, n_classes): a memory map, or (compact linear methods) the grid rebuilt from the endpoints."""
        if not self.has_full_logits(method):
            raise StoreError(
                f"Store {self.name} keeps the logits of {method} at alpha 0 and 1 only (built with --store-logits topk): "
                "this view needs every alpha's logits. Re-run eval with --store-logits full for it."
            )
        stored = self._npy(f"logits/{method}/{dataset}.npy")
        if "logits_alphas" not in self.manifest["methods"][method]:
            return stored
        key = ("logits", method, dataset)
        if key not in self._derived:
            grid = derive_linear_grid(stored, self.alphas(method), stored.dtype)
            grid.flags.writeable = False
            self._derived[key] = grid
        return self._derived[key]

    def has_full_logits(self, method: str) -> bool:
        """False for a ``--store-logits topk`` method: top-3 per alpha, full logits at alpha 0 and 1 only."""
        return self.method(method).logits_stored != "endpoints"

    def endpoint_logits(self, method: str, dataset: str) -> tuple[np.ndarray, np.ndarray]:
        """(alpha-0 logits, alpha-1 logits), each (n, n_classes), memory-mapped; every kind of store keeps them."""
        stored = self._npy(f"logits/{method}/{dataset}.npy")
        return stored[0], stored[-1]

    def logits_at(self, method: str, dataset: str, i: int) -> np.ndarray | None:
        """(n, n_classes) logits of grid point ``i`` (memory-mapped): any alpha of a full store, the endpoints of a
        ``--store-logits topk`` method, ``None`` for the alphas in between, which that store does not keep."""
        n = len(self.alphas(method))
        i = range(n)[i]  # IndexError off the grid; -1 is fine-tuned
        if self.has_full_logits(method):
            return self.logits(method, dataset)[i]
        if i in (0, n - 1):
            return self.endpoint_logits(method, dataset)[0 if i == 0 else 1]
        return None

    def _top(self, method: str, dataset: str) -> tuple[np.ndarray, np.ndarray]:
        key = ("top", method, dataset)
        if key not in self._derived:
            idx, val = _topk(self.logits(method, dataset))
            idx.flags.writeable = val.flags.writeable = False
            self._derived[key] = (idx, val)
        return self._derived[key]

    def topk(self, method: str, dataset: str) -> np.ndarray:
        """(n_alphas, n, 3) top-3 classes per alpha (stored, or derived from the logits in compact stores)."""
        if self.manifest.get("topk_stored", True):
            return self._npy(f"topk/{method}/{dataset}.npy")
        return self._top(method, dataset)[0]

    def topv(self, method: str, dataset: str) -> np.ndarray:
        if self.manifest.get("topk_stored", True):
            return self._npy(f"topv/{method}/{dataset}.npy")
        return self._top(method, dataset)[1]

    def baseline_logits(self, name: str, dataset: str) -> np.ndarray:
        stored = self._npy(f"baselines/{name}/{dataset}.npy")
        if stored.ndim != 2:
            raise StoreError(f"Store {self.path} keeps only the predictions of standard model {name}; use baseline_predictions.")
        return stored

    def baseline_predictions(self, name: str, dataset: str) -> np.ndarray:
        """(n,) predicted class of a standard model (from its logits, or stored directly in compact stores)."""
        stored = self._npy(f"baselines/{name}/{dataset}.npy")
        if stored.ndim == 1:
            return np.asarray(stored, np.int64)
        return _top1(stored)

    def has_features(self, method: str, dataset: str) -> bool:
        return (self.path / "features" / method / f"{dataset}.npy").exists()

    def features(self, method: str, dataset: str) -> tuple[np.ndarray, np.ndarray]:
        """(features (2, m, d) for alpha 0 and 1, example indices (m,))."""
        return self._npy(f"features/{method}/{dataset}.npy"), self._npy(f"features/index/{dataset}.npy")

    def summary(self):
        import pandas as pd

        return pd.read_parquet(self.path / "summary.parquet")

    def examples(self):
        import pandas as pd

        path = self.path / "examples.parquet"
        return pd.read_parquet(path) if path.exists() else None

    def checkpoint(self, method: str, which: str) -> Path | None:
        """Path of the ``zeroshot`` or ``finetuned`` checkpoint a method references, if present."""
        ref = self.method(method).checkpoint_ref(which)
        if not ref:
            return None
        path = Path(ref["path"])
        if path.is_absolute():
            return path  # written by `eval` for a checkpoint outside the store (verified by sha256 on export)
        inside = self.path / path
        if not inside.resolve().is_relative_to(self.path.resolve()):
            raise StoreError(f"Store {self.name}: the {which} checkpoint path of {method} ({ref['path']!r}) leaves the store; refusing it.")
        return inside


def open_store(path: str | os.PathLike, verify_arrays: bool = True) -> Store:
    """Open and validate a store; raise ``StoreError`` naming the first bad file.

    Checks: manifest present, parseable and fitting ``MANIFEST_SCHEMA``, every indexed file inside the
    store and present with the recorded byte size, and (``verify_arrays``, the default; the Overview
    page's listing of every store skips it to stay cheap on each rerun) the sha256 of small files, each
    ``.npy`` header giving the recorded shape and dtype, logits consistent with labels, alpha grids and
    class counts.
    """
    path = Path(path)
    if not path.is_dir():
        raise StoreError(f"No store at {path}: the directory does not exist. Build one with `python -m robust_core eval`.")
    mpath = path / "manifest.json"
    if not mpath.exists():
        parts = (path / "_parts").exists()
        hint = "the run was interrupted; re-run the same command to resume it" if parts else "it is not a finished store"
        raise StoreError(f"{path} has no manifest.json: {hint}.")
    try:
        manifest = json.loads(mpath.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise StoreError(f"{mpath} is not UTF-8 text ({exc.reason}); the store is corrupted, rebuild it.") from None
    except json.JSONDecodeError as exc:
        raise StoreError(f"{mpath} is not valid JSON ({exc}); the store is corrupted, rebuild it.") from exc
    except OSError as exc:
        raise StoreError(f"{mpath} cannot be read ({exc.strerror}).") from None
    if not isinstance(manifest, dict):
        raise StoreError(f"{mpath} holds a JSON {type(manifest).__name__}, not an object; the store is corrupted, rebuild it.")
    version = manifest.get("schema_version")
    if version != SCHEMA_VERSION:
        raise StoreError(f"{mpath}: schema version {version!r}, this robust_core reads {SCHEMA_VERSION}.")
    for key in ("run", "datasets", "methods", "files"):
        if key not in manifest:
            raise StoreError(f"{mpath} lacks the {key!r} section; the store is corrupted, rebuild it.")
    _validate_manifest(manifest, mpath)
    root = path.resolve()
    for rel, entry in manifest["files"].items():
        fpath = path / rel
        if Path(rel).is_absolute() or ".." in Path(rel).parts or not fpath.resolve().is_relative_to(root):
            raise StoreError(f"{mpath}: file entry {rel!r} points outside the store; the manifest is corrupted or hostile.")
        if not fpath.exists():
            raise StoreError(f"{fpath} is listed in the manifest but missing; the store is incomplete, rebuild it.")
        size = fpath.stat().st_size
        if size != entry["bytes"]:
            raise StoreError(
                f"{fpath} has {size} bytes, the manifest says {entry['bytes']}: the file is truncated or "
                "was replaced. Rebuild the store (re-run its eval command)."
            )
        if verify_arrays and "sha256" in entry and sha256_file(fpath) != entry["sha256"]:
            raise StoreError(f"{fpath} does not match the sha256 in the manifest: the file was replaced or damaged. Rebuild the store.")
        if verify_arrays and fpath.suffix == ".npy":
            try:
                arr = np.load(fpath, mmap_mode="r", allow_pickle=False)
            except (ValueError, OSError) as exc:
                raise StoreError(f"{fpath} is not a readable .npy file ({exc}); rebuild the store.") from exc
            if list(arr.shape) != entry.get("shape") or arr.dtype.name != entry.get("dtype"):
                raise StoreError(
                    f"{fpath}: shape {arr.shape} / dtype {arr.dtype} differ from the manifest "
                    f"({entry.get('shape')} / {entry.get('dtype')}); rebuild the store."
                )
    store = Store(path, manifest)
    if verify_arrays:
        _check_consistency(store)
    return store


def _check_consistency(store: Store) -> None:
    files = store.manifest["files"]
    for ds, info in store.manifest["datasets"].items():
        lab = files.get(f"labels/{ds}.npy")
        if lab is None:
            raise StoreError(f"{store.path}: labels for dataset {ds} are missing.")
        n = lab["shape"][0]
        for method in store.methods:
            entry = files.get(f"logits/{method}/{ds}.npy")
            if entry is None:
                raise StoreError(f"{store.path}/logits/{method}/{ds}.npy is missing.")
            minfo = store.manifest["methods"][method]
            want = [len(minfo.get("logits_alphas", minfo["alphas"])), n, len(info["classnames"])]
            if entry["shape"] != want:
                raise StoreError(
                    f"{store.path}/logits/{method}/{ds}.npy has shape {entry['shape']}, expected {want} (alphas x examples x classes)."
                )


def list_stores(root: str | os.PathLike) -> list[Path]:
    """Run directories under ``root`` (any folder with a manifest.json or an unfinished run)."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    for child in sorted(root.iterdir()):
        if child.name.startswith("."):
            continue  # a rebuild's staging folder or a swap's leftover, not a run of its own
        if child.is_dir() and ((child / "manifest.json").exists() or (child / "run_config.json").exists()):
            found.append(child)
    return found
