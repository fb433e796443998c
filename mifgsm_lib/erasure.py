"""LEACE: the least-squares linear eraser of a categorical attribute from the templates (beyond the paper).

Belrose, Schneider-Joseph, Ravfogel, Cotterell, Raff and Biderman, *LEACE: Perfect linear concept erasure in closed
form* (NeurIPS 2023). With the templates' mean μ and covariance Σ, W = Σ^{-1/2} their whitening, Σ_zy the
cross-covariance of the templates and the one-hot attribute, and P the orthogonal projection onto the column space
of W Σ_zy (at most K − 1 dimensions for K classes), the eraser

    r(z) = z − W⁺ P W (z − μ)

makes the class-conditional means of r(z) equal, so that no linear classifier does better than a constant one on
the data it was fitted on, and among all such affine maps it moves the templates least in the whitened
(Mahalanobis) norm. It is a template-space target: the chapter "Beyond one step" moves each image, inside its
pixel budget, so that its template approaches r(f(x)) (:class:`mifgsm_lib.attacks.ErasurePGD`).

A scikit-learn transformer: ``fit(Z, y)`` on clean labelled templates, ``transform(Z)`` erases.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

#: Eigenvalues of Σ below this fraction of the largest are treated as zero (Σ's pseudo-inverse square root).
RANK_TOLERANCE = 1e-10


class LinearEraser(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """LEACE (see the module's text). Fitted attributes: ``mean_`` (μ), ``whitening_`` (W), ``unwhitening_``
    (W⁺), ``basis_`` (an orthonormal basis of the erased whitened subspace, one column per dimension) and
    ``classes_``."""

    def fit(self, X: np.ndarray, y: np.ndarray) -> LinearEraser:
        X, y = validate_data(self, X, y, dtype=np.float64, ensure_min_samples=2)
        check_classification_targets(y)
        self.classes_ = np.unique(y)
        if len(self.classes_) < 2:
            raise ValueError(f"y: expected at least two classes to erase, got {self.classes_.tolist()}")
        self.mean_ = X.mean(axis=0)
        centred = X - self.mean_
        values, vectors = np.linalg.eigh(centred.T @ centred / len(X))
        keep = values > RANK_TOLERANCE * values.max()
        self.whitening_ = (vectors[:, keep] / np.sqrt(values[keep])) @ vectors[:, keep].T
        self.unwhitening_ = (vectors[:, keep] * np.sqrt(values[keep])) @ vectors[:, keep].T
        one_hot = (y[:, None] == self.classes_[None, :]).astype(np.float64)
        cross = self.whitening_ @ centred.T @ (one_hot - one_hot.mean(axis=0)) / len(X)  # W Σ_zy
        u, s, _ = np.linalg.svd(cross, full_matrices=False)
        self.basis_ = u[:, s > RANK_TOLERANCE * max(s.max(), 1e-300)]
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self, "basis_")
        X = validate_data(self, X, dtype=np.float64, reset=False)
        erased = ((X - self.mean_) @ self.whitening_ @ self.basis_) @ self.basis_.T @ self.unwhitening_
        return X - erased
