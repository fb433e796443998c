"""The two evaluation settings of the paper (Sec. 5, Table 1).

- **Setting A (attack).** The MLP gender classifier trained on *clean* templates is
  applied, unchanged, to the perturbed templates: its accuracy measures how well the
  attack fools a fixed decision boundary.
- **Setting B (privacy).** Gender classifiers are *retrained* on the perturbed
  templates: logistic regression, a linear SVM and an RBF-kernel SVM, each 3-fold
  cross-validated; the mean of their balanced accuracies measures how separable the
  genders still are (50% = no gender information left).

Beyond the paper's two settings: the sweep over ε that shares its folds and runs in one
parallel pool and the mixing of clean and perturbed templates (Fig. 5).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np
from joblib import Parallel, delayed
from sklearn.base import BaseEstimator, clone
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, LinearSVC
from threadpoolctl import ThreadpoolController

from mifgsm_lib.intervals import PROPORTION, Interval, basic_interval, weighted_balanced_accuracy
from mifgsm_lib.progress import bar
from mifgsm_lib.validation import check_labels, check_templates

#: Setting B's classifiers, in the paper's order (Sec. 5).
CLASSIFIERS: tuple[str, ...] = ("logreg", "linear_svm", "rbf_svm")

#: Fig. 5's fractions of clean templates: 0 to 1 in steps of 1/8 (the paper quotes 37.5% and 50%).
MIXING_FRACTIONS: tuple[float, ...] = tuple(float(k) / 8 for k in range(9))


@cache
def _threadpools() -> ThreadpoolController:
    """One controller per process: building it scans the loaded libraries (~12 ms with torch)."""
    return ThreadpoolController()


def _one_thread() -> AbstractContextManager:
    """Run the fits with single-threaded BLAS and OpenMP, the main speed-up of setting B.

    scipy >= 1.15's L-BFGS-B (LogisticRegression's solver) calls BLAS on tiny vectors;
    with a multi-threaded OpenBLAS each call pays a thread synchronisation, making a fit
    on 667 x 128 templates several times slower (scipy issue #22438); the boosted trees of
    setting B+ would likewise oversubscribe the cores with OpenMP threads. Setting B's
    parallelism is across fits, never inside them: the limit covers the fits run in this
    process, and joblib's loky workers already get cpu_count // n_jobs threads.
    """
    return _threadpools().limit(limits=1)


def setting_b_classifier(name: str, seed: int = 0) -> Pipeline:
    """One of setting B's classifiers: ``StandardScaler`` then the model, scikit-learn defaults.

    - ``logreg``: ``LogisticRegression`` (L2, C = 1, lbfgs), ``max_iter=5000``;
    - ``linear_svm``: ``LinearSVC`` (squared hinge, C = 1), ``dual="auto"`` (the primal
      when n_samples > n_features, as for templates), ``max_iter=10000``, ``random_state=seed``;
    - ``rbf_svm``: ``SVC`` (RBF, C = 1, ``gamma="scale"`` = 1 / n_features on standardised
      features), ``cache_size=500`` MB.

    The iteration limits are far above what standardised templates need (lbfgs converges
    in tens of iterations at 1,000 x 128), so every model is fitted to convergence.
    """
    models: dict[str, Callable[[], BaseEstimator]] = {
        "logreg": lambda: LogisticRegression(max_iter=5000),
        "linear_svm": lambda: LinearSVC(dual="auto", max_iter=10000, random_state=seed),
        "rbf_svm": lambda: SVC(kernel="rbf", cache_size=500),
    }
    if name not in models:
        raise ValueError(f"classifier {name!r}: expected one of {list(models)}")
    return make_pipeline(StandardScaler(), models[name]())


def _resolve_classifiers(
    classifiers: Sequence[str] | Mapping[str, BaseEstimator] | None, seed: int
) -> dict[str, BaseEstimator]:
    if classifiers is None:
        classifiers = CLASSIFIERS
    if isinstance(classifiers, Mapping):
        resolved = dict(classifiers)
    elif isinstance(classifiers, str):
        raise ValueError(f"classifiers={classifiers!r}: expected a list of names, e.g. {list(CLASSIFIERS)}")
    else:
        resolved = {name: setting_b_classifier(name, seed) for name in classifiers}
    if not resolved or "mean" in resolved:
        raise ValueError("classifiers: expected at least one classifier, none named 'mean'")
    return resolved


def fold_splits(
    y: np.ndarray, groups: np.ndarray | None = None, folds: int = 3, grouped: bool = True, seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Setting B's (train, test) index splits, shuffled with ``seed``.

    ``grouped=True`` (the default) uses ``StratifiedGroupKFold`` on the identities in
    ``groups``, so no person is in both train and test (which inflates accuracy);
    ``grouped=False`` uses the paper's plain ``StratifiedKFold`` and ignores ``groups``.
    """
    labels = np.asarray(y)
    if labels.ndim != 1:
        raise ValueError(f"y: expected a 1-D array of labels, got shape {labels.shape}")
    n = labels.shape[0]
    if not isinstance(folds, (int, np.integer)) or folds < 2:
        raise ValueError(f"folds={folds!r}: expected an integer >= 2")
    if n < folds:
        raise ValueError(f"folds={folds}: expected at most as many folds as samples, got {n} samples")
    _, counts = np.unique(labels, return_counts=True)
    if counts.min() < folds:
        raise ValueError(f"y: each class needs at least folds={folds} samples, the smallest has {counts.min()}")
    if groups is not None and np.shape(groups) != (n,):
        raise ValueError(f"groups: expected one identity per template ({n}), got shape {np.shape(groups)}")
    if not grouped:
        cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        return list(cv.split(np.zeros((n, 1)), labels))
    if groups is None:
        raise ValueError("groups: required when grouped=True (identities); pass grouped=False for plain folds")
    n_groups = np.unique(np.asarray(groups)).size
    if n_groups < folds:
        raise ValueError(f"groups: expected at least folds={folds} identities, got {n_groups}")
    people = np.asarray(groups)
    classes = np.unique(labels)
    cv = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    splits = list(cv.split(np.zeros((n, 1)), labels, people))
    for train, _ in splits:
        absent = np.setdiff1d(classes, labels[train])
        if absent.size:
            raise ValueError(f"groups: in folds={folds} grouped by identity, a training fold holds no image of class "
                             f"{absent[0]} (its people: {np.unique(people[labels == absent[0]]).size}); expected "
                             "more people of each class, fewer folds or grouped=False")
    return splits


@dataclass(frozen=True)
class SettingBResult:
    """Setting B: balanced accuracy per classifier (mean over folds) and their ``"mean"``, the plain accuracy
    likewise (the paper's kind in Figs. 2-4), and the out-of-fold predictions from which :meth:`interval` draws."""

    balanced_accuracy: dict[str, float]
    per_fold: dict[str, tuple[float, ...]]
    folds: int
    grouped: bool
    seed: int
    n_samples: int
    accuracy: dict[str, float] = field(default_factory=dict)
    predictions: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)
    labels: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def mean(self) -> float:
        """The paper's setting-B number: the mean over the classifiers."""
        return self.balanced_accuracy["mean"]

    def replicates(self, weights: np.ndarray) -> np.ndarray:
        """The mean over classifiers of the balanced accuracy of the pooled out-of-fold predictions under each row
        of bootstrap ``weights`` (B, n_samples) (:mod:`mifgsm_lib.intervals`)."""
        return np.mean([weighted_balanced_accuracy(self.labels, pred, weights) for pred in self.predictions.values()],
                       axis=0)

    def interval(self, weights: np.ndarray, replicates: np.ndarray | None = None) -> Interval:
        """The 95 % interval of :attr:`mean` from bootstrap ``weights`` (resampled identities, see
        :func:`mifgsm_lib.intervals.cluster_weights`), or from their ``replicates`` (:meth:`replicates`) where
        already computed."""
        full_sample = float(self.replicates(np.ones((1, self.n_samples)))[0])
        reps = self.replicates(weights) if replicates is None else replicates
        return basic_interval(self.mean, reps, full_sample, bounds=PROPORTION)

    def as_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return {
            "balanced_accuracy": dict(self.balanced_accuracy),
            "accuracy": dict(self.accuracy),
            "per_fold": {k: list(v) for k, v in self.per_fold.items()},
            "folds": self.folds,
            "grouped": self.grouped,
            "seed": self.seed,
            "n_samples": self.n_samples,
        }


def _result(predictions: dict[str, np.ndarray], labels: np.ndarray, splits: list[tuple[np.ndarray, np.ndarray]],
            grouped: bool, seed: int) -> SettingBResult:
    """Setting B from the out-of-fold predictions of each classifier: per-fold balanced and plain accuracies."""
    per_fold = {name: tuple(float(balanced_accuracy_score(labels[test], pred[test])) for _, test in splits)
                for name, pred in predictions.items()}
    plain = {name: float(np.mean([np.mean(pred[test] == labels[test]) for _, test in splits]))
             for name, pred in predictions.items()}
    scores = {name: float(np.mean(s)) for name, s in per_fold.items()}
    scores["mean"] = float(np.mean(list(scores.values())))
    plain["mean"] = float(np.mean(list(plain.values())))
    return SettingBResult(scores, per_fold, len(splits), bool(grouped), int(seed), len(labels), plain,
                          predictions, labels)


def setting_b(
    templates: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray | None = None,
    folds: int = 3,
    grouped: bool = True,
    seed: int = 0,
    n_jobs: int | None = -1,
    classifiers: Sequence[str] | Mapping[str, BaseEstimator] | None = None,
    multiclass: bool = False,
) -> SettingBResult:
    """Setting B on one set of templates: each classifier cross-validated on them.

    Scoring is ``balanced_accuracy`` (the paper, Sec. 6.3, because full datasets are not
    gender-balanced); the folds are :func:`fold_splits`; ``classifiers`` is a list of
    names from :data:`CLASSIFIERS` or a mapping name -> scikit-learn estimator.
    ``multiclass=True`` accepts K >= 2 classes (another attribute than gender; chance is 1/K).
    It is :func:`setting_b_sweep` on a single set, so both give the same numbers.
    """
    return setting_b_sweep({0.0: check_templates(templates)}, y, groups, folds, grouped, seed, n_jobs, classifiers,
                           progress=False, multiclass=multiclass)[0.0]


def _fold_predictions(estimator: BaseEstimator, x: np.ndarray, y: np.ndarray, train: np.ndarray,
                      test: np.ndarray) -> np.ndarray:
    """Fit a fresh copy on ``train``, return its predictions on ``test`` (one CV job)."""
    with _one_thread():
        return clone(estimator).fit(x[train], y[train]).predict(x[test])


def setting_b_sweep(
    templates_by_eps: Mapping[float, np.ndarray],
    y: np.ndarray,
    groups: np.ndarray | None = None,
    folds: int = 3,
    grouped: bool = True,
    seed: int = 0,
    n_jobs: int | None = -1,
    classifiers: Sequence[str] | Mapping[str, BaseEstimator] | None = None,
    progress: bool = True,
    multiclass: bool = False,
) -> dict[float, SettingBResult]:
    """Setting B for many template sets (one per ε), equal to :func:`setting_b` on each.

    What does not change across ε is done once: the validation of ``y``/``groups``, the
    fold splits and the classifier specs. All (ε, classifier, fold) fits then run in ONE
    joblib ``Parallel`` call, so the worker pool is filled with every job at once instead
    of a few per ε, with the slow RBF-SVM jobs dispatched first.
    """
    if not templates_by_eps:
        raise ValueError("templates_by_eps: expected at least one (eps -> templates) entry")
    sets = {key: check_templates(x, name=f"templates_by_eps[{key!r}]") for key, x in templates_by_eps.items()}
    rows = {x.shape[0] for x in sets.values()}
    if len(rows) != 1:  # the width may differ: IVE removes dimensions
        raise ValueError(f"templates_by_eps: expected one row per image in every set, got {sorted(rows)} rows")
    n = next(iter(sets.values())).shape[0]
    labels = check_labels(y, n=n, num_classes=None if multiclass else 2)
    splits = fold_splits(labels, groups, folds, grouped, seed)
    estimators = _resolve_classifiers(classifiers, seed)
    jobs = [(key, name, k) for name in estimators for key in sets for k in range(len(splits))]
    jobs.sort(key=lambda job: job[1] != "rbf_svm")  # stable: slowest classifier first
    predicted = Parallel(n_jobs=n_jobs, return_as="generator")(
        delayed(_fold_predictions)(estimators[name], sets[key], labels, *splits[k]) for key, name, k in jobs
    )
    oof = {key: {name: np.empty(n, dtype=labels.dtype) for name in estimators} for key in sets}
    for (key, name, k), pred in zip(jobs, bar(predicted, total=len(jobs), desc="setting B", disable=not progress)):
        oof[key][name][splits[k][1]] = pred
    return {key: _result(oof[key], labels, splits, grouped, seed) for key in sets}


def mixed_templates(clean: np.ndarray, perturbed: np.ndarray, fraction: float, seed: int = 0) -> np.ndarray:
    """The templates of Fig. 5: ``round(fraction * n)`` images clean, the others perturbed.

    Each image appears once, clean or perturbed. The clean images are the first of one
    random order of the images drawn from ``seed``, so for one seed the clean sets are
    nested as ``fraction`` grows.
    """
    x_clean, x_pert = check_templates(clean, name="clean"), check_templates(perturbed, name="perturbed")
    if x_clean.shape != x_pert.shape:
        raise ValueError(f"clean and perturbed: expected the same shape, got {x_clean.shape} and {x_pert.shape}")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction={fraction!r}: expected a fraction of clean templates in [0, 1]")
    chosen = np.random.default_rng(seed).permutation(x_clean.shape[0])[: int(np.rint(fraction * x_clean.shape[0]))]
    mixed = x_pert.copy()
    mixed[chosen] = x_clean[chosen]
    return mixed


def mixing(
    clean: np.ndarray,
    perturbed: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray | None = None,
    fractions: Sequence[float] = MIXING_FRACTIONS,
    seed: int = 0,
    folds: int = 3,
    grouped: bool = True,
    n_jobs: int | None = -1,
    classifiers: Sequence[str] | Mapping[str, BaseEstimator] | None = None,
    progress: bool = True,
) -> dict[float, SettingBResult]:
    """Fig. 5: setting B per fraction of clean templates (:func:`mixed_templates`), one sweep.

    ``seed`` draws both the clean images and the folds, so ``fraction = 0`` is
    :func:`setting_b` on ``perturbed`` and ``fraction = 1`` on ``clean``.
    """
    if len(fractions) == 0:
        raise ValueError("fractions: expected at least one fraction of clean templates")
    sets = {float(f): mixed_templates(clean, perturbed, float(f), seed) for f in fractions}
    return setting_b_sweep(sets, y, groups, folds, grouped, seed, n_jobs, classifiers, progress)


def setting_a_predictions(classifier: Any, templates: np.ndarray) -> np.ndarray:
    """The 0/1 predictions of a fixed classifier (setting A) on templates: an object with ``predict(z)`` or a callable
    ``z -> labels``, taking a float32 tensor (n, dim) (on the device of its parameters for a ``torch.nn.Module``)
    and returning 0/1 labels (tensor or array)."""
    import torch  # here, not at the top: the sweep's worker processes import this module

    predict = getattr(classifier, "predict", classifier)
    if not callable(predict):
        raise ValueError(f"classifier: expected an object with .predict(z) or a callable, got {type(classifier)}")
    x = check_templates(templates)
    params = list(classifier.parameters()) if isinstance(classifier, torch.nn.Module) else []
    device = params[0].device if params else torch.device("cpu")
    with torch.no_grad():
        pred = predict(torch.as_tensor(x, dtype=torch.float32, device=device))
    pred = pred.detach().cpu().numpy() if isinstance(pred, torch.Tensor) else np.asarray(pred)
    if pred.size != x.shape[0] or not np.all(np.isin(pred, (0, 1))):
        raise ValueError(f"classifier: expected {x.shape[0]} predictions in {{0, 1}}, got shape {pred.shape}")
    return pred.reshape(-1)


def setting_a(classifier: Any, templates: np.ndarray, y: np.ndarray) -> float:
    """Setting A: accuracy of a fixed classifier trained on clean templates (Sec. 5, Table 1), the paper's plain
    accuracy; ``classifier`` as in :func:`setting_a_predictions`."""
    labels = check_labels(y, n=len(templates), num_classes=2, min_classes=1)
    return float(np.mean(setting_a_predictions(classifier, templates) == labels))
