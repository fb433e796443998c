"""The image attacks of Sec. 3 (Eqs. 1-4) and their iterative extension MI-PGD.

Every one-step attack of the paper has the form

    x* = clip(x + ε · d),   d ∈ {-1, 0, 1}^(3×H×W),

with a per-pixel *direction* ``d`` that already carries the attack's own sign convention:

===========================  ======================================  =====================================
attack                       direction d                             gradient taken of
===========================  ======================================  =====================================
MI-FGSM (Eq. 1)              −sign(∇ₓ Î_vCLUB(f(x); y))              vCLUB on the face templates f(x)
MI-FGSM-MLP (Eq. 2)          −sign(∇ₓ Î_vCLUB(f_MLP(f(x)); y))       vCLUB on the MLP's 512-D hidden features
FGSM (Eq. 3)                 +sign(∇ₓ BCE(mlp(f(x)), y))             the MLP gender classifier's loss
RNDATK (Eq. 4)               sign · M, random                        none
===========================  ======================================  =====================================

The direction does not depend on ε, so it is computed once per image (:func:`mifgsm_lib.protect.directions`)
and every ε of a sweep only re-embeds x + ε·d (:func:`mifgsm_lib.protect.embed_perturbed`). ε is on the
[0, 1] pixel scale.

The vCLUB estimate (Eq. 7) is a batch statistic: its gradient for one image depends on the labels of the
other images of its batch, and a batch of one class has no gradient at all. :func:`mifgsm_lib.protect.directions`
therefore splits the images into seeded, stratified batches that each hold every class in its overall
proportion.

Two storage modes (:func:`perturb`): ``float`` is the paper's (no rounding); ``uint8`` rounds the
perturbed image to 8 bits as a stored photo would be, so a perturbation below half a grey level (0.5/255)
vanishes and neighbouring ε can give the same image.

:class:`MIPGD` goes beyond the paper: several steps of size α inside the L∞ ball of radius ε, with either
the vCLUB objective or a "confusion" objective, optionally re-estimating q between steps. :class:`ErasurePGD`
takes the same steps towards a template-space target, the template with the attribute linearly erased.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted
from torch import nn

from mifgsm_lib.classifiers import MLPGenderClassifier
from mifgsm_lib.erasure import LinearEraser
from mifgsm_lib.faces.models import to_tensor
from mifgsm_lib.mi import VCLUB, label_frequencies
from mifgsm_lib.nets import label_tensor
from mifgsm_lib.validation import check_eps

#: How the perturbed image is stored: the paper's float image, or rounded to 8 bits like a photo.
MODES = ("float", "uint8")
#: The readings of Eq. 4 (see :class:`RandomSign`).
RANDOM_READINGS = ("sign", "mask")
#: The objectives of :class:`MIPGD`.
PGD_OBJECTIVES = ("vclub", "confusion")
#: Images per MI gradient: Eq. 7 is a batch statistic, and the paper does not give its batch (our choice).
MI_BATCH_SIZE = 64

ImageBatch = np.ndarray | torch.Tensor


# --------------------------------------------------------------------------------------------------
# Inputs: images and storage modes
# --------------------------------------------------------------------------------------------------


def as_float_images(images: ImageBatch) -> torch.Tensor:
    """Images as a float tensor (N, 3, H, W) in [0, 1].

    Accepts uint8 chips (N, H, W, 3) (NumPy, see :func:`mifgsm_lib.faces.models.to_tensor`) and float tensors
    (N, 3, H, W) in [0, 1], returned as they are, on their device and in their dtype.
    """
    if isinstance(images, np.ndarray) and images.dtype == np.uint8:
        return to_tensor(images)
    floats = isinstance(images, torch.Tensor) and images.is_floating_point()
    if not floats or images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(
            f"images: expected uint8 chips (N, H, W, 3) or a float tensor (N, 3, H, W) in [0, 1], got "
            f"{type(images).__name__} {getattr(images, 'dtype', '')} of shape {tuple(getattr(images, 'shape', ()))}"
        )
    if images.numel() and not (torch.isfinite(images).all() and images.min() >= 0 and images.max() <= 1):
        raise ValueError(
            f"images: expected float pixel values in [0, 1], got range "
            f"[{images.min().item():.4g}, {images.max().item():.4g}]"
        )
    return images


def image_shape(images: ImageBatch) -> tuple[int, int, int, int]:
    """The (N, 3, H, W) shape that :func:`as_float_images` gives, without converting the whole array."""
    shape = tuple(images.shape)
    if len(shape) != 4:
        raise ValueError(f"images: expected 4 dimensions (N, H, W, 3) or (N, 3, H, W), got shape {shape}")
    uint8 = isinstance(images, np.ndarray) and images.dtype == np.uint8
    return (shape[0], 3, shape[1], shape[2]) if uint8 else shape  # type: ignore[return-value]


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"mode={mode!r}: expected 'float' (the paper's, no rounding) or 'uint8' (8-bit photo)")
    return mode


# --------------------------------------------------------------------------------------------------
# x* = clip(x + ε·d) and its storage
# --------------------------------------------------------------------------------------------------


def store(images: torch.Tensor, mode: str) -> torch.Tensor:
    """The image as stored: unchanged in ``float`` mode, rounded to the 8-bit grid in ``uint8`` mode."""
    return torch.round(images * 255.0) / 255.0 if check_mode(mode) == "uint8" else images


def perturb(images: ImageBatch, direction: np.ndarray | torch.Tensor, eps: float, mode: str = "float") -> torch.Tensor:
    """x* = clip(x + ε·d, 0, 1), then stored in ``mode`` (Eqs. 1-4 with the direction of :meth:`SignAttack.signs`)."""
    eps = check_eps(eps)
    check_mode(mode)
    x = as_float_images(images)
    d = torch.as_tensor(direction, device=x.device)
    if tuple(d.shape) != tuple(x.shape):
        raise ValueError(f"direction: expected shape {tuple(x.shape)} like the images, got {tuple(d.shape)}")
    return apply_direction(x, d.to(x.dtype), eps, mode)


def apply_direction(x: torch.Tensor, d: torch.Tensor, eps: float, mode: str) -> torch.Tensor:
    """:func:`perturb` on inputs already checked, with ``d`` in the dtype of ``x``."""
    return store((x + eps * d).clamp_(0.0, 1.0), mode)


# --------------------------------------------------------------------------------------------------
# The attacks
# --------------------------------------------------------------------------------------------------


def check_dim(estimator: VCLUB, features_dim: int, features: str) -> None:
    """A clear error when an estimator (e.g. a checkpoint) was trained on features of another dimension."""
    expected = estimator.dim
    if expected != int(features_dim):
        raise ValueError(f"estimator expects d={expected}, {features} gives d={int(features_dim)}")


def check_mlp(mlp: MLPGenderClassifier, face_model: nn.Module) -> None:
    """A clear error when the MLP classifier was trained on another face model's templates."""
    if mlp.dim != face_model.embedding_dim:
        raise ValueError(f"mlp expects d={mlp.dim}, face model gives d={face_model.embedding_dim}")


class SignAttack(nn.Module):
    """An attack x* = clip(x + ε·d) with a direction d ∈ {-1, 0, 1} computed once for every ε.

    Calling the attack, ``attack(images, y, eps, mode)``, returns the perturbed images (torchattacks style).
    """

    name: str = "attack"
    #: True when an image's direction depends on the other images of its batch (the vCLUB estimate).
    batch_statistic: bool = False

    def signs(self, images: torch.Tensor, y: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        """The direction d (int8, shape of ``images``) for float images in [0, 1] and their labels.

        ``index`` gives each image's position in its dataset (used by seeded random attacks only).
        """
        raise NotImplementedError

    def forward(
        self, images: torch.Tensor, y: torch.Tensor, eps: float, mode: str = "float", index: torch.Tensor | None = None
    ) -> torch.Tensor:
        x = as_float_images(images)
        return perturb(x, self.signs(x, label_tensor(y, n=len(x), min_classes=1, device=x.device), index), eps, mode)


class GradientSignAttack(SignAttack):
    """d = ±sign(∇ₓ objective(x, y)): ``descend`` lowers the objective (MI-FGSM), otherwise it rises (FGSM)."""

    descend: bool = True

    def objective(self, images: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def signs(self, images: torch.Tensor, y: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        x = images.detach().requires_grad_(True)
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(self.objective(x, y), x)
        sign = torch.sign(grad)
        return (-sign if self.descend else sign).to(torch.int8)


class MIFGSM(GradientSignAttack):
    """MI-FGSM (Eq. 1), black box: x* = clip(x − ε·sign(∇ₓ Î_vCLUB(f(x); y))) on the face templates."""

    name = "MI-FGSM"
    batch_statistic = True
    descend = True

    def __init__(self, face_model: nn.Module, estimator: VCLUB) -> None:
        super().__init__()
        check_dim(estimator, face_model.embedding_dim, f"face model {face_model.name!r}")
        self.face_model = face_model
        self.estimator = estimator

    def objective(self, images: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.estimator(self.face_model(images), y)


class MIFGSMMLP(GradientSignAttack):
    """MI-FGSM-MLP (Eq. 2), white box: the vCLUB estimate on the MLP's hidden features f_MLP(f(x))."""

    name = "MI-FGSM-MLP"
    batch_statistic = True
    descend = True

    def __init__(self, face_model: nn.Module, mlp: MLPGenderClassifier, estimator: VCLUB) -> None:
        super().__init__()
        check_dim(estimator, mlp.hidden, "the MLP's hidden features f_MLP")
        check_mlp(mlp, face_model)
        self.face_model = face_model
        self.mlp = mlp
        self.estimator = estimator

    def objective(self, images: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.estimator(self.mlp.features(self.face_model(images)), y)


class FGSM(GradientSignAttack):
    """FGSM (Eq. 3), white box: x* = clip(x + ε·sign(∇ₓ BCE(mlp(f(x)), y))) on the MLP gender classifier."""

    name = "FGSM"
    descend = False

    def __init__(self, face_model: nn.Module, mlp: MLPGenderClassifier) -> None:
        super().__init__()
        check_mlp(mlp, face_model)
        self.face_model = face_model
        self.mlp = mlp

    def objective(self, images: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.mlp.loss(self.face_model(images), y)


class RandomSign(SignAttack):
    """RNDATK (Eq. 4): x* = clip(x + ε·sign·M), M a Bernoulli(0.5) matrix. Eq. 4 reads two ways:

    - ``reading="sign"`` (default): the sign tensor *is* the Bernoulli draw mapped to ±1, d = 2M − 1, so every
      pixel moves by ε like in the other attacks (the same L∞ and L2 budget; a fair random baseline).
    - ``reading="mask"``: a random ±1 sign times a Bernoulli(0.5) mask M, d = sign·M, so about half of the
      pixels move and the other half stay clean.

    Each image's draw comes from its own generator seeded by (``seed``, its index in the dataset), so the
    direction of an image does not depend on the batch it was computed in.
    """

    name = "RNDATK"

    def __init__(self, seed: int, reading: str = "sign") -> None:
        super().__init__()
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed={seed!r}: expected a non-negative integer")
        if reading not in RANDOM_READINGS:
            raise ValueError(f"reading={reading!r}: expected 'sign' (d = 2M - 1) or 'mask' (d = ±1 · M)")
        self.seed = int(seed)
        self.reading = reading

    def signs(self, images: torch.Tensor, y: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        index = torch.arange(len(images)) if index is None else torch.as_tensor(index)
        if index.shape != (len(images),):
            raise ValueError(f"index: expected {len(images)} dataset indices, got shape {tuple(index.shape)}")
        shape = tuple(images.shape[1:])
        out = np.empty((len(images), *shape), dtype=np.int8)
        for row, i in enumerate(index.tolist()):
            rng = np.random.default_rng([self.seed, int(i)])
            m = rng.integers(0, 2, size=shape, dtype=np.int8)
            if self.reading == "sign":
                out[row] = 2 * m - 1
            else:
                out[row] = (2 * rng.integers(0, 2, size=shape, dtype=np.int8) - 1) * m
        return torch.from_numpy(out).to(images.device)


# --------------------------------------------------------------------------------------------------
# Beyond the paper: MI-PGD, the confusion objective, re-estimating q between steps
# --------------------------------------------------------------------------------------------------


def confusion(estimator: VCLUB, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean KL(q(·|z) ‖ π), π the batch's label frequencies: 0 when q predicts the prior for every template.

    Every class must be present in the batch (π_k > 0).
    """
    labels = label_tensor(y, estimator.num_classes, min_classes=estimator.num_classes, device=z.device)
    log_q = estimator.log_probs(z)
    log_prior = label_frequencies(labels, estimator.num_classes, log_q.dtype).log()
    return (log_q.exp() * (log_q - log_prior)).sum(dim=1).mean()


def reestimate(estimator: VCLUB, z: torch.Tensor, y: torch.Tensor, iterations: int, lr: float) -> VCLUB:
    """Fine-tune q in place for ``iterations`` Adam steps of maximum likelihood (vCLUB's learning loss) on (z, y)."""
    z = z.detach()
    optimizer = torch.optim.Adam(estimator.parameters(), lr=lr)
    estimator.train()
    with torch.enable_grad():
        for _ in range(iterations):
            optimizer.zero_grad()
            estimator.learning_loss(z, y).backward()
            optimizer.step()
    return estimator.eval()


def signed_step(adv: torch.Tensor, grad: torch.Tensor, x: torch.Tensor, alpha: float, eps: float) -> torch.Tensor:
    """One PGD step down ``grad``: clip(Π_{‖x' − x‖∞ ≤ ε}(x_t − α·sign(grad)), 0, 1)."""
    adv = adv.detach() - alpha * grad.sign()
    return torch.maximum(torch.minimum(adv, x + eps), x - eps).clamp_(0.0, 1.0)


def check_pgd(eps: float, alpha: float, steps: int) -> tuple[float, float, int]:
    """(ε, α, steps) of a PGD protection: 0 < α ≤ ε and at least one step."""
    eps = check_eps(eps)
    if not 0 < float(alpha) <= eps:
        raise ValueError(f"alpha={alpha!r}: expected a step size with 0 < alpha <= eps={eps!r}")
    if not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps={steps!r}: expected at least 1 step")
    return eps, float(alpha), int(steps)


class MIPGD(nn.Module):
    """MI-PGD: ``steps`` signed-gradient steps of size α, each projected onto the L∞ ball of radius ε and clipped.

    x_{t+1} = clip(Π_{‖x' − x‖∞ ≤ ε}(x_t − α·sign(∇ₓ L(f(x_t), y))), 0, 1), with L either

    - ``"vclub"``: the vCLUB estimate Î(f(x); y) of Eq. 7 (one step with α = ε is MI-FGSM, Eq. 1), or
    - ``"confusion"``: KL(q(·|f(x)) ‖ π), which pushes q towards the label prior π instead of through its
      decision boundary.

    With ``reestimate=True`` the attack is attacker-aware: between steps a copy of q is fine-tuned for
    ``reestimate_iterations`` steps on the batch's current perturbed templates, so each step attacks a q that
    has adapted to the previous ones (the given estimator is never modified). Calling the attack,
    ``attack(images, y)``, returns float images in [0, 1] (see :func:`store` for 8-bit storage).
    """

    name = "MI-PGD"
    batch_statistic = True

    def __init__(
        self,
        face_model: nn.Module,
        estimator: VCLUB,
        eps: float,
        alpha: float,
        steps: int,
        objective: str = "vclub",
        reestimate: bool = False,
        reestimate_iterations: int = 20,
        reestimate_lr: float = 1e-3,
    ) -> None:
        super().__init__()
        check_dim(estimator, face_model.embedding_dim, f"face model {face_model.name!r}")
        self.eps, self.alpha, self.steps = check_pgd(eps, alpha, steps)
        if objective not in PGD_OBJECTIVES:
            raise ValueError(f"objective={objective!r}: expected one of {PGD_OBJECTIVES}")
        if reestimate and (int(reestimate_iterations) < 1 or not reestimate_lr > 0):
            raise ValueError(
                f"reestimate_iterations={reestimate_iterations!r}, reestimate_lr={reestimate_lr!r}: "
                "expected at least 1 iteration and a positive learning rate"
            )
        self.face_model = face_model
        self.estimator = estimator
        self.objective = objective
        self.reestimate = reestimate
        self.reestimate_iterations = int(reestimate_iterations)
        self.reestimate_lr = float(reestimate_lr)

    def loss(self, estimator: VCLUB, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The objective the steps lower."""
        return estimator(z, y) if self.objective == "vclub" else confusion(estimator, z, y)

    def forward(self, images: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x = as_float_images(images).detach()
        y = label_tensor(y, n=len(x), min_classes=1, device=x.device)
        q = copy.deepcopy(self.estimator) if self.reestimate else self.estimator
        adv = x.clone()
        for step in range(self.steps):
            adv.requires_grad_(True)
            with torch.enable_grad():
                (grad,) = torch.autograd.grad(self.loss(q, self.face_model(adv), y), adv)
            adv = signed_step(adv, grad, x, self.alpha, self.eps)
            if self.reestimate and step < self.steps - 1:
                with torch.no_grad():
                    z = self.face_model(adv)
                reestimate(q, z, y, self.reestimate_iterations, self.reestimate_lr)
        return adv


class ErasurePGD(nn.Module):
    """PGD towards the erased template: ``steps`` signed-gradient steps of size α on ‖f(x') − r(f(x))‖², each
    projected onto the L∞ ball of radius ε and clipped, where r is a :class:`~mifgsm_lib.erasure.LinearEraser`
    fitted on clean templates (LEACE). The target keeps every component of the clean template but the attribute's
    linear one, so identity, not the attribute, holds the template in place.

    Unlike MI-FGSM it needs no label at protection time: the eraser learned the attribute's statistics once, on
    clean labelled templates. ``attack(images, y)`` ignores ``y`` (the signature of the other protections) and
    returns float images in [0, 1].

    ``expect``: processings the protected photo may meet (differentiable maps of float images, e.g.
    :func:`mifgsm_lib.robustness.differentiable`). Each step then descends the expectation over transformation
    (EOT, Athalye et al., ICML 2018) Σ_t ‖f(t(x')) − r(f(x))‖² over the identity and every map of ``expect``: one
    face-model gradient per map and step.
    """

    name = "Erasure-PGD"

    def __init__(self, face_model: nn.Module, eraser: LinearEraser, eps: float, alpha: float, steps: int,
                 expect: Sequence[Callable[[torch.Tensor], torch.Tensor]] = ()) -> None:
        super().__init__()
        check_is_fitted(eraser, "basis_")
        if isinstance(expect, (str, bytes)) or not all(callable(t) for t in expect):
            raise ValueError(f"expect={expect!r}: expected a sequence of maps of float images (the processings)")
        if eraser.n_features_in_ != face_model.embedding_dim:
            raise ValueError(f"eraser: fitted on {eraser.n_features_in_}-D templates; face model "
                             f"{face_model.name!r} gives {face_model.embedding_dim}-D ones")
        self.eps, self.alpha, self.steps = check_pgd(eps, alpha, steps)
        self.face_model, self.eraser = face_model, eraser
        self.views: tuple[Callable[[torch.Tensor], torch.Tensor], ...] = (_identity, *expect)

    def targets(self, x: torch.Tensor) -> torch.Tensor:
        """r(f(x)): the erased clean templates."""
        with torch.no_grad():
            z = self.face_model(x).double().cpu().numpy()
        return torch.from_numpy(self.eraser.transform(z)).to(device=x.device, dtype=x.dtype)

    def forward(self, images: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        x = as_float_images(images).detach()
        target = self.targets(x)
        adv = x.clone()
        for _ in range(self.steps):
            adv.requires_grad_(True)
            with torch.enable_grad():
                loss = sum((self.face_model(view(adv)) - target).square().sum() for view in self.views)
                (grad,) = torch.autograd.grad(loss, adv)
            adv = signed_step(adv, grad, x, self.alpha, self.eps)
        return adv


def _identity(x: torch.Tensor) -> torch.Tensor:
    """The photo as stored, the first view of every expectation."""
    return x
