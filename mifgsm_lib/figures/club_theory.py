"""Figures of the chapter "CLUB theory": the bound, the convergence of vCLUB, its early iterations and its spread.

Each takes the data of :mod:`mifgsm_lib.studies.club_theory` and returns a matplotlib Figure.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from mifgsm_lib.studies.club_theory import Convergence


def plot_bound(bound: pd.DataFrame) -> Figure:
    """Per label prior (panels): the true I(X; Y), CLUB with the true posterior (± one standard error) and H(Y)
    against the class separation."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for ax, (prior, part) in zip(axes, bound.groupby("prior")):
        ax.plot(part["separation"], part["true_mi"], "o-", label=r"$I(X;Y)$ (quadrature)")
        ax.errorbar(part["separation"], part["club"], yerr=part["club_stderr"], fmt="s-",
                    label=r"$I_{\mathrm{CLUB}}$ with true $p(y|x)$ (Eq. 5)")
        ax.axhline(part["entropy_y"].iloc[0], color="grey", ls=":", label=r"$H(Y)$")
        ax.set(title=f"p(y=1) = {prior}", xlabel=r"class separation $\Delta$ (in std)")
        ax.set_yscale("symlog", linthresh=0.1)
    axes[0].set_ylabel("nats")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_convergence(run: Convergence) -> Figure:
    """The held-out vCLUB estimate (left) and the log-likelihoods (right) of q_θ in training, with references."""
    history = run.result.history
    fig, (ax_mi, ax_ll) = plt.subplots(1, 2, figsize=(10, 3.8))
    ax_mi.plot(history["iteration"], history["val_mi"], label=r"vCLUB, Eq. 7 with $q_\theta$ (held out)")
    ax_mi.axhline(run.club_val, color="C1", ls="--", label=r"Eq. 7 with the true $p(y|x)$ (held out)")
    ax_mi.axhline(run.true_mi, color="C2", ls=":", label=r"true $I(X;Y)$")
    ax_mi.set(xlabel="training iteration", ylabel="nats", title="MI estimate")
    ax_mi.legend(fontsize=8)
    ax_ll.plot(history["iteration"], history["val_loglik"], label=r"held-out $\log q_\theta(y|x)$")
    ax_ll.plot(history["iteration"], -history["train_loss"], label=r"training $\log q_\theta(y|x)$")
    ax_ll.axhline(run.true_loglik, color="C2", ls=":", label=r"held-out $\log p(y|x)$ (true posterior)")
    ax_ll.set(xlabel="training iteration", ylabel="mean log-likelihood (nats)", title="Learning curve")
    ax_ll.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_early(early: np.ndarray, true_mi: float) -> Figure:
    """The held-out estimate over the first iterations, one line per seed, against the true MI."""
    fig, ax = plt.subplots(figsize=(6, 3.8))
    ax.plot(np.arange(early.shape[1]), early.T, color="C0", alpha=0.5, lw=1)
    ax.axhline(true_mi, color="C2", ls=":", label=r"true $I(X;Y)$")
    ax.axhline(0, color="k", lw=0.5)
    ax.set(xlabel="training iteration", ylabel="held-out vCLUB estimate (nats)",
           title=f"{len(early)} seeds, first {early.shape[1] - 1} iterations")
    ax.legend()
    fig.tight_layout()
    return fig


def plot_spread(spread: pd.DataFrame, pool_value: float) -> Figure:
    """The estimate's standard deviation against the batch size (log-log, with c/√N), and its mean ± std."""
    fig, (ax_sd, ax_mean) = plt.subplots(1, 2, figsize=(10, 3.8))
    ax_sd.loglog(spread["batch_size"], spread["std"], "o-", label="std of the estimate")
    reference = spread["std_x_sqrt_n"].median() / np.sqrt(spread["batch_size"])
    ax_sd.loglog(spread["batch_size"], reference, "k--", label=r"$c/\sqrt{N}$")
    ax_sd.set(xlabel="batch size N", ylabel="nats", title="Spread")
    ax_sd.legend()
    ax_mean.errorbar(spread["batch_size"], spread["mean"], yerr=spread["std"], fmt="o-", capsize=3)
    ax_mean.axhline(pool_value, color="C1", ls="--", label="whole pool")
    ax_mean.set(xscale="log", xlabel="batch size N", ylabel="nats", title="Mean ± std")
    ax_mean.legend()
    fig.tight_layout()
    return fig
