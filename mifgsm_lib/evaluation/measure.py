"""One way to measure a family of protected template sets: settings A and B, verification on pairs and PIC, one row
per set, every number with its 95 % interval (:mod:`mifgsm_lib.intervals`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from mifgsm_lib import verification
from mifgsm_lib.data.pairs import Pairs
from mifgsm_lib.evaluation.settings import (
    CLASSIFIERS,
    SettingBResult,
    fold_splits,
    setting_a_predictions,
    setting_b_sweep,
)
from mifgsm_lib.intervals import (
    N_BOOT,
    PROPORTION,
    Interval,
    basic_interval,
    cluster_counts,
    pair_weights,
    weighted_accuracy,
)
from mifgsm_lib.privacy import pic


class SetKey(NamedTuple):
    """Which protected templates: method, its parameter's name (``eps``, ``step`` or ``none``) and value."""

    method: str
    parameter: str
    value: float


#: The clean templates (no privacy), to which PIC is relative.
REFERENCE = SetKey("reference", "none", 0.0)

#: The metric columns of :func:`measure`, by name.
METRICS = ("setting_a", "setting_b", *(f"B_{c}" for c in CLASSIFIERS), "eer", "tar_at_far", "accuracy", "pic")


@dataclass(frozen=True)
class EvaluationSet:
    """The images a family of protected template sets is measured on.

    ``indices`` index the dataset; ``labels`` are the protected attribute's (-1: unknown, left out of settings
    A and B), ``identity`` the people (setting B's groups); ``pairs`` (indexing ``indices``) the verification
    pairs, or None where the dataset has none.
    """

    dataset: str
    indices: np.ndarray
    labels: np.ndarray
    identity: np.ndarray
    pairs: Pairs | None = None

    @property
    def labelled(self) -> np.ndarray:
        return self.labels >= 0

    def bootstrap_weights(self, n_boot: int = N_BOOT, seed: int = 0) -> tuple[np.ndarray, np.ndarray | None]:
        """Bootstrap weights from one resampling of the people (:func:`mifgsm_lib.intervals.cluster_counts`), so that
        every metric's replicates are paired: ``(images, pairs)``, the labelled images' (n_boot, labelled images),
        each weighing as often as its person is drawn, and the verification pairs' (n_boot, pairs) by
        :func:`mifgsm_lib.intervals.pair_weights` (None without pairs)."""
        counts, person = cluster_counts(self.identity, n_boot, seed)
        pairs = None if self.pairs is None else pair_weights(counts, person[self.pairs.left], person[self.pairs.right])
        return counts[:, person[self.labelled]], pairs

    def __len__(self) -> int:
        return len(self.indices)

    def halves(self, seed: int = 0) -> np.ndarray:
        """Two disjoint halves of the labelled images, for choosing a parameter on one (0) and reporting on the
        other (1): each person's images in one half, each class split evenly (the first split of 2-fold
        :func:`~mifgsm_lib.evaluation.settings.fold_splits`, seeded); -1 for the unlabelled images."""
        mask = self.labelled
        choose, _ = fold_splits(self.labels[mask], self.identity[mask], folds=2, seed=seed)[0]
        half = np.ones(int(mask.sum()), dtype=np.int64)
        half[choose] = 0
        out = np.full(len(self), -1, dtype=np.int64)
        out[mask] = half
        return out

    def half(self, part: int, seed: int = 0) -> tuple[EvaluationSet, np.ndarray]:
        """The images of one of :meth:`halves` (0: where a parameter is chosen, 1: where it is reported), without
        pairs, and their rows in this set."""
        if part not in (0, 1):
            raise ValueError(f"part={part!r}: expected 0 (the half that chooses) or 1 (the half that reports)")
        rows = np.flatnonzero(self.halves(seed) == part)
        return EvaluationSet(self.dataset, self.indices[rows], self.labels[rows], self.identity[rows]), rows

    def split_by_folds(self) -> tuple[EvaluationSet, EvaluationSet, np.ndarray, np.ndarray]:
        """Two disjoint halves for choosing a method's parameter on one and reporting on the other: the images of
        the pairs of the first half of the pairs' folds, and those of the second half (LFW's folds hold disjoint
        people). Returns both sets and their rows in this set. A half of one fold has its pairs dealt into 10
        sub-folds, so that the 10-fold verification accuracy stays defined."""
        if self.pairs is None:
            raise ValueError(f"evaluation set of {self.dataset!r}: has no pairs to split by fold")
        folds = np.unique(self.pairs.fold)
        if len(folds) < 2:
            raise ValueError(f"evaluation set of {self.dataset!r}: its pairs hold one fold, {folds.tolist()}; expected "
                             "at least two to choose on one half and report on the other")
        first = np.isin(self.pairs.fold, folds[: len(folds) // 2])
        select, select_rows = self._pair_subset(first)
        report, report_rows = self._pair_subset(~first)
        return select, report, select_rows, report_rows

    def _pair_subset(self, keep: np.ndarray) -> tuple[EvaluationSet, np.ndarray]:
        """The images of the pairs ``keep`` (a mask over the pairs), the pairs re-indexed into them, and their rows."""
        p = self.pairs
        rows = np.unique(np.concatenate([p.left[keep], p.right[keep]]))
        position = np.full(len(self), -1)
        position[rows] = np.arange(len(rows))
        fold = p.fold[keep]
        sub = Pairs(left=position[p.left[keep]], right=position[p.right[keep]], same=p.same[keep],
                    fold=fold if len(np.unique(fold)) > 1 else np.arange(int(keep.sum())) % 10)
        return EvaluationSet(self.dataset, self.indices[rows], self.labels[rows], self.identity[rows], sub), rows


def measure(
    sets: Mapping[SetKey, np.ndarray],
    target: EvaluationSet,
    folds: int = 3,
    grouped: bool = True,
    seed: int = 0,
    n_jobs: int | None = -1,
    classifier: Any = None,
    multiclass: bool = False,
    n_boot: int = N_BOOT,
    replicates: dict[SetKey, dict[str, np.ndarray]] | None = None,
    halves: bool = False,
) -> pd.DataFrame:
    """Every protected set of ``target``'s images, measured: one row per set, the columns of its key, ``dims`` and
    :data:`METRICS`, each with its 95 % interval (``<metric>_low``, ``<metric>_high``, :mod:`mifgsm_lib.intervals`).

    - setting A (:func:`setting_a`) with ``classifier`` (the MLP trained on clean templates), on the labelled rows;
    - setting B (:func:`setting_b_sweep`, one sweep per template dimension since IVE's sets shrink) on the
      labelled rows, folds grouped by identity unless ``grouped=False``; ``setting_b_plain`` is its plain accuracy;
    - with ``target.pairs``: verification (:func:`mifgsm_lib.verification.verify`): EER, TAR at FAR = 0.1 % and the
      10-fold accuracy, and PIC relative to :data:`REFERENCE` where it is among the sets (NaN where it is
      undefined: clean templates that verify every pair, EER 0, or leak nothing).

    With ``halves``, setting B is also read on each of two disjoint halves of the people
    (:meth:`EvaluationSet.halves`): ``setting_b_choose`` and ``setting_b_report``, the balanced accuracy of the same
    out-of-fold predictions on each half's images, so that a parameter chosen on one half (ε*, a matched step) is
    reported on images that did not choose it, at no extra fit; ``setting_b_report`` has its interval.

    The intervals resample identities, one draw for every metric (:meth:`EvaluationSet.bootstrap_weights`):
    settings A and B weigh each image by its person's count, the EER and TAR each pair by its people's. The weights
    are the same for every set, so that the bootstrap replicates, stored in ``replicates`` by key and metric where it
    is given, give paired intervals of differences between sets (:func:`paired_difference`).
    """
    mask = target.labelled
    y = target.labels[mask]
    by_dim: dict[int, dict[SetKey, np.ndarray]] = {}
    for key, z in sets.items():
        if np.ndim(z) != 2 or len(z) != len(target):
            raise ValueError(f"sets[{key}]: expected one template per image of the evaluation set "
                             f"({len(target)}, dim), got shape {np.shape(z)}")
        by_dim.setdefault(z.shape[1], {})[key] = z[mask]
    privacy: dict[SetKey, SettingBResult] = {}
    for group in by_dim.values():
        privacy.update(setting_b_sweep(group, y, target.identity[mask], folds=folds, grouped=grouped,
                                       seed=seed, n_jobs=n_jobs, progress=False, multiclass=multiclass))
    people, weights_of_pairs = target.bootstrap_weights(n_boot, seed)
    half = target.halves(seed)[mask] if halves else None
    p = target.pairs
    rows = []
    replicates = {} if replicates is None else replicates
    for key, z in sets.items():
        b = privacy[key]
        reps = {"setting_b": b.replicates(people)}
        row: dict[str, Any] = {**key._asdict(), "dims": z.shape[1]}
        intervals = {"setting_b": b.interval(people, reps["setting_b"])}
        if classifier is not None:
            correct = (setting_a_predictions(classifier, z[mask]) == y).astype(np.float64)
            row["setting_a"] = float(correct.mean())
            reps["setting_a"] = weighted_accuracy(correct, people)
            intervals["setting_a"] = basic_interval(row["setting_a"], reps["setting_a"], bounds=PROPORTION)
        row["setting_b"] = b.mean
        if half is not None:
            for part, name in enumerate(("setting_b_choose", "setting_b_report")):
                inside = (half == part).astype(np.float64)
                row[name] = float(b.replicates(inside[None, :])[0])
                reps[name] = b.replicates(people * inside)
            intervals["setting_b_report"] = basic_interval(row["setting_b_report"], reps["setting_b_report"],
                                                           bounds=PROPORTION)
        row.update({f"B_{c}": score for c, score in b.balanced_accuracy.items() if c != "mean"})
        if p is not None:
            v = verification.verify(z, p.left, p.right, p.same, p.fold)
            row.update({"eer": v.eer, "tar_at_far": v.tar_at_far, "accuracy": v.accuracy_mean})
            far, tar = verification.bootstrap_rates(verification.pair_distances(z, p.left, p.right), p.same,
                                                    weights_of_pairs)
            reps["eer"], reps["tar_at_far"] = verification.eers(far, tar), verification.tars_at_far(far, tar)
            for metric in ("eer", "tar_at_far"):
                intervals[metric] = basic_interval(row[metric], reps[metric], bounds=PROPORTION)
        row["setting_b_plain"] = b.accuracy["mean"]
        for metric, interval in intervals.items():
            row[f"{metric}_low"], row[f"{metric}_high"] = interval.low, interval.high
        rows.append(row)
        replicates[key] = reps
    frame = pd.DataFrame(rows)
    if p is not None and REFERENCE in sets:
        ref = frame.loc[[k == REFERENCE for k in sets]].iloc[0]
        ref_reps = replicates[REFERENCE]
        defined = ref["eer"] > 0 and ref["setting_b"] > 0.5
        frame["pic"] = [pic(ref["setting_b"], b, ref["eer"], eer) if defined else np.nan
                        for b, eer in zip(frame["setting_b"], frame["eer"])]
        lows, highs = [], []
        for key, value in zip(sets, frame["pic"]):
            reps = replicates[key]
            with np.errstate(invalid="ignore", divide="ignore"):
                reps["pic"] = ((ref_reps["setting_b"] - reps["setting_b"]) / (ref_reps["setting_b"] - 0.5)
                               - (reps["eer"] - ref_reps["eer"]) / ref_reps["eer"])
            interval = basic_interval(value, reps["pic"]) if defined else None
            lows.append(interval.low if interval else np.nan)
            highs.append(interval.high if interval else np.nan)
        frame["pic_low"], frame["pic_high"] = lows, highs
    return frame


def paired_difference(frame: pd.DataFrame, replicates: Mapping[SetKey, Mapping[str, np.ndarray]], first: SetKey,
                      second: SetKey, metric: str) -> Interval:
    """The 95 % interval of ``metric`` of ``first`` minus ``second``, two sets of one :func:`measure` with its
    ``replicates`` (paired bootstrap: the same resampled identities and pairs for both)."""
    keys = [SetKey(*k) for k in zip(frame["method"], frame["parameter"], frame["value"])]
    row = {k: i for i, k in enumerate(keys)}
    for key in (first, second):
        if key not in row or key not in replicates:
            raise ValueError(f"frame: no measured row of {key}; it has {keys}")
    estimate = float(frame[metric].iloc[row[first]] - frame[metric].iloc[row[second]])
    with np.errstate(invalid="ignore"):  # PIC's replicates are infinite where a draw's clean EER is 0
        differences = replicates[first][metric] - replicates[second][metric]
    return basic_interval(estimate, differences)
