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

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd

from mifgsm_lib import evaluation, experiments, pipeline, verification
from mifgsm_lib.attacks import check_eps
from mifgsm_lib.baselines import IVE, MultiIVE
from mifgsm_lib.config import RunConfig
from mifgsm_lib.data import Pairs

#: The fine low-ε grid of the trade-off. With dlib, setting B is ABOVE the clean accuracy from ε ≈ 0.01
#: (the classifiers learn the perturbation), so the informative region is ε < 0.005 (0.25-1.3 grey levels).
EPS_GRID: tuple[float, ...] = (0.001, 0.002, 0.003, 0.004, 0.005, 0.0075, 0.01, 0.02)

#: The quick profile's (CI) shorter grid.
EPS_GRID_QUICK: tuple[float, ...] = (0.001, 0.002, 0.003, 0.005, 0.01)

#: Multi-IVE's locked principal components (the paper: PCA domain, 5 locked, after Melzi et al.).
LOCKED_COMPONENTS = 5

#: Elimination steps of both baselines; with ``dim // 16`` dimensions per step the curve runs from the
#: full template down to an eighth of it (dlib: 128 -> 16 dimensions, 8 per step).
ELIMINATION_STEPS = 14

#: The dataset the baselines' importance estimators are trained on by default (the evaluated one is another).
TRAIN_DATASET = "utkface"

#: The baselines, by the names of the frontier.
BASELINES = ("ive", "multi-ive")

#: Setting-B gap (fraction) beyond which :func:`claim` calls a privacy match loose; the paper's own matches
#: are up to 2.9 points apart (AgeDB: MI-FGSM 87.02% against IVE 89.92%).
MATCH_TOLERANCE = 0.03

#: Display names of the methods.
METHOD_NAMES = {
    "reference": "Reference (no privacy)", "mi-fgsm": "MI-FGSM", "mi-fgsm-mlp": "MI-FGSM-MLP", "fgsm": "FGSM",
    "random": "Random", "ive": "IVE", "multi-ive": "Multi-IVE",
}

#: Table 2's rows, ours and the paper's.
TABLE2_ROWS = ("Reference (no privacy)", "MI-FGSM", "IVE", "Multi-IVE")

#: The paper's Table 2 (IResNet50-ArcFace; gender = setting-B balanced accuracy, %; EER, %).
PAPER_TABLE2 = pd.DataFrame(
    {
        ("paper: LFW", "Gender (%)"): [84.96, 75.93, 75.32, 75.62],
        ("paper: LFW", "EER (%)"): [0.483, 0.616, 1.56, 2.92],
        ("paper: AgeDB", "Gender (%)"): [93.36, 87.02, 89.92, 87.42],
        ("paper: AgeDB", "EER (%)"): [5.076, 6.003, 10.88, 10.91],
        ("paper: ColorFERET", "Gender (%)"): [94.60, 76.46, 85.14, 75.22],
        ("paper: ColorFERET", "EER (%)"): [0.822, 1.173, 1.67, 3.07],
    },
    index=list(TABLE2_ROWS),
)

#: Frontier columns holding the metrics of a point.
METRICS = ("setting_b", *(f"B_{c}" for c in evaluation.CLASSIFIERS), "eer", "tar_at_far", "accuracy", "pic")


class SetKey(NamedTuple):
    """Which protected templates: method, its parameter's name (``eps``, ``step`` or ``none``) and value."""

    method: str
    parameter: str
    value: float


REFERENCE = SetKey("reference", "none", 0.0)


@dataclass(frozen=True)
class EvaluationSet:
    """The images measured: the images of the profile's verification pairs, with their labels.

    ``indices`` index the dataset; ``pairs`` index ``indices``; setting B uses the rows with a known gender
    (``labelled``), verification every pair.
    """

    dataset: str
    indices: np.ndarray
    pairs: Pairs
    gender: np.ndarray
    identity: np.ndarray

    @property
    def labelled(self) -> np.ndarray:
        return self.gender >= 0

    def __len__(self) -> int:
        return len(self.indices)


def evaluation_set(cfg: RunConfig, folds: tuple[int, ...] | None = None) -> EvaluationSet:
    """The images of the folds ``folds`` (default ``cfg.sizes["verification_folds"]``) of the dataset's pairs.

    (:func:`mifgsm_lib.pipeline.verification_indices`): quick = 1 fold of 600 pairs, default and paper =
    all 6,000 pairs; on the LFW mirror, which holds exactly the pairs' 7,701 images, that is the whole dataset.
    """
    indices, pairs = pipeline.verification_indices(cfg, folds=folds)
    clean = pipeline.templates(cfg)
    gender, identity = clean["gender"][indices], clean["identity"][indices]
    if np.unique(gender[gender >= 0]).size != 2:
        raise ValueError(f"dataset {cfg.dataset!r}: the images of the verification pairs need both genders "
                         "for setting B")
    return EvaluationSet(cfg.dataset, indices, pairs, gender, identity)


def eps_grid(profile: str) -> list[float]:
    """The trade-off's ε grid for a profile: :data:`EPS_GRID_QUICK` for ``quick``, else :data:`EPS_GRID`."""
    return list(EPS_GRID_QUICK if profile == "quick" else EPS_GRID)


def check_eps_list(eps_list: Sequence[float]) -> list[float]:
    """Sorted distinct positive ε (ε = 0 is the reference row, always included)."""
    values = sorted({check_eps(e) for e in eps_list})
    if not values or values[0] == 0.0:
        raise ValueError(f"eps_list={list(eps_list)!r}: expected at least one ε in (0, 1] (ε = 0 is the reference)")
    return values


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


def fit_baselines(
    cfg: RunConfig,
    train_dataset: str = TRAIN_DATASET,
    n_per_step: int | None = None,
    n_steps: int = ELIMINATION_STEPS,
    n_locked: int = LOCKED_COMPONENTS,
    n_estimators: int = 30,
    n_jobs: int | None = -1,
    progress: bool = True,
) -> dict[str, IVE | MultiIVE]:
    """IVE and Multi-IVE (PCA, ``n_locked`` locked) fitted on the labelled templates of ``train_dataset``.

    The templates come from the configured face model (:func:`mifgsm_lib.pipeline.templates`), seeds from
    ``cfg.seed``. ``n_per_step=None`` takes :func:`elimination_plan`'s.
    """
    if train_dataset == cfg.dataset:
        raise ValueError(f"train_dataset={train_dataset!r}: expected a dataset other than the evaluated "
                         f"{cfg.dataset!r} (the paper trains the importance estimators elsewhere)")
    train = pipeline.templates(cfg, train_dataset)
    known = train["gender"] >= 0
    x, y = train["templates"][known], train["gender"][known]
    if n_per_step is None:
        n_per_step, n_steps = elimination_plan(x.shape[1], n_locked, n_steps)
    common = {"n_per_step": n_per_step, "n_steps": n_steps, "n_estimators": n_estimators, "random_state": cfg.seed,
              "n_jobs": n_jobs, "progress": progress}
    return {"ive": IVE(**common).fit(x, y), "multi-ive": MultiIVE(domain="pca", n_locked=n_locked, **common).fit(x, y)}


def check_attacks(attacks: Sequence[str]) -> list[str]:
    """The attack names, each one of :data:`mifgsm_lib.pipeline.ATTACKS`."""
    if isinstance(attacks, str) or not all(a in pipeline.ATTACKS for a in attacks):
        raise ValueError(f"attacks={attacks!r}: expected a list of names from {list(pipeline.ATTACKS)}")
    return list(dict.fromkeys(attacks))


def protected_templates(
    cfg: RunConfig,
    target: EvaluationSet,
    attacks: Sequence[str],
    eps_list: Sequence[float],
    baselines: Mapping[str, IVE | MultiIVE],
) -> dict[SetKey, np.ndarray]:
    """Every protected template set of ``target``'s images, the clean one first (:data:`REFERENCE`).

    Attacks: the templates of the attacked images, one set per ε (:func:`mifgsm_lib.pipeline.perturbed_templates`,
    ``float`` mode as in the paper). The few images of unknown gender keep their clean template (the attacks
    need the label, :func:`mifgsm_lib.pipeline.directions`), and setting B leaves them out anyway.
    Baselines: ``transform_at_step`` of the clean templates, one set per step 1..n.
    """
    clean = pipeline.templates(cfg)["templates"][target.indices]
    sets = {REFERENCE: clean}
    eps_values = check_eps_list(eps_list)
    for method in check_attacks(attacks):
        sets.update({SetKey(method, "eps", e): z
                     for e, z in pipeline.perturbed_templates(cfg, method, eps_values, target.indices).items()})
    for method, model in baselines.items():
        if method not in BASELINES:
            raise ValueError(f"baselines: key {method!r}, expected names from {BASELINES}")
        sets.update({SetKey(method, "step", float(k)): model.transform_at_step(clean, k)
                     for k in range(1, model.n_steps_fitted_ + 1)})
    return sets


def measure(
    sets: Mapping[SetKey, np.ndarray],
    target: EvaluationSet,
    folds: int = 3,
    grouped: bool = True,
    seed: int = 0,
    n_jobs: int | None = -1,
) -> pd.DataFrame:
    """The frontier: setting B, verification and PIC of each protected set; one row per set.

    Setting B runs through :func:`mifgsm_lib.evaluation.setting_b_sweep` (equal to ``setting_b`` on each
    set; one sweep per template dimension, since IVE's sets shrink), on the labelled rows with folds grouped
    by identity unless ``grouped=False``. PIC is relative to the :data:`REFERENCE` set, which must be present
    (NaN where it is undefined: clean templates that verify every pair, EER 0, or leak no gender).
    Columns: method, parameter, value, dims (of the protected templates), :data:`METRICS`.
    """
    if REFERENCE not in sets:
        raise ValueError("sets: expected the clean templates under tradeoff.REFERENCE (PIC is relative to them)")
    mask = target.labelled
    by_dim: dict[int, dict[SetKey, np.ndarray]] = defaultdict(dict)
    for key, z in sets.items():
        if np.ndim(z) != 2 or len(z) != len(target):
            raise ValueError(f"sets[{key}]: expected one template per image of the evaluation set "
                             f"({len(target)}, dim), got shape {np.shape(z)}")
        by_dim[z.shape[1]][key] = z[mask]
    privacy: dict[SetKey, evaluation.SettingBResult] = {}
    for group in by_dim.values():
        privacy.update(evaluation.setting_b_sweep(group, target.gender[mask], target.identity[mask], folds=folds,
                                                  grouped=grouped, seed=seed, n_jobs=n_jobs, progress=False))
    p = target.pairs
    utility = {key: verification.verify(z, p.left, p.right, p.same, p.fold) for key, z in sets.items()}
    ref_b, ref_eer = privacy[REFERENCE].mean, utility[REFERENCE].eer
    rows = []
    for key, z in sets.items():
        b, v = privacy[key], utility[key]
        rows.append({
            **key._asdict(), "dims": z.shape[1], "setting_b": b.mean,
            **{f"B_{c}": score for c, score in b.balanced_accuracy.items() if c != "mean"},
            "eer": v.eer, "tar_at_far": v.tar_at_far, "accuracy": v.accuracy_mean,
            "pic": evaluation.pic(ref_b, b.mean, ref_eer, v.eer) if ref_eer > 0 and ref_b > 0.5 else np.nan,
        })
    return pd.DataFrame(rows)


def kept_components(model: IVE | MultiIVE, k: int) -> int:
    """Template dimensions (IVE) or domain components (Multi-IVE) left after the first ``k`` steps."""
    return int(model.n_features_in_ - sum(len(step) for step in model.eliminated_[:k]))


def effective_dimension(templates: np.ndarray, rtol: float = 1e-6) -> int:
    """How many dimensions the templates really span: singular values of the centred templates above
    ``rtol`` times the largest (dlib's 128-D templates span fewer, so Multi-IVE's last PCA components are empty)."""
    z = np.asarray(templates, dtype=np.float64)
    if z.ndim != 2 or len(z) < 2:
        raise ValueError(f"templates: expected a 2-D array of at least 2 templates, got shape {z.shape}")
    s = np.linalg.svd(z - z.mean(axis=0), compute_uv=False)
    return int((s > rtol * s[0]).sum())


def locked_setting_b(
    cfg: RunConfig, model: MultiIVE, grouped: bool = True, n_jobs: int | None = -1
) -> evaluation.SettingBResult:
    """Setting B on the evaluated templates reduced to Multi-IVE's ``n_locked`` locked principal components.

    Every other component is zeroed in the domain and the templates projected back, as a Multi-IVE step
    would: this is the privacy floor of Multi-IVE, which never eliminates the locked components (beyond
    the paper; it explains a Multi-IVE curve that stops falling).
    """
    target = evaluation_set(cfg)
    z = model.domain_.transform(pipeline.templates(cfg)["templates"][target.indices].astype(np.float64))
    z[:, model.n_locked:] = 0.0
    locked = {"locked": model.domain_.inverse_transform(z)[target.labelled]}
    return evaluation.setting_b_sweep(locked, target.gender[target.labelled], target.identity[target.labelled],
                                      folds=int(cfg.sizes["cv_folds"]), grouped=grouped, seed=cfg.seed,
                                      n_jobs=n_jobs, progress=False)["locked"]


def default_attacks(profile: str) -> list[str]:
    """The attacks of the frontier and of the ε-EER sweep: all four of the paper in the ``paper`` profile,
    MI-FGSM (Table 2's attack) in the others.

    Beyond the paper (its Table 2 has MI-FGSM only), each other attack costs one gradient and one forward pass
    per ε for every image of the pairs: on a 2-core CPU about 4 minutes per attack over the default profile's
    7,701 images, which the main job's time does not allow.
    """
    return list(pipeline.ATTACKS) if profile == "paper" else ["mi-fgsm"]


@dataclass(frozen=True)
class TradeOff:
    """The frontier of one run, the fitted baselines, and what it was measured on (for the caveats)."""

    frontier: pd.DataFrame
    baselines: dict[str, IVE | MultiIVE]
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

    ``attacks=None``: :func:`default_attacks`; ``eps_list=None``: :func:`eps_grid`; the baselines as in
    :func:`fit_baselines` (``n_estimators`` trees per forest). The frontier gets a column ``kept``: the
    dimensions (IVE) or PCA components (Multi-IVE) kept, the template dimension elsewhere.
    """
    attacks = check_attacks(default_attacks(cfg.profile) if attacks is None else attacks)
    eps_values = check_eps_list(eps_grid(cfg.profile) if eps_list is None else eps_list)
    target = evaluation_set(cfg)
    baselines = fit_baselines(cfg, train_dataset, n_per_step, n_steps, n_locked, n_estimators, n_jobs, progress)
    sets = protected_templates(cfg, target, attacks, eps_values, baselines)
    folds = int(cfg.sizes["cv_folds"])
    frontier = measure(sets, target, folds=folds, grouped=grouped, seed=cfg.seed, n_jobs=n_jobs)
    frontier["kept"] = [kept_components(baselines[m], int(v)) if m in baselines else d
                        for m, v, d in zip(frontier["method"], frontier["value"], frontier["dims"])]
    ive = baselines["ive"]
    return TradeOff(
        frontier=frontier, baselines=baselines, dataset=cfg.dataset, model=cfg.model, n_images=len(target),
        n_labelled=int(target.labelled.sum()), n_pairs=len(target.pairs), train_dataset=train_dataset,
        n_train=int((pipeline.templates(cfg, train_dataset)["gender"] >= 0).sum()), attacks=tuple(attacks),
        eps_list=tuple(eps_values), n_per_step=int(ive.n_per_step), n_steps=int(ive.n_steps_fitted_),
        n_locked=int(n_locked), folds=folds, grouped=grouped,
    )


def _rows(frontier: pd.DataFrame, method: str) -> pd.DataFrame:
    rows = frontier[frontier["method"] == method]
    if rows.empty:
        raise ValueError(f"frontier: no rows of method {method!r}; it has {sorted(set(frontier['method']))}")
    return rows


def eps_star(frontier: pd.DataFrame, attack: str = "mi-fgsm") -> float:
    """ε* of an attack on the frontier: the ε whose setting-B accuracy is closest to 50% (ties: smallest ε).

    The rule of :func:`mifgsm_lib.experiments.eps_star` (Sec. 6.2.2), applied to the trade-off's own images.
    """
    rows = _rows(frontier, attack)
    return float(experiments.eps_star(rows.rename(columns={"value": "eps"}))[attack])


def matched_step(frontier: pd.DataFrame, method: str, target: float) -> pd.Series:
    """The frontier row of a baseline, step >= 1, whose setting-B accuracy is closest to ``target``.

    The paper's "best closest performance in terms of privacy"; ties go to the earlier step (fewer
    eliminations). Step 0 (the untouched templates) is the reference, not the method.
    """
    if method not in BASELINES:
        raise ValueError(f"method={method!r}: expected one of {BASELINES}")
    if not 0.0 <= target <= 1.0:
        raise ValueError(f"target={target!r}: expected a setting-B accuracy as a fraction in [0, 1]")
    rows = _rows(frontier, method)
    rows = rows[(rows["parameter"] == "step") & (rows["value"] >= 1)]
    gap = (rows["setting_b"] - target).abs()
    closest = rows[np.isclose(gap, gap.min(), rtol=0.0, atol=1e-12)]
    return closest.sort_values("value").iloc[0]


def table2(frontier: pd.DataFrame) -> pd.DataFrame:
    """Table 2: the frontier rows of Reference, MI-FGSM at ε* and IVE/Multi-IVE at matched privacy.

    Indexed by :data:`TABLE2_ROWS`, with a ``setting`` column saying which point of each method was taken.
    """
    reference = _rows(frontier, "reference").iloc[0]
    eps = eps_star(frontier, "mi-fgsm")
    attacked = frontier[(frontier["method"] == "mi-fgsm") & (frontier["value"] == eps)].iloc[0]
    ive, multi = (matched_step(frontier, m, float(attacked["setting_b"])) for m in BASELINES)
    dim = int(reference["dims"])
    settings = [
        f"clean {dim}-D templates",
        f"ε* = {eps:g} ({255 * eps:.2g} grey levels)",
        f"step {int(ive['value'])}: {int(ive['kept'])} of {dim} dimensions kept",
        f"step {int(multi['value'])}: {int(multi['kept'])} of {dim} PCA components kept",
    ]
    table = pd.DataFrame([reference, attacked, ive, multi], index=list(TABLE2_ROWS))
    table.insert(0, "setting", settings)
    return table


def beside_paper(table: pd.DataFrame, label: str) -> pd.DataFrame:
    """Our Table 2 in percent (gender, EER, TAR@FAR = 0.1%, PIC) beside :data:`PAPER_TABLE2`."""
    ours = pd.DataFrame({
        "setting": table["setting"], "Gender (%)": 100 * table["setting_b"], "EER (%)": 100 * table["eer"],
        "TAR@FAR=0.1% (%)": 100 * table["tar_at_far"], "PIC": table["pic"],
    }, index=table.index)
    ours.columns = pd.MultiIndex.from_product([[f"ours: {label}"], ours.columns])
    return pd.concat([ours, PAPER_TABLE2], axis=1)


def claim(table: pd.DataFrame, n_pairs: int | None = None) -> str:
    """Whether the paper's claim holds on ``table`` (from :func:`table2`), as a paragraph of markdown.

    The claim (Sec. 6.3): at comparable privacy MI-FGSM costs less verification performance (a lower EER)
    than IVE and Multi-IVE. It is said to hold when MI-FGSM's EER is below both; the paragraph also says how
    far the matched privacy really is, and whether MI-FGSM lowered setting B at all.
    """
    ref, mi, ive, multi = (table.loc[r] for r in TABLE2_ROWS)
    text = (f"At matched privacy (setting B {100 * mi['setting_b']:.2f}% for MI-FGSM at {mi['setting']}, "
            f"{100 * ive['setting_b']:.2f}% for IVE, {100 * multi['setting_b']:.2f}% for Multi-IVE), MI-FGSM's EER "
            f"is {100 * mi['eer']:.3f}% against {100 * ive['eer']:.3f}% (IVE) and {100 * multi['eer']:.3f}% "
            f"(Multi-IVE); the clean templates' EER is {100 * ref['eer']:.3f}%. ")
    better = [name for name, row in (("IVE", ive), ("Multi-IVE", multi)) if mi["eer"] < row["eer"]]
    if len(better) == 2:
        text += ("The paper's claim, a smaller verification cost than both baselines at comparable privacy, "
                 "**holds here**.")
    elif better:
        text += f"The paper's claim **holds here against {better[0]} only**."
    else:
        text += "The paper's claim **does not hold here**: both baselines cost less verification performance."
    gain = ref["setting_b"] - mi["setting_b"]
    if gain <= 0:
        text += (f" But MI-FGSM at ε* does not lower setting B below the clean templates' "
                 f"{100 * ref['setting_b']:.2f}%, so the privacy matched is no privacy gain at all.")
    else:
        text += f" MI-FGSM at ε* lowers setting B by {100 * gain:.2f} points from the clean templates'."
    gaps = {name: abs(row["setting_b"] - mi["setting_b"]) for name, row in (("IVE", ive), ("Multi-IVE", multi))}
    far = [f"{name} ({100 * g:.2f} points)" for name, g in gaps.items() if g > MATCH_TOLERANCE]
    if far:
        text += f" The match is loose for {' and '.join(far)}: no step of theirs comes closer in setting B."
    if n_pairs is not None:
        text += (f" With {n_pairs} pairs, one misclassified pair is {200 / n_pairs:.2f} points of FAR or FRR, so EER "
                 "gaps of that order are noise.")
    return text


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
        "other attacks on the frontier": (", ".join(METHOD_NAMES[a] for a in result.attacks), "(no frontier)"),
    }
    return pd.DataFrame.from_dict(rows, orient="index", columns=["ours", "paper"])
