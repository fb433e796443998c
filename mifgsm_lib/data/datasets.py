"""Face datasets of the paper (Sec. 5): LFW, AgeDB and Color FERET, plus UTKFace and any labelled folder.

Every loader returns a :class:`FaceDataset` (image paths, identities, gender 0 = male / 1 = female /
-1 = unknown, extra attributes) and lists in ``problems`` every label problem it found and how it was
resolved: nothing is dropped or relabelled silently. :func:`balanced_subset` draws the paper's
gender-balanced subset (5,000 images).

It is longer than most modules because it holds one loader per dataset layout, each with its own label rules.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import yaml

MALE, FEMALE, UNKNOWN = 0, 1, -1
GENDER_NAMES = {MALE: "male", FEMALE: "female", UNKNOWN: "unknown"}

#: The manifests ``data/<name>.yml`` (sources, sha256, layout) next to the package.
def _manifest_dir() -> Path:
    """The installed copy (``mifgsm_lib/manifests``, as a wheel installs ``data/``), else ``data/`` of a source
    checkout (an editable install). Read as a folder: the installed copy is a package without ``__init__.py``, for
    which ``importlib.resources.files`` gives a ``MultiplexedPath``, not a path of the file system."""
    package = Path(__file__).resolve().parents[1]
    installed, checkout = package / "manifests", package.parent / "data"
    return installed if (installed / "lfw.yml").is_file() or not (checkout / "lfw.yml").is_file() else checkout


MANIFEST_DIR = _manifest_dir()


def load_manifest(name: str) -> dict[str, Any]:
    """The manifest ``data/<name>.yml`` of a dataset: sources, sha256, layout notes."""
    path = MANIFEST_DIR / f"{name}.yml"
    if not path.is_file():
        known = sorted(p.stem for p in MANIFEST_DIR.glob("*.yml"))
        raise FileNotFoundError(f"no manifest {path} for dataset {name!r} (manifests: {known}); "
                                "reinstall the package: its manifests are missing")
    return yaml.load(path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


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


#: Age groups: young < 30, adult 30-59, older >= 60 (the bins' left edges after the first).
AGE_BINS: tuple[int, ...] = (30, 60)

#: The soft biometrics a protection can target, with the names of their classes by label.
ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "gender": ("male", "female"),
    "age_group": ("young (<30)", "adult (30-59)", "older (>=60)"),
    "race": ("White", "Black", "Asian", "Indian", "Others"),  # UTKFace's codes 0-4
}


def attribute_labels(dataset: FaceDataset, attribute: str) -> np.ndarray:
    """Class labels of ``attribute`` (:data:`ATTRIBUTES`) for every image of ``dataset``, -1 where unknown.

    ``age_group`` bins the age at :data:`AGE_BINS`; ``race`` is UTKFace's code 0-4. A clear error where the
    dataset has no such labels, or fewer than two classes of them (the MI gradient and setting B need two).
    """
    if attribute == "gender":
        y = dataset.gender
    elif attribute in ("age_group", "race"):
        source = "age" if attribute == "age_group" else "race"
        if source not in dataset.attributes:
            raise ValueError(f"attribute {attribute!r}: dataset {dataset.name!r} has no {source!r} labels "
                             f"(it has {sorted(dataset.attributes)})")
        y = np.digitize(dataset.attributes["age"], AGE_BINS) if attribute == "age_group" else dataset.attributes["race"]
    else:
        raise ValueError(f"attribute={attribute!r}: expected one of {list(ATTRIBUTES)}")
    labels = np.asarray(y, dtype=np.int64)
    classes = np.unique(labels[labels >= 0])
    if classes.size < 2:
        raise ValueError(f"attribute {attribute!r}: {classes.size} class(es) {classes.tolist()} among {labels.size} "
                         "images; expected at least two (the MI gradient and setting B need them)")
    return labels


# --------------------------------------------------------------------------------------------- loaders

def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _no_images(name: str, where: Path, expected: str) -> FileNotFoundError:
    return FileNotFoundError(f"{name}: no images found in {where} (expected {expected})")


_LFW_IMAGE = re.compile(r"^(?P<person>.+)_(?P<number>\d{4})\.jpg$")


def _read_name_list(path: Path) -> tuple[set[str], list[str]]:
    """An LFW gender list: one image file name per line (CRLF); returns the names and the bad lines."""
    lines = [line.strip() for line in path.read_text(encoding="utf-8-sig").splitlines() if line.strip()]
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
    with open(csv_path, newline="", encoding="utf-8-sig") as handle:  # utf-8-sig: a BOM (as Excel writes) is dropped
        reader = csv.DictReader(handle)
        columns = [c.strip() for c in reader.fieldnames or []]
        reader.fieldnames = columns
        if not {"path", "gender"} <= set(columns):
            raise ValueError(f"{csv_path}: columns {columns}, expected path,gender[,identity,...]")
        rows = [(reader.line_num, row) for row in reader]
    if not rows:
        raise _no_images("folder", csv_path, "one row per image")
    first_line: dict[str, int] = {}
    for line, row in rows:
        if any(row.get(c) is None for c in columns) or None in row:
            raise ValueError(f"{csv_path} line {line}: {sum(v is not None for v in row.values())} fields, expected "
                             f"{len(columns)} ({','.join(columns)})")
        if row["path"] in first_line:
            raise ValueError(f"{csv_path} line {line}: image {row['path']!r} is listed twice (first on line "
                             f"{first_line[row['path']]})")
        first_line[row["path"]] = line
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


def check_dataset_name(name: str) -> None:
    """A clear error unless ``name`` is a dataset this library loads."""
    if name not in LOADERS:
        raise ValueError(f"dataset={name!r}: expected one of {', '.join(LOADERS)}")


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


