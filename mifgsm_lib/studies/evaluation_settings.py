"""The chapter "Evaluation settings" (paper Secs. 5-6.2, Figs. 2-6): the attacks in settings A and B over ε.

Each function returns a :class:`pandas.DataFrame` that the chapter plots or tabulates, built from the cached
steps of :mod:`mifgsm_lib.pipeline` and measured by :func:`mifgsm_lib.evaluation.measure`, so nothing is
computed twice across chapters. The sweeps of Figs. 2-6 share one set of ε grids
(:func:`mifgsm_lib.config.eps_grids`): one :func:`attack_sweep` over their union embeds every ε once per
attack, and each figure takes its rows with :func:`mifgsm_lib.privacy.on_grid`; the paper's findings are
decided on the measured sweep by :func:`mifgsm_lib.verdicts.paper_findings`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from mifgsm_lib import evaluation, methods, pipeline, privacy
from mifgsm_lib.config import RunConfig
from mifgsm_lib.evaluation import SetKey
from mifgsm_lib.validation import check_eps_list

#: The MI-based attacks (Sec. 3.1) and the white-box attacks of the paper (Secs. 3.1-3.2).
_MI = ("mi-fgsm", "mi-fgsm-mlp")
_WHITE = ("mi-fgsm-mlp", "fgsm")


def _gradient_attacks() -> tuple[str, ...]:
    """The paper's attacks whose direction is a gradient (all but the random attack)."""
    return tuple(m for m in methods.names("one-step", paper=True) if methods.get(m).gradient)


def _sets(cfg: RunConfig, attacks: Sequence[str], eps_values: Sequence[float], indices: np.ndarray, mode: str,
          batch_size: int, iteration: int | None = None) -> dict[SetKey, np.ndarray]:
    """The clean templates of ``indices`` (:data:`mifgsm_lib.evaluation.REFERENCE`) and each attack's at each ε."""
    sets = {evaluation.REFERENCE: pipeline.templates(cfg)["templates"][indices]}
    for method in attacks:
        perturbed = pipeline.perturbed_templates(cfg, method, eps_values, indices, mode=mode, batch_size=batch_size,
                                                 iteration=iteration)
        sets.update({SetKey(method, "eps", e): z for e, z in perturbed.items()})
    return sets


def _per_attack(frame: pd.DataFrame, attacks: Sequence[str], eps_values: Sequence[float],
                columns: Sequence[str]) -> pd.DataFrame:
    """One row per (attack, ε), the clean row repeated as each attack's ε = 0, from :func:`measure`'s rows."""
    by_key = {(r.method, r.value): r for r in frame.itertuples(index=False)}
    rows = []
    for method in attacks:
        for key in [("reference", 0.0)] + [(method, e) for e in eps_values]:
            r = by_key[key]
            rows.append({"method": method, "eps": key[1], **{c: getattr(r, c) for c in columns}})
    return pd.DataFrame(rows)


def attack_sweep(
    cfg: RunConfig,
    attacks: Sequence[str] | None,
    eps_list: Sequence[float],
    indices: np.ndarray,
    mode: str = "float",
    iteration: int | None = None,
    batch_size: int = 64,
    grouped: bool = True,
) -> pd.DataFrame:
    """Settings A and B for each attack and ε (Figs. 2-4); ε = 0 is the clean row of each attack.

    Setting A is the MLP trained on clean templates; setting B is the mean balanced accuracy of the three
    classifiers cross-validated on the perturbed templates (folds grouped by identity unless ``grouped=False``).
    ``iteration`` is the vCLUB checkpoint of the MI attacks (default: the profile's ``estimator_iterations``),
    ``batch_size`` the batch of the MI gradient. ``attacks=None``: every one-step attack of
    :mod:`mifgsm_lib.methods`. All (attack, ε) sets are evaluated in one parallel pool.
    """
    attacks = methods.one_step_or_all(attacks)
    eps_values = check_eps_list(eps_list)
    checkpoint = _checkpoint(cfg, iteration)
    target = pipeline.evaluation_set(cfg, indices=indices)
    sets = _sets(cfg, attacks, eps_values, target.indices, mode, batch_size, checkpoint)
    frame = evaluation.measure(sets, target, folds=int(cfg.sizes["cv_folds"]), grouped=grouped, seed=cfg.seed,
                               classifier=pipeline.mlp(cfg)[0])
    rows = _per_attack(frame, attacks, eps_values,
                       ["setting_a", "setting_b", *(f"B_{c}" for c in evaluation.CLASSIFIERS)])
    rows.insert(2, "mode", mode)
    rows.insert(3, "iteration", int(cfg.sizes["estimator_iterations"] if checkpoint is None else checkpoint))
    rows.insert(4, "batch_size", batch_size)
    rows.insert(5, "grouped", grouped)
    return rows


def _checkpoint(cfg: RunConfig, iteration: int | None) -> int | None:
    """The estimator checkpoint as the cache keys it: the profile's final iteration is the default (``None``)."""
    if iteration is None or int(iteration) == int(cfg.sizes["estimator_iterations"]):
        return None
    return int(iteration)


def estimator_iterations_sweep(
    cfg: RunConfig,
    eps_list: Sequence[float],
    indices: np.ndarray,
    mode: str = "float",
    batch_size: int = 64,
    final: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Fig. 2: MI-FGSM with the estimator stopped at each of the profile's ``estimator_checkpoints``.

    ``final``, an :func:`attack_sweep` of MI-FGSM with the final estimator on the same images, mode and batch
    size, supplies that checkpoint's rows instead of a second computation; it must hold every ε of ``eps_list``.
    """
    eps_values = check_eps_list(eps_list)
    reused = None
    if final is not None:
        same = (final["method"] == "mi-fgsm") & (final["mode"] == mode) & (final["batch_size"] == batch_size)
        reused = privacy.on_grid(final[same & final["grouped"]], eps_values)
        if len(reused) != len(eps_values) + 1:
            raise ValueError(f"final: expected MI-FGSM rows ({mode}, batch {batch_size}) at every ε of "
                             f"{eps_values} and the clean row, found {sorted(reused['eps'])}")
    frames = [
        reused if reused is not None and _checkpoint(cfg, it) is None
        else attack_sweep(cfg, ["mi-fgsm"], eps_values, indices, mode=mode, iteration=int(it), batch_size=batch_size)
        for it in cfg.sizes["estimator_checkpoints"]
    ]
    return pd.concat(frames, ignore_index=True)


def mixing_curve(
    cfg: RunConfig,
    method: str,
    eps: float,
    indices: np.ndarray,
    mode: str = "float",
    batch_size: int = 64,
    grid: Sequence[float] | None = None,
) -> pd.DataFrame:
    """Fig. 5: setting B when a fraction of the templates is clean and the rest attacked at ``eps``.

    ``grid`` is the ε list of the sweep that ``eps`` comes from, so its cached templates are reused
    (default ``[eps]``). The clean fractions are :data:`mifgsm_lib.evaluation.MIXING_FRACTIONS`.
    """
    grid = [float(eps)] if grid is None else [float(e) for e in grid]
    if not np.isclose(grid, float(eps), rtol=0.0, atol=1e-12).any():
        raise ValueError(f"eps={eps!r}: expected one of the grid's levels {grid}")
    clean = pipeline.templates(cfg)
    perturbed = pipeline.perturbed_templates(cfg, method, grid, indices, mode=mode, batch_size=batch_size)
    attacked = perturbed[grid[int(np.argmin(np.abs(np.asarray(grid) - float(eps))))]]
    results = evaluation.mixing(clean["templates"][indices], attacked, clean["gender"][indices],
                                groups=clean["identity"][indices], seed=cfg.seed, folds=cfg.sizes["cv_folds"],
                                progress=False)
    return pd.DataFrame([{"method": method, "eps": float(eps), "clean_fraction": f, "setting_b": r.mean}
                         for f, r in results.items()])


def tsne_points(templates: np.ndarray, seed: int, perplexity: float = 30.0) -> np.ndarray:
    """Fig. 6: a 2-D t-SNE of templates (scikit-learn, PCA initialisation, seeded).

    It runs on one thread: scikit-learn's OpenMP gradient is ~10x slower on busy (shared) cores and not faster on
    a few hundred points.
    """
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    n = len(templates)
    tsne = TSNE(n_components=2, perplexity=min(perplexity, (n - 1) / 3), init="pca", random_state=seed)
    with threadpool_limits(limits=1):
        return tsne.fit_transform(np.asarray(templates, dtype=np.float64))


def tsne_panels(
    cfg: RunConfig,
    method: str,
    eps_values: Sequence[float],
    indices: np.ndarray,
    grid: Sequence[float],
    mode: str = "float",
    batch_size: int = 64,
) -> pd.DataFrame:
    """Fig. 6 (bottom): t-SNE of the clean templates and of the templates at each ε, coloured by gender.

    The same ``cfg.sizes["tsne_points"]`` images (a seeded sample of ``indices``) appear in every panel; the
    templates at ε come from the sweep over ``grid``.
    """
    clean = pipeline.templates(cfg)
    n = min(int(cfg.sizes["tsne_points"]), len(indices))
    pick = np.sort(np.random.default_rng(cfg.seed).choice(len(indices), n, replace=False))
    perturbed = pipeline.perturbed_templates(cfg, method, [float(e) for e in grid], indices, mode=mode,
                                             batch_size=batch_size)
    panels = {0.0: clean["templates"][indices]}
    for e in eps_values:
        match = [g for g in perturbed if np.isclose(g, float(e), rtol=0.0, atol=1e-12)]
        if not match:
            raise ValueError(f"eps_values: {e!r} is not in the grid {sorted(perturbed)}")
        panels[float(e)] = perturbed[match[0]]
    frames = []
    for e, z in panels.items():
        xy = tsne_points(z[pick], seed=cfg.seed)
        frames.append(pd.DataFrame({"method": method, "eps": e, "x": xy[:, 0], "y": xy[:, 1],
                                    "gender": clean["gender"][indices][pick]}))
    return pd.concat(frames, ignore_index=True)


def verification_sweep(
    cfg: RunConfig, attacks: Sequence[str], eps_list: Sequence[float], mode: str = "float", batch_size: int = 64
) -> pd.DataFrame:
    """Beyond the paper: verification (EER, accuracy, TAR@FAR=0.1 %) and setting B as ε grows, per attack, on the
    images of the profile's verification pairs (:func:`mifgsm_lib.pipeline.evaluation_set`).

    Images of unknown gender keep their clean template (the attacks need the label,
    :func:`mifgsm_lib.pipeline.directions`) and are left out of setting B.
    """
    attacks = methods.check_methods(attacks, "one-step", "attacks")
    eps_values = check_eps_list(eps_list)
    target = pipeline.evaluation_set(cfg)
    sets = _sets(cfg, attacks, eps_values, target.indices, mode, batch_size)
    frame = evaluation.measure(sets, target, folds=int(cfg.sizes["cv_folds"]), seed=cfg.seed)
    rows = _per_attack(frame, attacks, eps_values, ["setting_b", "eer", "accuracy", "tar_at_far"])
    rows.insert(2, "mode", mode)
    rows["n_pairs"] = len(target.pairs)
    return rows
