"""The cached steps that chapters and the CLI share.

Each step is a pure function of a :class:`~mifgsm_lib.config.RunConfig` (and its own arguments) whose
result is stored in the :class:`~mifgsm_lib.cache.ArtifactCache` under a key of everything that
determines it: dataset (name, folder, image list), face model and its preprocessing, seed, sizes and the
step's code version (``*_VERSION`` below; bump it when a step's code changes its result). Any chapter can
therefore run alone: it computes what is missing and reuses the rest.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mifgsm_lib import attacks, classifiers, data, face_models, mi
from mifgsm_lib.alignment import align_faces, preprocessing
from mifgsm_lib.cache import ArtifactCache, atomic_write, load_npz, save_npz
from mifgsm_lib.config import RunConfig, torch_threads
from mifgsm_lib.progress import bar

CHIPS_VERSION = 1
TEMPLATES_VERSION = 1
MLP_VERSION = 1
VCLUB_VERSION = 1
DIRECTIONS_VERSION = 2
PERTURBED_VERSION = 2

#: Images per vCLUB training batch (Sec. 5).
VCLUB_BATCH = 256

#: The attacks of the paper (Sec. 3), by the names the book and the CLI use.
ATTACKS = ("mi-fgsm", "mi-fgsm-mlp", "fgsm", "random")


def cache(cfg: RunConfig) -> ArtifactCache:
    return ArtifactCache(cfg.artifacts_path)


@lru_cache(maxsize=8)
def _load_dataset(name: str, data_dir: str, max_images: int | None, seed: int) -> data.FaceDataset:
    ds = data.load_dataset(name, data_dir)
    if max_images is not None and max_images < len(ds):
        keep = np.sort(np.random.default_rng(seed).permutation(len(ds))[:max_images])
        ds = ds.subset(keep)
    return ds


def dataset(cfg: RunConfig, name: str | None = None) -> data.FaceDataset:
    """The configured dataset (or another one by ``name``) from the configured data folder.

    Where the profile sets ``max_images`` for the dataset (the quick profile, for UTKFace), a seeded random
    sample of that many images.
    """
    name = name or cfg.dataset
    max_images = cfg.sizes.get("max_images", {}).get(name)
    return _load_dataset(name, str(cfg.data_path), max_images, cfg.seed)


def pairs(cfg: RunConfig, name: str | None = None) -> data.Pairs:
    """The dataset's verification pairs (LFW: pairs.txt; AgeDB-30; the LFW protocol elsewhere)."""
    return data.dataset_pairs(dataset(cfg, name), seed=cfg.seed)


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
    return {"model": cfg.model, "preprocessing": preprocessing(cfg.model)}


#: The chips last read in this process, by cache file: every attack step needs them, and reading a dataset's
#: chips (hundreds of MB) once per step or block would cost seconds each time. Callers must not write to them.
_CHIPS: dict[Path, dict[str, np.ndarray]] = {}


def chips(cfg: RunConfig, name: str | None = None) -> dict[str, np.ndarray]:
    """Aligned uint8 face chips of every image (``chips``) and which used the fallback box (``fallback``)."""
    ds = dataset(cfg, name)
    params = {**dataset_key(ds), "alignment": preprocessing(cfg.model)}
    path = cache(cfg).path("chips", CHIPS_VERSION, params, ".npz")
    if path in _CHIPS and path.exists():
        return _CHIPS[path]

    def compute() -> dict[str, np.ndarray]:
        result = align_faces(ds.abs_paths(), model_name=cfg.model, workers=min(os.cpu_count() or 1, 8))
        return {"chips": result.chips, "fallback": result.fallback}

    arrays = cache(cfg).arrays("chips", CHIPS_VERSION, params, compute)
    if len(_CHIPS) >= 2:
        _CHIPS.clear()
    _CHIPS[path] = arrays
    return arrays


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


def labelled(cfg: RunConfig, name: str | None = None) -> np.ndarray:
    """Indices of the images with a known gender (LFW keeps a few unknown ones, reported by ``data info``)."""
    return np.flatnonzero(dataset(cfg, name).gender >= 0)


def estimator_split(cfg: RunConfig, name: str | None) -> tuple[np.ndarray, np.ndarray]:
    """A seeded stratified 80/20 split of the labelled images, to train and hold out the estimators."""
    from sklearn.model_selection import train_test_split

    idx = labelled(cfg, name)
    return train_test_split(idx, test_size=0.2, stratify=dataset(cfg, name).gender[idx], random_state=cfg.seed)


def mlp(cfg: RunConfig, name: str | None = None) -> tuple[classifiers.MLPGenderClassifier, dict[str, float]]:
    """The MLP gender classifier of Sec. 3.1 trained on clean templates (setting A, FGSM, MI-FGSM-MLP)."""
    clean = templates(cfg, name)
    params = {**dataset_key(dataset(cfg, name)), **model_key(cfg), "seed": cfg.seed}

    def compute() -> dict[str, Any]:
        idx = labelled(cfg, name)
        with torch_threads(1):
            result = classifiers.train_mlp(clean["templates"][idx], clean["gender"][idx], seed=cfg.seed, progress=False)
        return {
            **{f"model.{k}": v for k, v in result.model.checkpoint_state().items()},
            "train_accuracy": torch.tensor(result.train_accuracy),
            "val_accuracy": torch.tensor(result.val_accuracy),
        }

    state = cache(cfg).state_dict("mlp", MLP_VERSION, params, compute)
    model = classifiers.MLPGenderClassifier.from_checkpoint_state(
        {k[6:]: v for k, v in state.items() if k.startswith("model.")}, expected_dim=clean["templates"].shape[1])
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
    """A vCLUB estimator (Sec. 4.1) trained on clean features, at a checkpoint iteration, with its learning curve.

    Batches hold :data:`VCLUB_BATCH` images, or all the training images where there are fewer (a small
    dataset of the user's: the estimate of Eq. 7 is then over the whole training split).
    """
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
        train, held = estimator_split(cfg, name)
        with torch_threads(1):
            result = mi.train_vclub(
                z[train], y[train], z[held], y[held], iterations=max(checkpoints), seed=cfg.seed,
                checkpoints=checkpoints, device=cfg.torch_device, progress=False,
                batch_size=min(VCLUB_BATCH, len(train)),
            )
        out: dict[str, Any] = {f"history.{k}": torch.as_tensor(np.asarray(v)) for k, v in result.history.items()}
        out["history.seconds"] = torch.tensor(result.seconds)
        for it, st in result.checkpoints.items():
            out.update({f"ckpt{it}.{k}": v for k, v in st.items()})
        return out

    state = cache(cfg).state_dict("vclub", VCLUB_VERSION, params, compute)
    prefix = f"ckpt{iteration}."
    estimator = mi.VCLUB.from_checkpoint_state({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)},
                                               expected_dim=z.shape[1])
    estimator.eval()
    history = {k[8:]: v.numpy() for k, v in state.items() if k.startswith("history.")}
    return estimator, history


def _train(cfg: RunConfig, features: str | None, name: str | None) -> None:
    """Train and cache the MLP (``features=None``) or a vCLUB estimator (in a worker process)."""
    if features is None:
        mlp(cfg, name)
    else:
        vclub(cfg, features, name=name)


def train_estimators(cfg: RunConfig, names: Sequence[str | None]) -> None:
    """Train and cache the MLP and both vCLUB estimators (``face``, ``mlp``) of each dataset of ``names``.

    Each training runs on one CPU thread (tiny networks train fastest so), so on a CPU the trainings run in
    parallel processes, one per core: first the MLPs (the ``mlp`` estimator is trained on their features),
    then the estimators. On a GPU, or where everything is cached, they run (or load) one after the other.
    The results are those of :func:`mlp` and :func:`vclub` called alone.
    """
    from joblib import Parallel, delayed

    for name in names:
        templates(cfg, name)
    jobs = 1 if cfg.torch_device.type != "cpu" else -1
    Parallel(n_jobs=jobs)(delayed(_train)(cfg, None, name) for name in names)
    Parallel(n_jobs=jobs)(delayed(_train)(cfg, f, name) for name in names for f in ("face", "mlp"))


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


#: Images per block of an attacked set. Directions and perturbed templates are computed and cached block by
#: block, so a request for some images computes only the blocks that hold them, and every request gives the
#: same numbers whatever was asked before. The last block takes the remainder (between 1 and 2 blocks' worth).
BLOCK = 256


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


def attack_set(cfg: RunConfig) -> np.ndarray:
    """Every image the chapters attack, in block order: the sweep subset (:func:`subset`) first, then the other
    images of the verification pairs (:func:`verification_indices`), each part in stratified order. Sharing one set lets the sweeps and the
    verification studies reuse each other's directions and templates; putting the subset first keeps its
    blocks apart, so a sweep of the subset alone computes no image outside it. A dataset whose pairs cannot be
    formed (a sample of LFW, whose pairs.txt names missing images; no identities) attacks its subset alone here,
    and the verification studies say why they cannot run when they are called."""
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
    order = attacks.stratified_batches(gender[gender >= 0], BLOCK, cfg.seed) if len(known) else []
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


def _digest(indices: np.ndarray) -> str:
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


def _direction_params(cfg: RunConfig, method: str, batch_size: int, iteration: int | None,
                      name: str | None) -> dict[str, Any]:
    return {**dataset_key(dataset(cfg, name)), **model_key(cfg), "method": method, "seed": cfg.seed,
            "batch_size": batch_size, "iteration": iteration,
            "estimator": {k: cfg.sizes[k] for k in ("estimator_iterations", "estimator_checkpoints")}}


def directions(
    cfg: RunConfig, method: str, indices: np.ndarray, batch_size: int = 64, iteration: int | None = None,
    name: str | None = None, over: np.ndarray | None = None, block: int = BLOCK,
) -> np.ndarray:
    """The attack's per-pixel direction (int8, one gradient per image serves every ε) for the chosen images.

    Directions are computed per block of ``over`` (default: :func:`attack_set`, see :func:`_spans`), in
    stratified batches of ``batch_size`` within the block, and cached per block. Images of unknown gender get
    d = 0 (the MI and MLP gradients need the label; every attack leaves them as they are, so the methods stay
    comparable).
    """
    ds = dataset(cfg, name)
    indices = np.asarray(indices, dtype=np.int64)
    over = _over(cfg, indices, name, over)
    params = _direction_params(cfg, method, batch_size, iteration, name)
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
            attack = attack or make_attack(cfg, method, iteration, name)
            aligned = chips(cfg, name)["chips"]
            out = np.zeros((len(members), 3, *aligned.shape[1:3]), dtype=np.int8)
            known = ds.gender[members] >= 0
            if known.any():
                out[known] = attacks.compute_directions(
                    attack, aligned[members[known]], ds.gender[members[known]], batch_size=batch_size,
                    device=cfg.torch_device, seed=cfg.seed, progress=False, index=members[known])
            return {"direction": out}

        before = face_models.PASSES["gradient"]
        d = cache(cfg).arrays("directions", DIRECTIONS_VERSION, {**params, "block": _digest(members)},
                              compute)["direction"]
        face_models.PASSES["sweep_gradient"] += face_models.PASSES["gradient"] - before
        if result is None:
            result = np.empty((len(indices), *d.shape[1:]), dtype=np.int8)
        result[rows] = d[positions[rows] - part.start]
    assert result is not None
    return result


def perturbed_templates(
    cfg: RunConfig, method: str, eps_list: list[float], indices: np.ndarray, mode: str = "float",
    batch_size: int = 64, iteration: int | None = None, name: str | None = None, over: np.ndarray | None = None,
) -> dict[float, np.ndarray]:
    """Templates of the attacked images f(x*) for each ε (``mifgsm attack``).

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
    base = {**_direction_params(cfg, method, batch_size, iteration, name), "mode": mode, "over": _digest(over)}
    store = cache(cfg)
    spans = _spans(cfg, over, BLOCK, name)
    positions = _positions(over, indices)
    wanted = np.unique(np.searchsorted([s.start for s in spans], positions, side="right") - 1)
    entries = {e: store.path("perturbed", PERTURBED_VERSION, {**base, "eps": e}, ".npz") for e in eps_list}
    found = {e: load_npz(p) if p.exists() else None for e, p in entries.items()}
    missing = {e: [b for b in wanted if f is None or not f["done"][b]] for e, f in found.items()}
    todo = sorted({b for bs in missing.values() for b in bs})
    clean = templates(cfg, name)["templates"]
    for e, f in found.items():
        if f is None:
            found[e] = {"templates": np.zeros((len(over), clean.shape[1]), dtype=np.float32),
                        "done": np.zeros(len(spans), dtype=bool), "requested": np.zeros(len(over), dtype=bool),
                        "over": over}
    before = face_models.PASSES["forward"]
    if todo:
        face = face_model(cfg)
        aligned = chips(cfg, name)["chips"]
        members = np.concatenate([over[spans[b]] for b in todo])
        d_all = directions(cfg, method, members, batch_size, iteration, name, over=over)
        offsets = np.cumsum([0] + [spans[b].stop - spans[b].start for b in todo])
        for k, b in enumerate(bar(todo, desc=f"{method} ({mode}) templates of {len(members):,} images at up to "
                                            f"{len(eps_list)} ε, blocks")):
            members = over[spans[b]]
            levels = [e for e in eps_list if b in missing[e]]
            d = d_all[offsets[k]:offsets[k + 1]]
            per_eps = attacks.embed_perturbed(face, aligned[members], d, levels, mode=mode, device=cfg.torch_device,
                                              progress=False, clean=clean[members])
            for e in levels:
                found[e]["templates"][spans[b]] = per_eps[e]
                found[e]["done"][b] = True
    face_models.PASSES["sweep_forward"] += face_models.PASSES["forward"] - before
    for e in eps_list:
        if missing[e] or not found[e]["requested"][positions].all():
            found[e]["requested"][positions] = True
            save_npz(entries[e], found[e])
            store.record("perturbed", PERTURBED_VERSION, {**base, "eps": e})
    return {e: found[e]["templates"][positions] for e in eps_list}


def save_perturbed_images(
    cfg: RunConfig, method: str, eps_list: list[float], indices: np.ndarray, mode: str, out: Path,
    batch_size: int = 64, name: str | None = None,
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
