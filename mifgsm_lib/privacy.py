"""The numbers that summarise a privacy-utility trade-off: ε* (Sec. 6.2.2) and the rows of a sweep at chosen ε,
the privacy gain, the relative EER loss and their PIC coefficient."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd


def closest_to_chance(eps_values: Sequence[float], accuracies: Sequence[float]) -> float:
    """ε*: the ε whose setting-B accuracy is closest to 50% (Sec. 6.2.2).

    Ties (within 1e-12, so 0.45 and 0.55 tie) go to the smallest ε, the least perturbation.
    """
    eps = np.asarray(eps_values, dtype=np.float64)
    acc = np.asarray(accuracies, dtype=np.float64)
    if eps.ndim != 1 or eps.shape != acc.shape or eps.size == 0:
        raise ValueError(
            "eps_values and accuracies: expected two non-empty 1-D lists of one length, "
            f"got {eps.shape} and {acc.shape}"
        )
    if not (np.all(np.isfinite(eps)) and np.all((acc >= 0) & (acc <= 1))):
        raise ValueError("eps_values and accuracies: expected finite ε and accuracies as fractions in [0, 1]")
    distance = np.abs(acc - 0.5)
    candidates = np.flatnonzero(np.isclose(distance, distance.min(), rtol=0.0, atol=1e-12))
    return float(eps[candidates].min())


def privacy_gain(acc_clean: float, acc_protected: float) -> float:
    """PG = (acc_clean - acc_protected) / (acc_clean - 0.5): the share of the gap to chance removed."""
    if not 0.5 < acc_clean <= 1 or not 0 <= acc_protected <= 1:
        raise ValueError(
            f"acc_clean={acc_clean}, acc_protected={acc_protected}: "
            "expected acc_clean in (0.5, 1] and acc_protected in [0, 1]"
        )
    return (acc_clean - acc_protected) / (acc_clean - 0.5)


def relative_eer_loss(eer_clean: float, eer_protected: float) -> float:
    """IL = (EER_protected - EER_clean) / EER_clean: the relative increase of the EER."""
    if not 0 < eer_clean <= 1 or not 0 <= eer_protected <= 1:
        raise ValueError(
            f"eer_clean={eer_clean}, eer_protected={eer_protected}: "
            "expected eer_clean in (0, 1] and eer_protected in [0, 1]"
        )
    return (eer_protected - eer_clean) / eer_clean


def pic(acc_clean: float, acc_protected: float, eer_clean: float, eer_protected: float) -> float:
    """PIC = privacy gain - relative EER loss (higher is a better trade-off).

    The privacy-gain / identity-loss coefficient of Terhörst et al.'s soft-biometric
    privacy work, as used by Rezgui et al.'s later work. Caveat: we define the gain on
    setting-B balanced accuracy normalised by the clean gap to chance
    (:func:`privacy_gain`) and the loss as the relative EER increase
    (:func:`relative_eer_loss`); the original papers define the gain on attribute
    misclassification rates and the loss on a verification error at a fixed operating
    point, so our values are comparable with each other, not with published PICs.
    """
    return privacy_gain(acc_clean, acc_protected) - relative_eer_loss(eer_clean, eer_protected)


def eps_star(rows: pd.DataFrame, parameter: str = "eps") -> pd.Series:
    """ε* per method: :func:`closest_to_chance` over each method's rows with ``parameter`` > 0 (the clean rows
    left out), from a table with columns ``method``, ``parameter`` and ``setting_b``."""
    attacked = rows[rows[parameter] > 0]
    if attacked.empty:
        raise ValueError(f"rows: expected rows with {parameter} > 0 (attacked templates)")
    return pd.Series({method: closest_to_chance(part[parameter].tolist(), part["setting_b"].tolist())
                      for method, part in attacked.groupby("method")}, name="eps_star").rename_axis("method")


def chosen_on(sweep: pd.DataFrame, half: str) -> pd.DataFrame:
    """The sweep with setting B read on one half of the people, ``choose`` or ``report`` (the columns
    ``setting_b_choose`` / ``setting_b_report`` of :func:`mifgsm_lib.evaluation.measure` with ``halves=True``), for
    choosing ε* there (:func:`eps_star` reads ``setting_b``)."""
    if half not in ("choose", "report"):
        raise ValueError(f"half={half!r}: expected 'choose' or 'report'")
    return sweep.assign(setting_b=sweep[f"setting_b_{half}"])


def on_grid(sweep: pd.DataFrame, eps_list: Sequence[float], clean: bool = True) -> pd.DataFrame:
    """The rows of a sweep at the ε of ``eps_list``, with the clean rows (ε = 0) unless ``clean=False``."""
    eps = sweep["eps"].to_numpy(dtype=np.float64)
    wanted = np.asarray(list(eps_list), dtype=np.float64)
    keep = np.isclose(eps[:, None], wanted[None, :], rtol=0.0, atol=1e-12).any(axis=1)
    if clean:
        keep |= eps == 0.0
    return sweep[keep].reset_index(drop=True)


def at_eps(sweep: pd.DataFrame, eps_by_method: Mapping[str, float]) -> pd.DataFrame:
    """The row of each attack at its own ε (e.g. its ε*), indexed by attack."""
    rows = [on_grid(sweep[sweep["method"] == m], [e], clean=False) for m, e in eps_by_method.items()]
    return pd.concat(rows).set_index("method")
