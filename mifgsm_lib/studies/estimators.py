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
            "peak_heldout_loglik": float(np.max(h["val_loglik"])),
            "peak_iteration": int(h["iteration"][int(np.argmax(h["val_loglik"]))]),
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


def training_images(cfg: RunConfig, names: Iterable[str]) -> pd.DataFrame:
    """Which images train what, per dataset: the MLP of Sec. 3.1 (setting A and the white-box attacks) and the
    vCLUB estimators (both features share one split), each with how many of the sweep subset's images it saw."""
    rows = []
    for name in names:
        sweep = pipeline.subset(cfg, name)
        mlp_images = pipeline.mlp_training_images(cfg, name)
        vclub_train, _ = pipeline.vclub_split(cfg, name)
        n_labelled = len(pipeline.labelled(cfg, name))
        for what, images in (("MLP (setting A, FGSM, MI-FGSM-MLP)", mlp_images),
                             ("vCLUB estimators (MI-FGSM, MI-FGSM-MLP)", vclub_train)):
            rows.append({"dataset": name, "trained": what, "images": len(images),
                         "sweep images seen": int(np.isin(sweep, images).sum()), "sweep subset": len(sweep),
                         "labelled": n_labelled})
    return pd.DataFrame(rows).set_index(["dataset", "trained"])


def describe_training_images(table: pd.DataFrame) -> str:
    """Markdown: what :func:`training_images` means for setting A and for the attacks."""
    lines = []
    for name in table.index.get_level_values("dataset").unique():
        rows = table.loc[name]
        mlp, vclub = rows.iloc[0], rows.iloc[1]
        held = mlp["sweep images seen"] == 0
        lines.append(
            f"* **{name}**: the MLP is trained on {mlp['images']:,} labelled images "
            + ("outside the sweep subset, so setting A on the subset's "
               f"{mlp['sweep subset']:,} images, and the white-box attacks of those images, meet a classifier "
               "that never saw them." if held else
               f"including {mlp['sweep images seen']:,} of the sweep subset's {mlp['sweep subset']:,} (too few "
               "images are left outside it): setting A on the subset is then read with cross-fitted MLPs, each "
               "image scored by one that never saw it.")
            + f" The vCLUB estimators are trained on {vclub['images']:,} images, {vclub['sweep images seen']:,} of "
            "them in the sweep subset: the defender trains its estimator on the faces it protects.")
    return "\n".join(lines)


def describe_mlp(mlp: pd.DataFrame) -> str:
    """Markdown: each MLP's accuracy on its training and held-out splits."""
    return "\n".join(f"* **{row.Index}**: {row.train_accuracy:.1%} on its training split, {row.heldout_accuracy:.1%}"
                     f" held out (a gap of {100 * row.gap:.1f} points)." for row in mlp.itertuples())


def describe_training_time(summary: pd.DataFrame, device: str, iterations: int) -> str:
    """Markdown: the estimators' total training time and time per iteration."""
    return (f"The {len(summary)} estimators took **{summary['seconds'].sum():.0f} s** of training in all, on "
            f"`{device}` ({summary['ms_per_iteration'].min():.1f} to {summary['ms_per_iteration'].max():.1f} ms per "
            f"iteration of {iterations:,}; the time of each was measured when it was trained and is stored with it "
            "in the cache).")


#: The features of each estimator, in words.
FEATURE_NAMES = {"face": "the templates f(x)", "mlp": "the MLP features f_MLP(x)"}


def describe_curves(runs: Runs, summary: pd.DataFrame) -> str:
    """Markdown, per estimator: the held-out log-likelihood's rise and the bounds it gives on I, any late fall
    (over-fitting), and the final vCLUB estimate against H(Y)."""
    lines = []
    for (name, features), h in runs.items():
        row = summary.loc[(name, features)]
        drop = row.peak_heldout_loglik - row.heldout_loglik
        entropy = row["H(Y)"]
        text = (f"* **{name}, {features}**: the held-out log-likelihood went from {h['val_loglik'][0]:.3f} to "
                f"{row.heldout_loglik:.3f} nats (the prior guess scores {row.prior_loglik:.3f}). ")
        if row.ba_lower_bound > 0:
            text += (f"So {row.ba_lower_bound:.3f} ≤ I ≤ {entropy:.3f} nats: {FEATURE_NAMES[features]} carry at "
                     f"least {row.ba_lower_bound / entropy:.0%} of the label's entropy. ")
        else:
            peak_bound = entropy + row.peak_heldout_loglik
            text += (f"The final $q_\\theta$ predicts held-out labels **worse than the prior guess**, so its bound "
                     f"on I says nothing; at its peak it gave {peak_bound:.3f} ≤ I ≤ {entropy:.3f} nats "
                     f"({peak_bound / entropy:.0%} of the label's entropy, the peak chosen on the held-out split). ")
        if drop > 0.01:
            text += (f"It peaked at iteration {int(row.peak_iteration):,} ({row.peak_heldout_loglik:.3f}) and then "
                     f"fell by {drop:.3f}: $q_\\theta$ over-fits its training split after that. ")
        ratio = row["vclub_over_H(Y)"]
        text += (f"The final vCLUB estimate is {row.vclub_heldout:.3f} nats, {ratio:.1f} times H(Y)"
                 + (" and above log 2." if row.vclub_heldout > np.log(2) else "."))
        lines.append(text)
    return "\n".join(lines)


def describe_entropy_bound(summary: pd.DataFrame) -> str:
    """Markdown: how many final estimates exceed H(Y), and what that means for MI-FGSM."""
    exceeds = summary[summary["vclub_heldout"] > summary["H(Y)"]]
    within = summary[summary["vclub_heldout"] <= summary["H(Y)"]]
    text = (f"{len(exceeds)} of {len(summary)} final estimates exceed H(Y)"
            + (f" (up to {exceeds['vclub_over_H(Y)'].max():.1f} times)" if len(exceeds) else "") + ". ")
    if len(exceeds):
        text += ("For these, the number is a score that is zero exactly at independence, not a count of leaked "
                 "nats; the Barber–Agakov bound beside it says how much information the templates really hold at "
                 "least. ")
    if len(within):
        text += f"{len(within)} stay below H(Y). "
    return text + ("MI-FGSM uses the estimate's *gradient*: it lowers a value that is zero exactly at independence, "
                   "whatever its scale.")


def checkpoint_mismatch(checkpoints: pd.DataFrame, runs: Runs, final: int) -> float:
    """The largest difference (nats) between a final cached checkpoint's held-out Eq. 7 and the last point of
    its recorded learning curve."""
    last = checkpoints.xs(final, level="iteration")
    return float(max(abs(last.loc[key, "vclub_heldout"] - runs[key]["val_mi"][-1]) for key in runs))


def describe_checkpoints(mismatch: float, tolerance: float) -> str:
    """Markdown: whether the cached final checkpoints reproduce the end of the learning curves."""
    return (f"The final checkpoints reproduce the end of the learning curves to {mismatch:.1e} nats: "
            + ("the estimators the attacks load are the ones trained above." if mismatch <= tolerance else
               "**they do not**."))
