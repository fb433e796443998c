"""Verification on pairs (paper Sec. 6.3): distances, ROC, EER, TAR@FAR, 10-fold accuracy, report."""

from __future__ import annotations

import json

import matplotlib
import numpy as np
import pytest
from scipy.optimize import brentq
from scipy.stats import norm
from sklearn.metrics import roc_curve

from mifgsm_lib.figures.verification import plot_det, plot_roc
from mifgsm_lib.verification import (
    EER_CONVENTION,
    VerificationReport,
    eer,
    pair_distances,
    roc,
    tar_at_far,
    tenfold_accuracy,
    verify,
)

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def random_pairs(seed: int, n: int = 400, ties: bool = False) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    same = rng.random(n) < 0.5
    d = rng.normal(loc=np.where(same, 0.8, 1.2), scale=0.25)
    if ties:  # few distinct values: many ROC points carry several pairs of both kinds
        d = np.round(d, 1)
    return d, same


def eer_by_brentq(distances: np.ndarray, same: np.ndarray) -> float:
    """Independent EER: sklearn's ROC points, FAR - FRR along the polyline, root by brentq."""
    fpr, tpr, _ = roc_curve(same.astype(int), -distances, drop_intermediate=False)
    s = np.arange(fpr.size, dtype=float)
    gap = lambda t: np.interp(t, s, fpr) - (1 - np.interp(t, s, tpr))  # noqa: E731
    root = brentq(gap, 0.0, s[-1], xtol=1e-12)
    return float(np.interp(root, s, fpr))


def far_frr_brute_force(distances: np.ndarray, same: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """FAR and FRR computed directly at every threshold (each distinct distance and -inf)."""
    thresholds = np.r_[-np.inf, np.unique(distances)]
    far = np.array([np.mean(distances[~same] <= t) for t in thresholds])
    frr = np.array([np.mean(distances[same] > t) for t in thresholds])
    return far, frr


# --- distances ------------------------------------------------------------------------------


def test_pair_distances_are_euclidean():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(6, 4))
    left, right = np.array([0, 1, 5]), np.array([2, 1, 3])
    expected = [np.sqrt(np.sum((z[a] - z[b]) ** 2)) for a, b in zip(left, right)]
    np.testing.assert_allclose(pair_distances(z, left, right), expected)


def test_pair_distances_bad_input():
    z = np.zeros((4, 3))
    with pytest.raises(ValueError, match="pairs_right: index out of range"):
        pair_distances(z, np.array([0]), np.array([4]))
    with pytest.raises(ValueError, match="pairs_left: index out of range"):
        pair_distances(z, np.array([-1]), np.array([0]))
    with pytest.raises(ValueError, match="pairs_left and pairs_right: expected the same length"):
        pair_distances(z, np.array([0, 1]), np.array([0]))
    with pytest.raises(ValueError, match="integer template indices"):
        pair_distances(z, np.array([0.0]), np.array([1.0]))
    z[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"templates: expected finite values, rows \[2\]"):
        pair_distances(z, np.array([0]), np.array([1]))
    with pytest.raises(ValueError, match="templates: expected a 2-D array"):
        pair_distances(np.zeros(4), np.array([0]), np.array([1]))


# --- ROC, EER, TAR@FAR --------------------------------------------------------------------


@pytest.mark.parametrize("ties", [False, True])
def test_roc_matches_sklearn(ties):
    d, same = random_pairs(1, ties=ties)
    far, tar, thresholds = roc(d, same)
    fpr, tpr, sk_thresholds = roc_curve(same.astype(int), -d, drop_intermediate=False)
    np.testing.assert_allclose(far, fpr)
    np.testing.assert_allclose(tar, tpr)
    np.testing.assert_allclose(thresholds[1:], -sk_thresholds[1:])
    assert thresholds[0] == -np.inf and far[-1] == tar[-1] == 1.0


def test_eer_hand_computed():
    # mated 1, 2, 3, 4; non-mated 2.5, 5, 6, 7: at t = 3, FAR = FRR = 1/4
    d = np.array([1, 2, 3, 4, 2.5, 5, 6, 7], dtype=float)
    same = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    assert eer(d, same) == pytest.approx(0.25)
    assert eer(np.ones(8), same) == pytest.approx(0.5)  # one tie: the diagonal of the ROC square
    assert eer(np.r_[np.zeros(4), np.ones(4)], same) == 0.0  # separable


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("ties", [False, True])
def test_eer_equals_independent_computations(seed, ties):
    d, same = random_pairs(seed, ties=ties)
    value = eer(d, same)
    assert value == pytest.approx(eer_by_brentq(d, same), abs=1e-9)
    far, frr = far_frr_brute_force(d, same)
    assert np.max(np.minimum(far, frr)) - 1e-12 <= value <= np.min(np.maximum(far, frr)) + 1e-12
    assert value == pytest.approx(np.min(np.maximum(far, frr)), abs=0.05)


def test_tar_at_far():
    # non-mated 0.5, 2, 3, 4 -> accepting up to t < 2 gives FAR = 1/4
    d = np.array([0.2, 1.0, 1.5, 2.5, 0.5, 2, 3, 4])
    same = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    assert tar_at_far(d, same, far=0.25) == 0.75
    assert tar_at_far(d, same, far=0.1) == 0.25
    assert tar_at_far(d, same, far=1.0) == 1.0
    with pytest.raises(ValueError, match=r"far=0: expected a false accept rate in \(0, 1\]"):
        tar_at_far(d, same, far=0)


def test_curve_bad_input():
    with pytest.raises(ValueError, match="both mated"):
        eer(np.arange(4.0), np.ones(4, dtype=bool))
    with pytest.raises(ValueError, match="distances and same: expected the same length"):
        roc(np.arange(4.0), np.array([0, 1, 0]))
    with pytest.raises(ValueError, match="same: expected booleans or 0/1"):
        roc(np.arange(3.0), np.array([0, 2, 1]))
    with pytest.raises(ValueError, match="distances: expected finite values"):
        roc(np.array([0.0, np.nan]), np.array([0, 1]))


# --- 10-fold accuracy ---------------------------------------------------------------------


def constructed_folds() -> tuple[np.ndarray, np.ndarray]:
    """10 folds of 10 mated (d in 0.1..0.9) and 10 non-mated (d in 1.1..1.9) pairs, folds in order.

    Fold 0 is different: its mated pairs are at 1.05 and its non-mated at 1.95. Trained on
    folds 1-9, the threshold falls at 1.0 and rejects fold 0's mated pairs (accuracy 0.5);
    trained with fold 0, it moves to 1.075 and every other fold is classified perfectly.
    """
    genuine = np.linspace(0.1, 0.9, 10)
    impostor = np.linspace(1.1, 1.9, 10)
    d = np.tile(np.r_[genuine, impostor], 10)
    d[:10], d[10:20] = 1.05, 1.95
    same = np.tile(np.r_[np.ones(10), np.zeros(10)], 10).astype(bool)
    return d, same


def test_tenfold_accuracy_threshold_comes_from_the_other_folds():
    d, same = constructed_folds()
    mean, std, per_fold = tenfold_accuracy(d, same, folds=10)
    np.testing.assert_allclose(per_fold, [0.5] + [1.0] * 9)
    assert mean == pytest.approx(0.95)
    assert std == pytest.approx(np.std([0.5] + [1.0] * 9))
    labels = np.repeat(np.arange(10), 20)
    assert tenfold_accuracy(d, same, folds=labels)[0] == mean


def test_tenfold_accuracy_one_error():
    d, same = constructed_folds()
    d[:10], d[10:20] = 0.5, 1.5
    d[3 * 20 + 15] = 0.45  # one non-mated pair of fold 3 below every threshold
    mean, std, per_fold = tenfold_accuracy(d, same, folds=10)
    expected = [1.0] * 10
    expected[3] = 19 / 20
    np.testing.assert_allclose(per_fold, expected)
    assert mean == pytest.approx(0.995)


def test_tenfold_accuracy_bad_folds():
    d, same = constructed_folds()
    with pytest.raises(ValueError, match=r"folds=1: expected an integer in \[2, n_pairs=200\]"):
        tenfold_accuracy(d, same, folds=1)
    with pytest.raises(ValueError, match="folds=500"):
        tenfold_accuracy(d, same, folds=500)
    with pytest.raises(ValueError, match="one fold label per pair"):
        tenfold_accuracy(d, same, folds=np.zeros(10))
    with pytest.raises(ValueError, match="at least 2 distinct fold labels"):
        tenfold_accuracy(d, same, folds=np.zeros(200))


# --- verify -------------------------------------------------------------------------------


def synthetic_identities(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """40 identities x 3 images in 8-D; 300 mated and 300 non-mated pairs."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(40, 8))
    ids = np.repeat(np.arange(40), 3)
    templates = centres[ids] + 0.35 * rng.normal(size=(120, 8))
    left, right, same = [], [], []
    while len(same) < 600:
        a, b = rng.integers(0, 120, size=2)
        mated = len(same) % 2 == 0
        if a != b and (ids[a] == ids[b]) == mated:
            left.append(a)
            right.append(b)
            same.append(mated)
    return templates, np.array(left), np.array(right), np.array(same)


def test_verify_report():
    templates, left, right, same = synthetic_identities()
    report = verify(templates, left, right, same, folds=10)
    d = pair_distances(templates, left, right)
    assert report.eer == eer(d, same)
    assert report.tar_at_far == tar_at_far(d, same, 1e-3)
    assert report.accuracy_mean == tenfold_accuracy(d, same, 10)[0]
    assert (report.n_pairs, report.n_genuine, report.n_impostor) == (600, 300, 300)
    assert 0.8 < report.accuracy_mean <= 1.0 and report.eer < 0.2
    assert report.convention == EER_CONVENTION
    payload = json.loads(json.dumps(report.as_dict()))
    assert payload["eer"] == report.eer and len(payload["accuracy_per_fold"]) == 10
    assert "far" not in payload


def test_verify_bad_input():
    templates, left, right, same = synthetic_identities()
    with pytest.raises(ValueError, match="same: expected one label per pair"):
        verify(templates, left, right, same[:-1])
    with pytest.raises(ValueError, match="pairs_left and pairs_right: expected the same length"):
        verify(templates, left, right[:-1], same)
    bad = templates.copy()
    bad[left[0], 0] = np.nan
    with pytest.raises(ValueError, match="templates: expected finite values"):
        verify(bad, left, right, same)
    with pytest.raises(ValueError, match="pairs_left: index out of range"):
        verify(templates, np.r_[left[:-1], 120], right, same)
    with pytest.raises(ValueError, match="folds=0"):
        verify(templates, left, right, same, folds=0)


# --- plots --------------------------------------------------------------------------------


def test_plots_draw_the_roc_and_det_curves():
    templates, left, right, same = synthetic_identities()
    report = verify(templates, left, right, same)
    fig, (ax_roc, ax_det) = plt.subplots(1, 2)
    plot_roc(ax_roc, {"synthetic": report, "chance": (np.array([0.0, 1.0]), np.array([0.0, 1.0]))})
    np.testing.assert_allclose(ax_roc.lines[0].get_ydata(), report.tar)
    assert ax_roc.get_xscale() == "log" and len(ax_roc.lines) == 2
    plot_det(ax_det, {"synthetic": report}, floor=1e-3)
    x, y = ax_det.lines[0].get_xdata(), ax_det.lines[0].get_ydata()
    np.testing.assert_allclose(x, norm.ppf(np.clip(report.far, 1e-3, 1 - 1e-3)))
    np.testing.assert_allclose(y, norm.ppf(np.clip(1 - report.tar, 1e-3, 1 - 1e-3)))
    assert isinstance(report, VerificationReport)
    plt.close(fig)
