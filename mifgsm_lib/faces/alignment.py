"""Face detection, landmarks and aligned chips: the preprocessing of each face model.

``dlib`` (the default model) follows dlib's documented pipeline: the frontal face
detector with one upsampling, the 5-point shape predictor, then
``dlib.get_face_chip(image, shape, size=150, padding=0.25)``.

``iresnet50`` (the paper's IResNet50-ArcFace) takes the standard ArcFace 112x112
alignment: a similarity transform (``skimage.transform.SimilarityTransform``) maps
five landmarks (eye centres, nose tip, mouth corners, derived from dlib's 68-point
predictor) onto insightface's template.

Where the detector finds no face, one fallback is used, and counted: a centred
square whose side is :data:`FALLBACK_BOX_FRACTION` of the shorter image side (the
median side of dlib's detections on the 150x150 LFW crops is 0.71 of the image) is
given to the shape predictor as the face box. No image is ever dropped.
Where it finds several faces, the one whose centre is nearest the image centre is
kept (datasets such as LFW centre the person of interest).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import dlib
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from skimage.transform import SimilarityTransform, warp

from mifgsm_lib.faces.dlib_resnet import dlib_model_file
from mifgsm_lib.progress import bar

#: Upsampling passes of dlib's frontal face detector.
DETECTOR_UPSAMPLE = 1
#: Images a worker process of :func:`align_faces` takes at a time (a set of fewer needs one worker only).
ALIGN_CHUNK = 16
#: Side of the centred fallback box, as a fraction of the shorter image side.
FALLBACK_BOX_FRACTION = 0.7

#: insightface's ArcFace landmark template for 112x112 chips: left eye, right eye,
#: nose tip, left and right mouth corners (image left/right), in pixels.
ARCFACE_TEMPLATE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
)

@dataclass
class AlignmentResult:
    """Aligned chips (N, S, S, 3) uint8 RGB and which images used the fallback box."""

    chips: np.ndarray
    fallback: np.ndarray

    @property
    def n_fallback(self) -> int:
        return int(self.fallback.sum())


def load_rgb(path: str | Path) -> np.ndarray:
    """An image file as an (H, W, 3) uint8 RGB array: the picture a person sees in an image viewer.

    EXIF orientation is applied; palette, grey, CMYK and other colour modes are converted to RGB; 16-bit images
    are scaled to 8 bits (full range); transparent pixels are laid over white. A file that cannot be decoded
    (truncated, not an image, 32-bit floating point, a decompression bomb) raises a ``ValueError`` naming it.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such image file")
    try:
        with Image.open(path) as img:
            img = ImageOps.exif_transpose(img)
            return _as_rgb(img, path)
    except (OSError, UnidentifiedImageError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ValueError(f"{path}: not a readable image ({exc})") from exc


def _as_rgb(img: Image.Image, path: Path) -> np.ndarray:
    """:func:`load_rgb`'s conversion of a decoded image to 8-bit RGB."""
    if img.mode == "F":
        raise ValueError(f"{path}: a 32-bit floating-point image; expected an 8- or 16-bit photo")
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
        grey = np.asarray(img, dtype=np.float64)  # 16-bit modes span 0..65535 even where an image is dark
        grey = grey * (255.0 / 65535.0) if img.mode != "I" or grey.max() > 255 else grey
        return np.repeat(np.clip(np.rint(grey), 0, 255).astype(np.uint8)[..., None], 3, axis=2)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"), dtype=np.uint8)
    return np.asarray(img.convert("RGB"), dtype=np.uint8)


def _check_image(image: np.ndarray, index: int) -> np.ndarray:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(
            f"images[{index}]: expected an (H, W, 3) uint8 RGB array, got dtype {image.dtype} shape {image.shape}"
        )
    return np.ascontiguousarray(image)


def fallback_box(height: int, width: int) -> dlib.rectangle:
    """The centred square used as the face box when the detector finds none."""
    side = FALLBACK_BOX_FRACTION * min(height, width)
    left, top = (width - side) / 2, (height - side) / 2
    return dlib.rectangle(round(left), round(top), round(left + side) - 1, round(top + side) - 1)


def five_points_from_68(shape: dlib.full_object_detection) -> np.ndarray:
    """ArcFace's five landmarks from dlib's 68: eye centres (36-41, 42-47), nose tip (30),
    mouth corners (48, 54), as (x, y) rows in the order of :data:`ARCFACE_TEMPLATE_112`."""
    pts = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)
    return np.stack([pts[36:42].mean(0), pts[42:48].mean(0), pts[30], pts[48], pts[54]])


def arcface_chip(image: np.ndarray, points: np.ndarray, size: int = 112) -> np.ndarray:
    """Warp ``image`` so that ``points`` land on the ArcFace template (bilinear, black border)."""
    template = ARCFACE_TEMPLATE_112 * (size / 112.0)
    tform = SimilarityTransform.from_estimate(points, template)
    if not tform:
        raise ValueError(f"landmarks {points.tolist()}: no similarity transform onto the ArcFace template")
    warped = warp(image, tform.inverse, output_shape=(size, size), order=1, mode="constant", cval=0.0,
                  preserve_range=True)
    return np.clip(np.rint(warped), 0, 255).astype(np.uint8)


class FaceAligner:
    """dlib's detector and shape predictor, producing the chips of one preprocessing (a face model's
    :attr:`mifgsm_lib.faces.models.FaceModelSpec.preprocessing`)."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = dict(spec)
        self.detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(str(dlib_model_file(self.spec["landmarks"])))

    def face_box(self, image: np.ndarray) -> tuple[dlib.rectangle, bool]:
        """The detected face nearest the image centre, or the fallback box (flagged True)."""
        height, width = image.shape[:2]
        boxes = self.detector(image, self.spec["detector_upsample"])
        if len(boxes) == 0:
            return fallback_box(height, width), True
        centre = np.array([width / 2, height / 2])
        return min(boxes, key=lambda r: float(np.sum((np.array([r.center().x, r.center().y]) - centre) ** 2))), False

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, bool]:
        """The aligned chip of one (H, W, 3) uint8 RGB image and whether the fallback was used."""
        box, used_fallback = self.face_box(image)
        shape = self.predictor(image, box)
        size = self.spec["chip_size"]
        if self.spec["warp"] == "dlib.get_face_chip":
            chip = dlib.get_face_chip(image, shape, size=size, padding=self.spec["padding"])
        else:
            chip = arcface_chip(image, five_points_from_68(shape), size)
        return np.asarray(chip, dtype=np.uint8), used_fallback


_WORKER_ALIGNER: FaceAligner | None = None


def _init_worker(spec: dict[str, Any]) -> None:
    global _WORKER_ALIGNER
    _WORKER_ALIGNER = FaceAligner(spec)


def _align_in_worker(item: tuple[int, str | Path | np.ndarray]) -> tuple[np.ndarray, bool]:
    index, image = item
    assert _WORKER_ALIGNER is not None
    return _WORKER_ALIGNER(_as_image(image, index))


def _as_image(image: str | Path | np.ndarray, index: int) -> np.ndarray:
    return load_rgb(image) if isinstance(image, (str, Path)) else _check_image(np.asarray(image), index)


def align_faces(
    images: Sequence[str | Path | np.ndarray] | np.ndarray,
    spec: dict[str, Any] | str = "dlib",
    progress: bool = True,
    workers: int = 1,
) -> AlignmentResult:
    """Align every image (paths or (H, W, 3) uint8 RGB arrays) with the preprocessing ``spec``: a face model's
    :attr:`~mifgsm_lib.faces.models.FaceModelSpec.preprocessing`, or the name of a registered face model.

    Every image yields a chip, in order; ``fallback[i]`` says whether image i had
    no detected face and was aligned from the centred fallback box. ``workers > 1``
    runs the images in a pool of spawned processes (each loads dlib's models once).
    """
    if isinstance(spec, str):
        from mifgsm_lib.faces.models import preprocessing  # the registry imports this module

        spec = preprocessing(spec)
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers={workers!r}: expected a positive integer")
    if len(images) == 0:
        raise ValueError("images: expected at least one image path or array, got none")
    size = spec["chip_size"]
    chips = np.empty((len(images), size, size, 3), dtype=np.uint8)
    fallback = np.zeros(len(images), dtype=bool)
    items = list(enumerate(images))

    def collect(results: Iterator[tuple[np.ndarray, bool]]) -> None:
        shown = bar(results, total=len(items), desc=f"aligning ({spec['warp']}, {spec['chip_size']} px)", disable=not progress)
        for i, (chip, used_fallback) in enumerate(shown):
            chips[i], fallback[i] = chip, used_fallback

    if workers == 1:
        aligner = FaceAligner(spec)
        collect(aligner(_as_image(image, i)) for i, image in items)
    else:
        # Fresh worker processes, never a fork: the caller (a Jupyter kernel, torch) runs threads, and a fork of a
        # threaded process can inherit a lock held by a thread it does not copy, and hang. A worker that dies
        # raises BrokenProcessPool here instead of being replaced forever.
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker,
                                 initargs=(spec,)) as pool:
            collect(pool.map(_align_in_worker, items, chunksize=ALIGN_CHUNK))
    return AlignmentResult(chips=chips, fallback=fallback)
