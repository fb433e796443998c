"""Verification curves: ROC and DET of one or several sets of templates (chapters "Face templates" and
"Trade-off")."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy.stats import norm

from mifgsm_lib.verification import VerificationReport


Curves = Mapping[str, VerificationReport | tuple[np.ndarray, np.ndarray]]


def _curve(value: VerificationReport | tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(value, VerificationReport):
        return value.far, value.tar
    far, tar = value
    return np.asarray(far, dtype=np.float64), np.asarray(tar, dtype=np.float64)


def plot_roc(ax: Any, curves: Curves, far_min: float = 1e-4) -> Any:
    """ROC (TAR against FAR, log FAR axis) of each labelled report or ``(far, tar)`` curve."""
    for label, value in curves.items():
        far, tar = _curve(value)
        ax.step(np.maximum(far, far_min), tar, where="post", label=label)
    ax.set_xscale("log")
    ax.set_xlim(far_min, 1.0)
    ax.set_xlabel("false accept rate (FAR)")
    ax.set_ylabel("true accept rate (TAR)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right")
    return ax


def plot_det(ax: Any, curves: Curves, floor: float = 1e-4) -> Any:
    """DET curve: FRR against FAR on normal-deviate axes (``scipy.stats.norm.ppf``).

    Rates are clipped to ``[floor, 1 - floor]`` so that 0 and 1 stay on the plot; the
    diagonal FAR = FRR is drawn, so each curve crosses it at its EER.
    """
    ticks = np.array([1e-4, 1e-3, 1e-2, 0.05, 0.2, 0.5, 0.8])
    ticks = ticks[ticks >= floor]
    for label, value in curves.items():
        far, tar = _curve(value)
        ax.plot(norm.ppf(np.clip(far, floor, 1 - floor)), norm.ppf(np.clip(1 - tar, floor, 1 - floor)), label=label)
    lim = norm.ppf([floor, 1 - floor])
    ax.plot(lim, lim, color="grey", linestyle=":", linewidth=1, label="FAR = FRR")
    ax.set_xticks(norm.ppf(ticks), [f"{100 * t:g}%" for t in ticks])
    ax.set_yticks(norm.ppf(ticks), [f"{100 * t:g}%" for t in ticks])
    ax.set_xlim(lim[0], norm.ppf(0.8))
    ax.set_ylim(lim[0], norm.ppf(0.8))
    ax.set_xlabel("false accept rate (FAR)")
    ax.set_ylabel("false reject rate (FRR)")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper right")
    return ax
