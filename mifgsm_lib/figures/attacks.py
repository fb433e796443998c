"""Figures of the chapter "Attacks" (paper Sec. 3): attacked faces, the perturbation's size and quality, storage.

Each function takes data computed by :mod:`mifgsm_lib.studies.attacks` and returns a matplotlib Figure; the
attacks' names and colours come from :mod:`mifgsm_lib.methods`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from mifgsm_lib.methods import label, style_of

def eps_log_axis(ax: plt.Axes) -> None:
    """A log ε axis labelled in plain decimals at 1, 2 and 5 times each power of ten."""
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def amplified(clean: np.ndarray, attacked: np.ndarray, eps: float) -> np.ndarray:
    """The perturbation x* − x mapped to [0, 1] for display: −ε is black, 0 is mid-grey, +ε is white."""
    if eps <= 0:
        raise ValueError(f"eps={eps!r}: expected a positive level to scale the perturbation by")
    return np.clip((attacked - clean) / (2.0 * eps) + 0.5, 0.0, 1.0)


def plot_attacked_faces(
    clean: np.ndarray, attacked: Mapping[str, np.ndarray], eps_list: Sequence[float], batch_size: int
) -> Figure:
    """One face (H, W, 3) in [0, 1], attacked by each method (rows) at each ε (columns), and the amplified
    perturbation of the smallest ε (last column; little is clipped there). ``attacked[method]`` has shape
    (len(eps_list), H, W, 3)."""
    n_cols = len(eps_list) + 2
    fig, axes = plt.subplots(len(attacked), n_cols, figsize=(1.7 * n_cols, 1.95 * len(attacked)), squeeze=False)
    titles = ["clean", *(f"ε = {e:g}" for e in eps_list), f"x* − x at ε = {eps_list[0]:g}\n(−ε black, +ε white)"]
    for r, (method, images) in enumerate(attacked.items()):
        panels = [clean, *images, amplified(clean, images[0], eps_list[0])]
        for c, (ax, image) in enumerate(zip(axes[r], panels)):
            ax.imshow(image)
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(label(method))
            if r == 0:
                ax.set_title(titles[c], fontsize=8)
    fig.suptitle(f"One face, attacked (float storage; MI gradient batch size {batch_size})", fontsize=10)
    fig.tight_layout()
    return fig


def plot_quality(table: pd.DataFrame) -> Figure:
    """PSNR and SSIM against ε for each attack (``method`` column) of :func:`mifgsm_lib.studies.attacks.perturbation_table`."""
    fig, (ax_psnr, ax_ssim) = plt.subplots(1, 2, figsize=(10, 3.6))
    for method, part in table.groupby("method", sort=False):
        part = part.sort_values("eps")
        ax_psnr.plot(part["eps"], part["psnr"], "o-", ms=3, color=style_of(method)[0], label=label(method))
        ax_ssim.plot(part["eps"], part["ssim"], "o-", ms=3, color=style_of(method)[0], label=label(method))
    ax_psnr.set(xlabel="ε ([0, 1] pixel scale, log)", ylabel="PSNR (dB)", title="PSNR against clean")
    ax_ssim.set(xlabel="ε ([0, 1] pixel scale, log)", ylabel="SSIM", title="SSIM against clean")
    eps_log_axis(ax_psnr)
    eps_log_axis(ax_ssim)
    ax_psnr.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_storage(table: pd.DataFrame) -> Figure:
    """``float`` against ``uint8`` storage on a grid of ε in grey levels (:func:`mifgsm_lib.studies.attacks.perturbation_table`
    with a face model): the fraction of pixel values changed, the L∞ size actually stored and the template shift."""
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.5))
    for (mode, part), style in zip(table.groupby("mode", sort=False), ("o-", "s--")):
        part = part.sort_values("grey_levels")
        axes[0].plot(part["grey_levels"], part["changed"], style, label=mode)
        axes[1].plot(part["grey_levels"], part["linf_grey"], style, label=mode)
        axes[2].plot(part["grey_levels"], part["template_shift"], style, label=mode)
    titles = ("pixel values changed", "stored L∞ of x* − x", "largest template shift ‖f(x*) − f(x)‖")
    ylabels = ("fraction", "grey levels", "distance")
    for ax, title, ylabel in zip(axes, titles, ylabels):
        ax.axvline(0.5, color="grey", ls=":", lw=1)
        ax.set(xlabel="ε in grey levels (255·ε)", ylabel=ylabel, title=title)
    axes[0].legend(title="storage")
    fig.tight_layout()
    return fig


def plot_template_shift(shift: pd.DataFrame, distances: Mapping[str, float]) -> Figure:
    """Mean ‖f(x*) − f(x)‖ against ε per attack, beside the clean mated and non-mated pair distances."""
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for method, part in shift.groupby("method", sort=False):
        part = part.sort_values("eps")
        ax.plot(part["eps"], part["shift_mean"], "o-", ms=3, color=style_of(method)[0], label=label(method))
    styles = {"mated": ":", "non_mated": "--"}
    for name, value in distances.items():
        ax.axhline(value, color="grey", ls=styles.get(name, "-."),
                   label=f"median clean {name.replace('_', '-')} pair distance")
    ax.set(xlabel="ε (log)", ylabel="mean ‖f(x*) − f(x)‖", title="How far the attack moves a template")
    eps_log_axis(ax)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
