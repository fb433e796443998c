"""The in-chapter checks (:mod:`mifgsm_lib.checks`): each passes on numbers where the chapter's statement holds
and fails where it does not, and :func:`~mifgsm_lib.checks.require` turns a failure into an error."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from mifgsm_lib import checks
from mifgsm_lib.evaluation import EvaluationSet
from mifgsm_lib.mi import VCLUB, vclub_from_log_probs


def failed(found: list[checks.Check]) -> list[str]:
    return [c.statement for c in found if not c.passed]


def test_require_lists_every_failed_check() -> None:
    ok, bad = checks.Check("a", True, "1"), checks.Check("b", False, "2")
    assert checks.require([ok]).shape == (1, 3)
    with pytest.raises(AssertionError, match=r"1 of 2 chapter checks failed:\n- b: measured 2"):
        checks.require([ok, bad])


def test_the_paper_profile_runs_the_papers_sizes(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not failed(checks.intro())
    monkeypatch.setitem(checks.PROFILES["paper"], "subset_size", 4000)
    assert failed(checks.intro()) == ["the paper profile's sweep subset is the paper's"]


def test_eq7_written_out_is_the_double_sum() -> None:
    rng = np.random.default_rng(0)
    lp = np.log(rng.dirichlet(np.ones(3), size=7))
    y = np.array([0, 1, 2, 1, 0, 0, 2])
    by_hand = np.mean([lp[i, y[i]] - np.mean([lp[i, y[j]] for j in range(7)]) for i in range(7)])
    assert checks.eq7_written_out(lp, y) == pytest.approx(by_hand, abs=1e-15)
    assert vclub_from_log_probs(torch.from_numpy(lp), y).item() == pytest.approx(by_hand, abs=1e-12)


def _club_inputs() -> dict:
    torch.manual_seed(0)
    q = VCLUB(dim=3)
    x, y = torch.randn(50, 3), torch.arange(50) % 2
    bound = pd.DataFrame({"separation": [0.0, 1.0, 2.0], "gap": [0.0, 0.1, 0.5], "club": [0.0, 0.2, 1.0],
                          "club_stderr": [0.01, 0.01, 0.01]})
    return dict(bound=bound, estimator=q, x_val=x, y_val=y, final_vclub=0.95, club_true=1.0, true_mi=0.3,
                exponent=-0.5, swapped=-0.9)


def test_club_theory_checks_pass_and_fail() -> None:
    inputs = _club_inputs()
    assert not failed(checks.club_theory(**inputs))
    broken = {**inputs, "bound": inputs["bound"].assign(gap=[0.0, -0.1, 0.5]), "final_vclub": 0.2, "exponent": -1.0,
              "swapped": 0.1}
    assert len(failed(checks.club_theory(**broken))) == 5


def test_club_theory_check_catches_a_wrong_eq7(monkeypatch: pytest.MonkeyPatch) -> None:
    from mifgsm_lib import mi

    inputs = _club_inputs()
    monkeypatch.setattr(mi.VCLUB, "forward", lambda self, z, y: -vclub_from_log_probs(self.log_probs(z), y))
    assert failed(checks.club_theory(**inputs)) == ["Eq. 7 of mifgsm_lib.mi.VCLUB equals its double sum written out"]


def test_templates_checks() -> None:
    port = pd.DataFrame({"max_abs_diff": [1e-7, 3e-7]})
    leakage = pd.DataFrame({"dataset": ["lfw"], "folds": ["grouped"], "low": [0.95], "images": [100]}).set_index(
        ["dataset", "folds"])
    assert not failed(checks.templates(port, 0.99, leakage, {"lfw": 100}, "dlib", "lfw"))
    bad = checks.templates(port * 1e4, 0.97, leakage.assign(low=[0.49], images=[90]), {"lfw": 100}, "dlib", "lfw")
    assert len(failed(bad)) == 4
    assert len(checks.templates(None, None, leakage, {"lfw": 100}, "iresnet50", "lfw")) == 2  # no dlib checks


def test_estimator_checks() -> None:
    summary = pd.DataFrame({"heldout_loglik": [-0.1, -0.7], "peak_heldout_loglik": [-0.1, -0.2],
                            "prior_loglik": [-0.6, -0.6]})  # the second over-fitted below the prior: reported
    mlp = pd.DataFrame({"heldout_accuracy": [0.98]})
    images = pd.DataFrame({"dataset": ["lfw"], "trained": ["MLP"], "images": [7000], "sweep images seen": [0],
                           "sweep subset": [400], "labelled": [7698]}).set_index(["dataset", "trained"])
    assert not failed(checks.estimator_training(summary, 0.0, images, mlp))
    seen = images.assign(**{"sweep images seen": [12]})
    assert len(failed(checks.estimator_training(summary.assign(peak_heldout_loglik=[-0.7, -0.1]), 1e-3, seen,
                                                mlp.assign(heldout_accuracy=[0.5])))) == 4
    every = seen.assign(images=[7698])  # a small dataset: the MLP had to see every image; setting A is cross-fitted
    assert len(checks.estimator_training(summary, 0.0, every, mlp)) == 3


def test_attacks_checks() -> None:
    quality = pd.DataFrame({"linf_grey": [1.0, 2.0], "grey_levels": [1.0, 2.0]})
    storage = pd.DataFrame({"mode": ["uint8"] * 3, "grey_levels": [0.125, 0.375, 0.625], "changed": [0.0, 0.0, 0.9],
                            "template_shift": [0.0, 0.0, 0.1]})
    invariance = pd.DataFrame({"equal_to_first": [1.0, 0.999999]})
    assert not failed(checks.attacks(quality, storage, invariance, 12, 12))
    leaky = storage.assign(changed=[0.0, 0.1, 0.9])
    assert len(failed(checks.attacks(quality.assign(linf_grey=[1.0, 2.5]), leaky, invariance.assign(
        equal_to_first=[1.0, 0.99]), 11, 12))) == 4


def _findings(verdict: str, low: float, high: float) -> pd.DataFrame:
    return pd.DataFrame({"finding": ["1. x", "2. y", "3. z", "4. w"], "slack": [0.01] * 4, "low": [low] * 4,
                         "high": [high] * 4, "verdict": [verdict] * 4})


def test_evaluation_settings_checks() -> None:
    sweep = pd.DataFrame({"method": ["reference", "random", "random"], "eps": [0.0, 0.01, 0.3],
                          "setting_b": [0.95, 0.94, 0.80], "setting_b_low": [0.93] * 3, "setting_b_high": [0.97] * 3})
    modes = pd.DataFrame({"mode": ["uint8", "uint8"], "eps": [0.001, 0.01], "setting_b": [0.95, 0.9]})
    identity = np.repeat(np.arange(40), 3)
    target = EvaluationSet("toy", np.arange(120), np.repeat(np.arange(40) % 2, 3), identity)
    reporting = int((target.halves() == 1).sum())
    stronger = pd.DataFrame({"method": ["reference", "mi-fgsm"], "images": [reporting] * 2})
    observations = pd.DataFrame({"finding": ["Fig. 5, AgeDB: a", "Fig. 5, LFW: b"], "slack": [0.02, np.nan],
                                 "low": [0.01, np.nan], "high": [0.03, np.nan], "verdict": ["holds", "not measured"]})
    args = (0.03, target, stronger, observations)
    assert not failed(checks.evaluation_settings(sweep, modes, _findings("holds", 0.01, 0.02), *args))
    moved = sweep.assign(setting_b=[0.95, 0.90, 0.80])
    wrong = (0.03, target, stronger.assign(images=len(target)), observations.assign(verdict=["holds", "holds"]))
    assert len(failed(checks.evaluation_settings(moved, modes.assign(setting_b=[0.94, 0.9]),
                                                 _findings("holds", -0.01, 0.02), *wrong))) == 2 + 4 + 2


def test_closed_form_checks() -> None:
    check = pd.DataFrame({"relative error": [1e-16, 1e-15]})
    signs = pd.DataFrame({"classes": [2, 3], "sign change": [0.0, 0.1]})
    assert not failed(checks.closed_form(check, signs, {"changed": 1e-7}))
    assert len(failed(checks.closed_form(check * 1e8, signs.assign(**{"sign change": [0.01, 0.1]}),
                                         {"changed": 0.01}))) == 3


def test_beyond_checks() -> None:
    frontier = pd.DataFrame({"method": ["mi-fgsm"] * 2, "grey_levels": [1.0, 1.0], "mode": ["float", "uint8"],
                             "setting_b": [0.9, 0.9], "eer": [0.02, 0.02]})
    pick = pd.Series({"robust": 1.0, "transfers": np.nan})
    assert not failed(checks.beyond(frontier, pd.DataFrame(), pick))
    assert len(failed(checks.beyond(frontier.assign(setting_b=[0.9, 0.8]), pd.DataFrame(),
                                    pick.replace(1.0, 0.0)))) == 2
    rounding = frontier.assign(setting_b=[0.9, 0.9 + checks.STORAGE_ROUNDING_GAP / 2])  # a prediction or two flipped
    assert not failed(checks.beyond(rounding, pd.DataFrame(), pick))
    apart = frontier.assign(eer=[0.02, 0.02 + 2 * checks.STORAGE_ROUNDING_GAP])
    assert len(failed(checks.beyond(apart, pd.DataFrame(), pick))) == 1


def test_dominance_checks() -> None:
    frontier = pd.DataFrame({"method": ["reference", "erasure-pgd", "erasure-pgd"], "grey_levels": [0.0, 1.0, 1.0],
                             "mode": ["uint8", "uint8", "float"], "setting_b": [0.93, 0.82, 0.81]})
    points = pd.DataFrame({"method": ["reference", "ive", "ive", "erasure-pgd"], "value": [0.0, 1.0, 2.0, 1 / 255],
                           "grey_levels": [np.nan, np.nan, np.nan, 1.0], "setting_b": [0.93, 0.90, 0.80, 0.82],
                           "setting_b_plus": [0.95, 0.93, 0.85, 0.86], "eer": [0.01, 0.02, 0.03, 0.02]})
    pairs = pd.DataFrame({"method": "erasure-pgd",
                          "metric": ["setting_b", "setting_b", "setting_b_plus", "setting_b_plus"],
                          "step": [1, 2, 1, 2], "grey_levels": [1.0] * 4, "baseline_b": [0.90, 0.80, 0.93, 0.85],
                          "baseline_eer": [0.02, 0.03, 0.02, 0.03], "d_b": [-0.08, 0.02, -0.07, 0.01],
                          "d_eer": [0.0, -0.01, 0.0, -0.01]})
    assert not failed(checks.dominance(frontier, points, pairs, ["erasure-pgd"], "ive"))
    moved = points.assign(setting_b=[0.93, 0.90, 0.80, 0.83])  # not the frontier's photos, nor the pairs' numbers
    assert len(failed(checks.dominance(frontier, moved, pairs, ["erasure-pgd"], "ive"))) == 2
    swapped = pairs.assign(step=[2, 1, 1, 2])  # the steps' rows mixed up
    assert len(failed(checks.dominance(frontier, points, swapped, ["erasure-pgd"], "ive"))) == 1
    flipped = pairs.assign(d_eer=-pairs["d_eer"])  # the wrong sign: baseline minus protection
    assert len(failed(checks.dominance(frontier, points, flipped, ["erasure-pgd"], "ive"))) == 1
    missing = pairs.assign(grey_levels=2.0)  # a budget the table does not show
    assert len(failed(checks.dominance(frontier, points, missing, ["erasure-pgd"], "ive"))) == 1
    other = pairs.assign(method="erasure-pgd-eot")  # a protection the comparison does not hold
    assert len(failed(checks.dominance(frontier, points, other, ["erasure-pgd"], "ive"))) == 1
