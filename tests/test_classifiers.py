"""Tests of the MLP gender classifier (Sec. 3.1) and the shared template-network helpers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mifgsm_lib.cache import load_state_dict, save_state_dict
from mifgsm_lib.classifiers import MLPGenderClassifier, train_mlp
from mifgsm_lib.nets import label_tensor, seeded_init, stratified_split


pytestmark = pytest.mark.usefixtures("single_thread")


def gaussian_classes(n: int, dim: int, separation: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    z = rng.normal(size=(n, dim)).astype(np.float32)
    z[:, 0] += separation * (y - 0.5)
    return z, y


@pytest.fixture(scope="module")
def separable():
    z, y = gaussian_classes(600, 16, separation=8.0, seed=0)
    return z, y, train_mlp(z, y, seed=0, max_epochs=30, patience=5, progress=False)


def test_mlp_learns_a_separable_problem(separable) -> None:
    _, _, result = separable
    assert result.train_accuracy > 0.99
    assert result.val_accuracy > 0.98


def test_shapes_of_features_logits_and_predictions(separable) -> None:
    z, _, result = separable
    batch = torch.from_numpy(z[:10])
    model = result.model
    assert model.features(batch).shape == (10, 512)
    assert model(batch).shape == (10,)
    proba = model.predict_proba(batch)
    assert ((proba > 0) & (proba < 1)).all()
    assert set(model.predict(batch).tolist()) <= {0, 1}


def test_features_follow_the_leaky_relu() -> None:
    model = seeded_init(MLPGenderClassifier, 0, dim=4)
    z = torch.randn(32, 4)
    pre = model.fc1(z)
    torch.testing.assert_close(model.features(z), torch.where(pre > 0, pre, 0.01 * pre))


def test_early_stopping_restores_the_best_epoch() -> None:
    # Random labels: the validation loss is lowest early, then rises as the MLP memorises noise.
    rng = np.random.default_rng(1)
    z, y = rng.normal(size=(200, 32)).astype(np.float32), rng.integers(0, 2, 200)
    result = train_mlp(z, y, seed=0, lr=1e-2, batch_size=32, max_epochs=200, patience=5, progress=False)
    history = result.history
    assert len(history["epoch"]) == result.best_epoch + 5 < 200
    assert result.best_epoch == history["epoch"][np.argmin(history["val_loss"])]
    _, val = stratified_split(y, 0.2, seed=0)  # the split train_mlp makes with its defaults
    z_val, y_val = torch.from_numpy(z[val]), torch.from_numpy(y[val])
    with torch.no_grad():
        assert result.model.loss(z_val, y_val).item() == pytest.approx(history["val_loss"].min(), rel=1e-6)
    assert history["val_loss"][-1] > history["val_loss"].min()


def test_same_seed_same_model(separable) -> None:
    z, y, result = separable
    again = train_mlp(z, y, seed=0, max_epochs=30, patience=5, progress=False)
    with torch.no_grad():
        torch.testing.assert_close(again.model(torch.from_numpy(z)), result.model(torch.from_numpy(z)), rtol=0, atol=0)


def test_stratified_split_keeps_class_shares() -> None:
    y = np.array([0] * 80 + [1] * 20)
    train, val = stratified_split(y, 0.25, seed=0)
    assert len(np.intersect1d(train, val)) == 0 and len(train) + len(val) == 100
    assert np.bincount(y[val]).tolist() == [20, 5]


def _round_trip(path, model, cls=MLPGenderClassifier, expected_dim=None):
    """A checkpoint written and read back as the artifacts cache does (weights only)."""
    save_state_dict(path, model.checkpoint_state())
    return cls.from_checkpoint_state(load_state_dict(path), expected_dim, source=str(path))


def test_save_and_load_round_trip(tmp_path, separable) -> None:
    z, _, result = separable
    loaded = _round_trip(tmp_path / "mlp.pt", result.model, expected_dim=16)
    with torch.no_grad():
        torch.testing.assert_close(loaded(torch.from_numpy(z)), result.model(torch.from_numpy(z)))


def test_checkpoint_dimension_must_match(tmp_path) -> None:
    with pytest.raises(ValueError, match=r"dimension d=128, expected d=512"):
        _round_trip(tmp_path / "mlp.pt", MLPGenderClassifier(128), expected_dim=512)


def test_estimator_checkpoint_is_not_a_classifier(tmp_path) -> None:
    from mifgsm_lib.mi import VCLUB

    save_state_dict(tmp_path / "vclub.pt", VCLUB(128).checkpoint_state())
    with pytest.raises(ValueError, match="weights do not fit MLPGenderClassifier"):
        MLPGenderClassifier.from_checkpoint_state(load_state_dict(tmp_path / "vclub.pt"))


def test_bad_input_is_refused() -> None:
    model = MLPGenderClassifier(8)
    with pytest.raises(ValueError, match="dimension 4, expected d=8"):
        model(torch.randn(3, 4))
    with pytest.raises(ValueError, match="NaN"):
        model(torch.full((3, 8), float("nan")))
    with pytest.raises(ValueError, match=r"y: only class\(es\) \[1\]"):
        train_mlp(np.zeros((20, 8), np.float32), np.ones(20, int), progress=False)
    with pytest.raises(ValueError, match="val_fraction=1.5"):
        train_mlp(*gaussian_classes(20, 8, 1.0, 0), val_fraction=1.5, progress=False)
    with pytest.raises(ValueError, match=r"expected shape \(N, d\) with N=3"):
        train_mlp(np.zeros((4, 8), np.float32), np.array([0, 1, 0]), progress=False)


def test_check_labels_messages() -> None:
    with pytest.raises(ValueError, match="expected a 1-D vector"):
        label_tensor(np.zeros((2, 2), int))
    with pytest.raises(ValueError, match=r"0..2 \(num_classes=3\)"):
        label_tensor(np.array([0, 3, 1]), num_classes=3)
    with pytest.raises(ValueError, match="expected integer class labels"):
        label_tensor(np.array([0.0, 0.5, 1.0]))
    with pytest.raises(ValueError, match="expected 4 labels"):
        label_tensor(np.array([0, 1, 1]), n=4)
    assert label_tensor(np.array([0, 2, 1]), num_classes=3).dtype == torch.int64
