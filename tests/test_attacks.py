"""Tests of the attacks of Sec. 3 (Eqs. 1-4), MI-PGD and Erasure-PGD, on a tiny stand-in face model."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.exceptions import NotFittedError
from torch import nn

from mifgsm_lib import attacks, config, protect, robustness
from mifgsm_lib.erasure import LinearEraser
from mifgsm_lib.config import eps_grid_default, eps_grid_sensitive
from mifgsm_lib.classifiers import MLPGenderClassifier, train_mlp
from mifgsm_lib.mi import VCLUB, stratified_batches, train_vclub

from support import DIM, SIZE, TinyFace, embed_iterative

N = 48
pytestmark = pytest.mark.usefixtures("single_thread")


def make_chips(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 chips whose red channel carries the label, with saturated pixels so that clipping happens."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    chips = rng.integers(0, 256, size=(n, SIZE, SIZE, 3)).astype(np.int64)
    chips[..., 0] = np.clip(chips[..., 0] + np.where(y[:, None, None] == 1, 60, -60), 0, 255)
    chips[:, 0, :, :] = 255
    chips[:, -1, :, :] = 0
    return chips.astype(np.uint8), y


@pytest.fixture(scope="module")
def setup() -> dict:
    torch.manual_seed(0)
    face = TinyFace().eval()
    chips, y = make_chips(N, seed=0)
    with torch.no_grad():
        z = face(attacks.as_float_images(chips))
    mlp = train_mlp(z, y, seed=0, max_epochs=20, progress=False).model
    with torch.no_grad():
        h = mlp.features(z)
    half = np.arange(N) < N // 2
    estimator = train_vclub(z[half], y[half], z[~half], y[~half], iterations=200, batch_size=16,
                            seed=0, progress=False).estimator
    estimator_mlp = train_vclub(h[half], y[half], h[~half], y[~half], iterations=200, batch_size=16,
                                seed=0, progress=False).estimator
    return {"face": face, "chips": chips, "y": y, "mlp": mlp, "estimator": estimator,
            "estimator_mlp": estimator_mlp}


def make_attack(kind: str, s: dict) -> attacks.SignAttack:
    if kind == "mi-fgsm":
        return attacks.MIFGSM(s["face"], s["estimator"])
    if kind == "mi-fgsm-mlp":
        return attacks.MIFGSMMLP(s["face"], s["mlp"], s["estimator_mlp"])
    if kind == "fgsm":
        return attacks.FGSM(s["face"], s["mlp"])
    return attacks.RandomSign(seed=3, reading=kind.split(":")[1])


ALL = ["mi-fgsm", "mi-fgsm-mlp", "fgsm", "random:sign", "random:mask"]


@pytest.mark.parametrize("kind", ALL)
def test_every_pixel_moves_by_eps_or_is_clipped(kind: str, setup: dict) -> None:
    d = protect.directions(make_attack(kind, setup), setup["chips"], setup["y"], batch_size=16,
                                   progress=False)
    assert d.dtype == np.int8 and d.shape == (N, 3, SIZE, SIZE)
    moving = d != 0
    if kind == "random:mask":
        assert 0.45 < moving.mean() < 0.55
    else:
        assert moving.all()
    x = attacks.as_float_images(setup["chips"]).double()
    eps = 0.1
    adv = attacks.perturb(x, d, eps, mode="float")
    delta = (adv - x).abs().numpy()
    clipped = ((adv == 0) | (adv == 1)).numpy() & (delta < eps)
    assert clipped.any() and not clipped.all()
    np.testing.assert_allclose(delta[moving & ~clipped], eps, rtol=0, atol=1e-12)
    assert (delta[~moving] == 0).all()
    assert adv.min() >= 0 and adv.max() <= 1


def test_uint8_mode_rounds_to_grey_levels(setup: dict) -> None:
    x = attacks.as_float_images(setup["chips"])
    d = attacks.RandomSign(seed=0).signs(x, torch.as_tensor(setup["y"]))
    assert torch.equal(attacks.perturb(x, d, 0.49 / 255, mode="uint8"), x)
    assert not torch.equal(attacks.perturb(x, d, 0.49 / 255, mode="float"), x)
    one = attacks.perturb(x, d, 1 / 255, mode="uint8")
    moved = (one - x).abs() * 255
    inside = (x > 0) & (x < 1)
    assert torch.allclose(moved[inside], torch.ones(()), atol=1e-4)
    assert torch.equal(attacks.perturb(x, d, 1.2 / 255, mode="uint8"), attacks.perturb(x, d, 1.4 / 255, mode="uint8"))
    assert torch.equal(torch.round(one * 255) / 255, one)


@pytest.mark.parametrize("kind", ["mi-fgsm", "mi-fgsm-mlp"])
def test_mi_direction_matches_finite_differences(kind: str, setup: dict) -> None:
    s = {k: copy.deepcopy(v).double() if isinstance(v, nn.Module) else v for k, v in setup.items()}
    attack = make_attack(kind, s)
    x = attacks.as_float_images(setup["chips"][:8]).double()
    y = torch.as_tensor(setup["y"][:8])
    d = attack.signs(x, y)

    with torch.no_grad():
        objective = lambda images: attack.objective(images, y).item()  # noqa: E731
        x.requires_grad_(True)
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(attack.objective(x, y), x)
        x = x.detach()
        flat = grad.flatten().abs()
        random = torch.randperm(len(flat), generator=torch.Generator().manual_seed(0))[:6]
        picks = torch.cat([flat.topk(6).indices, random])
        h = 1e-6
        compared = 0
        for k in picks.tolist():
            e = torch.zeros_like(x).flatten()
            e[k] = h
            e = e.view_as(x)
            fd = (objective(x + e) - objective(x - e)) / (2 * h)
            if abs(fd) > 1e-9:
                assert int(d.flatten()[k]) == -int(math.copysign(1, fd)), f"pixel {k}: fd={fd}"
                compared += 1
    assert compared >= 10


def test_fgsm_agrees_with_independent_computation(setup: dict) -> None:
    face, mlp = setup["face"], setup["mlp"]
    x = attacks.as_float_images(setup["chips"]).requires_grad_(True)
    y = torch.as_tensor(setup["y"]).float()
    p = torch.sigmoid(mlp(face(x)))
    loss = F.binary_cross_entropy(p, y, reduction="sum")
    (grad,) = torch.autograd.grad(loss, x)
    expected = torch.sign(grad).to(torch.int8).numpy()
    attack = attacks.FGSM(face, mlp)
    for batch_size in (5, N):
        got = protect.directions(attack, setup["chips"], setup["y"], batch_size=batch_size, progress=False)
        np.testing.assert_array_equal(got, expected)
    adv = attack(x.detach(), torch.as_tensor(setup["y"]), 0.05)
    assert torch.allclose(adv, (x.detach() + 0.05 * torch.from_numpy(expected)).clamp(0, 1))


def test_random_attack_reproducible_and_independent_of_batch_size(setup: dict) -> None:
    chips, y = setup["chips"], setup["y"]
    a = protect.directions(attacks.RandomSign(seed=7), chips, y, batch_size=5, seed=1, progress=False)
    b = protect.directions(attacks.RandomSign(seed=7), chips, y, batch_size=N, seed=2, progress=False)
    c = protect.directions(attacks.RandomSign(seed=8), chips, y, batch_size=N, progress=False)
    np.testing.assert_array_equal(a, b)
    assert (a != c).mean() > 0.4
    assert set(np.unique(a)) == {-1, 1} and abs((a == 1).mean() - 0.5) < 0.02
    mask = protect.directions(attacks.RandomSign(seed=7, reading="mask"), chips, y, progress=False)
    assert set(np.unique(mask)) == {-1, 0, 1}
    x = attacks.as_float_images(chips[10:12])
    direct = attacks.RandomSign(seed=7).signs(x, torch.as_tensor(y[10:12]), index=torch.tensor([10, 11]))
    np.testing.assert_array_equal(direct.numpy(), a[10:12])


def test_mi_directions_same_seed_same_numbers(setup: dict) -> None:
    attack = make_attack("mi-fgsm", setup)
    run = lambda seed, batch_size: protect.directions(  # noqa: E731
        attack, setup["chips"], setup["y"], batch_size=batch_size, seed=seed, progress=False)
    first = run(0, 16)
    np.testing.assert_array_equal(first, run(0, 16))
    # For two classes dI/dz_i = (2 y_i - 1) pi_{1-y_i} / N * grad of q's logit margin (mi.py): the sign does not
    # depend on which other images share the batch, as long as both genders are there.
    np.testing.assert_array_equal(first, run(1, 48))


def test_stratified_batches_hold_both_classes() -> None:
    y = np.array([0] * 30 + [1] * 10)
    batches = stratified_batches(y, batch_size=8, seed=0)
    assert len(batches) == 5
    np.testing.assert_array_equal(np.sort(np.concatenate(batches)), np.arange(40))
    for b in batches:
        assert (y[b] == 1).sum() == 2 and (y[b] == 0).sum() == 6


def test_embed_perturbed_equals_direct_embedding(setup: dict) -> None:
    face, chips, y = setup["face"], setup["chips"], setup["y"]
    d = protect.directions(make_attack("mi-fgsm", setup), chips, y, batch_size=16, progress=False)
    eps_list = [0.0, 0.3 / 255, 0.01, 0.05]
    for mode in attacks.MODES:
        got = protect.embed_perturbed(face, chips, d, eps_list, mode=mode, batch_size=7, progress=False)
        assert list(got) == eps_list
        for eps in eps_list:
            with torch.no_grad():
                expected = face(attacks.perturb(chips, d, eps, mode)).numpy()
            np.testing.assert_allclose(got[eps], expected, rtol=1e-5, atol=1e-6)
        if mode == "uint8":
            np.testing.assert_array_equal(got[0.0], got[0.3 / 255])
    with torch.no_grad():
        np.testing.assert_allclose(got[0.0], face(attacks.as_float_images(chips)).numpy(), atol=1e-6)
    flipped = protect.embed_protected(face, lambda x, yb, idx: attacks.perturb(x, d[idx], 0.05), chips, y,
                                      {"flipped": torch.fliplr}, batch_size=7, progress=False)["flipped"]
    assert not np.allclose(flipped, got[0.05])


def test_embed_perturbed_reuses_unchanged_images(setup: dict) -> None:
    face, chips, y = setup["face"], setup["chips"], setup["y"]
    d = protect.directions(attacks.RandomSign(seed=1), chips, y, progress=False)
    seen = []
    hook = face.register_forward_hook(lambda module, inputs, output: seen.append(len(inputs[0])))
    try:
        eps_list = [1.3 / 255, 1.1 / 255, 1.2 / 255, 2.1 / 255]  # the first three round to one image each
        got = protect.embed_perturbed(face, chips, d, eps_list, mode="uint8", batch_size=N, progress=False)
    finally:
        hook.remove()
    assert sum(seen) == 2 * N
    np.testing.assert_array_equal(got[1.1 / 255], got[1.3 / 255])
    assert not np.allclose(got[1.1 / 255], got[2.1 / 255])


def test_mi_attack_lowers_the_estimate(setup: dict) -> None:
    face, estimator = setup["face"], setup["estimator"]
    x = attacks.as_float_images(setup["chips"])
    y = torch.as_tensor(setup["y"])
    attack = attacks.MIFGSM(face, estimator)
    with torch.no_grad():
        before = estimator(face(x), y).item()
        after = estimator(face(attack(x, y, 0.02)), y).item()
    assert after < before


def test_eps_grids() -> None:
    assert eps_grid_default() == [0.05, 0.1, 0.15, 0.2, 0.25, 0.3]
    assert eps_grid_sensitive(3) == [0.01, 0.02, 0.03]
    grid = eps_grid_sensitive(50)
    assert len(grid) == 50 and grid[0] == 0.0006 and grid[-1] == 0.03
    with pytest.raises(ValueError, match="n_steps"):
        eps_grid_sensitive(0)
    with pytest.raises(ValueError, match="max_eps"):
        eps_grid_sensitive(5, max_eps=0.0)


def test_the_storage_grid_avoids_the_rounding_boundaries_and_the_strip_takes_each_level_once() -> None:
    levels = np.array(config.eps_grid_storage()) * 255
    np.testing.assert_allclose(levels, [0.125, 0.375, 0.625, 0.875, 1.125, 1.375, 1.625, 1.875, 2.125, 2.375])
    assert not np.any(np.isclose(levels % 1, 0.5))  # no level on half a grey level
    with pytest.raises(ValueError, match="n_levels"):
        config.eps_grid_storage(0)
    grids = config.eps_grids(config.PROFILES["quick"])
    assert grids == config.eps_grids(config.PROFILES["quick"], config.FINE_MAX_EPS)
    assert config.eps_strip(0.004, grids) == [0.004, 0.01, 0.03, 0.3]
    assert config.eps_strip(0.01, grids) == [0.01, 0.03, 0.3]  # ε* = 0.01 appears once


@pytest.mark.parametrize("eps", [-0.01, 1.5, float("nan"), "big"])
def test_bad_eps(eps: object, setup: dict) -> None:
    x = attacks.as_float_images(setup["chips"][:2])
    with pytest.raises(ValueError, match="eps="):
        attacks.perturb(x, torch.ones_like(x, dtype=torch.int8), eps)


def test_bad_inputs(setup: dict) -> None:
    face, chips, y = setup["face"], setup["chips"], setup["y"]
    x = attacks.as_float_images(chips[:2])
    with pytest.raises(ValueError, match="mode="):
        attacks.perturb(x, torch.ones_like(x, dtype=torch.int8), 0.1, mode="png")
    with pytest.raises(ValueError, match="direction: expected shape"):
        attacks.perturb(x, torch.ones((2, 3, 4, 4), dtype=torch.int8), 0.1)
    with pytest.raises(ValueError, match=r"images: expected float pixel values in \[0, 1\]"):
        attacks.as_float_images(x * 255)
    with pytest.raises(ValueError, match=r"chips: expected a uint8 array \(N, S, S, 3\)"):
        attacks.as_float_images(chips[0])
    with pytest.raises(ValueError, match=r"images: expected uint8 chips \(N, H, W, 3\) or a float tensor"):
        attacks.as_float_images(chips.astype(np.int64))
    with pytest.raises(ValueError, match="estimator expects d=5, face model 'tiny' gives d=6"):
        attacks.MIFGSM(face, VCLUB(5))
    with pytest.raises(ValueError, match="estimator expects d=6, the MLP's hidden features f_MLP gives d=512"):
        attacks.MIFGSMMLP(face, setup["mlp"], VCLUB(DIM))
    with pytest.raises(ValueError, match="mlp expects d=7, face model gives d=6"):
        attacks.FGSM(face, MLPGenderClassifier(7))
    with pytest.raises(ValueError, match="reading="):
        attacks.RandomSign(seed=0, reading="gauss")
    with pytest.raises(ValueError, match="seed="):
        attacks.RandomSign(seed=-1)
    with pytest.raises(ValueError, match="y: expected 48 labels"):
        protect.directions(attacks.RandomSign(0), chips, y[:-1], progress=False)


def test_one_gender_is_refused(setup: dict) -> None:
    attack = make_attack("mi-fgsm", setup)
    chips = setup["chips"]
    with pytest.raises(ValueError, match="both genders"):
        protect.directions(attack, chips, np.zeros(N, dtype=int), progress=False)
    skewed = np.where(np.arange(N) < 2, 1, 0)
    with pytest.raises(ValueError, match=r"batch_size=8: too small .* \(use batch_size >= 24\)"):
        protect.directions(attack, chips, skewed, batch_size=8, progress=False)
    with pytest.raises(ValueError, match="at least 2 classes"):
        attack.signs(attacks.as_float_images(chips[:4]), torch.zeros(4, dtype=torch.long))
    # FGSM and the random attack do not need both genders
    protect.directions(attacks.RandomSign(0), chips, np.zeros(N, dtype=int), progress=False)


# --- MI-PGD (beyond the paper) -----------------------------------------------------------------------------


@pytest.mark.parametrize("objective", attacks.PGD_OBJECTIVES)
def test_pgd_respects_its_ball_and_the_pixel_range(objective: str, setup: dict) -> None:
    x = attacks.as_float_images(setup["chips"][:16])
    y = torch.as_tensor(setup["y"][:16])
    eps = 0.03
    attack = attacks.MIPGD(setup["face"], setup["estimator"], eps=eps, alpha=0.01, steps=5, objective=objective)
    adv = attack(x, y)
    assert (adv - x).abs().max() <= eps + 1e-6
    assert adv.min() >= 0 and adv.max() <= 1
    assert ((adv - x).abs() > eps - 1e-6).float().mean() > 0.3  # it uses its budget
    with torch.no_grad():
        before = attack.loss(setup["estimator"], setup["face"](x), y).item()
        after = attack.loss(setup["estimator"], setup["face"](adv), y).item()
    assert after < before


def test_one_pgd_step_is_mi_fgsm(setup: dict) -> None:
    x = attacks.as_float_images(setup["chips"][:16])
    y = torch.as_tensor(setup["y"][:16])
    pgd = attacks.MIPGD(setup["face"], setup["estimator"], eps=0.02, alpha=0.02, steps=1)
    one_step = attacks.MIFGSM(setup["face"], setup["estimator"])(x, y, 0.02)
    assert torch.allclose(pgd(x, y), one_step, atol=1e-7)


def test_reestimation_updates_q(setup: dict) -> None:
    face, estimator, chips, y = setup["face"], setup["estimator"], setup["chips"], setup["y"]
    attack = attacks.MIPGD(face, estimator, eps=0.1, alpha=0.02, steps=6)
    z_adv = torch.from_numpy(embed_iterative(attack, chips, y, batch_size=N, progress=False))
    labels = torch.as_tensor(y)
    fit, held = np.arange(N) < 32, np.arange(N) >= 32
    adapted = attacks.reestimate(copy.deepcopy(estimator), z_adv[fit], labels[fit], iterations=50, lr=1e-2)
    with torch.no_grad():
        assert adapted.loglikeli(z_adv[held], labels[held]) > estimator.loglikeli(z_adv[held], labels[held])

    x = attacks.as_float_images(chips[:16])
    state = copy.deepcopy(estimator.state_dict())
    aware = attacks.MIPGD(face, estimator, eps=0.1, alpha=0.02, steps=4, reestimate=True, reestimate_iterations=30,
                          reestimate_lr=1e-2)
    plain = attacks.MIPGD(face, estimator, eps=0.1, alpha=0.02, steps=4)
    assert not torch.equal(aware(x, labels[:16]), plain(x, labels[:16]))
    assert all(torch.equal(v, estimator.state_dict()[k]) for k, v in state.items())


def test_embed_iterative_stores_and_embeds(setup: dict) -> None:
    face, chips, y = setup["face"], setup["chips"], setup["y"]
    attack = attacks.MIPGD(face, setup["estimator"], eps=2 / 255, alpha=1 / 255, steps=2, objective="confusion")
    z8 = embed_iterative(attack, chips, y, mode="uint8", batch_size=N, progress=False)
    adv = attacks.store(attack(attacks.as_float_images(chips), torch.as_tensor(y)), "uint8")
    assert ((adv - attacks.as_float_images(chips)).abs() * 255).max() <= 2 + 1e-4
    with torch.no_grad():
        np.testing.assert_allclose(z8, face(adv).numpy(), atol=1e-6)
    np.testing.assert_array_equal(z8, embed_iterative(attack, chips, y, mode="uint8", batch_size=N,
                                                              progress=False))


def test_pgd_bad_parameters(setup: dict) -> None:
    face, estimator = setup["face"], setup["estimator"]
    with pytest.raises(ValueError, match="alpha=0.05: expected a step size with 0 < alpha <= eps=0.03"):
        attacks.MIPGD(face, estimator, eps=0.03, alpha=0.05, steps=3)
    with pytest.raises(ValueError, match="steps=0: expected at least 1 step"):
        attacks.MIPGD(face, estimator, eps=0.03, alpha=0.01, steps=0)
    with pytest.raises(ValueError, match="objective="):
        attacks.MIPGD(face, estimator, eps=0.03, alpha=0.01, steps=2, objective="entropy")
    with pytest.raises(ValueError, match="eps="):
        attacks.MIPGD(face, estimator, eps=-1, alpha=0.01, steps=2)
    with pytest.raises(ValueError, match="estimator expects d=4"):
        attacks.MIPGD(face, VCLUB(4), eps=0.03, alpha=0.01, steps=2)


def test_attacks_work_for_k_classes(setup: dict) -> None:
    face, chips = setup["face"], setup["chips"]
    y3 = np.arange(N) % 3
    with torch.no_grad():
        z = face(attacks.as_float_images(chips))
    estimator = train_vclub(z, y3, z, y3, iterations=50, batch_size=24, seed=0, num_classes=3,
                            progress=False).estimator
    d = protect.directions(attacks.MIFGSM(face, estimator), chips, y3, batch_size=12, progress=False)
    assert (d != 0).all()
    for b in stratified_batches(y3, 12, seed=0):
        assert np.bincount(y3[b], minlength=3).tolist() == [4, 4, 4]
    x, y = attacks.as_float_images(chips[:12]), torch.as_tensor(y3[:12])
    pgd = attacks.MIPGD(face, estimator, eps=0.05, alpha=0.01, steps=4, objective="confusion")
    with torch.no_grad():
        before = attacks.confusion(estimator, face(x), y).item()
        after = attacks.confusion(estimator, face(pgd(x, y)), y).item()
    assert after < before
    with pytest.raises(ValueError, match="expected at least 3 classes"):
        attacks.confusion(estimator, face(x), torch.as_tensor(np.arange(12) % 2))


def _eraser_setup(setup: dict) -> tuple[torch.nn.Module, torch.Tensor, np.ndarray, LinearEraser]:
    """The face model, the float images, their labels and a LEACE eraser fitted on their clean templates."""
    face, y = setup["face"], setup["y"]
    x = attacks.as_float_images(setup["chips"])
    with torch.no_grad():
        z = face(x).double().numpy()
    return face, x, y, LinearEraser().fit(z, y)


def test_erasure_pgd_approaches_the_erased_template_inside_its_budget(setup: dict) -> None:
    face, x, y, eraser = _eraser_setup(setup)
    eps = 0.03
    attack = attacks.ErasurePGD(face, eraser, eps=eps, alpha=0.01, steps=5)
    adv = attack(x)
    assert (adv - x).abs().max() <= eps + 1e-6
    assert adv.min() >= 0 and adv.max() <= 1
    target = attack.targets(x)
    with torch.no_grad():
        before = (face(x) - target).square().sum().item()
        after = (face(adv) - target).square().sum().item()
    assert after < 0.9 * before
    torch.testing.assert_close(attack(x, torch.as_tensor(y)), adv)  # the labels are not used, and no randomness


def test_erasure_pgd_expectation_over_processing(setup: dict) -> None:
    face, x, _, eraser = _eraser_setup(setup)
    plain = attacks.ErasurePGD(face, eraser, eps=0.03, alpha=0.01, steps=3)
    torch.testing.assert_close(attacks.ErasurePGD(face, eraser, eps=0.03, alpha=0.01, steps=3, expect=())(x), plain(x))
    blur = robustness.differentiable("blur1")
    eot = attacks.ErasurePGD(face, eraser, eps=0.03, alpha=0.01, steps=3, expect=[blur])
    adv = eot(x)
    assert (adv - x).abs().max() <= 0.03 + 1e-6 and not torch.equal(adv, plain(x))
    target = eot.targets(x)
    with torch.no_grad():  # the expectation's loss: the photo as stored and blurred, each nearer the target
        for view in (lambda t: t, blur):
            assert (face(view(adv)) - target).square().sum() < 0.9 * (face(view(x)) - target).square().sum()
    with pytest.raises(ValueError, match="expect='blur1': expected a sequence of maps of float images"):
        attacks.ErasurePGD(face, eraser, eps=0.03, alpha=0.01, steps=3, expect="blur1")


def test_erasure_pgd_bad_parameters(setup: dict) -> None:
    face, chips, y = setup["face"], setup["chips"], setup["y"]
    with torch.no_grad():
        z = face(attacks.as_float_images(chips)).double().numpy()
    with pytest.raises(NotFittedError):
        attacks.ErasurePGD(face, LinearEraser(), eps=0.03, alpha=0.01, steps=2)
    with pytest.raises(ValueError, match=f"eraser: fitted on 3-D templates; face model .* gives {DIM}-D ones"):
        attacks.ErasurePGD(face, LinearEraser().fit(z[:, :3], y), eps=0.03, alpha=0.01, steps=2)
    with pytest.raises(ValueError, match="alpha=0.05: expected a step size with 0 < alpha <= eps=0.03"):
        attacks.ErasurePGD(face, LinearEraser().fit(z, y), eps=0.03, alpha=0.05, steps=2)
