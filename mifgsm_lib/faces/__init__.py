"""Faces to templates: alignment (:mod:`.alignment`), the networks (:mod:`.dlib_resnet`, :mod:`.iresnet`) and the
one registry of face models with their preprocessing (:mod:`.models`)."""

from mifgsm_lib.faces.alignment import align_faces, load_rgb
from mifgsm_lib.faces.models import (
    FACE_MODELS,
    PASSES,
    FaceModel,
    embed,
    face_model_spec,
    load_face_model,
    preprocessing,
    to_tensor,
)

__all__ = ["FACE_MODELS", "PASSES", "FaceModel", "align_faces", "embed", "face_model_spec", "load_face_model",
           "load_rgb", "preprocessing", "to_tensor"]
