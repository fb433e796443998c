"""Settings A and B (paper Sec. 5), the sweep, mixing (Fig. 5), ε*, PIC and image quality."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, LinearSVC

from mifgsm_lib.evaluation import (
    CLASSIFIERS,
    MIXING_FRACTIONS,
    fold_splits,
    mixed_templates,
    mixing,
    setting_a,
    setting_b,
    setting_b_sweep,
)
from mifgsm_lib.privacy import closest_to_chance, pic, privacy_gain, relative_eer_loss
from mifgsm_lib.quality import psnr, ssim


def gendered_templates(seed: int = 0, n: int = 150, dim: int = 12, signal: float = 0.8):
    """n templates of n/3 identities (3 images each); gender shifts a few dimensions."""
    rng = np.random.default_rng(seed)
    groups = np.arange(n) // 3
    y = (rng.random(n // 3) < 0.5).astype(int)[groups]
    identity = rng.normal(size=(n // 3, dim))[groups]
    x = identity + 0.5 * rng.normal(size=(n, dim))
    x[:, :3] += signal * (2 * y[:, None] - 1)
    return x, y, groups


# --- setting B ----------------------------------------------------------------------------


@pytest.mark.parametrize("grouped", [True, False])
def test_setting_b_equals_direct_scikit_learn(grouped):
    x, y, groups = gendered_templates()
    result = setting_b(x, y, groups, folds=3, grouped=grouped, seed=4, n_jobs=1)
    if grouped:
        cv = StratifiedGroupKFold(n_splits=3, shuffle=True, random_state=4)
    else:
        cv = StratifiedKFold(n_splits=3, shuffle=True, random_state=4)
    models = {
        "logreg": LogisticRegression(max_iter=5000),
        "linear_svm": LinearSVC(dual="auto", max_iter=10000, random_state=4),
        "rbf_svm": SVC(kernel="rbf"),
    }
    direct = {
        name: cross_val_score(
            make_pipeline(StandardScaler(), m),
            x,
            y,
            groups=groups if grouped else None,
            cv=cv,
            scoring="balanced_accuracy",
        )
        for name, m in models.items()
    }
    for name in CLASSIFIERS:
        np.testing.assert_allclose(result.per_fold[name], direct[name], atol=1e-12)
        assert result.balanced_accuracy[name] == pytest.approx(direct[name].mean(), abs=1e-12)
    assert result.mean == pytest.approx(np.mean([direct[n].mean() for n in CLASSIFIERS]), abs=1e-12)
    assert 0.6 < result.mean < 1.0
    payload = json.loads(json.dumps(result.as_dict()))
    assert payload["balanced_accuracy"]["mean"] == result.mean and payload["grouped"] is grouped


def test_grouped_folds_never_share_an_identity():
    x, y, groups = gendered_templates(n=300)
    splits = fold_splits(y, groups, folds=3, grouped=True, seed=1)
    assert len(splits) == 3
    np.testing.assert_array_equal(np.sort(np.concatenate([test for _, test in splits])), np.arange(300))
    for train, test in splits:
        assert not set(groups[train]) & set(groups[test])
        assert abs(y[test].mean() - y.mean()) < 0.15  # still stratified
    plain = fold_splits(y, groups, folds=3, grouped=False, seed=1)
    assert any(set(groups[train]) & set(groups[test]) for train, test in plain)


def test_same_seed_same_numbers_other_seed_other_folds():
    x, y, groups = gendered_templates()
    a = setting_b(x, y, groups, seed=3, n_jobs=1)
    assert setting_b(x, y, groups, seed=3, n_jobs=1) == a
    other = fold_splits(y, groups, seed=5)
    assert any(not np.array_equal(t1, t2) for (_, t1), (_, t2) in zip(fold_splits(y, groups, seed=3), other))


def test_sweep_equals_per_eps_calls():
    x, y, groups = gendered_templates()
    rng = np.random.default_rng(9)
    sets = {eps: x + eps * 10 * rng.normal(size=x.shape) for eps in (0.0, 0.05, 0.3)}
    sweep = setting_b_sweep(sets, y, groups, seed=2, n_jobs=2, progress=False)
    assert list(sweep) == [0.0, 0.05, 0.3]
    for eps, templates in sets.items():
        assert sweep[eps] == setting_b(templates, y, groups, seed=2, n_jobs=1)
    assert sweep[0.0].mean > sweep[0.3].mean  # the noise hides the gender


def test_classifier_subset_and_custom_estimator():
    x, y, groups = gendered_templates()
    result = setting_b(x, y, groups, n_jobs=1, classifiers=["logreg"])
    assert set(result.balanced_accuracy) == {"logreg", "mean"}
    custom = setting_b(x, y, groups, n_jobs=1, classifiers={"logreg_c0.01": LogisticRegression(C=0.01)})
    assert custom.mean == custom.balanced_accuracy["logreg_c0.01"]
    with pytest.raises(ValueError, match="classifier 'knn': expected one of"):
        setting_b(x, y, groups, n_jobs=1, classifiers=["knn"])


def test_setting_b_bad_input():
    x, y, groups = gendered_templates(n=30)
    bad = x.copy()
    bad[4, 2] = np.nan
    with pytest.raises(ValueError, match=r"templates: expected finite values, rows \[4\]"):
        setting_b(bad, y, groups, n_jobs=1)
    with pytest.raises(ValueError, match=r"y: only class\(es\) \[1\] present in 30 labels; expected at least 2"):
        setting_b(x, np.ones(30, dtype=int), groups, n_jobs=1)
    with pytest.raises(ValueError, match=r"y: labels must lie in 0..1 \(num_classes=2\)"):
        setting_b(x, np.where(y == 1, 2, 0), groups, n_jobs=1)
    with pytest.raises(ValueError, match="y: expected 30 labels"):
        setting_b(x, y[:-1], groups, n_jobs=1)
    with pytest.raises(ValueError, match="groups: expected one identity per template"):
        setting_b(x, y, groups[:-1], n_jobs=1)
    with pytest.raises(ValueError, match="groups: required when grouped=True"):
        setting_b(x, y, None, n_jobs=1)
    with pytest.raises(ValueError, match="folds=31: expected at most as many folds as samples"):
        setting_b(x, y, groups, folds=31, n_jobs=1)
    with pytest.raises(ValueError, match="folds=1: expected an integer >= 2"):
        setting_b(x, y, groups, folds=1, n_jobs=1)
    with pytest.raises(ValueError, match="groups: expected at least folds=3 identities"):
        setting_b(x, y, np.arange(30) % 2, n_jobs=1, classifiers=["logreg"])
    with pytest.raises(ValueError, match="templates_by_eps: expected one row per image"):
        setting_b_sweep({0.0: x, 0.1: x[:-1]}, y, groups, n_jobs=1)
    narrower = setting_b_sweep({0.0: x, 0.1: x[:, :5]}, y, groups, n_jobs=1, classifiers=["logreg"])
    assert narrower[0.1].mean == setting_b(x[:, :5], y, groups, n_jobs=1, classifiers=["logreg"]).mean
    with pytest.raises(ValueError, match="templates_by_eps: expected at least one"):
        setting_b_sweep({}, y, groups, n_jobs=1)


# --- mixing, ε*, PIC ----------------------------------------------------------------------


def test_mixed_templates_each_image_once_nested():
    rng = np.random.default_rng(0)
    clean, perturbed = rng.normal(size=(40, 4)), rng.normal(size=(40, 4))
    previous: set[int] = set()
    for fraction in MIXING_FRACTIONS:
        mixed = mixed_templates(clean, perturbed, fraction, seed=7)
        is_clean = np.all(mixed == clean, axis=1)
        assert np.all(is_clean | np.all(mixed == perturbed, axis=1))
        assert is_clean.sum() == round(fraction * 40)
        assert previous <= set(np.flatnonzero(is_clean))
        previous = set(np.flatnonzero(is_clean))
    assert MIXING_FRACTIONS[3] == 0.375 and MIXING_FRACTIONS[4] == 0.5  # the paper's 37.5% and 50%
    with pytest.raises(ValueError, match=r"fraction=1.5: expected a fraction of clean templates in \[0, 1\]"):
        mixed_templates(clean, perturbed, 1.5)
    with pytest.raises(ValueError, match="clean and perturbed: expected the same shape"):
        mixed_templates(clean, perturbed[:5], 0.5)


def test_mixing_ends_equal_setting_b_on_perturbed_and_clean():
    clean, y, groups = gendered_templates()
    perturbed = clean + 3.0 * np.random.default_rng(1).normal(size=clean.shape)
    result = mixing(clean, perturbed, y, groups, fractions=[0.0, 0.5, 1.0], seed=6, n_jobs=1, progress=False)
    assert result[0.0] == setting_b(perturbed, y, groups, seed=6, n_jobs=1)
    assert result[1.0] == setting_b(clean, y, groups, seed=6, n_jobs=1)
    assert result[0.5] == setting_b(mixed_templates(clean, perturbed, 0.5, seed=6), y, groups, seed=6, n_jobs=1)


def test_closest_to_chance():
    assert closest_to_chance([0.01, 0.02, 0.03], [0.70, 0.55, 0.60]) == 0.02
    assert closest_to_chance([0.03, 0.01, 0.02], [0.45, 0.55, 0.8]) == 0.01  # tie: smallest ε
    with pytest.raises(ValueError, match="eps_values and accuracies: expected two non-empty"):
        closest_to_chance([0.1, 0.2], [0.5])
    with pytest.raises(ValueError, match=r"accuracies as fractions in \[0, 1\]"):
        closest_to_chance([0.1], [75.0])


def test_pic():
    assert privacy_gain(0.85, 0.75) == pytest.approx(0.1 / 0.35)
    assert privacy_gain(0.85, 0.5) == pytest.approx(1.0)
    assert relative_eer_loss(0.005, 0.006) == pytest.approx(0.2)
    assert pic(0.85, 0.75, 0.005, 0.006) == pytest.approx(0.1 / 0.35 - 0.2)
    with pytest.raises(ValueError, match=r"expected acc_clean in \(0.5, 1\]"):
        privacy_gain(0.5, 0.5)
    with pytest.raises(ValueError, match=r"expected eer_clean in \(0, 1\]"):
        relative_eer_loss(0.0, 0.1)


# --- setting A ----------------------------------------------------------------------------


class ThresholdMLP(torch.nn.Module):
    """A stand-in for the MLP: a linear score on the first dimension, ``predict`` gives 0/1."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(4, 1)
        with torch.no_grad():
            self.linear.weight.copy_(torch.tensor([[1.0, 0, 0, 0]]))
            self.linear.bias.zero_()

    def predict(self, z: torch.Tensor) -> torch.Tensor:
        return (self.linear(z).squeeze(1) > 0).long()


def test_setting_a_fixed_classifier():
    z = np.array([[1.0, 0, 0, 0], [-1, 0, 0, 0], [2, 0, 0, 0], [-3, 0, 0, 0]])
    y = np.array([1, 0, 0, 0])
    assert setting_a(ThresholdMLP(), z, y) == 0.75
    assert setting_a(lambda t: (t[:, 0] > 0).numpy().astype(int), z, y) == 0.75
    assert setting_a(lambda t: np.zeros(len(t), dtype=int), z, y) == 0.75
    with pytest.raises(ValueError, match="classifier: expected 4 predictions in"):
        setting_a(lambda t: torch.sigmoid(t[:, 0]), z, y)
    with pytest.raises(ValueError, match="classifier: expected an object with .predict"):
        setting_a(object(), z, y)
    with pytest.raises(ValueError, match=r"y: labels must lie in 0..1"):
        setting_a(ThresholdMLP(), z, np.array([1, 0, 2, 0]))
    with pytest.raises(ValueError, match="y: expected 4 labels"):
        setting_a(ThresholdMLP(), z, np.array([1, 0, 1]))


# --- image quality ------------------------------------------------------------------------


def test_psnr_ssim_known_values():
    rng = np.random.default_rng(0)
    clean = rng.uniform(0.2, 0.8, size=(3, 3, 16, 16))
    assert np.all(np.isinf(psnr(clean, clean)))
    np.testing.assert_allclose(ssim(clean, clean, progress=False), 1.0)
    for eps in (0.015, 0.1):
        np.testing.assert_allclose(psnr(clean, clean + eps), -20 * np.log10(eps))
    noisy = np.clip(clean + rng.choice([-0.1, 0.1], size=clean.shape), 0, 1)
    values = ssim(clean, noisy, progress=False)
    assert values.shape == (3,) and np.all(values < 0.9)


def test_image_quality_bad_input():
    clean = np.full((2, 3, 8, 8), 0.5)
    with pytest.raises(ValueError, match=r"clean: expected images of shape \(N, 3, H, W\)"):
        psnr(clean.transpose(0, 2, 3, 1), clean.transpose(0, 2, 3, 1))
    with pytest.raises(ValueError, match=r"perturbed: expected finite values in \[0, 1.0\]"):
        psnr(clean, clean + 0.6)
    with pytest.raises(ValueError, match="clean and perturbed: expected the same shape"):
        psnr(clean, clean[:1])
    with pytest.raises(ValueError, match="at least 7x7"):
        ssim(clean[:, :, :5, :5], clean[:, :, :5, :5], progress=False)


def test_grouped_folds_need_enough_people_of_each_class() -> None:
    y = np.r_[np.zeros(12, dtype=int), np.ones(6, dtype=int)]
    people = np.r_[np.arange(12), np.full(6, 100)]  # the women are one person
    with pytest.raises(ValueError, match=r"a training fold holds no image of class 1 \(its people: 1\)"):
        fold_splits(y, people, folds=3)
    assert len(fold_splits(y, people, folds=3, grouped=False)) == 3  # plain folds split the images
    people[-3:] = 101  # two people: holding one out leaves the other in training
    assert all(np.unique(y[train]).size == 2 for train, _ in fold_splits(y, people, folds=3))


def test_setting_b_plus_adapts_to_a_small_dataset() -> None:
    from mifgsm_lib.evaluation.adversary import setting_b_plus, stronger_classifier

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 12)
    people = np.arange(24) // 2  # 6 people per class
    z = rng.normal(size=(24, 6)) + 2.0 * y[:, None]
    result = setting_b_plus({"clean": z}, y, people, folds=3, n_jobs=1)["clean"]
    assert 0.5 < result.mean <= 1.0  # separable: the adversary finds the gender
    small = stronger_classifier("mlp", n_fit=8)  # a 10 % split of 8 images holds 1 < 2 classes
    assert small.estimator.steps[-1][1].early_stopping is False
    assert stronger_classifier("mlp", n_fit=200).estimator.steps[-1][1].early_stopping is True
    assert stronger_classifier("knn", n_fit=8).param_grid == {"kneighborsclassifier__n_neighbors": [5]}
