"""The cached steps that chapters and the CLI share.

Each step is a pure function of a :class:`~mifgsm_lib.config.RunConfig` (and its own arguments) whose
result is stored in the :class:`~mifgsm_lib.cache.ArtifactCache` under a key of everything that
determines it: dataset (name, folder, image list), face model and its preprocessing, seed, sizes and the
step's code version (``*_VERSION`` below; bump it when a step's code changes its result). Any chapter can
therefore run alone: it computes what is missing and reuses the rest.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from mifgsm_lib import attacks, classifiers, data, face_models, mi
from mifgsm_lib.alignment import align_faces
from mifgsm_lib.cache import ArtifactCache
from mifgsm_lib.config import RunConfig

CHIPS_VERSION = 1
TEMPLATES_VERSION = 1
MLP_VERSION = 1
VCLUB_VERSION = 1
DIRECTIONS_VERSION = 1
PERTURBED_VERSION = 1

#: The attacks of the paper (Sec. 3), by the names the book and the CLI use.
ATTACKS = ("mi-fgsm", "mi-fgsm-mlp", "fgsm", "random")


def cache(cfg: RunConfig) -> ArtifactCache:
    return ArtifactCache(cfg.artifacts_path)


@lru_cache(maxsize=8)
def _load_dataset(name: str, data_dir: str) -> data.FaceDataset:
    return data.load_dataset(name, data_dir)


def dataset(cfg: RunConfig, name: str | None = None) -> data.FaceDataset:
    """The configured dataset (or another one by ``name``) from the configured data folder."""
    return _load_dataset(name or cfg.dataset, str(data.dataset_dir(name or cfg.dataset, cfg.data_path)))


def dataset_key(ds: data.FaceDataset) -> dict[str, Any]:
    """What identifies a dataset's content for the cache: name, folder and a hash of its image list."""
    digest = hashlib.sha256("\n".join(map(str, ds.image_ids)).encode()).hexdigest()[:16]
    return {"dataset": ds.name, "root": str(ds.root.resolve()), "images": len(ds), "image_list": digest}


@lru_cache(maxsize=4)
def _face_model(name: str, weights: str | None, device: str) -> face_models.FaceModel:
    return face_models.load_face_model(name, weights=weights, device=torch.device(device)).eval()


def face_model(cfg: RunConfig, weights: str | None = None) -> face_models.FaceModel:
    """The configured face-recognition network on the configured device."""
    return _face_model(cfg.model, weights, str(cfg.torch_device))


def model_key(cfg: RunConfig) -> dict[str, Any]:
    return {"model": cfg.model, "preprocessing": face_models.preprocessing(cfg.model)}


def chips(cfg: RunConfig, name: str | None = None) -> dict[str, np.ndarray]:
    """Aligned uint8 face chips of every image (``chips``) and which used the fallback box (``fallback``)."""
    ds = dataset(cfg, name)
    params = {**dataset_key(ds), "alignment": face_models.preprocessing(cfg.model)}

    def compute() -> dict[str, np.ndarray]:
        result = align_faces(ds.abs_paths(), model_name=cfg.model)
        return {"chips": result.chips, "fallback": result.fallback}

    return cache(cfg).arrays("chips", CHIPS_VERSION, params, compute)


def templates(cfg: RunConfig, name: str | None = None) -> dict[str, np.ndarray]:
    """Clean templates f(x) of every image with gender, identity and image ids (``mifgsm embed``)."""
    ds = dataset(cfg, name)
    params = {**dataset_key(ds), **model_key(cfg)}

    def compute() -> dict[str, np.ndarray]:
        aligned = chips(cfg, name)
        z = face_models.embed(face_model(cfg), aligned["chips"], device=cfg.torch_device)
        return {
            "templates": z,
            "gender": ds.gender,
            "identity": ds.identity,
            "image_ids": np.asarray(ds.image_ids, dtype=str),
            "fallback": aligned["fallback"],
            "model": np.asarray(cfg.model),
        }

    return cache(cfg).arrays("templates", TEMPLATES_VERSION, params, compute)


def subset(cfg: RunConfig, name: str | None = None) -> np.ndarray:
    """Indices of the gender-balanced subset used by the sweeps (paper: 5,000 images; size from the profile)."""
    ds = dataset(cfg, name)
    indices, _message = data.balanced_subset(ds.gender, cfg.sizes["subset_size"], seed=cfg.seed)
    return np.sort(indices)


def _train_split(cfg: RunConfig, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A seeded stratified 80/20 split used to train and hold out the MLP and the estimators."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    return train_test_split(idx, test_size=0.2, stratify=y, random_state=cfg.seed)


def mlp(cfg: RunConfig, name: str | None = None) -> tuple[classifiers.MLPGenderClassifier, dict[str, float]]:
    """The MLP gender classifier of Sec. 3.1 trained on clean templates (setting A, FGSM, MI-FGSM-MLP)."""
    clean = templates(cfg, name)
    params = {**dataset_key(dataset(cfg, name)), **model_key(cfg), "seed": cfg.seed}

    def compute() -> dict[str, Any]:
        result = classifiers.train_mlp(clean["templates"], clean["gender"], seed=cfg.seed)
        return {
            **{f"model.{k}": v for k, v in result.model.state_dict().items()},
            "train_accuracy": torch.tensor(result.train_accuracy),
            "val_accuracy": torch.tensor(result.val_accuracy),
        }

    state = cache(cfg).state_dict("mlp", MLP_VERSION, params, compute)
    model = classifiers.MLPGenderClassifier(clean["templates"].shape[1])
    model.load_state_dict({k[6:]: v for k, v in state.items() if k.startswith("model.")})
    model.eval()
    scores = {"train_accuracy": float(state["train_accuracy"]), "val_accuracy": float(state["val_accuracy"])}
    return model, scores


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


def vclub(
    cfg: RunConfig, features: str = "face", iteration: int | None = None, name: str | None = None
) -> tuple[mi.VCLUB, dict[str, np.ndarray]]:
    """A vCLUB estimator (Sec. 4.1) trained on clean features, at a checkpoint iteration, with its learning curve."""
    z = estimator_features(cfg, features, name)
    y = templates(cfg, name)["gender"]
    total = int(cfg.sizes["estimator_iterations"])
    checkpoints = tuple(sorted({*cfg.sizes["estimator_checkpoints"], total}))
    iteration = total if iteration is None else int(iteration)
    if iteration not in checkpoints:
        raise ValueError(f"iteration={iteration}: expected one of the saved checkpoints {checkpoints}")
    params = {
        **dataset_key(dataset(cfg, name)),
        **model_key(cfg),
        "features": features,
        "seed": cfg.seed,
        "checkpoints": checkpoints,
    }

    def compute() -> dict[str, Any]:
        train, held = _train_split(cfg, y)
        result = mi.train_vclub(
            z[train], y[train], z[held], y[held], iterations=max(checkpoints), seed=cfg.seed, checkpoints=checkpoints
        )
        out: dict[str, Any] = {f"history.{k}": torch.as_tensor(np.asarray(v)) for k, v in result.history.items()}
        for it, st in result.checkpoints.items():
            out.update({f"ckpt{it}.{k}": v for k, v in st.items()})
        return out

    state = cache(cfg).state_dict("vclub", VCLUB_VERSION, params, compute)
    estimator = mi.VCLUB(z.shape[1])
    prefix = f"ckpt{iteration}."
    estimator.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})
    estimator.eval()
    history = {k[8:]: v.numpy() for k, v in state.items() if k.startswith("history.")}
    return estimator, history


def make_attack(cfg: RunConfig, method: str, iteration: int | None = None, name: str | None = None) -> attacks.SignAttack:
    """One of the paper's four attacks on the configured face model."""
    fm = face_model(cfg)
    if method == "mi-fgsm":
        return attacks.MIFGSM(fm, vclub(cfg, "face", iteration, name)[0])
    if method == "mi-fgsm-mlp":
        return attacks.MIFGSMMLP(fm, mlp(cfg, name)[0], vclub(cfg, "mlp", iteration, name)[0])
    if method == "fgsm":
        return attacks.FGSM(fm, mlp(cfg, name)[0])
    if method == "random":
        return attacks.RandomSign(seed=cfg.seed)
    raise ValueError(f"method={method!r}: expected one of {ATTACKS}")


def directions(
    cfg: RunConfig, method: str, indices: np.ndarray, batch_size: int = 64, iteration: int | None = None,
    name: str | None = None,
) -> np.ndarray:
    """The attack's per-pixel direction (int8, one gradient per image serves every ε) for the chosen images."""
    ds = dataset(cfg, name)
    indices = np.asarray(indices)
    params = {
        **dataset_key(ds), **model_key(cfg), "method": method, "seed": cfg.seed, "batch_size": batch_size,
        "iteration": iteration, "sizes": cfg.sizes, "indices": hashlib.sha256(indices.tobytes()).hexdigest()[:16],
    }

    def compute() -> dict[str, np.ndarray]:
        attack = make_attack(cfg, method, iteration, name)
        aligned = chips(cfg, name)["chips"][indices]
        y = ds.gender[indices]
        return {"direction": attacks.compute_directions(attack, aligned, y, batch_size=batch_size,
                                                         device=cfg.torch_device, seed=cfg.seed)}

    return cache(cfg).arrays("directions", DIRECTIONS_VERSION, params, compute)["direction"]


def perturbed_templates(
    cfg: RunConfig, method: str, eps_list: list[float], indices: np.ndarray, mode: str = "float",
    batch_size: int = 64, iteration: int | None = None, name: str | None = None,
) -> dict[float, np.ndarray]:
    """Templates of the attacked images f(x*) for each ε (``mifgsm attack``)."""
    eps_list = [float(e) for e in eps_list]
    ds = dataset(cfg, name)
    params = {
        **dataset_key(ds), **model_key(cfg), "method": method, "seed": cfg.seed, "batch_size": batch_size,
        "iteration": iteration, "sizes": cfg.sizes, "eps": eps_list, "mode": mode,
        "indices": hashlib.sha256(np.asarray(indices).tobytes()).hexdigest()[:16],
    }

    def compute() -> dict[str, np.ndarray]:
        direction = directions(cfg, method, indices, batch_size, iteration, name)
        aligned = chips(cfg, name)["chips"][np.asarray(indices)]
        per_eps = attacks.embed_perturbed(face_model(cfg), aligned, direction, eps_list, mode=mode,
                                          device=cfg.torch_device)
        return {f"eps_{i}": per_eps[e] for i, e in enumerate(eps_list)}

    arrays = cache(cfg).arrays("perturbed", PERTURBED_VERSION, params, compute)
    return {e: arrays[f"eps_{i}"] for i, e in enumerate(eps_list)}
