"""How a protected image is seen: stored as floats or as an 8-bit photo, or processed by an attacker before
embedding (beyond the paper).

A protection that vanishes under a JPEG re-compression at quality 90 is no protection: the chapter
"Beyond one step" embeds every protection's images in each *view* of :data:`VIEWS` (:func:`stored_view`) and
evaluates setting B and the EER again.

Every transform is deterministic and takes either uint8 chips (N, H, W, 3), returned as uint8 chips, or
float images (N, 3, H, W) in [0, 1], returned as float images on the same device.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.transforms.functional import gaussian_blur as _tv_gaussian_blur

from mifgsm_lib.attacks import MODES, ImageBatch, as_float_images, store


def _to_uint8_chips(images: torch.Tensor) -> np.ndarray:
    """Float images (N, 3, H, W) in [0, 1] rounded to uint8 chips (N, H, W, 3)."""
    return torch.round(images.detach() * 255.0).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def _like_input(result: torch.Tensor, images: ImageBatch) -> ImageBatch:
    """``result`` (float, NCHW) in the type of ``images``: uint8 chips stay uint8 chips (rounded)."""
    return _to_uint8_chips(result) if isinstance(images, np.ndarray) else result


def jpeg(images: ImageBatch, quality: int) -> ImageBatch:
    """Re-compress each image as a JPEG of ``quality`` (PIL, in memory, 4:2:0 chroma as PIL's default)."""
    if not isinstance(quality, (int, np.integer)) or not 1 <= quality <= 100:
        raise ValueError(f"quality={quality!r}: expected an integer JPEG quality in 1..100")
    x = as_float_images(images)
    decoded = []
    for chip in _to_uint8_chips(x):
        buffer = io.BytesIO()
        Image.fromarray(chip).save(buffer, format="JPEG", quality=int(quality))
        buffer.seek(0)
        decoded.append(np.asarray(Image.open(buffer).convert("RGB")))
    result = as_float_images(np.stack(decoded)).to(device=x.device, dtype=x.dtype)
    return _like_input(result, images)


def gaussian_blur(images: ImageBatch, sigma: float) -> ImageBatch:
    """Blur each channel with a Gaussian of standard deviation ``sigma`` pixels (kernel ±3σ, reflected borders)."""
    if not (isinstance(sigma, (int, float)) and math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma={sigma!r}: expected a positive blur width in pixels")
    x = as_float_images(images)
    kernel = 2 * math.ceil(3 * sigma) + 1
    return _like_input(_tv_gaussian_blur(x, [kernel, kernel], [float(sigma), float(sigma)]), images)


def resize_down_up(images: ImageBatch, factor: float) -> ImageBatch:
    """Shrink by ``factor`` (antialiased bilinear) and resize back to the original size (bilinear)."""
    if not (isinstance(factor, (int, float)) and 0 < factor < 1):
        raise ValueError(f"factor={factor!r}: expected a shrink factor strictly between 0 and 1")
    x = as_float_images(images)
    h, w = x.shape[-2:]
    small = (max(1, round(h * factor)), max(1, round(w * factor)))
    down = F.interpolate(x, size=small, mode="bilinear", antialias=True, align_corners=False)
    up = F.interpolate(down, size=(h, w), mode="bilinear", align_corners=False).clamp_(0.0, 1.0)
    return _like_input(up, images)


#: The processing an image meets after protection (JPEG at three qualities, a blur, a halving resize), by the
#: names the robustness table of the chapter "Beyond one step" uses.
TRANSFORMS: dict[str, Callable[[ImageBatch], ImageBatch]] = {
    "jpeg90": partial(jpeg, quality=90),
    "jpeg75": partial(jpeg, quality=75),
    "jpeg50": partial(jpeg, quality=50),
    "blur1": partial(gaussian_blur, sigma=1.0),
    "resize0.5": partial(resize_down_up, factor=0.5),
}


#: Every view of a protected image: the paper's float image, the 8-bit photo, and the photo processed.
VIEWS: tuple[str, ...] = (*MODES, *TRANSFORMS)


#: The processings Erasure-PGD (EOT) expects (:func:`differentiable`): one of each kind, JPEG at the middle quality.
EXPECTED: tuple[str, ...] = ("jpeg75", "blur1", "resize0.5")


def differentiable(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The processing ``name`` of :data:`TRANSFORMS` as a map of float images that gradients pass through: blur
    and resize are differentiable as they are; JPEG is not, so its gradient is the identity's (a straight-through
    estimator: the forward pass is the JPEG, the backward pass skips it)."""
    if name not in TRANSFORMS:
        raise ValueError(f"name={name!r}: expected a processing from {list(TRANSFORMS)}")
    transform = TRANSFORMS[name]
    if not name.startswith("jpeg"):
        return transform

    def straight_through(x: torch.Tensor) -> torch.Tensor:
        return x + (transform(x.detach()) - x).detach()
    return straight_through


def check_views(views: Sequence[str]) -> list[str]:
    """Views: ``float`` (the paper's), ``uint8`` (an 8-bit photo) or a name of :data:`TRANSFORMS` (the 8-bit photo
    processed); distinct, in the given order."""
    if isinstance(views, str) or not views or any(v not in VIEWS for v in views):
        raise ValueError(f"views={views!r}: expected a non-empty list of names from {list(VIEWS)}")
    return list(dict.fromkeys(views))


def stored_view(images: torch.Tensor, view: str) -> torch.Tensor:
    """Protected float images as seen in ``view``: unchanged, rounded to 8 bits, or rounded then processed."""
    if view == "float":
        return images
    photo = store(images, "uint8")
    return photo if view == "uint8" else TRANSFORMS[view](photo)
