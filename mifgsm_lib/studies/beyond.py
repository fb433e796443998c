"""The chapter "Beyond one step": iterative and attacker-aware protections, their robustness to processing, and
other soft biometrics.

1. **The gradient of Eq. 7** (:mod:`mifgsm_lib.mi`): on real images, whether MI-FGSM's pixel signs depend on
   the batch (:func:`batch_size_sign_change`).
2. **Iterative protections** (the ``iterative`` methods of :mod:`mifgsm_lib.methods`) against one-step MI-FGSM at
   equal budgets in grey levels; every protection is embedded once per view (:func:`iterative_study`).
3. **Robustness**: the same protected photos after the processing of :data:`mifgsm_lib.robustness.TRANSFORMS`.
4. **Other soft biometrics** on UTKFace: age group and race next to gender, each protected with its own K-class
   vCLUB, and each one's leakage measured in setting B (:func:`attribute_leakage`).

The verdict the chapter closes with is decided in :mod:`mifgsm_lib.verdicts`.

It is longer than most modules because the chapter has four studies, each with the sentences (``describe_*``) the
chapter displays beside its tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from mifgsm_lib import attacks, data, evaluation, methods, mi, pipeline, quality, robustness, verdicts
from mifgsm_lib.attacks import MI_BATCH_SIZE
from mifgsm_lib.config import GREY_LEVEL, RunConfig, grey_eps
from mifgsm_lib.evaluation import REFERENCE, SetKey


def batch_size_sign_change(cfg: RunConfig, indices: np.ndarray, batch_size: int = MI_BATCH_SIZE) -> dict[str, float]:
    """The fraction of MI-FGSM's pixel signs that change between batches of ``batch_size`` (the chapters'
    directions) and the whole set ``indices`` as one batch (both cached by :func:`mifgsm_lib.pipeline.directions`),
    and the share of zeros."""
    small = pipeline.directions(cfg, "mi-fgsm", indices, batch_size=batch_size)
    whole = pipeline.directions(cfg, "mi-fgsm", indices, batch_size=len(indices), over=indices, block=len(indices))
    return {"images": len(indices), "batch_size": batch_size, "changed": mi.sign_change(small, whole),
            "changed_pixels": int(np.sum(small != whole)), "pixels": int(small.size),
            "zero_share": float(np.mean(whole == 0))}


# --------------------------------------------------------------------------------------------------
# 2-3. Iterative protections, in every view
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """What the iterative study protects: every (method, grey levels) and the views each is embedded in."""

    steps: int
    protections: tuple[tuple[str, float], ...]
    views: dict[tuple[str, float], tuple[str, ...]]

    @classmethod
    def from_sizes(cls, chapter_sizes: dict[str, Any], iterative: Sequence[str] | None = None) -> Plan:
        """One-step MI-FGSM at ``one_step_budgets``, each iterative method (default: every registered one) at
        ``pgd_budgets`` and, for a frontier, at its own ``extra_budgets``, all in float and 8-bit; the methods of
        ``robustness_methods`` (at every budget of theirs) and the clean images also in every processed view."""
        iterative = methods.names("iterative") if iterative is None else methods.check_methods(iterative,
                                                                                               "iterative")
        steps = int(chapter_sizes["pgd_steps"])
        shared = [("mi-fgsm", float(g)) for g in chapter_sizes["one_step_budgets"]]
        shared += [(m, float(g)) for m in iterative for g in chapter_sizes["pgd_budgets"]]
        extra = [(m, float(g)) for m, budgets in chapter_sizes.get("extra_budgets", {}).items()
                 if m in iterative for g in budgets if (m, float(g)) not in shared]
        pairs = [p for m in ("mi-fgsm", *iterative) for p in sorted(q for q in shared + extra if q[0] == m)]
        views = {p: _views(p[0] in chapter_sizes["robustness_methods"]) for p in pairs}
        views[("reference", 0.0)] = tuple(robustness.TRANSFORMS)
        return cls(steps, (("reference", 0.0), *pairs), views)


def _views(processed: bool) -> tuple[str, ...]:
    """The views a protection is measured in: float and 8-bit storage, and with ``processed`` every transform."""
    return robustness.VIEWS if processed else tuple(robustness.VIEWS[:2])


@dataclass(frozen=True)
class Study:
    """The measured results of the iterative study.

    ``frontier``: one row per (method, grey levels, storage mode), the clean reference first, with settings A
    and B, EER, verification accuracy, TAR@FAR = 0.1 % and PIC. ``robustness``: one row per (transform,
    method, grey levels) of the 8-bit photos, ``none`` the unprocessed photos. ``one_step_curve``: one-step
    MI-FGSM over the trade-off chapter's ε grid (float), for the frontier plot.
    """

    frontier: pd.DataFrame
    robustness: pd.DataFrame
    one_step_curve: pd.DataFrame
    steps: int
    n_images: int
    n_pairs: int
    templates: dict[tuple[str, float], dict[str, np.ndarray]]
    evaluated: evaluation.EvaluationSet


def _measure(cfg: RunConfig, target: evaluation.EvaluationSet, sets: dict[SetKey, np.ndarray]) -> pd.DataFrame:
    """:func:`mifgsm_lib.evaluation.measure` with setting A (MLPs trained on clean templates, each image scored by one
    that never saw it nor its person: :func:`mifgsm_lib.pipeline.crossfit_classifier`) and the budget in grey
    levels."""
    labelled = target.indices[target.labelled]
    frame, _ = pipeline.measure_sets(cfg, sets, target, folds=int(cfg.sizes["cv_folds"]),
                                     classifier=pipeline.crossfit_classifier(cfg, labelled),
                                     classifier_key=f"crossfit:{pipeline.digest(labelled)}")
    frame["grey_levels"] = (frame["value"] / GREY_LEVEL).round(6)
    return frame


def unavailable(cfg: RunConfig) -> str | None:
    """Why sections 2 and 3 cannot run on ``cfg``'s dataset (no verification pairs in the chapter's folds, or too
    few labelled people there for setting B), or None where they can."""
    reason = pipeline.pairs_unavailable(cfg)
    if reason is not None:
        return reason
    target = pipeline.evaluation_set(cfg, folds=cfg.sizes["beyond"].get("folds"))
    reason = pipeline.setting_b_unavailable(cfg, target)
    return None if reason is None else f"the images of the chapter's folds are too few for setting B ({reason})"


def iterative_study(cfg: RunConfig, chapter_sizes: dict[str, Any] | None = None, progress: bool = False) -> Study:
    """Every protection of :class:`Plan` on the images of the verification pairs of the chapter's ``folds``,
    measured per view."""
    chapter_sizes = cfg.sizes["beyond"] if chapter_sizes is None else chapter_sizes
    plan = Plan.from_sizes(chapter_sizes)
    target = pipeline.evaluation_set(cfg, folds=chapter_sizes.get("folds"))
    clean = pipeline.templates(cfg)["templates"][target.indices]
    templates = {p: pipeline.protected_templates(cfg, p[0], grey_eps(p[1]) if p[1] else 0.0, target.indices,
                                                 plan.views[p], plan.steps, progress=progress)
                 for p in plan.protections}
    keys = {p: SetKey(p[0], "eps", grey_eps(p[1])) for p in plan.protections if p[0] != "reference"}

    frames = []
    for mode in robustness.VIEWS[:2]:
        sets = {REFERENCE: clean, **{k: templates[p][mode] for p, k in keys.items()}}
        frames.append(_measure(cfg, target, sets).assign(mode=mode))
    frontier = pd.concat(frames, ignore_index=True)
    frontier["gradients"] = [methods.get(m).gradients(plan.steps) for m in frontier["method"]]

    rows = [frontier[frontier["mode"] == "uint8"].assign(transform="none")]
    for name in robustness.TRANSFORMS:
        sets = {REFERENCE: templates[("reference", 0.0)][name],
                **{k: templates[p][name] for p, k in keys.items() if name in plan.views[p]}}
        rows.append(_measure(cfg, target, sets).assign(transform=name))
    robust = pd.concat(rows, ignore_index=True)
    robust = robust[["transform", "method", "value", "grey_levels", "setting_b", "eer", "accuracy",
                     *(f"{m}_{end}" for m in ("setting_b", "eer") for end in ("low", "high"))]]

    curve_sets = {REFERENCE: clean}
    curve_sets.update({SetKey("mi-fgsm", "eps", e): z for e, z in pipeline.perturbed_templates(
        cfg, "mi-fgsm", sorted(cfg.sizes["tradeoff_eps"]), target.indices, mode="float").items()})
    curve = _measure(cfg, target, curve_sets)
    return Study(frontier, robust.reset_index(drop=True), curve, plan.steps, len(target), len(target.pairs),
                 templates, target)


#: The protections the chapter judges against IVE's frontier (:func:`against_baseline`): Erasure-PGD, and the same
#: with the expectation over the processings of section 3.
FRONTIER_METHODS = ("erasure-pgd", "erasure-pgd-eot")
#: How far down the frontier it must dominate IVE: from the clean point down to this setting B (and B+).
DOMINANCE_DOWN_TO = 0.75
#: The setting-B metrics a dominance is judged by: setting B, and the stronger adversary's setting B+.
DOMINANCE_METRICS = ("setting_b", "setting_b_plus")


@dataclass(frozen=True)
class Comparison:
    """Protections' 8-bit photos at each of their budgets against every step of a template baseline, on the same
    images, measured together. ``points``: one row per set (the clean reference, each baseline step, each
    protection's budget) with setting B, setting B+ and the EER, each with its 95 % interval. ``pairs``: one row per
    (protection, metric, baseline step, budget) with the paired differences protection − baseline of that metric
    and of the EER (:func:`mifgsm_lib.evaluation.paired_difference`), the input of
    :func:`mifgsm_lib.verdicts.dominance`."""

    methods: tuple[str, ...]
    baseline: str
    points: pd.DataFrame
    pairs: pd.DataFrame

    def pairs_of(self, method: str, metric: str | None = None) -> pd.DataFrame:
        """The rows of ``pairs`` of ``method`` (and of ``metric``, every metric where it is None)."""
        if method not in self.methods:
            raise ValueError(f"method={method!r}: the comparison has {list(self.methods)}")
        rows = self.pairs[self.pairs["method"] == method]
        return rows if metric is None else rows[rows["metric"] == metric]


def _budgets(study: Study, method: str) -> list[float]:
    """The budgets (grey levels) at which ``study`` protected with ``method``; a clear error if none."""
    budgets = sorted(g for m, g in study.templates if m == method)
    if not budgets:
        raise ValueError(f"study: {method!r} was not measured; it has {sorted({m for m, _ in study.templates})}")
    return budgets


def against_baseline(cfg: RunConfig, study: Study, curve: pipeline.BaselineCurve,
                     protections: Sequence[str] = FRONTIER_METHODS, baseline: str = "ive") -> Comparison:
    """The 8-bit photos of each of ``protections`` at every budget of ``study`` against each step of ``baseline``'s
    ``curve`` (the trade-off chapter's fit), all on the study's images: setting B and the EER (one measurement, so
    every difference is paired) and setting B+ (another)."""
    target = study.evaluated
    budgets = {m: _budgets(study, m) for m in methods.check_methods(protections, "iterative", "protections")}
    sets = {REFERENCE: pipeline.templates(cfg)["templates"][target.indices],
            **{SetKey(baseline, "step", float(k)): z[target.indices] for k, z in curve.templates.items()},
            **{SetKey(m, "eps", grey_eps(g)): study.templates[(m, g)]["uint8"] for m, gs in budgets.items()
               for g in gs}}
    folds = int(cfg.sizes["cv_folds"])
    plain, plain_reps = pipeline.measure_sets(cfg, sets, target, folds=folds)
    plus, plus_reps = pipeline.measure_sets(cfg, sets, target, plus=True, folds=folds)
    keys = ["method", "parameter", "value"]
    points = plain[[*keys, "setting_b", "setting_b_low", "setting_b_high", "eer", "eer_low", "eer_high"]].merge(
        plus[[*keys, *(f"setting_b_plus{end}" for end in ("", "_low", "_high"))]], on=keys, validate="one_to_one")
    points["grey_levels"] = np.where(points["method"].isin(list(budgets)), (points["value"] / GREY_LEVEL).round(6),
                                     np.nan)
    rows = []
    for m, gs in budgets.items():
        for k in curve.templates:
            for g in gs:
                ours, theirs = SetKey(m, "eps", grey_eps(g)), SetKey(baseline, "step", float(k))
                eer = evaluation.paired_difference(plain, plain_reps, ours, theirs, "eer")
                for metric, frame, reps in (("setting_b", plain, plain_reps), ("setting_b_plus", plus, plus_reps)):
                    d = evaluation.paired_difference(frame, reps, ours, theirs, metric)
                    rows.append({"method": m, "metric": metric, "step": int(k),
                                 "baseline_b": float(_value(frame, theirs, metric)),
                                 "baseline_eer": float(_value(plain, theirs, "eer")), "grey_levels": float(g),
                                 "d_b": d.estimate, "d_b_low": d.low, "d_b_high": d.high,
                                 "d_eer": eer.estimate, "d_eer_low": eer.low, "d_eer_high": eer.high})
    return Comparison(tuple(budgets), baseline, points, pd.DataFrame(rows))


def budget_quality(cfg: RunConfig, study: Study, protections: Sequence[str] = FRONTIER_METHODS,
                   n_images: int = MI_BATCH_SIZE) -> pd.DataFrame:
    """How visible the 8-bit photos of each of ``protections`` are at each budget of ``study``: the largest change in
    grey levels, PSNR (dB) and SSIM against the clean photos (:mod:`mifgsm_lib.quality`), means over ``n_images``
    labelled images of the study (one stratified batch), protected again as the study protects them. One row per
    (method label, grey levels)."""
    target = study.evaluated
    labelled = np.flatnonzero(target.labelled)
    batch = labelled[mi.stratified_batches(target.labels[labelled], n_images, cfg.seed)[0][:n_images]]
    x = attacks.as_float_images(pipeline.chips(cfg)["chips"][target.indices[batch]])
    y = torch.as_tensor(target.labels[batch])
    resources = pipeline.Resources(cfg)
    rows = []
    for method in methods.check_methods(protections, "iterative", "protections"):
        for grey in _budgets(study, method):
            adv = attacks.store(methods.get(method).build(resources, grey_eps(grey), study.steps)(x, y), "uint8")
            rows.append({"method": methods.label(method), "grey_levels": grey, "images": len(batch),
                         "linf_grey": 255 * float((adv - x).abs().max()),
                         "psnr": float(np.mean(quality.psnr(x.numpy(), adv.numpy()))),
                         "ssim": float(np.mean(quality.ssim(x.numpy(), adv.numpy(), progress=False)))})
    return pd.DataFrame(rows).set_index(["method", "grey_levels"])


def _value(frame: pd.DataFrame, key: SetKey, metric: str) -> float:
    """``metric`` of the set ``key`` in a measured frame."""
    row = frame[(frame["method"] == key.method) & (frame["parameter"] == key.parameter)
                & np.isclose(frame["value"], key.value)]
    return float(row[metric].iloc[0])


def comparison_table(comparison: Comparison) -> pd.DataFrame:
    """The comparison's points in percent, one row per set: setting B, setting B+ and the EER."""
    p = comparison.points
    index = [methods.label(m) + ("" if m == "reference" else f", {methods.budget(g)}" if m in comparison.methods
                                 else f", step {v:g}")
             for m, v, g in zip(p["method"], p["value"], p["grey_levels"])]
    shown = {"setting_b": "setting B", "setting_b_plus": "setting B+", "eer": "EER"}
    return (100 * p[list(shown)]).set_axis(pd.Index(index, name="set")).rename(columns=shown)


def robustness_plus(cfg: RunConfig, study: Study, method: str = "mi-fgsm", grey_levels: float = 1.0) -> pd.DataFrame:
    """Setting B+ (the stronger adversary, :mod:`mifgsm_lib.evaluation.adversary`) of ``method`` at ``grey_levels``
    in every view it was measured in but float (the 8-bit photo, processed or not), beside the clean photo in the
    same view: one row per view with both values and the privacy the protection buys there against the stronger
    adversary (``gain``, a paired 95 % interval)."""
    target, protection = study.evaluated, (method, float(grey_levels))
    if protection not in study.templates:
        raise ValueError(f"study: {method!r} at {grey_levels:g} grey levels was not measured; it has "
                         f"{sorted(study.templates)}")
    clean = pipeline.templates(cfg)["templates"][target.indices]
    rows = []
    for view, z in study.templates[protection].items():
        if view == "float":
            continue
        reference = clean if view == "uint8" else study.templates[("reference", 0.0)][view]
        key = SetKey(method, "eps", grey_eps(grey_levels))
        frame, replicates = pipeline.measure_sets(cfg, {REFERENCE: reference, key: z}, target, plus=True,
                                                  folds=int(cfg.sizes["cv_folds"]))
        frame = frame.set_index("method")
        gain = evaluation.paired_difference(frame.reset_index(), replicates, REFERENCE, key, "setting_b_plus")
        rows.append({"view": view, "clean": frame.loc["reference", "setting_b_plus"],
                     "protected": frame.loc[method, "setting_b_plus"], "protected_low": frame.loc[method,
                     "setting_b_plus_low"], "protected_high": frame.loc[method, "setting_b_plus_high"],
                     "gain": gain.estimate, "gain_low": gain.low, "gain_high": gain.high})
    return pd.DataFrame(rows)


#: The frontier's metrics as the chapter's tables name them.
METRIC_NAMES = {"setting_a": "setting A (%)", "setting_b": "setting B (%)", "eer": "EER (%)",
                "accuracy": "verification accuracy (%)"}


def budget_table(frontier: pd.DataFrame) -> pd.DataFrame:
    """The frontier as a table in percent: one row per (method, grey levels, gradients per image), settings A
    and B, EER and verification accuracy per storage mode (columns)."""
    table = 100 * frontier.pivot_table(index=["method", "grey_levels", "gradients"], columns="mode",
                                       values=list(METRIC_NAMES))
    table = table.reorder_levels([1, 0], axis=1).reindex(
        columns=pd.MultiIndex.from_product([[m for m in ("uint8", "float") if m in set(frontier["mode"])],
                                            list(METRIC_NAMES)]))
    order = {m: k for k, m in enumerate(methods.METHODS)}
    table = table.sort_index(key=lambda s: s.map(order) if s.name == "method" else s)
    return table.rename(index=methods.label, level="method").rename(columns=METRIC_NAMES, level=1)


def robustness_table(robust: pd.DataFrame, metric: str = "setting_b") -> pd.DataFrame:
    """``metric`` in percent per protection (rows) and processing (columns, ``none`` first)."""
    if metric not in METRIC_NAMES:
        raise ValueError(f"metric={metric!r}: expected one of {list(METRIC_NAMES)}")
    frame = robust.assign(protection=[methods.label(m) + ("" if m == "reference" else f", {g:g} grey")
                                      for m, g in zip(robust["method"], robust["grey_levels"])])
    table = 100 * frame.pivot_table(index="protection", columns="transform", values=metric, sort=False)
    return table.reindex(columns=["none", *robustness.TRANSFORMS])


# --------------------------------------------------------------------------------------------------
# 4. Other soft biometrics (UTKFace)
# --------------------------------------------------------------------------------------------------


def attribute_summary(cfg: RunConfig, attributes: Sequence[str] = tuple(data.ATTRIBUTES), name: str = "utkface",
                      indices: np.ndarray | None = None) -> pd.DataFrame:
    """Per attribute: its classes with their counts among the images ``indices`` (default: the profile's subset),
    and its vCLUB's held-out log-likelihood beside the prior's, E[log p(y)] = -H(Y) (a useful q beats it)."""
    indices = pipeline.subset(cfg, name) if indices is None else np.asarray(indices)
    rows = []
    for a in attributes:
        y = pipeline.labels(cfg, a, name)
        share = np.bincount(y[y >= 0], minlength=len(data.ATTRIBUTES[a])) / np.sum(y >= 0)
        counts = np.bincount(y[indices][y[indices] >= 0], minlength=len(data.ATTRIBUTES[a]))
        _, history = pipeline.vclub(cfg, "face", name=name, attribute=a)
        rows.append({"attribute": a, "classes": ", ".join(f"{c}: {n}" for c, n in zip(data.ATTRIBUTES[a], counts)),
                     "held-out log q(y|z)": float(history["val_loglik"][-1]),
                     "prior E[log p(y)]": float(np.sum(share[share > 0] * np.log(share[share > 0]))),
                     "held-out vCLUB (nats)": float(history["val_mi"][-1])})
    return pd.DataFrame(rows).set_index("attribute")


def attribute_images(cfg: RunConfig, chapter_sizes: dict[str, Any] | None = None, name: str = "utkface") -> np.ndarray:
    """The images of dataset ``name`` the attributes are measured on: a gender-balanced subset of the chapter's
    ``attribute_images`` (``None``: the profile's subset, :func:`mifgsm_lib.pipeline.subset`)."""
    n = (cfg.sizes["beyond"] if chapter_sizes is None else chapter_sizes).get("attribute_images")
    if n is None:
        return pipeline.subset(cfg, name)
    indices, _ = data.balanced_subset(pipeline.dataset(cfg, name).gender, int(n), seed=cfg.seed)
    return np.sort(indices)


def attribute_protection(
    cfg: RunConfig, attribute: str, method: str, eps_list: Sequence[float], indices: np.ndarray,
    name: str = "utkface", steps: int | None = None,
) -> dict[float, np.ndarray]:
    """Templates of the 8-bit photos of the images ``indices`` of dataset ``name``, protected against ``attribute``
    by ``method`` (one-step, over the whole set of images as one block, or iterative with ``steps``) with the
    attribute's K-class vCLUB, per ε (cached by the pipeline)."""
    entry = methods.get(methods.check_methods([method], ("one-step", "iterative"), "method")[0])
    if entry.access == "white box" and attribute != "gender":
        raise ValueError(f"method={method!r}: a white-box attack of the MLP gender classifier (Sec. 3.1), which has no "
                         f"{attribute!r} counterpart")
    if entry.kind == "iterative" and steps is None:
        raise ValueError(f"steps=None: expected the number of steps of the iterative method={method!r}")
    if entry.kind == "one-step":
        return pipeline.perturbed_templates(cfg, method, eps_list, indices, mode="uint8", name=name, over=indices,
                                            block=len(indices), attribute=attribute)
    return {e: pipeline.protected_templates(cfg, method, e, indices, ["uint8"], int(steps), name=name,
                                            attribute=attribute)["uint8"] for e in eps_list}


def attribute_leakage(
    cfg: RunConfig,
    protections: Sequence[tuple[str, float]],
    steps: int,
    attributes: Sequence[str] = tuple(data.ATTRIBUTES),
    name: str = "utkface",
    indices: np.ndarray | None = None,
) -> pd.DataFrame:
    """Setting B (K-class balanced accuracy) of every attribute on the clean templates and on the templates
    protected against each attribute by each (method, grey levels) of ``protections`` (8-bit photos).

    ``indices``: the images attacked and measured (default: the profile's gender-balanced subset of ``name``).
    One row per (protected attribute or ``none``, method, grey levels, measured attribute) with chance 1/K.
    """
    indices = pipeline.subset(cfg, name) if indices is None else np.asarray(indices)
    sets = {REFERENCE: pipeline.templates(cfg, name)["templates"][indices]}
    against = {REFERENCE: "none"}  # which attribute each set is protected against
    by_method: dict[str, list[float]] = {}
    for method, grey in protections:
        by_method.setdefault(method, []).append(float(grey))
    for protected in attributes:
        for method, greys in by_method.items():
            per_eps = attribute_protection(cfg, protected, method, [grey_eps(g) for g in greys], indices, name,
                                           steps=steps)
            for g, z in zip(greys, per_eps.values()):
                key = SetKey(method, f"grey levels against {protected}", g)
                sets[key], against[key] = z, protected
    rows = []
    for measured in attributes:
        target = pipeline.evaluation_set(cfg, name=name, attribute=measured, indices=indices)
        frame, _ = pipeline.measure_sets(cfg, sets, target, folds=int(cfg.sizes["cv_folds"]), multiclass=True)
        rows += [{"protected": against[key], "method": key.method, "grey_levels": key.value, "measured": measured,
                  "setting_b": b, "setting_b_low": low, "setting_b_high": high,
                  "chance": 1 / len(data.ATTRIBUTES[measured])}
                 for key, b, low, high in zip(sets, frame["setting_b"], frame["setting_b_low"], frame["setting_b_high"])]
    return pd.DataFrame(rows)


def _protection_label(protected: str, method: str, grey: float) -> str:
    return "none (clean)" if protected == "none" else f"{protected}: {methods.label(method)}, {grey:g} grey"


def leakage_table(leakage: pd.DataFrame) -> pd.DataFrame:
    """Setting B (%) of each measured attribute (columns) per protection (rows), and chance."""
    frame = leakage.assign(protection=[_protection_label(p, m, g) for p, m, g in
                                       zip(leakage["protected"], leakage["method"], leakage["grey_levels"])])
    table = 100 * frame.pivot_table(index="protection", columns="measured", values="setting_b", sort=False)
    table.loc["chance (1/K)"] = 100 * leakage.groupby("measured")["chance"].first()
    return table


# --------------------------------------------------------------------------------------------- the chapter's prose

#: The column of :func:`gradient_checks`' sign table.
SIGN_CHANGE = f"sign change, batch {MI_BATCH_SIZE} vs whole"


def gradient_checks(cfg: RunConfig, attribute_dataset: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The closed form of Eq. 7's gradient against autograd (:func:`mifgsm_lib.mi.gradient_check`) on real clean
    templates, for the gender estimator of the attacks and the other attributes' estimators on
    ``attribute_dataset``; and the share of template-gradient signs that change between stratified batches of
    :data:`~mifgsm_lib.attacks.MI_BATCH_SIZE` and the whole set (:func:`mifgsm_lib.mi.template_sign_change`)."""
    clean, subset = pipeline.templates(cfg), pipeline.subset(cfg)
    other = pipeline.dataset(cfg, attribute_dataset)
    other_z = pipeline.templates(cfg, attribute_dataset)["templates"]
    cases = {f"{cfg.dataset} gender": (pipeline.vclub(cfg, "face")[0], clean["templates"][subset],
                                       clean["gender"][subset])}
    for attribute in ("age_group", "race"):
        estimator = pipeline.vclub(cfg, "face", name=attribute_dataset, attribute=attribute)[0]
        cases[f"{attribute_dataset} {attribute}"] = (estimator, other_z, data.attribute_labels(other, attribute))
    check = pd.DataFrame([{"estimator": name, **mi.gradient_check(q, z, y)} for name, (q, z, y) in cases.items()])
    check = check.set_index("estimator")
    check["relative error"] = check["closed_form_error"] / check["max_gradient"]
    signs = pd.DataFrame([{"estimator": name, "classes": q.num_classes,
                           SIGN_CHANGE: mi.template_sign_change(q, z, y, MI_BATCH_SIZE, cfg.seed)}
                          for name, (q, z, y) in cases.items()]).set_index("estimator")
    return check, signs


def describe_gradient_checks(check: pd.DataFrame, signs: pd.DataFrame) -> str:
    """Markdown: the closed form's agreement with autograd, and the batch's effect on the signs per class count."""
    worst = float(check["relative error"].max())
    two_class, multi = float(signs.iloc[0, 1]), signs.iloc[1:, 1]
    return (f"The closed form and autograd agree to a relative error of at most {worst:.1e} on every estimator"
            + (" (float64 rounding)." if worst < 1e-10 else ", **more than float64 rounding: the closed form is "
               "wrong**.")
            + " Computed on the same templates' gradients, the fraction of signs that change between stratified "
            f"batches of {MI_BATCH_SIZE} and the whole set as one batch is {two_class:.2%} for gender"
            + (", as the derivation says: the sign does not depend on the batch for two classes." if two_class == 0
               else ", **against the derivation**.")
            + f" For age group and race it is {multi.iloc[0]:.2%} and {multi.iloc[1]:.2%}: with more than two "
            "classes the batch's label frequencies do enter the direction.")


def describe_pixel_signs(pixels: dict[str, float]) -> str:
    """Markdown: MI-FGSM's pixel signs with batches of ``pixels["batch_size"]`` against one batch of the whole
    subset (:func:`batch_size_sign_change`)."""
    return (f"Between batches of {pixels['batch_size']} and one batch of all {pixels['images']} images, {pixels['changed_pixels']:,} of "
            f"{pixels['pixels']:,} pixel signs change ({pixels['changed']:.1e})."
            + (" This is floating-point noise: the convolutions of a batch of "
               f"{pixels['batch_size']} and of a batch of "
               f"{pixels['images']} round differently, and only gradient components within rounding of zero flip. "
               "The batch size does not matter for MI-FGSM on gender." if pixels["changed"] < 1e-4 else
               " That is more than rounding would explain.")
            + f" A share of {pixels['zero_share']:.1%} of the pixels get a zero gradient and do not move.")


def describe_frontier(frontier: pd.DataFrame) -> str:
    """Markdown: the clean and one-step numbers, the most private protection within the target's budget and EER,
    where the iterative protections beat one-step MI-FGSM, and whether the target is met."""
    ref = frontier[frontier["method"] == "reference"].iloc[0]
    target = verdicts.target_check(frontier)
    one_step = frontier[(frontier["method"] == "mi-fgsm") & (frontier["mode"] == "uint8")].set_index(
        "grey_levels")["setting_b"]
    lines = [f"Clean templates: setting B {ref['setting_b']:.1%}, EER {ref['eer']:.2%}. One-step MI-FGSM on 8-bit "
             "photos:" + ",".join(f" {b:.1%} at {methods.budget(g)}" for g, b in one_step.items()) + "."]
    best = target["best"]
    if best is not None:
        lines.append(f"The most private protection within {verdicts.TARGET['grey_levels']} grey levels at EER ≤ "
                     f"{verdicts.TARGET['eer']:.0%} is {methods.label(best['method'])} at "
                     f"{methods.budget(best['grey_levels'])}, {best['mode']}: setting B {best['setting_b']:.1%}, EER {best['eer']:.2%}.")
    iterative = methods.names("iterative")
    pgd = frontier[frontier["method"].isin(iterative)]
    for mode in ("uint8", "float"):
        for g in sorted(set(pgd["grey_levels"])):
            at = frontier[(frontier["mode"] == mode) & (frontier["grey_levels"] == g)].set_index("method")["setting_b"]
            if "mi-fgsm" not in at:
                continue
            better = [methods.label(m) for m in iterative if m in at and at[m] < at["mi-fgsm"] - 0.005]
            verb = "beats" if len(better) == 1 else "beat"
            lines.append(f"At {methods.budget(g)}, {mode}: " + (
                f"{', '.join(better)} {verb} one-step MI-FGSM ({at['mi-fgsm']:.1%}) by more than half a point."
                if better else f"no iterative protection beats one-step MI-FGSM ({at['mi-fgsm']:.1%}) by more than "
                "half a point."))
    lines.append(f"**The target** (setting B ≤ {verdicts.TARGET['setting_b']:.0%} at EER ≤ {verdicts.TARGET['eer']:.0%} "
                 f"within {verdicts.TARGET['grey_levels']} grey levels; one-step MI-FGSM at 1 grey level: "
                 f"{target['one_step_1grey']:.1%}) is " + ("**met**." if target["met"] else "**not met** on these images."))
    return " ".join(lines)


def margin_table(panels: dict[str, np.ndarray], y: np.ndarray) -> pd.DataFrame:
    """Per set of templates: the share on q's wrong side of its boundary, and the median |logit margin|."""
    own = np.where(np.asarray(y) == 1, 1, -1)
    return pd.DataFrame({"on q's wrong side": {k: float(np.mean(np.sign(m) != own)) for k, m in panels.items()},
                         "median |margin|": {k: float(np.median(np.abs(m))) for k, m in panels.items()}})


def describe_margins(margins: pd.DataFrame, vclub_key: str, confusion_key: str) -> str:
    """Markdown: whether the vCLUB objective pushes templates through q's boundary and the confusion objective
    onto it, as the derivation predicts."""
    m = margins
    through = m.loc[vclub_key, "median |margin|"] > m.loc[confusion_key, "median |margin|"]
    return (f"MI-PGD on the vCLUB objective puts {m.loc[vclub_key, 'on q' + chr(39) + 's wrong side']:.0%} of the "
            f"templates on the wrong side of $q$'s boundary (clean: {m.loc['clean', 'on q' + chr(39) + 's wrong side']:.1%}), "
            f"at a median distance |m| of {m.loc[vclub_key, 'median |margin|']:.1f} (clean: "
            f"{m.loc['clean', 'median |margin|']:.1f}). The confusion objective leaves "
            f"{m.loc[confusion_key, 'on q' + chr(39) + 's wrong side']:.0%} on the wrong side, at a median |m| of "
            f"{m.loc[confusion_key, 'median |margin|']:.1f}. "
            + ("As the derivation predicts, the vCLUB objective pushes the templates *through* the boundary and the "
               "confusion objective *onto* it." if through else
               "Against the derivation's prediction, the confusion objective does not keep the margins closer to "
               "the boundary than the vCLUB objective."))


def describe_robustness(kept: pd.DataFrame, frontier: pd.DataFrame) -> str:
    """Markdown, per processed protection: whether it vanishes under a processing, and where setting B falls
    further after processing."""
    one_step = frontier[(frontier["method"] == "mi-fgsm") & (frontier["mode"] == "uint8")].set_index(
        "grey_levels")["setting_b"].sort_index()
    lines = []
    for (method, grey), part in kept.groupby(["method", "grey_levels"], sort=False):
        name = f"{methods.label(method)} at {methods.budget(grey)}"
        base = float(part["base_gain"].iloc[0])
        if not base > 0:
            lines.append(f"* {name} has no setting-B gain on unprocessed photos, so there is nothing to keep.")
            continue
        gone = part.loc[part["vanished"], "transform"].tolist()
        more = part.loc[part["share"] > 1, "transform"].tolist()
        lines.append(f"* {name} (gain {100 * base:.1f} points unprocessed): "
                     + (f"**vanishes** under {', '.join(gone)}" if gone else
                        "keeps at least a quarter of its gain everywhere")
                     + ("; **it does not survive a JPEG re-compression at quality 90, so it is not a protection for "
                        "photos that get re-compressed**" if "jpeg90" in gone else "")
                     + (f"; under {', '.join(more)} setting B falls *further* than on the unprocessed photos"
                        if more else "") + ".")
    if (kept["share"] > 1).any() and len(one_step) > 1 and one_step.iloc[-1] > one_step.iloc[0]:
        lines.append(f"\nSetting B can fall further after processing. One-step MI-FGSM's setting B rises again with "
                     f"the budget ({one_step.iloc[0]:.1%} at {methods.budget(one_step.index[0])}, "
                     f"{one_step.iloc[-1]:.1%} at {one_step.index[-1]:g}), so the retrained classifiers learn part of "
                     "the perturbation's own pattern. The processing smooths that pattern away, while the templates' "
                     "shift stays.")
    return "\n".join(lines)


def describe_robustness_plus(plus: pd.DataFrame, method: str, grey_levels: float) -> str:
    """Markdown: the privacy ``method`` buys against setting B+ in each view (processed or not)."""
    lines = [f"{methods.label(method)} at {methods.budget(grey_levels)}, against the stronger adversary of setting B+:"]
    for r in plus.itertuples():
        kept = "survives" if r.gain_low > 0 else "is not shown to survive" if r.gain_high > 0 else "is gone"
        lines.append(f"* {r.view}: setting B+ {r.clean:.1%} clean, {r.protected:.1%} protected; the gain "
                     f"{100 * r.gain:+.1f} points [{100 * r.gain_low:+.1f}, {100 * r.gain_high:+.1f}] {kept}.")
    return "\n".join(lines)


def describe_attributes(leakage: pd.DataFrame) -> str:
    """Markdown: each attribute protected against itself, where a protection raises the leakage it targets, and
    the collateral effect on the age group of protecting gender."""
    own = verdicts.self_protection(leakage)
    lines = []
    for attribute, part in own.groupby("measured", sort=False):
        effects = [f"{methods.label(r.method)} at {methods.budget(r.grey_levels)}: {r.setting_b:.1%} ({100 * r.change:+.1f} "
                   f"points{', **more** than clean' if r.change > 0.005 else ''})" for r in part.itertuples()]
        lines.append(f"* **{attribute}** (clean {part['clean'].iloc[0]:.1%}, chance {part['chance'].iloc[0]:.1%}), "
                     "protected against itself: " + "; ".join(effects) + ".")
    backfired = own[own["change"] > 0.005]
    if len(backfired):
        lines.append(f"\nIn {len(backfired)} of {len(own)} cases the protection **raises** the leakage of the "
                     "attribute it targets. That is the derivation's third point at work: the step pushes each "
                     "template through $q$'s boundary, away from its own class, so the shift itself depends on the "
                     "label and a retrained classifier can read it.")
    for _, r in verdicts.collateral(leakage).iterrows():
        lines.append(f"* **Collateral effect**, {methods.label(r['method'])} at {methods.budget(r['grey_levels'])}: "
                     f"protecting gender changes the age-group leakage by {100 * r['change']:+.1f} points "
                     f"({r['clean']:.1%} → {r['protecting gender']:.1%}); protecting the age group itself changes it "
                     f"by {100 * r['direct change']:+.1f} points.")
    return "\n".join(lines)


def describe_study(study: Study) -> str:
    """Markdown: the images, pairs and MI-PGD steps of the study."""
    return f"{study.n_images} images of {study.n_pairs} pairs; MI-PGD with T = {study.steps} steps."
