"""The vCLUB mutual-information estimator (Sec. 4.1, Eqs. 5-7; Cheng et al., ICML 2020).

MI-FGSM (Eq. 1) descends the gradient of a variational Contrastive Log-ratio
Upper Bound of I(f(X); Y). The variational network q_theta(y | z) is, as in the
paper, Linear(d, 256), ReLU, Linear(256, K), log-softmax, for a categorical
attribute with K classes (K = 2 for gender). For a batch {(z_i, y_i)} the
unbiased estimator of Eq. 7 is

    I_hat = 1/N sum_i [ log q(y_i | z_i) - 1/N sum_j log q(y_j | z_i) ].

Because y takes K values, the inner sum over j only depends on the label
frequencies pi_k of the batch: 1/N sum_j log q(y_j | z_i) = sum_k pi_k log q(k | z_i).
So the estimate is computed from the N x K log-probabilities, never from an
N x N (x d) tensor.

The estimate is linear in q's logits, so its gradient with respect to a template has a closed form
(:func:`vclub_template_gradient_closed_form`); for two classes it is a label-dependent weight times the
gradient of q's logit margin (:func:`margin_weights`), which the chapter "Beyond one step" checks against
automatic differentiation (:func:`gradient_check`).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mifgsm_lib.nets import ArrayLike, TemplateNetwork, as_templates, label_tensor, seeded_init
from mifgsm_lib.progress import bar
from mifgsm_lib.validation import check_positive_int

def label_frequencies(y: torch.Tensor, num_classes: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """pi_k = #{j : y_j = k} / N, the batch's label frequencies (the p(y) of Eq. 7)."""
    return torch.bincount(y, minlength=num_classes).to(dtype) / len(y)


def vclub_terms(log_probs: torch.Tensor, y: torch.Tensor, label_prior: torch.Tensor) -> torch.Tensor:
    """The bracket of Eq. 7 per sample: log q(y_i | z_i) - sum_k prior_k log q(k | z_i), shape ``(N,)``.

    With ``label_prior`` the batch's label frequencies this is Eq. 7's summand;
    with the true p(y) and the true p(y | x) its mean estimates Eq. 5.
    """
    positive = log_probs.gather(1, y[:, None]).squeeze(1)
    negative = log_probs @ label_prior.to(log_probs.dtype)
    return positive - negative


def vclub_from_log_probs(
    log_probs: torch.Tensor, y: ArrayLike, label_prior: torch.Tensor | None = None
) -> torch.Tensor:
    """Eq. 7 from ``(N, K)`` log-probabilities log q(k | z_i) and the labels y_i.

    ``label_prior=None`` uses the batch's label frequencies (Eq. 7 exactly);
    a given prior p(y) gives the sample mean of Eq. 5/6 instead.
    """
    if log_probs.ndim != 2:
        raise ValueError(f"log_probs: expected shape (N, K), got {tuple(log_probs.shape)}")
    labels = label_tensor(y, log_probs.shape[1], n=len(log_probs), device=log_probs.device)
    prior = label_frequencies(labels, log_probs.shape[1], log_probs.dtype) if label_prior is None else label_prior
    return vclub_terms(log_probs, labels, prior).mean()


class VCLUB(TemplateNetwork):
    """Categorical vCLUB (Sec. 4.1): q_theta(y | z) = log-softmax(Linear(256, K)(ReLU(Linear(d, 256)(z))))."""

    hparam_names = ("dim", "num_classes", "hidden")

    def __init__(self, dim: int, num_classes: int = 2, hidden: int = 256) -> None:
        super().__init__(dim)
        if num_classes < 2:
            raise ValueError(f"num_classes={num_classes!r}: expected at least 2 classes")
        self.num_classes = int(num_classes)
        self.hidden = int(hidden)
        self.fc1 = nn.Linear(self.dim, self.hidden)
        self.fc2 = nn.Linear(self.hidden, self.num_classes)

    def logits(self, z: torch.Tensor) -> torch.Tensor:
        """The ``(N, K)`` logits s(z) of q_theta, before the log-softmax."""
        return self.fc2(F.relu(self.fc1(self.check_templates(z))))

    def log_probs(self, z: torch.Tensor) -> torch.Tensor:
        """log q_theta(k | z_i) for every sample and class, shape ``(N, K)``."""
        return F.log_softmax(self.logits(z), dim=1)

    def labels_for(self, z: torch.Tensor, y: ArrayLike, min_classes: int) -> torch.Tensor:
        """Validated labels of the templates ``z`` (:func:`mifgsm_lib.validation.check_labels`), on ``z``'s device."""
        return label_tensor(y, self.num_classes, n=len(z), min_classes=min_classes, device=z.device)

    def loglikeli(self, z: torch.Tensor, y: ArrayLike) -> torch.Tensor:
        """The mean log-likelihood 1/N sum_i log q_theta(y_i | z_i)."""
        labels = self.labels_for(z, y, min_classes=1)
        return self.log_probs(z).gather(1, labels[:, None]).mean()

    def learning_loss(self, z: torch.Tensor, y: ArrayLike) -> torch.Tensor:
        """The loss q_theta is trained with: the negative log-likelihood."""
        return -self.loglikeli(z, y)

    def forward(self, z: torch.Tensor, y: ArrayLike) -> torch.Tensor:
        """The vCLUB estimate of Eq. 7 on the batch (in nats); differentiable in ``z``.

        The batch must hold at least two classes (:func:`mifgsm_lib.validation.check_labels`).
        """
        labels = self.labels_for(z, y, min_classes=2)
        return vclub_from_log_probs(self.log_probs(z), labels)


def vclub_template_gradient_closed_form(estimator: VCLUB, z: torch.Tensor, y: ArrayLike) -> torch.Tensor:
    """The gradient of Eq. 7 with respect to each template, in closed form, shape ``(N, d)``.

    Writing log q(k | z) = s_k(z) - log sum_m exp s_m(z), the summand of Eq. 7 is
    s_{y_i}(z_i) - sum_k pi_k s_k(z_i): the log-normaliser appears with weight
    1 - sum_k pi_k = 0 and cancels. Hence

        dI_hat / dz_i = 1/N J_i^T (e_{y_i} - pi),   J_i = ds/dz (z_i) = W2 diag(1[h_i > 0]) W1,

    with h_i = W1 z_i + b1 the pre-activations of q's hidden layer. For K = 2 this is
    (2 y_i - 1) pi_{1 - y_i} / N times the gradient of the logit margin s_1 - s_0.
    """
    labels = estimator.labels_for(z, y, min_classes=2)
    one_hot = F.one_hot(labels, estimator.num_classes).to(z.dtype)
    coefficients = (one_hot - label_frequencies(labels, estimator.num_classes, z.dtype)) / len(labels)
    fc1, fc2 = estimator.fc1, estimator.fc2
    with torch.no_grad():
        active = (estimator.check_templates(z) @ fc1.weight.T + fc1.bias > 0).to(z.dtype)
        return ((coefficients @ fc2.weight) * active) @ fc1.weight


def stratified_batches(y: np.ndarray, batch_size: int, seed: int) -> list[np.ndarray]:
    """Indices split into ceil(N / batch_size) batches, each holding every class in its overall proportion.

    Each class is shuffled with a seeded permutation and dealt evenly over the batches, so a batch has
    about ``batch_size`` images (a class smaller than the number of batches leaves some batches without it).
    """
    check_positive_int(batch_size, "batch_size")
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    n_batches = max(1, math.ceil(len(y) / batch_size))
    per_class = [np.array_split(rng.permutation(np.flatnonzero(y == c)), n_batches) for c in np.unique(y)]
    batches = [np.sort(np.concatenate([chunks[b] for chunks in per_class])) for b in range(n_batches)]
    return [b for b in batches if len(b)]


class StratifiedBatchSampler:
    """Seeded random batches of a fixed size in which every class appears.

    Each class k gets round(batch_size * n_k / N) places (at least one), drawn
    without replacement from its members, so the batch's label frequencies match
    the data's and the estimate of Eq. 7 is always defined.
    """

    def __init__(self, y: ArrayLike, batch_size: int, seed: int) -> None:
        labels = np.asarray(y.cpu() if isinstance(y, torch.Tensor) else y)
        classes, counts = np.unique(labels, return_counts=True)
        if not len(classes) <= batch_size <= len(labels):
            raise ValueError(
                f"batch_size={batch_size}: expected between the number of classes ({len(classes)}) "
                f"and the number of samples ({len(labels)})"
            )
        self.members = [np.flatnonzero(labels == c) for c in classes]
        self.per_class = self._allocate(counts, batch_size)
        self.rng = np.random.default_rng(seed)

    @staticmethod
    def _allocate(counts: np.ndarray, batch_size: int) -> np.ndarray:
        share = batch_size * counts / counts.sum()
        places = np.maximum(np.floor(share).astype(int), 1)
        while places.sum() < batch_size:
            places[np.argmax(share - places)] += 1
        while places.sum() > batch_size:
            places[np.argmax(places)] -= 1
        return places

    def __call__(self) -> np.ndarray:
        """The indices of the next batch."""
        return np.concatenate([self.rng.choice(m, k, replace=False) for m, k in zip(self.members, self.per_class)])


@dataclass
class VCLUBTrainingResult:
    """A trained estimator, its learning curve and the checkpoints saved on the way.

    ``history`` holds NumPy arrays indexed by evaluation: ``iteration``,
    ``train_loss`` (negative log-likelihood on the whole training set),
    ``val_loglik`` (mean held-out log-likelihood) and ``val_mi`` (Eq. 7 on the
    whole held-out set, in nats). ``checkpoints`` maps an iteration to
    :meth:`VCLUB.checkpoint_state` (loadable with :meth:`VCLUB.from_checkpoint_state`).
    """

    estimator: VCLUB
    history: dict[str, np.ndarray]
    checkpoints: dict[int, dict[str, torch.Tensor]]
    seconds: float
    device: str


def _nll(estimator: VCLUB, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """:meth:`VCLUB.learning_loss` on templates and labels validated once before a training loop (the checks of
    every call would cost more than the step itself)."""
    log_probs = F.log_softmax(estimator.fc2(F.relu(estimator.fc1(z))), dim=1)
    return -log_probs.gather(1, y[:, None]).mean()


def _evaluate(estimator: VCLUB, z_train, y_train, z_val, y_val) -> tuple[float, float, float]:
    with torch.no_grad():
        val_log_probs = estimator.log_probs(z_val)
        return (
            _nll(estimator, z_train, y_train).item(),
            val_log_probs.gather(1, y_val[:, None]).mean().item(),
            vclub_from_log_probs(val_log_probs, y_val).item(),
        )


def train_vclub(
    z_train: ArrayLike,
    y_train: ArrayLike,
    z_val: ArrayLike,
    y_val: ArrayLike,
    iterations: int = 15000,
    batch_size: int = 256,
    lr: float = 1e-3,
    seed: int = 0,
    checkpoints: Iterable[int] = (),
    eval_every: int | None = None,
    progress: bool = True,
    num_classes: int = 2,
    hidden: int = 256,
    device: str | torch.device = "cpu",
) -> VCLUBTrainingResult:
    """Fit q_theta by maximum likelihood with Adam on stratified batches (Sec. 4.1, Sec. 5).

    The weights are drawn from ``seed`` and so are the batches: the same seed
    gives the same estimator on the CPU. The curve is recorded before training
    and every ``eval_every`` iterations (default: 100 points), and the state is
    copied at each iteration listed in ``checkpoints`` (for the paper's Fig. 2:
    5,000, 15,000 and 23,700).
    """
    if iterations < 1:
        raise ValueError(f"iterations={iterations!r}: expected a positive integer")
    eval_every = max(1, iterations // 100) if eval_every is None else eval_every
    if eval_every < 1:
        raise ValueError(f"eval_every={eval_every!r}: expected a positive integer")
    saved_at = sorted({int(c) for c in checkpoints})
    if saved_at and not 1 <= saved_at[0] <= saved_at[-1] <= iterations:
        raise ValueError(f"checkpoints={saved_at}: expected iterations between 1 and iterations={iterations}")
    device = torch.device(device)
    zt, zv = as_templates(z_train).to(device), as_templates(z_val).to(device)
    yt = label_tensor(y_train, num_classes, name="y_train", device=device)
    yv = label_tensor(y_val, num_classes, name="y_val", device=device)
    estimator = seeded_init(VCLUB, seed, dim=zt.shape[-1], num_classes=num_classes, hidden=hidden).to(device)
    for name, z, y in (("z_train", zt, yt), ("z_val", zv, yv)):
        estimator.check_templates(z, name=name)
        if len(z) != len(y):
            raise ValueError(f"{name}: {len(z)} templates but {len(y)} labels")
    sampler = StratifiedBatchSampler(yt, batch_size, seed)
    optimizer = torch.optim.Adam(estimator.parameters(), lr=lr)
    rows = [(0, *_evaluate(estimator, zt, yt, zv, yv))]
    states: dict[int, dict[str, torch.Tensor]] = {}
    start = time.perf_counter()
    for iteration in bar(range(1, iterations + 1), desc="vCLUB iterations", disable=not progress):
        batch = torch.from_numpy(sampler()).to(device)
        loss = _nll(estimator, zt[batch], yt[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if iteration in saved_at:
            states[iteration] = estimator.checkpoint_state()
        if iteration % eval_every == 0 or iteration == iterations:
            rows.append((iteration, *_evaluate(estimator, zt, yt, zv, yv)))
    seconds = time.perf_counter() - start
    history = dict(zip(("iteration", "train_loss", "val_loglik", "val_mi"), map(np.asarray, zip(*rows))))
    return VCLUBTrainingResult(estimator.eval(), history, states, seconds, str(device))


def vclub_batch_estimates(
    estimator: VCLUB, z: ArrayLike, y: ArrayLike, batch_size: int, repeats: int, seed: int
) -> np.ndarray:
    """Eq. 7 on ``repeats`` stratified random batches of ``batch_size`` (its sampling spread)."""
    device = next(estimator.parameters()).device
    labels = label_tensor(y, estimator.num_classes)
    sampler = StratifiedBatchSampler(labels, batch_size, seed)
    with torch.no_grad():
        log_probs = estimator.log_probs(as_templates(z).to(device)).cpu()
        return np.array([vclub_from_log_probs(log_probs[b], labels[b]).item() for b in
                         (torch.from_numpy(sampler()) for _ in range(repeats))])


# --- The gradient of Eq. 7 with respect to the templates ---------------------------------------------


def autograd_template_gradient(estimator: VCLUB, z: torch.Tensor, y: np.ndarray | torch.Tensor) -> torch.Tensor:
    """dÎ/dz_i of Eq. 7 by automatic differentiation, shape ``(N, d)``."""
    z = z.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(estimator(z, y), z)
    return grad


def logit_margin_gradient(estimator: VCLUB, z: torch.Tensor) -> torch.Tensor:
    """The gradient of q's logit margin s_1(z_i) - s_0(z_i) for each template (two classes), shape ``(N, d)``."""
    if estimator.num_classes != 2:
        raise ValueError(f"estimator: the logit margin needs two classes, got num_classes={estimator.num_classes}")
    z = z.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        logits = estimator.logits(z)
        (grad,) = torch.autograd.grad((logits[:, 1] - logits[:, 0]).sum(), z)
    return grad


def margin_weights(y: np.ndarray | torch.Tensor) -> torch.Tensor:
    """The per-sample weight w_i = (2 y_i - 1) π_{1 - y_i} / N with which dÎ/dz_i = w_i ∇(s_1 - s_0)(z_i), K = 2.

    It depends on the sample's label and on the batch's label frequencies π, never on z: the sign of the
    MI-FGSM step is the sign of ±∇(margin), an FGSM step on q.
    """
    labels = label_tensor(y, 2)
    pi = label_frequencies(labels, 2, torch.float64)
    return (2 * labels - 1).double() * pi[1 - labels] / len(labels)


def gradient_check(estimator: VCLUB, z: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor) -> dict[str, Any]:
    """The closed form of dÎ/dz against autograd on the templates ``z`` (in float64), and for two classes the
    weighted margin gradient too.

    Returns the classes K, the number of templates, the largest autograd component and the largest absolute
    difference of each form from autograd.
    """
    q = copy.deepcopy(estimator).double().eval()
    z64 = as_templates(z).double()
    auto = autograd_template_gradient(q, z64, y)
    closed = vclub_template_gradient_closed_form(q, z64, y)
    row = {"classes": q.num_classes, "templates": len(z64), "max_gradient": float(auto.abs().max()),
           "closed_form_error": float((closed - auto).abs().max())}
    if q.num_classes == 2:
        weighted = margin_weights(y)[:, None] * logit_margin_gradient(q, z64)
        row["margin_form_error"] = float((weighted - auto).abs().max())
    return row


def sign_change(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> float:
    """The fraction of entries whose sign differs between two arrays of one shape (0 counts as a sign)."""
    sa, sb = np.sign(np.asarray(a)), np.sign(np.asarray(b))
    if sa.shape != sb.shape:
        raise ValueError(f"a and b: expected one shape, got {sa.shape} and {sb.shape}")
    return float(np.mean(sa != sb))


def template_sign_change(
    estimator: VCLUB, z: np.ndarray | torch.Tensor, y: np.ndarray, batch_size: int, seed: int
) -> float:
    """The fraction of template-gradient signs that change between stratified batches of ``batch_size`` and
    the whole set as one batch (closed form of Eq. 7's gradient; 0 for two classes, see :func:`margin_weights`).
    """
    z_t = as_templates(z)
    labels = np.asarray(y)
    whole = vclub_template_gradient_closed_form(estimator, z_t, labels).numpy()
    batched = np.empty_like(whole)
    for b in stratified_batches(labels, batch_size, seed):
        batched[b] = vclub_template_gradient_closed_form(estimator, z_t[b], labels[b]).numpy()
    return sign_change(whole, batched)


def logit_margins(estimator: VCLUB, z: np.ndarray) -> np.ndarray:
    """q's logit margin s_1(z) - s_0(z) of each template (two classes; > 0 where q leans to class 1)."""
    if estimator.num_classes != 2:
        raise ValueError(f"estimator: the logit margin needs two classes, got num_classes={estimator.num_classes}")
    with torch.no_grad():
        logits = estimator.logits(as_templates(z))
    return (logits[:, 1] - logits[:, 0]).numpy()
