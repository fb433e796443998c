"""The privacy-verification trade-off (paper Sec. 6.3, Table 2): MI-FGSM against IVE and Multi-IVE.

Every method protects the templates of the images of the dataset's verification pairs, and each set of
protected templates is measured twice, on the same images:

- **privacy**: setting B (:func:`mifgsm_lib.evaluation.setting_b`), the mean balanced accuracy of logistic
  regression, a linear SVM and an RBF SVM retrained on the protected templates of the labelled images,
  3-fold cross-validated (50% = no gender left);
- **utility**: verification (:func:`mifgsm_lib.verification.verify`) of the pairs, Euclidean distance
  between the protected templates of both images: EER and TAR at FAR = 0.1%;
- and their **PIC** (:func:`mifgsm_lib.evaluation.pic`), privacy gain minus relative EER loss.

The methods run over their whole parameter range, giving a privacy-utility curve each (the *frontier*):
the image attacks (MI-FGSM and the paper's other attacks) over ε; IVE and Multi-IVE over their
elimination steps, their importance estimators trained on another dataset (UTKFace for LFW, as the paper
trains "using a different dataset than the evaluation set"). Table 2 then takes one point per method:
MI-FGSM at ε*, the ε whose setting-B accuracy is closest to 50%, and for IVE and Multi-IVE the step whose
setting-B accuracy is closest to MI-FGSM's at ε* (the paper's "best closest performance in terms of
privacy").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mifgsm_lib import evaluation, methods, paper, pipeline, privacy
from mifgsm_lib.config import RunConfig
from mifgsm_lib.evaluation import REFERENCE, SetKey
from mifgsm_lib.pipeline import BaselineCurve
from mifgsm_lib.validation import check_eps_list

#: Multi-IVE's locked principal components (the paper: PCA domain, 5 locked, after Melzi et al.).
LOCKED_COMPONENTS = 5

#: Elimination steps of both baselines; with ``dim // 16`` dimensions per step the curve runs from the
#: full template down to an eighth of it (dlib: 128 -> 16 dimensions, 8 per step).
ELIMINATION_STEPS = 14

#: The dataset the baselines' importance estimators are trained on by default (the evaluated one is another).
TRAIN_DATASET = "utkface"

#: Setting-B gap (fraction) beyond which :func:`claim` calls a privacy match loose; the paper's own matches
#: are up to 2.9 points apart (AgeDB: MI-FGSM 87.02% against IVE 89.92%).
MATCH_TOLERANCE = 0.03

#: The frontier's columns of measurements (:func:`mifgsm_lib.evaluation.measure`).
METRICS = ("setting_b", *(f"B_{c}" for c in evaluation.CLASSIFIERS), "eer", "tar_at_far", "accuracy", "pic")


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


@dataclass(frozen=True)
class TradeOff:
    """The frontier of one run, the baselines' curves, and what it was measured on (for the caveats)."""

    frontier: pd.DataFrame
    curves: dict[str, BaselineCurve]
    target: evaluation.EvaluationSet
    dataset: str
    model: str
    n_images: int
    n_labelled: int
    n_pairs: int
    train_dataset: str
    n_train: int
    attacks: tuple[str, ...]
    eps_list: tuple[float, ...]
    n_per_step: int
    n_steps: int
    n_locked: int
    folds: int
    grouped: bool


def protected_sets(cfg: RunConfig, target: evaluation.EvaluationSet, attacks: Sequence[str],
                   eps_list: Sequence[float], curves: dict[str, BaselineCurve]) -> dict[SetKey, np.ndarray]:
    """Every protected template set of ``target``'s images, the clean one first (:data:`REFERENCE`): each attack's
    templates at each ε (:func:`mifgsm_lib.pipeline.perturbed_templates`, ``float`` storage as in the paper; images
    of unknown gender keep their clean template) and each baseline's after each of its steps."""
    sets: dict[SetKey, np.ndarray] = {REFERENCE: pipeline.templates(cfg)["templates"][target.indices]}
    for method in attacks:
        sets.update({SetKey(method, "eps", e): z
                     for e, z in pipeline.perturbed_templates(cfg, method, eps_list, target.indices).items()})
    for method, curve in curves.items():
        sets.update({SetKey(method, "step", float(k)): z for k, z in curve.templates.items()})
    return sets


def run(
    cfg: RunConfig,
    attacks: Sequence[str] | None = None,
    eps_list: Sequence[float] | None = None,
    train_dataset: str = TRAIN_DATASET,
    n_per_step: int | None = None,
    n_steps: int = ELIMINATION_STEPS,
    n_locked: int = LOCKED_COMPONENTS,
    n_estimators: int = 30,
    grouped: bool = True,
    n_jobs: int | None = -1,
    progress: bool = True,
) -> TradeOff:
    """The whole trade-off of ``cfg``'s dataset: every method over its parameter range, measured.

    ``attacks=None``: the profile's ``frontier_attacks`` (None: every registered one-step attack; each one beyond
    MI-FGSM costs one gradient and one forward pass per ε for every image of the pairs, about 4 minutes on a 2-core
    CPU over the default profile's 7,701 images); ``eps_list=None``: its ``tradeoff_eps``; the baselines
    (every ``template`` method of :mod:`mifgsm_lib.methods`) trained on ``train_dataset``
    (:func:`mifgsm_lib.pipeline.baseline_templates`) with ``n_per_step=None`` taken from
    :func:`elimination_plan`. The frontier gets a column ``kept``: the dimensions (IVE) or PCA components
    (Multi-IVE) kept, the template dimension elsewhere.
    """
    attacks = methods.one_step_or_all(cfg.sizes["frontier_attacks"] if attacks is None else attacks)
    eps_values = sorted(check_eps_list(cfg.sizes["tradeoff_eps"] if eps_list is None else eps_list))
    target = pipeline.evaluation_set(cfg)
    train = pipeline.templates(cfg, train_dataset)
    if n_per_step is None:
        n_per_step, n_steps = elimination_plan(train["templates"].shape[1], n_locked, n_steps)
    curves = {m: pipeline.baseline_templates(cfg, m, target.indices, train_dataset, n_per_step, n_steps, n_locked,
                                             n_estimators, n_jobs, progress) for m in methods.names("template")}
    sets = protected_sets(cfg, target, attacks, eps_values, curves)
    folds = int(cfg.sizes["cv_folds"])
    frontier = evaluation.measure(sets, target, folds=folds, grouped=grouped, seed=cfg.seed, n_jobs=n_jobs)
    frontier["kept"] = [int(curves[m].kept[int(v)]) if m in curves else d
                        for m, v, d in zip(frontier["method"], frontier["value"], frontier["dims"])]
    return TradeOff(
        frontier=frontier, curves=curves, target=target, dataset=cfg.dataset, model=cfg.model, n_images=len(target),
        n_labelled=int(target.labelled.sum()), n_pairs=len(target.pairs), train_dataset=train_dataset,
        n_train=int((train["gender"] >= 0).sum()), attacks=tuple(attacks), eps_list=tuple(eps_values),
        n_per_step=int(n_per_step), n_steps=len(curves["ive"].templates), n_locked=int(n_locked), folds=folds,
        grouped=grouped,
    )


def effective_dimension(templates: np.ndarray, rtol: float = 1e-6) -> int:
    """How many dimensions the templates really span: singular values of the centred templates above
    ``rtol`` times the largest (dlib's 128-D templates span fewer, so Multi-IVE's last PCA components are empty)."""
    z = np.asarray(templates, dtype=np.float64)
    if z.ndim != 2 or len(z) < 2:
        raise ValueError(f"templates: expected a 2-D array of at least 2 templates, got shape {z.shape}")
    s = np.linalg.svd(z - z.mean(axis=0), compute_uv=False)
    return int((s > rtol * s[0]).sum())


def locked_setting_b(curve: BaselineCurve, target: evaluation.EvaluationSet, folds: int = 3, grouped: bool = True,
                     seed: int = 0, n_jobs: int | None = -1) -> evaluation.SettingBResult:
    """Setting B on ``target``'s templates reduced to Multi-IVE's locked principal components (``curve.locked``,
    :meth:`mifgsm_lib.baselines.MultiIVE.transform_locked`): the privacy floor of Multi-IVE, which never eliminates
    the locked components (beyond the paper; it explains a Multi-IVE curve that stops falling)."""
    if curve.locked is None:
        raise ValueError("curve: expected a Multi-IVE curve (with locked components)")
    mask = target.labelled
    return evaluation.setting_b(curve.locked[mask], target.labels[mask], target.identity[mask], folds=folds,
                                grouped=grouped, seed=seed, n_jobs=n_jobs)


def _rows(frontier: pd.DataFrame, method: str) -> pd.DataFrame:
    rows = frontier[frontier["method"] == method]
    if rows.empty:
        raise ValueError(f"frontier: no rows of method {method!r}; it has {sorted(set(frontier['method']))}")
    return rows


def eps_star(frontier: pd.DataFrame, attack: str = "mi-fgsm") -> float:
    """ε* of an attack on the frontier: the ε whose setting-B accuracy is closest to 50% (ties: smallest ε).

    The rule of :func:`mifgsm_lib.privacy.eps_star` (Sec. 6.2.2), applied to the trade-off's own images.
    """
    rows = _rows(frontier, attack)
    return float(privacy.eps_star(rows, "value")[attack])


def matched_step(frontier: pd.DataFrame, method: str, target: float) -> pd.Series:
    """The frontier row of a baseline, step >= 1, whose setting-B accuracy is closest to ``target``.

    The paper's "best closest performance in terms of privacy"; ties go to the earlier step (fewer
    eliminations). Step 0 (the untouched templates) is the reference, not the method.
    """
    methods.check_methods([method], "template", "method")
    if not 0.0 <= target <= 1.0:
        raise ValueError(f"target={target!r}: expected a setting-B accuracy as a fraction in [0, 1]")
    rows = _rows(frontier, method)
    rows = rows[(rows["parameter"] == "step") & (rows["value"] >= 1)]
    gap = (rows["setting_b"] - target).abs()
    closest = rows[np.isclose(gap, gap.min(), rtol=0.0, atol=1e-12)]
    return closest.sort_values("value").iloc[0]


def table2(frontier: pd.DataFrame) -> pd.DataFrame:
    """Table 2: the frontier rows of Reference, MI-FGSM at ε* and IVE/Multi-IVE at matched privacy.

    Indexed by :data:`mifgsm_lib.paper.TABLE2_ROWS`, with a ``setting`` column saying which point of each method was taken.
    """
    reference = _rows(frontier, "reference").iloc[0]
    eps = eps_star(frontier, "mi-fgsm")
    attacked = frontier[(frontier["method"] == "mi-fgsm") & (frontier["value"] == eps)].iloc[0]
    ive, multi = (matched_step(frontier, m, float(attacked["setting_b"])) for m in ("ive", "multi-ive"))
    dim = int(reference["dims"])
    settings = [
        f"clean {dim}-D templates",
        f"ε* = {eps:g} ({255 * eps:.2g} grey levels)",
        f"step {int(ive['value'])}: {int(ive['kept'])} of {dim} dimensions kept",
        f"step {int(multi['value'])}: {int(multi['kept'])} of {dim} PCA components kept",
    ]
    table = pd.DataFrame([reference, attacked, ive, multi], index=list(paper.TABLE2_ROWS))
    table.insert(0, "setting", settings)
    return table


def beside_paper(table: pd.DataFrame, label: str) -> pd.DataFrame:
    """Our Table 2 in percent (gender, EER, TAR@FAR = 0.1%, PIC) beside :data:`mifgsm_lib.paper.TABLE2`."""
    ours = pd.DataFrame({
        "setting": table["setting"], "Gender (%)": 100 * table["setting_b"], "EER (%)": 100 * table["eer"],
        "TAR@FAR=0.1% (%)": 100 * table["tar_at_far"], "PIC": table["pic"],
    }, index=table.index)
    ours.columns = pd.MultiIndex.from_product([[f"ours: {label}"], ours.columns])
    return pd.concat([ours, paper.TABLE2], axis=1)


def setup_differences(result: TradeOff) -> pd.DataFrame:
    """Our setup beside the paper's, row by row, for the chapter's caveats."""
    lfw = result.dataset == "lfw"
    pairs_source = {"lfw": "pairs.txt (View 2)", "agedb": "AgeDB-30, drawn with the seed"}.get(
        result.dataset, "the LFW protocol, drawn with the seed")
    rows = {
        "face model": (f"{result.model} ({int(result.frontier['dims'].iloc[0])}-D templates)",
                       "IResNet50 ArcFace trained on VGGFace2 (512-D)"),
        "images measured": (f"{result.n_images} images of the {result.n_pairs} pairs of {result.dataset}"
                            + (" (the mirror: 150x150 crops, exactly the pairs' images)" if lfw else ""),
                            "whole datasets: LFW 13,233, AgeDB 16,516, ColorFERET 11,338 images"),
        "verification pairs": (f"{result.n_pairs}, {pairs_source}", "6,000: LFW protocol; AgeDB-30 for AgeDB"),
        "setting B": (f"{result.n_labelled} labelled images, {result.folds}-fold, "
                      + ("grouped by identity" if result.grouped else "plain stratified"),
                      "whole dataset, 3-fold (plain stratified folds)"),
        "baselines trained on": (f"{result.train_dataset}: {result.n_train} labelled templates, same face model",
                                 "another dataset than the evaluated one (not named)"),
        "baselines' steps": (f"{result.n_per_step} per step, {result.n_steps} steps; Multi-IVE: PCA, "
                             f"{result.n_locked} locked", "'several elimination steps'; Multi-IVE: PCA, 5 locked"),
        "ε grid, ε*": (f"{', '.join(f'{e:g}' for e in result.eps_list)}; ε* closest to 50% on these images",
                       "ε* closest to 50% on the 5,000-image subset (Fig. 4: 50 steps up to 0.03)"),
        "other attacks on the frontier": (", ".join(methods.label(a) for a in result.attacks), "(no frontier)"),
    }
    return pd.DataFrame.from_dict(rows, orient="index", columns=["ours", "paper"])
