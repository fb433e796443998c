"""Figures of the chapter "Trade-off table" (paper Sec. 6.3, Table 2): the privacy-verification frontier.

Both take the frontier of :func:`mifgsm_lib.studies.tradeoff.run` (one row per protected template set); every
method's name, colour and marker comes from :mod:`mifgsm_lib.methods`.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

from mifgsm_lib import methods
from mifgsm_lib.figures.evaluation import error_bars

#: What the frontier's metrics are called on the axes.
LABELS = {
    "setting_b": "gender, setting B balanced accuracy (%)",
    "eer": "EER (%)",
    "tar_at_far": "TAR at FAR = 0.1% (%)",
}


def _methods(frontier: pd.DataFrame) -> list[str]:
    """The frontier's methods other than the reference, in the registry's order (a clear error for a method that
    is not registered: it would have no name or style)."""
    present = set(frontier["method"]) - {"reference"}
    unknown = present - set(methods.METHODS)
    if unknown:
        raise ValueError(f"frontier: methods {sorted(unknown)} are not registered in mifgsm_lib.methods")
    return [m for m in methods.METHODS if m in present]


def _log_percent(ax: plt.Axes) -> None:
    """A log y axis labelled at 1, 2, 5 x 10^k in plain numbers (EER in %)."""
    ax.set_yscale("log", nonpositive="clip")
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def plot_frontier(frontier: pd.DataFrame, table: pd.DataFrame | None = None) -> Figure:
    """Setting-B accuracy against EER (left, log scale) and TAR@FAR = 0.1% (right), every method over its range.

    Each curve starts at the clean templates (black star) and follows ε (attacks) or the elimination steps
    (IVE, Multi-IVE); the end points are labelled. Left of the plot is more private, down (left panel) or up
    (right panel) is better verification. The points of Table 2 (``table``, from
    :func:`mifgsm_lib.tradeoff.table2`) are ringed. Faint bars: each point's 95 % intervals, where the frontier
    has them.
    """
    reference = frontier[frontier["method"] == "reference"].iloc[0]
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.4), layout="constrained")
    for ax, metric in zip(axes, ("eer", "tar_at_far")):
        for method in _methods(frontier):
            rows = frontier[frontier["method"] == method].sort_values("value")
            colour, marker = methods.get(method).style
            x = [100 * reference["setting_b"], *(100 * rows["setting_b"])]
            y = [100 * reference[metric], *(100 * rows[metric])]
            ax.plot(x, y, color=colour, marker=marker, markersize=4, linewidth=1.2, label=methods.label(method))
            error_bars(ax, rows, "setting_b", metric, colour)
            last = rows.iloc[-1]
            end = f"ε={last['value']:g}" if last["parameter"] == "eps" else f"{int(last['kept'])} kept"
            ax.annotate(end, (x[-1], y[-1]), fontsize=7, color=colour, xytext=(3, 3), textcoords="offset points")
        ax.plot(100 * reference["setting_b"], 100 * reference[metric], "k*", markersize=12,
                label=methods.label("reference"))
        error_bars(ax, frontier[frontier["method"] == "reference"], "setting_b", metric, "black")
        if table is not None:
            ax.scatter(100 * table["setting_b"], 100 * table[metric], s=160, facecolors="none", edgecolors="black",
                       linewidths=1.2, label="Table 2 points", zorder=5)
        ax.axvline(50, color="grey", linestyle=":", linewidth=1)
        ax.set_xlabel(LABELS["setting_b"] + "  (← more private)")
        ax.set_ylabel(LABELS[metric])
        ax.grid(True, which="both", alpha=0.3)
    _log_percent(axes[0])
    axes[0].set_title("verification cost: EER (lower is better)")
    axes[1].set_title("verification at a strict threshold: TAR@FAR=0.1% (higher is better)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=len(labels), fontsize=9)
    return fig


def plot_parameter_curves(frontier: pd.DataFrame) -> Figure:
    """Setting B (top) and EER (bottom) against each method's parameter: ε for the attacks (left, log
    scale), dimensions or PCA components kept for the baselines (right, from all of them down).

    The clean templates' values are the dashed lines; 50% (chance) is dotted.
    """
    reference = frontier[frontier["method"] == "reference"].iloc[0]
    fig, axes = plt.subplots(2, 2, figsize=(13, 7), sharex="col", sharey="row", constrained_layout=True)
    for col, baselines in enumerate((False, True)):
        for method in (m for m in _methods(frontier) if (methods.get(m).kind == "template") == baselines):
            rows = frontier[frontier["method"] == method].sort_values("value")
            colour, marker = methods.get(method).style
            x = rows["kept"] if baselines else rows["value"]
            for row, metric in enumerate(("setting_b", "eer")):
                axes[row, col].plot(x, 100 * rows[metric], color=colour, marker=marker, markersize=4,
                                    label=methods.label(method))
        for row, metric in enumerate(("setting_b", "eer")):
            ax = axes[row, col]
            ax.axhline(100 * reference[metric], color="black", linestyle="--", linewidth=1, label="clean templates")
            if metric == "setting_b":
                ax.axhline(50, color="grey", linestyle=":", linewidth=1)
            ax.set_ylabel(LABELS[metric])
            ax.grid(True, which="both", alpha=0.3)
        axes[0, col].legend(fontsize=8)
    axes[1, 0].set_xscale("log")
    axes[1, 0].set_xlabel("ε (pixel scale [0, 1])")
    axes[1, 1].set_xlabel("template dimensions (IVE) / PCA components (Multi-IVE) kept")
    axes[1, 1].invert_xaxis()
    _log_percent(axes[1, 0])
    axes[0, 0].set_title("image attacks over ε")
    axes[0, 1].set_title("template baselines over elimination steps")
    return fig
