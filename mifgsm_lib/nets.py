"""What every network reading face templates shares: the vCLUB estimator (:mod:`mifgsm_lib.mi`) and the MLP
gender classifier (:mod:`mifgsm_lib.classifiers`) both read templates of a fixed dimension d (128 for dlib,
512 for ArcFace or f_MLP), validate them, are seeded, and save themselves as ``weights_only`` checkpoints that
carry their sizes as tensors (written and read by :mod:`mifgsm_lib.cache`; nothing is ever unpickled).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import numpy as np
import torch
from torch import nn

from mifgsm_lib.validation import check_labels

ArrayLike = torch.Tensor | np.ndarray
_HPARAM_PREFIX = "hparams."
_Net = TypeVar("_Net", bound="TemplateNetwork")


def label_tensor(
    y: Any, num_classes: int | None = None, *, n: int | None = None, min_classes: int = 2, name: str = "y",
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """:func:`mifgsm_lib.validation.check_labels` as a long tensor (on ``device``, else on ``y``'s device)."""
    if device is None and isinstance(y, torch.Tensor):
        device = y.device
    labels = check_labels(y, n=n, num_classes=num_classes, min_classes=min_classes, name=name)
    return torch.from_numpy(labels).to(device or "cpu")


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


def seeded_init(cls: type[_Net], seed: int, **hparams: int) -> _Net:
    """Build ``cls(**hparams)`` with weights drawn from ``seed``, leaving the global RNG untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return cls(**hparams)
