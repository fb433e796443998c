"""Figures of the chapter "Evaluation settings" (paper Secs. 5 and 6.1-6.2, Figs. 2-6, and the ε-EER curve).

Each function takes a DataFrame of :mod:`mifgsm_lib.studies.evaluation_settings` and returns a matplotlib Figure.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from mifgsm_lib.figures.attacks import eps_log_axis
from mifgsm_lib.methods import label, style_of

#: Setting A and setting B as the paper names them (Table 1).
SETTINGS = {"setting_a": 'setting "A" (attack): MLP trained on clean', "setting_b": 'setting "B" (privacy): retrained'}
GENDER_NAMES = {0: "male", 1: "female"}


def _hue_label(hue: str, value: object) -> str:
    if hue == "method":
        return label(str(value))
    if hue == "iteration":
        return f"{int(value):,} iterations"
    return f"{hue} = {value}"


def band(ax: plt.Axes, part: pd.DataFrame, metric: str, colour: str, scale: float = 1.0) -> None:
    """The 95 % interval of ``metric`` (columns ``<metric>_low``, ``<metric>_high``) as a shaded band, where the
    table has it."""
    if f"{metric}_low" in part:
        ax.fill_between(part["eps"], scale * part[f"{metric}_low"], scale * part[f"{metric}_high"], color=colour,
                        alpha=0.18, lw=0)


def error_bars(ax: plt.Axes, rows: pd.DataFrame, x: str | np.ndarray, y: str, colour: str,
               scale: float = 100.0) -> None:
    """The 95 % intervals of the points (``x``, ``y``) of ``rows`` as faint error bars, in each direction whose
    interval the table has (columns ``<metric>_low``, ``<metric>_high``); ``x`` is a metric or the points'
    positions (bars)."""

    def spread(metric: str) -> np.ndarray | None:
        if f"{metric}_low" not in rows:
            return None
        low, high = rows[f"{metric}_low"].to_numpy(float), rows[f"{metric}_high"].to_numpy(float)
        value = rows[metric].to_numpy(float)
        return scale * np.nan_to_num(np.vstack([value - low, high - value]), nan=0.0).clip(min=0.0)

    positions, xerr = (scale * rows[x], spread(x)) if isinstance(x, str) else (x, None)
    yerr = spread(y)
    if xerr is not None or yerr is not None:
        ax.errorbar(positions, scale * rows[y], xerr=xerr, yerr=yerr, fmt="none", ecolor=colour, alpha=0.35,
                    elinewidth=0.8, capsize=0, zorder=1)


def plot_settings(sweep: pd.DataFrame, hue: str = "method", title: str = "", log_eps: bool = False) -> Figure:
    """Settings A (left) and B (right) against ε, one line per value of ``hue`` (Figs. 2-4).

    The clean accuracy of each setting (the ε = 0 rows) is the dotted line, chance the thin grey one; where the
    sweep has intervals (``<setting>_low``, ``<setting>_high``), each line carries its 95 % band; where it has
    setting B's plain accuracy (``setting_b_plain``, the paper's kind in Figs. 2-4), it is the dashed line of the
    same colour.
    """
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    clean = sweep[sweep["eps"] == 0]
    attacked = sweep[sweep["eps"] > 0]
    for ax, setting in zip(axes, SETTINGS):
        for value, part in attacked.groupby(hue, sort=False):
            part = part.sort_values("eps")
            colour = style_of(str(value))[0] if hue == "method" else None
            line, = ax.plot(part["eps"], part[setting], "o-", ms=3.5, color=colour, label=_hue_label(hue, value))
            band(ax, part, setting, line.get_color())
            if setting == "setting_b" and "setting_b_plain" in part:
                ax.plot(part["eps"], part["setting_b_plain"], "--", lw=0.9, color=line.get_color(), alpha=0.7)
        ax.axhline(float(clean[setting].iloc[0]), color="k", ls=":", lw=1, label="clean")
        ax.axhline(0.5, color="grey", lw=0.6)
        ax.set(xlabel="ε ([0, 1] pixel scale" + (", log)" if log_eps else ")"), title=SETTINGS[setting])
        if log_eps:
            eps_log_axis(ax)
    axes[0].set_ylabel("accuracy (B: mean balanced accuracy)")
    axes[0].set_ylim(0, 1.02)
    if "setting_b_plain" in attacked:
        axes[1].plot([], [], "--", lw=0.9, color="grey", label="plain accuracy (the paper's kind)")
    axes[1].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_folds(grouped: pd.DataFrame, stratified: pd.DataFrame, title: str = "") -> Figure:
    """Setting B against ε with folds grouped by identity (solid) and the paper's stratified folds (dashed)."""
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for k, (method, part) in enumerate(grouped.groupby("method", sort=False)):
        other = stratified[stratified["method"] == method]
        for data, style, name in ((part, "o-", "grouped"), (other, "s--", "stratified")):
            data = data.sort_values("eps")
            ax.plot(data["eps"], data["setting_b"], style, ms=3, color=f"C{k}", label=f"{label(method)}, {name}")
    ax.axhline(0.5, color="grey", lw=0.6)
    ax.set(xlabel="ε (0 = clean)", ylabel="setting B (mean balanced accuracy)", title=title)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def plot_mixing(curves: pd.DataFrame, title: str = "") -> Figure:
    """Fig. 5: setting B against the fraction of clean templates, one line per (attack, ε), shaded: its 95 %
    interval where the curves carry one."""
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for (method, eps), part in curves.groupby(["method", "eps"], sort=False):
        part = part.sort_values("clean_fraction")
        line, = ax.plot(100 * part["clean_fraction"], part["setting_b"], "o-", ms=3.5,
                        label=f"{label(method)}, ε = {eps:.4g}")
        if "setting_b_low" in part:
            ax.fill_between(100 * part["clean_fraction"], part["setting_b_low"], part["setting_b_high"],
                            color=line.get_color(), alpha=0.12, lw=0)
    ax.axhline(0.5, color="grey", lw=0.6)
    ax.set(xlabel="clean templates in the set (%)", ylabel="setting B (mean balanced accuracy)", title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_strip(images: np.ndarray, titles: Sequence[str]) -> Figure:
    """Fig. 6 (top): one face at several ε, images (k, H, W, 3) in [0, 1]."""
    fig, axes = plt.subplots(1, len(images), figsize=(1.9 * len(images), 2.3), squeeze=False)
    for ax, image, title in zip(axes[0], images, titles):
        ax.imshow(image)
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    return fig


def plot_tsne(points: pd.DataFrame, titles: dict[float, str] | None = None) -> Figure:
    """Fig. 6 (bottom): one t-SNE panel per ε (0 = clean), points coloured by gender."""
    panels = list(dict.fromkeys(points["eps"]))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.4 * len(panels), 3.4), squeeze=False)
    for ax, eps in zip(axes[0], panels):
        part = points[points["eps"] == eps]
        for g, colour in ((0, "C0"), (1, "C3")):
            sel = part[part["gender"] == g]
            ax.scatter(sel["x"], sel["y"], s=5, c=colour, alpha=0.7, label=GENDER_NAMES[g])
        ax.set_title((titles or {}).get(eps, "clean" if eps == 0 else f"ε = {eps:.4g}"), fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0][0].legend(fontsize=8, markerscale=2)
    fig.tight_layout()
    return fig


def plot_privacy_cost(sweep: pd.DataFrame) -> Figure:
    """Beyond the paper: setting B and the EER against ε (left, middle, with 95 % bands where measured) and
    setting B against EER (right)."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    clean = sweep[sweep["eps"] == 0].iloc[0]
    for method, part in sweep.groupby("method", sort=False):
        attacked = part[part["eps"] > 0].sort_values("eps")
        colour = style_of(method)[0]
        axes[0].plot(attacked["eps"], attacked["setting_b"], "o-", ms=3.5, color=colour, label=label(method))
        axes[1].plot(attacked["eps"], 100 * attacked["eer"], "o-", ms=3.5, color=colour, label=label(method))
        band(axes[0], attacked, "setting_b", colour)
        band(axes[1], attacked, "eer", colour, scale=100.0)
        line = pd.concat([part[part["eps"] == 0].iloc[:1], attacked])
        axes[2].plot(100 * line["eer"], line["setting_b"], "o-", ms=3.5, color=colour, label=label(method))
        for _, row in attacked.iterrows():
            axes[2].annotate(f"{row['eps']:.3g}", (100 * row["eer"], row["setting_b"]), fontsize=6,
                             xytext=(2, 2), textcoords="offset points")
    axes[0].axhline(clean["setting_b"], color="k", ls=":", lw=1, label="clean")
    axes[1].axhline(100 * clean["eer"], color="k", ls=":", lw=1, label="clean")
    axes[2].plot(100 * clean["eer"], clean["setting_b"], "k*", ms=10, label="clean")
    axes[0].set(xlabel="ε (log)", ylabel="setting B", title="privacy: setting B (lower is better)")
    axes[1].set(xlabel="ε (log)", ylabel="EER (%)", title="cost: verification EER")
    axes[2].set(xlabel="EER (%)", ylabel="setting B", title="setting B against EER (ε marked)")
    for ax in axes:
        ax.legend(fontsize=7)
    for ax in axes[:2]:
        eps_log_axis(ax)
    fig.tight_layout()
    return fig
