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
