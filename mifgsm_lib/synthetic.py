"""A synthetic problem whose mutual information is known: the test bed of the chapter "CLUB theory".

y ~ Bernoulli(p_1) and x | y ~ N((y - 1/2) Δ u, I_d): the posterior depends on x only through t = u.x, so the
true I(X; Y) (:func:`true_mi_gaussian_mixture`) is a one-dimensional integral and CLUB with the true posterior
(Eq. 5, :func:`club_true_p`) a Monte Carlo mean. The chapter's experiments on it (:mod:`mifgsm_lib.studies.club_theory`)
use the same estimator code as the attacks (:mod:`mifgsm_lib.mi`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import integrate

from mifgsm_lib.mi import vclub_terms


@dataclass(frozen=True)
class GaussianBinaryTask:
    """y ~ Bernoulli(prior); x | y ~ N((y - 1/2) * separation * u, I_dim) with u = (1, ..., 1) / sqrt(dim).

    The class means are ``separation`` standard deviations apart. The posterior
    p(y | x) depends on x only through t = u.x, which is N(+-separation/2, 1)
    given y, so the true mutual information is a one-dimensional integral.
    """

    dim: int = 4
    separation: float = 2.0
    prior: float = 0.5

    def __post_init__(self) -> None:
        if self.dim < 1:
            raise ValueError(f"dim={self.dim!r}: expected a positive dimension")
        if not 0.0 < self.prior < 1.0:
            raise ValueError(f"prior={self.prior!r}: expected p(y = 1) strictly between 0 and 1")

    @property
    def label_prior(self) -> torch.Tensor:
        """p(y) as a ``(2,)`` tensor."""
        return torch.tensor([1.0 - self.prior, self.prior], dtype=torch.float64)

    def log_odds(self, t: float | torch.Tensor) -> float | torch.Tensor:
        """log p(y = 1 | t) / p(y = 0 | t) = log(prior / (1 - prior)) + separation * t."""
        return math.log(self.prior / (1.0 - self.prior)) + self.separation * t

    def sample(self, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` draws (x as float32 ``(n, dim)``, y as int64 ``(n,)``) from ``seed``."""
        generator = torch.Generator().manual_seed(seed)
        y = (torch.rand(n, generator=generator, dtype=torch.float64) < self.prior).long()
        shift = (y.double() - 0.5) * self.separation / math.sqrt(self.dim)
        x = torch.randn(n, self.dim, generator=generator, dtype=torch.float64) + shift[:, None]
        return x.float(), y

    def log_posterior(self, x: torch.Tensor) -> torch.Tensor:
        """The true log p(k | x), shape ``(n, 2)`` in float64."""
        a = self.log_odds(x.double().sum(1) / math.sqrt(self.dim))
        return torch.stack([-F.softplus(a), -F.softplus(-a)], dim=1)


@dataclass(frozen=True)
class MonteCarloEstimate:
    """A sample mean and its standard error."""

    value: float
    stderr: float


def true_mi_gaussian_mixture(task: GaussianBinaryTask) -> float:
    """I(X; Y) = sum_y p(y) int p(t | y) log(p(y | t) / p(y)) dt in nats, by adaptive quadrature."""

    def integrand(t: float, label: int) -> float:
        mean = (label - 0.5) * task.separation
        density = math.exp(-0.5 * (t - mean) ** 2) / math.sqrt(2 * math.pi)
        a = task.log_odds(t)
        log_posterior = -np.logaddexp(0.0, -a) if label else -np.logaddexp(0.0, a)
        return density * log_posterior

    p1 = task.prior
    conditional_entropy = -sum(
        p * integrate.quad(integrand, -np.inf, np.inf, args=(label,), epsabs=1e-12, epsrel=1e-10)[0]
        for label, p in ((0, 1 - p1), (1, p1))
    )
    entropy = -(p1 * math.log(p1) + (1 - p1) * math.log(1 - p1))
    return entropy - conditional_entropy


def club_true_p(task: GaussianBinaryTask, n: int, seed: int) -> MonteCarloEstimate:
    """Eq. 5 with the true p(y | x) and p(y): the Monte Carlo mean of the bracket over ``n`` draws."""
    x, y = task.sample(n, seed)
    terms = vclub_terms(task.log_posterior(x), y, task.label_prior)
    return MonteCarloEstimate(terms.mean().item(), terms.std().item() / math.sqrt(n))
