"""Face-recognition networks behind one interface: images in [0, 1] -> templates f(x).

Every model takes float images in [0, 1], shape (N, 3, S, S) RGB, with S its chip
side, and does its own normalisation inside. So the attack budget epsilon of
Eqs. 1-4 is always on the [0, 1] pixel scale, whatever the model: the paper's
epsilon = 0.015 is 3.8/255.

- ``dlib`` (default): dlib's ResNet (:mod:`.dlib_resnet`), 150x150 chips, 128-D
  templates, pretrained weights installed offline with ``face_recognition_models``;
- ``iresnet50``: the paper's IResNet50-ArcFace (:mod:`.iresnet`), 112x112 chips,
  512-D templates, with the user's ``backbone.pth``.

:data:`FACE_MODELS` is the one list of models: each entry carries how its chips are made
(:attr:`FaceModelSpec.preprocessing`, read by :mod:`.alignment`) and how the network is built. A new model is
one entry there.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from mifgsm_lib.config import resolve_device
from mifgsm_lib.faces.alignment import DETECTOR_UPSAMPLE, FALLBACK_BOX_FRACTION
from mifgsm_lib.faces.dlib_resnet import DLIB_INPUT_SCALE, DlibResNet
from mifgsm_lib.faces.iresnet import IRESNET_INPUT_SIZE, iresnet50, load_backbone
from mifgsm_lib.progress import bar

#: Images passed through any face model in this process: ``forward`` without a gradient, ``gradient`` with
#: one (a forward and a backward pass); :mod:`mifgsm_lib.pipeline` adds its sweeps' share
#: (``sweep_forward``, ``sweep_gradient``). ``benchmarks/bench_book.py`` compares them with the minimum the
#: book needs.
PASSES: dict[str, int] = {"forward": 0, "gradient": 0, "sweep_forward": 0, "sweep_gradient": 0}


class FaceModel(nn.Module):
    """A face-recognition network f: images (N, 3, S, S) in [0, 1] -> templates (N, d).

    The network's own input normalisation, ``(x - mean) / std`` per RGB channel on
    the [0, 1] scale, is applied inside :meth:`forward`.
    """

    def __init__(
        self,
        network: nn.Module,
        *,
        name: str,
        input_size: int,
        embedding_dim: int,
        mean: tuple[float, float, float],
        std: tuple[float, float, float],
    ) -> None:
        super().__init__()
        self.network = network
        self.name = name
        self.input_size = input_size
        self.embedding_dim = embedding_dim
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    @property
    def preprocessing(self) -> dict[str, Any]:
        """How this model's chips are aligned (see :data:`PREPROCESSING`)."""
        return preprocessing(self.name)

    @property
    def device(self) -> torch.device:
        return self.mean.device

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        expected = (3, self.input_size, self.input_size)
        if images.ndim != 4 or tuple(images.shape[1:]) != expected:
            raise ValueError(
                f"images: expected shape (N, {', '.join(map(str, expected))}) in [0, 1] for the {self.name} model, "
                f"got {tuple(images.shape)}"
            )
        PASSES["gradient" if torch.is_grad_enabled() and images.requires_grad else "forward"] += len(images)
        return self.network((images - self.mean) / self.std)


def _dlib_model(weights: str | Path | None) -> FaceModel:
    """dlib's input layer, (255 x - mean_rgb) / 256, written as (x - mean/255) / (256/255)."""
    network = DlibResNet.from_file(weights)
    return FaceModel(
        network,
        name="dlib",
        input_size=network.input_size,
        embedding_dim=network.embedding_dim,
        mean=tuple(m / 255.0 for m in network.input_mean_rgb),
        std=(DLIB_INPUT_SCALE / 255.0,) * 3,
    )


def _iresnet50_model(weights: str | Path | None) -> FaceModel:
    """arcface_torch's normalisation (x/255 - 0.5) / 0.5, i.e. (x - 0.5) / 0.5 on [0, 1]."""
    if weights is None:
        raise ValueError(
            "weights=None: the iresnet50 model needs an arcface_torch backbone.pth (a path or URL), "
            "which cannot be shipped; pass weights=... or use model 'dlib'"
        )
    network = load_backbone(iresnet50(), weights)
    return FaceModel(network, name="iresnet50", input_size=IRESNET_INPUT_SIZE,
                     embedding_dim=network.embedding_dim, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))


@dataclass(frozen=True)
class FaceModelSpec:
    """One face model: how its chips are made and how its network is built from a weights file.

    ``preprocessing`` is what :func:`mifgsm_lib.faces.alignment.align_faces` reads (chip side, padding,
    landmarks, warp, detector upsampling, fallback box); it is also part of the cache key of every result.
    ``weights`` says whether a weights file is ``"optional"`` (shipped default) or ``"required"``.
    """

    build: Callable[[str | Path | None], FaceModel]
    preprocessing: dict[str, Any]
    weights: str


#: The face models, by name. The first is the embedded default.
FACE_MODELS: dict[str, FaceModelSpec] = {
    "dlib": FaceModelSpec(_dlib_model, {
        "chip_size": 150, "padding": 0.25, "landmarks": "shape_predictor_5_face_landmarks.dat",
        "warp": "dlib.get_face_chip", "detector_upsample": DETECTOR_UPSAMPLE, "fallback_box": FALLBACK_BOX_FRACTION,
    }, weights="optional"),
    "iresnet50": FaceModelSpec(_iresnet50_model, {
        "chip_size": 112, "padding": 0.0, "landmarks": "shape_predictor_68_face_landmarks.dat",
        "warp": "arcface_5point_similarity", "detector_upsample": DETECTOR_UPSAMPLE,
        "fallback_box": FALLBACK_BOX_FRACTION,
    }, weights="required"),
}


def face_model_spec(name: str) -> FaceModelSpec:
    """The registry entry of a face model; a clear error for an unknown name."""
    if name not in FACE_MODELS:
        raise ValueError(f"model={name!r}: expected one of {list(FACE_MODELS)}")
    return FACE_MODELS[name]


def preprocessing(name: str) -> dict[str, Any]:
    """How the chips of face model ``name`` are made (a copy of its :attr:`FaceModelSpec.preprocessing`)."""
    return dict(face_model_spec(name).preprocessing)


def load_face_model(
    name: str = "dlib",
    weights: str | Path | None = None,
    device: str | torch.device = "auto",
    channels_last: bool = True,
) -> FaceModel:
    """A pretrained face model in eval mode on ``device``, its parameters frozen.

    ``weights``: for ``dlib`` an optional other ``.dat`` file; for ``iresnet50`` the
    required ``backbone.pth`` path or URL. ``channels_last`` stores the convolution
    weights NHWC, so that every convolution runs NHWC whatever the input's layout
    (faster on CPUs with oneDNN; see ``benchmarks/bench_embedding.py``).
    """
    model = face_model_spec(name).build(weights).eval().requires_grad_(False)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    return model.to(resolve_device(device), memory_format=memory_format)


def to_tensor(chips: np.ndarray) -> torch.Tensor:
    """uint8 chips (N, S, S, 3) RGB -> float tensor (N, 3, S, S) in [0, 1]."""
    chips = np.asarray(chips)
    if chips.dtype != np.uint8 or chips.ndim != 4 or chips.shape[3] != 3:
        raise ValueError(f"chips: expected a uint8 array (N, S, S, 3), got dtype {chips.dtype} shape {chips.shape}")
    return torch.from_numpy(chips).permute(0, 3, 1, 2).float().div_(255.0)


def embed(
    model: FaceModel,
    chips: np.ndarray | torch.Tensor,
    batch_size: int = 64,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> np.ndarray:
    """Templates f(x) of all chips, (N, d) float32, computed in batches without autograd.

    ``chips``: uint8 (N, S, S, 3) RGB, or a float tensor (N, 3, S, S) in [0, 1].
    ``device``: default the model's; another device moves the model there.
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r}: expected a positive integer")
    if not isinstance(chips, torch.Tensor):
        to_tensor(chips[:1])  # validates dtype and shape before any work
    elif chips.ndim != 4 or chips.shape[1] != 3 or not chips.is_floating_point():
        raise ValueError(f"chips: expected a float tensor (N, 3, S, S) in [0, 1], got {chips.dtype} {tuple(chips.shape)}")
    dev = model.device if device is None else torch.device(device)
    model = model.to(dev)
    out = np.empty((len(chips), model.embedding_dim), dtype=np.float32)
    starts = range(0, len(chips), batch_size)
    with torch.inference_mode():
        for start in bar(starts, desc=f"embedding ({model.name})", disable=not progress):
            batch = chips[start:start + batch_size]
            x = batch.float() if isinstance(batch, torch.Tensor) else to_tensor(batch)
            x = x.to(dev)
            out[start:start + len(x)] = model(x).float().cpu().numpy()
    return out
