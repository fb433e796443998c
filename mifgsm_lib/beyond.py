"""Beyond one step (issue 7): what the MI-FGSM gradient is, iterative and attacker-aware MI attacks, whether
the protection survives simple processing, and other soft biometrics.

1. **The gradient of Eq. 7.** For a categorical q with logits s(z), the log-normaliser of the softmax cancels
   in Eq. 7 and dÎ/dz_i = 1/N J_i^T (e_{y_i} - π) (:func:`mifgsm_lib.mi.vclub_template_gradient_closed_form`).
   For two classes this is (2 y_i - 1) π_{1 - y_i} / N times the gradient of q's logit margin s_1 - s_0
   (:func:`margin_weights`), so the sign of an MI-FGSM step does not depend on the batch at all; for K > 2
   classes it does, through π (:func:`template_sign_change`).
2. **Iterative protections** (:data:`PGD_METHODS`): MI-PGD on the vCLUB estimate or on the confusion
   objective, with or without re-estimating q between steps, against one-step MI-FGSM at equal budgets in
   grey levels; every protection is embedded once per storage *view* (:func:`embed_views`).
3. **Robustness**: the same protected images after the processing of :data:`mifgsm_lib.robustness.TRANSFORMS`.
4. **Other soft biometrics** on UTKFace: age group (:data:`AGE_BINS`) and race next to gender, each protected
   with MI-FGSM and a K-class vCLUB, and each one's leakage measured in setting B.
5. A verdict decided from the measured numbers (:func:`verdict`).
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
import torch
from sklearn.model_selection import train_test_split

from mifgsm_lib import attacks, data, evaluation, mi, pipeline, robustness, tradeoff
from mifgsm_lib.config import RunConfig, torch_threads
from mifgsm_lib.data import FaceDataset
from mifgsm_lib.face_models import FaceModel
from mifgsm_lib.progress import bar

#: Code version of this module's cached steps (bump when a step's result changes).
BEYOND_VERSION = 2

#: One grey level of an 8-bit image on the [0, 1] pixel scale.
GREY_LEVEL = 1.0 / 255.0

#: The iterative protections: the objective of MI-PGD and whether q is re-estimated between its steps.
PGD_METHODS: dict[str, tuple[str, bool]] = {
    "mi-pgd": ("vclub", False),
    "mi-pgd-confusion": ("confusion", False),
    "mi-pgd-aware": ("confusion", True),
}

#: Display names, the trade-off chapter's for the methods it has.
METHOD_NAMES = {
    **tradeoff.METHOD_NAMES,
    "mi-fgsm": "MI-FGSM (one step)",
    "mi-pgd": "MI-PGD (vCLUB)",
    "mi-pgd-confusion": "MI-PGD (confusion)",
    "mi-pgd-aware": "MI-PGD (confusion, attacker-aware)",
}

#: The sizes of the chapter per profile: the pairs' folds measured (``None``: the profile's verification folds),
#: MI-PGD's steps, the budgets (grey levels) of the one-step attack and of MI-PGD, the methods whose images are
#: also processed (robustness), the (method, grey levels) of the protections of other attributes on UTKFace, and
#: how many UTKFace images those are measured on (``None``: the profile's subset size). MI-PGD costs ``pgd_steps``
#: gradients per image and budget, so the default profile (the main job on a 2-core CPU) measures two folds of
#: LFW's pairs and one budget; the ``paper`` profile runs the whole study on every pair.
SIZES: dict[str, dict[str, Any]] = {
    "quick": {"folds": None, "pgd_steps": 3, "one_step_budgets": (1, 2), "pgd_budgets": (2,),
              "robustness_methods": ("mi-fgsm", "mi-pgd-confusion"),
              "attribute_protections": (("mi-fgsm", 1), ("mi-fgsm", 2), ("mi-pgd-confusion", 2)),
              "attribute_images": None},
    "default": {"folds": (4, 8), "pgd_steps": 5, "one_step_budgets": (1, 2), "pgd_budgets": (2,),
                "robustness_methods": ("mi-fgsm", "mi-pgd-confusion"),
                "attribute_protections": (("mi-fgsm", 1), ("mi-fgsm", 2), ("mi-pgd-confusion", 2)),
                "attribute_images": 600},
    "paper": {"folds": None, "pgd_steps": 10, "one_step_budgets": (1, 2), "pgd_budgets": (1, 2),
              "robustness_methods": ("mi-fgsm", *PGD_METHODS),
              "attribute_protections": (("mi-fgsm", 1), ("mi-fgsm", 2), ("mi-pgd-confusion", 1),
                                        ("mi-pgd-confusion", 2), ("mi-pgd-aware", 2)),
              "attribute_images": None},
}

#: The issue's target: setting B at most 85 % at an EER of at most 4 %, within 2 grey levels.
TARGET = {"setting_b": 0.85, "eer": 0.04, "grey_levels": 2}

#: Storage views of a protected image: the paper's float image, the 8-bit photo, or the photo processed.
STORAGE_VIEWS = attacks.MODES

#: Age groups of UTKFace: young < 30, adult 30-59, older >= 60 (the bins' left edges after the first).
AGE_BINS: tuple[int, ...] = (30, 60)

#: The classes of each attribute, by label.
ATTRIBUTE_CLASSES: dict[str, tuple[str, ...]] = {
    "gender": ("male", "female"),
    "age_group": ("young (<30)", "adult (30-59)", "older (>=60)"),
    "race": ("White", "Black", "Asian", "Indian", "Others"),  # UTKFace's codes 0-4
}

#: A protection "vanishes" under processing when it keeps less than this share of its setting-B gain.
VANISHED_SHARE = 0.25


def sizes(profile: str) -> dict[str, Any]:
    """The chapter's sizes for a profile (see :data:`SIZES`)."""
    if profile not in SIZES:
        raise ValueError(f"profile={profile!r}: expected one of {sorted(SIZES)}")
    return dict(SIZES[profile])


def grey_eps(grey_levels: float) -> float:
    """ε on the [0, 1] pixel scale of a budget in grey levels (1 grey level = 1/255)."""
    if not 0 < float(grey_levels) <= 255:
        raise ValueError(f"grey_levels={grey_levels!r}: expected a budget in (0, 255] grey levels")
    return float(grey_levels) * GREY_LEVEL


def _indices_hash(indices: np.ndarray) -> str:
    return hashlib.sha256(np.asarray(indices).tobytes()).hexdigest()[:16]


# --------------------------------------------------------------------------------------------------
# 1. The gradient of Eq. 7
# --------------------------------------------------------------------------------------------------


def autograd_template_gradient(estimator: mi.VCLUB, z: torch.Tensor, y: np.ndarray | torch.Tensor) -> torch.Tensor:
    """dÎ/dz_i of Eq. 7 by automatic differentiation, shape ``(N, d)``."""
    z = z.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(estimator(z, y), z)
    return grad


def logit_margin_gradient(estimator: mi.VCLUB, z: torch.Tensor) -> torch.Tensor:
    """The gradient of q's logit margin s_1(z_i) - s_0(z_i) for each template (two classes), shape ``(N, d)``."""
    if estimator.num_classes != 2:
        raise ValueError(f"estimator: the logit margin needs two classes, got num_classes={estimator.num_classes}")
    z = z.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        logits = estimator.logits(z)
        (grad,) = torch.autograd.grad((logits[:, 1] - logits[:, 0]).sum(), z)
    return grad


def margin_weights(y: np.ndarray | torch.Tensor) -> torch.Tensor:
    """The per-sample weight w_i = (2 y_i - 1) π_{1 - y_i} / N with which dÎ/dz_i = w_i ∇(s_1 - s_0)(z_i), K = 2.

    It depends on the sample's label and on the batch's label frequencies π, never on z: the sign of the
    MI-FGSM step is the sign of ±∇(margin), an FGSM step on q.
    """
    labels = mi.check_labels(y, 2)
    pi = mi.label_frequencies(labels, 2, torch.float64)
    return (2 * labels - 1).double() * pi[1 - labels] / len(labels)


def gradient_check(estimator: mi.VCLUB, z: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor) -> dict[str, Any]:
    """The closed form of dÎ/dz against autograd on the templates ``z`` (in float64), and for two classes the
    weighted margin gradient too.

    Returns the classes K, the number of templates, the largest autograd component and the largest absolute
    difference of each form from autograd.
    """
    q = copy.deepcopy(estimator).double().eval()
    z64 = mi.as_templates(z).double()
    auto = autograd_template_gradient(q, z64, y)
    closed = mi.vclub_template_gradient_closed_form(q, z64, y)
    row = {"classes": q.num_classes, "templates": len(z64), "max_gradient": float(auto.abs().max()),
           "closed_form_error": float((closed - auto).abs().max())}
    if q.num_classes == 2:
        weighted = margin_weights(y)[:, None] * logit_margin_gradient(q, z64)
        row["margin_form_error"] = float((weighted - auto).abs().max())
    return row


def sign_change(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> float:
    """The fraction of entries whose sign differs between two arrays of one shape (0 counts as a sign)."""
    sa, sb = np.sign(np.asarray(a)), np.sign(np.asarray(b))
    if sa.shape != sb.shape:
        raise ValueError(f"a and b: expected one shape, got {sa.shape} and {sb.shape}")
    return float(np.mean(sa != sb))


def template_sign_change(
    estimator: mi.VCLUB, z: np.ndarray | torch.Tensor, y: np.ndarray, batch_size: int, seed: int
) -> float:
    """The fraction of template-gradient signs that change between stratified batches of ``batch_size`` and
    the whole set as one batch (closed form of Eq. 7's gradient; 0 for two classes, see :func:`margin_weights`).
    """
    z_t = mi.as_templates(z)
    labels = np.asarray(y)
    whole = mi.vclub_template_gradient_closed_form(estimator, z_t, labels).numpy()
    batched = np.empty_like(whole)
    for b in attacks.stratified_batches(labels, batch_size, seed):
        batched[b] = mi.vclub_template_gradient_closed_form(estimator, z_t[b], labels[b]).numpy()
    return sign_change(whole, batched)


def batch_size_sign_change(cfg: RunConfig, indices: np.ndarray, batch_size: int = 64) -> dict[str, float]:
    """The fraction of MI-FGSM's pixel signs that change between batches of ``batch_size`` (the chapters'
    directions) and the whole set ``indices`` as one batch (both cached by :func:`mifgsm_lib.pipeline.directions`),
    and the share of zeros."""
    small = pipeline.directions(cfg, "mi-fgsm", indices, batch_size=batch_size)
    whole = pipeline.directions(cfg, "mi-fgsm", indices, batch_size=len(indices), over=indices, block=len(indices))
    return {"images": len(indices), "batch_size": batch_size, "changed": sign_change(small, whole),
            "changed_pixels": int(np.sum(small != whole)), "pixels": int(small.size),
            "zero_share": float(np.mean(whole == 0))}


# --------------------------------------------------------------------------------------------------
# 2. Protections embedded in several storage views
# --------------------------------------------------------------------------------------------------

#: ``protect(x, y, positions)``: the protected float images of a batch (positions index the attacked set).
Protect = Callable[[torch.Tensor, torch.Tensor, np.ndarray], torch.Tensor]


def check_views(views: Sequence[str]) -> list[str]:
    """Views: ``float`` (the paper's), ``uint8`` (an 8-bit photo) or a name of :data:`robustness.TRANSFORMS`
    (the 8-bit photo processed)."""
    known = (*STORAGE_VIEWS, *robustness.TRANSFORMS)
    if isinstance(views, str) or not views or any(v not in known for v in views):
        raise ValueError(f"views={views!r}: expected a non-empty list of names from {list(known)}")
    return list(dict.fromkeys(views))


def stored_view(images: torch.Tensor, view: str) -> torch.Tensor:
    """Protected float images as seen in ``view``: unchanged, rounded to 8 bits, or rounded then processed."""
    if view == "float":
        return images
    photo = attacks.store(images, "uint8")
    return photo if view == "uint8" else robustness.TRANSFORMS[view](photo)


def embed_views(
    face_model: FaceModel,
    protect: Protect,
    images: np.ndarray,
    y: np.ndarray,
    views: Sequence[str],
    batch_size: int = 64,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> dict[str, np.ndarray]:
    """Templates of the protected images in every view, the protection computed once per image.

    The images are split in the stratified batches of :func:`mifgsm_lib.attacks.stratified_batches` (as the
    one-step attacks' directions); ``protect`` runs once per batch and each view of its output is embedded.
    """
    views = check_views(views)
    return attacks.embed_protected(face_model, protect, images, y, {v: partial(stored_view, view=v) for v in views},
                                   batch_size, device, seed, progress)


def step_size(eps: float, steps: int) -> float:
    """MI-PGD's α: 2.5 ε / steps (Madry et al.'s rule), at most ε (so one step is MI-FGSM)."""
    if not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps={steps!r}: expected at least 1 step")
    return min(attacks.check_eps(eps), 2.5 * eps / steps)


def gradients_per_image(method: str, steps: int) -> int:
    """Gradients of the face model per image: 1 for one-step MI-FGSM, ``steps`` for MI-PGD (the attacker-aware
    version also embeds the images once between steps and fine-tunes q on them)."""
    if method == "reference":
        return 0
    return 1 if method == "mi-fgsm" else int(steps)


def check_method(method: str) -> str:
    known = ("reference", "mi-fgsm", *PGD_METHODS)
    if method not in known:
        raise ValueError(f"method={method!r}: expected one of {list(known)}")
    return method


def make_pgd(face_model: FaceModel, estimator: mi.VCLUB, method: str, eps: float, steps: int) -> attacks.MIPGD:
    """The MI-PGD protection ``method`` of :data:`PGD_METHODS` at ``eps`` with α = :func:`step_size`."""
    if method not in PGD_METHODS:
        raise ValueError(f"method={method!r}: expected one of {list(PGD_METHODS)}")
    objective, reestimate = PGD_METHODS[method]
    return attacks.MIPGD(face_model, estimator, eps=eps, alpha=step_size(eps, steps), steps=steps,
                         objective=objective, reestimate=reestimate)


def make_protection(cfg: RunConfig, method: str, eps: float, indices: np.ndarray, steps: int,
                    batch_size: int = 64) -> Protect:
    """The protection ``method`` at ``eps`` of the configured model, for the images ``indices``.

    ``reference`` leaves the images as they are; ``mi-fgsm`` adds ε times the cached one-step direction
    (:func:`mifgsm_lib.pipeline.directions`); the MI-PGD methods run :func:`make_pgd` with the gender vCLUB
    estimator of the configured dataset.
    """
    if check_method(method) == "reference":
        return lambda x, y, idx: x
    if method == "mi-fgsm":
        direction = pipeline.directions(cfg, "mi-fgsm", indices, batch_size=batch_size)
        return lambda x, y, idx: attacks.perturb(x, direction[idx], eps)
    attack = make_pgd(pipeline.face_model(cfg), pipeline.vclub(cfg, "face")[0], method, eps, steps)
    return lambda x, y, idx: attack(x, y)


def protected_templates(
    cfg: RunConfig, method: str, eps: float, indices: np.ndarray, views: Sequence[str], steps: int,
    batch_size: int = 64, progress: bool = False,
) -> dict[str, np.ndarray]:
    """Cached templates of the images ``indices`` protected by ``method`` at ``eps``, per view.

    Only the images of known gender are protected (the protections need the label, as the one-step attacks of
    :func:`mifgsm_lib.pipeline.directions`); the others keep their clean, unprocessed template in every view
    and every method, the reference included, so that the methods stay comparable on the same pairs.
    """
    views = check_views(views)
    eps = 0.0 if check_method(method) == "reference" else attacks.check_eps(eps)
    ds = pipeline.dataset(cfg)
    indices = np.asarray(indices)
    known = ds.gender[indices] >= 0
    params = {
        **pipeline.dataset_key(ds), **pipeline.model_key(cfg), "method": method, "eps": eps, "views": views,
        "steps": steps if method in PGD_METHODS else None, "seed": cfg.seed, "batch_size": batch_size,
        "sizes": cfg.sizes, "indices": _indices_hash(indices),
    }

    def compute() -> dict[str, np.ndarray]:
        protect = make_protection(cfg, method, eps, indices[known], steps, batch_size)
        chips = pipeline.chips(cfg)["chips"][indices[known]]
        protected = embed_views(pipeline.face_model(cfg), protect, chips, ds.gender[indices[known]], views,
                                batch_size=batch_size, seed=cfg.seed, device=cfg.torch_device, progress=progress)
        out = {}
        for view, z in protected.items():
            out[view] = pipeline.templates(cfg)["templates"][indices].copy()
            out[view][known] = z
        return out

    return pipeline.cache(cfg).arrays("beyond_protected", BEYOND_VERSION, params, compute)


@dataclass(frozen=True)
class Plan:
    """What the iterative study protects: every (method, grey levels) and the views each is embedded in."""

    steps: int
    protections: tuple[tuple[str, float], ...]
    views: dict[tuple[str, float], tuple[str, ...]]

    @classmethod
    def from_sizes(cls, chapter_sizes: dict[str, Any], methods: Sequence[str] = tuple(PGD_METHODS)) -> "Plan":
        """One-step MI-FGSM at ``one_step_budgets``, each of ``methods`` at ``pgd_budgets``; the methods of
        ``robustness_methods`` (at each of their budgets) and the clean images also in every processed view."""
        steps = int(chapter_sizes["pgd_steps"])
        pairs = [("mi-fgsm", float(g)) for g in chapter_sizes["one_step_budgets"]]
        pairs += [(check_method(m), float(g)) for m in methods for g in chapter_sizes["pgd_budgets"]]
        processed = tuple(robustness.TRANSFORMS)
        views = {p: STORAGE_VIEWS + (processed if p[0] in chapter_sizes["robustness_methods"] else ()) for p in pairs}
        views[("reference", 0.0)] = processed
        return cls(steps, (("reference", 0.0), *pairs), views)


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
    evaluated: tradeoff.EvaluationSet | None = None


def _measure(cfg: RunConfig, target: tradeoff.EvaluationSet, sets: dict[tradeoff.SetKey, np.ndarray]) -> pd.DataFrame:
    """:func:`mifgsm_lib.tradeoff.measure` plus setting A (the MLP trained on clean templates)."""
    frame = tradeoff.measure(sets, target, folds=int(cfg.sizes["cv_folds"]), seed=cfg.seed)
    mlp, _ = pipeline.mlp(cfg)
    mask = target.labelled
    frame["setting_a"] = [evaluation.setting_a(mlp, z[mask], target.gender[mask]) for z in sets.values()]
    frame["grey_levels"] = (frame["value"] / GREY_LEVEL).round(6)
    return frame


def iterative_study(cfg: RunConfig, chapter_sizes: dict[str, Any] | None = None, progress: bool = False) -> Study:
    """Every protection of :class:`Plan` on the images of the verification pairs of the chapter's ``folds``,
    measured per view."""
    chapter_sizes = sizes(cfg.profile) if chapter_sizes is None else chapter_sizes
    plan = Plan.from_sizes(chapter_sizes)
    target = tradeoff.evaluation_set(cfg, folds=chapter_sizes.get("folds"))
    clean = pipeline.templates(cfg)["templates"][target.indices]
    templates = {p: protected_templates(cfg, p[0], grey_eps(p[1]) if p[1] else 0.0, target.indices, plan.views[p],
                                        plan.steps, progress=progress)
                 for p in bar(plan.protections, desc="protections", disable=not progress)}
    keys = {p: tradeoff.SetKey(p[0], "eps", grey_eps(p[1])) for p in plan.protections if p[0] != "reference"}

    frames = []
    for mode in STORAGE_VIEWS:
        sets = {tradeoff.REFERENCE: clean, **{k: templates[p][mode] for p, k in keys.items()}}
        frames.append(_measure(cfg, target, sets).assign(mode=mode))
    frontier = pd.concat(frames, ignore_index=True)
    frontier["gradients"] = [gradients_per_image(m, plan.steps) for m in frontier["method"]]

    rows = [frontier[frontier["mode"] == "uint8"].assign(transform="none")]
    for name in robustness.TRANSFORMS:
        sets = {tradeoff.REFERENCE: templates[("reference", 0.0)][name],
                **{k: templates[p][name] for p, k in keys.items() if name in plan.views[p]}}
        rows.append(_measure(cfg, target, sets).assign(transform=name))
    robust = pd.concat(rows, ignore_index=True)
    robust = robust[["transform", "method", "value", "grey_levels", "setting_b", "eer", "accuracy"]]

    grid = tradeoff.eps_grid(cfg.profile)
    curve_sets = {tradeoff.REFERENCE: clean}
    curve_sets.update({tradeoff.SetKey("mi-fgsm", "eps", e): z for e, z in
                       pipeline.perturbed_templates(cfg, "mi-fgsm", grid, target.indices, mode="float").items()})
    curve = _measure(cfg, target, curve_sets)
    return Study(frontier, robust.reset_index(drop=True), curve, plan.steps, len(target), len(target.pairs),
                 templates, target)


def logit_margins(estimator: mi.VCLUB, z: np.ndarray) -> np.ndarray:
    """q's logit margin s_1(z) - s_0(z) of each template (two classes; > 0 where q leans to class 1)."""
    if estimator.num_classes != 2:
        raise ValueError(f"estimator: the logit margin needs two classes, got num_classes={estimator.num_classes}")
    with torch.no_grad():
        logits = estimator.logits(mi.as_templates(z))
    return (logits[:, 1] - logits[:, 0]).numpy()


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
    order = {m: k for k, m in enumerate(METHOD_NAMES)}
    table = table.sort_index(key=lambda s: s.map(order) if s.name == "method" else s)
    return table.rename(index=METHOD_NAMES, level="method").rename(columns=METRIC_NAMES, level=1)


def _best(rows: pd.DataFrame) -> pd.Series:
    """The lowest setting B; ties: the smaller budget, fewer gradients, the 8-bit photo."""
    ranked = rows.assign(_float=rows["mode"] != "uint8")
    return ranked.sort_values(["setting_b", "grey_levels", "gradients", "_float"]).iloc[0].drop("_float")


def target_check(frontier: pd.DataFrame, target: dict[str, float] = TARGET) -> dict[str, Any]:
    """The issue's target on the measured frontier: the protections within ``grey_levels`` with setting B at
    most ``setting_b`` and EER at most ``eer`` (any storage mode), the most private one at that EER, and one-step
    MI-FGSM's setting B at 1 grey level (uint8) for comparison."""
    within = frontier[(frontier["method"] != "reference") & (frontier["grey_levels"] <= target["grey_levels"] + 1e-9)]
    met = within[(within["setting_b"] <= target["setting_b"]) & (within["eer"] <= target["eer"])]
    usable = within[within["eer"] <= target["eer"]]
    one = frontier[(frontier["method"] == "mi-fgsm") & np.isclose(frontier["grey_levels"], 1.0)
                   & (frontier["mode"] == "uint8")]
    return {"met": len(met) > 0, "meeting": met, "best": _best(usable) if len(usable) else None,
            "one_step_1grey": float(one["setting_b"].iloc[0]) if len(one) else float("nan")}


def retained_gain(robust: pd.DataFrame) -> pd.DataFrame:
    """Per processed (method, grey levels, transform): the setting-B gain over the processed clean images, and
    the share of the unprocessed gain it keeps (``vanished`` when below :data:`VANISHED_SHARE`).

    The gain is B(clean) - B(protected), both processed alike; a protection with no gain unprocessed has none
    to keep (share NaN).
    """
    ref = robust[robust["method"] == "reference"].set_index("transform")["setting_b"]
    attacked = robust[robust["method"] != "reference"].copy()
    attacked["gain"] = attacked["transform"].map(ref) - attacked["setting_b"]
    base = attacked[attacked["transform"] == "none"].set_index(["method", "value"])["gain"]
    attacked["base_gain"] = [base.get((m, v), np.nan) for m, v in zip(attacked["method"], attacked["value"])]
    attacked["share"] = np.where(attacked["base_gain"] > 0, attacked["gain"] / attacked["base_gain"], np.nan)
    attacked["vanished"] = attacked["share"] < VANISHED_SHARE
    return attacked[attacked["transform"] != "none"].reset_index(drop=True)


def robustness_table(robust: pd.DataFrame, metric: str = "setting_b") -> pd.DataFrame:
    """``metric`` in percent per protection (rows) and processing (columns, ``none`` first)."""
    if metric not in METRIC_NAMES:
        raise ValueError(f"metric={metric!r}: expected one of {list(METRIC_NAMES)}")
    frame = robust.assign(protection=[METHOD_NAMES[m] + ("" if m == "reference" else f", {g:g} grey")
                                      for m, g in zip(robust["method"], robust["grey_levels"])])
    table = 100 * frame.pivot_table(index="protection", columns="transform", values=metric, sort=False)
    return table.reindex(columns=["none", *robustness.TRANSFORMS])


# --------------------------------------------------------------------------------------------------
# 4. Other soft biometrics (UTKFace)
# --------------------------------------------------------------------------------------------------


def check_attribute(y: np.ndarray, attribute: str) -> np.ndarray:
    """Labels of an attribute, with a clear error unless at least two classes are present."""
    labels = np.asarray(y)
    classes = np.unique(labels[labels >= 0])
    if classes.size < 2:
        raise ValueError(f"attribute {attribute!r}: {classes.size} class(es) {classes.tolist()} among {labels.size} "
                         "images; expected at least two (the MI gradient and setting B need them)")
    return labels


def attribute_labels(ds: FaceDataset, attribute: str) -> np.ndarray:
    """Class labels of ``attribute`` (:data:`ATTRIBUTE_CLASSES`) for every image of ``ds``.

    ``age_group`` bins the age at :data:`AGE_BINS` (young < 30, adult 30-59, older >= 60); ``race`` is
    UTKFace's code 0-4; -1 marks an unknown gender.
    """
    if attribute == "gender":
        y = ds.gender
    elif attribute in ("age_group", "race"):
        source = "age" if attribute == "age_group" else "race"
        if source not in ds.attributes:
            raise ValueError(f"attribute {attribute!r}: dataset {ds.name!r} has no {source!r} labels "
                             f"(it has {sorted(ds.attributes)})")
        y = np.digitize(ds.attributes["age"], AGE_BINS) if attribute == "age_group" else ds.attributes["race"]
    else:
        raise ValueError(f"attribute={attribute!r}: expected one of {list(ATTRIBUTE_CLASSES)}")
    return check_attribute(np.asarray(y, dtype=np.int64), attribute)


def attribute_vclub(cfg: RunConfig, attribute: str, name: str = "utkface") -> tuple[mi.VCLUB, dict[str, np.ndarray]]:
    """A K-class vCLUB for ``attribute`` on the clean templates of dataset ``name``, with its learning curve.

    Gender is :func:`mifgsm_lib.pipeline.vclub`'s estimator; the other attributes are trained alike (the
    profile's ``estimator_iterations``, Adam, stratified batches of :data:`mifgsm_lib.pipeline.VCLUB_BATCH` or
    the whole training split where it is smaller) on a seeded 80/20 split stratified by the attribute.
    """
    if attribute == "gender":
        return pipeline.vclub(cfg, "face", name=name)
    ds = pipeline.dataset(cfg, name)
    y = attribute_labels(ds, attribute)
    z = pipeline.templates(cfg, name)["templates"]
    k = len(ATTRIBUTE_CLASSES[attribute])
    iterations = int(cfg.sizes["estimator_iterations"])
    params = {**pipeline.dataset_key(ds), **pipeline.model_key(cfg), "attribute": attribute, "seed": cfg.seed,
              "iterations": iterations}

    def compute() -> dict[str, Any]:
        train, held = train_test_split(np.arange(len(y)), test_size=0.2, stratify=y, random_state=cfg.seed)
        with torch_threads(1):
            result = mi.train_vclub(z[train], y[train], z[held], y[held], iterations=iterations, seed=cfg.seed,
                                    num_classes=k, device=cfg.torch_device, progress=False,
                                    batch_size=min(pipeline.VCLUB_BATCH, len(train)))
        out: dict[str, Any] = {f"history.{n}": torch.as_tensor(np.asarray(v)) for n, v in result.history.items()}
        out.update({f"model.{n}": v for n, v in result.estimator.checkpoint_state().items()})
        return out

    state = pipeline.cache(cfg).state_dict("beyond_attribute_vclub", BEYOND_VERSION, params, compute)
    estimator = mi.VCLUB.from_checkpoint_state({n[6:]: v for n, v in state.items() if n.startswith("model.")},
                                               expected_dim=z.shape[1]).eval()
    return estimator, {n[8:]: v.numpy() for n, v in state.items() if n.startswith("history.")}


def attribute_summary(cfg: RunConfig, attributes: Sequence[str] = tuple(ATTRIBUTE_CLASSES), name: str = "utkface",
                      indices: np.ndarray | None = None) -> pd.DataFrame:
    """Per attribute: its classes with their counts among the images ``indices`` (default: the profile's subset),
    and its vCLUB's held-out log-likelihood beside the prior's, E[log p(y)] = -H(Y) (a useful q beats it)."""
    ds = pipeline.dataset(cfg, name)
    indices = pipeline.subset(cfg, name) if indices is None else np.asarray(indices)
    rows = []
    for a in attributes:
        y = attribute_labels(ds, a)
        share = np.bincount(y[y >= 0], minlength=len(ATTRIBUTE_CLASSES[a])) / np.sum(y >= 0)
        counts = np.bincount(y[indices][y[indices] >= 0], minlength=len(ATTRIBUTE_CLASSES[a]))
        _, history = attribute_vclub(cfg, a, name)
        rows.append({"attribute": a, "classes": ", ".join(f"{c}: {n}" for c, n in zip(ATTRIBUTE_CLASSES[a], counts)),
                     "held-out log q(y|z)": float(history["val_loglik"][-1]),
                     "prior E[log p(y)]": float(np.sum(share[share > 0] * np.log(share[share > 0]))),
                     "held-out vCLUB (nats)": float(history["val_mi"][-1])})
    return pd.DataFrame(rows).set_index("attribute")


def attribute_protection(
    cfg: RunConfig, attribute: str, method: str, eps_list: Sequence[float], indices: np.ndarray,
    name: str = "utkface", steps: int | None = None, batch_size: int = 64,
) -> dict[float, np.ndarray]:
    """Templates of the 8-bit photos of the images ``indices`` of dataset ``name``, protected against
    ``attribute`` by ``method`` (``mi-fgsm`` or one of :data:`PGD_METHODS` with ``steps``) with the attribute's
    K-class vCLUB (:func:`attribute_vclub`), per ε (cached)."""
    if method != "mi-fgsm" and method not in PGD_METHODS:
        raise ValueError(f"method={method!r}: expected 'mi-fgsm' or one of {list(PGD_METHODS)}")
    if method in PGD_METHODS and steps is None:
        raise ValueError(f"steps=None: expected MI-PGD's number of steps for method={method!r}")
    ds = pipeline.dataset(cfg, name)
    eps_values = [attacks.check_eps(e) for e in eps_list]
    params = {**pipeline.dataset_key(ds), **pipeline.model_key(cfg), "attribute": attribute, "method": method,
              "eps": eps_values, "steps": steps if method in PGD_METHODS else None, "seed": cfg.seed,
              "batch_size": batch_size, "sizes": cfg.sizes, "indices": _indices_hash(indices)}

    def compute() -> dict[str, np.ndarray]:
        y = attribute_labels(ds, attribute)[indices]
        face, estimator = pipeline.face_model(cfg), attribute_vclub(cfg, attribute, name)[0]
        chips = pipeline.chips(cfg, name)["chips"][np.asarray(indices)]
        if method == "mi-fgsm":
            direction = attacks.compute_directions(attacks.MIFGSM(face, estimator), chips, y, batch_size=batch_size,
                                                   device=cfg.torch_device, seed=cfg.seed, progress=False)
            per_eps = attacks.embed_perturbed(face, chips, direction, eps_values, mode="uint8",
                                              device=cfg.torch_device, progress=False)
        else:
            per_eps = {}
            for e in eps_values:
                attack = make_pgd(face, estimator, method, e, int(steps))
                per_eps[e] = embed_views(face, lambda x, yb, idx: attack(x, yb), chips, y, ["uint8"],
                                         batch_size=batch_size, seed=cfg.seed, device=cfg.torch_device,
                                         progress=False)["uint8"]
        return {f"eps_{i}": per_eps[e] for i, e in enumerate(eps_values)}

    arrays = pipeline.cache(cfg).arrays("beyond_attribute_protection", BEYOND_VERSION, params, compute)
    return {e: arrays[f"eps_{i}"] for i, e in enumerate(eps_values)}


def attribute_images(cfg: RunConfig, chapter_sizes: dict[str, Any], name: str = "utkface") -> np.ndarray:
    """The images of dataset ``name`` the attributes are measured on: a gender-balanced subset of the chapter's
    ``attribute_images`` (``None``: the profile's subset, :func:`mifgsm_lib.pipeline.subset`)."""
    n = chapter_sizes.get("attribute_images")
    if n is None:
        return pipeline.subset(cfg, name)
    indices, _ = data.balanced_subset(pipeline.dataset(cfg, name).gender, int(n), seed=cfg.seed)
    return np.sort(indices)


def attribute_leakage(
    cfg: RunConfig,
    protections: Sequence[tuple[str, float]],
    steps: int,
    attributes: Sequence[str] = tuple(ATTRIBUTE_CLASSES),
    name: str = "utkface",
    indices: np.ndarray | None = None,
) -> pd.DataFrame:
    """Setting B (K-class balanced accuracy) of every attribute on the clean templates and on the templates
    protected against each attribute by each (method, grey levels) of ``protections`` (8-bit photos).

    ``indices``: the images attacked and measured (default: the profile's gender-balanced subset of ``name``).
    One row per (protected attribute or ``none``, method, grey levels, measured attribute) with chance 1/K.
    """
    ds = pipeline.dataset(cfg, name)
    indices = pipeline.subset(cfg, name) if indices is None else np.asarray(indices)
    labels = {a: check_attribute(attribute_labels(ds, a)[indices], a) for a in attributes}
    sets: dict[tuple[str, str, float], np.ndarray] = {
        ("none", "reference", 0.0): pipeline.templates(cfg, name)["templates"][indices]}
    by_method: dict[str, list[float]] = {}
    for method, grey in protections:
        by_method.setdefault(method, []).append(float(grey))
    for protected in attributes:
        for method, greys in by_method.items():
            per_eps = attribute_protection(cfg, protected, method, [grey_eps(g) for g in greys], indices, name,
                                           steps=steps)
            sets.update({(protected, method, g): z for g, z in zip(greys, per_eps.values())})
    rows = []
    for measured, y in labels.items():
        known = y >= 0
        results = evaluation.setting_b_sweep({k: z[known] for k, z in sets.items()}, y[known],
                                             groups=ds.identity[indices][known], folds=int(cfg.sizes["cv_folds"]),
                                             seed=cfg.seed, progress=False, multiclass=True)
        k = len(ATTRIBUTE_CLASSES[measured])
        rows += [{"protected": p, "method": m, "grey_levels": g, "measured": measured, "setting_b": r.mean,
                  "chance": 1 / k} for (p, m, g), r in results.items()]
    return pd.DataFrame(rows)


def _protection_label(protected: str, method: str, grey: float) -> str:
    return "none (clean)" if protected == "none" else f"{protected}: {METHOD_NAMES[method]}, {grey:g} grey"


def leakage_table(leakage: pd.DataFrame) -> pd.DataFrame:
    """Setting B (%) of each measured attribute (columns) per protection (rows), and chance."""
    frame = leakage.assign(protection=[_protection_label(p, m, g) for p, m, g in
                                       zip(leakage["protected"], leakage["method"], leakage["grey_levels"])])
    table = 100 * frame.pivot_table(index="protection", columns="measured", values="setting_b", sort=False)
    table.loc["chance (1/K)"] = 100 * leakage.groupby("measured")["chance"].first()
    return table


def collateral(leakage: pd.DataFrame, protected: str = "gender", measured: str = "age_group") -> pd.DataFrame:
    """How protecting ``protected`` changes the leakage of ``measured``, per (method, grey levels): setting B
    clean and protected, the change, and beside it the change when protecting ``measured`` itself."""
    clean = float(leakage[(leakage["protected"] == "none") & (leakage["measured"] == measured)]["setting_b"].iloc[0])
    rows = []
    attacked = leakage[(leakage["protected"] != "none") & (leakage["measured"] == measured)]
    for (method, g), at in attacked.groupby(["method", "grey_levels"], sort=False):
        at = at.set_index("protected")["setting_b"]
        rows.append({"method": method, "grey_levels": g, "clean": clean, f"protecting {protected}": at[protected],
                     "change": at[protected] - clean, f"protecting {measured} itself": at[measured],
                     "direct change": at[measured] - clean})
    return pd.DataFrame(rows)


def self_protection(leakage: pd.DataFrame) -> pd.DataFrame:
    """Each attribute's setting B when protected against itself, per (method, grey levels), and its change
    from the clean templates (> 0: the protection raises the leakage it is meant to remove)."""
    clean = leakage[leakage["protected"] == "none"].set_index("measured")["setting_b"]
    own = leakage[leakage["protected"] == leakage["measured"]].copy()
    own["clean"] = own["measured"].map(clean)
    own["change"] = own["setting_b"] - own["clean"]
    return own[["measured", "method", "grey_levels", "clean", "setting_b", "change", "chance"]].reset_index(drop=True)


# --------------------------------------------------------------------------------------------------
# 5. The verdict
# --------------------------------------------------------------------------------------------------


def assess(study: Study, kept: pd.DataFrame, leakage: pd.DataFrame | None = None,
           max_grey: float = TARGET["grey_levels"], eer_limit: float = TARGET["eer"]) -> pd.DataFrame:
    """Every candidate protection on three fronts, from the measured numbers.

    Candidates: the 8-bit photos (what is stored and shared) of each protection within ``max_grey`` grey levels
    that lowers setting B below the clean images'. Columns: setting B, EER, verification accuracy, gradients;
    ``within_eer`` (EER ≤ ``eer_limit``); ``robust``: it keeps at least :data:`VANISHED_SHARE` of its gain under
    every processing of ``kept`` (:func:`retained_gain`); ``transfers``: on the other dataset of ``leakage``
    (:func:`attribute_leakage`), the same method and budget lowers every attribute's own leakage (by more than
    half a point each). Both are NaN where the profile did not measure them.
    """
    f = study.frontier
    clean = float(f.loc[f["method"] == "reference", "setting_b"].iloc[0])
    rows = f[(f["mode"] == "uint8") & (f["method"] != "reference") & (f["grey_levels"] <= max_grey + 1e-9)
             & (f["setting_b"] < clean)]
    own = self_protection(leakage) if leakage is not None else None
    out = []
    for _, r in rows.iterrows():
        mine = kept[(kept["method"] == r["method"]) & np.isclose(kept["grey_levels"], r["grey_levels"])]
        there = (own[(own["method"] == r["method"]) & np.isclose(own["grey_levels"], r["grey_levels"])]
                 if own is not None else pd.DataFrame())
        out.append({
            "method": r["method"], "grey_levels": r["grey_levels"], "gradients": r["gradients"],
            "setting_b": r["setting_b"], "eer": r["eer"], "accuracy": r["accuracy"],
            "within_eer": bool(r["eer"] <= eer_limit),
            "robust": float(not mine["vanished"].any()) if len(mine) else np.nan,
            "transfers": float((there["change"] < -0.005).all()) if len(there) else np.nan,
        })
    return pd.DataFrame(out, columns=["method", "grey_levels", "gradients", "setting_b", "eer", "accuracy",
                                      "within_eer", "robust", "transfers"])


def recommend(assessment: pd.DataFrame) -> pd.Series | None:
    """The protection we recommend from :func:`assess`: never one that failed a front (vanished or raised the
    leakage elsewhere); first those verified on both fronts, and among them those within the EER limit; then
    the lowest setting B (ties: smaller budget, fewer gradients). ``None`` when no candidate is left."""
    ok = assessment[(assessment["robust"] != 0) & (assessment["transfers"] != 0)]
    if ok.empty:
        return None
    verified = (ok["robust"] == 1) & (ok["transfers"] == 1)
    ranked = ok.assign(_unverified=~verified, _over=~ok["within_eer"].astype(bool))
    order = ["_unverified", "_over", "setting_b", "grey_levels", "gradients"]
    return ranked.sort_values(order).iloc[0].drop(["_unverified", "_over"])


def _front(value: float, yes: str, no: str) -> str:
    return "not measured in this profile" if np.isnan(value) else yes if value else no


def verdict(study: Study, kept: pd.DataFrame, leakage: pd.DataFrame | None = None) -> str:
    """The closing verdict in markdown, every statement decided from the measured numbers (:func:`assess`,
    :func:`recommend`). ``kept`` is :func:`retained_gain` of ``study.robustness``; ``leakage``
    :func:`attribute_leakage`'s table."""
    f = study.frontier
    ref = f[(f["method"] == "reference")].iloc[0]
    table = assess(study, kept, leakage)
    pick = recommend(table)
    check = target_check(f)
    target = (f"The issue's target (setting B ≤ {TARGET['setting_b']:.0%} at EER ≤ {TARGET['eer']:.0%} within "
              f"{TARGET['grey_levels']} grey levels) is **{'met' if check['met'] else 'not met'}** here.")
    if pick is None:
        return (f"**No protection to recommend.** Of the protections that lower setting B below the clean images' "
                f"{ref['setting_b']:.1%} within {TARGET['grey_levels']} grey levels, every one vanished under "
                f"processing or raised the leakage of its attribute on the other dataset. {target}")
    name = f"{METHOD_NAMES[pick['method']]} at {pick['grey_levels']:g} grey level(s)"
    text = [f"**We would recommend {name}**, stored as an 8-bit photo: setting B falls from {ref['setting_b']:.1%} "
            f"(clean) to {pick['setting_b']:.1%} (privacy gain "
            f"{evaluation.privacy_gain(ref['setting_b'], pick['setting_b']):.0%}). The cost: an EER of "
            f"{pick['eer']:.2%} (clean {ref['eer']:.2%}), a verification accuracy of {pick['accuracy']:.2%} (clean "
            f"{ref['accuracy']:.2%}) and {int(pick['gradients'])} face-model gradient(s) per image."]
    if not pick["within_eer"]:
        text.append(f"Its EER is above the {TARGET['eer']:.0%} limit: no candidate within the limit passed every "
                    "front.")
    robust = _front(pick["robust"], "keeps at least a quarter of its gain", "vanishes")
    transfers = _front(pick["transfers"], "lowers the leakage of every attribute it protects", "raises a leakage")
    text.append(f"Under processing it {robust}; on the other dataset it {transfers}.")
    for _, r in table.iterrows():
        if (r["method"], r["grey_levels"]) == (pick["method"], pick["grey_levels"]):
            continue
        failed = [what for what, value in (("vanishes under processing", r["robust"]),
                                           ("raises the leakage it targets on the other dataset", r["transfers"]))
                  if value == 0]
        tempting = r["setting_b"] < pick["setting_b"] or (r["within_eer"] and not pick["within_eer"])
        if failed and tempting:
            text.append(f"Not {METHOD_NAMES[r['method']]} at {r['grey_levels']:g} grey level(s) (setting B "
                        f"{r['setting_b']:.1%}, EER {r['eer']:.2%}): it {' and '.join(failed)}.")
    if pick["setting_b"] > 0.5 + 0.5 * (ref["setting_b"] - 0.5):
        text.append("Even so it removes less than half of the gender information above chance: a retrained "
                    "classifier still recovers most of it.")
    text.append(target)
    if leakage is not None:
        col = collateral(leakage)
        at = col[(col["method"] == pick["method"]) & np.isclose(col["grey_levels"], pick["grey_levels"])]
        if len(at):
            text.append(f"Protecting gender this way changes the age-group leakage on the other dataset by "
                        f"{100 * at['change'].iloc[0]:+.1f} points.")
    return " ".join(text)
