"""Figures of the chapter "Face templates and what they leak": alignment examples and verification curves."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from mifgsm_lib.figures.verification import Curves, plot_det, plot_roc
from mifgsm_lib.studies.templates import AlignmentExample


def plot_alignment(examples: Sequence[AlignmentExample], title: str = "") -> Figure:
    """Originals with their face box (green: detected, red dashed: fallback) above their chips."""
    if not examples:
        raise ValueError("examples: expected at least one alignment example")
    fig, axes = plt.subplots(2, len(examples), figsize=(1.9 * len(examples), 4.3), squeeze=False)
    for (top, bottom), ex in zip(axes.T, examples):
        top.imshow(ex.image)
        left, upper, right, lower = ex.box
        top.add_patch(Rectangle((left, upper), right - left + 1, lower - upper + 1, fill=False, linewidth=1.5,
                                edgecolor="red" if ex.fallback else "lime", linestyle="--" if ex.fallback else "-"))
        name = ex.title.removesuffix(".chip.jpg").removesuffix(".jpg").replace("_", " ")
        top.set_title(name if len(name) <= 22 else name[:21] + "…", fontsize=7)
        bottom.imshow(ex.chip)
        for ax in (top, bottom):
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_ylabel("original + box", fontsize=8)
    axes[1, 0].set_ylabel(f"chip {examples[0].chip.shape[0]}x{examples[0].chip.shape[1]}", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_verification(curves: Curves) -> Figure:
    """ROC and DET curves side by side (:func:`mifgsm_lib.figures.verification.plot_roc`, :func:`~mifgsm_lib.figures.verification.plot_det`)."""
    fig, (ax_roc, ax_det) = plt.subplots(1, 2, figsize=(10, 4))
    plot_roc(ax_roc, curves)
    plot_det(ax_det, curves)
    ax_roc.set_title("ROC")
    ax_det.set_title("DET")
    fig.tight_layout()
    return fig
