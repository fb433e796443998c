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
privacy"). By default ε* and the matched steps are chosen on one half of the pairs' folds and the table is
reported on the other, whose people are disjoint (:func:`run`); the paper's same-set choice is shown beside it.
It is slightly longer than most modules because Table 2 comes with its intervals and two readings of Multi-IVE.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mifgsm_lib import evaluation, methods, paper, pipeline, privacy, verdicts
from mifgsm_lib.config import RunConfig
from mifgsm_lib.evaluation import REFERENCE, SetKey
from mifgsm_lib.intervals import Interval
from mifgsm_lib.baselines import ELIMINATION_STEPS, LOCKED_COMPONENTS, elimination_plan, train_dataset_for
from mifgsm_lib.pipeline import BaselineCurve
from mifgsm_lib.validation import check_eps_list
from mifgsm_lib.verdicts import MATCH_TOLERANCE

#: The frontier's columns of measurements (:func:`mifgsm_lib.evaluation.measure`).
METRICS = ("setting_b", *(f"B_{c}" for c in evaluation.CLASSIFIERS), "eer", "tar_at_far", "accuracy", "pic")


@dataclass(frozen=True)
class TradeOff:
    """The frontiers of one run and what they were measured on.

    Every set is measured on two disjoint halves of the pairs' folds (:meth:`~mifgsm_lib.evaluation.EvaluationSet.
    split_by_folds`): ``selection`` is where ε* and the baselines' matched steps are chosen, ``frontier`` where
    they are reported, with 95 % intervals (``replicates`` gives paired intervals of differences there).
    ``curves``: the baselines over their steps on every image (and Multi-IVE's locked components).
    """

    frontier: pd.DataFrame
    selection: pd.DataFrame
    replicates: dict[SetKey, dict[str, np.ndarray]]
    curves: dict[str, BaselineCurve]
    target: evaluation.EvaluationSet
    report: evaluation.EvaluationSet
    dataset: str
    model: str
    train_dataset: str
    n_train: int
    attacks: tuple[str, ...]
    eps_list: tuple[float, ...]
    n_per_step: int
    n_steps: int
    n_locked: int
    folds: int
    grouped: bool

    @property
    def n_images(self) -> int:
        return len(self.report)

    @property
    def n_labelled(self) -> int:
        return int(self.report.labelled.sum())

    @property
    def n_pairs(self) -> int:
        return len(self.report.pairs)


def protected_sets(cfg: RunConfig, target: evaluation.EvaluationSet, attacks: Sequence[str],
                   eps_list: Sequence[float], curves: dict[str, BaselineCurve]) -> dict[SetKey, np.ndarray]:
    """Every protected template set of ``target``'s images, the clean one first (:data:`REFERENCE`): each attack's
    templates at each ε (:func:`mifgsm_lib.pipeline.perturbed_templates`, ``float`` storage as in the paper; images
    of unknown gender keep their clean template) and each baseline's after each of its steps (``curves``, of every
    image of the dataset)."""
    sets: dict[SetKey, np.ndarray] = {REFERENCE: pipeline.templates(cfg)["templates"][target.indices]}
    for method in attacks:
        sets.update({SetKey(method, "eps", e): z
                     for e, z in pipeline.perturbed_templates(cfg, method, eps_list, target.indices).items()})
    for method, curve in curves.items():
        sets.update({SetKey(method, "step", float(k)): z[target.indices] for k, z in curve.templates.items()})
    return sets


def _with_kept(frame: pd.DataFrame, curves: dict[str, BaselineCurve]) -> pd.DataFrame:
    """The frontier with a column ``kept``: dimensions (IVE) or PCA components (Multi-IVE) kept, the template
    dimension elsewhere."""
    frame["kept"] = [int(curves[m].kept[int(v)]) if m in curves else d
                     for m, v, d in zip(frame["method"], frame["value"], frame["dims"])]
    return frame


def unavailable(cfg: RunConfig, grouped: bool = True) -> str | None:
    """Why the trade-off cannot be measured on ``cfg``'s dataset (no verification pairs, or a half of the pairs'
    folds too small for setting B's folds), or None where it can: the chapter then says why it is skipped."""
    reason = pipeline.pairs_unavailable(cfg)
    if reason is not None:
        return reason
    select, report, _, _ = pipeline.evaluation_set(cfg).split_by_folds()
    for name, half in (("choosing", select), ("reporting", report)):
        reason = pipeline.setting_b_unavailable(cfg, half, grouped)
        if reason is not None:
            return f"the images of the {name} half of the pairs' folds are too few for setting B ({reason})"
    return None


def run(
    cfg: RunConfig,
    attacks: Sequence[str] | None = None,
    eps_list: Sequence[float] | None = None,
    train_dataset: str | None = None,
    n_per_step: int | None = None,
    n_steps: int | None = None,
    n_locked: int | None = None,
    n_estimators: int = 30,
    grouped: bool = True,
    n_jobs: int | None = -1,
    progress: bool = True,
) -> TradeOff:
    """The whole trade-off of ``cfg``'s dataset: every method over its parameter range, measured on both halves of
    the profile's verification folds.

    ``attacks=None``: the profile's ``frontier_attacks`` (None: every registered one-step attack; each one beyond
    MI-FGSM costs one gradient and one forward pass per ε for every image of the pairs, about 4 minutes on a 2-core
    CPU over the default profile's 7,701 images); ``eps_list=None``: its ``tradeoff_eps``; the baselines
    (every ``template`` method of :mod:`mifgsm_lib.methods`) trained on ``train_dataset`` (None:
    :func:`mifgsm_lib.baselines.train_dataset_for` the evaluated dataset)
    (:func:`mifgsm_lib.pipeline.baseline_templates`) with ``n_per_step=None`` taken from :func:`elimination_plan`,
    ``n_steps=None``: :data:`~mifgsm_lib.baselines.ELIMINATION_STEPS`, ``n_locked=None``:
    :data:`~mifgsm_lib.baselines.LOCKED_COMPONENTS` (the paper's 5).
    """
    attacks = methods.one_step_or_all(cfg.sizes["frontier_attacks"] if attacks is None else attacks)
    eps_values = sorted(check_eps_list(cfg.sizes["tradeoff_eps"] if eps_list is None else eps_list))
    train_dataset = train_dataset or train_dataset_for(cfg.dataset)
    target = pipeline.evaluation_set(cfg)
    select, report, select_rows, report_rows = target.split_by_folds()
    if np.isin(select.indices, report.indices).any():
        raise ValueError(f"dataset {cfg.dataset!r}: an image is in the pairs of both halves of the folds; the halves "
                         "must be disjoint to choose on one and report on the other")
    train = pipeline.templates(cfg, train_dataset)
    n_steps = ELIMINATION_STEPS if n_steps is None else n_steps
    n_locked = LOCKED_COMPONENTS if n_locked is None else n_locked
    if n_per_step is None:
        n_per_step, n_steps = elimination_plan(train["templates"].shape[1], n_locked, n_steps)
    curves = {m: pipeline.baseline_templates(cfg, m, train_dataset, n_per_step, n_steps, n_locked, n_estimators,
                                             n_jobs, progress) for m in methods.names("template")}
    sets = protected_sets(cfg, target, attacks, eps_values, curves)
    folds = int(cfg.sizes["cv_folds"])
    common = {"folds": folds, "grouped": grouped}
    selection, _ = pipeline.measure_sets(cfg, {k: z[select_rows] for k, z in sets.items()}, select, **common)
    frontier, replicates = pipeline.measure_sets(cfg, {k: z[report_rows] for k, z in sets.items()}, report, **common)
    return TradeOff(
        frontier=_with_kept(frontier, curves), selection=_with_kept(selection, curves), replicates=replicates,
        curves=curves, target=target, report=report, dataset=cfg.dataset, model=cfg.model,
        train_dataset=train_dataset, n_train=int((train["gender"] >= 0).sum()), attacks=tuple(attacks),
        eps_list=tuple(eps_values), n_per_step=int(n_per_step), n_steps=len(curves["ive"].templates),
        n_locked=int(n_locked), folds=folds, grouped=grouped,
    )


def multi_ive_readings(cfg: RunConfig, result: TradeOff, n_estimators: int = 30, n_jobs: int | None = -1
                       ) -> pd.DataFrame:
    """Table 2's Multi-IVE point under two readings: as its authors' released code runs it (the templates
    standardised before PCA; this run's ``result``) and with PCA on the raw templates (this library's earlier
    reading). Each is matched, on the selection half, to MI-FGSM's setting B at ε*, and reported on the other half
    with 95 % intervals."""
    raw = pipeline.baseline_templates(cfg, "multi-ive", result.train_dataset, result.n_per_step, result.n_steps,
                                      result.n_locked, n_estimators, n_jobs, progress=False, standardize=False)
    select, report, select_rows, report_rows = result.target.split_by_folds()
    sets = {REFERENCE: pipeline.templates(cfg)["templates"][result.target.indices],
            **{SetKey("multi-ive", "step", float(k)): z[result.target.indices] for k, z in raw.templates.items()}}
    common = {"folds": result.folds, "grouped": result.grouped}
    chooser, _ = pipeline.measure_sets(cfg, {k: z[select_rows] for k, z in sets.items()}, select, **common)
    shown, _ = pipeline.measure_sets(cfg, {k: z[report_rows] for k, z in sets.items()}, report, **common)
    eps = eps_star(result.selection, "mi-fgsm")
    target_b = float(_point(result.selection, "mi-fgsm", eps)["setting_b"])
    raw_step = float(matched_step(chooser, "multi-ive", target_b)["value"])
    released = table2(result.frontier, result.selection).loc["Multi-IVE"]
    earlier = _point(shown, "multi-ive", raw_step)
    rows = []
    for reading, row, kept in (("standardised, then PCA (the authors' code)", released, int(released["kept"])),
                               ("PCA on raw templates (before)", earlier, int(raw.kept[int(raw_step)]))):
        rows.append({"Multi-IVE": reading, "step": int(row["value"]), "PCA components kept": kept,
                     **{c: row[c] for c in ("setting_b", "setting_b_low", "setting_b_high", "eer", "eer_low",
                                            "eer_high")}})
    return pd.DataFrame(rows).set_index("Multi-IVE")


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
    locked = curve.locked[target.indices]
    return evaluation.setting_b(locked[mask], target.labels[mask], target.identity[mask], folds=folds,
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


def table2(frontier: pd.DataFrame, selection: pd.DataFrame | None = None) -> pd.DataFrame:
    """Table 2: the rows of Reference, MI-FGSM at ε* and IVE/Multi-IVE at matched privacy, from ``frontier``.

    ε* and the matched steps are chosen on ``selection`` (another half of the images, by default in
    :func:`run`) and reported on ``frontier``; with ``selection=None`` they are chosen on ``frontier`` itself, the
    paper's way, which flatters every method by the noise of picking a minimum. Indexed by
    :data:`mifgsm_lib.paper.TABLE2_ROWS`, with a ``setting`` column saying which point of each method was taken.
    """
    chooser = frontier if selection is None else selection
    eps = eps_star(chooser, "mi-fgsm")
    chosen_b = float(_point(chooser, "mi-fgsm", eps)["setting_b"])
    steps = {m: float(matched_step(chooser, m, chosen_b)["value"]) for m in ("ive", "multi-ive")}
    reference = _rows(frontier, "reference").iloc[0]
    attacked = _point(frontier, "mi-fgsm", eps)
    ive, multi = (_point(frontier, m, steps[m]) for m in ("ive", "multi-ive"))
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


def _point(frontier: pd.DataFrame, method: str, value: float) -> pd.Series:
    """The frontier row of ``method`` at parameter ``value``."""
    rows = _rows(frontier, method)
    match = rows[np.isclose(rows["value"], value, rtol=0.0, atol=1e-12)]
    if match.empty:
        raise ValueError(f"frontier: no row of {method!r} at {value:g}; it has {sorted(rows['value'])}")
    return match.iloc[0]


def table2_differences(result: TradeOff, table: pd.DataFrame) -> dict[str, Interval]:
    """Paired 95 % intervals, on the reported half, of what the paper's claim compares: the EER of each baseline
    minus MI-FGSM's (> 0: MI-FGSM costs less), MI-FGSM's setting B minus each baseline's (how well matched
    the privacy is) and MI-FGSM's PIC minus each baseline's (> 0: a better trade-off), at the points of
    ``table``."""
    keys = {row: SetKey(r["method"], r["parameter"], float(r["value"])) for row, r in table.iterrows()}
    mi = keys["MI-FGSM"]
    out = {}
    for row in ("IVE", "Multi-IVE"):
        out[f"EER {row} - MI-FGSM"] = evaluation.paired_difference(result.frontier, result.replicates, keys[row], mi,
                                                                   "eer")
        out[f"setting B MI-FGSM - {row}"] = evaluation.paired_difference(result.frontier, result.replicates, mi,
                                                                         keys[row], "setting_b")
        out[f"PIC MI-FGSM - {row}"] = evaluation.paired_difference(result.frontier, result.replicates, mi, keys[row],
                                                                   "pic")
    out["setting B reference - MI-FGSM"] = evaluation.paired_difference(
        result.frontier, result.replicates, keys["Reference (no privacy)"], mi, "setting_b")
    return out


def beside_paper(table: pd.DataFrame, label: str) -> pd.DataFrame:
    """Our Table 2 in percent (gender, EER: the paper's columns) beside :data:`mifgsm_lib.paper.TABLE2`."""
    ours = pd.DataFrame({
        "setting": table["setting"], "Gender (%)": 100 * table["setting_b"], "EER (%)": 100 * table["eer"],
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
        "images measured": (f"{result.n_images} images of the {result.n_pairs} pairs of the second half of the "
                            f"folds of {result.dataset}"
                            + (" (the mirror: 150x150 crops, exactly the pairs' images)" if lfw else ""),
                            f"whole datasets: {paper.quotes()['dataset_images']} images"),
        "verification pairs": (f"{result.n_pairs}, {pairs_source}",
                               f"{paper.VERIFICATION_PAIRS:,}: LFW protocol; AgeDB-30 for AgeDB"),
        "setting B": (f"{result.n_labelled} labelled images, {result.folds}-fold, "
                      + ("grouped by identity" if result.grouped else "plain stratified"),
                      "whole dataset, 3-fold (plain stratified folds)"),
        "baselines trained on": (f"{result.train_dataset}: {result.n_train} labelled templates, same face model",
                                 "another dataset than the evaluated one (not named)"),
        "baselines' steps": (f"{result.n_per_step} per step, {result.n_steps} steps; Multi-IVE: PCA, "
                             f"{result.n_locked} locked", "'several elimination steps'; Multi-IVE: PCA, 5 locked"),
        "ε grid, ε*": (f"{', '.join(f'{e:g}' for e in result.eps_list)}; ε* closest to 50% on the other half of "
                       "the folds, reported on this half", "ε* closest to 50% on the 5,000-image subset (Fig. 4: "
                       "50 steps up to 0.03), reported on the whole dataset"),
        "other attacks on the frontier": (", ".join(methods.label(a) for a in result.attacks), "(no frontier)"),
    }
    return pd.DataFrame.from_dict(rows, orient="index", columns=["ours", "paper"])


# --------------------------------------------------------------------------------------------- the chapter's prose


def describe_run(result: TradeOff, seconds: float) -> str:
    """Markdown: what the run measured, on which images, and how the halves were used."""
    return (f"Measured {len(result.frontier)} sets of protected templates in {seconds:.0f} s, each on both halves "
            f"of the folds of `{result.dataset}`'s pairs. The reported half holds {result.n_images} images of "
            f"{result.n_pairs} pairs, {result.n_labelled} of them with a gender label (setting B); ε* and the "
            "baselines' matched steps are chosen on the other half, whose people are disjoint. The attacks are "
            f"{', '.join(methods.label(a) for a in result.attacks)} at ε = "
            f"{', '.join(f'{e:g}' for e in result.eps_list)}. IVE and Multi-IVE run {result.n_steps} steps of "
            f"{result.n_per_step} dimensions each, learnt on {result.n_train} labelled `{result.train_dataset}` "
            "templates of the same face model.")


def describe_attack_range(frontier: pd.DataFrame) -> str:
    """Markdown: MI-FGSM's setting B from clean to its lowest, and where it rises above clean."""
    clean_b = float(_rows(frontier, "reference")["setting_b"].iloc[0])
    rows = _rows(frontier, "mi-fgsm")
    above = rows[rows["setting_b"] > clean_b]
    lowest = rows.loc[rows["setting_b"].idxmin()]
    return (f"MI-FGSM's setting B goes from {clean_b:.2%} on clean templates to its lowest, {lowest['setting_b']:.2%}, "
            f"at ε = {lowest['value']:g}; " + (f"it is above the clean value from ε = {above['value'].min():g}: the "
                                                "retrained classifiers learn the perturbation itself." if len(above)
                                                else "it stays below the clean value over the whole grid."))


def describe_locked(span: int, dim: int, floor: float, table: pd.DataFrame, result: TradeOff) -> str:
    """Markdown: how many dimensions the training templates span, and the privacy floor of Multi-IVE's locked
    components against MI-FGSM's setting B at ε*."""
    mi_b = float(table.loc["MI-FGSM", "setting_b"])
    text = (f"The `{result.train_dataset}` templates span {span} of their {dim} dimensions (singular values of the "
            f"centred templates above 10⁻⁶ of the largest). Setting B on the {result.n_locked} locked components "
            f"alone is {floor:.2%}: this is the lowest Multi-IVE can reach, however many steps it runs. ")
    if floor > mi_b + MATCH_TOLERANCE:
        return text + (f"That is above MI-FGSM's {mi_b:.2%} at ε*, so Multi-IVE **cannot match MI-FGSM's privacy "
                       "here**: the gender of these templates lies in their first principal components, which "
                       "Multi-IVE keeps by design.")
    return text + f"MI-FGSM's {mi_b:.2%} at ε* is within Multi-IVE's reach."


def with_intervals(table: pd.DataFrame) -> pd.DataFrame:
    """Table 2's cells in percent with their 95 % intervals, as a reader compares them."""

    def cell(row: pd.Series, metric: str, scale: float, digits: int) -> str:
        low, high = row.get(f"{metric}_low", np.nan), row.get(f"{metric}_high", np.nan)
        value = f"{scale * row[metric]:.{digits}f}"
        return value if not np.isfinite(low) else f"{value} [{scale * low:.{digits}f}, {scale * high:.{digits}f}]"

    return pd.DataFrame({
        "setting": table["setting"],
        "gender, setting B (%)": [cell(r, "setting_b", 100, 2) for _, r in table.iterrows()],
        "EER (%)": [cell(r, "eer", 100, 3) for _, r in table.iterrows()],
        "TAR@FAR=0.1% (%)": [cell(r, "tar_at_far", 100, 2) for _, r in table.iterrows()],
        "PIC": [cell(r, "pic", 1, 3) for _, r in table.iterrows()],
    }, index=table.index)


def selection_effect(result: TradeOff) -> pd.DataFrame:
    """Table 2's MI-FGSM, IVE and Multi-IVE points chosen two ways and reported on the same images: on the other
    half of the folds (the book's default) and on the reported images themselves (the paper's way, which
    flatters every method by the noise of picking a minimum)."""
    rows = []
    for how, table in (("chosen on the other half", table2(result.frontier, result.selection)),
                       ("chosen on the reported images (the paper's way)", table2(result.frontier))):
        for name in ("MI-FGSM", "IVE", "Multi-IVE"):
            r = table.loc[name]
            rows.append({"choice": how, "method": name, "point": r["setting"], "setting_b": r["setting_b"],
                         "eer": r["eer"]})
    return pd.DataFrame(rows).set_index(["choice", "method"])


def describe_pic(table: pd.DataFrame, differences: Mapping[str, Interval] | None = None) -> str:
    """Markdown: PIC of each method and whether MI-FGSM has the best (:func:`mifgsm_lib.verdicts.pic_verdict`,
    from the paired intervals of ``differences`` where given)."""
    pic = table["pic"]
    verdict = verdicts.pic_verdict(table, differences)
    text = (f"PIC puts privacy and verification in one number: {pic['MI-FGSM']:.3f} for MI-FGSM, {pic['IVE']:.3f} "
            f"for IVE and {pic['Multi-IVE']:.3f} for Multi-IVE. "
            + {"holds": "MI-FGSM has the best trade-off by PIC.",
               "does not hold": "By PIC, MI-FGSM does not have the best trade-off.",
               "undecided at this size": "Whether MI-FGSM has the best trade-off by PIC is undecided at this size."}
            [verdict])
    if differences is not None:
        shown = [f"{name} {d.estimate:+.3f} [{d.low:+.3f}, {d.high:+.3f}]"
                 for name, d in differences.items() if name.startswith("PIC")]
        text += f" Paired 95 % intervals: {'; '.join(shown)}."
    return text
