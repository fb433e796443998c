"""Verification pairs of the paper (Sec. 6.3): LFW's View 2 ``pairs.txt``, the same protocol (10 folds of 300
mated + 300 non-mated pairs) drawn for Color FERET or any dataset with identities, and AgeDB-30 (pairs 30 years
apart) for AgeDB."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mifgsm_lib.data.datasets import FaceDataset, load_manifest


@dataclass
class Pairs:
    """Verification pairs: image indices ``left``/``right`` into a dataset, ``same`` (mated) and ``fold``;
    ``problems`` lists the pairs of a pairs file that were left out and why."""

    left: np.ndarray
    right: np.ndarray
    same: np.ndarray
    fold: np.ndarray
    problems: list[str] = field(default_factory=list)

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



def read_pairs(path: Path | str, dataset: FaceDataset) -> Pairs:
    """LFW pairs file into indices of ``dataset``: first line ``<folds>\\t<n>`` (View 2: ``10\\t300``; a single
    ``<n>`` is one fold, as in pairsDevTrain.txt), then per fold n matched ``name i j`` and n mismatched
    ``name1 i name2 j`` lines (a UTF-8 BOM is ignored). A pair that makes no sense (an image with itself, a
    mismatched pair of one person, a matched pair of two people, a pair listed twice) is left out and reported in
    ``problems`` with its line; a line of the wrong shape, or naming an image not in the dataset, is an error."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"pairs file {path} not found")
    lines = [line.split() for line in path.read_text(encoding="utf-8-sig").splitlines() if line.strip()]
    if not lines or len(lines[0]) not in (1, 2) or not all(v.isdigit() and int(v) > 0 for v in lines[0]):
        raise ValueError(f"{path}: first line {' '.join(lines[0]) if lines else ''!r}: expected '<folds>\\t<pairs "
                         "per fold>' (View 2: '10\\t300')")
    n_folds, n = (1, int(lines[0][0])) if len(lines[0]) == 1 else map(int, lines[0])
    if len(lines) - 1 != 2 * n_folds * n:
        raise ValueError(f"{path}: header says {n_folds} folds x ({n} matched + {n} mismatched) = "
                         f"{2 * n_folds * n} pairs, but the file has {len(lines) - 1} pair lines")
    index = {image_id: k for k, image_id in enumerate(dataset.image_ids.tolist())}
    rows, problems, first_line = [], [], {}
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
        problem = _pair_problem(dataset, ends, same)
        pair = tuple(sorted(ends))
        if not problem and pair in first_line:
            problem = f"the same pair as line {first_line[pair]}"
        if problem:
            problems.append(f"{path.name} line {k + 2}: {' '.join(fields)!r}: {problem}; left out")
            continue
        first_line[pair] = k + 2
        rows.append((*ends, same, fold))
    if not rows:
        raise ValueError(f"{path}: no valid pair ({len(problems)} left out: {problems[:3]})")
    left, right, same, fold = zip(*rows)
    return Pairs(np.array(left), np.array(right), np.array(same), np.array(fold), problems)


def _pair_problem(dataset: FaceDataset, ends: list[int], same: bool) -> str:
    """Why a pair of images makes no sense, or "": an image with itself, a mismatched pair of one person, a matched
    pair of two people."""
    if ends[0] == ends[1]:
        return "an image paired with itself"
    if dataset.has_identities:
        one_person = dataset.identity[ends[0]] == dataset.identity[ends[1]]
        if not same and one_person:
            return "a mismatched pair of one person"
        if same and not one_person:
            return "a matched pair of two people"
    return ""


def _protocol_pairs(dataset: FaceDataset, n_pairs: int | None, n_folds: int, seed: int,
                    age_gap: int | None) -> Pairs:
    """Pairs in the style of LFW View 2: people are split into ``n_folds`` disjoint groups of about equal
    image count, and each fold draws n_pairs/(2 n_folds) mated and as many non-mated pairs within its group,
    uniformly among the pairs allowed (with ``age_gap``: exactly that many years between the two images).
    ``n_pairs=None``: as many as every fold allows, up to :data:`PROTOCOL_PAIRS` (a small dataset of the user's)."""
    if not dataset.has_identities:
        raise ValueError(f"dataset {dataset.name!r} has no identities: verification pairs need them")
    if n_pairs is not None and (n_pairs <= 0 or n_pairs % (2 * n_folds)):
        raise ValueError(f"n_pairs={n_pairs}: expected a positive multiple of 2 x n_folds = {2 * n_folds}")
    if age_gap is not None and "age" not in dataset.attributes:
        raise ValueError(f"dataset {dataset.name!r} has no 'age' attribute for age_gap={age_gap}")
    rng = np.random.default_rng(seed)
    people = rng.permutation(np.unique(dataset.identity))
    sizes = np.bincount(dataset.identity)
    fold_of, load = np.zeros(len(sizes), dtype=np.int64), np.zeros(n_folds, dtype=np.int64)
    for person in people:  # greedy: each person goes to the fold with the fewest images so far
        fold_of[person] = np.argmin(load)
        load[fold_of[person]] += sizes[person]
    person_fold = fold_of[dataset.identity]
    folds = []
    for fold in range(n_folds):
        idx = np.flatnonzero(person_fold == fold)
        i, j = np.triu_indices(len(idx), 1)
        allowed = np.ones(len(i), dtype=bool) if age_gap is None else \
            np.abs(dataset.attributes["age"][idx[i]] - dataset.attributes["age"][idx[j]]) == age_gap
        mated = dataset.identity[idx[i]] == dataset.identity[idx[j]]
        folds.append((idx, i, j, {same: np.flatnonzero(allowed & (mated == same)) for same in (True, False)}))
    if n_pairs is None:
        available = min(len(c) for *_, found in folds for c in found.values())
        if available == 0:
            raise ValueError(f"{dataset.name}: a fold of people has no mated pair (too few people with two images or "
                             "more); verification pairs need them")
        n_pairs = 2 * n_folds * min(available, PROTOCOL_PAIRS // (2 * n_folds))
    per_fold = n_pairs // (2 * n_folds)
    parts = []
    for fold, (idx, i, j, found) in enumerate(folds):
        for same in (True, False):
            candidates = found[same]
            if len(candidates) < per_fold:
                gap = f" {age_gap} years apart" if age_gap is not None else ""
                raise ValueError(f"{dataset.name}: fold {fold} has only {len(candidates)} "
                                 f"{'mated' if same else 'non-mated'} pairs{gap}, {per_fold} needed "
                                 f"(lower n_pairs={n_pairs} or use more images)")
            chosen = np.sort(rng.choice(candidates, per_fold, replace=False))
            parts.append((idx[i[chosen]], idx[j[chosen]], np.full(per_fold, same), np.full(per_fold, fold)))
    return Pairs(*(np.concatenate(column) for column in zip(*parts)))


#: The pairs of the LFW protocol: 10 folds of 300 mated and 300 non-mated pairs.
PROTOCOL_PAIRS = 6000


def lfw_protocol_pairs(dataset: FaceDataset, seed: int, n_pairs: int | None = None, n_folds: int = 10) -> Pairs:
    """The LFW protocol on another dataset (the paper's Color FERET, Sec. 6.3): 10 folds of 300 mated and
    300 non-mated pairs, 3,000 + 3,000 in all, people not crossing folds; on a dataset too small for them
    (``n_pairs=None``), as many per fold as every fold allows."""
    return _protocol_pairs(dataset, n_pairs, n_folds, seed, age_gap=None)


def agedb30_pairs(dataset: FaceDataset, n_pairs: int = 6000, seed: int = 0, n_folds: int = 10,
                  age_gap: int = 30) -> Pairs:
    """AgeDB-30 (Moschoglou et al. 2017; the paper, Sec. 6.3): 10 folds of 300 mated and 300 non-mated
    pairs whose two images are exactly 30 years apart, people not crossing folds."""
    return _protocol_pairs(dataset, n_pairs, n_folds, seed, age_gap=age_gap)


def dataset_pairs(dataset: FaceDataset, seed: int = 0) -> Pairs:
    """The verification pairs the paper uses for a dataset: LFW's pairs.txt, AgeDB-30 for AgeDB, the LFW
    protocol for the others (Sec. 6.3); on a folder of the user's, the LFW protocol with as many pairs as its
    people allow (up to 6,000)."""
    if dataset.name == "lfw":
        return read_pairs(dataset.root / load_manifest("lfw")["layout"]["pairs"], dataset)
    if dataset.name == "agedb":
        return agedb30_pairs(dataset, seed=seed)
    return lfw_protocol_pairs(dataset, seed=seed, n_pairs=None if dataset.name == "folder" else PROTOCOL_PAIRS)


