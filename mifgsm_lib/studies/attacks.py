"""The chapter "Attacks" (paper Sec. 3): what the four attacks do to a face and to its template.

The attacked images for display, the perturbation's size and quality per storage mode (:func:`perturbation_table`),
how far each attack moves the templates against the clean mated and non-mated distances, how often two attacks'
directions agree, and the checks that the MI gradient's sign does not depend on its batch for two classes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from mifgsm_lib import attacks, mi, pipeline, protect, quality, verification
from mifgsm_lib.config import RunConfig
from mifgsm_lib.faces.models import FaceModel, embed
from mifgsm_lib.validation import check_eps_list


def attacked_images(chips: np.ndarray, direction: np.ndarray, eps_list: Sequence[float],
                    mode: str = "float") -> np.ndarray:
    """x* = clip(x + ε·d) stored in ``mode``, as float images (len(eps), n, H, W, 3) in [0, 1] for display."""
    return np.stack([attacks.perturb(chips, direction, e, mode).permute(0, 2, 3, 1).numpy() for e in eps_list])


def perturbation_table(
    chips: np.ndarray,
    direction: np.ndarray,
    eps_list: Sequence[float],
    modes: Sequence[str] = attacks.MODES,
    face_model: FaceModel | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """The perturbation's size and quality per storage mode and ε, on the given chips.

    Columns: ``linf_grey`` (max |x* − x| in grey levels, 255·ε unless clipped), ``changed`` (the fraction of
    pixel values that differ from the clean image), ``same_as_previous`` (every stored image equals the one at
    the previous ε of the list), PSNR (dB) and SSIM (means over images, :mod:`mifgsm_lib.evaluation`) and, with
    a ``face_model``, ``template_shift``: the largest ‖f(x*) − f(x)‖ over the images (templates of clean and
    attacked images computed alike, so an unchanged image gives exactly 0).
    """
    x = attacks.as_float_images(chips)
    clean_np = x.numpy()
    z_clean = embed(face_model, x, progress=False) if face_model is not None else None
    rows = []
    for mode in modes:
        previous = None
        for e in eps_list:
            adv = attacks.perturb(x, direction, e, mode)
            row = {
                "mode": mode, "eps": float(e), "grey_levels": 255.0 * float(e),
                "linf_grey": 255.0 * float((adv - x).abs().max()),
                "changed": float((adv != x).float().mean()),
                "same_as_previous": previous is not None and bool(torch.equal(adv, previous)),
                "psnr": float(np.mean(quality.psnr(clean_np, adv.numpy()))),
                "ssim": float(np.mean(quality.ssim(clean_np, adv.numpy(), progress=progress))),
            }
            if z_clean is not None:
                shift = np.linalg.norm(embed(face_model, adv, progress=False) - z_clean, axis=1)
                row["template_shift"] = float(shift.max())
            rows.append(row)
            previous = adv
    return pd.DataFrame(rows)


def template_shift(
    cfg: RunConfig,
    methods: Sequence[str],
    eps_list: Sequence[float],
    indices: np.ndarray,
    mode: str = "float",
    batch_size: int = 64,
    threshold: float | None = None,
) -> pd.DataFrame:
    """How far each attack moves the templates: ‖f(x*) − f(x)‖ per image, summarised per attack and ε.

    With a verification ``threshold`` (a distance), ``beyond_threshold`` is the fraction of attacked templates
    farther than it from their own clean template.
    """
    eps_values = check_eps_list(eps_list)
    clean = pipeline.templates(cfg)["templates"][indices]
    rows = []
    for method in methods:
        perturbed = pipeline.perturbed_templates(cfg, method, eps_values, indices, mode=mode, batch_size=batch_size)
        for e, z in perturbed.items():
            shift = np.linalg.norm(z - clean, axis=1)
            row = {"method": method, "eps": e, "mode": mode, "shift_mean": float(shift.mean()),
                   "shift_p95": float(np.quantile(shift, 0.95)),
                   "relative_shift": float(np.mean(shift / np.linalg.norm(clean, axis=1)))}
            if threshold is not None:
                row["beyond_threshold"] = float(np.mean(shift > threshold))
            rows.append(row)
    return pd.DataFrame(rows)


def pair_distances(cfg: RunConfig) -> dict[str, float]:
    """Median distance ‖f(x) − f(x')‖ of the clean mated and non-mated pairs of
    :func:`mifgsm_lib.pipeline.verification_indices`."""
    indices, pairs = pipeline.verification_indices(cfg)
    d = verification.pair_distances(pipeline.templates(cfg)["templates"][indices], pairs.left, pairs.right)
    return {"mated": float(np.median(d[pairs.same])), "non_mated": float(np.median(d[~pairs.same]))}


def direction_agreement(directions: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """The share of pixel values where two attacks' directions d are equal, for every pair of attacks."""
    names = list(directions)
    shapes = {np.shape(d) for d in directions.values()}
    if len(shapes) != 1:
        raise ValueError(f"directions: expected arrays of one shape, got {sorted(shapes)}")
    return pd.DataFrame([[float(np.mean(directions[a] == directions[b])) for b in names] for a in names],
                        index=names, columns=names)


def batch_invariance(
    attack: attacks.SignAttack, chips: np.ndarray, y: np.ndarray, batch_sizes: Sequence[int], seed: int = 0,
    device: str = "cpu",
) -> pd.DataFrame:
    """The directions of ``attack`` computed with each batch size, against those of the first batch size.

    For two classes the sign of the MI gradient of an image does not depend on its batch (the batch scales the
    gradient of Eq. 7 by a positive label frequency), so the share of equal values should be 1 up to rounding.
    """
    if not batch_sizes:
        raise ValueError("batch_sizes: expected at least one batch size")
    found = {b: protect.directions(attack, chips, y, batch_size=b, device=device, seed=seed, progress=False)
             for b in batch_sizes}
    first = found[batch_sizes[0]]
    return pd.DataFrame([{"batch_size": b, "batches": len(mi.stratified_batches(np.asarray(y), b, seed)),
                          "equal_to_first": float(np.mean(d == first)), "differ": int(np.sum(d != first))}
                         for b, d in found.items()])


def gradient_batches(y: np.ndarray, batch_size: int, seed: int) -> pd.DataFrame:
    """The stratified batches of the MI gradient (:func:`mifgsm_lib.attacks.stratified_batches`): size and women."""
    batches = mi.stratified_batches(np.asarray(y), batch_size, seed)
    return pd.DataFrame({"batch": np.arange(len(batches)), "images": [len(b) for b in batches],
                         "women": [int((np.asarray(y)[b] == 1).sum()) for b in batches]})
