"""Figures of the chapter "Beyond one step": margins, the frontier with every method, robustness and other
attributes. Each takes the measured data of :mod:`mifgsm_lib.studies.beyond` and returns a Figure; every
method's name, colour and marker comes from :mod:`mifgsm_lib.methods`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from mifgsm_lib import methods
from mifgsm_lib.data import ATTRIBUTES
from mifgsm_lib.figures.evaluation import error_bars
from mifgsm_lib.verdicts import TARGET


def plot_margins(margins: Mapping[str, np.ndarray], gender: np.ndarray, bins: int = 40) -> Figure:
    """Histograms of q's logit margin s_1 - s_0 (> 0: q says female) per gender, one panel per template set.

    ``margins`` maps a panel title to the margins of the same images (e.g. clean, then each protection).
    """
    fig, axes = plt.subplots(1, len(margins), figsize=(3.2 * len(margins), 3.0), sharex=True, sharey=True,
                             constrained_layout=True)
    axes = np.atleast_1d(axes)
    everything = np.concatenate([np.asarray(m) for m in margins.values()])
    edges = np.linspace(np.quantile(everything, 0.005), np.quantile(everything, 0.995), bins + 1)
    for ax, (title, m) in zip(axes, margins.items()):
        for label, name, colour in ((0, "male", "tab:blue"), (1, "female", "tab:orange")):
            ax.hist(np.asarray(m)[gender == label], bins=edges, alpha=0.6, color=colour, label=name)
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("q's logit margin $s_1 - s_0$")
    axes[0].set_ylabel("images")
    axes[0].legend(fontsize=8)
    return fig


def plot_frontier(frontier: pd.DataFrame, curve: pd.DataFrame, baselines: pd.DataFrame | None = None) -> Figure:
    """Setting B against EER: one-step MI-FGSM over ε (float, line) and every protection at its budgets (filled:
    8-bit photos, hollow: float images, faint bars: 95 % intervals); the target region of
    :data:`mifgsm_lib.verdicts.TARGET` is shaded.
    ``baselines``: the trade-off chapter's frontier (:func:`mifgsm_lib.studies.tradeoff.run`), whose IVE and
    Multi-IVE curves are drawn over their steps."""
    fig, ax = plt.subplots(figsize=(8, 5.2), constrained_layout=True)
    if baselines is not None:
        for method in ("ive", "multi-ive"):
            rows = baselines[baselines["method"] == method].sort_values("value")
            colour, marker = methods.get(method).style
            ax.plot(100 * rows["setting_b"], 100 * rows["eer"], color=colour, marker=marker, markersize=3,
                    linewidth=1, linestyle="--", alpha=0.8, label=f"{methods.label(method)} over its steps")
    target = f"target: B ≤ {TARGET['setting_b']:.0%}, EER ≤ {TARGET['eer']:.0%}"
    ax.add_patch(plt.Rectangle((0, 0), 100 * TARGET["setting_b"], 100 * TARGET["eer"], color="tab:green",
                               alpha=0.08, label=target))
    steps = curve[curve["method"] == "mi-fgsm"].sort_values("value")
    ref = curve[curve["method"] == "reference"].iloc[0]
    ax.plot(100 * np.r_[ref["setting_b"], steps["setting_b"]], 100 * np.r_[ref["eer"], steps["eer"]],
            color="tab:red", alpha=0.4, linewidth=1, label="MI-FGSM (one step) over ε, float")
    for _, row in steps.iterrows():
        ax.annotate(f"{row['grey_levels']:.2g}", (100 * row["setting_b"], 100 * row["eer"]), fontsize=7,
                    color="tab:red", alpha=0.7, xytext=(3, -8), textcoords="offset points")
    for method, rows in frontier.groupby("method", sort=False):
        colour, marker = methods.get(method).style
        for mode, part in rows.groupby("mode"):
            filled = mode == "uint8"
            error_bars(ax, part, "setting_b", "eer", colour)
            ax.scatter(100 * part["setting_b"], 100 * part["eer"], s=140 if method == "reference" else 60,
                       marker=marker, color=colour if filled else "none", edgecolors=colour, linewidths=1.4,
                       label=(methods.label(method) if method == "reference" else f"{methods.label(method)}, {mode}")
                       if method != "reference" or filled else None,
                       zorder=4)
            if method != "reference":
                for _, row in part.iterrows():
                    ax.annotate(f"{row['grey_levels']:g}", (100 * row["setting_b"], 100 * row["eer"]), fontsize=7,
                                color=colour, xytext=(4, 3), textcoords="offset points")
    ax.set_xlabel("gender, setting B balanced accuracy (%)  (← more private)")
    ax.set_ylabel("EER (%)  (↓ better verification)")
    ax.set_title("privacy-verification frontier; labels: budget in grey levels")
    ax.axvline(50, color="grey", linestyle=":", linewidth=1)
    xs = 100 * pd.concat([frontier["setting_b"], curve["setting_b"]])
    ax.set_xlim(min(xs.min(), 100 * TARGET["setting_b"]) - 2, xs.max() + 2)
    ys = 100 * pd.concat([frontier["eer"], curve["eer"]])
    ax.set_ylim(0, max(ys.max(), 100 * TARGET["eer"]) * 1.1)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return fig


def plot_robustness(robust: pd.DataFrame) -> Figure:
    """Setting B (top) and EER (bottom) of each protection after each processing, beside the clean images; a
    method's smaller budgets are hatched; black bars: 95 % intervals, where the table has them."""
    transforms = list(dict.fromkeys(robust["transform"]))
    protections = list(dict.fromkeys(zip(robust["method"], robust["grey_levels"])))
    fig, axes = plt.subplots(2, 1, figsize=(10, 6), sharex=True, constrained_layout=True)
    width = 0.8 / len(protections)
    top = {m: max(g for mm, g in protections if mm == m) for m, _ in protections}
    for k, (method, grey) in enumerate(protections):
        part = robust[(robust["method"] == method) & (robust["grey_levels"] == grey)].set_index("transform")
        x = np.arange(len(transforms)) + (k - (len(protections) - 1) / 2) * width
        colour, _ = methods.get(method).style
        label = methods.label(method) + ("" if method == "reference" else f", {grey:g} grey")
        hatch = None if grey == top[method] else "//"  # a method's smaller budgets are hatched
        for ax, metric in zip(axes, ("setting_b", "eer")):
            shown = part.reindex(transforms)
            ax.bar(x, 100 * shown[metric], width, color=colour, alpha=0.75, label=label, hatch=hatch,
                   edgecolor="white")
            error_bars(ax, shown, x, metric, "black")
    axes[0].set_ylabel("gender, setting B (%)")
    low = 100 * robust["setting_b"].min()
    axes[0].set_ylim(max(0, low - 5), 100)
    axes[1].set_ylabel("EER (%)")
    axes[1].set_xticks(np.arange(len(transforms)), transforms)
    axes[1].set_xlabel("processing of the 8-bit photos before embedding")
    axes[0].legend(fontsize=8, ncol=3, loc="lower center", bbox_to_anchor=(0.5, 1.0))
    for ax in axes:
        ax.grid(True, axis="y", alpha=0.3)
    return fig


def plot_leakage(leakage: pd.DataFrame) -> Figure:
    """Setting B of each attribute (panels) on clean templates and on templates protected against each attribute
    (colour) by each method and budget (bars, labelled, with their 95 % intervals where the table has them); the
    dotted line is chance (1/K)."""
    measured = list(dict.fromkeys(leakage["measured"]))
    fig, axes = plt.subplots(1, len(measured), figsize=(4.6 * len(measured), 4.0), sharey=True,
                             constrained_layout=True)
    axes = np.atleast_1d(axes)
    palette = {"none": "black", "gender": "tab:red", "age_group": "tab:blue", "race": "tab:green"}
    for ax, attribute in zip(axes, measured):
        part = leakage[leakage["measured"] == attribute]
        for x, row in enumerate(part.itertuples()):
            own = row.protected == attribute
            ax.bar(x, 100 * row.setting_b, color=palette.get(row.protected, "grey"), alpha=0.9 if own else 0.5,
                   hatch="//" if methods.get(row.method).kind == "iterative" else None, edgecolor="white")
        labels = ["clean" if p == "none" else f"{p}\n{methods.label(m)}, {g:g}" for p, m, g in
                  zip(part["protected"], part["method"], part["grey_levels"])]
        error_bars(ax, part, np.arange(len(part)), "setting_b", "black")
        ax.axhline(100 * part["chance"].iloc[0], color="grey", linestyle=":", label="chance (1/K)")
        ax.axhline(100 * part.loc[part["protected"] == "none", "setting_b"].iloc[0], color="black", linewidth=0.8,
                   linestyle="--", label="clean")
        ax.set_xticks(np.arange(len(part)), labels, fontsize=7, rotation=90)
        ax.set_title(f"{attribute} leaked ({len(ATTRIBUTES[attribute])} classes)", fontsize=10)
        ax.grid(True, axis="y", alpha=0.3)
    axes[0].set_ylabel("setting B balanced accuracy (%)")
    axes[0].legend(fontsize=8, loc="lower left")
    fig.suptitle("bars: protected against (colour), method and grey levels (label); hatched: MI-PGD", fontsize=9)
    return fig


def plot_dominance(points: pd.DataFrame, protections: Sequence[str], baseline: str, down_to: float) -> Figure:
    """Protections' budgets against a template baseline's steps on the same images: setting B (left) and setting
    B+ (right) against the EER, 95 % intervals as bars, the clean point as a star and ``down_to`` as a dotted line
    (``points``: :class:`mifgsm_lib.studies.beyond.Comparison`'s)."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6), sharey=True, constrained_layout=True)
    for ax, metric, name in zip(axes, ("setting_b", "setting_b_plus"), ("setting B", "setting B+")):
        for who in ("reference", baseline, *protections):
            rows = points[points["method"] == who].sort_values("value")
            colour, marker = methods.style_of(who)
            error_bars(ax, rows, metric, "eer", colour)
            ax.plot(100 * rows[metric], 100 * rows["eer"], color=colour, marker=marker,
                    linestyle="none" if who == "reference" else "--" if who == baseline else "-",
                    markersize=12 if who == "reference" else 6, linewidth=1,
                    label=methods.label(who) + ("" if who == "reference" else " over its steps" if who == baseline
                                                else ", 8-bit, over its budgets"))
            if who in protections:
                for _, row in rows.iterrows():
                    ax.annotate(f"{row['grey_levels']:g}", (100 * row[metric], 100 * row["eer"]), fontsize=7,
                                color=colour, xytext=(4, 3), textcoords="offset points")
        ax.axvline(100 * down_to, color="black", linestyle=":", linewidth=1)
        ax.set_xlabel(f"gender, {name} balanced accuracy (%)  (← more private)")
        ax.grid(True, alpha=0.3)
        ax.set_title(f"{name}; labels: budget in grey levels", fontsize=10)
    axes[0].set_ylabel("EER (%)  (↓ better verification)")
    axes[1].legend(fontsize=8, loc="upper right")
    return fig
