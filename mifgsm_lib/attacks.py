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

The direction does not depend on ε, so it is computed once per image (:func:`compute_directions`) and
every ε of a sweep only re-embeds x + ε·d (:func:`embed_perturbed`). ε is on the [0, 1] pixel scale.

The vCLUB estimate (Eq. 7) is a batch statistic: its gradient for one image depends on the labels of the
other images of its batch, and a batch of one class has no gradient at all. :func:`compute_directions`
therefore splits the images into seeded, stratified batches that each hold every class in its overall
proportion.

Two storage modes (:func:`perturb`): ``float`` is the paper's (no rounding); ``uint8`` rounds the
perturbed image to 8 bits as a stored photo would be, so a perturbation below half a grey level (0.5/255)
vanishes and neighbouring ε can give the same image.

:class:`MIPGD` goes beyond the paper: several steps of size α inside the L∞ ball of radius ε, with either
the vCLUB objective or a "confusion" objective, optionally re-estimating q between steps.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from mifgsm_lib.config import resolve_device
from mifgsm_lib.face_models import embed, to_tensor
from mifgsm_lib.classifiers import MLPGenderClassifier
from mifgsm_lib.mi import VCLUB, check_labels, label_frequencies
from mifgsm_lib.progress import bar

#: How the perturbed image is stored: the paper's float image, or rounded to 8 bits like a photo.
MODES = ("float", "uint8")
#: The readings of Eq. 4 (see :class:`RandomSign`).
RANDOM_READINGS = ("sign", "mask")
#: The objectives of :class:`MIPGD`.
PGD_OBJECTIVES = ("vclub", "confusion")

ImageBatch = np.ndarray | torch.Tensor
Transform = Callable[[torch.Tensor], torch.Tensor]


# --------------------------------------------------------------------------------------------------
# Inputs: images, labels, ε
# --------------------------------------------------------------------------------------------------


def as_float_images(images: ImageBatch) -> torch.Tensor:
    """Images as a float tensor (N, 3, H, W) in [0, 1].

    Accepts uint8 chips (N, H, W, 3) (NumPy, see :func:`mifgsm_lib.face_models.to_tensor`) and float tensors
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


def as_labels(y: np.ndarray | torch.Tensor | Sequence[int], n: int) -> torch.Tensor:
    """Integer class labels as a long tensor of length ``n``."""
    t = y if isinstance(y, torch.Tensor) else torch.as_tensor(np.asarray(y))
    if t.ndim != 1 or len(t) != n:
        raise ValueError(f"y: expected {n} labels (one per image) in a 1-D array, got shape {tuple(t.shape)}")
    if t.is_complex() or (t.is_floating_point() and not torch.equal(t, t.round())):
        raise ValueError("y: expected integer class labels (e.g. 0 = male, 1 = female), got non-integer values")
    t = t.long()
    if len(t) and t.min() < 0:
        raise ValueError(f"y: expected non-negative class labels, got {int(t.min())}")
    return t


def check_eps(eps: float) -> float:
    """ε as a float; a clear error unless 0 ≤ ε ≤ 1 (the [0, 1] pixel scale)."""
    try:
        value = float(eps)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"eps={eps!r}: expected a number in [0, 1] on the [0, 1] pixel scale") from exc
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"eps={eps!r}: expected a number in [0, 1] on the [0, 1] pixel scale")
    return value


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"mode={mode!r}: expected 'float' (the paper's, no rounding) or 'uint8' (8-bit photo)")
    return mode


def eps_grid_default() -> list[float]:
    """The paper's default range: ε = 0.05 to 0.3 in steps of 0.05 (Sec. 6.2.1)."""
    return [round(0.05 * k, 10) for k in range(1, 7)]


def eps_grid_sensitive(n_steps: int, max_eps: float = 0.03) -> list[float]:
    """The sensitive range of Sec. 6.2.2: ``n_steps`` uniform steps up to ``max_eps``, i.e. max_eps·k/n, k = 1..n."""
    if not isinstance(n_steps, (int, np.integer)) or n_steps < 1:
        raise ValueError(f"n_steps={n_steps!r}: expected a positive integer (the paper uses 50)")
    if check_eps(max_eps) == 0.0:
        raise ValueError(f"max_eps={max_eps!r}: expected a positive perturbation level")
    return [round(max_eps * k / n_steps, 12) for k in range(1, int(n_steps) + 1)]


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
    return _perturbed(x, d.to(x.dtype), eps, mode)


def _perturbed(x: torch.Tensor, d: torch.Tensor, eps: float, mode: str) -> torch.Tensor:
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
        return perturb(x, self.signs(x, as_labels(y, len(x)).to(x.device), index), eps, mode)


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
# Whole datasets: stratified batches, directions, re-embedding
# --------------------------------------------------------------------------------------------------


def check_batch_size(batch_size: int) -> int:
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r}: expected a positive integer")
    return int(batch_size)


def stratified_batches(y: np.ndarray, batch_size: int, seed: int) -> list[np.ndarray]:
    """Indices split into ceil(N / batch_size) batches, each holding every class in its overall proportion.

    Each class is shuffled with a seeded permutation and dealt evenly over the batches, so a batch has
    about ``batch_size`` images (a class smaller than the number of batches leaves some batches without it).
    """
    check_batch_size(batch_size)
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    n_batches = max(1, math.ceil(len(y) / batch_size))
    per_class = [np.array_split(rng.permutation(np.flatnonzero(y == c)), n_batches) for c in np.unique(y)]
    batches = [np.sort(np.concatenate([chunks[b] for chunks in per_class])) for b in range(n_batches)]
    return [b for b in batches if len(b)]


def _check_batches(y: np.ndarray, batches: list[np.ndarray], batch_size: int) -> None:
    """The vCLUB gradient needs at least two classes in the whole set and in every batch."""
    classes, counts = np.unique(y, return_counts=True)
    if len(classes) < 2:
        raise ValueError(
            f"y: all {len(y)} images have label {classes.tolist()}; "
            "the MI gradient (Eq. 7) needs at least two classes (both genders)"
        )
    for b in batches:
        if len(np.unique(y[b])) < 2:
            raise ValueError(
                f"batch_size={batch_size}: too small for the class counts "
                f"{dict(zip(classes.tolist(), counts.tolist()))}; some batch would hold one class only "
                f"(use batch_size >= {math.ceil(len(y) / counts.min())})"
            )


def compute_directions(
    attack: SignAttack,
    images: ImageBatch,
    y: np.ndarray | torch.Tensor,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    seed: int = 0,
    progress: bool = True,
    index: np.ndarray | None = None,
) -> np.ndarray:
    """The direction d of every image (int8, (N, 3, H, W)), computed once for every ε.

    ``images`` are uint8 chips (N, H, W, 3) or float images (N, 3, H, W) in [0, 1]. Batches are stratified
    by label with a seeded permutation (:func:`stratified_batches`); the MI attacks need both genders in
    every batch since the vCLUB estimate is a batch statistic. ``index``: each image's index in its dataset
    (default: its position in ``images``), which seeds the random attack's draw.
    """
    n, c, h, w = image_shape(images)
    y_np = as_labels(y, n).numpy()
    index = np.arange(n) if index is None else np.asarray(index)
    if index.shape != (n,):
        raise ValueError(f"index: expected {n} dataset indices, one per image, got shape {index.shape}")
    batches = stratified_batches(y_np, batch_size, seed)
    if attack.batch_statistic:
        _check_batches(y_np, batches, batch_size)
    dev = resolve_device(str(device))
    attack.to(dev, memory_format=torch.channels_last).eval()  # NHWC: a faster backward through the convolutions
    out = np.empty((n, c, h, w), dtype=np.int8)
    for idx in bar(batches, desc=f"{attack.name} directions", disable=not progress):
        x = as_float_images(images[idx]).to(dev, memory_format=torch.channels_last)
        yb = torch.from_numpy(y_np[idx]).to(dev)
        out[idx] = attack.signs(x, yb, torch.from_numpy(index[idx])).cpu().numpy()
    return out


def embed_perturbed(
    face_model: nn.Module,
    images: ImageBatch,
    direction: np.ndarray,
    eps_list: Sequence[float],
    mode: str = "float",
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    progress: bool = True,
    transform: Transform | None = None,
    clean: np.ndarray | None = None,
) -> dict[float, np.ndarray]:
    """Templates f(x*) of x* = clip(x + ε·d) for each ε, reusing one direction per image (no gradient).

    The ε are visited in increasing order and an image whose stored x* equals its x* at the previous ε is not
    embedded again: in ``uint8`` mode neighbouring ε of a fine grid mostly round to the same image (the
    sensitive range's 50 steps up to 0.03 span under 8 grey levels). With ``clean``, the templates f(x) of the
    unperturbed images, an x* equal to x (``uint8`` below half a grey level, or d = 0) takes its clean template
    exactly instead of a second forward pass. ``transform`` (e.g. from :mod:`mifgsm_lib.robustness`, acting on
    each image alone) processes the stored images before embedding.
    """
    eps_values = [check_eps(e) for e in eps_list]
    check_mode(mode)
    n = image_shape(images)[0]
    if tuple(direction.shape) != image_shape(images):
        raise ValueError(
            f"direction: expected shape {image_shape(images)} like the images, got {tuple(direction.shape)}"
        )
    if clean is not None and (transform is not None or np.shape(clean) != (n, face_model.embedding_dim)):
        raise ValueError(f"clean: expected ({n}, {face_model.embedding_dim}) templates of the unprocessed images "
                         f"(and no transform), got shape {np.shape(clean)}")
    check_batch_size(batch_size)
    dev = resolve_device(str(device))
    face_model.eval()
    out = {e: np.empty((n, face_model.embedding_dim), dtype=np.float32) for e in eps_values}
    for start in bar(range(0, n, batch_size), desc="re-embedding per ε", disable=not progress):
        stop = min(start + batch_size, n)
        x = as_float_images(images[start:stop]).to(dev, memory_format=torch.channels_last)
        d = torch.as_tensor(direction[start:stop]).to(dev, x.dtype, memory_format=torch.channels_last)
        previous, previous_z = (x, clean[start:stop]) if clean is not None else (None, None)
        for e in sorted(out):
            adv = _perturbed(x, d, e, mode)
            changed = np.ones(len(adv), dtype=bool) if previous is None else (
                (adv != previous).flatten(1).any(dim=1).cpu().numpy())
            if not changed.all():
                out[e][start:stop][~changed] = previous_z[~changed]
            if changed.any():
                fresh = adv[torch.from_numpy(changed).to(dev)]
                out[e][start:stop][changed] = embed(face_model, transform(fresh) if transform else fresh,
                                                    batch_size=len(fresh), device=dev, progress=False)
            previous, previous_z = adv, out[e][start:stop]
    return out


# --------------------------------------------------------------------------------------------------
# Beyond the paper: MI-PGD, the confusion objective, re-estimating q between steps
# --------------------------------------------------------------------------------------------------


def confusion(estimator: VCLUB, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean KL(q(·|z) ‖ π), π the batch's label frequencies: 0 when q predicts the prior for every template.

    Every class must be present in the batch (π_k > 0).
    """
    labels = check_labels(y, estimator.num_classes, min_classes=estimator.num_classes).to(z.device)
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
        self.eps = check_eps(eps)
        self.alpha = float(alpha)
        if not 0 < self.alpha <= self.eps:
            raise ValueError(f"alpha={alpha!r}: expected a step size with 0 < alpha <= eps={eps!r}")
        if not isinstance(steps, (int, np.integer)) or steps < 1:
            raise ValueError(f"steps={steps!r}: expected at least 1 step")
        if objective not in PGD_OBJECTIVES:
            raise ValueError(f"objective={objective!r}: expected one of {PGD_OBJECTIVES}")
        if reestimate and (int(reestimate_iterations) < 1 or not reestimate_lr > 0):
            raise ValueError(
                f"reestimate_iterations={reestimate_iterations!r}, reestimate_lr={reestimate_lr!r}: "
                "expected at least 1 iteration and a positive learning rate"
            )
        self.face_model = face_model
        self.estimator = estimator
        self.steps = int(steps)
        self.objective = objective
        self.reestimate = reestimate
        self.reestimate_iterations = int(reestimate_iterations)
        self.reestimate_lr = float(reestimate_lr)

    def loss(self, estimator: VCLUB, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The objective the steps lower."""
        return estimator(z, y) if self.objective == "vclub" else confusion(estimator, z, y)

    def forward(self, images: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x = as_float_images(images).detach()
        y = as_labels(y, len(x)).to(x.device)
        q = copy.deepcopy(self.estimator) if self.reestimate else self.estimator
        adv = x.clone()
        for step in range(self.steps):
            adv.requires_grad_(True)
            with torch.enable_grad():
                (grad,) = torch.autograd.grad(self.loss(q, self.face_model(adv), y), adv)
            adv = adv.detach() - self.alpha * grad.sign()
            adv = torch.maximum(torch.minimum(adv, x + self.eps), x - self.eps).clamp_(0.0, 1.0)
            if self.reestimate and step < self.steps - 1:
                with torch.no_grad():
                    z = self.face_model(adv)
                reestimate(q, z, y, self.reestimate_iterations, self.reestimate_lr)
        return adv


def embed_protected(
    face_model: nn.Module,
    protect: Callable[[torch.Tensor, torch.Tensor, np.ndarray], torch.Tensor],
    images: ImageBatch,
    y: np.ndarray | torch.Tensor,
    views: dict[str, Transform],
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    seed: int = 0,
    progress: bool = True,
    desc: str = "protect + embed",
) -> dict[str, np.ndarray]:
    """Templates of protected images, ``protect(x, y, index)`` run once per stratified batch and each of its
    ``views`` (storage, JPEG, ...: image -> image) embedded; one array of templates per view."""
    n = image_shape(images)[0]
    y_np = as_labels(y, n).numpy()
    dev = resolve_device(str(device))
    face_model.to(dev, memory_format=torch.channels_last).eval()
    out = {name: np.empty((n, face_model.embedding_dim), dtype=np.float32) for name in views}
    for idx in bar(stratified_batches(y_np, batch_size, seed), desc=desc, disable=not progress):
        x = as_float_images(images[idx]).to(dev, memory_format=torch.channels_last)
        protected = protect(x, torch.from_numpy(y_np[idx]).to(dev), idx).detach()
        for name, view in views.items():
            out[name][idx] = embed(face_model, view(protected), batch_size=len(idx), device=dev, progress=False)
    return out


def embed_iterative(
    attack: MIPGD,
    images: ImageBatch,
    y: np.ndarray | torch.Tensor,
    mode: str = "float",
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    seed: int = 0,
    progress: bool = True,
    transform: Transform | None = None,
) -> np.ndarray:
    """Templates f(x*) of MI-PGD's images for a whole set, over the same stratified batches as the one-step attacks."""
    check_mode(mode)
    y_np = as_labels(y, image_shape(images)[0]).numpy()
    _check_batches(y_np, stratified_batches(y_np, batch_size, seed), batch_size)
    attack.to(resolve_device(str(device)), memory_format=torch.channels_last)

    def view(adv: torch.Tensor) -> torch.Tensor:
        stored = store(adv, mode)
        return transform(stored) if transform else stored

    return embed_protected(attack.face_model, lambda x, yb, _idx: attack(x, yb), images, y_np, {"x": view},
                           batch_size, device, seed, progress, desc=f"{attack.name} ({attack.steps} steps)")["x"]
