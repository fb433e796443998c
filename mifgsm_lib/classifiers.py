"""The MLP gender classifier of Sec. 3.1.

The paper's classifier is two fully connected layers of 512 and 1 units with a LeakyReLU between them; its
logit goes through a sigmoid and it is trained with the binary cross entropy on clean templates. Setting A
evaluates attacks with it, FGSM (Sec. 3.2) differentiates its loss, and MI-FGSM-MLP (Eq. 2) estimates the
mutual information on its 512-D hidden features f_MLP(x).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mifgsm_lib.nets import ArrayLike, TemplateNetwork, as_templates, label_tensor, seeded_init, stratified_split
from mifgsm_lib.progress import bar


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
    labels = label_tensor(y, 2)
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
    )
