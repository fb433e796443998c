"""The bootstrap intervals of the headline numbers: weights, coverage at the nominal rate, paired differences,
decisions, and the intervals that :func:`mifgsm_lib.evaluation.measure` attaches to every number."""

from __future__ import annotations

import numpy as np
import pytest

from mifgsm_lib import evaluation, intervals, verification
from mifgsm_lib.data.pairs import Pairs


def test_cluster_weights_draw_whole_clusters() -> None:
    groups = np.array([7, 7, 7, 3, 3, 9])
    w = intervals.cluster_weights(groups, n_boot=200, seed=1)
    assert w.shape == (200, 6)
    assert (w[:, 0] == w[:, 1]).all() and (w[:, 1] == w[:, 2]).all() and (w[:, 3] == w[:, 4]).all()
    per_cluster = w[:, [0, 3, 5]]
    assert (per_cluster.sum(axis=1) == 3).all()  # three clusters drawn with replacement


def test_stratified_weights_keep_every_stratum_size() -> None:
    same = np.array([True] * 5 + [False] * 3)
    w = intervals.stratified_weights(same, n_boot=100, seed=0)
    assert (w[:, same].sum(axis=1) == 5).all() and (w[:, ~same].sum(axis=1) == 3).all()


def test_accuracy_interval_covers_the_truth_at_the_nominal_rate() -> None:
    """1,000 repeats of a Bernoulli accuracy (p = 0.8, 300 images of one image per person): the 95 % interval
    covers p in 93-97 % of the repeats."""
    rng = np.random.default_rng(0)
    p, n, repeats = 0.8, 300, 1000
    covered = 0
    for r in range(repeats):
        correct = (rng.random(n) < p).astype(np.float64)
        weights = intervals.cluster_weights(np.arange(n), n_boot=400, seed=r)
        interval = intervals.basic_interval(correct.mean(), intervals.weighted_accuracy(correct, weights))
        covered += interval.contains(p)
    assert 0.93 <= covered / repeats <= 0.97


def test_clustered_data_need_cluster_resampling() -> None:
    """With 5 images per person and a person-level effect, resampling images understates the spread; resampling
    people covers at the nominal rate."""
    rng = np.random.default_rng(3)
    people, per = 80, 5
    groups = np.repeat(np.arange(people), per)
    covered = {"people": 0, "images": 0}
    for r in range(400):
        ability = rng.random(people) < 0.7  # each person is classified right or wrong as a whole, mostly
        correct = np.where(rng.random(people * per) < 0.9, ability[groups], ~ability[groups]).astype(float)
        truth = 0.7 * 0.9 + 0.3 * 0.1
        for unit, g in (("people", groups), ("images", np.arange(people * per))):
            w = intervals.cluster_weights(g, n_boot=300, seed=r)
            covered[unit] += intervals.basic_interval(correct.mean(), intervals.weighted_accuracy(correct, w)).contains(truth)
    assert 0.91 <= covered["people"] / 400 <= 0.98
    assert covered["images"] / 400 < 0.8


def test_weighted_balanced_accuracy_is_the_balanced_accuracy_at_unit_weights() -> None:
    from sklearn.metrics import balanced_accuracy_score

    rng = np.random.default_rng(1)
    y, pred = rng.integers(0, 3, 50), rng.integers(0, 3, 50)
    got = intervals.weighted_balanced_accuracy(y, pred, np.ones((1, 50)))[0]
    assert got == pytest.approx(balanced_accuracy_score(y, pred))


@pytest.mark.parametrize(("low", "high", "verdict"), [(0.01, 0.03, "holds"), (-0.03, -0.01, "does not hold"),
                                                      (-0.01, 0.02, "undecided at this size"),
                                                      (float("nan"), 0.1, "undecided at this size")])
def test_decide_from_an_interval(low: float, high: float, verdict: str) -> None:
    assert intervals.decide(intervals.Interval(0.0, low, high)) == verdict


def test_measure_gives_every_number_an_interval_and_paired_differences() -> None:
    rng = np.random.default_rng(0)
    people, per = 60, 4
    identity = np.repeat(np.arange(people), per)
    gender = np.repeat(np.arange(people) % 2, per)
    base = rng.normal(size=(people, 8))[identity] + rng.normal(scale=0.9, size=(people * per, 8))
    base[:, 0] += 4.0 * (gender - 0.5)
    left, right, same = [], [], []
    for k in range(people):
        left.append(k * per), right.append(k * per + 1), same.append(True)
        left.append(k * per), right.append(((k + 1) % people) * per), same.append(False)
    pairs = Pairs(np.array(left), np.array(right), np.array(same), np.arange(len(left)) % 10)
    target = evaluation.EvaluationSet("toy", np.arange(len(base)), gender, identity, pairs)
    blurred = base.copy()
    blurred[:, 0] = rng.normal(size=len(base))  # gender removed
    sets = {evaluation.REFERENCE: base, evaluation.SetKey("erase", "step", 1.0): blurred}
    replicates: dict = {}
    frame = evaluation.measure(sets, target, n_jobs=1, n_boot=300, replicates=replicates)
    for metric in ("setting_b", "eer", "tar_at_far", "pic"):
        assert (frame[f"{metric}_low"] <= frame[metric] + 1e-12).all() and (frame[metric] <= frame[f"{metric}_high"] + 1e-12).all()
    assert frame.loc[0, "setting_b_low"] > 0.8 and frame.loc[1, "setting_b_high"] < frame.loc[0, "setting_b_low"]
    gain = evaluation.paired_difference(frame, replicates, evaluation.REFERENCE, evaluation.SetKey("erase", "step", 1.0),
                                        "setting_b")
    assert gain.estimate == pytest.approx(frame.loc[0, "setting_b"] - frame.loc[1, "setting_b"])
    assert intervals.decide(gain) == "holds"
    eer = verification.eer(verification.pair_distances(base, pairs.left, pairs.right), pairs.same)
    assert frame.loc[0, "eer"] == eer
    with pytest.raises(ValueError, match="no measured row"):
        evaluation.paired_difference(frame, replicates, evaluation.REFERENCE, evaluation.SetKey("x", "y", 0.0), "eer")


def test_pair_weights_draw_people() -> None:
    counts = np.array([[2.0, 0.0, 1.0], [0.0, 3.0, 1.0]])  # two replicates of three people
    left, right = np.array([0, 1, 0, 2]), np.array([0, 1, 1, 2])  # mated 0, mated 1, non-mated 0-1, mated 2
    w = intervals.pair_weights(counts, left, right)
    np.testing.assert_array_equal(w, [[2.0, 0.0, 0.0, 1.0], [0.0, 3.0, 0.0, 1.0]])
    w = intervals.pair_weights(counts, np.array([0, 2]), np.array([2, 1]))  # non-mated: the product
    np.testing.assert_array_equal(w, [[2.0, 0.0], [0.0, 3.0]])


def _pairs_of_people(rng: np.random.Generator, people: int, per: int, spread: float) -> tuple[np.ndarray, ...]:
    """``per`` mated and ``per`` non-mated pairs per person; each person's distances shifted by one draw of
    ``spread`` (a person hard or easy to verify): (distances, same, left person, right person)."""
    shift = rng.normal(0.0, spread, people)
    owner = np.repeat(np.arange(people), per)
    other = (owner + 1 + rng.integers(0, people - 1, owner.size)) % people
    mated = rng.normal(0.4, 0.1, owner.size) + shift[owner]
    non_mated = rng.normal(0.9, 0.1, owner.size) + (shift[owner] + shift[other]) / 2
    same = np.r_[np.ones(owner.size, bool), np.zeros(owner.size, bool)]
    return np.r_[mated, non_mated], same, np.r_[owner, owner], np.r_[owner, other]


def _width_ratio(spread: float) -> float:
    """The width of the EER's people-bootstrap interval over the pair bootstrap's, on pairs of 100 people."""
    d, same, left, right = _pairs_of_people(np.random.default_rng(5), people=100, per=6, spread=spread)
    by_pairs = verification.rate_intervals(d, same, n_boot=400, seed=1)["eer"]
    by_people = verification.rate_intervals(d, same, n_boot=400, seed=1, people=(left, right))["eer"]
    assert by_people.estimate == by_pairs.estimate == verification.eer(d, same)
    return (by_people.high - by_people.low) / (by_pairs.high - by_pairs.low)


def test_the_eer_interval_draws_people_and_widens_where_their_pairs_are_alike() -> None:
    """Where a person's pairs share that person's difficulty, a bootstrap of the pairs understates the EER's spread:
    the people's interval is much wider. Where they share nothing, it is still somewhat wider, never narrower (the
    pigeonhole bootstrap's product weights over-state the noise of the non-mated pairs: conservative)."""
    clustered, independent = _width_ratio(0.3), _width_ratio(0.0)
    assert clustered > 1.6, clustered
    assert 1.0 <= independent < 1.6 and clustered > independent + 0.3, (clustered, independent)
    d, same, left, right = _pairs_of_people(np.random.default_rng(5), people=100, per=6, spread=0.0)
    with pytest.raises(ValueError, match="people: expected two arrays of one identity per pair"):
        verification.rate_intervals(d, same, people=(left[:3], right))


def test_an_evaluation_set_draws_its_people_once_for_images_and_pairs() -> None:
    """Setting A/B's image weights and the EER's pair weights come from one draw of the people, so that a difference
    between metrics (PIC) or between settings (B+ against B) is bootstrapped paired."""
    identity = np.array(["ann", "ann", "bob", "bob", "cy", "cy"])
    pairs = Pairs(left=np.array([0, 2, 0, 1]), right=np.array([1, 3, 2, 4]), same=np.array([True, True, False, False]),
                  fold=np.array([0, 0, 1, 1]))
    target = evaluation.EvaluationSet("toy", np.arange(6), np.array([0, 0, 1, -1, 1, 0]), identity, pairs)
    images, pair = target.bootstrap_weights(n_boot=50, seed=3)
    assert images.shape == (50, 5) and pair.shape == (50, 4)  # the unlabelled image (bob's second) is left out
    np.testing.assert_array_equal(pair[:, 0], images[:, 0])  # ann's mated pair: ann's count
    np.testing.assert_array_equal(pair[:, 1], images[:, 2])  # bob's mated pair: bob's count
    np.testing.assert_array_equal(pair[:, 2], images[:, 0] * images[:, 2])  # ann with bob: the product
    np.testing.assert_array_equal(pair[:, 3], images[:, 0] * images[:, 3])  # ann with cy
    without_pairs = evaluation.EvaluationSet("toy", np.arange(6), np.zeros(6), identity).bootstrap_weights()
    assert without_pairs[1] is None and without_pairs[0].shape == (intervals.N_BOOT, 6)


def test_a_proportions_interval_stays_in_its_range() -> None:
    """The basic interval reflects skewed replicates about the estimate: near 100 % it can pass 1 (a TAR set by a
    few impostor pairs, a setting B near its ceiling); a proportion's bounds keep it in [0, 1]."""
    skewed = np.r_[np.full(900, 0.99), np.linspace(0.5, 0.9, 100)]  # mostly at the estimate, a long lower tail
    free = intervals.basic_interval(0.98, skewed)
    assert free.high > 1.0
    kept = intervals.basic_interval(0.98, skewed, bounds=intervals.PROPORTION)
    assert kept.high == 1.0 and kept.low == free.low and kept.estimate == 0.98
    d, same, left, right = _pairs_of_people(np.random.default_rng(5), people=100, per=6, spread=0.3)
    for interval in verification.rate_intervals(d, same, n_boot=200, people=(left, right)).values():
        assert 0.0 <= interval.low <= interval.high <= 1.0


def _toy_target(people: int = 60, per: int = 4, seed: int = 0) -> tuple[evaluation.EvaluationSet, np.ndarray]:
    rng = np.random.default_rng(seed)
    identity = np.repeat(np.arange(people), per)
    gender = np.repeat(np.arange(people) % 2, per)
    z = rng.normal(size=(people, 8))[identity] + rng.normal(scale=0.9, size=(people * per, 8))
    z[:, 0] += 1.5 * (gender - 0.5)
    return evaluation.EvaluationSet("toy", np.arange(len(z)), gender, identity), z


def test_halves_keep_people_whole_split_each_class_and_leave_out_the_unlabelled() -> None:
    target, _ = _toy_target()
    labels = target.labels.copy()
    labels[:4] = -1  # the first person's images have no label
    target = evaluation.EvaluationSet("toy", target.indices, labels, target.identity)
    half = target.halves(seed=3)
    assert (half[:4] == -1).all() and set(half[4:]) == {0, 1}
    for person in np.unique(target.identity[4:]):
        assert len(set(half[target.identity == person])) == 1  # a person is in one half
    for cls in (0, 1):
        counts = np.bincount(half[labels == cls], minlength=2)
        assert abs(counts[0] - counts[1]) <= 4  # each class split evenly, to one person
    np.testing.assert_array_equal(half, target.halves(seed=3))  # seeded
    report, rows = target.half(1, seed=3)
    np.testing.assert_array_equal(report.indices, target.indices[half == 1])
    assert report.pairs is None and len(rows) == int((half == 1).sum())
    with pytest.raises(ValueError, match="part=2"):
        target.half(2)


def test_setting_b_on_each_half_reads_the_same_out_of_fold_predictions() -> None:
    from sklearn.metrics import balanced_accuracy_score

    from mifgsm_lib.evaluation.settings import setting_b_sweep

    target, z = _toy_target()
    sets = {evaluation.REFERENCE: z}
    replicates: dict = {}
    frame = evaluation.measure(sets, target, n_jobs=1, n_boot=200, replicates=replicates, halves=True)
    result = setting_b_sweep({"z": z}, target.labels, target.identity, n_jobs=1, progress=False)["z"]
    half = target.halves()
    for part, column in enumerate(("setting_b_choose", "setting_b_report")):
        inside = half == part
        expected = np.mean([balanced_accuracy_score(target.labels[inside], pred[inside])
                            for pred in result.predictions.values()])
        assert frame.loc[0, column] == pytest.approx(expected)
        assert replicates[evaluation.REFERENCE][column].shape == (200,)
    assert frame.loc[0, "setting_b_report_low"] <= frame.loc[0, "setting_b_report"] <= frame.loc[0, "setting_b_report_high"]
    assert "setting_b_choose" not in evaluation.measure(sets, target, n_jobs=1, n_boot=20)  # only when asked
