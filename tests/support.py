"""Small stand-ins shared by the attack tests."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

SIZE, DIM = 12, 6


class TinyFace(nn.Module):
    """A face-model stand-in with the FaceModel contract: [0,1] images (N,3,H,W) -> templates (N,d)."""

    input_size = SIZE
    embedding_dim = DIM
    name = "tiny"

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 3 * 3, DIM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(F.avg_pool2d(torch.tanh(self.conv(x - 0.5)), 4).flatten(1))


def embed_iterative(attack, images, y, mode: str = "float", batch_size: int = 64, seed: int = 0, progress: bool = False):
    """Templates of MI-PGD's images of a whole set stored in ``mode``, through the one protect-and-embed loop."""
    from mifgsm_lib import attacks, protect

    return protect.embed_protected(attack.face_model, lambda x, yb, _idx: attack(x, yb), images, y,
                                   {"x": lambda adv: attacks.store(adv, mode)}, batch_size=batch_size, seed=seed,
                                   progress=False)["x"]
