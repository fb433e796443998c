"""The face models: dlib's ResNet port against dlib itself, IResNet50's loader, the common interface."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mifgsm_lib.faces.dlib_resnet import (
    DLIB_RESNET_FILE,
    DlibResNet,
    add_prev,
    dlib_descriptors,
    dlib_model_file,
    parse_dlib_dat,
)
from mifgsm_lib.faces.models import FaceModel, embed, load_face_model, to_tensor
from mifgsm_lib.faces.iresnet import iresnet50, load_backbone

N_LFW_CHIPS = 8


@pytest.fixture(scope="module")
def dlib_model() -> FaceModel:
    return load_face_model("dlib", device="cpu")


@pytest.fixture(scope="module")
def lfw_chips(mirror: Path) -> np.ndarray:
    """dlib chips of the first image of N_LFW_CHIPS different people (sorted names)."""
    from mifgsm_lib.faces.alignment import align_faces

    people = sorted(p for p in (mirror / "lfw" / "lfw").iterdir() if p.is_dir())[:: 500][:N_LFW_CHIPS]
    paths = [sorted(p.glob("*.jpg"))[0] for p in people]
    return align_faces(paths, "dlib", progress=False).chips


# ------------------------------------------------------------------ dlib port vs dlib


def test_dlib_port_matches_dlib_on_lfw_chips(dlib_model: FaceModel, lfw_chips: np.ndarray) -> None:
    assert len(lfw_chips) == N_LFW_CHIPS
    ours = embed(dlib_model, lfw_chips, batch_size=4, progress=False)
    assert np.abs(ours - dlib_descriptors(lfw_chips)).max() <= 1e-4


def test_dlib_port_matches_dlib_on_noise_chips(dlib_model: FaceModel) -> None:
    rng = np.random.default_rng(0)
    chips = rng.integers(0, 256, size=(4, 150, 150, 3), dtype=np.uint8)
    chips[3] = rng.integers(0, 2, size=(150, 150, 1), dtype=np.uint8) * 255  # saturated black/white
    ours = embed(load_face_model("dlib", device="cpu", channels_last=False), chips, progress=False)
    assert np.abs(ours - dlib_descriptors(chips)).max() <= 1e-4


def test_channels_last_and_batch_size_do_not_change_templates(dlib_model: FaceModel) -> None:
    chips = np.random.default_rng(1).integers(0, 256, size=(5, 150, 150, 3), dtype=np.uint8)
    a = embed(dlib_model, chips, batch_size=5, progress=False)
    b = embed(load_face_model("dlib", device="cpu", channels_last=False), chips, batch_size=2, progress=False)
    np.testing.assert_allclose(a, b, atol=1e-5)


def test_dlib_port_is_differentiable_wrt_input(dlib_model: FaceModel) -> None:
    x = torch.rand(2, 3, 150, 150, generator=torch.Generator().manual_seed(0), requires_grad=True)
    template = dlib_model(x)
    template[:, 0].sum().backward()
    assert x.grad is not None and x.grad.shape == x.shape
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    # finite difference along the gradient agrees with the gradient (first order)
    with torch.no_grad():
        step = 1e-3 * x.grad / x.grad.norm()
        delta = dlib_model(x + step)[:, 0].sum() - template[:, 0].sum()
    assert delta.item() == pytest.approx((x.grad * step).sum().item(), rel=0.05)


def test_dlib_file_structure() -> None:
    net = parse_dlib_dat(dlib_model_file(DLIB_RESNET_FILE))
    assert net.loss == "loss_metric_2"
    assert net.input_size == (150, 150)
    np.testing.assert_allclose(net.input_mean_rgb, (122.782, 117.001, 104.298), atol=1e-3)
    kinds = [layer.kind for layer in net.layers]
    assert kinds[:4] == ["con", "affine", "relu", "max_pool"] and kinds[-2:] == ["avg_pool", "fc"]
    assert kinds.count("con") == 29 and kinds.count("add_prev") == 14
    assert net.layers[-1].arrays["weight"].shape == (256, 128)


def test_dlib_parser_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such dlib network file"):
        parse_dlib_dat(tmp_path / "missing.dat")
    truncated = tmp_path / "truncated.dat"
    truncated.write_bytes(dlib_model_file(DLIB_RESNET_FILE).read_bytes()[:5000])
    with pytest.raises(ValueError, match="truncated while reading"):
        parse_dlib_dat(truncated)
    wrong = tmp_path / "wrong.dat"
    wrong.write_bytes(b"\x01\x01\x01\x08loss_mmod")
    with pytest.raises(ValueError, match="expected loss_metric_2"):
        parse_dlib_dat(wrong)


def test_add_prev_zero_pads_at_the_end() -> None:
    small = torch.ones(1, 2, 3, 3)
    large = torch.full((1, 4, 4, 4), 10.0)
    out = add_prev(small, large)
    assert out.shape == (1, 4, 4, 4)
    assert torch.all(out[:, :2, :3, :3] == 11) and torch.all(out[:, 2:] == 10)
    assert torch.all(out[:, :, 3, :] == 10) and torch.all(out[:, :, :, 3] == 10)


def test_dlib_topology_mismatch_is_reported() -> None:
    net = parse_dlib_dat(dlib_model_file(DLIB_RESNET_FILE))
    net.layers.insert(5, net.layers[2])  # a relu between the first block's con and affine
    with pytest.raises(ValueError, match=r"layer 5: found relu \{\}, expected affine"):
        DlibResNet(net)


# ------------------------------------------------------------------ the common interface


def test_face_model_interface(dlib_model: FaceModel) -> None:
    assert (dlib_model.name, dlib_model.input_size, dlib_model.embedding_dim) == ("dlib", 150, 128)
    assert dlib_model.preprocessing["chip_size"] == 150 and dlib_model.preprocessing["padding"] == 0.25
    assert not any(p.requires_grad for p in dlib_model.parameters())
    with pytest.raises(ValueError, match=r"images: expected shape \(N, 3, 150, 150\)"):
        dlib_model(torch.zeros(1, 3, 112, 112))


def test_embed_accepts_tensor_in_unit_range(dlib_model: FaceModel) -> None:
    chips = np.random.default_rng(2).integers(0, 256, size=(3, 150, 150, 3), dtype=np.uint8)
    from_uint8 = embed(dlib_model, chips, progress=False)
    from_tensor = embed(dlib_model, to_tensor(chips), progress=False)
    assert from_uint8.dtype == np.float32 and from_uint8.shape == (3, 128)
    np.testing.assert_allclose(from_uint8, from_tensor, atol=1e-6)


def test_to_tensor_and_embed_errors(dlib_model: FaceModel) -> None:
    x = to_tensor(np.full((2, 4, 4, 3), 255, dtype=np.uint8))
    assert x.shape == (2, 3, 4, 4) and x.dtype == torch.float32 and float(x.max()) == 1.0
    with pytest.raises(ValueError, match="chips: expected a uint8 array"):
        to_tensor(np.zeros((2, 4, 4, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="chips: expected a uint8 array"):
        embed(dlib_model, np.zeros((2, 3, 150, 150), dtype=np.uint8), progress=False)
    with pytest.raises(ValueError, match="batch_size=0"):
        embed(dlib_model, np.zeros((1, 150, 150, 3), dtype=np.uint8), batch_size=0, progress=False)


def test_load_face_model_errors() -> None:
    with pytest.raises(ValueError, match="model='vgg': expected one of"):
        load_face_model("vgg")
    with pytest.raises(ValueError, match="weights=None: the iresnet50 model needs"):
        load_face_model("iresnet50")


# ------------------------------------------------------------------ IResNet50


@pytest.fixture(scope="module")
def random_backbone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    net = iresnet50().eval()
    for m in net.modules():  # non-trivial running statistics so that eval mode matters
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    path = tmp_path_factory.mktemp("weights") / "backbone.pth"
    torch.save(net.state_dict(), path)
    return path


def test_iresnet50_state_dict_round_trip(random_backbone: Path) -> None:
    model = load_face_model("iresnet50", weights=str(random_backbone), device="cpu")
    saved = torch.load(random_backbone, weights_only=True)
    loaded = model.network.state_dict()
    assert loaded.keys() == saved.keys()
    assert all(torch.equal(loaded[k], saved[k]) for k in saved)
    # arcface_torch's names
    for key in ("conv1.weight", "prelu.weight", "layer3.13.bn3.running_var", "layer1.0.downsample.0.weight",
                "fc.weight", "features.running_mean"):
        assert key in saved


def test_iresnet50_shapes_and_input_gradient(random_backbone: Path) -> None:
    model = load_face_model("iresnet50", weights=random_backbone, device="cpu")
    assert (model.name, model.input_size, model.embedding_dim) == ("iresnet50", 112, 512)
    assert model.preprocessing["chip_size"] == 112
    x = torch.rand(1, 3, 112, 112, generator=torch.Generator().manual_seed(0), requires_grad=True)
    templates = model(x)
    assert templates.shape == (1, 512)
    templates.pow(2).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    # normalisation inside: (x - 0.5) / 0.5
    with torch.no_grad():
        np.testing.assert_allclose(model(x), model.network((x - 0.5) / 0.5), atol=1e-5)


def test_iresnet50_loader_errors(random_backbone: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such checkpoint file"):
        load_backbone(iresnet50(), tmp_path / "none.pth")
    state = torch.load(random_backbone, weights_only=True)
    renamed = {("body." + k if k.startswith("layer1.") else k): v for k, v in state.items()}
    torch.save(renamed, tmp_path / "renamed.pth")
    with pytest.raises(ValueError, match=r"missing keys: layer1\.0\.bn1\.weight.*unexpected keys: body\.layer1"):
        load_backbone(iresnet50(), tmp_path / "renamed.pth")
    state["fc.weight"] = torch.zeros(128, 512 * 7 * 7)
    torch.save(state, tmp_path / "shape.pth")
    with pytest.raises(ValueError, match=r"1 shape mismatches: fc\.weight: file \(128, 25088\) vs model \(512, 25088\)"):
        load_backbone(iresnet50(), tmp_path / "shape.pth")
    (tmp_path / "garbage.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable torch checkpoint"):
        load_backbone(iresnet50(), tmp_path / "garbage.pth")


def test_iresnet50_accepts_ddp_prefix_and_missing_counters(random_backbone: Path, tmp_path: Path) -> None:
    state = torch.load(random_backbone, weights_only=True)
    ddp = {"module." + k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    torch.save(ddp, tmp_path / "ddp.pth")
    model = load_backbone(iresnet50(), tmp_path / "ddp.pth")
    assert torch.equal(model.state_dict()["layer4.2.conv2.weight"], state["layer4.2.conv2.weight"])
