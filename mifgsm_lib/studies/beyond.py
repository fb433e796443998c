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
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mifgsm_lib import data, evaluation, methods, mi, pipeline, robustness
from mifgsm_lib.config import GREY_LEVEL, RunConfig, grey_eps
from mifgsm_lib.evaluation import REFERENCE, SetKey


def batch_size_sign_change(cfg: RunConfig, indices: np.ndarray, batch_size: int = 64) -> dict[str, float]:
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
        ``pgd_budgets``; the methods of ``robustness_methods`` (at each of their budgets) and the clean images also
        in every processed view."""
        iterative = methods.names("iterative") if iterative is None else methods.check_methods(iterative,
                                                                                               "iterative")
        steps = int(chapter_sizes["pgd_steps"])
        pairs = [("mi-fgsm", float(g)) for g in chapter_sizes["one_step_budgets"]]
        pairs += [(m, float(g)) for m in iterative for g in chapter_sizes["pgd_budgets"]]
        processed = tuple(robustness.TRANSFORMS)
        views = {p: _views(p[0] in chapter_sizes["robustness_methods"]) for p in pairs}
        views[("reference", 0.0)] = processed
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
    """:func:`mifgsm_lib.evaluation.measure` with setting A (the MLP trained on clean templates) and the budget in
    grey levels."""
    frame = evaluation.measure(sets, target, folds=int(cfg.sizes["cv_folds"]), seed=cfg.seed,
                               classifier=pipeline.mlp(cfg)[0])
    frame["grey_levels"] = (frame["value"] / GREY_LEVEL).round(6)
    return frame


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
    robust = robust[["transform", "method", "value", "grey_levels", "setting_b", "eer", "accuracy"]]

    curve_sets = {REFERENCE: clean}
    curve_sets.update({SetKey("mi-fgsm", "eps", e): z for e, z in pipeline.perturbed_templates(
        cfg, "mi-fgsm", sorted(cfg.sizes["tradeoff_eps"]), target.indices, mode="float").items()})
    curve = _measure(cfg, target, curve_sets)
    return Study(frontier, robust.reset_index(drop=True), curve, plan.steps, len(target), len(target.pairs),
                 templates, target)


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
        frame = evaluation.measure(sets, target, folds=int(cfg.sizes["cv_folds"]), seed=cfg.seed, multiclass=True)
        rows += [{"protected": against[key], "method": key.method, "grey_levels": key.value, "measured": measured,
                  "setting_b": b, "chance": 1 / len(data.ATTRIBUTES[measured])}
                 for key, b in zip(sets, frame["setting_b"])]
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
