"""Face verification on pairs: ROC, EER, TAR@FAR and the LFW 10-fold accuracy (paper Sec. 6.3).

The paper compares the 6,000 LFW pairs (3,000 mated, 3,000 non-mated) "using the
Euclidean distance" between templates. A pair is *accepted* (declared mated) when
its distance is at most the threshold ``t``:

- FAR(t) = #{non-mated pairs with d <= t} / #non-mated  (false accept rate)
- TAR(t) = #{mated pairs with d <= t} / #mated          (true accept rate)
- FRR(t) = 1 - TAR(t)                                   (false reject rate)

The ROC is the step curve of (FAR, TAR) over every distinct distance, starting at
(0, 0) for ``t = -inf``. Its convention for the EER, stated in every report, is
:data:`EER_CONVENTION`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mifgsm_lib.intervals import (N_BOOT, PROPORTION, Interval, basic_interval, cluster_counts, pair_weights,
                                  stratified_weights)

#: How :func:`eer` reads the EER off the ROC; copied into every report.
EER_CONVENTION = (
    "Euclidean distance, accept when distance <= threshold; EER = the point where FAR = FRR on the "
    "ROC polyline (FAR, FRR) over all distinct thresholds, linearly interpolated between the two "
    "consecutive ROC points that bracket the crossing"
)

#: The operating point of TAR@FAR reported by :func:`verify` (FAR = 0.1%).
DEFAULT_FAR = 1e-3


def _as_distances_and_labels(distances: np.ndarray, same: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate a (distances, same) pair of 1-D arrays; ``same`` becomes boolean."""
    d = np.asarray(distances, dtype=np.float64)
    s = np.asarray(same)
    if d.ndim != 1 or s.ndim != 1:
        raise ValueError(f"distances and same: expected 1-D arrays, got shapes {d.shape} and {s.shape}")
    if d.shape != s.shape:
        raise ValueError(f"distances and same: expected the same length, got {d.size} and {s.size}")
    if not np.all(np.isfinite(d)):
        raise ValueError(f"distances: expected finite values, got {int(np.sum(~np.isfinite(d)))} NaN/inf")
    if s.dtype != bool:
        if not np.all(np.isin(s, (0, 1))):
            raise ValueError("same: expected booleans or 0/1 labels (1 = mated pair)")
        s = s.astype(bool)
    if s.all() or not s.any():
        raise ValueError("same: expected both mated (True) and non-mated (False) pairs")
    return d, s


def pair_distances(templates: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Euclidean distance ``||z_left - z_right||_2`` of each pair of template indices."""
    z = np.asarray(templates, dtype=np.float64)
    if z.ndim != 2:
        raise ValueError(f"templates: expected a 2-D array (n_images, dim), got shape {z.shape}")
    if not np.all(np.isfinite(z)):
        bad = np.flatnonzero(~np.all(np.isfinite(z), axis=1))
        raise ValueError(f"templates: expected finite values, rows {bad[:5].tolist()} contain NaN/inf")
    idx = []
    for name, pairs in (("pairs_left", left), ("pairs_right", right)):
        p = np.asarray(pairs)
        if p.ndim != 1 or (p.size and not np.issubdtype(p.dtype, np.integer)):
            raise ValueError(f"{name}: expected a 1-D array of integer template indices, got {p.dtype} {p.shape}")
        if p.size and (p.min() < 0 or p.max() >= z.shape[0]):
            raise ValueError(f"{name}: index out of range [0, {z.shape[0]}), got min {p.min()} max {p.max()}")
        idx.append(p)
    if idx[0].shape != idx[1].shape:
        raise ValueError(f"pairs_left and pairs_right: expected the same length, got {idx[0].size} and {idx[1].size}")
    return np.linalg.norm(z[idx[0]] - z[idx[1]], axis=1)


def roc(distances: np.ndarray, same: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ROC ``(far, tar, thresholds)``, accepting a pair when distance <= threshold.

    One point per distinct distance in increasing order (ties are one point), preceded
    by ``thresholds[0] = -inf`` where nothing is accepted (FAR = TAR = 0); the last
    point accepts every pair (FAR = TAR = 1).
    """
    d, s = _as_distances_and_labels(distances, same)
    order = np.argsort(d, kind="stable")
    d_sorted, s_sorted = d[order], s[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(d_sorted)), d_sorted.size - 1]
    genuine_accepted = np.cumsum(s_sorted)[last_of_tie]
    impostor_accepted = np.cumsum(~s_sorted)[last_of_tie]
    far = np.r_[0.0, impostor_accepted / (~s).sum()]
    tar = np.r_[0.0, genuine_accepted / s.sum()]
    return far, tar, np.r_[-np.inf, d_sorted[last_of_tie]]


def _eer_from_curve(far: np.ndarray, tar: np.ndarray) -> float:
    """FAR = FRR on the ROC polyline, interpolated between the two bracketing points."""
    gap = (1.0 - tar) - far  # FRR - FAR: +1 at t = -inf, -1 at t = +inf, non-increasing
    i = int(np.argmax(gap <= 0))
    if gap[i] == 0:
        return float(far[i])
    alpha = gap[i - 1] / (gap[i - 1] - gap[i])
    return float(far[i - 1] + alpha * (far[i] - far[i - 1]))


def eer(distances: np.ndarray, same: np.ndarray) -> float:
    """The equal error rate, as a fraction in [0, 1].

    Convention (:data:`EER_CONVENTION`): walk the ROC points of :func:`roc` in order of
    increasing threshold; FRR - FAR goes from +1 to -1. The EER is where the segment
    between the last point with FRR > FAR and the first with FRR <= FAR crosses
    FAR = FRR, i.e. ``FAR_a + alpha (FAR_b - FAR_a)`` with
    ``alpha = g_a / (g_a - g_b)`` and ``g = FRR - FAR``. It always lies between
    ``max_t min(FAR, FRR)`` and ``min_t max(FAR, FRR)``.
    """
    far, tar, _ = roc(distances, same)
    return _eer_from_curve(far, tar)


def _tar_at_far_from_curve(far: np.ndarray, tar: np.ndarray, far_level: float) -> float:
    if not 0.0 < far_level <= 1.0:
        raise ValueError(f"far={far_level!r}: expected a false accept rate in (0, 1]")
    return float(tar[far <= far_level].max())


def tar_at_far(distances: np.ndarray, same: np.ndarray, far: float = DEFAULT_FAR) -> float:
    """The largest TAR among the thresholds whose FAR is at most ``far`` (no interpolation)."""
    roc_far, roc_tar, _ = roc(distances, same)
    return _tar_at_far_from_curve(roc_far, roc_tar, far)


def bootstrap_rates(distances: np.ndarray, same: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ROC of :func:`roc` under each row of pair ``weights`` (B, n_pairs): ``(far, tar)``, each (B, T + 1).

    With unit weights it is :func:`roc`'s curve exactly; a bootstrap replicate gives each pair the number of times
    it was drawn (:func:`mifgsm_lib.intervals.stratified_weights` keeps the mated and non-mated counts;
    :func:`mifgsm_lib.intervals.pair_weights` draws people)."""
    d, s = _as_distances_and_labels(distances, same)
    order = np.argsort(d, kind="stable")
    d_sorted, s_sorted = d[order], s[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(d_sorted)), d_sorted.size - 1]
    w = np.atleast_2d(np.asarray(weights, dtype=np.float64))[:, order]
    genuine = np.cumsum(w * s_sorted, axis=1)[:, last_of_tie]
    impostor = np.cumsum(w * ~s_sorted, axis=1)[:, last_of_tie]
    zeros = np.zeros((len(w), 1))
    with np.errstate(invalid="ignore", divide="ignore"):  # a replicate that drew no pair of a kind: NaN, left out
        far = np.hstack([zeros, impostor / (w * ~s_sorted).sum(axis=1, keepdims=True)])
        tar = np.hstack([zeros, genuine / (w * s_sorted).sum(axis=1, keepdims=True)])
    return far, tar


def eers(far: np.ndarray, tar: np.ndarray) -> np.ndarray:
    """:func:`eer` of each row of (B, T) ROC curves, with the same interpolation."""
    gap = (1.0 - tar) - far
    i = np.argmax(gap <= 0, axis=1)
    rows = np.arange(len(far))
    prev = np.maximum(i - 1, 0)
    g_a, g_b = gap[rows, prev], gap[rows, i]
    with np.errstate(invalid="ignore", divide="ignore"):
        alpha = np.where(g_a - g_b != 0, g_a / (g_a - g_b), 0.0)
    crossing = far[rows, prev] + alpha * (far[rows, i] - far[rows, prev])
    return np.where(g_b == 0, far[rows, i], crossing)


def rate_intervals(distances: np.ndarray, same: np.ndarray, far_level: float = DEFAULT_FAR, n_boot: int = N_BOOT,
                   seed: int = 0, people: tuple[np.ndarray, np.ndarray] | None = None) -> dict[str, Interval]:
    """95 % intervals of the EER and of the TAR at ``far_level`` by the bootstrap of :mod:`mifgsm_lib.intervals`:
    of the people where ``people`` gives each pair's two identities (left, right), so that a person's pairs are
    drawn together (:func:`mifgsm_lib.intervals.pair_weights`); else of the pairs (mated and non-mated pairs
    resampled separately)."""
    d, s = _as_distances_and_labels(distances, same)
    if people is None:
        weights = stratified_weights(s, n_boot, seed)
    else:
        left, right = (np.asarray(side) for side in people)
        if left.shape != s.shape or right.shape != s.shape:
            raise ValueError(f"people: expected two arrays of one identity per pair ({s.size}), got shapes "
                             f"{left.shape} and {right.shape}")
        counts, cluster = cluster_counts(np.concatenate([left, right]), n_boot, seed)
        weights = pair_weights(counts, cluster[: s.size], cluster[s.size:])
    far, tar = bootstrap_rates(d, s, weights)
    point_far, point_tar, _ = roc(d, s)
    return {"eer": basic_interval(_eer_from_curve(point_far, point_tar), eers(far, tar), bounds=PROPORTION),
            "tar_at_far": basic_interval(_tar_at_far_from_curve(point_far, point_tar, far_level),
                                         tars_at_far(far, tar, far_level), bounds=PROPORTION)}


def tars_at_far(far: np.ndarray, tar: np.ndarray, far_level: float = DEFAULT_FAR) -> np.ndarray:
    """:func:`tar_at_far` of each row of (B, T) ROC curves."""
    if not 0.0 < far_level <= 1.0:
        raise ValueError(f"far={far_level!r}: expected a false accept rate in (0, 1]")
    return np.where(far <= far_level, tar, -np.inf).max(axis=1)


def _fold_labels(folds: int | np.ndarray, n_pairs: int) -> np.ndarray:
    """Fold label per pair: an int k splits the pairs in k contiguous blocks (LFW's 10 sets)."""
    if isinstance(folds, (int, np.integer)):
        if not 2 <= folds <= n_pairs:
            raise ValueError(f"folds={folds}: expected an integer in [2, n_pairs={n_pairs}]")
        return np.repeat(np.arange(folds), [len(b) for b in np.array_split(np.arange(n_pairs), folds)])
    labels = np.asarray(folds)
    if labels.shape != (n_pairs,):
        raise ValueError(f"folds: expected an int or one fold label per pair ({n_pairs}), got shape {labels.shape}")
    if np.unique(labels).size < 2:
        raise ValueError("folds: expected at least 2 distinct fold labels")
    return labels


def _best_threshold(d: np.ndarray, s: np.ndarray) -> float:
    """The threshold maximising accuracy on (d, s), exactly, over every possible split.

    The candidates accept nothing, or every pair up to each distinct distance; the first
    (smallest) maximiser wins, and the threshold is put halfway to the next distance.
    """
    far, tar, thresholds = roc(d, s)
    n_genuine, n_impostor = s.sum(), (~s).sum()
    correct = tar * n_genuine + (1.0 - far) * n_impostor
    k = int(np.argmax(correct))
    if k == 0:
        return -np.inf
    if k == thresholds.size - 1:
        return np.inf
    return float(0.5 * (thresholds[k] + thresholds[k + 1]))


def tenfold_accuracy(
    distances: np.ndarray, same: np.ndarray, folds: int | np.ndarray = 10
) -> tuple[float, float, np.ndarray]:
    """LFW protocol accuracy ``(mean, std, per_fold)`` as insightface's verification code.

    For each fold, the threshold that maximises accuracy on the other folds is applied
    to it. Unlike insightface's fixed grid ``np.arange(0, 4, 0.01)`` (made for unit-norm
    templates), the maximiser is exact over all thresholds (:func:`_best_threshold`).
    ``std`` is the population standard deviation (``ddof=0``) of the per-fold accuracies,
    as insightface reports it. ``folds`` is an int (contiguous blocks, the order of
    ``pairs.txt``) or one fold label per pair.
    """
    d, s = _as_distances_and_labels(distances, same)
    labels = _fold_labels(folds, d.size)
    per_fold = []
    for fold in np.unique(labels):
        test = labels == fold
        if s[~test].all() or not s[~test].any():
            raise ValueError(f"folds: the training folds without fold {fold!r} hold only one kind of pair")
        threshold = _best_threshold(d[~test], s[~test])
        per_fold.append(float(np.mean((d[test] <= threshold) == s[test])))
    per_fold_arr = np.asarray(per_fold)
    return float(per_fold_arr.mean()), float(per_fold_arr.std()), per_fold_arr


@dataclass(frozen=True)
class VerificationReport:
    """Verification of one set of templates on its pairs; fractions, not percentages."""

    accuracy_mean: float
    accuracy_std: float
    accuracy_per_fold: tuple[float, ...]
    eer: float
    tar_at_far: float
    far_level: float
    n_pairs: int
    n_genuine: int
    n_impostor: int
    convention: str = EER_CONVENTION
    far: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False, compare=False)
    tar: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False, compare=False)

    def as_dict(self) -> dict[str, Any]:
        """The scalar results (not the ROC arrays), JSON-serialisable."""
        return {
            "accuracy_mean": self.accuracy_mean,
            "accuracy_std": self.accuracy_std,
            "accuracy_per_fold": list(self.accuracy_per_fold),
            "eer": self.eer,
            "tar_at_far": self.tar_at_far,
            "far_level": self.far_level,
            "n_pairs": self.n_pairs,
            "n_genuine": self.n_genuine,
            "n_impostor": self.n_impostor,
            "convention": self.convention,
        }


def verify(
    templates: np.ndarray,
    pairs_left: np.ndarray,
    pairs_right: np.ndarray,
    same: np.ndarray,
    folds: int | np.ndarray = 10,
    far: float = DEFAULT_FAR,
) -> VerificationReport:
    """Run the LFW protocol on template pairs: 10-fold accuracy, EER and TAR@FAR."""
    if np.shape(same) != np.shape(pairs_left):
        raise ValueError(f"same: expected one label per pair ({np.size(pairs_left)}), got shape {np.shape(same)}")
    distances = pair_distances(templates, pairs_left, pairs_right)
    d, s = _as_distances_and_labels(distances, same)
    mean, std, per_fold = tenfold_accuracy(d, s, folds)
    roc_far, roc_tar, _ = roc(d, s)
    return VerificationReport(
        accuracy_mean=mean,
        accuracy_std=std,
        accuracy_per_fold=tuple(per_fold.tolist()),
        eer=_eer_from_curve(roc_far, roc_tar),
        tar_at_far=_tar_at_far_from_curve(roc_far, roc_tar, far),
        far_level=float(far),
        n_pairs=int(d.size),
        n_genuine=int(s.sum()),
        n_impostor=int((~s).sum()),
        far=roc_far,
        tar=roc_tar,
    )
