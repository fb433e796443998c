"""Protect a set of images and embed them: the one loop around every attack and protection.

Two steps, whatever the method:

1. :func:`directions`: the per-pixel direction d of a one-step attack (Eqs. 1-4), one gradient per image,
   computed once for every ε, in seeded stratified batches (the vCLUB estimate of Eq. 7 is a batch statistic:
   every batch must hold both genders);
2. :func:`embed_views`: for each batch of images, the protected images (``protect``: identity for one-step
   attacks, MI-PGD's steps for the iterative ones) are turned into each *view* (x + ε·d at one ε; the image
   stored as floats, as an 8-bit photo, or processed by JPEG, blur...) and embedded. A view whose images equal
   those of the previous view (or the clean images) takes their templates without a forward pass: in 8-bit
   storage neighbouring ε of a fine grid round to the same image, and below half a grey level to the clean one.

:func:`embed_perturbed` (one-step attacks over ε) and :func:`embed_protected` (a protection in several views)
are the two uses of :func:`embed_views`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from mifgsm_lib.attacks import MI_BATCH_SIZE, ImageBatch, SignAttack, apply_direction, as_float_images, check_mode, image_shape
from mifgsm_lib.config import resolve_device
from mifgsm_lib.faces.models import embed
from mifgsm_lib.mi import stratified_batches
from mifgsm_lib.nets import label_tensor
from mifgsm_lib.progress import bar
from mifgsm_lib.validation import check_eps, check_positive_int

#: ``protect(x, y, idx)``: the protected float images of a batch ``x`` with labels ``y``; ``idx`` are the
#: batch's positions in the whole set (for per-image data such as precomputed directions).
Protect = Callable[[torch.Tensor, torch.Tensor, np.ndarray], torch.Tensor]
#: ``view(images, idx)``: what is embedded of a batch of protected images (stored, perturbed at one ε, processed).
View = Callable[[torch.Tensor, np.ndarray], torch.Tensor]


def check_batches(y: np.ndarray, batches: list[np.ndarray], batch_size: int) -> None:
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


def directions(
    attack: SignAttack,
    images: ImageBatch,
    y: np.ndarray | torch.Tensor,
    batch_size: int = MI_BATCH_SIZE,
    device: str | torch.device = "cpu",
    seed: int = 0,
    progress: bool = True,
    index: np.ndarray | None = None,
) -> np.ndarray:
    """The direction d of every image (int8, (N, 3, H, W)), computed once for every ε.

    ``images`` are uint8 chips (N, H, W, 3) or float images (N, 3, H, W) in [0, 1]. Batches are stratified
    by label with a seeded permutation (:func:`mifgsm_lib.mi.stratified_batches`); the MI attacks need both
    genders in every batch since the vCLUB estimate is a batch statistic. ``index``: each image's index in its
    dataset (default: its position in ``images``), which seeds the random attack's draw.
    """
    n, c, h, w = image_shape(images)
    y_np = label_tensor(y, n=n, min_classes=1).numpy()
    index = np.arange(n) if index is None else np.asarray(index)
    if index.shape != (n,):
        raise ValueError(f"index: expected {n} dataset indices, one per image, got shape {index.shape}")
    batches = stratified_batches(y_np, batch_size, seed)
    if attack.batch_statistic:
        check_batches(y_np, batches, batch_size)
    dev = resolve_device(str(device))
    attack.to(dev, memory_format=torch.channels_last).eval()  # NHWC: a faster backward through the convolutions
    out = np.empty((n, c, h, w), dtype=np.int8)
    for idx in bar(batches, desc=f"{attack.name} directions", disable=not progress):
        x = as_float_images(images[idx]).to(dev, memory_format=torch.channels_last)
        yb = torch.from_numpy(y_np[idx]).to(dev)
        out[idx] = attack.signs(x, yb, torch.from_numpy(index[idx])).cpu().numpy()
    return out


def embed_views(
    face_model: nn.Module,
    images: ImageBatch,
    views: Mapping[Hashable, View],
    batches: Sequence[np.ndarray],
    protect: Protect | None = None,
    y: np.ndarray | None = None,
    clean: np.ndarray | None = None,
    device: str | torch.device = "cpu",
    progress: bool = True,
    desc: str = "protect + embed",
) -> dict[Hashable, np.ndarray]:
    """Templates of every view of the protected images: one array (N, d) per key of ``views``.

    For each batch (positions into ``images``): ``protect(x, y, idx)`` runs once (none: the images as they are),
    then each view in order is embedded, except the images equal to those of the previous view (for the first
    view: the clean images, when their templates ``clean`` are given), which take that view's templates.
    """
    n = image_shape(images)[0]
    if clean is not None and np.shape(clean) != (n, face_model.embedding_dim):
        raise ValueError(f"clean: expected ({n}, {face_model.embedding_dim}) templates of the clean images, got shape "
                         f"{np.shape(clean)}")
    if protect is not None and y is None:
        raise ValueError("y: the labels are required with protect (the protections need them)")
    dev = resolve_device(str(device))
    face_model.to(dev, memory_format=torch.channels_last).eval()
    out = {key: np.empty((n, face_model.embedding_dim), dtype=np.float32) for key in views}
    for idx in bar(batches, desc=desc, disable=not progress):
        x = as_float_images(images[idx]).to(dev, memory_format=torch.channels_last)
        if protect is not None:
            x = protect(x, torch.from_numpy(np.asarray(y)[idx]).to(dev), idx).detach()
        previous, previous_z = (x, clean[idx]) if clean is not None else (None, None)
        for key, view in views.items():
            shown = view(x, idx)
            changed = (np.ones(len(idx), dtype=bool) if previous is None
                       else (shown != previous).flatten(1).any(dim=1).cpu().numpy())
            if not changed.all():
                out[key][idx[~changed]] = previous_z[~changed]
            if changed.any():
                fresh = shown[torch.from_numpy(changed).to(dev)]
                out[key][idx[changed]] = embed(face_model, fresh, batch_size=len(fresh), device=dev, progress=False)
            previous, previous_z = shown, out[key][idx]
    return out


def consecutive_batches(n: int, batch_size: int) -> list[np.ndarray]:
    """Positions 0..n-1 in consecutive batches of ``batch_size`` (the last one shorter)."""
    check_positive_int(batch_size, "batch_size")
    return [np.arange(start, min(start + batch_size, n)) for start in range(0, n, batch_size)]


def embed_perturbed(
    face_model: nn.Module,
    images: ImageBatch,
    direction: np.ndarray,
    eps_list: Sequence[float],
    mode: str = "float",
    batch_size: int = MI_BATCH_SIZE,
    device: str | torch.device = "cpu",
    progress: bool = True,
    clean: np.ndarray | None = None,
) -> dict[float, np.ndarray]:
    """Templates f(x*) of x* = clip(x + ε·d) stored in ``mode``, for each ε, reusing one direction per image.

    The ε are visited in increasing order, so an image whose stored x* equals its x* at the previous ε is not
    embedded again; with ``clean``, the templates f(x) of the unperturbed images, an x* equal to x (``uint8``
    below half a grey level, or d = 0) takes its clean template exactly.
    """
    eps_values = sorted({check_eps(e) for e in eps_list})
    check_mode(mode)
    if tuple(direction.shape) != image_shape(images):
        raise ValueError(
            f"direction: expected shape {image_shape(images)} like the images, got {tuple(direction.shape)}"
        )
    dev = resolve_device(str(device))

    def at(eps: float) -> View:
        return lambda x, idx: apply_direction(x, torch.as_tensor(direction[idx]).to(dev, x.dtype,
                                                                               memory_format=torch.channels_last),
                                         eps, mode)

    views = {e: at(e) for e in eps_values}
    found = embed_views(face_model, images, views, consecutive_batches(image_shape(images)[0], batch_size),
                        clean=clean, device=dev, progress=progress, desc="re-embedding per ε")
    return {e: found[e] for e in eps_values}


def embed_protected(
    face_model: nn.Module,
    protect: Protect,
    images: ImageBatch,
    y: np.ndarray | torch.Tensor,
    views: Mapping[Hashable, Callable[[torch.Tensor], torch.Tensor]],
    batch_size: int = MI_BATCH_SIZE,
    device: str | torch.device = "cpu",
    seed: int = 0,
    progress: bool = True,
    desc: str = "protect + embed",
) -> dict[Hashable, np.ndarray]:
    """Templates of protected images in each view (image -> image: storage, JPEG...): ``protect`` runs once per
    batch, the batches stratified by label as the one-step attacks' directions
    (:func:`mifgsm_lib.mi.stratified_batches`)."""
    n = image_shape(images)[0]
    y_np = label_tensor(y, n=n, min_classes=1).numpy()
    return embed_views(face_model, images, {k: (lambda x, idx, v=v: v(x)) for k, v in views.items()},
                       stratified_batches(y_np, batch_size, seed), protect=protect, y=y_np, device=device,
                       progress=progress, desc=desc)
