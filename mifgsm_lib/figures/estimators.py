"""Figures of the chapter "Estimator training": the vCLUB learning curves against their references."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from mifgsm_lib.studies.estimators import FEATURES, Runs, check_history


def plot_learning_curves(runs: Runs, entropies: Mapping[str, float], checkpoints: Sequence[int] = ()) -> Figure:
    """Per dataset (columns): training NLL, held-out log-likelihood, held-out MI estimates (rows).

    The log-likelihood panel shows the prior guess -H(Y); the MI panel shows H(Y), log 2 and, dotted,
    the Barber-Agakov lower bound H(Y) + held-out log-likelihood. Grey verticals mark the checkpoints.
    """
    names = list(dict.fromkeys(name for name, _ in runs))
    if not names:
        raise ValueError("runs: expected at least one (dataset, features) learning curve")
    fig, axes = plt.subplots(3, len(names), figsize=(5.2 * len(names), 8.5), squeeze=False, sharex="col")
    colours = {features: f"C{k}" for k, features in enumerate(dict.fromkeys(f for _, f in runs))}
    for col, name in enumerate(names):
        ax_loss, ax_ll, ax_mi = axes[:, col]
        entropy = entropies[name]
        for (run_name, features), h in runs.items():
            if run_name != name:
                continue
            check_history((run_name, features), h)
            c, it = colours[features], h["iteration"]
            ax_loss.plot(it, h["train_loss"], color=c, label=FEATURES.get(features, features))
            ax_ll.plot(it, h["val_loglik"], color=c, label=FEATURES.get(features, features))
            ax_mi.plot(it, h["val_mi"], color=c, label=f"vCLUB, {features}")
            ax_mi.plot(it, entropy + h["val_loglik"], color=c, ls=":", label=f"BA lower bound, {features}")
        ax_ll.axhline(-entropy, color="grey", ls="--", lw=1, label="prior guess, -H(Y)")
        ax_mi.axhline(entropy, color="k", ls="--", lw=1, label="H(Y)")
        ax_mi.axhline(np.log(2), color="grey", ls="-.", lw=1, label="log 2")
        for ax in (ax_loss, ax_ll, ax_mi):
            for it in checkpoints:
                ax.axvline(it, color="grey", alpha=0.3, lw=1)
            ax.grid(True, alpha=0.3)
        ax_loss.set_yscale("log")
        ax_loss.set(title=f"{name}", ylabel="training NLL (nats, log scale)")
        ax_ll.set(ylabel="held-out log-likelihood (nats)")
        low = min(float(np.min(h["val_loglik"][len(h["val_loglik"]) // 10:])) for (n, _), h in runs.items()
                  if n == name)
        ax_ll.set_ylim(min(low, -entropy) * 1.15, 0.0)
        ax_mi.set(xlabel="training iteration", ylabel="held-out estimate (nats)")
        ax_loss.legend(fontsize=7)
        ax_ll.legend(fontsize=7, loc="lower right")
        ax_mi.legend(fontsize=7, loc="center right")
    fig.tight_layout()
    return fig
