"""Tests of the vCLUB estimator (Sec. 4.1, Eqs. 5-7) and of the synthetic problem of "CLUB theory"."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mifgsm_lib.cache import load_state_dict, save_state_dict
from mifgsm_lib.classifiers import MLPGenderClassifier
from mifgsm_lib.mi import (
    VCLUB,
    StratifiedBatchSampler,
    train_vclub,
    vclub_batch_estimates,
    vclub_template_gradient_closed_form,
)
from mifgsm_lib.nets import seeded_init
from mifgsm_lib.synthetic import GaussianBinaryTask, club_true_p, true_mi_gaussian_mixture


pytestmark = pytest.mark.usefixtures("single_thread")


def random_batch(n: int, dim: int, num_classes: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Float64 templates and labels in which every class appears."""
    generator = torch.Generator().manual_seed(seed)
    y = torch.cat([torch.arange(num_classes), torch.randint(num_classes, (n - num_classes,), generator=generator)])
    return torch.randn(n, dim, generator=generator, dtype=torch.float64) * 3, y


def random_estimator(dim: int, num_classes: int, seed: int) -> VCLUB:
    """An untrained estimator in float64 with weights large enough to give non-trivial log-probabilities."""
    estimator = seeded_init(VCLUB, seed, dim=dim, num_classes=num_classes).double()
    with torch.no_grad():
        estimator.fc2.weight.mul_(5)
    return estimator


def eq7_double_loop(estimator: VCLUB, z: torch.Tensor, y: torch.Tensor) -> float:
    """Eq. 7 written literally: 1/N sum_i [log q(y_i|z_i) - 1/N sum_j log q(y_j|z_i)], one sample at a time."""
    n = len(y)
    total = 0.0
    for i in range(n):
        log_q = estimator.log_probs(z[i : i + 1])[0]
        total += log_q[y[i]].item() - sum(log_q[y[j]].item() for j in range(n)) / n
    return total / n


@pytest.fixture(scope="module")
def task() -> GaussianBinaryTask:
    return GaussianBinaryTask(dim=4, separation=2.0, prior=0.4)


@pytest.fixture(scope="module")
def trained(task: GaussianBinaryTask):
    x, y = task.sample(2000, seed=0)
    x_val, y_val = task.sample(2000, seed=1)
    result = train_vclub(x, y, x_val, y_val, iterations=300, batch_size=128, seed=0,
                         checkpoints=(50, 300), eval_every=50, progress=False)
    return result, (x, y, x_val, y_val)


@pytest.mark.parametrize("num_classes", [2, 3, 5])
def test_estimate_equals_direct_eq7(num_classes: int) -> None:
    estimator = random_estimator(dim=6, num_classes=num_classes, seed=num_classes)
    z, y = random_batch(23, 6, num_classes, seed=num_classes)
    expected = eq7_double_loop(estimator, z, y)
    assert abs(expected) > 1e-3  # a non-trivial value, so the comparison means something
    assert estimator(z, y).item() == pytest.approx(expected, abs=1e-12)


def test_gradients_reach_the_templates() -> None:
    estimator = random_estimator(dim=8, num_classes=2, seed=0)
    z, y = random_batch(16, 8, 2, seed=0)
    z.requires_grad_(True)
    estimator(z, y).backward()
    assert torch.isfinite(z.grad).all()
    assert (z.grad.abs().sum(1) > 0).all()


def test_gradients_reach_the_templates_through_mlp_features() -> None:
    mlp = seeded_init(MLPGenderClassifier, 0, dim=8).double()
    estimator = seeded_init(VCLUB, 0, dim=512).double()
    z, y = random_batch(16, 8, 2, seed=1)
    z.requires_grad_(True)
    estimator(mlp.features(z), y).backward()
    assert (z.grad.abs().sum(1) > 0).all()


@pytest.mark.parametrize("num_classes", [2, 3, 4])
def test_closed_form_gradient_equals_autograd(num_classes: int) -> None:
    estimator = random_estimator(dim=7, num_classes=num_classes, seed=10 + num_classes)
    z, y = random_batch(31, 7, num_classes, seed=10 + num_classes)
    z.requires_grad_(True)
    (autograd,) = torch.autograd.grad(estimator(z, y), z)
    closed_form = vclub_template_gradient_closed_form(estimator, z, y)
    assert autograd.abs().max() > 1e-4
    torch.testing.assert_close(closed_form, autograd, rtol=1e-10, atol=1e-12)


def test_two_class_gradient_is_a_weighted_margin_gradient() -> None:
    estimator = random_estimator(dim=5, num_classes=2, seed=3)
    z, y = random_batch(20, 5, 2, seed=3)
    z.requires_grad_(True)
    logits = estimator.logits(z)
    (margin_grad,) = torch.autograd.grad((logits[:, 1] - logits[:, 0]).sum(), z)
    pi = torch.bincount(y, minlength=2).double() / len(y)
    weight = (2 * y - 1) * pi[1 - y] / len(y)
    torch.testing.assert_close(vclub_template_gradient_closed_form(estimator, z, y), weight[:, None] * margin_grad)


def test_training_lowers_the_loss_and_raises_the_held_out_loglikelihood(trained) -> None:
    result, _ = trained
    history = result.history
    assert list(history["iteration"]) == [0, 50, 100, 150, 200, 250, 300]
    assert history["train_loss"][-1] < history["train_loss"][0] - 0.1
    assert history["val_loglik"][-1] > history["val_loglik"][0] + 0.1
    assert sorted(result.checkpoints) == [50, 300]


def test_trained_estimate_approaches_the_club_value_of_the_true_posterior(trained, task) -> None:
    result, (_, _, x_val, y_val) = trained
    with torch.no_grad():
        estimate = result.estimator(x_val, y_val).item()
    club = club_true_p(task, 200_000, seed=5).value
    assert estimate == pytest.approx(club, rel=0.25)


def test_last_checkpoint_is_the_returned_estimator(trained) -> None:
    result, (_, _, x_val, y_val) = trained
    restored = VCLUB.from_checkpoint_state(result.checkpoints[300], expected_dim=4)
    with torch.no_grad():
        assert restored(x_val, y_val).item() == result.estimator(x_val, y_val).item()


def test_same_seed_same_estimate(trained) -> None:
    _, (x, y, x_val, y_val) = trained
    first, again, other = (
        train_vclub(x, y, x_val, y_val, iterations=60, batch_size=128, seed=s, eval_every=20, progress=False)
        for s in (0, 0, 1)
    )
    with torch.no_grad():
        assert again.estimator(x_val, y_val).item() == first.estimator(x_val, y_val).item()
        assert other.estimator(x_val, y_val).item() != first.estimator(x_val, y_val).item()
    np.testing.assert_array_equal(again.history["val_mi"], first.history["val_mi"])


def test_save_and_load_round_trip(tmp_path, trained) -> None:
    result, (_, _, x_val, y_val) = trained
    save_state_dict(tmp_path / "vclub.pt", result.estimator.checkpoint_state())
    loaded = VCLUB.from_checkpoint_state(load_state_dict(tmp_path / "vclub.pt"), expected_dim=4)
    assert (loaded.dim, loaded.num_classes, loaded.hidden) == (4, 2, 256)
    with torch.no_grad():
        torch.testing.assert_close(loaded.log_probs(x_val), result.estimator.log_probs(x_val))


@pytest.mark.parametrize("separation,prior", [(0.5, 0.5), (1.0, 0.3), (2.0, 0.5), (3.0, 0.1)])
def test_club_with_the_true_posterior_bounds_the_true_mi(separation: float, prior: float) -> None:
    task = GaussianBinaryTask(dim=3, separation=separation, prior=prior)
    true_mi = true_mi_gaussian_mixture(task)
    club = club_true_p(task, 100_000, seed=0)
    assert club.value + 3 * club.stderr >= true_mi
    assert true_mi < -(prior * math.log(prior) + (1 - prior) * math.log(1 - prior))  # I(X;Y) <= H(Y)


@pytest.mark.parametrize("separation,prior", [(1.0, 0.3), (2.5, 0.5)])
def test_quadrature_mi_matches_a_monte_carlo_estimate(separation: float, prior: float) -> None:
    task = GaussianBinaryTask(dim=2, separation=separation, prior=prior)
    x, y = task.sample(200_000, seed=2)
    pointwise = task.log_posterior(x).gather(1, y[:, None]).squeeze(1) - torch.log(task.label_prior[y])
    stderr = pointwise.std().item() / math.sqrt(len(y))
    assert true_mi_gaussian_mixture(task) == pytest.approx(pointwise.mean().item(), abs=4 * stderr)


def test_club_of_the_true_posterior_with_equal_priors_is_a_quarter_of_the_squared_separation() -> None:
    # With p(y) = 1/2 the bracket of Eq. 5 is +-(separation * t) / 2, whose mean is separation^2 / 4.
    club = club_true_p(GaussianBinaryTask(dim=5, separation=1.5), 100_000, seed=3)
    assert club.value == pytest.approx(1.5**2 / 4, abs=4 * club.stderr)


def test_stratified_batches_hold_every_class_in_proportion() -> None:
    y = np.array([0] * 90 + [1] * 10)
    sampler = StratifiedBatchSampler(y, batch_size=20, seed=0)
    for _ in range(50):
        batch = sampler()
        assert len(batch) == len(set(batch)) == 20
        assert np.bincount(y[batch]).tolist() == [18, 2]


def test_estimate_spread_shrinks_with_batch_size(trained) -> None:
    result, (_, _, x_val, y_val) = trained
    small = vclub_batch_estimates(result.estimator, x_val, y_val, batch_size=16, repeats=200, seed=0)
    large = vclub_batch_estimates(result.estimator, x_val, y_val, batch_size=256, repeats=200, seed=0)
    assert small.std() > 2 * large.std()


# --- Bad input --------------------------------------------------------------------------------------------


def test_one_class_batch_is_refused() -> None:
    estimator = VCLUB(4)
    with pytest.raises(ValueError, match=r"y: only class\(es\) \[1\] present.*at least 2 classes"):
        estimator(torch.randn(8, 4), torch.ones(8, dtype=torch.long))


def test_one_class_training_labels_are_refused() -> None:
    z = torch.randn(50, 4)
    with pytest.raises(ValueError, match=r"y_train: only class\(es\) \[0\]"):
        train_vclub(z, torch.zeros(50, dtype=torch.long), z, torch.arange(50) % 2, iterations=5, progress=False)


def test_nan_templates_are_refused() -> None:
    z = torch.randn(8, 4)
    z[3, 1] = float("nan")
    with pytest.raises(ValueError, match="z: templates contain NaN"):
        VCLUB(4)(z, torch.arange(8) % 2)


def test_template_dimension_must_match_the_estimator() -> None:
    with pytest.raises(ValueError, match="dimension 512, expected d=128"):
        VCLUB(128)(torch.randn(8, 512), torch.arange(8) % 2)


def test_checkpoint_dimension_must_match(tmp_path) -> None:
    save_state_dict(tmp_path / "dlib.pt", VCLUB(128).checkpoint_state())
    with pytest.raises(ValueError, match=r"dimension d=128, expected d=512"):
        VCLUB.from_checkpoint_state(load_state_dict(tmp_path / "dlib.pt"), expected_dim=512)


def test_missing_checkpoint_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="no such checkpoint"):
        load_state_dict(tmp_path / "absent.pt")


def test_labels_outside_the_classes_are_refused() -> None:
    with pytest.raises(ValueError, match=r"labels must lie in 0..1"):
        VCLUB(4)(torch.randn(4, 4), torch.tensor([0, 1, 2, 1]))
    with pytest.raises(ValueError, match="expected integer class labels"):
        VCLUB(4)(torch.randn(4, 4), torch.tensor([0.0, 1.0, 0.0, 1.0]))
    with pytest.raises(ValueError, match="expected 4 labels"):
        VCLUB(4)(torch.randn(4, 4), torch.tensor([0, 1, 0]))


def test_bad_training_parameters_are_refused() -> None:
    z, y = torch.randn(40, 4), torch.arange(40) % 2
    with pytest.raises(ValueError, match=r"checkpoints=\[23700\]"):
        train_vclub(z, y, z, y, iterations=10, checkpoints=(23700,), progress=False)
    with pytest.raises(ValueError, match="batch_size=256"):
        train_vclub(z, y, z, y, iterations=10, batch_size=256, progress=False)
    with pytest.raises(ValueError, match="z_val: templates have dimension 5"):
        train_vclub(z, y, torch.randn(40, 5), y, iterations=10, batch_size=8, progress=False)
