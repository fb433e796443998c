"""Tests of the processing an attacker may apply before embedding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mifgsm_lib import robustness
from mifgsm_lib.attacks import as_float_images


@pytest.fixture(scope="module")
def chips() -> np.ndarray:
    """Smooth uint8 images with some texture, like face chips (JPEG is meant for such images)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:48, 0:48] / 48.0
    base = np.stack([np.sin(3 * xx + c) * np.cos(2 * yy - c) for c in range(3)], axis=-1)
    images = 127.5 + 90 * base[None] + rng.normal(0, 12, size=(4, 48, 48, 3))
    return np.clip(images, 0, 255).astype(np.uint8)


def test_registry_has_the_processing_views() -> None:
    assert set(robustness.TRANSFORMS) == {"jpeg90", "jpeg75", "jpeg50", "blur1", "resize0.5"}


@pytest.mark.parametrize("name", sorted(robustness.TRANSFORMS))
def test_transforms_are_deterministic_and_keep_types(name: str, chips: np.ndarray) -> None:
    transform = robustness.TRANSFORMS[name]
    out = transform(chips)
    assert isinstance(out, np.ndarray) and out.dtype == np.uint8 and out.shape == chips.shape
    np.testing.assert_array_equal(out, transform(chips.copy()))
    assert not np.array_equal(out, chips)
    x = as_float_images(chips)
    out_float = transform(x)
    assert isinstance(out_float, torch.Tensor) and out_float.dtype == torch.float32 and out_float.shape == x.shape
    assert torch.equal(out_float, transform(x.clone()))
    assert out_float.min() >= 0 and out_float.max() <= 1
    # a float image on the 8-bit grid gives the uint8 result (up to the rounding of blur and resize)
    assert (out_float * 255 - torch.from_numpy(out).permute(0, 3, 1, 2).float()).abs().max() <= 0.5 + 1e-4


def test_jpeg_quality_orders_the_error(chips: np.ndarray) -> None:
    errors = [np.abs(robustness.jpeg(chips, q).astype(float) - chips).mean() for q in (90, 75, 50)]
    assert errors[0] < errors[1] < errors[2]


def test_blur_and_resize_keep_a_constant_image() -> None:
    flat = np.full((2, 20, 20, 3), 100, dtype=np.uint8)
    np.testing.assert_array_equal(robustness.gaussian_blur(flat, 1.5), flat)
    np.testing.assert_array_equal(robustness.resize_down_up(flat, 0.5), flat)


def test_blur_smooths(chips: np.ndarray) -> None:
    x = as_float_images(chips)
    blurred = robustness.gaussian_blur(x, 1.0)
    assert blurred.diff(dim=-1).abs().mean() < 0.5 * x.diff(dim=-1).abs().mean()
    assert abs(blurred.mean() - x.mean()) < 1e-3


def test_bad_parameters(chips: np.ndarray) -> None:
    with pytest.raises(ValueError, match="quality=0"):
        robustness.jpeg(chips, 0)
    with pytest.raises(ValueError, match="quality=101"):
        robustness.jpeg(chips, 101)
    with pytest.raises(ValueError, match="sigma=0"):
        robustness.gaussian_blur(chips, 0)
    with pytest.raises(ValueError, match="factor=1.5"):
        robustness.resize_down_up(chips, 1.5)
    with pytest.raises(ValueError, match="chips: expected a uint8 array"):
        robustness.jpeg(chips[0], 90)


@pytest.mark.parametrize("name", sorted(robustness.TRANSFORMS))
def test_differentiable_processing_is_the_processing_and_passes_gradients(name: str, chips: np.ndarray) -> None:
    x = as_float_images(chips).requires_grad_(True)
    seen = robustness.differentiable(name)(x)
    torch.testing.assert_close(seen.detach(), robustness.TRANSFORMS[name](x.detach()))
    weights = torch.linspace(-1, 1, seen.numel()).reshape(seen.shape)
    (grad,) = torch.autograd.grad((seen * weights).sum(), x)
    if name.startswith("jpeg"):  # straight through: the JPEG's gradient is the identity's
        torch.testing.assert_close(grad, weights)
    else:  # the processing's own gradient: a blur or resize mixes neighbouring pixels
        assert grad.abs().sum() > 0 and not torch.allclose(grad, weights)


def test_expected_processings_are_known_and_bad_names_refused() -> None:
    assert set(robustness.EXPECTED) <= set(robustness.TRANSFORMS)
    with pytest.raises(ValueError, match="name='jpeg95': expected a processing from"):
        robustness.differentiable("jpeg95")
