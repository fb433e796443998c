"""The chapter "Estimator training" (paper Secs. 3.1, 4.1 and 6.1).

The vCLUB estimators of :func:`mifgsm_lib.pipeline.vclub` record a learning curve (``history``: the
training negative log-likelihood, the held-out log-likelihood and the held-out estimate of Eq. 7 every
1 % of the iterations). Two references frame it for a binary label Y:

- the entropy H(Y) = -sum_k p_k log p_k, the ceiling of the true I(Z; Y) (at most log 2);
- the Barber-Agakov lower bound I(Z; Y) >= H(Y) + E[log q(y | z)], valid for any q, estimated
  with the held-out log-likelihood.

The true mutual information lies between the two; the vCLUB estimate, an upper bound only when q is
good, may exceed both (see the chapter "CLUB theory").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd
import torch

from mifgsm_lib import pipeline
from mifgsm_lib.config import RunConfig

#: What each estimator's features are, and which attack differentiates it (Eqs. 1 and 2).
FEATURES = {"face": "f(x), MI-FGSM (Eq. 1)", "mlp": "f_MLP(x), MI-FGSM-MLP (Eq. 2)"}

Runs = Mapping[tuple[str, str], Mapping[str, np.ndarray]]


def label_entropy(y: np.ndarray) -> float:
    """H(Y) = -sum_k p_k log p_k in nats, from the label frequencies of ``y`` (labels 0..K-1)."""
    labels = np.asarray(y)
    if labels.ndim != 1 or labels.size == 0 or labels.min() < 0:
        raise ValueError(f"y: expected a non-empty 1-D array of labels >= 0, got shape {labels.shape}")
    p = np.bincount(labels) / labels.size
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def check_history(key: tuple[str, str], history: Mapping[str, np.ndarray]) -> None:
    missing = {"iteration", "train_loss", "val_loglik", "val_mi", "seconds"} - set(history)
    if missing:
        raise ValueError(f"runs[{key!r}]: history lacks {sorted(missing)} (expected pipeline.vclub's history)")


def training_table(runs: Runs, entropies: Mapping[str, float]) -> pd.DataFrame:
    """One row per (dataset, features): time, final losses, the vCLUB estimate and its references, in nats."""
    rows = []
    for (name, features), h in runs.items():
        check_history((name, features), h)
        entropy = entropies[name]
        iterations = int(h["iteration"][-1])
        rows.append({
            "dataset": name, "features": features, "iterations": iterations,
            "seconds": float(h["seconds"]), "ms_per_iteration": 1e3 * float(h["seconds"]) / iterations,
            "train_nll": float(h["train_loss"][-1]), "heldout_loglik": float(h["val_loglik"][-1]),
            "prior_loglik": -entropy, "ba_lower_bound": entropy + float(h["val_loglik"][-1]),
            "H(Y)": entropy, "vclub_heldout": float(h["val_mi"][-1]),
            "vclub_over_H(Y)": float(h["val_mi"][-1]) / entropy,
        })
    return pd.DataFrame(rows).set_index(["dataset", "features"])


def checkpoint_table(cfg: RunConfig, runs: Iterable[tuple[str, str]]) -> pd.DataFrame:
    """The cached checkpoints (the estimators of Fig. 2 and of the attacks), each loaded and scored on
    the held-out split it was not trained on: mean log-likelihood and Eq. 7, in nats."""
    rows = []
    for name, features in runs:
        _, held = pipeline.vclub_split(cfg, name)  # the split pipeline.vclub trained on
        z = torch.from_numpy(pipeline.estimator_features(cfg, features, name)[held]).float()
        y = torch.from_numpy(pipeline.templates(cfg, name)["gender"][held])
        total = int(cfg.sizes["estimator_iterations"])
        for it in pipeline.vclub_checkpoints(cfg):
            estimator, _ = pipeline.vclub(cfg, features, iteration=it, name=name)
            with torch.no_grad():
                rows.append({"dataset": name, "features": features, "iteration": it,
                             "final": it == total, "heldout_loglik": estimator.loglikeli(z, y).item(),
                             "vclub_heldout": estimator(z, y).item()})
    return pd.DataFrame(rows).set_index(["dataset", "features", "iteration"])


def mlp_table(scores: Mapping[str, Mapping[str, float]]) -> pd.DataFrame:
    """The MLP gender classifier (Sec. 3.1) per dataset: accuracy on its training and held-out splits."""
    rows = [{"dataset": name, "train_accuracy": s["train_accuracy"], "heldout_accuracy": s["val_accuracy"],
             "gap": s["train_accuracy"] - s["val_accuracy"]} for name, s in scores.items()]
    return pd.DataFrame(rows).set_index("dataset")
