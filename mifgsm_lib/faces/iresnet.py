"""The paper's face feature extractor: IResNet50 trained with ArcFace (Sec. 4, [4]).

The layout and the state-dict names are those of insightface's ``arcface_torch``
(``backbones/iresnet.py``), so that its released ``backbone.pth`` files load as they
are: input 112x112 RGB normalised as (x/255 - 0.5)/0.5, output the 512-D template.
The weights cannot be shipped; :func:`load_backbone` loads the user's file (a path
or a URL) with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path

import pooch
import torch
from torch import nn

from mifgsm_lib.cache import UnreadableEntry, load_state_dict
from mifgsm_lib.config import default_data_dir

#: Residual blocks per stage of IResNet50.
IRESNET50_LAYERS = (3, 4, 14, 3)
#: Side of the aligned input chip and of the final feature map (112 / 2**4).
IRESNET_INPUT_SIZE = 112
_FINAL_MAP = 7


def _conv3x3(inplanes: int, planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(inplanes, planes, kernel_size=3, stride=stride, padding=1, bias=False)


class IBasicBlock(nn.Module):
    """BN - conv3x3 - BN - PReLU - conv3x3(stride) - BN, plus the (projected) shortcut."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes, eps=1e-05)
        self.conv1 = _conv3x3(inplanes, planes)
        self.bn2 = nn.BatchNorm2d(planes, eps=1e-05)
        self.prelu = nn.PReLU(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn3 = nn.BatchNorm2d(planes, eps=1e-05)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(planes, eps=1e-05),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        identity = x if self.downsample is None else self.downsample(x)
        return out + identity


class IResNet(nn.Module):
    """``arcface_torch``'s IResNet: conv3x3, BN, PReLU, four stages of stride 2, BN,
    flatten, fc to ``num_features`` and a final BatchNorm1d (``features``)."""

    def __init__(self, layers: tuple[int, ...] = IRESNET50_LAYERS, num_features: int = 512) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64, eps=1e-05)
        self.prelu = nn.PReLU(64)
        inplanes = 64
        for i, (planes, blocks) in enumerate(zip((64, 128, 256, 512), layers), start=1):
            stage = [IBasicBlock(inplanes, planes, stride=2)]
            stage += [IBasicBlock(planes, planes) for _ in range(1, blocks)]
            setattr(self, f"layer{i}", nn.Sequential(*stage))
            inplanes = planes
        self.bn2 = nn.BatchNorm2d(512, eps=1e-05)
        self.dropout = nn.Dropout(p=0.0)
        self.fc = nn.Linear(512 * _FINAL_MAP * _FINAL_MAP, num_features)
        self.features = nn.BatchNorm1d(num_features, eps=1e-05)
        nn.init.constant_(self.features.weight, 1.0)
        self.features.weight.requires_grad = False
        self.embedding_dim = num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.dropout(torch.flatten(self.bn2(x), 1))
        return self.features(self.fc(x))


def iresnet50(num_features: int = 512) -> IResNet:
    """IResNet50 (``arcface_torch.backbones.iresnet50``), randomly initialised."""
    return IResNet(IRESNET50_LAYERS, num_features)


def _resolve_weights(path_or_url: str | Path) -> Path:
    """A local path as is; an http(s) URL downloaded once into ``<data dir>/weights``."""
    text = str(path_or_url)
    if text.startswith(("http://", "https://")):
        return Path(pooch.retrieve(text, known_hash=None, path=default_data_dir() / "weights", progressbar=True))
    return Path(path_or_url)


def check_state_dict(model: nn.Module, state: Mapping[str, torch.Tensor], source: str, show: int = 5) -> None:
    """Raise a ValueError listing the first missing, unexpected and wrongly shaped keys.

    ``num_batches_tracked`` counters do not affect inference and may be absent.
    """
    expected = {k: v.shape for k, v in model.state_dict().items()}
    problems = []
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(expected[k])}"
        for k in expected
        if k in state and tuple(state[k].shape) != tuple(expected[k])
    ]
    for label, items in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes)):
        if items:
            more = f" (+{len(items) - show} more)" if len(items) > show else ""
            problems.append(f"{len(items)} {label}: {', '.join(items[:show])}{more}")
    if problems:
        raise ValueError(
            f"{source}: not an arcface_torch {type(model).__name__} state dict; " + "; ".join(problems)
        )


def load_backbone(model: nn.Module, path_or_url: str | Path) -> nn.Module:
    """Load an ``arcface_torch`` ``backbone.pth`` (path or URL) into ``model``, checked key by key.

    A ``module.`` prefix (checkpoints saved from DistributedDataParallel) is removed.
    """
    path = _resolve_weights(path_or_url)
    try:
        state = load_state_dict(path)
    except (UnreadableEntry, pickle.UnpicklingError, RuntimeError, EOFError) as exc:
        raise ValueError(f"{path}: not a readable torch checkpoint with weights only ({exc})") from exc
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: expected a state dict of tensors (arcface_torch backbone.pth)")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    check_state_dict(model, state, str(path))
    model.load_state_dict(state, strict=False)
    return model
