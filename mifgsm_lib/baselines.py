"""IVE and Multi-IVE, the template-level baselines of the privacy-verification trade-off (Sec. 6.3, Table 2).

*Incremental Variable Elimination* (IVE; Terhörst, Damer, Kirchbuchner and Kuijper, ICB 2019) trains a
decision-tree ensemble to predict the soft-biometric attribute (here gender) from the templates, ranks the
template dimensions by the ensemble's feature importances, and removes the ``n_per_step`` most important
ones. The ensemble is re-trained on the remaining dimensions and the ranking redone after each step, for
``n_steps`` steps. The protected templates have ``d - n_per_step * n_steps`` dimensions.

*Multi-IVE* (Melzi et al., WACV 2023) runs the same elimination in a PCA (or ICA) domain of full dimension
``d``, never eliminating the first ``n_locked`` principal components, and projects back; the protected
templates keep dimension ``d``. The paper reproduced here uses the PCA domain with 5 locked components.

Both are scikit-learn transformers: ``fit(X, y)`` learns the eliminations from templates ``X`` and gender
labels ``y`` (as in the paper, on a dataset other than the one evaluated), ``transform(X)`` protects templates,
and ``transform_at_step(X, k)`` gives the templates after the first ``k`` steps, so one fit yields a whole
privacy-utility curve.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin
from sklearn.decomposition import PCA, FastICA
from sklearn.ensemble import RandomForestClassifier
from sklearn.feature_selection import SelectorMixin
from sklearn.preprocessing import StandardScaler
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from mifgsm_lib.progress import bar

#: Domains Multi-IVE can eliminate in.
DOMAINS = ("pca", "ica")


#: Multi-IVE's locked principal components (the paper: PCA domain, 5 locked, after Melzi et al.).
LOCKED_COMPONENTS = 5

#: Elimination steps of both baselines; with ``dim // 16`` dimensions per step the curve runs from the
#: full template down to an eighth of it (dlib: 128 -> 16 dimensions, 8 per step).
ELIMINATION_STEPS = 14

#: The dataset the baselines' importance estimators are trained on by default (the evaluated one is another).
TRAIN_DATASET = "utkface"


def train_dataset_for(dataset: str) -> str:
    """Where the baselines learn for an evaluated ``dataset``: :data:`TRAIN_DATASET`, or LFW when UTKFace itself is
    evaluated (the paper trains them "using a different dataset than the evaluation set")."""
    return "lfw" if dataset == TRAIN_DATASET else TRAIN_DATASET


def elimination_plan(dim: int, n_locked: int = LOCKED_COMPONENTS, n_steps: int = ELIMINATION_STEPS) -> tuple[int, int]:
    """``(n_per_step, n_steps)`` of IVE and Multi-IVE for ``dim``-dimensional templates.

    ``dim // 16`` dimensions per step (dlib's 128: 8; ArcFace's 512: 32) for ``n_steps`` steps, fewer where
    the ``dim - n_locked`` eliminable components of Multi-IVE run out.
    """
    if not isinstance(dim, (int, np.integer)) or dim < n_locked + 2:
        raise ValueError(f"dim={dim!r}: expected a template dimension of at least n_locked + 2 = {n_locked + 2}")
    if not isinstance(n_steps, (int, np.integer)) or n_steps < 1:
        raise ValueError(f"n_steps={n_steps!r}: expected a positive number of elimination steps")
    per_step = max(1, int(dim) // 16)
    return per_step, min(int(n_steps), (int(dim) - n_locked - 1) // per_step)


def _check_positive_int(name: str, value: object) -> int:
    """``value`` as an int, or a ValueError naming the parameter."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}={value!r}: expected a positive integer")
    return int(value)


def _check_gender_labels(y: np.ndarray) -> None:
    """Class labels with at least two classes; the importances of a one-class forest rank nothing."""
    check_classification_targets(y)
    if np.unique(y).size < 2:
        raise ValueError(
            "y has one class only: IVE needs at least two attribute classes to rank the template dimensions"
        )


def _check_elimination_budget(
    n_per_step: int, n_steps: int, n_features: int, n_locked: int = 0
) -> None:
    """At least one dimension survives, and the locked ones are never counted as eliminable."""
    total = n_per_step * n_steps
    if total >= n_features or total > n_features - n_locked:
        raise ValueError(
            f"n_per_step * n_steps = {n_per_step} * {n_steps} = {total} eliminations, but n_features={n_features}"
            f" with n_locked={n_locked}: expected at most n_features - n_locked and fewer than n_features"
        )


def _check_step(k: object, n_steps_fitted: int) -> int:
    """A step index in ``0..n_steps_fitted``."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= k <= n_steps_fitted:
        raise ValueError(f"k={k!r}: expected an integer step in 0..{n_steps_fitted} (0 = untouched templates)")
    return int(k)


def incremental_variable_elimination(
    X: np.ndarray,
    y: np.ndarray,
    *,
    n_per_step: int,
    n_steps: int,
    n_estimators: int = 30,
    n_locked: int = 0,
    random_state: int | np.random.RandomState | None = None,
    n_jobs: int | None = None,
    progress: bool = True,
) -> list[np.ndarray]:
    """The IVE loop: per step, the ``n_per_step`` most gender-important remaining columns of ``X``.

    Each step trains a ``RandomForestClassifier`` (the decision-tree ensemble of IVE; 30 trees as in the
    Multi-IVE authors' code) on the columns not eliminated yet, sorts them by decreasing
    ``feature_importances_`` (ties: lower column first) and eliminates the top ``n_per_step``. The first
    ``n_locked`` columns stay in the forest's input but are never eliminated (Multi-IVE's locked principal
    components). Returns one array of original column indices per step, in elimination order.
    """
    X = np.asarray(X, dtype=np.float64)
    n_per_step = _check_positive_int("n_per_step", n_per_step)
    n_steps = _check_positive_int("n_steps", n_steps)
    n_estimators = _check_positive_int("n_estimators", n_estimators)
    if isinstance(n_locked, bool) or not isinstance(n_locked, (int, np.integer)) or n_locked < 0:
        raise ValueError(f"n_locked={n_locked!r}: expected a non-negative integer")
    _check_gender_labels(y)
    _check_elimination_budget(n_per_step, n_steps, X.shape[1], n_locked)
    rng = check_random_state(random_state)
    remaining = np.arange(X.shape[1])
    eliminated: list[np.ndarray] = []
    for _ in bar(range(n_steps), desc="IVE steps", disable=not progress):
        forest = RandomForestClassifier(
            n_estimators=n_estimators, random_state=rng.randint(np.iinfo(np.int32).max), n_jobs=n_jobs
        )
        forest.fit(X[:, remaining], y)
        ranked = remaining[np.argsort(-forest.feature_importances_, kind="stable")]
        step = ranked[ranked >= n_locked][:n_per_step]
        eliminated.append(step)
        remaining = np.setdiff1d(remaining, step)
    return eliminated


class _IncrementalEliminationMixin:
    """The parameters, fit and per-step bookkeeping shared by IVE and Multi-IVE."""

    n_per_step: int
    n_steps: int
    n_estimators: int
    random_state: int | np.random.RandomState | None
    n_jobs: int | None
    progress: bool
    eliminated_: list[np.ndarray]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        return tags

    def _fit_eliminations(self, Z: np.ndarray, y: np.ndarray, n_locked: int = 0) -> None:
        """Learn ``eliminated_`` (per step), ``kept_`` and ``n_steps_fitted_`` on the columns of ``Z``."""
        self.eliminated_ = incremental_variable_elimination(
            Z,
            y,
            n_per_step=self.n_per_step,
            n_steps=self.n_steps,
            n_estimators=self.n_estimators,
            n_locked=n_locked,
            random_state=self.random_state,
            n_jobs=self.n_jobs,
            progress=self.progress,
        )
        self.n_steps_fitted_ = len(self.eliminated_)
        self.kept_ = self._kept_at_step(self.n_steps_fitted_)

    def _kept_at_step(self, k: int) -> np.ndarray:
        """Column indices (ascending) that survive the first ``k`` steps."""
        gone = np.concatenate([np.empty(0, dtype=np.intp), *self.eliminated_[:k]])
        return np.setdiff1d(np.arange(self.n_features_in_), gone)


class IVE(_IncrementalEliminationMixin, SelectorMixin, BaseEstimator):
    """Incremental Variable Elimination (Terhörst et al., ICB 2019) as a dimension-dropping transformer.

    Parameters
    ----------
    n_per_step : dimensions eliminated per step.
    n_steps : elimination steps; ``n_per_step * n_steps`` must be below the template dimension.
    n_estimators : trees of the random forest that ranks the dimensions at each step.
    random_state : seed of the forests (same seed, same eliminations).
    n_jobs : forwarded to the forest.
    progress : show a tqdm bar over the steps.

    Attributes
    ----------
    eliminated_ : list of ``n_steps`` index arrays, the input dimensions eliminated at each step, in order.
    kept_ : ascending indices of the input dimensions kept after all steps.
    n_steps_fitted_ : number of steps learned (``transform_at_step`` accepts ``0..n_steps_fitted_``).
    n_features_in_ : template dimension seen in ``fit``.
    """

    def __init__(
        self,
        n_per_step: int = 5,
        n_steps: int = 10,
        n_estimators: int = 30,
        random_state: int | np.random.RandomState | None = None,
        n_jobs: int | None = None,
        progress: bool = True,
    ) -> None:
        self.n_per_step = n_per_step
        self.n_steps = n_steps
        self.n_estimators = n_estimators
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.progress = progress

    def fit(self, X: np.ndarray, y: np.ndarray) -> IVE:
        """Learn the eliminations from templates ``X`` (n, d) and attribute labels ``y`` (n,)."""
        X, y = validate_data(self, X, y, dtype=np.float64)
        self._fit_eliminations(X, y)
        return self

    def _get_support_mask(self) -> np.ndarray:
        check_is_fitted(self)
        mask = np.zeros(self.n_features_in_, dtype=bool)
        mask[self.kept_] = True
        return mask

    def transform_at_step(self, X: np.ndarray, k: int) -> np.ndarray:
        """Templates after the first ``k`` steps (``d - k * n_per_step`` dimensions; ``k=0``: ``X`` itself)."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=None)
        return X[:, self._kept_at_step(_check_step(k, self.n_steps_fitted_))]


class MultiIVE(_IncrementalEliminationMixin, OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Multi-IVE (Melzi et al., WACV 2023): IVE in a full-dimension PCA/ICA domain with locked components.

    As the authors' released code (otroshi/multi-ive, ``main.py`` and ``evaluate_IVE.py``) runs it: ``fit``
    standardises the templates (a ``StandardScaler`` fitted on the training templates, ``standardize=True``),
    learns the domain (``PCA(n_components=d, whiten=False)`` or ``FastICA(n_components=d)``) on the standardised
    templates, then runs IVE on the domain coordinates, never eliminating the first ``n_locked`` components
    (the highest-variance principal components, which carry most of the identity).

    What *eliminate* means here: an eliminated component is set to zero in the domain and the templates
    are projected back with the domain's inverse, so the output keeps dimension ``d``. This is what
    "preserving dimensionality" means in the Multi-IVE paper, and what the authors' code does (zero the masked
    PCA coordinates, then ``inverse_transform``). The domain is learned once and the eliminations accumulate in
    it, as in the authors' evaluation script. ICA components have no order, so ``domain="ica"`` takes
    ``n_locked=0`` (the authors lock components only in their PCA settings).

    One difference from the released code: the authors leave the protected templates standardised (and compare
    them there); here they are scaled back to the template space (``inverse_transform`` of the scaler), so that
    step 0 returns the clean templates exactly and every method's EER is measured in the same space as the
    clean templates'. ``standardize=False`` runs PCA on the raw templates (this library's earlier reading).

    Parameters
    ----------
    domain : ``"pca"`` (the paper) or ``"ica"``.
    n_locked : leading components never eliminated (paper: 5 with PCA).
    n_per_step, n_steps, n_estimators, random_state, n_jobs, progress : as in :class:`IVE`;
        ``n_per_step * n_steps`` must be at most ``d - n_locked``. ``random_state`` also seeds FastICA.
    standardize : standardise the templates before the domain (the authors' code; default).

    Attributes
    ----------
    scaler_ : the fitted ``StandardScaler`` (``None`` with ``standardize=False``).
    domain_ : the fitted ``PCA`` or ``FastICA``.
    eliminated_, kept_, n_steps_fitted_, n_features_in_ : as in :class:`IVE`, indices of domain components.
    """

    def __init__(
        self,
        domain: str = "pca",
        n_locked: int = 5,
        n_per_step: int = 5,
        n_steps: int = 10,
        n_estimators: int = 30,
        random_state: int | np.random.RandomState | None = None,
        n_jobs: int | None = None,
        progress: bool = True,
        standardize: bool = True,
    ) -> None:
        self.domain = domain
        self.n_locked = n_locked
        self.n_per_step = n_per_step
        self.n_steps = n_steps
        self.n_estimators = n_estimators
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.progress = progress
        self.standardize = standardize

    def _make_domain(self, n_features: int) -> PCA | FastICA:
        """An unfitted full-dimension projection for ``self.domain``."""
        if self.domain not in DOMAINS:
            raise ValueError(f"domain={self.domain!r}: expected one of {DOMAINS}")
        if self.domain == "ica" and self.n_locked != 0:
            raise ValueError(
                f"n_locked={self.n_locked!r} with domain='ica': independent components have no order, expected 0"
            )
        if self.domain == "pca":
            return PCA(n_components=n_features, whiten=False, svd_solver="full")
        return FastICA(n_components=n_features, whiten="unit-variance", random_state=self.random_state)

    def fit(self, X: np.ndarray, y: np.ndarray) -> MultiIVE:
        """Learn the domain on templates ``X`` (n, d), then the eliminations from the domain coordinates."""
        X, y = validate_data(self, X, y, dtype=np.float64)
        domain = self._make_domain(X.shape[1])
        _check_gender_labels(y)
        if X.shape[0] < X.shape[1]:
            raise ValueError(
                f"X has n_samples={X.shape[0]} < n_features={X.shape[1]}: a full-dimension {self.domain.upper()}"
                " domain needs at least as many templates as dimensions"
            )
        self.scaler_ = StandardScaler().fit(X) if self.standardize else None
        Xs = self.scaler_.transform(X) if self.standardize else X
        self.domain_ = domain.fit(Xs)
        self._fit_eliminations(self.domain_.transform(Xs), y, n_locked=self.n_locked)
        return self

    def to_domain(self, X: np.ndarray) -> np.ndarray:
        """Templates -> domain coordinates (standardised first where ``standardize``)."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        return self.domain_.transform(self.scaler_.transform(X) if self.scaler_ is not None else X)

    def from_domain(self, Z: np.ndarray) -> np.ndarray:
        """Domain coordinates -> templates (the scaler undone where ``standardize``)."""
        X = self.domain_.inverse_transform(Z)
        return self.scaler_.inverse_transform(X) if self.scaler_ is not None else X

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Protected templates (n, d): all ``n_steps`` eliminations applied."""
        check_is_fitted(self)
        return self.transform_at_step(X, self.n_steps_fitted_)

    def transform_locked(self, X: np.ndarray) -> np.ndarray:
        """The templates reduced to the ``n_locked`` locked components (every other one zeroed), back in template
        space: what no number of steps ever removes, hence Multi-IVE's privacy floor (beyond the paper)."""
        check_is_fitted(self)
        Z = self.to_domain(X)
        Z[:, self.n_locked:] = 0.0
        return self.from_domain(Z)

    def transform_at_step(self, X: np.ndarray, k: int) -> np.ndarray:
        """Templates after the first ``k`` steps, back in template space (``k=0``: ``X`` up to round-off)."""
        check_is_fitted(self)
        Z = self.to_domain(X)
        removed = np.setdiff1d(np.arange(self.n_features_in_), self._kept_at_step(_check_step(k, self.n_steps_fitted_)))
        Z[:, removed] = 0.0
        return self.from_domain(Z)
