"""The artifacts cache: keys (parameters and the code's fingerprint), atomic writes, no pickle, and entries that
cannot be read moved aside and recomputed."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from mifgsm_lib import cache as cache_module
from mifgsm_lib.cache import (
    ArtifactCache,
    UnreadableEntry,
    atomic_write,
    cache_key,
    code_fingerprint,
    load_npz,
    load_state_dict,
    save_npz,
)


def test_key_depends_on_every_parameter_and_on_the_code(monkeypatch: pytest.MonkeyPatch) -> None:
    base = cache_key("templates", {"dataset": "lfw", "seed": 0})
    assert base == cache_key("templates", {"seed": 0, "dataset": "lfw"})
    assert base != cache_key("templates", {"dataset": "utkface", "seed": 0})
    assert base != cache_key("chips", {"dataset": "lfw", "seed": 0})
    assert len(code_fingerprint()) == 16
    monkeypatch.setattr(cache_module, "code_fingerprint", lambda: "other-code")
    assert cache_key("templates", {"dataset": "lfw", "seed": 0}) != base, "results of other code must not be served"


def test_the_fingerprint_covers_the_computing_code_only(tmp_path: Path) -> None:
    import shutil

    package = tmp_path / "mifgsm_lib"
    shutil.copytree(Path(cache_module.__file__).parent, package, ignore=shutil.ignore_patterns("__pycache__"))
    fingerprint = code_fingerprint.__wrapped__  # uncached: the files change within the test
    base = fingerprint(package)
    (package / "page.py").write_text((package / "page.py").read_text() + "\n# a reader-facing edit\n")
    (package / "figures" / "__init__.py").write_text("# a figure edit\n")
    assert fingerprint(package) == base, "presentation modules compute nothing cached"
    (package / "attacks.py").write_text((package / "attacks.py").read_text() + "\n# an edit of the attacks\n")
    assert fingerprint(package) != base, "an edit of a computing module must change every key"


def test_arrays_are_computed_once_then_reused(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path)
    calls = []

    def compute() -> dict[str, np.ndarray]:
        calls.append(1)
        return {"z": np.arange(6.0).reshape(2, 3)}

    first = cache.arrays("step", {"a": 1}, compute)
    second = cache.arrays("step", {"a": 1}, compute)
    other = cache.arrays("step", {"a": 2}, compute)
    assert len(calls) == 2
    np.testing.assert_array_equal(first["z"], second["z"])
    np.testing.assert_array_equal(first["z"], other["z"])
    assert set(first) == set(second) == {"z"}


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
    with pytest.raises(UnreadableEntry, match="bad.npz: not a readable .npz"):
        load_npz(bad)
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        load_npz(tmp_path / "missing.npz")


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


def _drop_array(path: Path) -> None:
    """Rewrite an .npz without one of the arrays it lists."""
    with zipfile.ZipFile(path) as source:
        kept = {name: source.read(name) for name in source.namelist() if name != "z.npy"}
    with zipfile.ZipFile(path, "w") as target:
        for name, blob in kept.items():
            target.writestr(name, blob)


@pytest.mark.parametrize("damage", [_truncate, lambda p: p.write_text("not an npz"), _drop_array])
def test_an_unreadable_npz_entry_is_moved_aside_and_recomputed(tmp_path: Path, damage) -> None:
    cache = ArtifactCache(tmp_path)
    compute = lambda: {"z": np.arange(1000.0), "w": np.ones(3)}  # noqa: E731
    first = cache.arrays("step", {"a": 1}, compute)
    (entry,) = (tmp_path / "step").glob("*.npz")
    damage(entry)
    with pytest.warns(UserWarning, match=rf"{entry.name}: unreadable cache entry .*moved aside"):
        again = cache.arrays("step", {"a": 1}, compute)
    np.testing.assert_array_equal(again["z"], first["z"])
    assert len(list((tmp_path / "step").glob("*.unreadable-*"))) == 1
    np.testing.assert_array_equal(cache.arrays("step", {"a": 1}, lambda: {})["z"], first["z"])  # readable again


@pytest.mark.parametrize("damage", [_truncate, lambda p: p.write_text("text, not a checkpoint")])
def test_an_unreadable_state_dict_is_moved_aside_and_recomputed(tmp_path: Path, damage) -> None:
    cache = ArtifactCache(tmp_path)
    first = cache.state_dict("m", {}, lambda: {"w": torch.arange(100.0)})
    (entry,) = (tmp_path / "m").glob("*.pt")
    damage(entry)
    with pytest.warns(UserWarning, match="unreadable cache entry"):
        again = cache.state_dict("m", {}, lambda: {"w": torch.arange(100.0)})
    assert torch.equal(again["w"], first["w"])


def test_state_dicts_load_weights_only(tmp_path: Path) -> None:
    cache = ArtifactCache(tmp_path)
    state = cache.state_dict("m", {}, lambda: {"w": torch.ones(2)})
    assert torch.equal(state["w"], torch.ones(2))
    evil = tmp_path / "evil.pt"
    torch.save({"f": print}, evil)  # a pickled callable: must not be loaded
    with pytest.raises(UnreadableEntry):
        load_state_dict(evil)
