"""dlib's face-recognition ResNet (``dlib_face_recognition_resnet_model_v1``) in PyTorch.

The attacks (Eqs. 1-4) need the gradient of the template f(x) with respect to the
image x, so the network must run in PyTorch. dlib's pretrained 128-D ResNet
(99.38% on LFW according to dlib) ships with ``face_recognition_models`` on PyPI.
This module reads its ``.dat`` file with NumPy alone and builds an equivalent
``torch.nn.Module``; dlib itself is only used by the tests, as the reference.

The file format (dlib's ``serialize``):

- an integer is a control byte (bit 7: sign, low 4 bits: length n), then n
  little-endian bytes; a float is two integers, mantissa m then exponent e, the
  value m * 2**e; a string is a length then bytes; a bool is the byte '1' or '0';
- a tensor is version 2, then n, k, nr, nc, then raw little-endian float32;
  an alias tensor (a view into a layer's flat ``params``) has version 1 and the
  four sizes, no data;
- the loss layer comes first (``loss_metric_2``), then the version numbers of every
  layer, tag and skip, outermost first, then the input layer (3 channel means and
  the 150x150 size), then each layer's details, in forward order, each followed by
  the ``add_layer`` bookkeeping (3 bools, 3 empty tensors, and for the first layer
  the sample expansion factor).

The file does not record the topology; it is the template of dlib's
``dnn_face_recognition_ex.cpp`` and is fixed in code here (:data:`LEVELS`).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

#: The pretrained network's file name inside ``face_recognition_models``.
DLIB_RESNET_FILE = "dlib_face_recognition_resnet_model_v1.dat"

#: dlib's ``input_rgb_image_sized`` divides by 256 after subtracting the channel means.
DLIB_INPUT_SCALE = 256.0

#: The residual levels of ``dnn_face_recognition_ex.cpp`` in forward order:
#: (filters, residual blocks, whether the first block downsamples).
LEVELS: tuple[tuple[int, int, bool], ...] = (
    (32, 3, False),   # alevel4: ares<32> x3
    (64, 4, True),    # alevel3: ares_down<64>, ares<64> x3
    (128, 3, True),   # alevel2: ares_down<128>, ares<128> x2
    (256, 3, True),   # alevel1: ares_down<256>, ares<256> x2
    (256, 1, True),   # alevel0: ares_down<256>
)


def dlib_model_file(name: str) -> Path:
    """Path of one of dlib's model files shipped by the ``face_recognition_models`` package.

    The package is located with ``importlib.util.find_spec``: importing it fails
    with current setuptools (it imports ``pkg_resources``).
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "package face_recognition_models is not installed (pip install face_recognition_models); "
            f"it ships {name}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / name
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file in face_recognition_models (expected {name})")
    return path


# --------------------------------------------------------------------------- parsing


@dataclass(frozen=True)
class DlibLayer:
    """One computational layer of the file: its dlib name, geometry and arrays."""

    kind: str
    geometry: dict[str, int] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass(frozen=True)
class DlibNetFile:
    """The content of a dlib network file that matters for inference."""

    loss: str
    input_mean_rgb: tuple[float, float, float]
    input_size: tuple[int, int]
    layers: list[DlibLayer]


class _Reader:
    """Sequential reader of dlib's serialisation primitives."""

    def __init__(self, data: bytes, path: Path) -> None:
        self.data = data
        self.path = path
        self.pos = 0

    def _take(self, n: int, what: str) -> bytes:
        if self.pos + n > len(self.data):
            raise ValueError(f"{self.path}: truncated while reading {what} at byte {self.pos}")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def integer(self) -> int:
        control = self._take(1, "an integer")[0]
        value = int.from_bytes(self._take(control & 0x0F, "an integer"), "little")
        return -value if control & 0x80 else value

    def real(self) -> float:
        mantissa = self.integer()
        exponent = self.integer()
        return float(np.ldexp(float(mantissa), exponent))

    def string(self) -> str:
        return self._take(self.integer(), "a string").decode("latin-1")

    def boolean(self) -> bool:
        byte = self._take(1, "a bool")
        if byte not in (b"0", b"1"):
            raise ValueError(f"{self.path}: expected a bool ('0' or '1') at byte {self.pos - 1}, found {byte!r}")
        return byte == b"1"

    def expect_version(self, expected: int, what: str) -> None:
        version = self.integer()
        if version != expected:
            raise ValueError(f"{self.path}: {what} has version {version} at byte {self.pos}, expected {expected}")

    def tensor(self) -> np.ndarray:
        self.expect_version(2, "a tensor")
        shape = tuple(self.integer() for _ in range(4))
        count = int(np.prod(shape))
        return np.frombuffer(self._take(4 * count, "tensor data"), dtype="<f4").reshape(shape).astype(np.float32)

    def alias(self) -> tuple[int, int, int, int]:
        self.expect_version(1, "an alias tensor")
        return tuple(self.integer() for _ in range(4))  # type: ignore[return-value]


def _slices(params: np.ndarray, *shapes: tuple[int, ...]) -> list[np.ndarray]:
    """Cut a layer's flat ``params`` into consecutive arrays of the given alias shapes."""
    flat, out, start = params.reshape(-1), [], 0
    for shape in shapes:
        size = int(np.prod(shape))
        out.append(flat[start:start + size].reshape(shape))
        start += size
    return out


def _read_con(r: _Reader) -> DlibLayer:
    params = r.tensor()
    keys = ("filters", "nr", "nc", "stride_y", "stride_x", "pad_y", "pad_x")
    geometry = {k: r.integer() for k in keys}
    weight, bias = _slices(params, r.alias(), r.alias())
    for _ in range(4):  # learning-rate and weight-decay multipliers
        r.real()
    return DlibLayer("con", geometry, {"weight": weight, "bias": bias.reshape(-1)})


def _read_affine(r: _Reader) -> DlibLayer:
    params = r.tensor()
    gamma, beta = _slices(params, r.alias(), r.alias())
    r.integer()  # mode (fc or conv); the parameters are per channel either way here
    return DlibLayer("affine", {}, {"gamma": gamma.reshape(-1), "beta": beta.reshape(-1)})


def _read_pool(kind: str):
    def read(r: _Reader) -> DlibLayer:
        keys = ("nr", "nc", "stride_y", "stride_x", "pad_y", "pad_x")
        return DlibLayer(kind, {k: r.integer() for k in keys})

    return read


def _read_fc(r: _Reader) -> DlibLayer:
    outputs, inputs = r.integer(), r.integer()
    params = r.tensor()
    weight_shape, bias_shape = r.alias(), r.alias()
    bias_mode = r.integer()
    for _ in range(4):
        r.real()
    if bias_mode != 1 or int(np.prod(bias_shape)) != 0:
        raise ValueError(f"{r.path}: expected fc_no_bias (bias mode 1), found bias mode {bias_mode}")
    (weight,) = _slices(params, weight_shape)
    return DlibLayer("fc", {"outputs": outputs, "inputs": inputs}, {"weight": weight.reshape(inputs, outputs)})


_LAYER_READERS = {
    "con_4": _read_con,
    "affine_": _read_affine,
    "relu_": lambda r: DlibLayer("relu"),
    "max_pool_2": _read_pool("max_pool"),
    "avg_pool_2": _read_pool("avg_pool"),
    "add_prev_": lambda r: DlibLayer("add_prev"),
    "fc_2": _read_fc,
}


def parse_dlib_dat(path: str | Path) -> DlibNetFile:
    """Read a dlib ``loss_metric`` network file (``dlib_face_recognition_resnet_model_v1.dat``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such dlib network file (expected {DLIB_RESNET_FILE})")
    r = _Reader(path.read_bytes(), path)
    r.expect_version(1, "add_loss_layer")
    loss = r.string()
    if not loss.startswith("loss_metric"):
        raise ValueError(f"{path}: loss layer is {loss!r}, expected loss_metric_2 (a dlib metric network)")
    r.real(), r.real()  # margin, distance threshold
    versions = []
    while (version := r.integer()) != 3:  # add_layer 2, tag/skip 1; the innermost add_layer (input) is 3
        if version not in (1, 2):
            raise ValueError(f"{path}: unexpected layer version {version} at byte {r.pos}")
        versions.append(version)
    input_name = r.string()
    if input_name != "input_rgb_image_sized":
        raise ValueError(f"{path}: input layer is {input_name!r}, expected input_rgb_image_sized")
    mean = (r.real(), r.real(), r.real())
    size = (r.integer(), r.integer())
    layers = []
    while r.pos < len(r.data):
        name = r.string()
        if name not in _LAYER_READERS:
            raise ValueError(f"{path}: unknown layer {name!r} at byte {r.pos}; known: {sorted(_LAYER_READERS)}")
        layers.append(_LAYER_READERS[name](r))
        for _ in range(3):  # this_layer_setup_called, gradient_input_is_stale, output getters disabled
            r.boolean()
        for _ in range(3):  # x_grad, cached_output, params_grad (or grad_final): empty after clean()
            r.tensor()
        if len(layers) == 1:
            r.integer()  # the input add_layer's sample expansion factor
    if versions.count(2) + 1 != len(layers):
        raise ValueError(f"{path}: {versions.count(2) + 1} layers announced but {len(layers)} found")
    return DlibNetFile(loss, mean, size, layers)


# --------------------------------------------------------------------------- network


def add_prev(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's ``add_prev``: the output takes the larger size in every dimension and the
    smaller tensor is zero-padded at the end (channels, rows and columns)."""
    if a.shape == b.shape:
        return a + b
    size = [max(x, y) for x, y in zip(a.shape[1:], b.shape[1:])]

    def pad(t: torch.Tensor) -> torch.Tensor:
        c, h, w = t.shape[1:]
        return F.pad(t, (0, size[2] - w, 0, size[1] - h, 0, size[0] - c))

    return pad(a) + pad(b)


def _conv_affine(con: DlibLayer, affine: DlibLayer) -> nn.Conv2d:
    """``affine<con<...>>`` as one convolution: gamma * (W x + b) + beta, batch norm already folded."""
    g = con.geometry
    weight = torch.from_numpy(con.arrays["weight"])
    gamma = torch.from_numpy(affine.arrays["gamma"])
    conv = nn.Conv2d(weight.shape[1], g["filters"], (g["nr"], g["nc"]),
                     stride=(g["stride_y"], g["stride_x"]), padding=(g["pad_y"], g["pad_x"]))
    with torch.no_grad():
        conv.weight.copy_(weight * gamma[:, None, None, None])
        conv.bias.copy_(torch.from_numpy(con.arrays["bias"]) * gamma + torch.from_numpy(affine.arrays["beta"]))
    return conv


class _Layers:
    """A cursor over the parsed layers that checks each against the fixed topology."""

    def __init__(self, layers: list[DlibLayer]) -> None:
        self.layers = layers
        self.i = 0

    def take(self, kind: str, **geometry: int) -> DlibLayer:
        if self.i >= len(self.layers):
            raise ValueError(f"layer {self.i}: the file ends, expected {kind} (dnn_face_recognition_ex topology)")
        layer = self.layers[self.i]
        wrong = {k: layer.geometry.get(k) for k, v in geometry.items() if layer.geometry.get(k) != v}
        if layer.kind != kind or wrong:
            raise ValueError(
                f"layer {self.i}: found {layer.kind} {layer.geometry}, expected {kind} {geometry} "
                "(the file is not dlib's face-recognition ResNet)"
            )
        self.i += 1
        return layer

    def conv_affine(self, filters: int, kernel: int, stride: int) -> nn.Conv2d:
        con = self.take("con", filters=filters, nr=kernel, nc=kernel, stride_y=stride, stride_x=stride)
        return _conv_affine(con, self.take("affine"))


class DlibResidualBlock(nn.Module):
    """``relu<add_prev<block<tag1<x>>>>`` (``ares``) or, with ``down``, ``ares_down``:
    the shortcut is then ``avg_pool<2,2,2,2>`` of the input, zero-padded by :func:`add_prev`."""

    def __init__(self, conv1: nn.Conv2d, conv2: nn.Conv2d, shortcut_pool: tuple[int, int] | None) -> None:
        super().__init__()
        self.conv1 = conv1
        self.conv2 = conv2
        self.shortcut_pool = shortcut_pool  # (window, stride) or None for the identity

    @classmethod
    def from_layers(cls, layers: _Layers, filters: int, down: bool) -> DlibResidualBlock:
        conv1 = layers.conv_affine(filters, 3, 2 if down else 1)
        layers.take("relu")
        conv2 = layers.conv_affine(filters, 3, 1)
        pool = None
        if down:
            p = layers.take("avg_pool", nr=2, nc=2, stride_y=2, stride_x=2, pad_y=0, pad_x=0)
            pool = (p.geometry["nr"], p.geometry["stride_y"])
        layers.take("add_prev")
        layers.take("relu")
        return cls(conv1, conv2, pool)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(F.relu(self.conv1(x), inplace=True))
        shortcut = x if self.shortcut_pool is None else F.avg_pool2d(x, *self.shortcut_pool)
        return F.relu(add_prev(y, shortcut), inplace=True)


class DlibResNet(nn.Module):
    """dlib's ``anet_type``: conv 7x7/2, affine, relu, max_pool 3x3/2, the residual
    :data:`LEVELS`, global average pooling and ``fc_no_bias`` 256 -> 128.

    Takes images already through dlib's input layer, ``(x - mean_rgb) / 256`` with x
    RGB in 0..255 (see :attr:`input_mean_rgb`); returns the raw 128-D descriptor.
    Batch norm is folded into the ``affine`` layers in the file, and each affine is
    folded here into the convolution before it.
    """

    def __init__(self, net: DlibNetFile) -> None:
        super().__init__()
        layers = _Layers(net.layers)
        self.input_mean_rgb = net.input_mean_rgb
        self.input_size = net.input_size[0]
        self.stem = layers.conv_affine(32, 7, 2)
        layers.take("relu")
        pool = layers.take("max_pool", nr=3, nc=3, stride_y=2, stride_x=2)
        self.stem_pool = (pool.geometry["nr"], pool.geometry["stride_y"], pool.geometry["pad_y"])
        blocks = []
        for filters, count, down in LEVELS:
            for j in range(count):
                blocks.append(DlibResidualBlock.from_layers(layers, filters, down and j == 0))
        self.blocks = nn.Sequential(*blocks)
        layers.take("avg_pool", nr=0, nc=0)  # avg_pool_everything
        fc = layers.take("fc")
        self.fc = nn.Linear(fc.geometry["inputs"], fc.geometry["outputs"], bias=False)
        with torch.no_grad():
            self.fc.weight.copy_(torch.from_numpy(fc.arrays["weight"]).T)
        if layers.i != len(net.layers):
            raise ValueError(f"{len(net.layers) - layers.i} layers left over after the fixed topology")
        self.embedding_dim = fc.geometry["outputs"]

    @classmethod
    def from_file(cls, path: str | Path | None = None) -> DlibResNet:
        """Build the network from a ``.dat`` file (default: the one in ``face_recognition_models``)."""
        return cls(parse_dlib_dat(path if path is not None else dlib_model_file(DLIB_RESNET_FILE)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.stem(x), inplace=True)
        x = F.max_pool2d(x, *self.stem_pool)
        x = self.blocks(x)
        return self.fc(x.mean(dim=(2, 3)))


def dlib_descriptors(chips: np.ndarray) -> np.ndarray:
    """dlib's own ``compute_face_descriptor`` of each uint8 RGB chip, as an (N, 128) float64 array.

    The reference the port is checked against (tests, and the templates chapter); needs the ``dlib`` module.
    """
    import dlib

    chips = np.asarray(chips)
    if chips.dtype != np.uint8 or chips.ndim != 4 or chips.shape[3] != 3:
        raise ValueError(f"chips: expected a uint8 array (N, S, S, 3), got dtype {chips.dtype} shape {chips.shape}")
    reference = dlib.face_recognition_model_v1(str(dlib_model_file(DLIB_RESNET_FILE)))
    return np.array([np.array(reference.compute_face_descriptor(np.ascontiguousarray(c))) for c in chips])
