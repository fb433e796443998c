"""Face datasets of the paper (Sec. 5): LFW, AgeDB and Color FERET, plus UTKFace and any labelled folder.

Every loader returns a :class:`FaceDataset` (image paths, identities, gender 0 = male / 1 = female /
-1 = unknown, extra attributes) and lists in ``problems`` every label problem it found and how it was
resolved: nothing is dropped or relabelled silently. Verification pairs follow the paper (Sec. 6.3):
LFW's View 2 ``pairs.txt``, the same protocol (10 folds of 300 mated + 300 non-mated pairs) for Color
FERET, and AgeDB-30 (pairs 30 years apart) for AgeDB. :func:`balanced_subset` draws the paper's
gender-balanced subset (5,000 images). :func:`fetch` gets a dataset from a local mirror or from its
public source with pinned sha256 (pooch); the sources and layouts are in the manifests ``data/<name>.yml``.
"""

from __future__ import annotations

import csv
import importlib.resources
import logging
import os
import re
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from .config import MIRROR_ENV
from .progress import bar

MALE, FEMALE, UNKNOWN = 0, 1, -1
GENDER_NAMES = {MALE: "male", FEMALE: "female", UNKNOWN: "unknown"}

#: The manifests ``data/<name>.yml`` (sources, sha256, layout) next to the package.
def _manifest_dir() -> Path:
    """``data/`` of a source checkout, else the installed copy (package ``mifgsm_lib.manifests``)."""
    checkout = Path(__file__).resolve().parent.parent / "data"
    if checkout.is_dir():
        return checkout
    return Path(str(importlib.resources.files("mifgsm_lib.manifests")))


MANIFEST_DIR = _manifest_dir()


def load_manifest(name: str) -> dict[str, Any]:
    """The manifest ``data/<name>.yml`` of a dataset: sources, sha256, layout notes."""
    path = MANIFEST_DIR / f"{name}.yml"
    if not path.is_file():
        known = sorted(p.stem for p in MANIFEST_DIR.glob("*.yml"))
        raise FileNotFoundError(f"no manifest {path} for dataset {name!r} (manifests: {known}); "
                                "reinstall the package: its manifests are missing")
    return yaml.load(path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


# --------------------------------------------------------------------------------------------- containers

@dataclass
class FaceDataset:
    """Images of faces with their labels; ``paths`` are relative to ``root``.

    ``identity`` indexes ``identity_names``; a dataset without identities (UTKFace) has
    ``identity_names == []`` and one identity per image. ``problems`` lists every label problem found.
    """

    name: str
    root: Path
    paths: list[str]
    image_ids: np.ndarray
    identity: np.ndarray
    identity_names: list[str]
    gender: np.ndarray
    attributes: dict[str, np.ndarray] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        self.paths = list(self.paths)
        self.image_ids = np.asarray(self.image_ids, dtype=str)
        self.identity = np.asarray(self.identity, dtype=np.int64)
        self.gender = np.asarray(self.gender, dtype=np.int64)
        self.attributes = {k: np.asarray(v) for k, v in self.attributes.items()}
        n = len(self.paths)
        columns = {"image_ids": self.image_ids, "identity": self.identity, "gender": self.gender, **self.attributes}
        for key, values in columns.items():
            if values.shape != (n,):
                raise ValueError(f"FaceDataset {self.name!r}: {key} has shape {values.shape}, expected ({n},) like paths")
        ids, counts = np.unique(self.image_ids, return_counts=True)
        if (counts > 1).any():
            raise ValueError(f"FaceDataset {self.name!r}: duplicate image ids {ids[counts > 1][:5].tolist()} "
                             "(the same image in two folders?)")
        if not np.isin(self.gender, list(GENDER_NAMES)).all():
            raise ValueError(f"FaceDataset {self.name!r}: gender values {np.unique(self.gender).tolist()}, "
                             "expected 0 (male), 1 (female) or -1 (unknown)")

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def has_identities(self) -> bool:
        return bool(self.identity_names)

    def subset(self, indices: Sequence[int] | np.ndarray) -> FaceDataset:
        """The images at ``indices`` (identity numbering and problems are kept)."""
        idx = np.asarray(indices)
        if idx.ndim != 1 or not (idx.size == 0 or np.issubdtype(idx.dtype, np.integer)):
            raise ValueError(f"indices: expected a 1-D array of integers, got dtype {idx.dtype} shape {idx.shape}")
        if idx.size and (idx.min() < -len(self) or idx.max() >= len(self)):
            raise ValueError(f"indices: out of range for {len(self)} images (min {idx.min()}, max {idx.max()})")
        return replace(self, paths=[self.paths[i] for i in idx], image_ids=self.image_ids[idx],
                       identity=self.identity[idx], gender=self.gender[idx],
                       attributes={k: v[idx] for k, v in self.attributes.items()}, problems=list(self.problems))

    def abs_paths(self) -> list[Path]:
        return [self.root / p for p in self.paths]

    def summary(self) -> dict[str, Any]:
        """Counts for ``mifgsm data info``: images, people (None without identities), genders, problems."""
        return {"dataset": self.name, "root": str(self.root), "images": len(self),
                "people": int(len(np.unique(self.identity))) if self.has_identities else None,
                "male": int((self.gender == MALE).sum()), "female": int((self.gender == FEMALE).sum()),
                "unknown_gender": int((self.gender == UNKNOWN).sum()), "problems": len(self.problems)}


@dataclass
class Pairs:
    """Verification pairs: image indices ``left``/``right`` into a dataset, ``same`` (mated) and ``fold``."""

    left: np.ndarray
    right: np.ndarray
    same: np.ndarray
    fold: np.ndarray

    def __post_init__(self) -> None:
        self.left, self.right = np.asarray(self.left, dtype=np.int64), np.asarray(self.right, dtype=np.int64)
        self.same, self.fold = np.asarray(self.same, dtype=bool), np.asarray(self.fold, dtype=np.int64)
        if not self.left.shape == self.right.shape == self.same.shape == self.fold.shape == (len(self.left),):
            raise ValueError("Pairs: left, right, same and fold must be 1-D arrays of one length")

    def __len__(self) -> int:
        return len(self.left)

    @property
    def n_folds(self) -> int:
        return int(self.fold.max()) + 1 if len(self) else 0


# --------------------------------------------------------------------------------------------- loaders

def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _no_images(name: str, where: Path, expected: str) -> FileNotFoundError:
    return FileNotFoundError(f"{name}: no images found in {where} (expected {expected})")


_LFW_IMAGE = re.compile(r"^(?P<person>.+)_(?P<number>\d{4})\.jpg$")


def _read_name_list(path: Path) -> tuple[set[str], list[str]]:
    """An LFW gender list: one image file name per line (CRLF); returns the names and the bad lines."""
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    bad = [f"{path.name}: line {line!r} is not an LFW file name <Name>_NNNN.jpg; ignored"
           for line in lines if not _LFW_IMAGE.match(line)]
    return {line for line in lines if _LFW_IMAGE.match(line)}, bad


def lfw_gender(files: Sequence[str], male: set[str], female: set[str]) -> tuple[np.ndarray, list[str]]:
    """Gender of LFW image files from the public lists, by one rule, with every problem reported.

    The rule: a person's gender is the majority label of that person's file names that appear in
    exactly one list (all of the person's listed names count, so a subset gets the labels of the full
    set); every image of the person gets it. Without such a name, or on a tie, the gender is -1.
    Reported: images in both lists (conflicts), in neither list (gaps), and images whose own listing
    disagrees with their person's label.
    """
    votes: dict[str, list[int]] = {}
    for label, names in ((MALE, male - female), (FEMALE, female - male)):
        for fname in names:
            votes.setdefault(_LFW_IMAGE.match(fname)["person"], [0, 0])[label] += 1
    gender = np.full(len(files), UNKNOWN, dtype=np.int64)
    problems = []
    for k, fname in enumerate(files):
        person = _LFW_IMAGE.match(fname)["person"]
        n_male, n_female = votes.get(person, [0, 0])
        gender[k] = MALE if n_male > n_female else FEMALE if n_female > n_male else UNKNOWN
        listed = {(True, False): MALE, (False, True): FEMALE}.get((fname in male, fname in female))
        if listed is not None and listed == gender[k]:
            continue
        what = ("in both lists" if fname in male else "in neither list") if listed is None \
            else f"listed as {GENDER_NAMES[listed]}"
        outcome = f"labelled {GENDER_NAMES[gender[k]]}" if gender[k] != UNKNOWN else "gender unknown (-1), kept"
        problems.append(f"{fname}: {what}; {person}'s file names in one list only: "
                        f"{n_male} male, {n_female} female; {outcome}")
    return gender, problems


def _load_lfw(root: Path, images: str | None = None, unknown_gender: str = "keep") -> FaceDataset:
    """LFW in ``<root>/<images>/<Name>/<Name>_NNNN.jpg`` (official 250x250, the mirror's crops, any subset)."""
    if unknown_gender not in ("keep", "error"):
        raise ValueError(f"unknown_gender={unknown_gender!r}: expected 'keep' or 'error'")
    layout = load_manifest("lfw")["layout"]
    candidates = [images] if images else layout["image_dirs"]
    image_dir = next((root / c for c in candidates if (root / c).is_dir()), None)
    if image_dir is None:
        raise FileNotFoundError(f"lfw: no image folder {' or '.join(candidates)} in {root}")
    paths, files, problems = [], [], []
    for entry in sorted(os.scandir(image_dir), key=lambda e: e.name):
        if entry.name.startswith("."):
            continue
        if not entry.is_dir():
            problems.append(f"{image_dir.name}/{entry.name}: not in a <Name>/ folder; skipped")
            continue
        for image in sorted(f for f in os.listdir(entry.path) if not f.startswith(".")):
            match = _LFW_IMAGE.match(image)
            if match is None or match["person"] != entry.name:
                problems.append(f"{image_dir.name}/{entry.name}/{image}: not named {entry.name}_NNNN.jpg; skipped")
                continue
            paths.append(f"{image_dir.name}/{entry.name}/{image}")
            files.append(image)
    if not paths:
        raise _no_images("lfw", image_dir, "<Name>/<Name>_NNNN.jpg")
    male, bad_male = _read_name_list(root / layout["male_list"])
    female, bad_female = _read_name_list(root / layout["female_list"])
    gender, gender_problems = lfw_gender(files, male, female)
    unknown = [f for f, g in zip(files, gender) if g == UNKNOWN]
    if unknown and unknown_gender == "error":
        raise ValueError(f"lfw: {len(unknown)} images have no gender under the documented rule: {unknown} "
                         "(pass unknown_gender='keep' to keep them with gender -1)")
    persons = [p.split("/")[1] for p in paths]
    names, identity = np.unique(persons, return_inverse=True)
    return FaceDataset("lfw", root, paths, np.array([f[:-4] for f in files]), identity, names.tolist(), gender,
                       problems=problems + bad_male + bad_female + gender_problems)


_UTKFACE_IMAGE = re.compile(r"^(?P<age>\d{1,3})_(?P<gender>[01])_(?P<race>[0-4])_(?P<datetime>\d+)\.jpg(\.chip\.jpg)?$")


def _load_utkface(root: Path) -> FaceDataset:
    """UTKFace: ``age_gender_race_datetime.jpg.chip.jpg`` anywhere below ``root``; no identities."""
    paths, rows, problems = [], [], []
    for path in sorted(root.rglob("*.jpg")):
        match = _UTKFACE_IMAGE.match(path.name)
        if match is None:
            problems.append(f"{_rel(path, root)}: malformed UTKFace name (expected age_gender_race_datetime"
                            ".jpg.chip.jpg, gender 0/1, race 0-4); skipped")
            continue
        paths.append(_rel(path, root))
        rows.append((int(match["age"]), int(match["gender"]), int(match["race"])))
    if not paths:
        raise _no_images("utkface", root, "age_gender_race_datetime.jpg.chip.jpg")
    age, gender, race = np.array(rows, dtype=np.int64).T
    return FaceDataset("utkface", root, paths, np.array([Path(p).name for p in paths]), np.arange(len(paths)), [],
                       gender, {"age": age, "race": race}, problems)


_AGEDB_IMAGE = re.compile(r"^(?P<id>\d+)_(?P<name>.+)_(?P<age>\d{1,3})_(?P<gender>[mf])\.jpg$", re.IGNORECASE)


def _load_agedb(root: Path) -> FaceDataset:
    """AgeDB: ``<id>_<Name>_<age>_<m|f>.jpg`` anywhere below ``root``; the identity is the name."""
    paths, rows, problems = [], [], []
    for path in sorted(root.rglob("*.jpg")):
        match = _AGEDB_IMAGE.match(path.name)
        if match is None:
            problems.append(f"{_rel(path, root)}: malformed AgeDB name (expected id_Name_age_gender.jpg, "
                            "gender m/f); skipped")
            continue
        paths.append(_rel(path, root))
        rows.append((match["name"], int(match["age"]), FEMALE if match["gender"].lower() == "f" else MALE))
    if not paths:
        raise _no_images("agedb", root, "id_Name_age_gender.jpg")
    names, identity = np.unique([r[0] for r in rows], return_inverse=True)
    return FaceDataset("agedb", root, paths, np.array([Path(p).stem for p in paths]), identity, names.tolist(),
                       np.array([r[2] for r in rows]), {"age": np.array([r[1] for r in rows], dtype=np.int64)},
                       problems)


_FERET_IMAGE = re.compile(r"^(?P<subject>\d{5})_(?P<date>\d{6})_(?P<pose>[a-z]{2})(_[a-z])?"
                          r"\.(ppm|jpg|jpeg|png|tif|tiff)(?P<bz2>\.bz2)?$", re.IGNORECASE)


def _read_ground_truth(path: Path) -> dict[str, str]:
    """A Color FERET ``name_value`` file: ``key=value`` lines (id, gender, yob, race)."""
    pairs = (line.partition("=") for line in path.read_text(encoding="latin-1").splitlines())
    return {key.strip(): value.strip() for key, sep, value in pairs if sep}


def _load_colorferet(root: Path, images_dir: str | None = None) -> FaceDataset:
    """Color FERET in NIST's layout: ``.../<images_dir>/<subject>/<subject>_<yymmdd>_<pose>.ppm`` and
    ``.../ground_truths/name_value/<subject>/<subject>.txt`` (gender=Male|Female, yob, race)."""
    images_dir = images_dir or load_manifest("colorferet")["layout"]["images_dir"]
    truths: dict[str, dict[str, str]] = {}
    found: list[Path] = []
    for dirpath, _dirs, filenames in os.walk(root):
        folder = Path(dirpath)
        if folder.parent.parts[-2:] == ("ground_truths", "name_value") and f"{folder.name}.txt" in filenames:
            truths[folder.name] = _read_ground_truth(folder / f"{folder.name}.txt")
        if folder.parent.name == images_dir:
            found += [folder / f for f in filenames if not f.startswith(".")]
    paths, problems, rows = [], [], []
    for path in sorted(found):
        match = _FERET_IMAGE.match(path.name)
        if match is None or match["subject"] != path.parent.name:
            problems.append(f"{_rel(path, root)}: not a Color FERET image name <subject>_<yymmdd>_<pose>.ppm; skipped")
            continue
        if match["bz2"]:
            problems.append(f"{_rel(path, root)}: still bz2-compressed (run bunzip2 on it); skipped")
            continue
        paths.append(_rel(path, root))
        rows.append((match["subject"], match["date"], match["pose"].lower()))
    if not paths:
        raise _no_images("colorferet", root, f"{images_dir}/<subject>/<subject>_<yymmdd>_<pose>.ppm")
    subjects = sorted({r[0] for r in rows})
    gender_of, yob_of = {}, {}
    for subject in subjects:
        truth = truths.get(subject, {})
        gender_of[subject] = {"male": MALE, "female": FEMALE}.get(truth.get("gender", "").lower(), UNKNOWN)
        yob_of[subject] = int(truth["yob"]) if truth.get("yob", "").isdigit() else -1
        if subject not in truths:
            problems.append(f"subject {subject}: no ground_truths/name_value/{subject}/{subject}.txt; "
                            "gender unknown (-1), kept")
        elif gender_of[subject] == UNKNOWN:
            problems.append(f"subject {subject}: gender={truth.get('gender')!r}, expected Male or Female; "
                            "gender unknown (-1), kept")
    yob = np.array([yob_of[r[0]] for r in rows], dtype=np.int64)
    year = np.array([1900 + int(r[1][:2]) for r in rows], dtype=np.int64)
    attributes = {"pose": np.array([r[2] for r in rows]), "capture_date": np.array([r[1] for r in rows]),
                  "yob": yob, "age": np.where(yob > 0, year - yob, -1),
                  "race": np.array([truths.get(r[0], {}).get("race", "") for r in rows])}
    return FaceDataset("colorferet", root, paths, np.array([Path(p).name.split(".")[0] for p in paths]),
                       np.searchsorted(subjects, [r[0] for r in rows]), subjects,
                       np.array([gender_of[r[0]] for r in rows]), attributes, problems)


_GENDER_WORDS = {"0": MALE, "m": MALE, "male": MALE, "1": FEMALE, "f": FEMALE, "female": FEMALE,
                 "": UNKNOWN, "-1": UNKNOWN, "unknown": UNKNOWN}


def _column(values: list[str]) -> np.ndarray:
    """A CSV column as integers, else floats, else strings."""
    for kind in (int, float):
        try:
            return np.array([kind(v) for v in values])
        except ValueError:
            continue
    return np.array(values)


def _load_folder(root: Path, labels: str | Path = "labels.csv") -> FaceDataset:
    """Any image folder with a CSV of labels: columns ``path,gender[,identity,...]`` (paths relative to
    ``root``; gender 0/1/m/f/male/female, or -1/unknown/empty for an unknown gender, kept as -1 like LFW's);
    other columns become attributes."""
    csv_path = root / labels
    if not csv_path.is_file():
        raise FileNotFoundError(f"folder dataset: labels file {csv_path} not found (a CSV with columns path,gender"
                                "[,identity,...])")
    with open(csv_path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = list(reader.fieldnames or [])
        if not {"path", "gender"} <= set(columns):
            raise ValueError(f"{csv_path}: columns {columns}, expected path,gender[,identity,...]")
        rows = [(reader.line_num, row) for row in reader]
    if not rows:
        raise _no_images("folder", csv_path, "one row per image")
    for line, row in rows:
        if row["gender"].strip().lower() not in _GENDER_WORDS:
            raise ValueError(f"{csv_path} line {line}: gender={row['gender']!r}, expected 0/1, m/f or male/female "
                             "(-1, unknown or empty: not known)")
        if not (root / row["path"]).is_file():
            raise FileNotFoundError(f"{csv_path} line {line}: image {root / row['path']} not found")
    paths = [row["path"] for _, row in rows]
    if "identity" in columns:
        names, identity = np.unique([row["identity"] for _, row in rows], return_inverse=True)
    else:
        names, identity = np.array([]), np.arange(len(rows))
    extra = [c for c in columns if c not in ("path", "gender", "identity")]
    return FaceDataset("folder", root, paths, np.array(paths), identity, names.tolist(),
                       np.array([_GENDER_WORDS[row["gender"].strip().lower()] for _, row in rows]),
                       {c: _column([row[c] for _, row in rows]) for c in extra})


LOADERS: dict[str, Callable[..., FaceDataset]] = {
    "lfw": _load_lfw, "utkface": _load_utkface, "agedb": _load_agedb, "colorferet": _load_colorferet,
    "folder": _load_folder,
}


def _check_name(name: str) -> None:
    if name not in LOADERS:
        raise ValueError(f"dataset={name!r}: expected one of {', '.join(LOADERS)}")


def _looks_like(name: str, folder: Path) -> bool:
    """Whether ``folder`` holds dataset ``name`` in its manifest's layout (each ``required`` pattern matches)."""
    return folder.is_dir() and not _missing(folder, load_manifest(name), check_registry=False)


def dataset_dir(name: str, data_dir: Path | str, mirror: Path | str | None = None) -> Path:
    """The folder dataset ``name`` is loaded from: the first of ``<data_dir>/<name>``, ``data_dir`` itself and
    ``<mirror>/<name>`` (argument or ``$MIFGSM_MIRROR``) laid out as the manifest says (``folder``: ``data_dir``)."""
    _check_name(name)
    data_dir = Path(data_dir)
    if name == "folder":
        return data_dir
    mirror = mirror or os.environ.get(MIRROR_ENV)
    candidates = [data_dir / name, data_dir] + ([Path(mirror) / name] if mirror else [])
    found = next((c for c in candidates if _looks_like(name, c)), None)
    if found is not None:
        return found
    if (data_dir / name).is_dir():
        lacking = _missing(data_dir / name, load_manifest(name), check_registry=False)
        raise FileNotFoundError(f"{name}: {data_dir / name} is incomplete (nothing matches {lacking}); "
                                f"run `mifgsm data fetch {name}` again")
    raise FileNotFoundError(f"{name}: no dataset folder {data_dir / name}; get it with `mifgsm data fetch {name}` "
                            f"(add --mirror DIR or set {MIRROR_ENV} to use a local mirror)")


def load_dataset(name: str, data_dir: Path | str, **kw: Any) -> FaceDataset:
    """Load dataset ``name`` from ``data_dir``: the folder holding ``<name>/`` (as :func:`fetch` makes it) or
    the dataset folder itself, see :func:`dataset_dir`. Options: lfw ``images`` (sub-folder), ``unknown_gender``
    ('keep' or 'error'); colorferet ``images_dir``; folder ``labels`` (the CSV, default ``labels.csv``)."""
    root = dataset_dir(name, data_dir)
    return LOADERS[name](root, **kw)


# --------------------------------------------------------------------------------------------- protocols

def read_pairs(path: Path | str, dataset: FaceDataset) -> Pairs:
    """LFW pairs file into indices of ``dataset``: first line ``<folds>\\t<n>`` (View 2: ``10\\t300``; a single
    ``<n>`` is one fold, as in pairsDevTrain.txt), then per fold n matched ``name i j`` and n mismatched
    ``name1 i name2 j`` lines."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pairs file {path} not found")
    lines = [line.split() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not lines or len(lines[0]) not in (1, 2) or not all(v.isdigit() and int(v) > 0 for v in lines[0]):
        raise ValueError(f"{path}: first line {' '.join(lines[0]) if lines else ''!r}: expected '<folds>\\t<pairs "
                         "per fold>' (View 2: '10\\t300')")
    n_folds, n = (1, int(lines[0][0])) if len(lines[0]) == 1 else map(int, lines[0])
    if len(lines) - 1 != 2 * n_folds * n:
        raise ValueError(f"{path}: header says {n_folds} folds x ({n} matched + {n} mismatched) = "
                         f"{2 * n_folds * n} pairs, but the file has {len(lines) - 1} pair lines")
    index = {image_id: k for k, image_id in enumerate(dataset.image_ids.tolist())}
    rows = []
    for k, fields in enumerate(lines[1:]):
        fold, same = k // (2 * n), k % (2 * n) < n
        shape = "'name i j' (matched)" if same else "'name1 i name2 j' (mismatched)"
        sides = [(fields[0], fields[1]), (fields[0], fields[2])] if same and len(fields) == 3 \
            else [(fields[0], fields[1]), (fields[2], fields[3])] if not same and len(fields) == 4 else []
        if not sides or not all(number.isdigit() for _, number in sides):
            raise ValueError(f"{path} line {k + 2}: {' '.join(fields)!r}, expected {shape}")
        ends = []
        for name, number in sides:
            image = f"{name}_{int(number):04d}"
            if image not in index:
                raise ValueError(f"{path} line {k + 2}: image {image} is not in the dataset "
                                 f"({dataset.name} at {dataset.root}, {len(dataset)} images)")
            ends.append(index[image])
        rows.append((*ends, same, fold))
    left, right, same, fold = zip(*rows)
    return Pairs(np.array(left), np.array(right), np.array(same), np.array(fold))


def balanced_subset(labels: np.ndarray, n: int, seed: int) -> tuple[np.ndarray, str]:
    """Sorted indices of a gender-balanced random subset of ``n`` images (the paper uses 5,000): n/2 per
    gender, or as many as the smaller gender has; images of unknown gender (-1) are never drawn."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.isin(labels, list(GENDER_NAMES)).all():
        raise ValueError("labels: expected a 1-D array of 0 (male), 1 (female) or -1 (unknown)")
    if not isinstance(n, (int, np.integer)) or n < 2:
        raise ValueError(f"n={n!r}: expected an integer >= 2 (n/2 images per gender)")
    by_gender = [np.flatnonzero(labels == g) for g in (MALE, FEMALE)]
    per_class = min(n // 2, *(len(b) for b in by_gender))
    if per_class == 0:
        raise ValueError(f"labels: {len(by_gender[0])} male and {len(by_gender[1])} female images; "
                         "a balanced subset needs both")
    rng = np.random.default_rng(seed)
    indices = np.sort(np.concatenate([rng.choice(b, per_class, replace=False) for b in by_gender]))
    message = f"drew {per_class} male + {per_class} female = {2 * per_class} images"
    if per_class < n // 2:
        message += (f" (asked for {n}: only {min(len(b) for b in by_gender)} "
                    f"{GENDER_NAMES[int(np.argmin([len(b) for b in by_gender]))]} images)")
    if (labels == UNKNOWN).any():
        message += f"; {(labels == UNKNOWN).sum()} images of unknown gender left out"
    return indices, message


def _protocol_pairs(dataset: FaceDataset, n_pairs: int, n_folds: int, seed: int, age_gap: int | None) -> Pairs:
    """Pairs in the style of LFW View 2: people are split into ``n_folds`` disjoint groups of about equal
    image count, and each fold draws n_pairs/(2 n_folds) mated and as many non-mated pairs within its group,
    uniformly among the pairs allowed (with ``age_gap``: exactly that many years between the two images)."""
    if not dataset.has_identities:
        raise ValueError(f"dataset {dataset.name!r} has no identities: verification pairs need them")
    if n_pairs <= 0 or n_pairs % (2 * n_folds):
        raise ValueError(f"n_pairs={n_pairs}: expected a positive multiple of 2 x n_folds = {2 * n_folds}")
    if age_gap is not None and "age" not in dataset.attributes:
        raise ValueError(f"dataset {dataset.name!r} has no 'age' attribute for age_gap={age_gap}")
    per_fold = n_pairs // (2 * n_folds)
    rng = np.random.default_rng(seed)
    people = rng.permutation(np.unique(dataset.identity))
    sizes = np.bincount(dataset.identity)
    fold_of, load = np.zeros(len(sizes), dtype=np.int64), np.zeros(n_folds, dtype=np.int64)
    for person in people:  # greedy: each person goes to the fold with the fewest images so far
        fold_of[person] = np.argmin(load)
        load[fold_of[person]] += sizes[person]
    person_fold = fold_of[dataset.identity]
    parts = []
    for fold in range(n_folds):
        idx = np.flatnonzero(person_fold == fold)
        i, j = np.triu_indices(len(idx), 1)
        allowed = np.ones(len(i), dtype=bool) if age_gap is None else \
            np.abs(dataset.attributes["age"][idx[i]] - dataset.attributes["age"][idx[j]]) == age_gap
        mated = dataset.identity[idx[i]] == dataset.identity[idx[j]]
        for same in (True, False):
            candidates = np.flatnonzero(allowed & (mated == same))
            if len(candidates) < per_fold:
                gap = f" {age_gap} years apart" if age_gap is not None else ""
                raise ValueError(f"{dataset.name}: fold {fold} has only {len(candidates)} "
                                 f"{'mated' if same else 'non-mated'} pairs{gap}, {per_fold} needed "
                                 f"(lower n_pairs={n_pairs} or use more images)")
            chosen = np.sort(rng.choice(candidates, per_fold, replace=False))
            parts.append((idx[i[chosen]], idx[j[chosen]], np.full(per_fold, same), np.full(per_fold, fold)))
    return Pairs(*(np.concatenate(column) for column in zip(*parts)))


def lfw_protocol_pairs(dataset: FaceDataset, seed: int, n_pairs: int = 6000, n_folds: int = 10) -> Pairs:
    """The LFW protocol on another dataset (the paper's Color FERET, Sec. 6.3): 10 folds of 300 mated and
    300 non-mated pairs, 3,000 + 3,000 in all, people not crossing folds."""
    return _protocol_pairs(dataset, n_pairs, n_folds, seed, age_gap=None)


def agedb30_pairs(dataset: FaceDataset, n_pairs: int = 6000, seed: int = 0, n_folds: int = 10,
                  age_gap: int = 30) -> Pairs:
    """AgeDB-30 (Moschoglou et al. 2017; the paper, Sec. 6.3): 10 folds of 300 mated and 300 non-mated
    pairs whose two images are exactly 30 years apart, people not crossing folds."""
    return _protocol_pairs(dataset, n_pairs, n_folds, seed, age_gap=age_gap)


def dataset_pairs(dataset: FaceDataset, seed: int = 0) -> Pairs:
    """The verification pairs the paper uses for a dataset: LFW's pairs.txt, AgeDB-30 for AgeDB, the LFW
    protocol for the others (Sec. 6.3)."""
    if dataset.name == "lfw":
        return read_pairs(dataset.root / load_manifest("lfw")["layout"]["pairs"], dataset)
    if dataset.name == "agedb":
        return agedb30_pairs(dataset, seed=seed)
    return lfw_protocol_pairs(dataset, seed=seed)


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
                pooch.retrieve(url, known_hash=f"sha256:{sha256}", fname=fname,
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
    if target.is_dir() and not _missing(target, manifest):
        return target
    mirror = mirror or os.environ.get(MIRROR_ENV)
    if mirror:
        return _from_mirror(name, Path(mirror), target, manifest)
    if "access" in manifest:
        raise FileNotFoundError(manifest["access"].replace("<data_dir>", str(Path(data_dir))))
    _download(name, manifest, target, progress)
    lacking = _missing(target, manifest)
    if lacking:
        raise FileNotFoundError(f"{name}: after downloading, {target} still lacks {lacking[:5]}")
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
            report["pairs"] = len(dataset_pairs(dataset))
        except (ValueError, FileNotFoundError) as exc:
            report["problems"].append(f"verification pairs: {exc}")
    return report
