"""The artifacts cache that lets any chapter run alone.

A result is stored under a key derived from everything that determines it: the step's parameters (dataset
content, model, preprocessing, seed, sizes; :func:`mifgsm_lib.pipeline.step_key`) and the library's own code
(:func:`code_fingerprint`, a hash of its source), so two runs with different inputs never read each other's
results and an upgraded library never serves results of older code. Keys hold no absolute path, so a cache can
move with its data (a mounted Drive, another machine). Files are written to a temporary name and renamed into
place (atomic on POSIX), so an interrupted run never leaves a half-written entry. Arrays go to ``.npz`` (loaded
with ``allow_pickle=False``), networks to ``.pt`` state dicts loaded with ``torch.load(..., weights_only=True)``;
nothing is ever unpickled. An entry that cannot be read (truncated, corrupted, missing an array) is moved aside
with a warning naming it, and recomputed.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import pickle
import tempfile
import time
import warnings
import zipfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

#: The array that lists an entry's arrays, so that one missing from a damaged file is noticed.
_KEYS = "__arrays__"


class UnreadableEntry(ValueError):
    """A cache file that exists but cannot be read back whole."""


def _canonical(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float):
        return repr(value)
    return value


#: Modules that only present results (pages, figures, the CLI, verdicts, checks, progress bars): they compute
#: nothing that is cached, so editing them keeps the cache; every other module of the library is in the key.
PRESENTATION = ("book.py", "page.py", "checks.py", "cli.py", "verdicts.py", "progress.py", "figures")


@functools.lru_cache(maxsize=4)
def code_fingerprint(package: Path = Path(__file__).resolve().parent) -> str:
    """A hash of the library's computing source files (all of ``package`` but :data:`PRESENTATION`) and its dataset
    manifests: part of every cache key, so that results computed by other code are never served."""
    from mifgsm_lib.data.datasets import MANIFEST_DIR

    sources = [p for p in package.rglob("*.py") if p.relative_to(package).parts[0] not in PRESENTATION]
    digest = hashlib.sha256()
    for path in sorted(sources) + sorted(MANIFEST_DIR.glob("*.yml")):
        digest.update(path.name.encode() if path.suffix == ".yml" else path.relative_to(package).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def cache_key(step: str, params: Mapping[str, Any]) -> str:
    """A stable hex key of a step's name, all its parameters and the library's code fingerprint."""
    blob = json.dumps({"step": step, "code": code_fingerprint(), "params": _canonical(params)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def atomic_write(path: Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def save_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> Path:
    """Atomically write arrays (no object arrays: they would need pickle), with the list of their names."""
    for name, arr in arrays.items():
        if np.asarray(arr).dtype == object:
            raise TypeError(f"save_npz({path}): array {name!r} has dtype object, which would need pickle")

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez(fh, **{k: np.asarray(v) for k, v in arrays.items()}, **{_KEYS: np.array(sorted(arrays))})

    return atomic_write(path, write)


def load_npz(path: Path, required: Iterable[str] = ()) -> dict[str, np.ndarray]:
    """Load an ``.npz`` without pickle; a clear error for a missing file, and :class:`UnreadableEntry` for one
    that cannot be read whole (damaged, or lacking an array it lists or one of ``required``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (expected an .npz written by mifgsm)")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile) as exc:
        raise UnreadableEntry(f"{path}: not a readable .npz file ({exc})") from exc
    listed = set(arrays.pop(_KEYS, np.array([], dtype=str)).tolist())
    missing = sorted((listed | set(required)) - set(arrays))
    if missing:
        raise UnreadableEntry(f"{path}: the arrays {missing} are missing")
    return arrays


def save_state_dict(path: Path, state: Mapping[str, Any]) -> Path:
    """Atomically save a (tensor-only) state dict."""
    return atomic_write(path, lambda tmp: torch.save(dict(state), tmp))


def load_state_dict(path: Path) -> dict[str, Any]:
    """Load a state dict with ``weights_only=True`` (never unpickles arbitrary objects); :class:`UnreadableEntry`
    for a damaged file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint file")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, LookupError, OSError, pickle.UnpicklingError, zipfile.BadZipFile) as exc:
        raise UnreadableEntry(f"{path}: not a readable torch state dict ({exc})") from exc
    if not isinstance(state, Mapping):
        raise UnreadableEntry(f"{path}: expected a state dict, got {type(state).__name__}")
    return dict(state)


def save_json(path: Path, obj: Any) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str)))


def move_aside(path: Path, reason: str) -> Path:
    """Rename an unreadable cache entry to ``<name>.unreadable-<time>`` (kept for inspection, never read again),
    with a one-line warning naming it."""
    target = path.with_name(f"{path.name}.unreadable-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
    os.replace(path, target)
    reason = " ".join(reason.split())  # torch's and zipfile's messages can span several lines
    warnings.warn(f"{path}: unreadable cache entry ({reason}); moved aside to {target.name} and recomputed",
                  stacklevel=3)
    return target


class ArtifactCache:
    """A directory of results keyed by :func:`cache_key`.

    >>> cache = ArtifactCache("/tmp/a")                      # doctest: +SKIP
    >>> arrays = cache.arrays("templates", params, compute)   # doctest: +SKIP
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, step: str, params: Mapping[str, Any], suffix: str) -> Path:
        return self.root / step / f"{cache_key(step, params)}{suffix}"

    def record(self, step: str, params: Mapping[str, Any]) -> None:
        """Write the entry's parameters beside it (``<key>.json``), once."""
        meta = self.path(step, params, ".json")
        if not meta.exists():
            save_json(meta, {"step": step, "code": code_fingerprint(), "params": _canonical(params)})

    def read_arrays(self, path: Path, required: Iterable[str] = ()) -> dict[str, np.ndarray] | None:
        """The arrays of an entry, or None where there is none; an unreadable entry is moved aside (None)."""
        if not path.exists():
            return None
        try:
            return load_npz(path, required)
        except UnreadableEntry as exc:
            move_aside(path, str(exc))
            return None

    def arrays(
        self,
        step: str,
        params: Mapping[str, Any],
        compute: Callable[[], Mapping[str, np.ndarray]],
    ) -> dict[str, np.ndarray]:
        """Return the cached arrays of a step, computing and storing them if absent or unreadable."""
        path = self.path(step, params, ".npz")
        found = self.read_arrays(path)
        if found is not None:
            return found
        arrays = {k: np.asarray(v) for k, v in compute().items()}
        save_npz(path, arrays)
        self.record(step, params)
        return arrays

    def state_dict(
        self,
        step: str,
        params: Mapping[str, Any],
        compute: Callable[[], Mapping[str, Any]],
    ) -> dict[str, Any]:
        """Return a cached state dict (tensors, plain numbers and strings), computing it if absent or unreadable."""
        path = self.path(step, params, ".pt")
        if path.exists():
            try:
                return load_state_dict(path)
            except UnreadableEntry as exc:
                move_aside(path, str(exc))
        state = dict(compute())
        save_state_dict(path, state)
        self.record(step, params)
        return state
