"""The chapter "CLUB theory" (paper Sec. 4.1, Eqs. 5-7): what the vCLUB number means, on a synthetic problem
whose mutual information is known (:mod:`mifgsm_lib.synthetic`).

Four experiments, each sized by the profile's ``club_theory`` entry (:data:`mifgsm_lib.config.PROFILES`):

1. :func:`bound_table`: with the true posterior, CLUB (Eq. 5) against the true I(X; Y) and H(Y);
2. :func:`convergence`: the vCLUB estimate (Eq. 7) of a q_θ in training, against Eq. 7 with the true posterior;
3. :func:`early_training`: an untrained or wrong q_θ is no bound;
4. :func:`batch_spread`: the estimate's spread against the batch size.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from mifgsm_lib.mi import VCLUB, VCLUBTrainingResult, train_vclub, vclub_batch_estimates, vclub_from_log_probs
from mifgsm_lib.synthetic import GaussianBinaryTask, club_true_p, true_mi_gaussian_mixture

#: The class separations Δ (in standard deviations) and label priors p(y = 1) of the bound experiment.
SEPARATIONS = tuple(float(s) for s in np.linspace(0.0, 4.0, 9))
PRIORS = (0.5, 0.2)
#: The batch sizes of the spread experiment.
BATCH_SIZES = (8, 16, 32, 64, 128, 256, 512, 1024)


def bound_table(sizes: Mapping[str, Any], seed: int) -> pd.DataFrame:
    """Per label prior and class separation: the true I(X; Y) (quadrature), CLUB with the true posterior (Eq. 5,
    Monte Carlo with its standard error), H(Y), and the gap CLUB - I in nats and in standard errors."""
    rows = []
    for prior in PRIORS:
        for separation in SEPARATIONS:
            task = GaussianBinaryTask(dim=sizes["dim"], separation=separation, prior=prior)
            club = club_true_p(task, sizes["mc_samples"], seed=seed)
            rows.append(dict(prior=prior, separation=separation, true_mi=true_mi_gaussian_mixture(task),
                             club=club.value, club_stderr=club.stderr,
                             entropy_y=-(prior * np.log(prior) + (1 - prior) * np.log(1 - prior))))
    bound = pd.DataFrame(rows)
    bound["gap"] = bound["club"] - bound["true_mi"]
    bound["gap_in_stderr"] = bound["gap"] / bound["club_stderr"].where(bound["club_stderr"] > 0)
    return bound


def bound_verdict(bound: pd.DataFrame) -> str:
    """Whether CLUB with the true posterior is above the true MI in every setting of :func:`bound_table` with
    Δ > 0 (at Δ = 0 both are zero): "holds in all n settings" or "fails in k of n settings"."""
    nonzero = bound[bound["separation"] > 0]
    failed = int((nonzero["gap"] <= 0).sum())
    return f"holds in all {len(nonzero)} settings" if failed == 0 else f"fails in {failed} of {len(nonzero)} settings"


def spread_exponent(spread: pd.DataFrame) -> float:
    """The exponent a of std ∝ N^a fitted (least squares on logs) to :func:`batch_spread`'s table; an average of
    N independent brackets has a = -1/2."""
    return float(np.polyfit(np.log(spread["batch_size"]), np.log(spread["std"]), 1)[0])


@dataclass(frozen=True)
class Problem:
    """The Δ = 2, p(y = 1) = 1/2 problem of experiments 2-4: the task and its training and held-out samples."""

    task: GaussianBinaryTask
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor

    @classmethod
    def draw(cls, sizes: Mapping[str, Any], seed: int) -> Problem:
        task = GaussianBinaryTask(dim=sizes["dim"], separation=2.0, prior=0.5)
        return cls(task, *task.sample(sizes["n_train"], seed=seed), *task.sample(sizes["n_val"], seed=seed + 1))


@dataclass(frozen=True)
class Convergence:
    """A trained q_θ and the references of its curve: the true I, Eq. 7 and the mean log-likelihood on the held-out
    set with the true posterior."""

    result: VCLUBTrainingResult
    true_mi: float
    club_val: float
    true_loglik: float


def convergence(problem: Problem, sizes: Mapping[str, Any], seed: int, device: torch.device) -> Convergence:
    """Experiment 2: q_θ trained on the problem for the profile's iterations, and its references."""
    result = train_vclub(problem.x_train, problem.y_train, problem.x_val, problem.y_val, iterations=sizes["iterations"],
                         eval_every=sizes["eval_every"], seed=seed, device=device)
    log_posterior = problem.task.log_posterior(problem.x_val)
    return Convergence(result, true_mi_gaussian_mixture(problem.task),
                       vclub_from_log_probs(log_posterior, problem.y_val).item(),
                       log_posterior.gather(1, problem.y_val[:, None]).mean().item())


def early_training(problem: Problem, sizes: Mapping[str, Any], seed: int, device: torch.device) -> np.ndarray:
    """Experiment 3: the held-out estimate at every one of the first iterations, one row per seed."""
    return np.stack([
        train_vclub(problem.x_train, problem.y_train, problem.x_val, problem.y_val,
                    iterations=sizes["early_iterations"], eval_every=1, seed=seed + s, progress=False,
                    device=device).history["val_mi"]
        for s in range(sizes["early_seeds"])
    ])


def early_table(early: np.ndarray, true_mi: float, seed: int) -> pd.DataFrame:
    """Per seed of :func:`early_training`: the estimate at initialisation and the first iteration above the true
    MI (-1: never)."""
    below = early < true_mi
    first_above = np.argmax(~below, axis=1)
    return pd.DataFrame({"seed": seed + np.arange(len(early)), "estimate at init": early[:, 0],
                         "first iteration above true MI": np.where(below.all(axis=1), -1, first_above)})


def swapped_estimate(estimator: VCLUB, problem: Problem, device: torch.device) -> float:
    """Eq. 7 on the held-out set with q_θ's two classes swapped: a confidently wrong q."""
    with torch.no_grad():
        return vclub_from_log_probs(estimator.log_probs(problem.x_val.to(device)).flip(1), problem.y_val).item()


def batch_spread(estimator: VCLUB, problem: Problem, sizes: Mapping[str, Any], seed: int, device: torch.device,
                 batch_sizes: Sequence[int] = BATCH_SIZES) -> tuple[pd.DataFrame, float]:
    """Experiment 4: Eq. 7 on random stratified batches of each size from a fresh sample (mean, standard deviation
    and std·√N per size), and its value on the whole sample."""
    x_pool, y_pool = problem.task.sample(sizes["pool"], seed=seed + 2)
    with torch.no_grad():
        pool_value = vclub_from_log_probs(estimator.log_probs(x_pool.to(device)), y_pool).item()
    estimates = {n: vclub_batch_estimates(estimator, x_pool, y_pool, batch_size=n, repeats=sizes["repeats"], seed=seed)
                 for n in batch_sizes}
    spread = pd.DataFrame([dict(batch_size=n, mean=e.mean(), std=e.std(ddof=1), std_x_sqrt_n=e.std(ddof=1) * np.sqrt(n))
                           for n, e in estimates.items()])
    return spread, pool_value
