"""Face data: datasets and their labels (:mod:`.datasets`), verification pairs (:mod:`.pairs`) and where the
data live and come from (:mod:`.store`)."""

from mifgsm_lib.data.datasets import (
    AGE_BINS,
    ATTRIBUTES,
    FEMALE,
    GENDER_NAMES,
    LOADERS,
    MALE,
    UNKNOWN,
    FaceDataset,
    attribute_labels,
    balanced_subset,
    lfw_gender,
    load_manifest,
)
from mifgsm_lib.data.pairs import Pairs, agedb30_pairs, dataset_pairs, lfw_protocol_pairs, read_pairs
from mifgsm_lib.data.store import (content_digest, dataset_dir, fetch, file_digest, info, is_complete,
                                   load_dataset)

__all__ = ["content_digest", "file_digest", "AGE_BINS", "ATTRIBUTES", "attribute_labels", "FEMALE", "GENDER_NAMES",
           "LOADERS", "MALE", "UNKNOWN", "FaceDataset", "Pairs", "agedb30_pairs", "balanced_subset", "dataset_dir",
           "dataset_pairs", "fetch", "info", "is_complete", "lfw_gender", "lfw_protocol_pairs", "load_dataset",
           "load_manifest", "read_pairs"]
