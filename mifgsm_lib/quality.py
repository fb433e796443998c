"""Image quality of a perturbation: PSNR and SSIM against the clean image (the chapter "Attacks")."""

from __future__ import annotations

from typing import Any

import numpy as np
from skimage.metrics import structural_similarity

from mifgsm_lib.progress import bar


def _as_image_pair(clean: Any, perturbed: Any, data_range: float) -> tuple[np.ndarray, np.ndarray]:
    """Two float image batches (N, 3, H, W) of one shape with values in [0, data_range]."""
    a, b = np.asarray(clean, dtype=np.float64), np.asarray(perturbed, dtype=np.float64)
    for name, im in (("clean", a), ("perturbed", b)):
        if im.ndim != 4 or im.shape[1] != 3:
            raise ValueError(f"{name}: expected images of shape (N, 3, H, W), got {im.shape}")
        if not np.all(np.isfinite(im)) or im.min() < 0 or im.max() > data_range:
            raise ValueError(f"{name}: expected finite values in [0, {data_range}]")
    if a.shape != b.shape:
        raise ValueError(f"clean and perturbed: expected the same shape, got {a.shape} and {b.shape}")
    return a, b


def psnr(clean: np.ndarray, perturbed: np.ndarray, data_range: float = 1.0) -> np.ndarray:
    """PSNR per image, 10 log10(data_range^2 / MSE) dB (inf where identical); images (N, 3, H, W)."""
    a, b = _as_image_pair(clean, perturbed, data_range)
    mse = np.mean((a - b) ** 2, axis=(1, 2, 3))
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(data_range**2 / mse)


def ssim(clean: np.ndarray, perturbed: np.ndarray, data_range: float = 1.0, progress: bool = True) -> np.ndarray:
    """SSIM per image (skimage ``structural_similarity``, channels averaged); images (N, 3, H, W)."""
    a, b = _as_image_pair(clean, perturbed, data_range)
    if min(a.shape[2:]) < 7:
        raise ValueError(f"clean: expected images of at least 7x7 (the SSIM window), got {a.shape[2:]}")
    return np.array(
        [
            structural_similarity(a[i], b[i], channel_axis=0, data_range=data_range)
            for i in bar(range(a.shape[0]), desc="SSIM", disable=not progress)
        ]
    )
