"""The MLP gender classifier of Sec. 3.1, and what every network reading face templates shares.

The paper's classifier is two fully connected layers of 512 and 1 units with a
LeakyReLU between them; its logit goes through a sigmoid and it is trained with
the binary cross entropy on clean templates. Setting A evaluates attacks with it,
FGSM (Sec. 3.2) differentiates its loss, and MI-FGSM-MLP (Eq. 2) estimates the
mutual information on its 512-D hidden features f_MLP(x).

:class:`TemplateNetwork` is the base of this classifier and of the vCLUB
estimator (:mod:`mifgsm_lib.mi`): both read templates of a fixed dimension d
(128 for dlib, 512 for ArcFace or f_MLP), validate them, and save themselves as
``weights_only`` checkpoints that carry their sizes as tensors.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mifgsm_lib.cache import load_state_dict, save_state_dict
from mifgsm_lib.progress import bar

ArrayLike = torch.Tensor | np.ndarray
_HPARAM_PREFIX = "hparams."
_Net = TypeVar("_Net", bound="TemplateNetwork")


def check_labels(y: ArrayLike, num_classes: int = 2, *, name: str = "y", min_classes: int = 2) -> torch.Tensor:
    """Validate class labels and return them as a 1-D ``int64`` tensor.

    Labels must be integers in ``0..num_classes-1`` and at least ``min_classes``
    distinct classes must be present: with one class only, the vCLUB estimate
    (Eq. 7) is identically 0 and has no gradient, and a classifier cannot be fitted.
    """
    labels = torch.as_tensor(y)
    if labels.dtype.is_floating_point or labels.dtype.is_complex:
        raise ValueError(f"{name}: expected integer class labels, got dtype {labels.dtype}")
    if labels.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D vector of labels, got shape {tuple(labels.shape)}")
    labels = labels.long()
    if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"{name}: labels must lie in 0..{num_classes - 1} (num_classes={num_classes}), "
            f"got values in {int(labels.min())}..{int(labels.max())}"
        )
    present = torch.unique(labels).tolist()
    if len(present) < min_classes:
        raise ValueError(
            f"{name}: only class(es) {present} present in {labels.numel()} labels; expected at least "
            f"{min_classes} classes (with one class the vCLUB estimate is 0 and has no gradient)"
        )
    return labels


def as_templates(z: ArrayLike) -> torch.Tensor:
    """Templates as a float tensor (NumPy arrays become ``float32``; tensors keep their dtype)."""
    tensor = torch.as_tensor(z)
    return tensor if tensor.dtype.is_floating_point else tensor.float()


def stratified_split(y: ArrayLike, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a train/validation split that keeps each class's share (seeded)."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction={val_fraction!r}: expected a number strictly between 0 and 1")
    labels = np.asarray(y)
    if labels.ndim != 1:
        raise ValueError(f"y: expected a 1-D vector of labels, got shape {labels.shape}")
    rng = np.random.default_rng(seed)
    train, val = [], []
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        n_val = int(round(val_fraction * len(members)))
        if n_val < 1 or n_val >= len(members):
            raise ValueError(
                f"val_fraction={val_fraction}: class {c} has {len(members)} samples, too few to put "
                "at least one in both the training and the validation split"
            )
        val.append(members[:n_val])
        train.append(members[n_val:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val))


class TemplateNetwork(nn.Module):
    """A network that reads face templates of dimension ``dim``.

    Subclasses name the constructor arguments that define their shape in
    ``hparam_names``; :meth:`checkpoint_state` stores them as tensors next to the
    weights so that :meth:`from_checkpoint_state` can rebuild the network.
    """

    hparam_names: tuple[str, ...] = ("dim",)

    def __init__(self, dim: int) -> None:
        super().__init__()
        if not isinstance(dim, (int, np.integer)) or dim < 1:
            raise ValueError(f"dim={dim!r}: expected a positive template dimension")
        self.dim = int(dim)

    def check_templates(self, z: torch.Tensor, *, name: str = "z") -> torch.Tensor:
        """Raise a clear error unless ``z`` is a finite ``(N, dim)`` float tensor."""
        if not isinstance(z, torch.Tensor):
            raise ValueError(f"{name}: expected a torch.Tensor of templates, got {type(z).__name__}")
        if z.ndim != 2:
            raise ValueError(f"{name}: expected templates of shape (N, {self.dim}), got shape {tuple(z.shape)}")
        if z.shape[1] != self.dim:
            raise ValueError(
                f"{name}: templates have dimension {z.shape[1]}, expected d={self.dim} "
                f"(the dimension {type(self).__name__} was built or trained for)"
            )
        if not z.dtype.is_floating_point:
            raise ValueError(f"{name}: expected floating-point templates, got dtype {z.dtype}")
        if not bool(torch.isfinite(z).all()):
            raise ValueError(f"{name}: templates contain NaN or infinite values")
        return z

    def hparams(self) -> dict[str, int]:
        return {k: int(getattr(self, k)) for k in self.hparam_names}

    def checkpoint_state(self) -> dict[str, torch.Tensor]:
        """The weights (cloned to the CPU) plus the sizes, as a tensor-only state dict."""
        state = {k: v.detach().cpu().clone() for k, v in self.state_dict().items()}
        state.update({_HPARAM_PREFIX + k: torch.tensor(v) for k, v in self.hparams().items()})
        return state

    @classmethod
    def from_checkpoint_state(
        cls: type[_Net],
        state: Mapping[str, Any],
        expected_dim: int | None = None,
        *,
        source: str = "state",
    ) -> _Net:
        """Rebuild a network from :meth:`checkpoint_state`; check its template dimension."""
        missing = [k for k in cls.hparam_names if _HPARAM_PREFIX + k not in state]
        if missing:
            raise ValueError(f"{source}: not a {cls.__name__} checkpoint (no stored {', '.join(missing)})")
        hparams = {k: int(state[_HPARAM_PREFIX + k]) for k in cls.hparam_names}
        if expected_dim is not None and hparams["dim"] != expected_dim:
            raise ValueError(
                f"{source}: the {cls.__name__} checkpoint reads templates of dimension d={hparams['dim']}, "
                f"expected d={expected_dim} (was it trained on another face model's templates?)"
            )
        net = cls(**hparams)
        weights = {k: v for k, v in state.items() if not k.startswith(_HPARAM_PREFIX)}
        try:
            net.load_state_dict(weights)
        except RuntimeError as exc:
            raise ValueError(f"{source}: weights do not fit {cls.__name__}({hparams}): {exc}") from exc
        return net

    def save(self, path: str | Path) -> Path:
        """Atomically write :meth:`checkpoint_state` to ``path``."""
        return save_state_dict(Path(path), self.checkpoint_state())

    @classmethod
    def load(cls: type[_Net], path: str | Path, expected_dim: int | None = None) -> _Net:
        """Load a checkpoint written by :meth:`save` (``weights_only``), in eval mode."""
        return cls.from_checkpoint_state(load_state_dict(Path(path)), expected_dim, source=str(path)).eval()


def seeded_init(cls: type[_Net], seed: int, **hparams: int) -> _Net:
    """Build ``cls(**hparams)`` with weights drawn from ``seed``, leaving the global RNG untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return cls(**hparams)


class MLPGenderClassifier(TemplateNetwork):
    """Sec. 3.1: Linear(d, 512), LeakyReLU, Linear(512, 1); sigmoid and BCE on the logit."""

    hparam_names = ("dim", "hidden")

    def __init__(self, dim: int, hidden: int = 512) -> None:
        super().__init__(dim)
        self.hidden = int(hidden)
        self.fc1 = nn.Linear(self.dim, self.hidden)
        self.act = nn.LeakyReLU()
        self.fc2 = nn.Linear(self.hidden, 1)

    def features(self, z: torch.Tensor) -> torch.Tensor:
        """f_MLP(z): the ``(N, 512)`` hidden features after the LeakyReLU (used by MI-FGSM-MLP, Eq. 2)."""
        return self.act(self.fc1(self.check_templates(z)))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """The logits ``(N,)`` of p(y = 1 | z) (used by FGSM and setting A)."""
        return self.fc2(self.features(z)).squeeze(-1)

    def predict_proba(self, z: torch.Tensor) -> torch.Tensor:
        """p(y = 1 | z), the sigmoid of the logit."""
        return torch.sigmoid(self(z))

    def predict(self, z: torch.Tensor) -> torch.Tensor:
        """Hard labels ``(N,)`` in {0, 1}."""
        return (self(z) > 0).long()

    def loss(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The binary cross entropy H(p, p̂) of Sec. 3.2 (mean over the batch)."""
        return F.binary_cross_entropy_with_logits(self(z), y.to(z.dtype))


@dataclass
class MLPTrainingResult:
    """A trained :class:`MLPGenderClassifier` (restored to its best validation epoch) and its curves."""

    model: MLPGenderClassifier
    history: dict[str, np.ndarray]  # epoch, train_loss, val_loss, val_accuracy
    best_epoch: int
    train_accuracy: float
    val_accuracy: float
    train_indices: np.ndarray
    val_indices: np.ndarray


def accuracy(model: MLPGenderClassifier, z: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of templates whose predicted gender equals the label."""
    with torch.no_grad():
        return float((model.predict(z) == y).double().mean())


def train_mlp(
    z: ArrayLike,
    y: ArrayLike,
    seed: int = 0,
    val_fraction: float = 0.2,
    lr: float = 1e-3,
    batch_size: int = 128,
    max_epochs: int = 200,
    patience: int = 10,
    progress: bool = True,
    device: str | torch.device = "cpu",
) -> MLPTrainingResult:
    """Train the Sec. 3.1 classifier with Adam and BCE, early-stopped on a stratified validation split.

    Training stops after ``patience`` epochs without a lower validation loss and
    the weights of the best epoch are restored.
    """
    for name, value in (("batch_size", batch_size), ("max_epochs", max_epochs), ("patience", patience)):
        if value < 1:
            raise ValueError(f"{name}={value!r}: expected a positive integer")
    labels = check_labels(y, 2)
    templates = as_templates(z)
    if templates.ndim != 2 or len(templates) != len(labels):
        raise ValueError(f"z: expected shape (N, d) with N={len(labels)} labels, got {tuple(templates.shape)}")
    train_idx, val_idx = stratified_split(labels, val_fraction, seed)
    model = seeded_init(MLPGenderClassifier, seed, dim=templates.shape[1]).to(device)
    model.check_templates(templates)
    z_train, y_train = templates[train_idx].to(device), labels[train_idx].to(device)
    z_val, y_val = templates[val_idx].to(device), labels[val_idx].to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    order = torch.Generator().manual_seed(seed)
    best_loss, best_epoch, best_state = float("inf"), 0, model.checkpoint_state()
    rows = []
    for epoch in bar(range(1, max_epochs + 1), desc="MLP epochs", disable=not progress):
        model.train()
        batch_losses = []
        for batch in torch.randperm(len(train_idx), generator=order).split(batch_size):
            batch = batch.to(device)
            loss = model.loss(z_train[batch], y_train[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            batch_losses.append(loss.item())
        model.eval()
        with torch.no_grad():
            val_loss = model.loss(z_val, y_val).item()
        rows.append((epoch, np.mean(batch_losses), val_loss, accuracy(model, z_val, y_val)))
        if val_loss < best_loss:
            best_loss, best_epoch, best_state = val_loss, epoch, model.checkpoint_state()
        elif epoch - best_epoch >= patience:
            break
    model = MLPGenderClassifier.from_checkpoint_state(best_state).to(device).eval()
    history = dict(zip(("epoch", "train_loss", "val_loss", "val_accuracy"), map(np.asarray, zip(*rows))))
    return MLPTrainingResult(
        model=model,
        history=history,
        best_epoch=best_epoch,
        train_accuracy=accuracy(model, z_train, y_train),
        val_accuracy=accuracy(model, z_val, y_val),
        train_indices=train_idx,
        val_indices=val_idx,
    )


def save_classifier(path: str | Path, model: MLPGenderClassifier) -> Path:
    """Write the classifier as a ``weights_only`` checkpoint (weights, d and hidden size)."""
    return model.save(path)


def load_classifier(path: str | Path, expected_dim: int | None = None) -> MLPGenderClassifier:
    """Load a classifier saved by :func:`save_classifier`; a clear error if its d is not ``expected_dim``."""
    return MLPGenderClassifier.load(path, expected_dim)
