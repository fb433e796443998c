"""The artifacts cache that lets any chapter run alone.

A result is stored under a key derived from everything that determines it
(dataset, model, preprocessing, seed, sizes and the code version of the step),
so two runs with different datasets never read each other's results. Files are
written to a temporary name and renamed into place (atomic on POSIX), so an
interrupted run never leaves a half-written entry. Arrays go to ``.npz``
(loaded with ``allow_pickle=False``), networks to ``.pt`` state dicts loaded with
``torch.load(..., weights_only=True)``; nothing is ever unpickled.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch


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


def cache_key(step: str, version: int, params: Mapping[str, Any]) -> str:
    """A stable hex key of a step's name, its code version and all its parameters."""
    blob = json.dumps({"step": step, "version": version, "params": _canonical(params)}, sort_keys=True)
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
    """Atomically write arrays (no object arrays: they would need pickle)."""
    for name, arr in arrays.items():
        if np.asarray(arr).dtype == object:
            raise TypeError(f"save_npz({path}): array {name!r} has dtype object, which would need pickle")

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez(fh, **{k: np.asarray(v) for k, v in arrays.items()})

    return atomic_write(path, write)


def load_npz(path: Path) -> dict[str, np.ndarray]:
    """Load an ``.npz`` without pickle; a clear error for a missing or corrupt file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file (expected an .npz written by mifgsm)")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except (ValueError, OSError, EOFError) as exc:
        raise ValueError(f"{path}: not a readable .npz file ({exc})") from exc


def save_state_dict(path: Path, state: Mapping[str, Any]) -> Path:
    """Atomically save a (tensor-only) state dict."""
    return atomic_write(path, lambda tmp: torch.save(dict(state), tmp))


def load_state_dict(path: Path) -> dict[str, Any]:
    """Load a state dict with ``weights_only=True`` (never unpickles arbitrary objects)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint file")
    return torch.load(path, map_location="cpu", weights_only=True)


def save_json(path: Path, obj: Any) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str)))


class ArtifactCache:
    """A directory of results keyed by :func:`cache_key`.

    >>> cache = ArtifactCache("/tmp/a")                          # doctest: +SKIP
    >>> arrays = cache.arrays("templates", 1, params, compute)   # doctest: +SKIP
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def path(self, step: str, version: int, params: Mapping[str, Any], suffix: str) -> Path:
        key = cache_key(step, version, params)
        return self.root / step / f"{key}{suffix}"

    def record(self, step: str, version: int, params: Mapping[str, Any]) -> None:
        """Write the entry's parameters beside it (``<key>.json``), once."""
        meta = self.path(step, version, params, ".json")
        if not meta.exists():
            save_json(meta, {"step": step, "version": version, "params": _canonical(params)})

    def arrays(
        self,
        step: str,
        version: int,
        params: Mapping[str, Any],
        compute: Callable[[], Mapping[str, np.ndarray]],
    ) -> dict[str, np.ndarray]:
        """Return the cached arrays of a step, computing and storing them if absent."""
        path = self.path(step, version, params, ".npz")
        if path.exists():
            return load_npz(path)
        arrays = {k: np.asarray(v) for k, v in compute().items()}
        save_npz(path, arrays)
        self.record(step, version, params)
        return arrays

    def state_dict(
        self,
        step: str,
        version: int,
        params: Mapping[str, Any],
        compute: Callable[[], Mapping[str, Any]],
    ) -> dict[str, Any]:
        """Return a cached state dict (tensors, plain numbers and strings), computing it if absent."""
        path = self.path(step, version, params, ".pt")
        if path.exists():
            return load_state_dict(path)
        state = dict(compute())
        save_state_dict(path, state)
        self.record(step, version, params)
        return state
