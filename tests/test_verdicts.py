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
