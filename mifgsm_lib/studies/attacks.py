"""The chapter "Attacks" (paper Sec. 3): what the four attacks do to a face and to its template.

The attacked images for display, the perturbation's size and quality per storage mode (:func:`perturbation_table`),
how far each attack moves the templates against the clean mated and non-mated distances, how often two attacks'
directions agree, and the checks that the MI gradient's sign does not depend on its batch for two classes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from mifgsm_lib import attacks, methods, mi, pipeline, protect, quality, verification
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
    the previous ε of the list), PSNR (dB) and SSIM (means over images, :mod:`mifgsm_lib.quality`) and, with
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
    batch_size: int = attacks.MI_BATCH_SIZE,
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
    :func:`mifgsm_lib.pipeline.verification_indices`; empty for a dataset without pairs
    (:func:`mifgsm_lib.pipeline.pairs_unavailable`)."""
    if pipeline.pairs_unavailable(cfg):
        return {}
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


# --------------------------------------------------------------------------------------------- the ε explorer


@dataclass(frozen=True)
class Explorer:
    """What the chapter's ε explorer shows for one face: the clean chip (H, W, 3) in [0, 1], each attack's direction
    d (3, H, W), its template shift ‖f(x*) − f(x)‖ per (method, mode, ε) beside the clean mated and non-mated distances, and
    settings A and B per (method, ε) from the sweep measured in ``measured_mode`` (with their intervals)."""

    clean: np.ndarray
    directions: dict[str, np.ndarray]
    eps: tuple[float, ...]
    shift: pd.DataFrame
    distances: dict[str, float]
    settings: pd.DataFrame
    measured_mode: str

    def attacked(self, method: str, eps: float, mode: str) -> np.ndarray:
        """The face attacked by ``method`` at ``eps``, stored in ``mode``, (H, W, 3) in [0, 1]."""
        chip = np.round(self.clean * 255.0).astype(np.uint8)[None]
        return attacked_images(chip, self.directions[method][None], [eps], mode)[0, 0]

    def at(self, method: str, eps: float, mode: str) -> dict[str, float]:
        """The numbers shown at one setting: this face's template shift, and settings A and B with their intervals
        (NaN where the sweep was measured in the other storage mode)."""
        s = self.shift
        row = s[(s["method"] == method) & (s["mode"] == mode) & np.isclose(s["eps"], eps)]
        if row.empty:
            raise ValueError(f"({method!r}, {eps:g}, {mode!r}): not among the explorer's settings")
        out = {"shift": float(row["shift"].iloc[0])}
        m = self.settings
        measured = m[(m["method"] == method) & np.isclose(m["eps"], eps)] if mode == self.measured_mode else m[:0]
        for column in ("setting_a", "setting_a_low", "setting_a_high", "setting_b", "setting_b_low", "setting_b_high"):
            out[column] = float(measured[column].iloc[0]) if len(measured) else float("nan")
        return out


def explorer(cfg: RunConfig, face_model: FaceModel, chip: np.ndarray, directions: Mapping[str, np.ndarray],
             eps_list: Sequence[float], sweep: pd.DataFrame, measured_mode: str) -> Explorer:
    """The explorer of one face (``chip``, uint8 (H, W, 3); ``directions[method]`` its d, (3, H, W)): its templates
    embedded at every ε of ``eps_list`` in both storage modes, and the rows of ``sweep``
    (:func:`mifgsm_lib.studies.evaluation_settings.attack_sweep`, measured in ``measured_mode``) at those ε."""
    eps_values = check_eps_list(eps_list)
    x = attacks.as_float_images(chip[None])
    z_clean = embed(face_model, x, progress=False)[0]
    rows = []
    for method, d in directions.items():
        for mode in attacks.MODES:
            batch = torch.cat([attacks.perturb(x, d[None], e, mode) for e in eps_values])
            z = embed(face_model, batch, progress=False)
            rows += [{"method": method, "mode": mode, "eps": e, "shift": float(np.linalg.norm(t - z_clean))}
                     for e, t in zip(eps_values, z)]
    clean = chip.astype(np.float64) / 255.0
    return Explorer(clean, {m: np.asarray(d) for m, d in directions.items()}, tuple(eps_values), pd.DataFrame(rows), pair_distances(cfg),
                    sweep[sweep["eps"] > 0].reset_index(drop=True), measured_mode)


# --------------------------------------------------------------------------------------------- the chapter's prose


def describe_batches(batches: pd.DataFrame, batch_size: int) -> str:
    """Markdown: how the images are split into the MI gradient's stratified batches."""
    return (f"**MI gradient batch size: {batch_size}.** The {int(batches['images'].sum())} images are split into "
            f"{len(batches)} stratified batches of {batches['images'].min()} to {batches['images'].max()} images, "
            f"each with {batches['women'].min()} to {batches['women'].max()} women.")


def directions_table(directions: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """Per attack: the shape, type and values of its directions d, and the share of zeros."""
    return pd.DataFrame({m: {"shape of d": str(d.shape), "dtype": str(d.dtype),
                             "values": str(sorted(np.unique(d).tolist())), "share of d = 0": float(np.mean(d == 0))}
                         for m, d in directions.items()}).T


def describe_zeros(directions: Mapping[str, np.ndarray], gradient_methods: Sequence[str]) -> str:
    """Markdown: the chip rows and columns where every gradient attack's direction is zero for every image."""
    zero = np.stack([directions[m] == 0 for m in gradient_methods]).all(axis=(0, 1, 2))
    rows, cols = np.flatnonzero(zero.all(axis=1)), np.flatnonzero(zero.all(axis=0))
    return (f"A zero in $d$ is a pixel whose gradient is exactly zero, so the attack leaves it alone. For every image "
            f"and every gradient attack the zeros include rows {rows.tolist()} and columns {cols.tolist()} of the "
            f"{zero.shape[0]}-pixel chip: the network's strided convolutions never read them. The random attack's "
            "default reading has no zeros (see Eq. 4 below).")


def describe_agreement(check: pd.DataFrame, agreement: pd.DataFrame, gradient_methods: Sequence[str],
                       n_values: int) -> str:
    """Markdown: the share of direction values a smaller batch leaves unchanged, and how often attacks agree."""
    last = check.iloc[-1]
    pairs = [(a, b) for i, a in enumerate(gradient_methods) for b in gradient_methods[i + 1:]]
    text = (f"With batches of {int(last['batch_size'])} instead of {int(check['batch_size'].iloc[0])}, "
            f"{last['equal_to_first']:.5%} of the direction values are unchanged ({int(last['differ'])} of "
            f"{n_values:,} differ, from floating-point rounding of gradients that are almost exactly zero). "
            "Agreement between attacks: " + ", ".join(f"{methods.label(a)} and {methods.label(b)} {agreement.loc[a, b]:.1%}"
                                                     for a, b in pairs))
    if "random" in agreement.index:
        text += (f"; the random attack agrees with each about {agreement.loc['random', list(gradient_methods)].mean():.1%}"
                 " of the time (chance: 50 % where the gradient is non-zero)")
    return text + "."


def describe_quality(quality: pd.DataFrame, gradient_methods: Sequence[str]) -> str:
    """Markdown: the largest pixel change against 255ε, and how far apart the attacks' PSNR and SSIM are at one ε,
    with the gradient attacks' PSNR against the random attack's where it was measured."""
    worst = np.abs(quality["linf_grey"] - quality["grey_levels"]).max()
    spread = quality.groupby("eps")[["psnr", "ssim"]].agg(lambda s: s.max() - s.min())
    text = (f"Largest pixel change against $255\\epsilon$ over every attack and $\\epsilon$: "
            f"{'equal at every level' if worst <= 1e-3 else 'NOT equal at some level'} (largest difference "
            f"{worst:.2g} grey levels). Every pixel moves by $\\pm\\epsilon$ (or not at all), so the PSNR is about "
            f"$-20\\log_{{10}}\\epsilon$ dB for every attack. At one $\\epsilon$ the attacks differ by at most "
            f"{spread['psnr'].max():.2f} dB in PSNR and {spread['ssim'].max():.3f} in SSIM.")
    if "random" in set(quality["method"]):
        wide = quality.pivot_table(index="eps", columns="method", values="psnr")
        gap = wide[list(gradient_methods)].sub(wide["random"], axis=0)
        if (gap > 0).all().all():
            text += (f" The gradient attacks' PSNR is higher than the random attack's at every ε, by "
                     f"{gap.min().min():.2f} to {gap.max().max():.2f} dB: they leave the zero-gradient pixels alone.")
        elif (gap < 0).all().all():
            text += (f" The gradient attacks' PSNR is lower than the random attack's at every ε, by "
                     f"{-gap.max().max():.2f} to {-gap.min().min():.2f} dB.")
        else:
            text += " The gradient attacks' PSNR is on either side of the random attack's, depending on ε."
    return text + " Image quality therefore does not tell the attacks apart. Only their directions do."


def describe_storage(storage: pd.DataFrame) -> str:
    """Markdown: in uint8 storage, what happens below half a grey level and above; in float storage, the template
    shift at every level."""
    u8, fl = storage[storage["mode"] == "uint8"], storage[storage["mode"] == "float"]
    below, above = u8[u8["grey_levels"] < 0.5], u8[u8["grey_levels"] >= 0.5]
    vanishes = bool((below["changed"] == 0).all() and (below["template_shift"] == 0).all())

    def span(s: pd.Series) -> str:
        return f"{s.min():.1%}" if np.isclose(s.min(), s.max()) else f"{s.min():.1%} to {s.max():.1%}"

    steps = sorted(set(np.round(above["linf_grey"]).astype(int).tolist()))
    outcome = ("**vanishes**: no pixel changes and every template equals its clean template exactly" if vanishes
               else "**does not vanish**")
    first = (f"at the {len(below)} levels below half a grey level the perturbation {outcome} (largest template "
             f"shift {below['template_shift'].max():.3g})" if len(below) else "no level below half a grey level was "
             "measured")
    return (f"In `uint8` mode, {first}. {int(u8['same_as_previous'].sum())} of "
            f"the {len(u8) - 1} steps between neighbouring levels give exactly the same images as the level before. "
            f"From half a grey level on, {span(above['changed'])} of the pixel values change, by {steps} whole grey "
            f"levels. In `float` mode every level changes {span(fl['changed'])} of the pixel values (the others have "
            f"$d = 0$ or are clipped) and moves the templates (largest shift from {fl['template_shift'].min():.3g} "
            f"at the smallest level to {fl['template_shift'].max():.3g} at the largest).")


def describe_shift(shift: pd.DataFrame, distances: Mapping[str, float], gradient_methods: Sequence[str],
                   labels: Mapping[str, str]) -> str:
    """Markdown: the clean pair distances, the gradient attacks' shift against the random attack's at the smallest
    ε, and from which ε each attack moves templates farther than a same-person pair."""
    wide = shift.pivot_table(index="eps", columns="method", values="shift_mean")
    text = (f"Median clean distance: same person {distances['mated']:.3f}, different people "
            f"{distances['non_mated']:.3f}." if distances else "The dataset has no verification pairs to compare with.")
    smallest = wide.index.min()
    if "random" in wide:
        ratios = wide.loc[smallest, list(gradient_methods)] / wide.loc[smallest, "random"]
        spread = (f"{ratios.min():.0f}" if round(ratios.min()) == round(ratios.max())
                  else f"{ratios.min():.0f} to {ratios.max():.0f}")
        text += (f" At ε = {smallest:g} the gradient attacks move a template {spread} "
                 "times farther than the random attack with the same pixel budget.")
    for method in wide if distances else ():
        beyond = wide.index[wide[method] > distances["mated"]]
        text += (f" {labels[method]} moves templates farther than a same-person pair from ε = {beyond.min():g} on."
                 if len(beyond) else f" {labels[method]} stays below the same-person distance at every ε.")
    return text


def spread_eps(eps_list: Sequence[float], n: int) -> list[float]:
    """At most ``n`` levels of ``eps_list``, spread evenly over its sorted values (the smallest and largest kept): the
    explorer's ε, few enough for the static frames of the rendered book."""
    values = np.asarray(sorted(check_eps_list(eps_list)))
    if len(values) <= n:
        return values.tolist()
    picks = np.unique(np.round(np.linspace(0, len(values) - 1, n)).astype(int))
    return values[picks].tolist()


def describe_subset(cfg: RunConfig, y: np.ndarray, grid: Sequence[float]) -> str:
    """Markdown: the sweep subset's size and gender balance, the face model, and the ε swept."""
    return (f"Profile `{cfg.profile}`: a gender-balanced subset of {len(y)} {cfg.dataset} images "
            f"({int((y == 0).sum())} men, {int((y == 1).sum())} women), face model `{cfg.model}`, {len(grid)} levels "
            f"of ε from {min(grid):g} to {max(grid):g}.")
