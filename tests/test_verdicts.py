"""Decisions about the paper's claims from constructed tables with bootstrap replicates: each claim holds, does not
hold, or is undecided at this size, as its interval says (:mod:`mifgsm_lib.verdicts`)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mifgsm_lib import paper, verdicts
from mifgsm_lib.evaluation import REFERENCE, SetKey
from mifgsm_lib.intervals import Interval

from test_evaluation_settings import _findings_sweep


def replicates_of(sweep: pd.DataFrame, spread: float, seed: int = 0) -> dict:
    """Replicates centred on each set's values, spread ``spread`` (independent between sets)."""
    rng = np.random.default_rng(seed)
    reps = {}
    for r in sweep.itertuples():
        key = REFERENCE if r.eps == 0 else SetKey(r.method, "eps", float(r.eps))
        reps[key] = {m: getattr(r, m) + spread * rng.standard_normal(1000) for m in ("setting_a", "setting_b")}
    return reps


@pytest.mark.parametrize(("spread", "verdict"), [(0.001, "holds"), (0.2, "undecided at this size")])
def test_findings_are_decided_from_their_intervals(spread: float, verdict: str) -> None:
    sweep = _findings_sweep(0.7, 0.8, 0.99, 0.22)
    table = verdicts.paper_findings(sweep, default_range=[0.05, 0.3], replicates=replicates_of(sweep, spread))
    assert table.loc[0, "verdict"] == verdict  # MI attacks beat FGSM by 10 points: clear at 0.1 points of noise
    assert (table["low"] <= table["slack"]).all() and (table["slack"] <= table["high"]).all()


def test_findings_that_fail_clearly_do_not_hold() -> None:
    sweep = _findings_sweep(0.85, 0.8, 0.88, 0.5)
    table = verdicts.paper_findings(sweep, default_range=[0.05, 0.3], replicates=replicates_of(sweep, 0.001))
    assert table["verdict"].tolist()[:3] == ["does not hold"] * 3


def table2(mi_eer: float, ive_eer: float, multi_eer: float) -> pd.DataFrame:
    rows = {"Reference (no privacy)": (0.9, 0.01), "MI-FGSM": (0.7, mi_eer), "IVE": (0.72, ive_eer),
            "Multi-IVE": (0.71, multi_eer)}
    frame = pd.DataFrame({"setting": ["x"] * 4, "setting_b": [b for b, _ in rows.values()],
                          "eer": [e for _, e in rows.values()]}, index=list(paper.TABLE2_ROWS))
    return frame


def gaps(ive: tuple[float, float, float], multi: tuple[float, float, float]) -> dict[str, Interval]:
    return {"EER IVE - MI-FGSM": Interval(*ive), "EER Multi-IVE - MI-FGSM": Interval(*multi)}


@pytest.mark.parametrize(("ive", "multi", "words"), [
    ((0.02, 0.01, 0.03), (0.03, 0.02, 0.04), "**holds here**"),
    ((-0.02, -0.03, -0.01), (-0.01, -0.02, -0.005), "**does not hold here**"),
    ((0.02, 0.01, 0.03), (-0.01, -0.02, -0.005), "**holds here against IVE only**"),
    ((0.002, -0.001, 0.005), (0.03, 0.02, 0.04), "**undecided at this size**: against IVE the interval"),
])
def test_the_trade_off_claim_follows_the_paired_intervals(ive: tuple, multi: tuple, words: str) -> None:
    table = table2(0.02, 0.02 + ive[0], 0.02 + multi[0])
    text = verdicts.claim(table, n_pairs=600, differences=gaps(ive, multi))
    assert words in text and "Paired 95 % intervals of the EER differences" in text


def test_without_intervals_the_claim_is_decided_on_the_point_values() -> None:
    assert verdicts.claim_verdicts(table2(0.02, 0.03, 0.01)) == {"IVE": "holds", "Multi-IVE": "does not hold"}


# --- Fig. 5: the two observations on mixing clean and attacked templates ---------------------------------------

def _mixing(curves: dict[tuple[str, float], list[float]]) -> pd.DataFrame:
    return pd.DataFrame([{"method": m, "eps": e, "clean_fraction": f, "setting_b": b}
                         for (m, e), values in curves.items() for f, b in zip([0.0, 0.25, 0.5], values)])


AT_STAR = {("mi-fgsm", 0.004): [0.80, 0.85, 0.88], ("mi-fgsm-mlp", 0.006): [0.82, 0.86, 0.90]}
AT_TOP = {("mi-fgsm", 0.1): [0.95, 0.92, 0.93], ("mi-fgsm-mlp", 0.1): [0.96, 0.94, 0.95]}


def _replicates(curves: dict[tuple[str, float], list[float]], spread: float) -> dict:
    """Paired replicates: every point moves with one shared draw, plus ``spread`` of its own noise."""
    rng = np.random.default_rng(0)
    shared = rng.normal(0, 0.01, 1000)
    return {(m, e, f): b + shared + rng.normal(0, spread, 1000)
            for (m, e), values in curves.items() for f, b in zip([0.0, 0.25, 0.5], values)}


def test_mixing_at_the_largest_eps_helps_every_mi_attack_or_not() -> None:
    found = verdicts.mixing_observations(_mixing({**AT_STAR, **AT_TOP}), 0.1).set_index("verdict", drop=False)
    assert found["verdict"].tolist() == ["holds", "holds"]
    assert found["slack"].iloc[0] == pytest.approx(0.02)  # MI-FGSM-MLP: 0.96 -> 0.94
    assert found["slack"].iloc[1] == pytest.approx(0.05)  # MI-FGSM with 25 % clean, 0.85, is the closest other point
    worse = {**AT_STAR, **AT_TOP, ("mi-fgsm-mlp", 0.1): [0.90, 0.92, 0.95]}
    assert verdicts.mixing_observations(_mixing(worse), 0.1)["verdict"].iloc[0] == "does not hold"


def test_the_attacked_set_at_eps_star_alone_is_the_most_private_or_not() -> None:
    mixed_lower = {**AT_STAR, **AT_TOP, ("mi-fgsm", 0.004): [0.85, 0.79, 0.88]}
    found = verdicts.mixing_observations(_mixing(mixed_lower), 0.1)
    assert found["verdict"].iloc[1] == "does not hold"
    assert found["slack"].iloc[1] == pytest.approx(0.79 - 0.82)
    assert "the lowest other point 79.0% (MI-FGSM, ε = 0.004, 25.0% clean)" in found["measured"].iloc[1]


@pytest.mark.parametrize(("spread", "verdict"), [(0.002, "holds"), (0.05, "undecided at this size")])
def test_mixing_observations_are_decided_from_their_paired_intervals(spread: float, verdict: str) -> None:
    curves = {**AT_STAR, **AT_TOP}
    found = verdicts.mixing_observations(_mixing(curves), 0.1, _replicates(curves, spread))
    assert found["verdict"].tolist() == [verdict, verdict]
    assert (found["low"] < found["slack"]).all() and (found["slack"] < found["high"]).all()


def test_when_eps_star_is_the_largest_eps_the_second_observation_is_not_measured() -> None:
    found = verdicts.mixing_observations(_mixing(AT_TOP), 0.1)
    assert found["verdict"].tolist() == ["holds", "not measured"]
    assert found["measured"].iloc[1] == "not measured: ε* is the largest ε for every MI attack"


def test_processed_dominance_judges_the_attackers_setting_b_against_the_stored_eer() -> None:
    ive = {1: (0.88, 0.02), 2: (0.80, 0.03), 3: (0.70, 0.06)}  # step: (setting B, EER)
    stored = {1.0: 0.015, 2.0: 0.02}  # budget: the EER of the photos as stored
    pairs = pd.DataFrame([{"metric": "setting_b", "step": k, "grey_levels": g, "baseline_b": b, "baseline_eer": e,
                           "d_eer": stored[g] - e, "d_eer_low": stored[g] - e - 0.01,
                           "d_eer_high": stored[g] - e + 0.01} for k, (b, e) in ive.items() for g in stored])
    pairs = pd.concat([pairs, pairs.assign(metric="setting_b_plus", baseline_b=0.99)], ignore_index=True)
    robust = pd.DataFrame({"transform": ["none", "none", "jpeg90", "blur", "jpeg90"],
                           "method": ["erasure-pgd", "erasure-pgd", "erasure-pgd", "erasure-pgd", "mi-fgsm"],
                           "grey_levels": [1.0, 2.0, 2.0, 2.0, 1.0], "setting_b": [0.82, 0.74, 0.84, 0.78, 0.9]})
    table = verdicts.processed_dominance(robust, pairs, "erasure-pgd", 0.75)
    assert table["view"].tolist() == ["none", "jpeg90", "blur"] and (table["grey_levels"] == "2").all(), \
        "the budgets processed only, unprocessed first"
    none, jpeg, blur = (table.iloc[k] for k in range(3))
    assert none["holds"] and not jpeg["holds"] and blur["holds"]
    assert jpeg["reach"] == 0.88 and jpeg["first_miss_step"] == 2, "84 % beats step 1 (88 %), not step 2 (80 %)"
    text = verdicts.describe_processed_dominance(table, "erasure-pgd", "ive", 0.75)
    assert "survives **1 of 2** processings" in text and "alone does not reach" not in text
    assert "jpeg90: setting B 84.0%: dominates IVE only down to 88.0%, the first miss being step 2" in text
    worse = verdicts.processed_dominance(robust.assign(setting_b=[0.82, 0.81, 0.95, 0.78, 0.9]), pairs,
                                         "erasure-pgd", 0.75)
    assert pd.isna(worse["reach"].iloc[1]) and not worse["holds"].iloc[0]
    text = verdicts.describe_processed_dominance(worse, "erasure-pgd", "ive", 0.75)
    assert "dominates IVE at no point" in text and "do not reach the goal alone" in text
    every_robust = pd.concat([robust, robust.iloc[[2]].assign(grey_levels=1.0)]).assign(
        setting_b=[0.82, 0.81, 0.95, 0.78, 0.9, 0.79])
    both = verdicts.processed_dominance(every_robust, pairs, "erasure-pgd", 0.75)
    assert both["every_budget"].all() and both["grey_levels"].tolist() == ["1, 2", "1, 2", "2"]
    assert both.set_index("view").loc["jpeg90", "setting_b"] == 0.79, "the lowest setting B of the budgets"
    text = verdicts.describe_processed_dominance(both, "erasure-pgd", "ive", 0.75)
    assert "budgets processed (1, 2 grey levels)" in text and "the lowest setting B" in text
    assert "do not reach the goal alone" not in text, "no budget is left unprocessed to carry the rest"
    assert not table["every_budget"].any()
    shown_worse = pairs.assign(d_eer_low=0.001)  # the stored photos' EER shown higher than every step's
    assert not verdicts.processed_dominance(robust, shown_worse, "erasure-pgd", 0.75)["holds"].any()
    assert "not judged" in verdicts.describe_processed_dominance(table.iloc[:0], "erasure-pgd", "ive", 0.75)
    with pytest.raises(ValueError, match="no comparison of 'erasure-pgd' at 2 grey levels"):
        verdicts.processed_dominance(robust, pairs[pairs["grey_levels"] == 1.0], "erasure-pgd", 0.75)
    # a comparison of several protections: each is judged on its own rows only, never on another's
    other = pairs.assign(method="erasure-pgd-eot", grey_levels=4.0)  # a budget Erasure-PGD does not have
    mixed = pd.concat([pairs.assign(method="erasure-pgd"), other], ignore_index=True)
    pd.testing.assert_frame_equal(verdicts.processed_dominance(every_robust, mixed, "erasure-pgd", 0.75), both)
    with pytest.raises(ValueError, match=r"pairs: rows of several protections \['erasure-pgd', 'erasure-pgd-eot'\]"):
        verdicts.dominance(mixed[mixed["metric"] == "setting_b"], 0.75)


def test_frontier_goal_needs_every_metric_and_every_processing() -> None:
    held = {"holds": True, "reach": 0.71}
    dominance = {"setting_b": held, "setting_b_plus": held}
    processed = pd.DataFrame({"view": ["none", "jpeg90", "blur"], "holds": [True, True, False],
                              "reach": [0.7, 0.74, 0.855], "every_budget": True})
    goal = verdicts.frontier_goal(dominance, processed)
    assert goal["status"] == "not met" and goal["failed"] == [("setting B after blur", 0.855)]
    text = verdicts.describe_frontier_goal(goal, "erasure-pgd", "ive", 0.75)
    assert "**The goal is not met.**" in text
    assert "down to 75% by setting B, setting B+ and setting B after jpeg90" in text
    assert "It falls short by setting B after blur (only down to 85.5%)." in text
    met = verdicts.frontier_goal(dominance, processed.assign(holds=True))
    assert met["status"] == "met" and not met["failed"]
    assert "**The goal is met**" in verdicts.describe_frontier_goal(met, "erasure-pgd", "ive", 0.75)
    partial = processed.assign(holds=True, every_budget=False)
    assert verdicts.frontier_goal(dominance, partial)["status"] == "not judged", "a budget left unprocessed"
    assert verdicts.frontier_goal(dominance, processed.iloc[:0])["status"] == "not judged", "nothing processed"
    missed = {**dominance, "setting_b_plus": {"holds": False, "reach": None}}
    goal = verdicts.frontier_goal(missed, processed.assign(holds=True, every_budget=False))
    assert goal["status"] == "not met" and goal["failed"] == [("setting B+", None)], "a miss decides, judged or not"
    assert "setting B+ (at no point)" in verdicts.describe_frontier_goal(goal, "erasure-pgd", "ive", 0.75)
    nothing = verdicts.frontier_goal({"setting_b": {"holds": False, "reach": 0.93}}, processed.iloc[:0])
    assert "down to 75% by no part of the goal. It falls short by setting B (only down to 93.0%)." in (
        verdicts.describe_frontier_goal(nothing, "erasure-pgd", "ive", 0.75))
