"""The cached steps that chapters and the CLI share, from a dataset to measured protected templates.

Each step is a pure function of a :class:`~mifgsm_lib.config.RunConfig` (and its own arguments) whose result is
stored in the :class:`~mifgsm_lib.cache.ArtifactCache` under a key of everything that determines it
(:func:`step_key`): dataset (its images' and labels' content), face model (its weights too) and preprocessing,
seed, the sizes the step reads and the protected attribute; the cache adds the library's code fingerprint. Any
chapter can therefore run alone: it computes what is missing and reuses the rest.

The steps, in the order of the pipeline: :func:`dataset` → :func:`chips` → :func:`templates` → the estimators
(:func:`mlp`, :func:`vclub`) → the attacked set (:func:`attack_set`) → :func:`directions` →
:func:`perturbed_templates` (one-step attacks over ε), :func:`protected_templates` (any method in several
views) and :func:`baseline_templates` (IVE, Multi-IVE) → the images they are measured on (:func:`evaluation_set`).
Every step takes the protected ``attribute`` (gender by default; age group and race on UTKFace).

This module is longer than the others because it is the one place that knows how results are keyed and cached.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from mifgsm_lib import attacks, classifiers, data, evaluation, faces, methods, mi, protect, robustness
from mifgsm_lib.cache import ArtifactCache, atomic_write, save_npz
from mifgsm_lib.config import RunConfig, is_url, torch_threads
from mifgsm_lib.erasure import LinearEraser
from mifgsm_lib.evaluation import EvaluationSet
from mifgsm_lib.faces.alignment import ALIGN_CHUNK
from mifgsm_lib.faces.dlib_resnet import DLIB_RESNET_FILE, dlib_model_file
from mifgsm_lib.progress import bar

#: Images per vCLUB training batch (Sec. 5).
VCLUB_BATCH = 256

#: Images per block of an attacked set. Directions and perturbed templates are computed and cached block by
#: block, so a request for some images computes only the blocks that hold them, and every request gives the
#: same numbers whatever was asked before. The last block takes the remainder (between 1 and 2 blocks' worth).
BLOCK = 256


def cache(cfg: RunConfig) -> ArtifactCache:
    return ArtifactCache(cfg.artifacts_path)


# --------------------------------------------------------------------------------------------------
# Data, chips, templates
# --------------------------------------------------------------------------------------------------


@lru_cache(maxsize=8)
def _load_dataset(name: str, data_dir: str, max_images: int | None, seed: int, stamp: tuple,
                  labels: str) -> data.FaceDataset:
    ds = data.load_dataset(name, data_dir, **({"labels": labels} if name == "folder" else {}))
    if max_images is not None and max_images < len(ds):
        keep = np.sort(np.random.default_rng(seed).permutation(len(ds))[:max_images])
        ds = ds.subset(keep)
    return ds


def _stamp(name: str, data_dir: str) -> tuple:
    """The sizes and times of the files beside a dataset's images (label lists, labels.csv, pairs): a label edited
    after a dataset was loaded loads it again."""
    try:
        root = data.dataset_dir(name, data_dir)
    except (FileNotFoundError, ValueError):
        return ()
    with os.scandir(root) as entries:  # the name first: no stat of the images (UTKFace's folder holds 9,780)
        beside = [e for e in entries if not e.name.lower().endswith(_IMAGE_SUFFIXES) and e.is_file()]
    return tuple(sorted((e.name, e.stat().st_size, e.stat().st_mtime_ns) for e in beside))


_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp")


def dataset(cfg: RunConfig, name: str | None = None) -> data.FaceDataset:
    """The configured dataset (or another one by ``name``) from the configured data folder.

    Where the profile sets ``max_images`` for the dataset (the quick profile, for UTKFace), a seeded random
    sample of that many images.
    """
    name = name or cfg.dataset
    max_images = cfg.sizes.get("max_images", {}).get(name)
    return _load_dataset(name, str(cfg.data_path), max_images, cfg.seed, _stamp(name, str(cfg.data_path)),
                         cfg.labels)


def pairs(cfg: RunConfig, name: str | None = None) -> data.Pairs:
    """The dataset's verification pairs (LFW: pairs.txt; AgeDB-30; the LFW protocol elsewhere)."""
    return data.dataset_pairs(dataset(cfg, name), seed=cfg.seed)


#: Content digests computed in this process, by dataset object: the dataset, its images' paths, their sizes and
#: times then, and the digest (a dataset loaded again, or an image rewritten since, is digested again).
_CONTENT: dict[int, tuple[data.FaceDataset, list[str], tuple, str]] = {}


def _image_stamp(paths: list[str]) -> tuple:
    """The size and modification time of every file of ``paths`` (one ``stat`` each, no read)."""
    return tuple((s.st_size, s.st_mtime_ns) for s in map(os.stat, paths))


def dataset_key(cfg: RunConfig, name: str | None = None) -> dict[str, Any]:
    """What identifies a dataset for the cache: its name, size and content (:func:`mifgsm_lib.data.content_digest`:
    image bytes, labels, pairs), never its folder, so a result is recomputed when any input changes and a cache
    can move with its data. An image rewritten after the dataset was loaded changes the key in the same process
    (its size or time does; ``benchmarks/bench_hashing.py`` measures what these checks cost)."""
    ds = dataset(cfg, name)
    known = _CONTENT.get(id(ds))
    paths = known[1] if known is not None and known[0] is ds else [os.path.join(ds.root, p) for p in ds.paths]
    stamp = _image_stamp(paths)
    if known is None or known[0] is not ds or known[2] != stamp:
        known = (ds, paths, stamp, data.content_digest(ds, cfg.artifacts_path / "file-digests"))
        _CONTENT[id(ds)] = known
    return {"dataset": ds.name, "images": len(ds), "content": known[3]}


@lru_cache(maxsize=4)
def _face_model(name: str, weights: str | None, device: str) -> faces.FaceModel:
    return faces.load_face_model(name, weights=weights, device=torch.device(device)).eval()


def face_model(cfg: RunConfig) -> faces.FaceModel:
    """The configured face-recognition network (with ``cfg.weights`` where given) on the configured device."""
    return _face_model(cfg.model, cfg.weights, str(cfg.torch_device))


@lru_cache(maxsize=8)
def _weights_digest(path: str, size: int, mtime_ns: int) -> str:
    return data.file_digest(Path(path))


def _model_file_digest(path: Path) -> str:
    """The digest of a model file, hashed once per process and version of the file (its size and time)."""
    stat = Path(path).stat()
    return _weights_digest(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


def model_key(cfg: RunConfig) -> dict[str, Any]:
    """What identifies the face model for the cache: its name, preprocessing and the digests of its files, the
    weights (``cfg.weights``, else the file the dlib model ships with; a URL as it is) and the landmark predictor
    its chips are aligned with, so that a new version of either changes every key downstream."""
    spec = faces.preprocessing(cfg.model)
    if cfg.weights is None:
        weights = _model_file_digest(dlib_model_file(DLIB_RESNET_FILE)) if cfg.model == "dlib" else None
    else:
        weights = cfg.weights if is_url(cfg.weights) else _model_file_digest(Path(cfg.weights))
    return {"model": cfg.model, "preprocessing": spec, "weights": weights,
            "landmarks": _model_file_digest(dlib_model_file(spec["landmarks"]))}


def step_key(cfg: RunConfig, name: str | None = None, **extra: Any) -> dict[str, Any]:
    """The cache key of a step on dataset ``name``: the dataset's content, the face model, the seed, and ``extra``
    (the step's own parameters)."""
    return {**dataset_key(cfg, name), **model_key(cfg), "seed": cfg.seed, **extra}


#: The chips last read in this process, by cache file: every attack step needs them, and reading a dataset's
#: chips (hundreds of MB) once per step or block would cost seconds each time. Callers must not write to them.
_CHIPS: dict[Path, dict[str, np.ndarray]] = {}


#: The fewest images aligned by a pool of worker processes: a spawned worker takes seconds to start (it imports
#: torch with the library), more than a few hundred images take to align in this process.
POOL_MIN_IMAGES = 500


def align_workers(n_images: int) -> int:
    """Worker processes to align ``n_images`` with: one per core (at most 8, no idle one), or none below
    :data:`POOL_MIN_IMAGES`."""
    if n_images < POOL_MIN_IMAGES:
        return 1
    return min(os.cpu_count() or 1, 8, -(-n_images // ALIGN_CHUNK))


def chips(cfg: RunConfig, name: str | None = None) -> dict[str, np.ndarray]:
    """Aligned uint8 face chips of every image (``chips``) and which used the fallback box (``fallback``)."""
    ds = dataset(cfg, name)
    params = {**dataset_key(cfg, name), "alignment": faces.preprocessing(cfg.model),
              "landmarks": model_key(cfg)["landmarks"]}
    path = cache(cfg).path("chips", params, ".npz")
    if path in _CHIPS and path.exists():
        return _CHIPS[path]

    def compute() -> dict[str, np.ndarray]:
        result = faces.align_faces(ds.abs_paths(), faces.preprocessing(cfg.model), workers=align_workers(len(ds)))
        return {"chips": result.chips, "fallback": result.fallback}

    arrays = cache(cfg).arrays("chips", params, compute)
    if len(_CHIPS) >= 2:
        _CHIPS.clear()
    _CHIPS[path] = arrays
    return arrays


def templates(cfg: RunConfig, name: str | None = None) -> dict[str, np.ndarray]:
    """Clean templates f(x) of every image with gender, identity and image ids (``mifgsm embed``)."""
    ds = dataset(cfg, name)
    params = {**dataset_key(cfg, name), **model_key(cfg)}

    def compute() -> dict[str, np.ndarray]:
        aligned = chips(cfg, name)
        z = faces.embed(face_model(cfg), aligned["chips"], device=cfg.torch_device)
        return {
            "templates": z,
            "gender": ds.gender,
            "identity": ds.identity,
            "image_ids": np.asarray(ds.image_ids, dtype=str),
            "fallback": aligned["fallback"],
            "model": np.asarray(cfg.model),
        }

    return cache(cfg).arrays("templates", params, compute)


def labels(cfg: RunConfig, attribute: str = "gender", name: str | None = None) -> np.ndarray:
    """The protected attribute's class labels of every image of the dataset (-1: unknown)."""
    return data.attribute_labels(dataset(cfg, name), attribute)


def labelled(cfg: RunConfig, name: str | None = None, attribute: str = "gender") -> np.ndarray:
    """Indices of the images whose ``attribute`` is known (LFW keeps a few of unknown gender, see ``data info``)."""
    return np.flatnonzero(labels(cfg, attribute, name) >= 0)


def subset(cfg: RunConfig, name: str | None = None) -> np.ndarray:
    """Indices of the gender-balanced subset used by the sweeps (paper: 5,000 images; size from the profile)."""
    indices, _message = data.balanced_subset(dataset(cfg, name).gender, cfg.sizes["subset_size"], seed=cfg.seed)
    return np.sort(indices)


# --------------------------------------------------------------------------------------------------
# Estimators: the MLP of Sec. 3.1 and vCLUB (Sec. 4.1)
# --------------------------------------------------------------------------------------------------


#: Fewer labelled images of either gender than this outside the sweep subset and the MLP is trained on every
#: labelled image instead (a small dataset of the user's); setting A then includes training images, and says so.
MLP_MIN_PER_CLASS = 50


def mlp_training_images(cfg: RunConfig, name: str | None = None) -> np.ndarray:
    """The images the MLP of Sec. 3.1 is trained on: the labelled images outside the sweep subset
    (:func:`subset`), so that setting A on the subset, and the white-box attacks of its images, meet a classifier
    that never saw them. Where fewer than :data:`MLP_MIN_PER_CLASS` of a gender are left (a small dataset), every
    labelled image (see :func:`mlp_held_out`)."""
    outside = np.setdiff1d(labelled(cfg, name), subset(cfg, name))
    counts = np.bincount(labels(cfg, "gender", name)[outside], minlength=2)
    return outside if counts.min() >= MLP_MIN_PER_CLASS else labelled(cfg, name)


def mlp_held_out(cfg: RunConfig, indices: np.ndarray, name: str | None = None) -> bool:
    """Whether the images ``indices`` are all unseen by :func:`mlp` (setting A measured on held-out images)."""
    return not np.isin(indices, mlp_training_images(cfg, name)).any()


def _trained_mlp(cfg: RunConfig, train: np.ndarray, name: str | None) -> tuple[classifiers.MLPGenderClassifier,
                                                                                 dict[str, float]]:
    """The MLP of Sec. 3.1 trained on the clean templates of the images ``train`` (cached)."""
    clean = templates(cfg, name)

    def compute() -> dict[str, Any]:
        with torch_threads(1):
            result = classifiers.train_mlp(clean["templates"][train], clean["gender"][train], seed=cfg.seed,
                                           progress=False)
        return {
            **{f"model.{k}": v for k, v in result.model.checkpoint_state().items()},
            "train_accuracy": torch.tensor(result.train_accuracy),
            "val_accuracy": torch.tensor(result.val_accuracy),
        }

    state = cache(cfg).state_dict("mlp", step_key(cfg, name, train=digest(train)), compute)
    model = classifiers.MLPGenderClassifier.from_checkpoint_state(
        {k[6:]: v for k, v in state.items() if k.startswith("model.")}, expected_dim=clean["templates"].shape[1])
    model.eval()
    scores = {"train_accuracy": float(state["train_accuracy"]), "val_accuracy": float(state["val_accuracy"])}
    return model, scores


def mlp(cfg: RunConfig, name: str | None = None) -> tuple[classifiers.MLPGenderClassifier, dict[str, float]]:
    """The MLP gender classifier of Sec. 3.1 trained on clean templates (setting A, FGSM, MI-FGSM-MLP), on the images
    of :func:`mlp_training_images`, with its accuracy on its own training and validation splits."""
    return _trained_mlp(cfg, mlp_training_images(cfg, name), name)


def mlp_all(cfg: RunConfig, name: str | None = None) -> classifiers.MLPGenderClassifier:
    """The MLP of Sec. 3.1 trained on every labelled image of the dataset (the sweep subset included): the plain
    reading of the paper, shown beside the book's held-out setting A."""
    return _trained_mlp(cfg, labelled(cfg, name), name)[0]


#: Folds of the cross-fitted MLPs of :func:`crossfit_classifier`.
CROSSFIT_FOLDS = 5


class CrossFitted:
    """Setting A's classifier for images the MLP may have seen: :data:`CROSSFIT_FOLDS` MLPs, each trained on the
    labelled images outside one fold (folds grouped by identity), and each image scored by the MLP of its own fold.
    ``predict(z)`` takes the templates of the images ``indices`` in that order."""

    def __init__(self, models: list[classifiers.MLPGenderClassifier], fold_of: np.ndarray) -> None:
        self.models, self.fold_of = models, fold_of

    def predict(self, z: torch.Tensor) -> torch.Tensor:
        if len(z) != len(self.fold_of):
            raise ValueError(f"z: expected the templates of the {len(self.fold_of)} images it was made for, got {len(z)}")
        out = torch.empty(len(z), dtype=torch.long)
        for k, model in enumerate(self.models):
            rows = torch.from_numpy(np.flatnonzero(self.fold_of == k))
            if len(rows):
                out[rows] = model.predict(z[rows])
        return out


def crossfit_classifier(cfg: RunConfig, indices: np.ndarray, name: str | None = None) -> CrossFitted:
    """Setting A's classifier for the labelled images ``indices`` (in that order) that never saw them nor their
    person: one of :data:`CROSSFIT_FOLDS` MLPs per image, each trained on the labelled images outside its fold."""
    from sklearn.model_selection import StratifiedGroupKFold

    known = labelled(cfg, name)
    y, people = labels(cfg, "gender", name)[known], dataset(cfg, name).identity[known]
    folds = StratifiedGroupKFold(n_splits=CROSSFIT_FOLDS, shuffle=True, random_state=cfg.seed)
    fold_of_image = np.full(len(dataset(cfg, name)), -1)
    models = []
    for k, (train, test) in enumerate(folds.split(np.zeros(len(known)), y, people)):
        fold_of_image[known[test]] = k
        models.append(_trained_mlp(cfg, known[train], name)[0])
    fold_of = fold_of_image[np.asarray(indices)]
    if (fold_of < 0).any():
        raise ValueError("indices: expected images of known gender (setting A needs the label)")
    return CrossFitted(models, fold_of)


def estimator_features(cfg: RunConfig, features: str, name: str | None = None) -> np.ndarray:
    """The features a vCLUB estimator is trained on: the templates f(x) (``face``) or f_MLP(x) (``mlp``)."""
    clean = templates(cfg, name)
    if features == "face":
        return clean["templates"]
    if features == "mlp":
        model, _ = mlp(cfg, name)
        with torch.no_grad():
            return model.features(torch.from_numpy(clean["templates"]).float()).numpy()
    raise ValueError(f"features={features!r}: expected 'face' (f(x), MI-FGSM) or 'mlp' (f_MLP(x), MI-FGSM-MLP)")


#: The share of the labelled images that the vCLUB estimators hold out (:func:`vclub_split`).
VCLUB_HELD_OUT = 0.2


def vclub_min_images(n_classes: int, held_out: float = VCLUB_HELD_OUT) -> int:
    """The fewest labelled images a stratified split with share ``held_out`` held out can put every one of
    ``n_classes`` classes in both parts with (2 classes, 20 %: 6 images)."""
    n = 2 * n_classes
    while math.ceil(held_out * n) < n_classes or n - math.ceil(held_out * n) < n_classes:
        n += 1
    return n


def vclub_split(cfg: RunConfig, name: str | None = None, attribute: str = "gender") -> tuple[np.ndarray, np.ndarray]:
    """The seeded 80/20 split of the images whose ``attribute`` is known, stratified by it, on which the vCLUB
    estimators are trained and held out. Each class must be in both parts (Eq. 7 on each needs every class): a
    clear error says how many images that takes (:func:`vclub_min_images`) where the dataset has fewer."""
    from sklearn.model_selection import train_test_split

    idx = labelled(cfg, name, attribute)
    y = labels(cfg, attribute, name)[idx]
    classes, counts = np.unique(y, return_counts=True)
    minimum = vclub_min_images(len(classes))
    if len(idx) < minimum or counts.min() < 2:
        raise ValueError(
            f"dataset {name or cfg.dataset!r}: {len(idx)} images of known {attribute} "
            f"({dict(zip(classes.tolist(), counts.tolist()))} per class); the vCLUB estimator of the MI attacks is "
            f"trained on {1 - VCLUB_HELD_OUT:.0%} of them and checked on the other {VCLUB_HELD_OUT:.0%}, each part "
            f"holding every class, which needs at least {minimum} images and 2 of each class")
    return train_test_split(idx, test_size=VCLUB_HELD_OUT, stratify=y, random_state=cfg.seed)


def vclub_checkpoints(cfg: RunConfig) -> tuple[int, ...]:
    """The iterations at which vCLUB estimators are saved: the profile's checkpoints (Fig. 2) and its total."""
    return tuple(sorted({*cfg.sizes["estimator_checkpoints"], int(cfg.sizes["estimator_iterations"])}))


def vclub(
    cfg: RunConfig, features: str = "face", iteration: int | None = None, name: str | None = None,
    attribute: str = "gender",
) -> tuple[mi.VCLUB, dict[str, np.ndarray]]:
    """A K-class vCLUB estimator (Sec. 4.1) of ``attribute`` trained on clean features, at a checkpoint
    iteration, with its learning curve.

    It is trained on a seeded 80/20 split of the labelled images, stratified by the attribute, for the profile's
    ``estimator_iterations`` (Adam, stratified batches of :data:`VCLUB_BATCH` images, or all the training images
    where there are fewer: a small dataset of the user's makes Eq. 7 an estimate over the whole split).
    """
    z = estimator_features(cfg, features, name)
    y = labels(cfg, attribute, name)
    checkpoints = vclub_checkpoints(cfg)
    iteration = int(cfg.sizes["estimator_iterations"]) if iteration is None else int(iteration)
    if iteration not in checkpoints:
        raise ValueError(f"iteration={iteration}: expected one of the saved checkpoints {checkpoints}")

    def compute() -> dict[str, Any]:
        train, held = vclub_split(cfg, name, attribute)
        with torch_threads(1):
            result = mi.train_vclub(
                z[train], y[train], z[held], y[held], iterations=max(checkpoints), seed=cfg.seed,
                checkpoints=checkpoints, device=cfg.torch_device, progress=False, num_classes=len(data.ATTRIBUTES[attribute]),
                batch_size=min(VCLUB_BATCH, len(train)),
            )
        out: dict[str, Any] = {f"history.{k}": torch.as_tensor(np.asarray(v)) for k, v in result.history.items()}
        out["history.seconds"] = torch.tensor(result.seconds)
        for it, st in result.checkpoints.items():
            out.update({f"ckpt{it}.{k}": v for k, v in st.items()})
        return out

    params = step_key(cfg, name, features=features, attribute=attribute, checkpoints=checkpoints,
                      mlp_train=digest(mlp_training_images(cfg, name)) if features == "mlp" else None)
    state = cache(cfg).state_dict("vclub", params, compute)
    prefix = f"ckpt{iteration}."
    estimator = mi.VCLUB.from_checkpoint_state({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)},
                                               expected_dim=z.shape[1])
    estimator.eval()
    history = {k[8:]: v.numpy() for k, v in state.items() if k.startswith("history.")}
    return estimator, history


def _train(cfg: RunConfig, features: str | None, name: str | None, attribute: str) -> None:
    """Train and cache the MLP (``features=None``) or a vCLUB estimator (in a worker process)."""
    if features is None:
        mlp(cfg, name)
    else:
        vclub(cfg, features, name=name, attribute=attribute)


def train_estimators(cfg: RunConfig, names: Sequence[str | None], attributes: Sequence[str] = ()) -> None:
    """Train and cache the MLP and both gender vCLUB estimators (``face``, ``mlp``) of each dataset of ``names``,
    and a ``face`` vCLUB of each other attribute of ``attributes`` on the first of ``names``.

    Each training runs on one CPU thread (tiny networks train fastest so), so on a CPU the trainings run in
    parallel processes, one per core: first the MLPs (the ``mlp`` estimator is trained on their features),
    then the estimators. On a GPU, or where everything is cached, they run (or load) one after the other.
    The results are those of :func:`mlp` and :func:`vclub` called alone.
    """
    from joblib import Parallel, delayed

    for name in names:
        templates(cfg, name)
    jobs = 1 if cfg.torch_device.type != "cpu" else -1
    Parallel(n_jobs=jobs)(delayed(_train)(cfg, None, name, "gender") for name in names)
    estimators = [(f, name, "gender") for name in names for f in ("face", "mlp")]
    estimators += [("face", names[0], a) for a in attributes]
    Parallel(n_jobs=jobs)(delayed(_train)(cfg, f, name, a) for f, name, a in estimators)


class Resources:
    """What the methods of :mod:`mifgsm_lib.methods` are built from in a run: the cached face model, MLP and the
    vCLUB estimators of ``attribute`` (at checkpoint ``iteration``) on dataset ``name``."""

    def __init__(self, cfg: RunConfig, iteration: int | None = None, name: str | None = None,
                 attribute: str = "gender") -> None:
        self.cfg, self.iteration, self.name, self.attribute = cfg, iteration, name, attribute
        self.seed = cfg.seed

    def face_model(self) -> faces.FaceModel:
        return face_model(self.cfg)

    def mlp(self) -> classifiers.MLPGenderClassifier:
        if self.attribute != "gender":
            raise ValueError(f"attribute={self.attribute!r}: the MLP classifier of Sec. 3.1 (FGSM, MI-FGSM-MLP) is "
                             "a gender classifier")
        return mlp(self.cfg, self.name)[0]

    def vclub(self, features: str) -> mi.VCLUB:
        return vclub(self.cfg, features, self.iteration, self.name, self.attribute)[0]

    def eraser(self) -> LinearEraser:
        """LEACE fitted on the clean templates the vCLUB estimators are trained on (:func:`vclub_split`)."""
        train, _ = vclub_split(self.cfg, self.name, self.attribute)
        return LinearEraser().fit(templates(self.cfg, self.name)["templates"][train],
                                  labels(self.cfg, self.attribute, self.name)[train])


def make_attack(cfg: RunConfig, method: str, iteration: int | None = None, name: str | None = None,
                attribute: str = "gender") -> attacks.SignAttack:
    """The one-step attack ``method`` (:mod:`mifgsm_lib.methods`) on the configured face model."""
    entry = methods.get(methods.check_methods([method], "one-step", "method")[0])
    return entry.build(Resources(cfg, iteration, name, attribute))


# --------------------------------------------------------------------------------------------------
# The images measured
# --------------------------------------------------------------------------------------------------


def verification_indices(
    cfg: RunConfig, name: str | None = None, folds: tuple[int, ...] | None = None
) -> tuple[np.ndarray, data.Pairs]:
    """The images of the dataset's verification pairs in ``folds`` (fold numbers; default the profile's
    ``verification_folds``).

    Returns the sorted image indices and the pairs re-indexed into them. When one fold is kept (the quick
    profile), its pairs are dealt round-robin into 10 sub-folds so that the 10-fold accuracy stays defined.
    """
    folds = tuple(cfg.sizes["verification_folds"] if folds is None else folds)
    all_pairs = pairs(cfg, name)
    keep = np.isin(all_pairs.fold, list(folds))
    if not keep.any():
        raise ValueError(f"verification_folds={folds!r}: no pair of {name or cfg.dataset!r} "
                         f"is in these folds (its folds: {sorted(set(all_pairs.fold.tolist()))})")
    indices = np.unique(np.concatenate([all_pairs.left[keep], all_pairs.right[keep]]))
    position = np.full(int(indices.max()) + 1, -1)
    position[indices] = np.arange(len(indices))
    folds = all_pairs.fold[keep]
    sub = data.Pairs(left=position[all_pairs.left[keep]], right=position[all_pairs.right[keep]],
                     same=all_pairs.same[keep],
                     fold=folds if len(np.unique(folds)) > 1 else np.arange(int(keep.sum())) % 10)
    return indices, sub


def pairs_unavailable(cfg: RunConfig, name: str | None = None) -> str | None:
    """Why the dataset has no verification pairs for this profile (no identities, too few people with two
    images, no pair in its folds), or None where it has them: the sections that need pairs say so and are skipped."""
    try:
        verification_indices(cfg, name)
    except ValueError as exc:
        return str(exc)
    return None


def setting_b_unavailable(cfg: RunConfig, target: evaluation.EvaluationSet, grouped: bool = True) -> str | None:
    """Why setting B cannot be measured on ``target``'s labelled images with the profile's folds (too few people of
    a class), or None where it can."""
    known = target.labelled
    try:
        evaluation.fold_splits(target.labels[known], target.identity[known], int(cfg.sizes["cv_folds"]), grouped,
                               cfg.seed)
    except ValueError as exc:
        return str(exc)
    return None


def evaluation_set(
    cfg: RunConfig, folds: tuple[int, ...] | None = None, name: str | None = None, attribute: str = "gender",
    indices: np.ndarray | None = None,
) -> EvaluationSet:
    """The images a family of protections is measured on, with their labels and identities.

    By default the images of the pairs' ``folds`` (:func:`verification_indices`; quick = 1 fold of 600 pairs,
    default and paper = all 6,000 pairs; on the LFW mirror, which holds exactly the pairs' 7,701 images, that is
    the whole dataset), with the pairs for verification. Given ``indices``, those images, without pairs.
    """
    if indices is None:
        indices, subpairs = verification_indices(cfg, name, folds)
    else:
        indices, subpairs = np.asarray(indices), None
    y = labels(cfg, attribute, name)[indices]
    if np.unique(y[y >= 0]).size < 2:
        raise ValueError(f"dataset {name or cfg.dataset!r}: the images measured need two classes of {attribute} for "
                         "setting B")
    return EvaluationSet(name or cfg.dataset, indices, y, dataset(cfg, name).identity[indices], subpairs)


def attack_set(cfg: RunConfig) -> np.ndarray:
    """Every image the chapters attack, in block order: the sweep subset (:func:`subset`) first, then the other
    images of the verification pairs (:func:`verification_indices`), each part in stratified order. Sharing one set
    lets the sweeps and the verification studies reuse each other's directions and templates; putting the subset
    first keeps its blocks apart, so a sweep of the subset alone computes no image outside it. A dataset whose
    pairs cannot be formed (a sample of LFW, whose pairs.txt names missing images; no identities) attacks its
    subset alone here, and the verification studies say why they cannot run when they are called."""
    sub = subset(cfg)
    try:
        paired = verification_indices(cfg)[0]
    except ValueError:
        return _stratified(cfg, sub)
    return np.concatenate([_stratified(cfg, sub), _stratified(cfg, np.setdiff1d(paired, sub))])


def _stratified(cfg: RunConfig, indices: np.ndarray) -> np.ndarray:
    """``indices`` in the order of seeded batches stratified by gender (unknown gender last), so that every
    block of consecutive images holds both genders in about their overall proportion (the MI gradient needs
    both in each of its batches)."""
    gender = dataset(cfg).gender[indices]
    known, unknown = indices[gender >= 0], indices[gender < 0]
    order = mi.stratified_batches(gender[gender >= 0], BLOCK, cfg.seed) if len(known) else []
    return np.concatenate([*(known[b] for b in order), unknown]).astype(np.int64)


def blocks(n: int, block: int = BLOCK) -> list[slice]:
    """Consecutive blocks of ``block`` positions over ``n``; the last one takes the remainder."""
    if n < 1:
        raise ValueError(f"n={n}: expected at least one image")
    edges = [*range(0, block * max(1, n // block), block), n]
    return [slice(a, b) for a, b in zip(edges[:-1], edges[1:])]


def _spans(cfg: RunConfig, over: np.ndarray, block: int, name: str | None) -> list[slice]:
    """The blocks of ``over``: for :func:`attack_set`, the subset's blocks and then the other images' blocks (so
    that no block mixes them), where the other images hold enough of each gender for every block; for any other
    set, :func:`blocks` of it."""
    if name in (None, cfg.dataset) and block == BLOCK:
        n = len(subset(cfg))
        if len(over) > n and np.array_equal(over, attack_set(cfg)):
            rest = blocks(len(over) - n, block)
            gender = dataset(cfg).gender[over[n:]]
            if min(np.sum(gender == g) for g in (data.MALE, data.FEMALE)) >= len(rest):
                return blocks(n, block) + [slice(r.start + n, r.stop + n) for r in rest]
    return blocks(len(over), block)


def digest(indices: np.ndarray) -> str:
    """A short hash of an index array (part of the cache keys of steps on a subset of images)."""
    return hashlib.sha256(np.asarray(indices, dtype=np.int64).tobytes()).hexdigest()[:16]


def _over(cfg: RunConfig, indices: np.ndarray, name: str | None, over: np.ndarray | None) -> np.ndarray:
    """The ordered image set whose blocks serve ``indices``: ``over``, else :func:`attack_set` when it holds them,
    else the sorted distinct ``indices`` themselves."""
    if over is None:
        if name in (None, cfg.dataset):
            shared = attack_set(cfg)
            if np.isin(indices, shared).all():
                return shared
        return np.unique(indices)
    over = np.asarray(over)
    if not np.isin(indices, over).all():
        raise ValueError("indices: expected images of `over`, the set whose blocks are attacked")
    return over


def _positions(over: np.ndarray, indices: np.ndarray) -> np.ndarray:
    lookup = {int(i): k for k, i in enumerate(over)}
    return np.array([lookup[int(i)] for i in np.asarray(indices)], dtype=np.int64)


def estimators_key(cfg: RunConfig, name: str | None = None, attribute: str = "gender") -> dict[str, Any]:
    """What identifies the trained estimators an attack or setting A uses, for the keys of the steps built on them:
    the vCLUB training's length and checkpoints and, for gender, the images the MLP of Sec. 3.1 is trained on
    (:func:`mlp_training_images`: they move with the profile's subset, so two profiles never share an MLP's
    results)."""
    key: dict[str, Any] = {"estimator": {k: cfg.sizes[k] for k in ("estimator_iterations", "estimator_checkpoints")}}
    if attribute == "gender":
        key["mlp_train"] = digest(mlp_training_images(cfg, name))
    return key


def _direction_key(cfg: RunConfig, method: str, batch_size: int, iteration: int | None, name: str | None,
                   attribute: str) -> dict[str, Any]:
    return step_key(cfg, name, method=method, batch_size=batch_size, iteration=iteration, attribute=attribute,
                    **estimators_key(cfg, name, attribute))


# --------------------------------------------------------------------------------------------------
# Protected templates
# --------------------------------------------------------------------------------------------------


def directions(
    cfg: RunConfig, method: str, indices: np.ndarray, batch_size: int = attacks.MI_BATCH_SIZE, iteration: int | None = None,
    name: str | None = None, over: np.ndarray | None = None, block: int = BLOCK, attribute: str = "gender",
) -> np.ndarray:
    """The one-step attack's per-pixel direction (int8, one gradient per image serves every ε) for the images.

    Directions are computed per block of ``over`` (default: :func:`attack_set`, see :func:`_spans`), in
    stratified batches of ``batch_size`` within the block, and cached per block. Images whose ``attribute`` is
    unknown get d = 0 (the MI and MLP gradients need the label; every attack leaves them as they are, so the
    methods stay comparable).
    """
    y = labels(cfg, attribute, name)
    indices = np.asarray(indices, dtype=np.int64)
    over = _over(cfg, indices, name, over)
    params = _direction_key(cfg, method, batch_size, iteration, name, attribute)
    positions = _positions(over, indices)
    result: np.ndarray | None = None
    attack: attacks.SignAttack | None = None
    needed = [part for part in _spans(cfg, over, block, name)
              if ((positions >= part.start) & (positions < part.stop)).any()]
    for part in bar(needed, desc=f"{method} directions of {sum(p.stop - p.start for p in needed):,} images, blocks"):
        rows = (positions >= part.start) & (positions < part.stop)
        members = over[part]

        def compute(members: np.ndarray = members) -> dict[str, np.ndarray]:
            nonlocal attack
            attack = attack or make_attack(cfg, method, iteration, name, attribute)
            aligned = chips(cfg, name)["chips"]
            out = np.zeros((len(members), 3, *aligned.shape[1:3]), dtype=np.int8)
            known = y[members] >= 0
            if known.any():
                out[known] = protect.directions(attack, aligned[members[known]], y[members[known]],
                                                batch_size=batch_size, device=cfg.torch_device, seed=cfg.seed,
                                                progress=False, index=members[known])
            return {"direction": out}

        before = faces.PASSES["gradient"]
        d = cache(cfg).arrays("directions", {**params, "block": digest(members)},
                              compute)["direction"]
        faces.PASSES["sweep_gradient"] += faces.PASSES["gradient"] - before
        if result is None:
            result = np.empty((len(indices), *d.shape[1:]), dtype=np.int8)
        result[rows] = d[positions[rows] - part.start]
    assert result is not None
    return result


def perturbed_templates(
    cfg: RunConfig, method: str, eps_list: Sequence[float], indices: np.ndarray, mode: str = "float",
    batch_size: int = attacks.MI_BATCH_SIZE, iteration: int | None = None, name: str | None = None, over: np.ndarray | None = None,
    attribute: str = "gender", block: int = BLOCK,
) -> dict[float, np.ndarray]:
    """Templates of the images attacked by a one-step ``method``, f(x*), for each ε (``mifgsm attack``).

    One cache entry per ε holds the templates of every image of ``over`` (default :func:`attack_set`), filled
    block by block as requests need them: an (image, attack, ε, storage) is embedded once, whichever chapter
    asks first. Where the stored x* equals the clean image (``uint8`` below half a grey level, or d = 0) the
    clean template is taken as it is. Each entry also records which images were ever requested (``requested``),
    from which ``benchmarks/bench_book.py`` counts the passes the book needs.
    """
    eps_list = [attacks.check_eps(e) for e in eps_list]
    attacks.check_mode(mode)
    indices = np.asarray(indices, dtype=np.int64)
    over = _over(cfg, indices, name, over)
    base = {**_direction_key(cfg, method, batch_size, iteration, name, attribute), "mode": mode,
            "over": digest(over), "block": block}
    store = cache(cfg)
    spans = _spans(cfg, over, block, name)
    positions = _positions(over, indices)
    wanted = np.unique(np.searchsorted([s.start for s in spans], positions, side="right") - 1)
    entries = {e: store.path("perturbed", {**base, "eps": e}, ".npz") for e in eps_list}
    found = {e: store.read_arrays(p, required=("templates", "done", "requested", "over")) for e, p in entries.items()}
    missing = {e: [b for b in wanted if f is None or not f["done"][b]] for e, f in found.items()}
    todo = sorted({b for bs in missing.values() for b in bs})
    clean = templates(cfg, name)["templates"]
    for e, f in found.items():
        if f is None:
            found[e] = {"templates": np.zeros((len(over), clean.shape[1]), dtype=np.float32),
                        "done": np.zeros(len(spans), dtype=bool), "requested": np.zeros(len(over), dtype=bool),
                        "over": over}
    before = faces.PASSES["forward"]
    if todo:
        face = face_model(cfg)
        aligned = chips(cfg, name)["chips"]
        members = np.concatenate([over[spans[b]] for b in todo])
        d_all = directions(cfg, method, members, batch_size, iteration, name, over=over, block=block,
                           attribute=attribute)
        offsets = np.cumsum([0] + [spans[b].stop - spans[b].start for b in todo])
        for k, b in enumerate(bar(todo, desc=f"{method} ({mode}) templates of {len(members):,} images at up to "
                                            f"{len(eps_list)} ε, blocks")):
            members = over[spans[b]]
            levels = [e for e in eps_list if b in missing[e]]
            d = d_all[offsets[k]:offsets[k + 1]]
            per_eps = protect.embed_perturbed(face, aligned[members], d, levels, mode=mode, device=cfg.torch_device,
                                              progress=False, clean=clean[members])
            for e in levels:
                found[e]["templates"][spans[b]] = per_eps[e]
                found[e]["done"][b] = True
    faces.PASSES["sweep_forward"] += faces.PASSES["forward"] - before
    for e in eps_list:
        if missing[e] or not found[e]["requested"][positions].all():
            found[e]["requested"][positions] = True
            save_npz(entries[e], found[e])
            store.record("perturbed", {**base, "eps": e})
    return {e: found[e]["templates"][positions] for e in eps_list}


def protected_templates(
    cfg: RunConfig, method: str, eps: float, indices: np.ndarray, views: Sequence[str], steps: int = 1,
    batch_size: int = attacks.MI_BATCH_SIZE, name: str | None = None, attribute: str = "gender", progress: bool = False,
) -> dict[str, np.ndarray]:
    """Templates of the images ``indices`` protected by ``method`` at ``eps``, in each view of
    :data:`mifgsm_lib.robustness.VIEWS` (cached).

    ``reference`` leaves the images as they are; a one-step attack adds ε times its cached direction
    (:func:`directions`); an iterative one runs ``steps`` steps (:mod:`mifgsm_lib.methods`). Only the images whose
    ``attribute`` is known are protected; the others keep their clean, unprocessed template in every view and
    every method, the reference included, so that the methods stay comparable on the same images.
    """
    views = robustness.check_views(views)
    entry = methods.get(methods.check_methods([method], ("reference", "one-step", "iterative"), "method")[0])
    eps = 0.0 if entry.kind == "reference" else attacks.check_eps(eps)
    indices = np.asarray(indices)
    y = labels(cfg, attribute, name)[indices]
    known = y >= 0
    params = step_key(cfg, name, method=method, eps=eps, views=views, attribute=attribute,
                      steps=steps if entry.kind == "iterative" else None, batch_size=batch_size, sizes=cfg.sizes,
                      indices=digest(indices))

    def compute() -> dict[str, np.ndarray]:
        mine = indices[known]
        if entry.kind == "reference":
            def shield(x: torch.Tensor, yb: torch.Tensor, idx: np.ndarray) -> torch.Tensor:
                return x
        elif entry.kind == "one-step":
            direction = directions(cfg, method, mine, batch_size=batch_size, name=name, attribute=attribute)

            def shield(x: torch.Tensor, yb: torch.Tensor, idx: np.ndarray) -> torch.Tensor:
                return attacks.perturb(x, direction[idx], eps)
        else:
            attack = entry.build(Resources(cfg, None, name, attribute), eps, steps)

            def shield(x: torch.Tensor, yb: torch.Tensor, idx: np.ndarray) -> torch.Tensor:
                return attack(x, yb)
        shown = {v: (lambda images, v=v: robustness.stored_view(images, v)) for v in views}
        protected = protect.embed_protected(face_model(cfg), shield, chips(cfg, name)["chips"][mine], y[known], shown,
                                            batch_size=batch_size, device=cfg.torch_device, seed=cfg.seed,
                                            progress=progress)
        out = {}
        for view, z in protected.items():
            out[view] = templates(cfg, name)["templates"][indices].copy()
            out[view][known] = z
        return out

    return cache(cfg).arrays("protected", params, compute)


@dataclass(frozen=True)
class BaselineCurve:
    """A template baseline over its steps: the protected templates of every image of the dataset after each step
    1..n (``templates``), the dimensions or domain components kept after each step 0..n (``kept``) and, for
    Multi-IVE, the templates reduced to its locked components (``locked``, its privacy floor)."""

    templates: dict[int, np.ndarray]
    kept: np.ndarray
    locked: np.ndarray | None = None


def baseline_templates(
    cfg: RunConfig, method: str, train_dataset: str, n_per_step: int, n_steps: int, n_locked: int,
    n_estimators: int = 30, n_jobs: int | None = -1, progress: bool = True, standardize: bool = True,
) -> BaselineCurve:
    """The templates of every image of the dataset after each step of the template baseline ``method`` (IVE or
    Multi-IVE, :mod:`mifgsm_lib.methods`), its importance estimators fitted on the labelled templates of
    ``train_dataset`` (another dataset than the evaluated one, as the paper trains them; cached, so that every
    study reads one fit). Multi-IVE standardises the templates first, as its authors' code does, unless
    ``standardize=False``."""
    entry = methods.get(methods.check_methods([method], "template", "method")[0])
    if train_dataset == cfg.dataset:
        raise ValueError(f"train_dataset={train_dataset!r}: expected a dataset other than the evaluated "
                         f"{cfg.dataset!r} (the paper trains the importance estimators elsewhere)")
    parameters: dict[str, Any] = {"n_per_step": n_per_step, "n_steps": n_steps, "n_estimators": n_estimators,
                                  "random_state": cfg.seed}
    if method == "multi-ive":
        parameters.update(n_locked=n_locked, standardize=standardize)
    params = step_key(cfg, None, method=method, train=dataset_key(cfg, train_dataset), **parameters)

    def compute() -> dict[str, np.ndarray]:
        train = templates(cfg, train_dataset)
        known = train["gender"] >= 0
        model = entry.build(**parameters, n_jobs=n_jobs, progress=progress).fit(train["templates"][known],
                                                                                train["gender"][known])
        clean = templates(cfg)["templates"]
        steps = range(1, model.n_steps_fitted_ + 1)
        out = {**{f"step{k}": model.transform_at_step(clean, k).astype(np.float32) for k in steps},
               "kept": np.asarray([kept_components(model, k) for k in range(model.n_steps_fitted_ + 1)])}
        if hasattr(model, "transform_locked"):
            out["locked"] = model.transform_locked(clean).astype(np.float32)
        return out

    arrays = cache(cfg).arrays("baselines", params, compute)
    steps = sorted(int(k[4:]) for k in arrays if k.startswith("step"))
    return BaselineCurve({k: arrays[f"step{k}"] for k in steps}, arrays["kept"], arrays.get("locked"))


def kept_components(model: Any, k: int) -> int:
    """Template dimensions (IVE) or domain components (Multi-IVE) left after the first ``k`` steps."""
    return int(model.n_features_in_ - sum(len(step) for step in model.eliminated_[:k]))


def save_perturbed_images(
    cfg: RunConfig, method: str, eps_list: list[float], indices: np.ndarray, mode: str, out: Path,
    batch_size: int = attacks.MI_BATCH_SIZE, name: str | None = None,
) -> list[Path]:
    """Write the attacked chips as PNG files ``out/eps_<ε>/<image id>.png``.

    PNG holds 8 bits per channel, so a ``float``-mode image is written rounded to 8 bits (what ``uint8`` mode
    evaluates); the templates of ``mifgsm attack`` are computed before that rounding in ``float`` mode.
    """
    from PIL import Image

    ds = dataset(cfg, name)
    indices = np.asarray(indices)
    direction = directions(cfg, method, indices, batch_size, None, name)
    aligned = chips(cfg, name)["chips"][indices]
    written = []
    for eps in eps_list:
        folder = Path(out) / f"eps_{float(eps):g}"
        folder.mkdir(parents=True, exist_ok=True)
        for start in range(0, len(indices), batch_size):
            stop = min(start + batch_size, len(indices))
            adv = attacks.perturb(aligned[start:stop], direction[start:stop], float(eps), mode="uint8")
            pixels = (adv.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
            for k, image in enumerate(pixels):
                target = folder / f"{ds.image_ids[indices[start + k]]}.png"
                atomic_write(target, lambda tmp, im=image: Image.fromarray(im).save(tmp, format="PNG"))
                written.append(target)
    return written



# --------------------------------------------------------------------------------------------------
# Measurements kept
# --------------------------------------------------------------------------------------------------

Replicates = dict[evaluation.SetKey, dict[str, np.ndarray]]


def measured(cfg: RunConfig, step: str, params: dict[str, Any],
             compute: Callable[[], tuple[pd.DataFrame, Replicates]]) -> tuple[pd.DataFrame, Replicates]:
    """A measured table (:func:`mifgsm_lib.evaluation.measure`) and its bootstrap replicates, cached under ``step``
    and ``params`` (which must name everything the measurement depends on, the sets' cache keys included): the
    chapters that show one sweep compute it once."""

    def arrays() -> dict[str, np.ndarray]:
        frame, replicates = compute()
        out = {"columns": np.asarray(frame.columns, dtype=str)}
        for c in frame.columns:
            numeric = pd.api.types.is_numeric_dtype(frame[c]) or pd.api.types.is_bool_dtype(frame[c])
            out[f"column.{c}"] = frame[c].to_numpy() if numeric else np.asarray(frame[c].astype(str), dtype=str)
        for i, (key, metrics) in enumerate(replicates.items()):
            out[f"key.{i}"] = np.asarray([key.method, key.parameter, repr(float(key.value))])
            out.update({f"rep.{i}.{m}": v for m, v in metrics.items()})
        return out

    found = cache(cfg).arrays(step, params, arrays)
    frame = pd.DataFrame({c: found[f"column.{c}"] for c in found["columns"].tolist()})
    replicates: Replicates = {}
    for name in sorted((k for k in found if k.startswith("key.")), key=lambda k: int(k[4:])):
        i = name[4:]
        method, parameter, value = found[name].tolist()
        metrics = {k.split(".", 2)[2]: v for k, v in found.items() if k.startswith(f"rep.{i}.")}
        replicates[evaluation.SetKey(method, parameter, float(value))] = metrics
    return frame, replicates


def measure_sets(cfg: RunConfig, sets: dict[evaluation.SetKey, np.ndarray], target: EvaluationSet, plus: bool = False,
                 classifier: Any = None, classifier_key: str | None = None,
                 **options: Any) -> tuple[pd.DataFrame, Replicates]:
    """:func:`mifgsm_lib.evaluation.measure` (or, with ``plus``, :func:`~mifgsm_lib.evaluation.measure_plus`) of the
    protected ``sets`` of ``target``, with its bootstrap replicates, cached under the content of the sets and of the
    target (images, labels, identities, pairs), ``options`` and the run's seed: a chapter run again, or another
    chapter measuring the same sets, loads the measurement. Setting A's ``classifier`` must come with a
    ``classifier_key`` naming it (what it was trained on)."""
    if classifier is not None and classifier_key is None:
        raise ValueError("classifier_key: expected a name of the setting-A classifier for the cache key")
    digest = hashlib.sha256()
    for key, z in sets.items():
        digest.update(repr((key.method, key.parameter, float(key.value))).encode())
        digest.update(np.ascontiguousarray(z).tobytes())
    parts = [target.indices, target.labels, target.identity]
    if target.pairs is not None:
        parts += [target.pairs.left, target.pairs.right, target.pairs.same, target.pairs.fold]
    for part in parts:
        digest.update(np.ascontiguousarray(part).tobytes())
    params = {"sets": digest.hexdigest()[:32], "classifier": classifier_key, "seed": cfg.seed, **options}

    def compute() -> tuple[pd.DataFrame, Replicates]:
        found: Replicates = {}
        if plus:
            return evaluation.measure_plus(sets, target, seed=cfg.seed, replicates=found, **options), found
        return evaluation.measure(sets, target, seed=cfg.seed, classifier=classifier, replicates=found,
                                  **options), found

    return measured(cfg, "measure-plus" if plus else "measure", params, compute)
