"""Alignment: dlib's documented pipeline, the fallback box, the ArcFace 112x112 warp."""

from __future__ import annotations

import os
from pathlib import Path

import dlib
import numpy as np
import pytest

from mifgsm_lib.faces.alignment import (
    ARCFACE_TEMPLATE_112,
    FALLBACK_BOX_FRACTION,
    align_faces,
    arcface_chip,
    fallback_box,
    load_rgb,
)
from mifgsm_lib.faces.dlib_resnet import dlib_model_file
from mifgsm_lib.faces.models import embed, load_face_model


@pytest.fixture(scope="module")
def lfw_paths(mirror: Path) -> list[Path]:
    """Two images each of two people."""
    root = mirror / "lfw" / "lfw"
    return sorted((root / "Colin_Powell").glob("*.jpg"))[:2] + sorted((root / "Serena_Williams").glob("*.jpg"))[:2]


def test_dlib_pipeline_on_real_images(lfw_paths: list[Path]) -> None:
    result = align_faces(lfw_paths, "dlib", progress=False)
    assert result.chips.shape == (4, 150, 150, 3) and result.chips.dtype == np.uint8
    assert result.n_fallback == 0 and not result.fallback.any()
    # the same as dlib's documented calls
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(dlib_model_file("shape_predictor_5_face_landmarks.dat")))
    image = load_rgb(lfw_paths[0])
    (box,) = detector(image, 1)
    np.testing.assert_array_equal(result.chips[0], dlib.get_face_chip(image, predictor(image, box), 150, 0.25))


def test_dlib_chips_verify_identities(lfw_paths: list[Path]) -> None:
    """Same person well within dlib's 0.6 threshold (0.42 here), different people well beyond (0.83+)."""
    templates = embed(load_face_model("dlib", device="cpu"), align_faces(lfw_paths, progress=False).chips,
                      progress=False)
    d = np.linalg.norm(templates[:, None] - templates[None], axis=-1)
    assert d[0, 1] < 0.5 and d[2, 3] < 0.5
    assert d[:2, 2:].min() > 0.75


def test_fallback_for_image_without_face(lfw_paths: list[Path]) -> None:
    gray = np.full((150, 150, 3), 128, dtype=np.uint8)
    images = [load_rgb(lfw_paths[0]), gray, load_rgb(lfw_paths[2])]
    result = align_faces(images, "dlib", progress=False)
    assert result.fallback.tolist() == [False, True, False] and result.n_fallback == 1
    assert result.chips.shape == (3, 150, 150, 3)
    assert np.all(result.chips[1] == 128)  # the gray image's chip, not dropped, not another image's
    np.testing.assert_array_equal(result.chips[0], align_faces(lfw_paths[:1], progress=False).chips[0])


def test_fallback_without_mirror() -> None:
    """Uniform images have no face: each still yields its own chip, flagged as fallback."""
    images = [np.full((120, 160, 3), value, dtype=np.uint8) for value in (40, 200)]
    result = align_faces(images, "dlib", progress=False)
    assert result.fallback.tolist() == [True, True] and result.n_fallback == 2
    assert np.all(result.chips[0] == 40) and np.all(result.chips[1] == 200)


def test_fallback_box_is_centred() -> None:
    box = fallback_box(150, 200)
    side = FALLBACK_BOX_FRACTION * 150
    assert box.width() == pytest.approx(side, abs=1) and box.height() == pytest.approx(side, abs=1)
    assert box.center().x == pytest.approx(100, abs=1) and box.center().y == pytest.approx(75, abs=1)


def test_arcface_chip_puts_landmarks_on_the_template() -> None:
    """Dots drawn at five source points land on the ArcFace template after the warp."""
    rng = np.random.default_rng(0)
    angle, scale, shift = 0.3, 1.6, np.array([40.0, 25.0])
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    source = ARCFACE_TEMPLATE_112 @ (scale * rotation).T + shift
    image = rng.integers(0, 40, size=(260, 260, 3), dtype=np.uint8)
    for x, y in np.rint(source).astype(int):
        image[y - 2:y + 3, x - 2:x + 3] = 255
    chip = arcface_chip(image, source, 112)
    assert chip.shape == (112, 112, 3) and chip.dtype == np.uint8
    for x, y in np.rint(ARCFACE_TEMPLATE_112).astype(int):
        assert chip[y, x].min() > 200


def test_iresnet50_alignment_on_real_images(lfw_paths: list[Path]) -> None:
    result = align_faces(lfw_paths[:2], "iresnet50", progress=False)
    assert result.chips.shape == (2, 112, 112, 3) and not result.fallback.any()
    # the face fills the chip: dlib finds it again, centred
    (box,) = dlib.get_frontal_face_detector()(result.chips[0], 1)
    assert abs(box.center().x - 56) < 8 and abs(box.center().y - 60) < 12


def test_workers_give_the_same_chips(lfw_paths: list[Path]) -> None:
    one = align_faces(lfw_paths[:4], progress=False)
    two = align_faces(lfw_paths[:4], progress=False, workers=2)
    np.testing.assert_array_equal(one.chips, two.chips)
    np.testing.assert_array_equal(one.fallback, two.fallback)


def test_a_worker_that_cannot_start_is_an_error(lfw_paths: list[Path]) -> None:
    """A worker that cannot start (here: its landmark model is missing) ends the call with an error, never with a
    pool that replaces it forever."""
    from concurrent.futures.process import BrokenProcessPool

    from mifgsm_lib.faces import preprocessing

    with pytest.raises(BrokenProcessPool):
        align_faces(lfw_paths[:4], {**preprocessing("dlib"), "landmarks": "no_such_model.dat"}, progress=False,
                    workers=2)


def test_the_pool_is_used_only_where_it_pays() -> None:
    from mifgsm_lib import pipeline

    assert pipeline.align_workers(pipeline.POOL_MIN_IMAGES - 1) == 1
    assert 1 <= pipeline.align_workers(pipeline.POOL_MIN_IMAGES) <= 8
    assert pipeline.align_workers(10**6) == min(os.cpu_count() or 1, 8)


def test_alignment_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="model='vgg': expected one of"):
        align_faces([np.zeros((10, 10, 3), np.uint8)], "vgg")
    with pytest.raises(FileNotFoundError, match="no such image file"):
        align_faces([tmp_path / "missing.jpg"], progress=False)
    with pytest.raises(ValueError, match=r"images\[0\]: expected an \(H, W, 3\) uint8 RGB array"):
        align_faces([np.zeros((10, 10), np.float32)], progress=False)
    with pytest.raises(ValueError, match="workers=0"):
        align_faces([np.zeros((10, 10, 3), np.uint8)], workers=0)
    with pytest.raises(ValueError, match="images: expected at least one"):
        align_faces([], progress=False)
