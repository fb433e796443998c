"""The two evaluation settings of the paper (Sec. 5, Table 1), their sweeps, and image quality.

- **Setting A (attack).** The MLP gender classifier trained on *clean* templates is
  applied, unchanged, to the perturbed templates: its accuracy measures how well the
  attack fools a fixed decision boundary.
- **Setting B (privacy).** Gender classifiers are *retrained* on the perturbed
  templates: logistic regression, a linear SVM and an RBF-kernel SVM, each 3-fold
  cross-validated; the mean of their balanced accuracies measures how separable the
  genders still are (50% = no gender information left).

Beyond the paper's two settings: the sweep over ε that shares its folds and runs in one
parallel pool, the mixing of clean and perturbed templates (Fig. 5), ε* (Sec. 6.2.2),
PSNR/SSIM, and the PIC trade-off coefficient.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
from joblib import Parallel, delayed
from skimage.metrics import structural_similarity
from sklearn.base import BaseEstimator, clone
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, LinearSVC
from threadpoolctl import ThreadpoolController

from mifgsm_lib.progress import bar

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


def _as_templates(templates: Any, name: str = "templates") -> np.ndarray:
    x = np.asarray(templates, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array (n_samples, dim), got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        bad = np.flatnonzero(~np.all(np.isfinite(x), axis=1))
        raise ValueError(f"{name}: expected finite values, rows {bad[:5].tolist()} contain NaN/inf")
    return x


def _as_labels(y: Any, n_samples: int, multiclass: bool = False) -> np.ndarray:
    """Labels of two classes (gender), or of at least two with ``multiclass=True`` (e.g. age group, race)."""
    labels = np.asarray(y)
    if labels.shape != (n_samples,):
        raise ValueError(f"y: expected one label per template ({n_samples}), got shape {labels.shape}")
    classes = np.unique(labels)
    if multiclass and classes.size < 2:
        raise ValueError(f"y: expected at least two classes, got {classes.size}: {classes[:5].tolist()}")
    if not multiclass and classes.size != 2:
        raise ValueError(f"y: expected two classes (gender), got {classes.size}: {classes[:5].tolist()}")
    return labels


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
    return setting_b_sweep({0.0: _as_templates(templates)}, y, groups, folds, grouped, seed, n_jobs, classifiers,
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
    sets = {key: _as_templates(x, f"templates_by_eps[{key!r}]") for key, x in templates_by_eps.items()}
    shapes = {x.shape for x in sets.values()}
    if len(shapes) != 1:
        raise ValueError(f"templates_by_eps: expected arrays of one shape, got {sorted(shapes)}")
    n = next(iter(sets.values())).shape[0]
    labels = _as_labels(y, n, multiclass)
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
    x_clean, x_pert = _as_templates(clean, "clean"), _as_templates(perturbed, "perturbed")
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
    x = _as_templates(templates)
    labels = np.asarray(y)
    if labels.shape != (x.shape[0],) or not np.all(np.isin(labels, (0, 1))):
        raise ValueError(f"y: expected {x.shape[0]} labels in {{0, 1}}, got shape {labels.shape}")
    params = list(classifier.parameters()) if isinstance(classifier, torch.nn.Module) else []
    device = params[0].device if params else torch.device("cpu")
    with torch.no_grad():
        pred = predict(torch.as_tensor(x, dtype=torch.float32, device=device))
    pred = pred.detach().cpu().numpy() if isinstance(pred, torch.Tensor) else np.asarray(pred)
    if pred.size != x.shape[0] or not np.all(np.isin(pred, (0, 1))):
        raise ValueError(f"classifier: expected {x.shape[0]} predictions in {{0, 1}}, got shape {pred.shape}")
    return float(np.mean(pred.reshape(-1) == labels))


def closest_to_chance(eps_values: Sequence[float], accuracies: Sequence[float]) -> float:
    """ε*: the ε whose setting-B accuracy is closest to 50% (Sec. 6.2.2).

    Ties (within 1e-12, so 0.45 and 0.55 tie) go to the smallest ε, the least perturbation.
    """
    eps = np.asarray(eps_values, dtype=np.float64)
    acc = np.asarray(accuracies, dtype=np.float64)
    if eps.ndim != 1 or eps.shape != acc.shape or eps.size == 0:
        raise ValueError(
            "eps_values and accuracies: expected two non-empty 1-D lists of one length, "
            f"got {eps.shape} and {acc.shape}"
        )
    if not (np.all(np.isfinite(eps)) and np.all((acc >= 0) & (acc <= 1))):
        raise ValueError("eps_values and accuracies: expected finite ε and accuracies as fractions in [0, 1]")
    distance = np.abs(acc - 0.5)
    candidates = np.flatnonzero(np.isclose(distance, distance.min(), rtol=0.0, atol=1e-12))
    return float(eps[candidates].min())


def privacy_gain(acc_clean: float, acc_protected: float) -> float:
    """PG = (acc_clean - acc_protected) / (acc_clean - 0.5): the share of the gap to chance removed."""
    if not 0.5 < acc_clean <= 1 or not 0 <= acc_protected <= 1:
        raise ValueError(
            f"acc_clean={acc_clean}, acc_protected={acc_protected}: "
            "expected acc_clean in (0.5, 1] and acc_protected in [0, 1]"
        )
    return (acc_clean - acc_protected) / (acc_clean - 0.5)


def relative_eer_loss(eer_clean: float, eer_protected: float) -> float:
    """IL = (EER_protected - EER_clean) / EER_clean: the relative increase of the EER."""
    if not 0 < eer_clean <= 1 or not 0 <= eer_protected <= 1:
        raise ValueError(
            f"eer_clean={eer_clean}, eer_protected={eer_protected}: "
            "expected eer_clean in (0, 1] and eer_protected in [0, 1]"
        )
    return (eer_protected - eer_clean) / eer_clean


def pic(acc_clean: float, acc_protected: float, eer_clean: float, eer_protected: float) -> float:
    """PIC = privacy gain - relative EER loss (higher is a better trade-off).

    The privacy-gain / identity-loss coefficient of Terhörst et al.'s soft-biometric
    privacy work, as used by Rezgui et al.'s later work. Caveat: we define the gain on
    setting-B balanced accuracy normalised by the clean gap to chance
    (:func:`privacy_gain`) and the loss as the relative EER increase
    (:func:`relative_eer_loss`); the original papers define the gain on attribute
    misclassification rates and the loss on a verification error at a fixed operating
    point, so our values are comparable with each other, not with published PICs.
    """
    return privacy_gain(acc_clean, acc_protected) - relative_eer_loss(eer_clean, eer_protected)


def _as_image_pair(clean: Any, perturbed: Any, data_range: float) -> tuple[np.ndarray, np.ndarray]:
    """Two float image batches (N, 3, H, W) of one shape with values in [0, data_range]."""
    a, b = np.asarray(clean, dtype=np.float64), np.asarray(perturbed, dtype=np.float64)
    for name, im in (("clean", a), ("perturbed", b)):
        if im.ndim != 4 or im.shape[1] != 3:
            raise ValueError(f"{name}: expected images of shape (N, 3, H, W), got {im.shape}")
        if not np.all(np.isfinite(im)) or im.min() < 0 or im.max() > data_range:
            raise ValueError(f"{name}: expected finite values in [0, {data_range}]")
    if a.shape != b.shape:
        raise ValueError(f"clean and perturbed: expected the same shape, got {a.shape} and {b.shape}")
    return a, b


def psnr(clean: np.ndarray, perturbed: np.ndarray, data_range: float = 1.0) -> np.ndarray:
    """PSNR per image, 10 log10(data_range^2 / MSE) dB (inf where identical); images (N, 3, H, W)."""
    a, b = _as_image_pair(clean, perturbed, data_range)
    mse = np.mean((a - b) ** 2, axis=(1, 2, 3))
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(data_range**2 / mse)


def ssim(clean: np.ndarray, perturbed: np.ndarray, data_range: float = 1.0, progress: bool = True) -> np.ndarray:
    """SSIM per image (skimage ``structural_similarity``, channels averaged); images (N, 3, H, W)."""
    a, b = _as_image_pair(clean, perturbed, data_range)
    if min(a.shape[2:]) < 7:
        raise ValueError(f"clean: expected images of at least 7x7 (the SSIM window), got {a.shape[2:]}")
    return np.array(
        [
            structural_similarity(a[i], b[i], channel_axis=0, data_range=data_range)
            for i in bar(range(a.shape[0]), desc="SSIM", disable=not progress)
        ]
    )
