"""The artifacts cache: keys, atomic writes, no pickle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mifgsm_lib.cache import ArtifactCache, atomic_write, cache_key, load_npz, load_state_dict, save_npz


def test_key_depends_on_every_parameter_and_version() -> None:
    base = cache_key("templates", 1, {"dataset": "lfw", "seed": 0})
    assert base == cache_key("templates", 1, {"seed": 0, "dataset": "lfw"})
    assert base != cache_key("templates", 2, {"dataset": "lfw", "seed": 0})
    assert base != cache_key("templates", 1, {"dataset": "utkface", "seed": 0})
    assert base != cache_key("chips", 1, {"dataset": "lfw", "seed": 0})


def test_arrays_are_computed_once_then_reused(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path)
    calls = []

    def compute() -> dict[str, np.ndarray]:
        calls.append(1)
        return {"z": np.arange(6.0).reshape(2, 3)}

    first = cache.arrays("step", 1, {"a": 1}, compute)
    second = cache.arrays("step", 1, {"a": 1}, compute)
    other = cache.arrays("step", 1, {"a": 2}, compute)
    assert len(calls) == 2
    np.testing.assert_array_equal(first["z"], second["z"])
    np.testing.assert_array_equal(first["z"], other["z"])


def test_failed_write_leaves_previous_file_intact(tmp_path: Path) -> None:
    target = tmp_path / "x.npz"
    save_npz(target, {"a": np.ones(3)})

    def broken(tmp: Path) -> None:
        tmp.write_bytes(b"partial")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        atomic_write(target, broken)
    np.testing.assert_array_equal(load_npz(target)["a"], np.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["x.npz"]


def test_object_arrays_are_refused(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="dtype object"):
        save_npz(tmp_path / "o.npz", {"bad": np.array([{"a": 1}], dtype=object)})


def test_corrupt_and_missing_files_give_clear_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="bad.npz: not a readable .npz"):
        load_npz(bad)
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        load_npz(tmp_path / "missing.npz")


def test_state_dicts_load_weights_only(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path)
    state = cache.state_dict("m", 1, {}, lambda: {"w": torch.ones(2)})
    assert torch.equal(state["w"], torch.ones(2))
    evil = tmp_path / "evil.pt"
    torch.save({"f": print}, evil)  # a pickled callable: must not be loaded
    with pytest.raises(Exception):
        load_state_dict(evil)
