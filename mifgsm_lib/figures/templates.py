"""Figures of the chapter "Face templates and what they leak": alignment examples and verification curves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from mifgsm_lib.figures.verification import Curves, plot_det, plot_roc
from mifgsm_lib.studies.templates import AlignmentExample


def plot_alignment(rows: Mapping[str, Sequence[AlignmentExample]], per_row: int) -> Figure:
    """One block per title of ``rows``: originals with their face box (green: detected, red dashed: fallback) above
    their chips; a title without examples says so."""
    if not rows:
        raise ValueError("rows: expected at least one dataset of alignment examples")
    fig = plt.figure(figsize=(1.9 * per_row, 4.3 * len(rows)))
    blocks = np.atleast_1d(fig.subfigures(len(rows), 1))
    for block, (title, examples) in zip(blocks, rows.items()):
        block.suptitle(title, fontsize=10)
        if not examples:
            block.text(0.5, 0.5, "none", ha="center", va="center", fontsize=10)
            continue
        axes = block.subplots(2, per_row, squeeze=False)
        for (top, bottom), ex in zip(axes.T, examples):
            top.imshow(ex.image)
            left, upper, right, lower = ex.box
            top.add_patch(Rectangle((left, upper), right - left + 1, lower - upper + 1, fill=False, linewidth=1.5,
                                    edgecolor="red" if ex.fallback else "lime", linestyle="--" if ex.fallback else "-"))
            name = ex.title.removesuffix(".chip.jpg").removesuffix(".jpg").replace("_", " ")
            top.set_title(name if len(name) <= 22 else name[:21] + "…", fontsize=7)
            bottom.imshow(ex.chip)
        for ax in axes.ravel():
            ax.set_xticks([])
            ax.set_yticks([])
            if not ax.images:
                ax.set_axis_off()
        axes[0, 0].set_ylabel("original + box", fontsize=8)
        axes[1, 0].set_ylabel(f"chip {examples[0].chip.shape[0]}x{examples[0].chip.shape[1]}", fontsize=8)
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
