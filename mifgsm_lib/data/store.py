"""Where datasets live: the manifests ``data/<name>.yml`` (sources, sha256, layout), the folders a dataset is
loaded from, and :func:`fetch`, which links a dataset from a local mirror or downloads it from its public source
with pinned sha256 (pooch)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mifgsm_lib.cache import save_json
from mifgsm_lib.config import MIRROR_ENV
from mifgsm_lib.data.datasets import LOADERS, FaceDataset, check_dataset_name, load_manifest
from mifgsm_lib.data.pairs import dataset_pairs
from mifgsm_lib.progress import bar


def _looks_like(name: str, folder: Path) -> bool:
    """Whether ``folder`` holds dataset ``name`` in its manifest's layout (each ``required`` pattern matches)."""
    return folder.is_dir() and not _missing(folder, load_manifest(name), check_registry=False)


def dataset_dir(name: str, data_dir: Path | str, mirror: Path | str | None = None) -> Path:
    """The folder dataset ``name`` is loaded from: ``<data_dir>/<name>`` where it holds the dataset, else
    ``data_dir`` itself where that is the dataset's folder; a ``<data_dir>/<name>`` that exists but is incomplete is
    an error naming what it lacks (never silently replaced by the mirror); else ``<mirror>/<name>`` (argument or
    ``$MIFGSM_MIRROR``). Each is laid out as the manifest says (``folder``: ``data_dir``)."""
    check_dataset_name(name)
    data_dir = Path(data_dir)
    if name == "folder" or (not (data_dir / name).is_dir() and _looks_like(name, data_dir)):
        return data_dir
    if (data_dir / name).is_dir():
        lacking = _missing(data_dir / name, load_manifest(name), check_registry=False)
        if not lacking:
            return data_dir / name
        if _looks_like(name, data_dir):  # the dataset's own folder, whose images sit in a sub-folder of its name
            return data_dir
        raise FileNotFoundError(f"{name}: {data_dir / name} is incomplete (nothing matches {lacking}); "
                                f"run `mifgsm data fetch {name}` again, or move the folder away")
    mirror = mirror or os.environ.get(MIRROR_ENV)
    if mirror and _looks_like(name, Path(mirror) / name):
        return Path(mirror) / name
    raise FileNotFoundError(f"{name}: no dataset folder {data_dir / name}; get it with `mifgsm data fetch {name}` "
                            f"(add --mirror DIR or set {MIRROR_ENV} to use a local mirror)")


def load_dataset(name: str, data_dir: Path | str, **kw: Any) -> FaceDataset:
    """Load dataset ``name`` from ``data_dir``: the folder holding ``<name>/`` (as :func:`fetch` makes it) or
    the dataset folder itself, see :func:`dataset_dir`. Options: lfw ``images`` (sub-folder), ``unknown_gender``
    ('keep' or 'error'); colorferet ``images_dir``; folder ``labels`` (the CSV, default ``labels.csv``)."""
    root = dataset_dir(name, data_dir)
    return LOADERS[name](root, **kw)


# --------------------------------------------------------------------------------------------- fetching

def _missing(folder: Path, manifest: Mapping[str, Any], check_registry: bool = True) -> list[str]:
    """What ``folder`` lacks: ``required`` patterns without a match, then (optionally) registry files."""
    lacking = [p for p in manifest.get("required", []) if next(folder.glob(p), None) is None]
    if check_registry:
        lacking += [name for name, _ in _registry(manifest) if not (folder / name).is_file()]
    return lacking


def _registry(manifest: Mapping[str, Any]) -> list[tuple[str, str]]:
    return [tuple(line.split()) for line in manifest.get("registry", "").splitlines() if line.strip()]


def _from_mirror(name: str, mirror: Path, target: Path, manifest: Mapping[str, Any]) -> Path:
    """Link ``<mirror>/<name>`` to ``target`` (a symlink; a copy where links are not possible)."""
    source = mirror / name
    if not source.is_dir():
        raise FileNotFoundError(f"mirror {mirror} has no {name}/ folder (--mirror or {MIRROR_ENV} must name the "
                                f"folder that holds {name}/)")
    lacking = _missing(source, manifest)
    if lacking:
        raise FileNotFoundError(f"mirror folder {source} is incomplete: nothing matches {lacking[:5]}")
    if target.is_symlink():
        target.unlink()
    elif target.exists():
        raise FileExistsError(f"{target} exists but is incomplete ({_missing(target, manifest)[:5]} missing); "
                              "move it away to link the mirror there")
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        target.symlink_to(source.resolve(), target_is_directory=True)
    except OSError:
        shutil.copytree(source, target)
    return target


#: Tries per file before a download is given up (a dropped connection, a server error), and the wait before the
#: second; each further wait doubles.
DOWNLOAD_ATTEMPTS = 3
RETRY_WAIT_S = 2.0


def _retrieve(url: str, **options: Any) -> str:
    """``pooch.retrieve`` of ``url``, tried up to :data:`DOWNLOAD_ATTEMPTS` times where the connection fails (a
    file whose hash does not match is refused at once: downloading it again gives the same bytes)."""
    import pooch
    import requests

    for attempt in range(DOWNLOAD_ATTEMPTS - 1):
        try:
            return pooch.retrieve(url, **options)
        except requests.exceptions.RequestException:
            time.sleep(RETRY_WAIT_S * 2**attempt)
    return pooch.retrieve(url, **options)


def _download(name: str, manifest: Mapping[str, Any], target: Path, progress: bool) -> None:
    """Download every file of the manifest with pooch, each checked against its pinned sha256."""
    import pooch
    import requests

    jobs = [(f["url"], f["sha256"], f["fname"], f.get("unpack")) for f in manifest.get("files", [])]
    jobs += [(manifest["base_url"] + fname, sha, fname, None) for fname, sha in _registry(manifest)]
    logger = pooch.get_logger()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        for url, sha256, fname, unpack in bar(jobs, desc=f"fetch {name}", disable=not progress or len(jobs) < 10):
            try:
                _retrieve(url, known_hash=f"sha256:{sha256}", fname=fname,
                          path=target / "downloads" if unpack else target,
                          processor=pooch.Untar(extract_dir=str(target)) if unpack == "tar" else None,
                          progressbar=progress and len(jobs) < 10)
            except requests.exceptions.RequestException as exc:
                raise ConnectionError(
                    f"{name}: could not download {fname} from {url} ({exc}). To get the data, connect to the "
                    f"internet and retry, or use a local mirror: `mifgsm data fetch {name} --mirror DIR` or "
                    f"{MIRROR_ENV}=DIR, where DIR holds {name}/ in the layout of data/{name}.yml") from exc
            except ValueError as exc:
                if "hash" not in str(exc).lower():
                    raise
                raise ValueError(f"{name}: {fname} from {url} does not match its pinned sha256 {sha256}; "
                                 f"refused, not kept ({exc})") from exc
    finally:
        logger.setLevel(level)


def is_complete(name: str, data_dir: Path | str, manifest: Mapping[str, Any] | None = None) -> bool:
    """Whether ``<data_dir>/<name>`` holds every file of dataset ``name``'s manifest (``data/<name>.yml``)."""
    target = Path(data_dir) / name
    return target.is_dir() and not _missing(target, manifest if manifest is not None else load_manifest(name))


def fetch(name: str, data_dir: Path | str, mirror: Path | str | None = None, progress: bool = True,
          manifest: Mapping[str, Any] | None = None) -> Path:
    """Make ``<data_dir>/<name>`` hold dataset ``name`` and return it.

    Nothing is done when it is already complete. With a mirror (``mirror`` or ``$MIFGSM_MIRROR``) the
    mirror's ``<name>/`` is linked (or copied); otherwise the files of the manifest (``data/<name>.yml``,
    or ``manifest``) are downloaded with pooch and checked against their pinned sha256.
    """
    if name == "folder" or name not in LOADERS:
        raise ValueError(f"dataset={name!r}: fetch knows {', '.join(n for n in LOADERS if n != 'folder')}")
    manifest = manifest if manifest is not None else load_manifest(name)
    target = Path(data_dir) / name
    if is_complete(name, data_dir, manifest):
        return target
    mirror = mirror or os.environ.get(MIRROR_ENV)
    if mirror:
        return _from_mirror(name, Path(mirror), target, manifest)
    if "access" in manifest:
        raise FileNotFoundError(manifest["access"].replace("<data_dir>", str(Path(data_dir))))
    existed = target.exists()
    try:
        _download(name, manifest, target, progress)
        lacking = _missing(target, manifest)
        if lacking:
            raise FileNotFoundError(f"{name}: after downloading, {target} still lacks {lacking[:5]}")
    except BaseException:
        if not existed:  # a failed fetch leaves nothing that would block the next one (a mirror link, a retry)
            shutil.rmtree(target, ignore_errors=True)
        raise
    return target


def info(name: str, data_dir: Path | str, **kw: Any) -> dict[str, Any]:
    """What ``mifgsm data info`` reports (JSON-serialisable): counts, genders, attributes, every problem,
    the size of the first image and, with identities, the number of verification pairs."""
    from PIL import Image

    dataset = load_dataset(name, data_dir, **kw)
    report = dataset.summary()
    with Image.open(dataset.abs_paths()[0]) as image:
        report["image_size"] = list(image.size)
    report["attributes"] = sorted(dataset.attributes)
    report["problems"] = list(dataset.problems)
    report["pairs"] = None
    if dataset.has_identities:
        try:
            found = dataset_pairs(dataset)
            report["pairs"] = len(found)
            report["problems"] += found.problems
        except (ValueError, FileNotFoundError) as exc:
            report["problems"].append(f"verification pairs: {exc}")
    return report


# --------------------------------------------------------------------------------------------- content

def file_digest(path: Path) -> str:
    """The sha256 of a file's bytes (16 hex digits)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def file_digests(root: Path, names: Sequence[str], memo: Path | None = None) -> list[str]:
    """:func:`file_digest` of each file ``root/name``, hashed once: ``memo`` (a JSON file) remembers each file's
    size, modification time and digest, and a file whose size and time are unchanged is not read again."""
    known: dict[str, list[Any]] = {}
    if memo is not None and memo.is_file():
        try:
            known = json.loads(memo.read_text())
        except (ValueError, OSError):
            known = {}  # a damaged memo only costs a rehash
    out, changed = [], False
    for name in names:
        path = root / name
        try:
            stat = path.stat()
        except OSError as exc:
            raise FileNotFoundError(f"{path}: cannot be read ({exc.strerror})") from exc
        entry = known.get(name)
        if entry and entry[:2] == [stat.st_size, stat.st_mtime_ns]:
            out.append(entry[2])
            continue
        digest = file_digest(path)
        known[name] = [stat.st_size, stat.st_mtime_ns, digest]
        out.append(digest)
        changed = True
    if memo is not None and changed:
        save_json(memo, known)
    return out


def content_digest(dataset: FaceDataset, memo_dir: Path | None = None) -> str:
    """What identifies a dataset's content: its image ids, the bytes of every image (:func:`file_digests`, memoised
    in ``memo_dir``), its labels (gender, identities, attributes) and the files beside its images (pairs.txt, label
    lists, labels.csv). No path enters it, so a dataset moved elsewhere keeps its digest."""
    memo = None if memo_dir is None else memo_dir / f"{dataset.name}-{len(dataset)}.json"
    digest = hashlib.sha256()
    digest.update("\n".join(map(str, dataset.image_ids)).encode())
    digest.update("".join(file_digests(dataset.root, dataset.paths, memo)).encode())
    images = set(dataset.paths)
    beside = sorted(p.name for p in dataset.root.iterdir()
                    if p.is_file() and not p.name.startswith(".") and p.name not in images)
    digest.update("".join(f"{n}:{d}" for n, d in zip(beside, file_digests(dataset.root, beside))).encode())
    for array in (dataset.gender, dataset.identity, *(dataset.attributes[k] for k in sorted(dataset.attributes))):
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:16]
