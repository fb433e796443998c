"""Setting B+: a stronger adversary than the paper's (beyond the paper).

Setting B retrains three fairly weak classifiers (logistic regression, a linear SVM, an RBF SVM, each with
scikit-learn's defaults). A real adversary who knows the protection (Kerckhoffs's principle, as the
soft-biometric privacy protocols of Terhörst et al., BIOSIG 2020, ask) uses the best classifier they can find.
Setting B+ keeps setting B's protocol (the same grouped cross-validation, balanced accuracy, the mean over the
classifiers) and replaces its classifiers by three stronger, tuned ones:

- a multi-layer perceptron (``MLPClassifier``, one hidden layer of 128, early stopping), L2 weight searched;
- a gradient-boosted tree ensemble (``HistGradientBoostingClassifier``), the leaves per tree searched;
- a k-nearest-neighbour classifier on standardised templates, k searched.

Each search is a ``GridSearchCV`` over two values, run *inside* the training folds of setting B (2 inner folds,
stratified, balanced accuracy), so the test fold never chooses a hyper-parameter. The grids are small so that
setting B+ costs a few minutes per study on a 2-core CPU; the chapter states their sizes.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.neighbors import KNeighborsClassifier
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mifgsm_lib.evaluation.measure import EvaluationSet, SetKey
from mifgsm_lib.evaluation.settings import SettingBResult, fold_splits, setting_b_sweep
from mifgsm_lib.intervals import N_BOOT

#: Setting B+'s classifiers, by name, in the order tables show them.
STRONGER_CLASSIFIERS = ("mlp", "boosted_trees", "knn")

#: Folds of the hyper-parameter search inside each training fold.
INNER_FOLDS = 2

#: The share of a fit's images that early stopping holds out (scikit-learn's default ``validation_fraction``).
VALIDATION_FRACTION = 0.1


def stronger_classifier(name: str, seed: int = 0, n_fit: int | None = None, n_classes: int = 2) -> GridSearchCV:
    """One of setting B+'s tuned classifiers (see the module's text): a ``GridSearchCV`` over a small grid, its
    inner folds stratified and seeded.

    ``n_fit``, the fewest images any of its fits sees (None: many), adapts it to small datasets by a fixed rule: the
    MLP and the boosted trees stop early only where their 10 % validation split holds at least one image per class
    (else they train for their full ``max_iter``), and k-NN searches only the k of its grid that do not exceed
    ``n_fit``."""
    inner = StratifiedKFold(n_splits=INNER_FOLDS, shuffle=True, random_state=seed)
    stop = n_fit is None or int(np.ceil(VALIDATION_FRACTION * n_fit)) >= n_classes
    neighbours = [k for k in (5, 25) if n_fit is None or k <= n_fit] or [max(1, int(n_fit or 1))]
    specs = {
        "mlp": (make_pipeline(StandardScaler(), MLPClassifier(hidden_layer_sizes=(128,), early_stopping=stop,
                                                              validation_fraction=VALIDATION_FRACTION,
                                                              max_iter=300, random_state=seed)),
                {"mlpclassifier__alpha": [1e-4, 1e-2]}),
        "boosted_trees": (HistGradientBoostingClassifier(max_iter=150, early_stopping=stop,
                                                          validation_fraction=VALIDATION_FRACTION, random_state=seed),
                          {"max_leaf_nodes": [15, 63]}),
        "knn": (make_pipeline(StandardScaler(), KNeighborsClassifier()), {"kneighborsclassifier__n_neighbors": neighbours}),
    }
    if name not in specs:
        raise ValueError(f"classifier {name!r}: expected one of {list(STRONGER_CLASSIFIERS)}")
    estimator, grid = specs[name]
    return GridSearchCV(estimator, grid, cv=inner, scoring="balanced_accuracy", n_jobs=1)


def setting_b_plus(
    templates_by_key: Mapping[object, np.ndarray],
    y: np.ndarray,
    groups: np.ndarray | None = None,
    folds: int = 3,
    grouped: bool = True,
    seed: int = 0,
    n_jobs: int | None = -1,
    multiclass: bool = False,
) -> dict[object, SettingBResult]:
    """Setting B+ for many template sets: :func:`~mifgsm_lib.evaluation.settings.setting_b_sweep` with the tuned
    classifiers of :func:`stronger_classifier` (the same folds, scoring and intervals as setting B)."""
    labels = np.asarray(y)
    smallest_train = min(len(train) for train, _ in fold_splits(labels, groups, folds, grouped, seed))
    n_fit = smallest_train // INNER_FOLDS  # the inner search's smaller training part
    classifiers = {name: stronger_classifier(name, seed, n_fit, np.unique(labels).size)
                   for name in STRONGER_CLASSIFIERS}
    return setting_b_sweep(templates_by_key, y, groups, folds, grouped, seed, n_jobs, classifiers, progress=False,
                           multiclass=multiclass)


def measure_plus(sets: Mapping[SetKey, np.ndarray], target: EvaluationSet, folds: int = 3, grouped: bool = True,
                 seed: int = 0, n_jobs: int | None = -1, n_boot: int = N_BOOT,
                 replicates: dict[SetKey, dict[str, np.ndarray]] | None = None) -> pd.DataFrame:
    """Setting B+ of each set of ``target``'s templates (its labelled rows), one row per set: the key, ``setting_b_plus``
    with its 95 % interval (identities resampled, as :func:`mifgsm_lib.evaluation.measure` does for setting B) and
    each tuned classifier's balanced accuracy (``B+_<name>``). ``replicates``, where given, receives the bootstrap
    replicates (``setting_b_plus``) for paired differences (:func:`mifgsm_lib.evaluation.paired_difference`)."""
    mask = target.labelled
    results = setting_b_plus({k: z[mask] for k, z in sets.items()}, target.labels[mask], target.identity[mask],
                             folds=folds, grouped=grouped, seed=seed, n_jobs=n_jobs)
    people, _ = target.bootstrap_weights(n_boot, seed)  # the draws of measure's setting B: paired
    rows = []
    for key, result in results.items():
        reps = result.replicates(people)
        if replicates is not None:
            replicates.setdefault(key, {})["setting_b_plus"] = reps
        interval = result.interval(people, reps)
        rows.append({**key._asdict(), "setting_b_plus": result.mean, "setting_b_plus_low": interval.low,
                     "setting_b_plus_high": interval.high,
                     **{f"B+_{c}": v for c, v in result.balanced_accuracy.items() if c != "mean"}})
    return pd.DataFrame(rows)
