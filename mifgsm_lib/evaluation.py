"""The two evaluation settings of the paper (Sec. 5, Table 1), and one way to measure protected templates.

- **Setting A (attack).** The MLP gender classifier trained on *clean* templates is
  applied, unchanged, to the perturbed templates: its accuracy measures how well the
  attack fools a fixed decision boundary.
- **Setting B (privacy).** Gender classifiers are *retrained* on the perturbed
  templates: logistic regression, a linear SVM and an RBF-kernel SVM, each 3-fold
  cross-validated; the mean of their balanced accuracies measures how separable the
  genders still are (50% = no gender information left).

Beyond the paper's two settings: the sweep over ε that shares its folds and runs in one
parallel pool and the mixing of clean and perturbed templates (Fig. 5). :func:`measure` is the one way every study scores a family of
protected template sets: settings A and B, verification on pairs, and PIC, one row per set.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import cache
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.base import BaseEstimator, clone
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, LinearSVC
from threadpoolctl import ThreadpoolController

from mifgsm_lib import verification
from mifgsm_lib.data.pairs import Pairs
from mifgsm_lib.privacy import pic
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


def _one_blas_thread() -> AbstractContextManager:
    """Run the fits with single-threaded BLAS, the main speed-up of setting B.

    scipy >= 1.15's L-BFGS-B (LogisticRegression's solver) calls BLAS on tiny vectors;
    with a multi-threaded OpenBLAS each call pays a thread synchronisation, making a fit
    on 667 x 128 templates several times slower (scipy issue #22438). Setting B's
    parallelism is across fits, never inside BLAS: the limit covers the fits run in this
    process, and joblib's loky workers already get cpu_count // n_jobs BLAS threads.
    """
    return _threadpools().limit(limits=1, user_api="blas")


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
    cv = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    return list(cv.split(np.zeros((n, 1)), labels, np.asarray(groups)))


@dataclass(frozen=True)
class SettingBResult:
    """Setting B: balanced accuracy per classifier (mean over folds) and their ``"mean"``."""

    balanced_accuracy: dict[str, float]
    per_fold: dict[str, tuple[float, ...]]
    folds: int
    grouped: bool
    seed: int
    n_samples: int

    @property
    def mean(self) -> float:
        """The paper's setting-B number: the mean over the classifiers."""
        return self.balanced_accuracy["mean"]

    def as_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return {
            "balanced_accuracy": dict(self.balanced_accuracy),
            "per_fold": {k: list(v) for k, v in self.per_fold.items()},
            "folds": self.folds,
            "grouped": self.grouped,
            "seed": self.seed,
            "n_samples": self.n_samples,
        }


def _result(per_fold: dict[str, Sequence[float]], folds: int, grouped: bool, seed: int, n: int) -> SettingBResult:
    scores = {name: float(np.mean(s)) for name, s in per_fold.items()}
    scores["mean"] = float(np.mean(list(scores.values())))
    frozen = {name: tuple(float(v) for v in s) for name, s in per_fold.items()}
    return SettingBResult(scores, frozen, int(folds), bool(grouped), int(seed), int(n))


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


def _fold_score(estimator: BaseEstimator, x: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray) -> float:
    """Fit a fresh copy on ``train``, return its balanced accuracy on ``test`` (one CV job)."""
    with _one_blas_thread():
        model = clone(estimator).fit(x[train], y[train])
        return float(balanced_accuracy_score(y[test], model.predict(x[test])))


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
    shapes = {x.shape for x in sets.values()}
    if len(shapes) != 1:
        raise ValueError(f"templates_by_eps: expected arrays of one shape, got {sorted(shapes)}")
    n = next(iter(sets.values())).shape[0]
    labels = check_labels(y, n=n, num_classes=None if multiclass else 2)
    splits = fold_splits(labels, groups, folds, grouped, seed)
    estimators = _resolve_classifiers(classifiers, seed)
    jobs = [(key, name, k) for name in estimators for key in sets for k in range(len(splits))]
    jobs.sort(key=lambda job: job[1] != "rbf_svm")  # stable: slowest classifier first
    scores = Parallel(n_jobs=n_jobs, return_as="generator")(
        delayed(_fold_score)(estimators[name], sets[key], labels, *splits[k]) for key, name, k in jobs
    )
    per_fold = {key: {name: [0.0] * len(splits) for name in estimators} for key in sets}
    for (key, name, k), score in zip(jobs, bar(scores, total=len(jobs), desc="setting B", disable=not progress)):
        per_fold[key][name][k] = score
    return {key: _result(per_fold[key], folds, grouped, seed, n) for key in sets}


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


def setting_a(classifier: Any, templates: np.ndarray, y: np.ndarray) -> float:
    """Setting A: accuracy of a fixed classifier trained on clean templates (Sec. 5, Table 1).

    ``classifier`` is an object with ``predict(z)`` or a callable ``z -> labels``, taking a
    float32 tensor (n, dim) (on the device of its parameters for a ``torch.nn.Module``)
    and returning 0/1 labels (tensor or array).
    """
    import torch  # here, not at the top: the sweep's worker processes import this module

    predict = getattr(classifier, "predict", classifier)
    if not callable(predict):
        raise ValueError(f"classifier: expected an object with .predict(z) or a callable, got {type(classifier)}")
    x = check_templates(templates)
    labels = check_labels(y, n=x.shape[0], num_classes=2, min_classes=1)
    params = list(classifier.parameters()) if isinstance(classifier, torch.nn.Module) else []
    device = params[0].device if params else torch.device("cpu")
    with torch.no_grad():
        pred = predict(torch.as_tensor(x, dtype=torch.float32, device=device))
    pred = pred.detach().cpu().numpy() if isinstance(pred, torch.Tensor) else np.asarray(pred)
    if pred.size != x.shape[0] or not np.all(np.isin(pred, (0, 1))):
        raise ValueError(f"classifier: expected {x.shape[0]} predictions in {{0, 1}}, got shape {pred.shape}")
    return float(np.mean(pred.reshape(-1) == labels))


# --------------------------------------------------------------------------------------------------
# Measuring protected templates
# --------------------------------------------------------------------------------------------------


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

    def __len__(self) -> int:
        return len(self.indices)


def measure(
    sets: Mapping[SetKey, np.ndarray],
    target: EvaluationSet,
    folds: int = 3,
    grouped: bool = True,
    seed: int = 0,
    n_jobs: int | None = -1,
    classifier: Any = None,
    multiclass: bool = False,
) -> pd.DataFrame:
    """Every protected set of ``target``'s images, measured: one row per set, the columns of its key, ``dims`` and
    :data:`METRICS`.

    - setting A (:func:`setting_a`) with ``classifier`` (the MLP trained on clean templates), on the labelled rows;
    - setting B (:func:`setting_b_sweep`, one sweep per template dimension since IVE's sets shrink) on the
      labelled rows, folds grouped by identity unless ``grouped=False``;
    - with ``target.pairs``: verification (:func:`mifgsm_lib.verification.verify`): EER, TAR at FAR = 0.1 % and the
      10-fold accuracy, and PIC relative to :data:`REFERENCE` where it is among the sets (NaN where it is
      undefined: clean templates that verify every pair, EER 0, or leak nothing).
    """
    mask = target.labelled
    by_dim: dict[int, dict[SetKey, np.ndarray]] = {}
    for key, z in sets.items():
        if np.ndim(z) != 2 or len(z) != len(target):
            raise ValueError(f"sets[{key}]: expected one template per image of the evaluation set "
                             f"({len(target)}, dim), got shape {np.shape(z)}")
        by_dim.setdefault(z.shape[1], {})[key] = z[mask]
    privacy: dict[SetKey, SettingBResult] = {}
    for group in by_dim.values():
        privacy.update(setting_b_sweep(group, target.labels[mask], target.identity[mask], folds=folds, grouped=grouped,
                                       seed=seed, n_jobs=n_jobs, progress=False, multiclass=multiclass))
    p = target.pairs
    utility = {key: verification.verify(z, p.left, p.right, p.same, p.fold) for key, z in sets.items()} if p else {}
    rows = []
    for key, z in sets.items():
        b = privacy[key]
        row: dict[str, Any] = {**key._asdict(), "dims": z.shape[1]}
        if classifier is not None:
            row["setting_a"] = setting_a(classifier, z[mask], target.labels[mask])
        row["setting_b"] = b.mean
        row.update({f"B_{c}": score for c, score in b.balanced_accuracy.items() if c != "mean"})
        if key in utility:
            v = utility[key]
            row.update({"eer": v.eer, "tar_at_far": v.tar_at_far, "accuracy": v.accuracy_mean})
        rows.append(row)
    frame = pd.DataFrame(rows)
    if utility and REFERENCE in sets:
        ref_b, ref_eer = privacy[REFERENCE].mean, utility[REFERENCE].eer
        frame["pic"] = [pic(ref_b, b, ref_eer, eer) if ref_eer > 0 and ref_b > 0.5 else np.nan
                        for b, eer in zip(frame["setting_b"], frame["eer"])]
    return frame
