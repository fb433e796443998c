"""Tests of LEACE (mifgsm_lib.erasure), the template-space target of Erasure-PGD."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score

from mifgsm_lib.erasure import LinearEraser


def correlated(n: int = 900, dim: int = 10, classes: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Templates whose class means differ along a few correlated directions."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    mixing = rng.normal(size=(dim, dim))
    X = rng.normal(size=(n, dim)) @ mixing
    X += np.eye(classes, dim)[y] @ mixing * 2.0
    return X, y


@pytest.mark.parametrize("classes", [2, 3])
def test_erased_class_means_are_equal_and_the_change_has_rank_k_minus_1(classes: int) -> None:
    X, y = correlated(classes=classes)
    eraser = LinearEraser().fit(X, y)
    erased = eraser.transform(X)
    means = np.stack([erased[y == k].mean(axis=0) for k in range(classes)])
    np.testing.assert_allclose(means, np.broadcast_to(erased.mean(axis=0), means.shape), atol=1e-10)
    assert eraser.basis_.shape == (X.shape[1], classes - 1)
    assert np.linalg.matrix_rank(X - erased, tol=1e-8) == classes - 1
    np.testing.assert_allclose(eraser.transform(erased), erased, atol=1e-10)  # a projection


def test_a_linear_classifier_falls_to_chance_and_is_far_above_it_before() -> None:
    X, y = correlated(classes=2)
    erased = LinearEraser().fit(X, y).transform(X)
    before = cross_val_score(LogisticRegression(max_iter=2000), X, y, cv=3).mean()
    after = cross_val_score(LogisticRegression(max_iter=2000), erased, y, cv=3).mean()
    assert before > 0.85
    assert after < 0.6


def test_it_moves_the_templates_least_in_the_whitened_norm() -> None:
    """LEACE's optimality: among erasers that equalise the class means, the least mean squared whitened change.
    Compared with the naive one that removes the (unwhitened) mean-difference direction, which also equalises them."""
    X, y = correlated(classes=2)
    eraser = LinearEraser().fit(X, y)
    leace = eraser.transform(X)
    d = X[y == 1].mean(axis=0) - X[y == 0].mean(axis=0)
    u = d / np.linalg.norm(d)
    naive = X - np.outer((X - X.mean(axis=0)) @ u, u)
    np.testing.assert_allclose(naive[y == 1].mean(axis=0), naive[y == 0].mean(axis=0), atol=1e-10)

    def whitened(change: np.ndarray) -> float:
        return float(np.mean(np.sum((change @ eraser.whitening_) ** 2, axis=1)))

    assert whitened(X - leace) < whitened(X - naive)


def test_a_rank_deficient_covariance_is_handled() -> None:
    X, y = correlated(classes=2, dim=6)
    X = np.hstack([X, X[:, :2]])  # two duplicated columns: Σ is singular
    erased = LinearEraser().fit(X, y).transform(X)
    np.testing.assert_allclose(erased[y == 0].mean(axis=0), erased[y == 1].mean(axis=0), atol=1e-9)


def test_bad_input_is_refused() -> None:
    X, y = correlated(classes=2)
    with pytest.raises(ValueError, match="expected at least two classes"):
        LinearEraser().fit(X, np.zeros(len(X), dtype=int))
    eraser = LinearEraser().fit(X, y)
    with pytest.raises(ValueError, match="features"):
        eraser.transform(X[:, :5])
    with pytest.raises(ValueError, match="continuous"):
        LinearEraser().fit(X, np.linspace(0, 1, len(X)))
