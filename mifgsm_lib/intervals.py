"""95 % intervals of the book's headline numbers, by bootstrap, and decisions drawn from them.

Every interval here comes from one procedure, the nonparametric bootstrap with resampling weights
(Efron and Tibshirani, 1993, ch. 13): each of ``n_boot`` replicates draws the sampling units with replacement, a
unit's weight being how many times it was drawn, and recomputes the statistic with those weights. The interval is
the *basic* bootstrap interval ``[2θ̂ - q_hi, 2θ̂ - q_lo]`` of the replicates' quantiles, shifted onto the point
estimate θ̂ the book reports (for setting B, the mean over folds; the replicates use the pooled out-of-fold
predictions).

The sampling unit is what is independent:

- setting A and setting B: the **identity** (a person's images are drawn together; UTKFace, without identities,
  draws images), on the out-of-fold predictions of the cross-validation (so the interval covers the sampling of
  the test images, not the retraining of the classifiers);
- the EER and TAR at FAR: the **person** where the pairs' people are known (:func:`pair_weights`: every pair of a
  person drawn k times counts k times, a non-mated pair the product of its two people's counts), else the
  **verification pair**, mated and non-mated pairs drawn separately.

Differences between two methods (the paper's claims) are bootstrapped *paired*: the same weights for both, so
that what the two sets share cancels. :func:`decide` turns a difference's interval into *holds*, *does not hold*
or *undecided at this size*.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: The confidence level of every interval of the book.
LEVEL = 0.95
#: Bootstrap replicates per interval.
N_BOOT = 1000


@dataclass(frozen=True)
class Interval:
    """A point estimate and its interval at ``level``."""

    estimate: float
    low: float
    high: float
    level: float = LEVEL

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high

    def __str__(self) -> str:
        return f"{self.estimate:.4g} [{self.low:.4g}, {self.high:.4g}]"


def cluster_counts(groups: np.ndarray, n_boot: int = N_BOOT, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """How many times each cluster of ``groups`` (one label per unit) is drawn in each of ``n_boot`` resamplings of
    the clusters with replacement: ``(counts, cluster)``, counts (n_boot, n_clusters) and each unit's cluster
    index (n,)."""
    _, cluster = np.unique(np.asarray(groups), return_inverse=True)
    n_clusters = int(cluster.max()) + 1
    draws = np.random.default_rng(seed).integers(0, n_clusters, size=(n_boot, n_clusters))
    counts = np.zeros((n_boot, n_clusters))
    np.add.at(counts, (np.arange(n_boot)[:, None], draws), 1.0)
    return counts, cluster


def cluster_weights(groups: np.ndarray, n_boot: int = N_BOOT, seed: int = 0) -> np.ndarray:
    """Bootstrap weights (n_boot, n) that resample the clusters ``groups`` (one label per unit) with replacement:
    every unit of a cluster drawn k times gets weight k."""
    counts, cluster = cluster_counts(groups, n_boot, seed)
    return counts[:, cluster]


def pair_weights(counts: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Bootstrap weights (n_boot, n_pairs) of verification pairs from a resampling of the *people*: ``counts``
    (n_boot, n_people) of :func:`cluster_counts`, ``left``/``right`` each pair's two people (indices into it).

    A mated pair (one person) weighs as often as its person was drawn; a non-mated pair weighs the product of its two
    people's counts, as the pigeonhole bootstrap weighs a cell of two crossed factors (Owen, 2007, *Ann. Appl.
    Stat.* 1(1)). A person's pairs are so drawn together: the pairs of one person are not independent, and a pair
    bootstrap understates the spread of the EER. The product over-states the noise of the non-mated pairs where
    people share nothing, so the interval errs on the wide side (conservative)."""
    left, right = np.asarray(left), np.asarray(right)
    return np.where(left == right, counts[:, left], counts[:, left] * counts[:, right])


def stratified_weights(strata: np.ndarray, n_boot: int = N_BOOT, seed: int = 0) -> np.ndarray:
    """Bootstrap weights (n_boot, n) that resample the units within each stratum (e.g. mated and non-mated pairs)
    with replacement, keeping every stratum's size."""
    strata = np.asarray(strata)
    rng = np.random.default_rng(seed)
    weights = np.zeros((n_boot, len(strata)))
    for value in np.unique(strata):
        members = np.flatnonzero(strata == value)
        draws = rng.integers(0, len(members), size=(n_boot, len(members)))
        counts = np.zeros((n_boot, len(members)))
        np.add.at(counts, (np.arange(n_boot)[:, None], draws), 1.0)
        weights[:, members] = counts
    return weights


#: The range of a proportion (an accuracy, a rate): the bounds its intervals are kept in.
PROPORTION = (0.0, 1.0)


def basic_interval(estimate: float, replicates: np.ndarray, centre: float | None = None,
                   level: float = LEVEL, bounds: tuple[float, float] | None = None) -> Interval:
    """The basic bootstrap interval of ``estimate`` from ``replicates`` of a statistic whose full-sample value is
    ``centre`` (default: ``estimate``): ``estimate - (quantiles - centre)``, reversed. The basic interval reflects
    the replicates about the estimate, so for a skewed statistic near the end of its range (an accuracy near 100 %,
    a TAR set by a few impostor pairs) it can leave the range: ``bounds`` (:data:`PROPORTION` for a proportion) keep
    it there."""
    reps = np.asarray(replicates, dtype=np.float64)
    reps = reps[np.isfinite(reps)]
    if reps.size == 0:
        return Interval(float(estimate), float("nan"), float("nan"), level)
    centre = estimate if centre is None else centre
    lo, hi = np.quantile(reps - centre, [(1 - level) / 2, (1 + level) / 2])
    low, high = float(estimate - hi), float(estimate - lo)
    if bounds is not None:
        low, high = float(np.clip(low, *bounds)), float(np.clip(high, *bounds))
    return Interval(float(estimate), low, high, level)


def weighted_accuracy(correct: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Accuracy of 0/1 ``correct`` (n,) under each row of ``weights`` (B, n)."""
    return (weights @ correct) / weights.sum(axis=1)


def weighted_balanced_accuracy(y: np.ndarray, pred: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Balanced accuracy (the mean over classes of the recall) of ``pred`` against ``y`` under each row of
    ``weights``; classes absent from a replicate are left out of its mean."""
    y, correct = np.asarray(y), (np.asarray(pred) == np.asarray(y)).astype(np.float64)
    recalls = []
    for c in np.unique(y):
        member = (y == c).astype(np.float64)
        total = weights @ member
        with np.errstate(invalid="ignore", divide="ignore"):
            recalls.append(np.where(total > 0, (weights @ (member * correct)) / total, np.nan))
    return np.nanmean(np.stack(recalls), axis=0)


def decide(difference: Interval, margin: float = 0.0) -> str:
    """A claim "the difference is above ``margin``" decided from its interval: *holds* when the whole interval is
    above, *does not hold* when it is entirely at or below, *undecided at this size* when it straddles."""
    if not (np.isfinite(difference.low) and np.isfinite(difference.high)):
        return "undecided at this size"
    if difference.low > margin:
        return "holds"
    if difference.high <= margin:
        return "does not hold"
    return "undecided at this size"
