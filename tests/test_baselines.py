"""Tests of IVE and Multi-IVE (Sec. 6.3): elimination counts, seeds, which dimensions go, locks, sklearn API."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from mifgsm_lib.baselines import IVE, MultiIVE, incremental_variable_elimination

GENDER_DIMS = (3, 7, 11)


@pytest.fixture(scope="module")
def templates() -> tuple[np.ndarray, np.ndarray]:
    """Synthetic 20-d templates: gender shifts dimensions 3, 7 and 11 only, the rest is noise."""
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 150)
    X = rng.normal(size=(300, 20))
    X[:, list(GENDER_DIMS)] += np.where(y == 1, 1.5, -1.5)[:, None]
    return X, y


@pytest.fixture(scope="module")
def gender_on_first_pc() -> tuple[np.ndarray, np.ndarray]:
    """Synthetic 8-d templates whose largest-variance direction, before and after standardising each dimension, is
    gender (shared by four dimensions): it becomes principal component 0."""
    rng = np.random.default_rng(1)
    y = np.repeat([0, 1], 100)
    X = rng.normal(size=(200, 8))
    X[:, :4] += np.where(y == 1, 2.0, -2.0)[:, None]
    return X, y


def fast(cls, **params):
    return cls(n_estimators=10, random_state=0, progress=False, **params)


# --- IVE -------------------------------------------------------------------------------------------


def test_ive_removes_n_per_step_dimensions_per_step(templates):
    X, y = templates
    ive = fast(IVE, n_per_step=2, n_steps=4).fit(X, y)
    assert ive.n_steps_fitted_ == 4
    assert [len(step) for step in ive.eliminated_] == [2, 2, 2, 2]
    gone = np.concatenate(ive.eliminated_)
    assert len(set(gone.tolist())) == 8
    np.testing.assert_array_equal(ive.kept_, np.setdiff1d(np.arange(20), gone))
    for k in range(5):
        assert ive.transform_at_step(X, k).shape == (300, 20 - 2 * k)
    np.testing.assert_array_equal(ive.transform_at_step(X, 0), X)
    np.testing.assert_array_equal(ive.transform(X), X[:, ive.kept_])
    np.testing.assert_array_equal(ive.transform_at_step(X, 4), ive.transform(X))


def test_ive_is_reproducible_with_a_seed(templates):
    X, y = templates
    first = IVE(n_per_step=3, n_steps=3, n_estimators=10, random_state=7, progress=False).fit(X, y)
    again = IVE(n_per_step=3, n_steps=3, n_estimators=10, random_state=7, progress=False).fit(X, y)
    for a, b in zip(first.eliminated_, again.eliminated_):
        np.testing.assert_array_equal(a, b)


def test_ive_eliminates_the_gender_dimensions_first(templates):
    X, y = templates
    one_by_one = fast(IVE, n_per_step=1, n_steps=3).fit(X, y)
    assert set(np.concatenate(one_by_one.eliminated_).tolist()) == set(GENDER_DIMS)
    at_once = fast(IVE, n_per_step=3, n_steps=1).fit(X, y)
    assert set(at_once.eliminated_[0].tolist()) == set(GENDER_DIMS)


def test_ive_lowers_gender_accuracy(templates):
    X, y = templates
    ive = fast(IVE, n_per_step=3, n_steps=1).fit(X, y)
    before = cross_val_score(LogisticRegression(), X, y, cv=3).mean()
    after = cross_val_score(LogisticRegression(), ive.transform(X), y, cv=3).mean()
    assert before > 0.95
    assert after < 0.7


def test_ive_in_a_pipeline_and_cross_validation(templates):
    X, y = templates
    pipe = make_pipeline(fast(IVE, n_per_step=2, n_steps=2), LogisticRegression())
    pipe.set_params(ive__n_per_step=1)
    assert clone(pipe).get_params()["ive__n_per_step"] == 1
    scores = cross_val_score(pipe, X, y, cv=3)
    assert scores.shape == (3,)
    assert pipe.fit(X, y)[0].transform(X).shape == (300, 18)


# --- Multi-IVE ---------------------------------------------------------------------------------------


def test_multi_ive_keeps_the_dimension_and_step_zero_is_the_input(templates):
    X, y = templates
    multi = fast(MultiIVE, n_locked=5, n_per_step=3, n_steps=4).fit(X, y)
    assert multi.transform(X).shape == X.shape
    np.testing.assert_allclose(multi.transform_at_step(X, 0), X, atol=1e-10)
    np.testing.assert_allclose(multi.transform_at_step(X, 4), multi.transform(X))
    assert [len(step) for step in multi.eliminated_] == [3, 3, 3, 3]


def test_multi_ive_leaves_locked_components_untouched(templates):
    X, y = templates
    multi = fast(MultiIVE, n_locked=5, n_per_step=3, n_steps=4).fit(X, y)
    gone = np.concatenate(multi.eliminated_)
    assert gone.min() >= 5
    Z_in = multi.to_domain(X)
    Z_out = multi.to_domain(multi.transform(X))
    np.testing.assert_allclose(Z_out[:, :5], Z_in[:, :5], atol=1e-10)
    np.testing.assert_allclose(Z_out[:, multi.kept_], Z_in[:, multi.kept_], atol=1e-10)
    np.testing.assert_allclose(Z_out[:, gone], 0.0, atol=1e-10)


def test_multi_ive_lock_protects_the_most_gendered_component(gender_on_first_pc):
    X, y = gender_on_first_pc
    unlocked = fast(MultiIVE, n_locked=0, n_per_step=1, n_steps=1).fit(X, y)
    locked = fast(MultiIVE, n_locked=1, n_per_step=1, n_steps=1).fit(X, y)
    assert unlocked.eliminated_[0].tolist() == [0]
    assert locked.eliminated_[0].tolist() != [0]


@pytest.mark.parametrize("standardize", [True, False])
def test_multi_ive_pca_output_distances_are_domain_distances_over_kept_components(templates, standardize):
    """PCA over all components is an isometry of the (standardised) template space: distances between the
    outputs, standardised as the input was, equal the domain distances over the kept components."""
    X, y = templates
    multi = fast(MultiIVE, n_locked=5, n_per_step=3, n_steps=4, standardize=standardize).fit(X, y)
    out = multi.transform(X[:20])
    if standardize:
        out = multi.scaler_.transform(out)
    Z = multi.to_domain(X[:20])[:, multi.kept_]
    d_out = np.linalg.norm(out[:, None] - out[None], axis=-1)
    d_dom = np.linalg.norm(Z[:, None] - Z[None], axis=-1)
    np.testing.assert_allclose(d_out, d_dom, atol=1e-10)


def test_multi_ive_equals_standardise_pca_zero_inverse_by_hand():
    """The released code's recipe, by hand on a small example: standardise with the training mean and standard
    deviation, project on the principal axes, zero the eliminated components, project back, undo the scaling."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(60, 4)) * np.array([1.0, 10.0, 0.1, 3.0]) + np.array([5.0, -2.0, 0.0, 1.0])
    X[:, 1] += 0.5 * X[:, 3]
    y = (X[:, 3] + rng.normal(size=60) > 1).astype(int)
    multi = fast(MultiIVE, n_locked=1, n_per_step=2, n_steps=1).fit(X, y)
    mean, std = X.mean(axis=0), X.std(axis=0)
    S = (X - mean) / std
    centre = S.mean(axis=0)
    _, _, vt = np.linalg.svd(S - centre, full_matrices=False)
    Z = (S - centre) @ vt.T
    gone = multi.eliminated_[0]
    assert 0 not in gone and len(gone) == 2
    Z[:, gone] = 0.0
    expected = (Z @ vt + centre) * std + mean
    np.testing.assert_allclose(multi.transform(X), expected, atol=1e-9)
    raw = fast(MultiIVE, n_locked=1, n_per_step=2, n_steps=1, standardize=False).fit(X, y)
    assert not np.allclose(raw.transform(X), expected)


# FastICA does not converge on Gaussian noise, which has no independent sources to find.
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_multi_ive_ica_domain(templates):
    X, y = templates
    multi = fast(MultiIVE, domain="ica", n_locked=0, n_per_step=2, n_steps=2).fit(X, y)
    assert multi.transform(X).shape == X.shape
    np.testing.assert_allclose(multi.transform_at_step(X, 0), X, atol=1e-8)


def test_elimination_function_is_shared_and_respects_locks(templates):
    X, y = templates
    steps = incremental_variable_elimination(
        X, y, n_per_step=2, n_steps=3, n_estimators=10, n_locked=12, random_state=0, progress=False
    )
    assert np.concatenate(steps).min() >= 12


# --- scikit-learn's estimator checks -------------------------------------------------------------------
# The checks use tiny data (down to 1 feature), so the instances eliminate one dimension in one step.
# Every check passes; none is marked as an expected failure.


@parametrize_with_checks(
    [
        IVE(n_per_step=1, n_steps=1, n_estimators=5, random_state=0, progress=False),
        MultiIVE(n_locked=1, n_per_step=1, n_steps=1, n_estimators=5, random_state=0, progress=False),
        MultiIVE(domain="ica", n_locked=0, n_per_step=1, n_steps=1, n_estimators=5, random_state=0, progress=False),
    ]
)
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


# --- bad input -----------------------------------------------------------------------------------------


def test_mismatched_dimensions_between_fit_and_transform(templates):
    X, y = templates
    ive = fast(IVE, n_per_step=1, n_steps=1).fit(X, y)
    multi = fast(MultiIVE, n_per_step=1, n_steps=1).fit(X, y)
    with pytest.raises(ValueError, match="X has 5 features, but IVE is expecting 20 features"):
        ive.transform(X[:, :5])
    with pytest.raises(ValueError, match="X has 5 features, but IVE is expecting 20 features"):
        ive.transform_at_step(X[:, :5], 1)
    with pytest.raises(ValueError, match="X has 5 features, but MultiIVE is expecting 20 features"):
        multi.transform(X[:, :5])


def test_more_steps_than_dimensions(templates):
    X, y = templates
    with pytest.raises(ValueError, match=r"n_per_step \* n_steps = 5 \* 4 = 20 eliminations, but n_features=20"):
        fast(IVE, n_per_step=5, n_steps=4).fit(X, y)
    with pytest.raises(ValueError, match=r"= 16 eliminations, but n_features=20 with n_locked=5"):
        fast(MultiIVE, n_locked=5, n_per_step=4, n_steps=4).fit(X, y)
    fast(MultiIVE, n_locked=5, n_per_step=5, n_steps=3).fit(X, y)  # exactly d - n_locked is allowed


def test_one_class_only(templates):
    X, _ = templates
    with pytest.raises(ValueError, match="one class"):
        fast(IVE, n_per_step=1, n_steps=1).fit(X, np.ones(len(X)))
    with pytest.raises(ValueError, match="one class"):
        fast(MultiIVE, n_per_step=1, n_steps=1).fit(X, np.ones(len(X)))


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"n_per_step": 0}, r"n_per_step=0: expected a positive integer"),
        ({"n_steps": 1.5}, r"n_steps=1.5: expected a positive integer"),
        ({"n_estimators": -1}, r"n_estimators=-1: expected a positive integer"),
    ],
)
def test_bad_parameters(templates, params, message):
    X, y = templates
    with pytest.raises(ValueError, match=message):
        IVE(progress=False, **{"n_per_step": 1, "n_steps": 1, **params}).fit(X, y)


def test_bad_multi_ive_parameters(templates):
    X, y = templates
    with pytest.raises(ValueError, match=r"domain='lda': expected one of \('pca', 'ica'\)"):
        fast(MultiIVE, domain="lda").fit(X, y)
    with pytest.raises(ValueError, match=r"n_locked=5 with domain='ica'"):
        fast(MultiIVE, domain="ica", n_locked=5).fit(X, y)
    with pytest.raises(ValueError, match=r"n_locked=-1: expected a non-negative integer"):
        fast(MultiIVE, n_locked=-1, n_per_step=1, n_steps=1).fit(X, y)
    with pytest.raises(ValueError, match=r"n_samples=10 < n_features=20"):
        fast(MultiIVE, n_per_step=1, n_steps=1).fit(X[145:155], y[145:155])


def test_step_out_of_range(templates):
    X, y = templates
    ive = fast(IVE, n_per_step=1, n_steps=2).fit(X, y)
    with pytest.raises(ValueError, match=r"k=3: expected an integer step in 0..2"):
        ive.transform_at_step(X, 3)
    multi = fast(MultiIVE, n_per_step=1, n_steps=2).fit(X, y)
    with pytest.raises(ValueError, match=r"k=-1: expected an integer step in 0..2"):
        multi.transform_at_step(X, -1)
