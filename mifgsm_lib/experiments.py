"""The paper's experiments as functions of a run configuration (Figs. 2-6, Table 2, the ε-EER curve).

Each returns a :class:`pandas.DataFrame` that a chapter plots or tabulates. They are built from the cached
steps of :mod:`mifgsm_lib.pipeline` and the metrics of :mod:`mifgsm_lib.evaluation` and
:mod:`mifgsm_lib.verification`, so nothing is computed twice across chapters.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from mifgsm_lib import evaluation, pipeline, verification
from mifgsm_lib.config import RunConfig


def _setting_b_rows(
    cfg: RunConfig, sets: dict[float, np.ndarray], y: np.ndarray, groups: np.ndarray | None, grouped: bool
) -> dict[float, evaluation.SettingBResult]:
    return evaluation.setting_b_sweep(sets, y, groups=groups, folds=cfg.sizes["cv_folds"], grouped=grouped,
                                      seed=cfg.seed, n_jobs=-1)


def attack_sweep(
    cfg: RunConfig,
    methods: Sequence[str],
    eps_list: Sequence[float],
    indices: np.ndarray,
    mode: str = "float",
    iteration: int | None = None,
    batch_size: int = 64,
    grouped: bool = True,
) -> pd.DataFrame:
    """Settings A and B for each attack and ε (Figs. 2-4); ε = 0 is the clean row.

    Setting A is the MLP trained on clean templates; setting B is the mean balanced accuracy of the three
    classifiers cross-validated on the perturbed templates (folds grouped by identity unless ``grouped=False``).
    """
    clean = pipeline.templates(cfg)
    y, groups = clean["gender"][indices], clean["identity"][indices]
    mlp, _ = pipeline.mlp(cfg)
    rows = []
    for method in methods:
        sets = {0.0: clean["templates"][indices]}
        sets.update(pipeline.perturbed_templates(cfg, method, list(eps_list), indices, mode=mode,
                                                 batch_size=batch_size, iteration=iteration))
        setting_b = _setting_b_rows(cfg, sets, y, groups, grouped)
        for eps, z in sets.items():
            rows.append({
                "method": method, "eps": eps, "mode": mode, "iteration": iteration, "batch_size": batch_size,
                "setting_a": evaluation.setting_a(mlp, z, y), "setting_b": setting_b[eps].mean,
                **{f"B_{k}": v for k, v in setting_b[eps].balanced_accuracy.items() if k != "mean"},
            })
    return pd.DataFrame(rows)


def estimator_iterations_sweep(
    cfg: RunConfig, eps_list: Sequence[float], indices: np.ndarray, mode: str = "float", batch_size: int = 64
) -> pd.DataFrame:
    """Fig. 2: MI-FGSM with the estimator stopped at each checkpoint iteration, settings A and B."""
    frames = [
        attack_sweep(cfg, ["mi-fgsm"], eps_list, indices, mode=mode, iteration=int(it), batch_size=batch_size)
        for it in cfg.sizes["estimator_checkpoints"]
    ]
    return pd.concat(frames, ignore_index=True)


def eps_star(sweep: pd.DataFrame) -> pd.Series:
    """ε* per attack: the ε whose setting-B accuracy is closest to 50 % (clean row excluded)."""
    attacked = sweep[sweep["eps"] > 0]
    return attacked.groupby("method").apply(
        lambda g: evaluation.closest_to_chance(g["eps"].tolist(), g["setting_b"].tolist()), include_groups=False
    )


def mixing_curve(
    cfg: RunConfig, method: str, eps: float, indices: np.ndarray, mode: str = "float", batch_size: int = 64
) -> pd.DataFrame:
    """Fig. 5: setting B when a fraction of the templates is clean and the rest attacked at ``eps``."""
    clean = pipeline.templates(cfg)
    attacked = pipeline.perturbed_templates(cfg, method, [eps], indices, mode=mode, batch_size=batch_size)[float(eps)]
    results = evaluation.mixing(clean["templates"][indices], attacked, clean["gender"][indices],
                                groups=clean["identity"][indices], seed=cfg.seed, folds=cfg.sizes["cv_folds"])
    return pd.DataFrame([{"method": method, "eps": float(eps), "clean_fraction": f, "setting_b": r.mean}
                         for f, r in results.items()])


def tsne_points(templates: np.ndarray, seed: int, perplexity: float = 30.0) -> np.ndarray:
    """Fig. 6: a 2-D t-SNE of templates (scikit-learn, PCA initialisation, seeded)."""
    from sklearn.manifold import TSNE

    n = len(templates)
    return TSNE(n_components=2, perplexity=min(perplexity, (n - 1) / 3), init="pca", random_state=seed).fit_transform(
        np.asarray(templates, dtype=np.float64))


def verification_indices(cfg: RunConfig) -> tuple[np.ndarray, pipeline.data.Pairs]:
    """The images of the dataset's verification pairs in the profile's first ``verification_folds`` folds.

    Returns the sorted image indices and the pairs re-indexed into them. When one fold is kept (the quick
    profile), its pairs are dealt round-robin into 10 sub-folds so that the 10-fold accuracy stays defined.
    """
    pairs = pipeline.pairs(cfg)
    keep = pairs.fold < cfg.sizes["verification_folds"]
    indices = np.unique(np.concatenate([pairs.left[keep], pairs.right[keep]]))
    position = {int(i): k for k, i in enumerate(indices)}
    sub = pipeline.data.Pairs(
        left=np.array([position[int(i)] for i in pairs.left[keep]]),
        right=np.array([position[int(i)] for i in pairs.right[keep]]),
        same=pairs.same[keep],
        fold=pairs.fold[keep] if len(np.unique(pairs.fold[keep])) > 1 else np.arange(int(keep.sum())) % 10,
    )
    return indices, sub


def verification_sweep(
    cfg: RunConfig, methods: Sequence[str], eps_list: Sequence[float], mode: str = "float", batch_size: int = 64
) -> pd.DataFrame:
    """Beyond the paper: verification (EER, accuracy, TAR@FAR=0.1 %) and setting B as ε grows, per attack.

    Every image of the pairs is attacked, so privacy and its cost are measured on the same images.
    """
    indices, pairs = verification_indices(cfg)
    clean = pipeline.templates(cfg)
    y, groups = clean["gender"][indices], clean["identity"][indices]
    rows = []
    for method in methods:
        sets = {0.0: clean["templates"][indices]}
        sets.update(pipeline.perturbed_templates(cfg, method, list(eps_list), indices, mode=mode, batch_size=batch_size))
        setting_b = _setting_b_rows(cfg, sets, y, groups, True)
        for eps, z in sets.items():
            report = verification.verify(z, pairs.left, pairs.right, pairs.same, pairs.fold)
            rows.append({"method": method, "eps": eps, "mode": mode, "setting_b": setting_b[eps].mean,
                         "eer": report.eer, "accuracy": report.accuracy_mean, "tar_at_far": report.tar_at_far,
                         "n_pairs": report.n_pairs})
    return pd.DataFrame(rows)
