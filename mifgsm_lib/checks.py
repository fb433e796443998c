"""The checks each chapter ends with: results the chapter states that must hold at every profile.

A chapter calls :func:`require` on its list of :class:`Check` in a cell hidden from the HTML; a failed check stops
the chapter, so that a wrong library turns the book's run and its tests red. Each check function here takes what
the chapter computed and decides, with its tolerance, whether the statement holds; the thresholds live here, with
unit tests, never in a notebook.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from mifgsm_lib import paper
from mifgsm_lib.config import PROFILES
from mifgsm_lib.evaluation import EvaluationSet
from mifgsm_lib.intervals import Interval, decide
from mifgsm_lib.mi import VCLUB
from mifgsm_lib.verdicts import FINDING_MARGINS


@dataclass(frozen=True)
class Check:
    """One statement of a chapter, whether it held, and what was measured."""

    statement: str
    passed: bool
    measured: str


def require(checks: Iterable[Check]) -> pd.DataFrame:
    """The checks as a table; an :class:`AssertionError` listing every failed one if any failed."""
    checks = list(checks)
    failed = [c for c in checks if not c.passed]
    if failed:
        lines = "\n".join(f"- {c.statement}: measured {c.measured}" for c in failed)
        raise AssertionError(f"{len(failed)} of {len(checks)} chapter checks failed:\n{lines}")
    return pd.DataFrame([vars(c) for c in checks])


def intro() -> list[Check]:
    """The ``paper`` profile runs the paper's sizes (Secs. 4.2, 5, 6.1, 6.2.2, 6.3)."""
    p = PROFILES["paper"]
    sizes = {
        "sweep subset": (p["subset_size"], paper.SUBSET_SIZE),
        "estimator iterations": (p["estimator_iterations"], paper.ESTIMATOR_ITERATIONS),
        "Fig. 2 checkpoints": (tuple(p["estimator_checkpoints"]), paper.ESTIMATOR_CHECKPOINTS),
        "sensitive-range steps": (p["sensitive_steps"], paper.SENSITIVE_STEPS),
        "setting-B folds": (p["cv_folds"], paper.CV_FOLDS),
        "verification pairs": (600 * len(p["verification_folds"]), paper.VERIFICATION_PAIRS),
    }
    return [Check(f"the paper profile's {name} is the paper's", ours == theirs, f"{ours} (paper: {theirs})")
            for name, (ours, theirs) in sizes.items()]


# --------------------------------------------------------------------------------------------- CLUB theory

#: How close a trained q_θ's held-out vCLUB must come to Eq. 7 with the true posterior (relative).
CONVERGED = 0.15
#: The range of the exponent a in std ∝ N^a of Eq. 7's batch estimate (an average: a = -1/2).
SPREAD_EXPONENT = (-0.6, -0.4)


def eq7_written_out(log_probs: np.ndarray, y: np.ndarray) -> float:
    """Eq. 7 as the paper writes it, its double sum in full: 1/N Σ_i [log q(y_i|z_i) - 1/N Σ_j log q(y_j|z_i)]
    (an independent check of the library's label-frequency form)."""
    lp = np.asarray(log_probs, dtype=np.float64)
    y = np.asarray(y)
    pairs = lp[:, y]  # pairs[i, j] = log q(y_j | z_i)
    return float(np.mean(lp[np.arange(len(y)), y] - pairs.mean(axis=1)))


def club_theory(bound: pd.DataFrame, estimator: VCLUB, x_val: torch.Tensor, y_val: torch.Tensor,
                final_vclub: float, club_true: float, true_mi: float, exponent: float, swapped: float) -> list[Check]:
    """The chapter's statements: Eq. 7 as computed equals its double sum; CLUB with the true posterior bounds the
    true MI at every Δ > 0 and vanishes at Δ = 0; the trained q_θ's estimate reaches the CLUB value, above the true
    MI; the batch spread falls as 1/√N; the swapped q_θ is negative."""
    q = copy.deepcopy(estimator).double().eval()
    with torch.no_grad():
        z = x_val.double().to(next(q.parameters()).device)
        library = float(q(z, y_val))
        written = eq7_written_out(q.log_probs(z).cpu().numpy(), y_val.cpu().numpy())
    nonzero, zero = bound[bound["separation"] > 0], bound[bound["separation"] == 0]
    low, high = SPREAD_EXPONENT
    return [
        Check("Eq. 7 of mifgsm_lib.mi.VCLUB equals its double sum written out", abs(library - written) <= 1e-9,
              f"{library:.12f} vs {written:.12f}"),
        Check("CLUB with the true posterior is above the true MI at every Δ > 0", bool((nonzero["gap"] > 0).all()),
              f"smallest gap {nonzero['gap'].min():.4g} nats"),
        Check("CLUB with the true posterior is zero at Δ = 0 (within 4 standard errors)",
              bool((zero["club"].abs() <= 4 * zero["club_stderr"] + 1e-12).all()),
              f"{zero['club'].tolist()} ± {zero['club_stderr'].tolist()}"),
        Check(f"the trained q_θ's held-out vCLUB is within {CONVERGED:.0%} of Eq. 7 with the true posterior",
              abs(final_vclub - club_true) <= CONVERGED * abs(club_true), f"{final_vclub:.4f} vs {club_true:.4f}"),
        Check("the trained q_θ's held-out vCLUB is above the true MI", final_vclub > true_mi,
              f"{final_vclub:.4f} vs {true_mi:.4f}"),
        Check(f"the batch estimate's spread falls as N^a with a in [{low}, {high}]", low <= exponent <= high,
              f"a = {exponent:.3f}"),
        Check("q_θ with its classes swapped gives a negative estimate", swapped < 0, f"{swapped:.4f}"),
    ]


# --------------------------------------------------------------------------------------------- face templates

#: The largest absolute template difference allowed between the PyTorch port and dlib's own implementation.
PORT_TOLERANCE = 1e-4
#: The 10-fold LFW accuracy dlib's clean templates must reach on the mirror (dlib publishes 99.38 % on
#: full-size images; the mirror's tighter crops cost a little).
DLIB_LFW_ACCURACY = 0.985


def templates(port: pd.DataFrame | None, accuracy: float | None, leakage: pd.DataFrame,
              labelled: dict[str, int], model: str, dataset: str) -> list[Check]:
    """The chapter's statements: the port computes dlib's templates (``port``, dlib only); dlib's clean LFW
    templates verify at the acceptance level (``accuracy``, dlib on LFW only); the clean templates leak gender
    (setting B's interval above 50 %) on every dataset, measured on every labelled image."""
    out = []
    if port is not None:
        worst = float(port["max_abs_diff"].max())
        out.append(Check(f"the port's templates equal dlib's within {PORT_TOLERANCE:g}", worst <= PORT_TOLERANCE,
                         f"largest difference {worst:.2e} over {len(port)} chips"))
    if accuracy is not None and model == "dlib" and dataset == "lfw":
        out.append(Check(f"dlib's clean LFW templates verify at {DLIB_LFW_ACCURACY:.1%} or more",
                         accuracy >= DLIB_LFW_ACCURACY, f"{accuracy:.2%}"))
    for name in leakage.index.get_level_values("dataset").unique():
        rows = leakage.loc[name]
        out.append(Check(f"{name}: the clean templates leak gender (setting B's 95 % interval above 50 %)",
                         bool((rows["low"] > 0.5).all()), f"lowest interval bound {rows['low'].min():.1%}"))
        out.append(Check(f"{name}: setting B uses every labelled image", bool((rows["images"] == labelled[name]).all()),
                         f"{rows['images'].tolist()} of {labelled[name]}"))
    return out


# --------------------------------------------------------------------------------------------- estimator training

#: How closely the cached final checkpoints must reproduce the learning curves' last held-out estimate (nats).
CHECKPOINT_TOLERANCE = 1e-5


def estimator_training(summary: pd.DataFrame, mismatch: float, images: pd.DataFrame,
                       mlp: pd.DataFrame) -> list[Check]:
    """The chapter's statements: every estimator learned (its held-out log-likelihood rose above the prior guess's
    during training; at the final iteration an over-fitted one may fall below it, which the chapter reports); the
    cached checkpoints the attacks load reproduce the learning curves; the MLP classifies gender on held-out
    images; setting A's images are unseen by the MLP where the dataset leaves enough images outside the subset."""
    learned = summary["peak_heldout_loglik"] > summary["prior_loglik"]
    out = [
        Check("every vCLUB estimator's held-out log-likelihood rose above the prior guess's during training",
              bool(learned.all()), f"{int(learned.sum())} of {len(learned)}"),
        Check(f"the cached final checkpoints reproduce the learning curves within {CHECKPOINT_TOLERANCE:g} nats",
              mismatch <= CHECKPOINT_TOLERANCE, f"{mismatch:.2e}"),
        Check("the MLP classifies gender on its held-out split (accuracy above 50 %)",
              bool((mlp["heldout_accuracy"] > 0.5).all()), f"{mlp['heldout_accuracy'].round(4).tolist()}"),
    ]
    for name in images.index.get_level_values("dataset").unique():
        row = images.loc[(name, images.loc[name].index[0])]
        if row["images"] < row["labelled"]:
            out.append(Check(f"{name}: the MLP never saw the sweep subset's images", row["sweep images seen"] == 0,
                             f"{row['sweep images seen']} of {row['sweep subset']} seen"))
    return out


# --------------------------------------------------------------------------------------------- attacks

#: The share of MI-FGSM direction values that must be unchanged when the gradient's batch changes (two classes:
#: the sign does not depend on the batch; only gradients within rounding of zero may flip).
BATCH_INVARIANCE = 0.9999


def attacks(quality: pd.DataFrame, storage: pd.DataFrame, invariance: pd.DataFrame, frames: int,
            n_eps: int) -> list[Check]:
    """The chapter's statements: every attack moves each pixel by at most 255ε grey levels, exactly 255ε somewhere;
    in uint8 storage a perturbation below half a grey level leaves every image and template exactly clean, and from
    half a grey level it changes the image; the MI gradient's sign does not depend on its batch; the static explorer
    holds one frame per ε."""
    worst = float(np.abs(quality["linf_grey"] - quality["grey_levels"]).max())
    u8 = storage[storage["mode"] == "uint8"]
    below, above = u8[u8["grey_levels"] < 0.5], u8[u8["grey_levels"] >= 0.5]
    unchanged = float(invariance["equal_to_first"].min())
    return [
        Check("the largest pixel change is 255ε grey levels for every attack and ε", worst <= 1e-3,
              f"largest difference {worst:.2g}"),
        Check("uint8 storage below half a grey level: no pixel and no template changes",
              bool(len(below) and (below["changed"] == 0).all() and (below["template_shift"] == 0).all()),
              f"{len(below)} levels, largest shift {below['template_shift'].max():.3g}"),
        Check("uint8 storage from half a grey level: the image changes", bool(len(above) and (above["changed"] > 0).all()),
              f"{len(above)} levels, smallest share changed {above['changed'].min():.3g}"),
        Check(f"the MI gradient's sign does not depend on its batch ({BATCH_INVARIANCE:.2%} of values unchanged)",
              unchanged >= BATCH_INVARIANCE, f"{unchanged:.5%}"),
        Check("the static ε explorer holds one frame per ε", frames == n_eps, f"{frames} frames, {n_eps} ε"),
    ]


# --------------------------------------------------------------------------------------------- evaluation settings


def evaluation_settings(sweep: pd.DataFrame, modes: pd.DataFrame, findings: pd.DataFrame, max_eps: float,
                        target: EvaluationSet, stronger: pd.DataFrame, observations: pd.DataFrame,
                        seed: int = 0) -> list[Check]:
    """The chapter's statements: the random attack leaves setting B within the clean value's 95 % interval at
    every ε up to ``max_eps`` (it carries no label); uint8 storage below half a grey level leaves setting B exactly
    at its clean value; each finding's and each Fig. 5 observation's verdict is the one its interval gives; the
    sweep's images (``target``) split into two halves with no person in both, and setting B+ (``stronger``) is
    measured on the reporting half alone."""
    clean = sweep[sweep["eps"] == 0].iloc[0]
    out = []
    random = sweep[(sweep["method"] == "random") & (sweep["eps"] > 0) & (sweep["eps"] <= max_eps)]
    if len(random):
        inside = random["setting_b"].between(clean["setting_b_low"], clean["setting_b_high"])
        out.append(Check(f"the random attack leaves setting B within the clean 95 % interval at every ε ≤ {max_eps:g}",
                         bool(inside.all()), f"{random['setting_b'].round(4).tolist()} against "
                         f"[{clean['setting_b_low']:.4f}, {clean['setting_b_high']:.4f}]"))
    u8 = modes[(modes["mode"] == "uint8") & (modes["eps"] > 0) & (modes["eps"] < 0.5 / 255)]
    if len(u8):
        out.append(Check("uint8 storage below half a grey level leaves setting B exactly at its clean value",
                         bool(np.allclose(u8["setting_b"], clean["setting_b"], rtol=0, atol=1e-12)),
                         f"{u8['setting_b'].tolist()} vs {clean['setting_b']}"))
    for row, margin in zip(findings.itertuples(), FINDING_MARGINS):
        expected = decide(Interval(row.slack, row.low, row.high), margin)
        out.append(Check(f"finding {row.finding[:2]} is decided from its interval", row.verdict == expected,
                         f"{row.verdict} with [{row.low:.4g}, {row.high:.4g}]"))
    for row in observations.itertuples():
        expected = "not measured" if not np.isfinite(row.slack) else decide(Interval(row.slack, row.low, row.high))
        out.append(Check(f"{row.finding.split(':')[0]} is decided from its interval", row.verdict == expected,
                         f"{row.verdict} with [{row.low:.4g}, {row.high:.4g}]"))
    half = target.halves(seed)
    labelled = half >= 0
    sides = pd.Series(half[labelled]).groupby(target.identity[labelled]).nunique()
    out.append(Check("ε* is chosen on one half of the people and reported on the other: no person is in both",
                     bool((sides == 1).all()) and set(half[labelled].tolist()) == {0, 1},
                     f"{int((half == 0).sum())} images choose, {int((half == 1).sum())} report"))
    out.append(Check("setting B+ is measured on the reporting half alone",
                     bool((stronger["images"] == int((half == 1).sum())).all()),
                     f"{sorted(set(stronger['images'].tolist()))} images measured"))
    return out


# --------------------------------------------------------------------------------------------- trade-off


def tradeoff(result: object, table: pd.DataFrame, differences: dict[str, Interval],
             verdicts_shown: dict[str, str]) -> list[Check]:
    """The chapter's statements: ε* and the matched steps are chosen on images disjoint from those reported; each
    claim verdict is the one its paired interval gives; IVE removes ``n_per_step`` dimensions a step while
    Multi-IVE keeps the template's dimension; the clean templates' PIC is 0."""
    select, report = result.target.split_by_folds()[:2]
    frontier = result.frontier
    ive = frontier[frontier["method"] == "ive"].sort_values("value")
    multi = frontier[frontier["method"] == "multi-ive"]
    dim = int(frontier.loc[frontier["method"] == "reference", "dims"].iloc[0])
    steps = np.diff(np.r_[dim, ive["dims"].to_numpy()])
    out = [
        Check("ε* and the baselines' steps are chosen on images disjoint from the reported ones",
              not np.isin(select.indices, report.indices).any() and np.array_equal(report.indices, result.report.indices),
              f"{len(select)} choosing, {len(report)} reported"),
        Check("IVE removes n_per_step dimensions at every step", bool((steps == -result.n_per_step).all()),
              f"steps {steps.tolist()}"),
        Check("Multi-IVE keeps the template's dimension", bool((multi["dims"] == dim).all()),
              f"{sorted(set(multi['dims'].tolist()))} of {dim}"),
    ]
    for name, verdict in verdicts_shown.items():
        expected = decide(differences[f"EER {name} - MI-FGSM"])
        out.append(Check(f"the claim against {name} is decided from its paired interval", verdict == expected,
                         f"{verdict} with {differences[f'EER {name} - MI-FGSM']}"))
    reference_pic = table.loc["Reference (no privacy)", "pic"]
    if np.isfinite(reference_pic):
        out.append(Check("the clean templates' PIC is 0", abs(reference_pic) < 1e-12, f"{reference_pic:.3g}"))
    return out


# --------------------------------------------------------------------------------------------- beyond one step

#: The closed form of Eq. 7's gradient must equal autograd to float64 rounding (relative to the largest component).
CLOSED_FORM_TOLERANCE = 1e-10
#: The share of MI-FGSM pixel signs allowed to differ between batch sizes (floating-point rounding only).
PIXEL_SIGN_TOLERANCE = 1e-4


def closed_form(check: pd.DataFrame, signs: pd.DataFrame, pixels: dict[str, float]) -> list[Check]:
    """The derivation's statements: the closed-form gradient of Eq. 7 equals autograd on every estimator; for two
    classes the template gradient's signs do not depend on the batch, and the image's pixel signs change only by
    rounding."""
    worst = float(check["relative error"].max())
    two = signs[signs["classes"] == 2].iloc[:, -1]
    return [
        Check(f"the closed-form gradient of Eq. 7 equals autograd (relative error ≤ {CLOSED_FORM_TOLERANCE:g})",
              worst <= CLOSED_FORM_TOLERANCE, f"{worst:.2e}"),
        Check("for two classes no template-gradient sign depends on the batch", bool((two == 0).all()),
              f"{two.tolist()}"),
        Check(f"MI-FGSM's pixel signs change by rounding only between batch sizes (≤ {PIXEL_SIGN_TOLERANCE:g})",
              pixels["changed"] <= PIXEL_SIGN_TOLERANCE, f"{pixels['changed']:.2e}"),
    ]


#: How far one-step MI-FGSM's float and uint8 rows at a whole grey level may lie apart (setting B, EER): the two
#: images differ by float rounding only (x + k/255 in float32 is (255x + k)/255 to one unit in the last place), which
#: can move a template across a classifier's boundary for a few images, or reorder two pair distances.
STORAGE_ROUNDING_GAP = 0.01


def beyond(frontier: pd.DataFrame, assessment: pd.DataFrame, recommended: pd.Series | None) -> list[Check]:
    """The chapter's statements: one-step MI-FGSM at whole grey levels gives the same images in float and 8-bit
    storage up to float rounding (rows within :data:`STORAGE_ROUNDING_GAP`); the recommended protection failed no
    front."""
    one = frontier[frontier["method"] == "mi-fgsm"].set_index(["grey_levels", "mode"])
    whole = [g for g in one.index.get_level_values(0).unique() if float(g).is_integer()]
    gaps = [float((one.loc[(g, "float"), ["setting_b", "eer"]] - one.loc[(g, "uint8"), ["setting_b", "eer"]])
                  .abs().max()) for g in whole if (g, "float") in one.index and (g, "uint8") in one.index]
    gap = max(gaps, default=0.0)
    out = [Check("one-step MI-FGSM at whole grey levels: float and uint8 rows agree to float rounding",
                 gap <= STORAGE_ROUNDING_GAP, f"largest gap {gap:.4f} over grey levels {whole}")]
    if recommended is not None:
        out.append(Check("the recommended protection failed no front",
                         recommended["robust"] != 0 and recommended["transfers"] != 0,
                         f"robust {recommended['robust']}, transfers {recommended['transfers']}"))
    return out


def dominance(frontier: pd.DataFrame, points: pd.DataFrame, pairs: pd.DataFrame, protections: Sequence[str],
              baseline: str) -> list[Check]:
    """The comparison with the template baseline measures the frontier's own photos: each protection's 8-bit
    setting B at each budget, and the clean one, equal the frontier's (the same templates, images and seed); and
    the verdicts rest on the table's numbers: each row of ``pairs`` holds the baseline step's values of ``points``
    and, as its differences, its protection's budget's values minus the step's (setting B or B+, and the EER)."""
    shown = frontier[frontier["mode"] == "uint8"].set_index(["method", "grey_levels"])["setting_b"]
    ours = points[points["method"].isin(["reference", *protections])]
    gaps = [abs(float(r.setting_b) - float(shown.loc[(r.method, 0.0 if r.method == "reference" else r.grey_levels)]))
            for r in ours.itertuples()]
    out = [Check("the comparison's photos are the frontier's: the same setting B at every budget and clean",
                 max(gaps) <= 1e-12, f"largest gap {max(gaps):.2g} over {len(gaps)} sets")]
    steps = points[points["method"] == baseline]
    found = []
    for r in pairs.itertuples():
        budgets = points[points["method"] == r.method] if r.method in protections else points.iloc[:0]
        mine = budgets[np.isclose(budgets["grey_levels"], r.grey_levels)]
        theirs = steps[np.isclose(steps["value"], r.step)]
        if len(mine) != 1 or len(theirs) != 1:
            found.append(np.inf)
            continue
        a, b = mine.iloc[0], theirs.iloc[0]
        found += [abs(r.baseline_b - b[r.metric]), abs(r.baseline_eer - b["eer"]),
                  abs(r.d_b - (a[r.metric] - b[r.metric])), abs(r.d_eer - (a["eer"] - b["eer"]))]
    worst = max(found, default=np.inf)
    out.append(Check("the verdicts' differences are the table's: each budget's value minus each step's",
                     worst <= 1e-12, f"largest gap {worst:.2g} over {len(pairs)} pairs"))
    return out
