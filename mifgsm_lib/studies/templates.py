"""The chapter "Face templates and what they leak" (paper Secs. 4.2 and 5).

The data (counts, gender balance, label problems), dlib's alignment and its fallback box, dlib's ResNet ported
to PyTorch and checked live against dlib, verification on the dataset's pairs beside dlib's published figure,
and setting B on clean templates: how much gender the templates leak before any attack.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from mifgsm_lib import evaluation, paper, verification
from mifgsm_lib.data import FaceDataset
from mifgsm_lib.faces.alignment import FaceAligner, load_rgb
from mifgsm_lib.faces.dlib_resnet import DLIB_RESNET_FILE, LEVELS, DlibResNet, dlib_descriptors, dlib_model_file, parse_dlib_dat
from mifgsm_lib.faces.models import FaceModel, embed, preprocessing
from mifgsm_lib.intervals import Interval, cluster_weights

def dataset_table(datasets: Sequence[FaceDataset]) -> pd.DataFrame:
    """One row per dataset: :meth:`FaceDataset.summary` plus the share of women among labelled images."""
    rows = []
    for ds in datasets:
        row = ds.summary()
        row.pop("root")
        row["female_share"] = row["female"] / max(row["male"] + row["female"], 1)
        rows.append(row)
    return pd.DataFrame(rows).set_index("dataset")


def identity_counts(ds: FaceDataset) -> pd.Series:
    """Images per person, most photographed first (why setting B's folds are grouped by identity)."""
    if not ds.has_identities:
        raise ValueError(f"dataset {ds.name!r}: has no identities (one image per entry), nothing to count")
    counts = np.bincount(ds.identity, minlength=len(ds.identity_names))
    return pd.Series(counts, index=ds.identity_names, name="images").sort_values(ascending=False, kind="stable")


def problems_table(ds: FaceDataset) -> pd.DataFrame:
    """The label problems a loader reported (``FaceDataset.problems``) as (file, what and how resolved)."""
    rows = [problem.split(": ", 1) if ": " in problem else ("", problem) for problem in ds.problems]
    return pd.DataFrame(rows, columns=["file", "problem and resolution"])


@dataclass(frozen=True)
class AlignmentExample:
    """An original image, the face box given to the shape predictor, and the aligned chip."""

    title: str
    image: np.ndarray
    box: tuple[int, int, int, int]  # left, top, right, bottom (inclusive), in pixels
    fallback: bool
    chip: np.ndarray


def alignment_examples(
    ds: FaceDataset, chips: np.ndarray, indices: Sequence[int], model: str = "dlib"
) -> list[AlignmentExample]:
    """Re-run the detector on the images at ``indices`` to show the box that produced each cached chip."""
    if len(chips) != len(ds):
        raise ValueError(f"chips: expected one chip per image of {ds.name!r} ({len(ds)}), got {len(chips)}")
    aligner, paths = FaceAligner(preprocessing(model)), ds.abs_paths()
    examples = []
    for i in indices:
        image = load_rgb(paths[int(i)])
        box, fallback = aligner.face_box(image)
        examples.append(AlignmentExample(str(ds.image_ids[int(i)]), image,
                                         (box.left(), box.top(), box.right(), box.bottom()), fallback, chips[int(i)]))
    return examples


def fallback_table(fallback: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """Per dataset: images, how many were aligned from the fallback box, and their fraction."""
    rows = [{"dataset": name, "images": int(np.size(flags)), "fallback": int(np.sum(flags)),
             "fraction": float(np.mean(flags))} for name, flags in fallback.items()]
    return pd.DataFrame(rows).set_index("dataset")


# --------------------------------------------------------------------------------------------- the network


def network_table(network: DlibResNet) -> pd.DataFrame:
    """The port's stages (dlib's ``dnn_face_recognition_ex`` topology): output shape and parameters.

    Shapes come from forward hooks on one input of the network's size; parameter counts are those of
    the PyTorch modules (each ``affine`` is folded into the convolution before it).
    """
    shapes: dict[str, tuple[int, ...]] = {}

    def record(key: str) -> Callable[..., None]:
        """A forward hook storing the output's shape (as a pre-hook, the input's)."""

        def hook(module: torch.nn.Module, args: tuple[torch.Tensor, ...], output: torch.Tensor | None = None) -> None:
            shapes[key] = tuple((args[0] if output is None else output).shape[1:])

        return hook

    starts = np.cumsum([0] + [count for _, count, _ in LEVELS])
    hooks = [network.stem.register_forward_hook(record("stem")),
             network.blocks[0].register_forward_pre_hook(record("pool")),
             network.fc.register_forward_hook(record("fc"))]
    hooks += [network.blocks[int(end) - 1].register_forward_hook(record(f"level{k}"))
              for k, end in enumerate(starts[1:])]
    try:
        with torch.no_grad():
            network(torch.zeros(1, 3, network.input_size, network.input_size))
    finally:
        for hook in hooks:
            hook.remove()

    def n_params(*modules: torch.nn.Module) -> int:
        return int(sum(p.numel() for m in modules for p in m.parameters()))

    def fmt(shape: tuple[int, ...]) -> str:
        return "x".join(map(str, shape))

    s = network.input_size
    rows = [("input", f"RGB {s}x{s}, (x - mean) / 256", fmt((3, s, s)), 0),
            ("stem", "conv 7x7/2 (32) + affine, relu", fmt(shapes["stem"]), n_params(network.stem)),
            ("", "max pool 3x3/2", fmt(shapes["pool"]), 0)]
    for k, (filters, count, down) in enumerate(LEVELS):
        blocks = network.blocks[int(starts[k]):int(starts[k + 1])]
        parts = (["down block"] if down else []) + ([f"{count - down} residual"] if count > down else [])
        rows.append((f"level {k + 1}", " + ".join(parts) + f" ({filters})", fmt(shapes[f"level{k}"]),
                     n_params(*blocks)))
    rows.append(("head", f"global average pool, fc {network.fc.in_features} -> {network.fc.out_features} (no bias)",
                 fmt(shapes["fc"]), n_params(network.fc)))
    return pd.DataFrame(rows, columns=["stage", "layers", "output", "parameters"])


def model_table(model: FaceModel) -> pd.DataFrame:
    """Any face model in one row: its name, input, template dimension and parameter count (the stage-by-stage
    table :func:`network_table` is dlib's ResNet's)."""
    return pd.DataFrame([{"model": model.name, "input": f"RGB {model.input_size}x{model.input_size}",
                          "template": f"{model.embedding_dim}-D",
                          "parameters": int(sum(p.numel() for p in model.network.parameters()))}])


def dlib_file_parameters() -> int:
    """The number of parameters stored in dlib's ``.dat`` file (convolutions, affine and fc)."""
    net = parse_dlib_dat(dlib_model_file(DLIB_RESNET_FILE))
    return int(sum(array.size for layer in net.layers for array in layer.arrays.values()))


def compare_with_dlib(model: FaceModel, chips: np.ndarray, names: Sequence[str]) -> pd.DataFrame:
    """The port against dlib on the same chips: max |difference|, cosine and dlib's template norm."""
    if len(names) != len(chips):
        raise ValueError(f"names: expected one name per chip ({len(chips)}), got {len(names)}")
    ours = embed(model, chips, progress=False).astype(np.float64)
    ref = dlib_descriptors(chips)
    cosine = np.sum(ours * ref, axis=1) / (np.linalg.norm(ours, axis=1) * np.linalg.norm(ref, axis=1))
    return pd.DataFrame({"chip": list(names), "max_abs_diff": np.abs(ours - ref).max(axis=1), "cosine": cosine,
                         "dlib_norm": np.linalg.norm(ref, axis=1)})


# --------------------------------------------------------------------------------------------- verification


def verification_table(report: verification.VerificationReport, label: str,
                       intervals: Mapping[str, Interval]) -> pd.DataFrame:
    """Our verification (with the 95 % intervals of its EER and TAR, :func:`mifgsm_lib.verification.rate_intervals`)
    beside dlib's published LFW accuracy and the paper's reference EER (Table 2)."""
    nan = float("nan")
    eer, tar = intervals["eer"], intervals["tar_at_far"]
    rows = [
        {"source": label, "accuracy": report.accuracy_mean, "accuracy_std": report.accuracy_std,
         "eer": report.eer, "eer 95% interval": f"[{eer.low:.2%}, {eer.high:.2%}]",
         f"tar_at_far_{report.far_level:g}": report.tar_at_far,
         "tar 95% interval": f"[{tar.low:.2%}, {tar.high:.2%}]", "pairs": report.n_pairs},
        {"source": "dlib's published figure (dlib ResNet, full-size LFW)",
         "accuracy": paper.DLIB_PUBLISHED_LFW_ACCURACY, "accuracy_std": nan, "eer": nan,
         f"tar_at_far_{report.far_level:g}": nan, "pairs": paper.VERIFICATION_PAIRS},
        {"source": "the paper's Table 2 (IResNet50-ArcFace, full LFW)", "accuracy": nan, "accuracy_std": nan,
         "eer": paper.LFW_REFERENCE["eer"], f"tar_at_far_{report.far_level:g}": nan,
         "pairs": paper.VERIFICATION_PAIRS},
    ]
    return pd.DataFrame(rows).set_index("source")


def clean_leakage(
    templates: np.ndarray, gender: np.ndarray, identity: np.ndarray | None = None, folds: int = 3, seed: int = 0,
    n_jobs: int | None = -1,
) -> pd.DataFrame:
    """Setting B on clean templates: balanced accuracy per classifier and their mean.

    One row with folds grouped by identity (when ``identity`` is given) and one with the paper's plain
    stratified folds (:func:`evaluation.fold_splits`), each with the 95 % interval of the mean (identities
    resampled, images where there are none: :mod:`mifgsm_lib.intervals`).
    """
    variants = [("grouped by identity", True)] if identity is not None else []
    variants.append(("stratified, as in the paper", False))
    rows = []
    for folding, grouped in variants:
        result = evaluation.setting_b(templates, gender, identity, folds=folds, grouped=grouped, seed=seed,
                                      n_jobs=n_jobs)
        units = identity if identity is not None else np.arange(len(gender))
        interval = result.interval(cluster_weights(units, seed=seed))
        rows.append({"folds": folding, **result.balanced_accuracy, "low": interval.low, "high": interval.high,
                     "images": result.n_samples})
    return pd.DataFrame(rows).set_index("folds")


# --------------------------------------------------------------------------------------------- the chapter's prose


def describe_datasets(summary: pd.DataFrame, primary: FaceDataset) -> str:
    """Markdown: each dataset's size, share of women and unlabelled images, and how the primary one's images
    spread over its people."""
    lines = [f"* **{row.Index}**: {row.images:,} images, {row.female_share:.1%} of the labelled ones women; "
             f"{row.unknown_gender} without a gender label." for row in summary.itertuples()]
    if primary.has_identities:
        per_person = identity_counts(primary)
        top = ", ".join(f"{n.replace('_', ' ')} ({c})" for n, c in per_person.head(3).items())
        lines.append(f"* {primary.name} has {len(per_person):,} people: {(per_person == 1).mean():.0%} have a "
                     f"single image, and the most photographed are {top}. Images of one person share more than "
                     "gender, which is why setting B below keeps each person's images in one fold.")
    return "\n".join(lines)


def describe_fallback(fallback: pd.DataFrame) -> str:
    """Markdown: how many images of each dataset were aligned from the fallback box."""
    return "\n".join(f"* **{row.Index}**: {row.fallback:,} of {row.images:,} images ({row.fraction:.2%}) had no "
                     "detected face and were aligned from the fallback box." for row in fallback.itertuples())


def describe_port(check: pd.DataFrame, tolerance: float, dims: int) -> str:
    """Markdown: the largest difference between the port and dlib over the compared chips, against
    ``tolerance``."""
    worst = check["max_abs_diff"].max()
    verdict = "within" if worst <= tolerance else "**outside**"
    return (f"The largest absolute difference over {len(check)} chips x {dims} dimensions is "
            f"{worst:.1e}, {verdict} the tolerance of {tolerance:.0e}, on templates of norm about "
            f"{check['dlib_norm'].mean():.2f}. The port computes dlib's function, and it is differentiable with "
            "respect to the image.")


def describe_verification(report: verification.VerificationReport, intervals: Mapping[str, Interval],
                          fallback: int, model: str) -> str:
    """Markdown: the clean templates' verification numbers with their intervals, and for dlib against its
    published LFW accuracy."""
    eer = intervals["eer"]
    text = (f"On {report.n_pairs:,} pairs ({report.n_genuine:,} mated) the clean templates reach a 10-fold accuracy "
            f"of **{report.accuracy_mean:.2%}** ± {report.accuracy_std:.2%}, an EER of **{report.eer:.2%}** (95 % "
            f"interval {eer.low:.2%} to {eer.high:.2%}) and a TAR of **{report.tar_at_far:.2%}** at FAR = "
            f"{report.far_level:.1%}.")
    if model == "dlib":
        gap = paper.DLIB_PUBLISHED_LFW_ACCURACY - report.accuracy_mean
        text += (f" That is {abs(100 * gap):.2f} points {'below' if gap > 0 else 'above'} dlib's published "
                 f"{paper.DLIB_PUBLISHED_LFW_ACCURACY:.2%}, which dlib measured on full-size LFW images; our mirror "
                 f"has tighter crops, and {fallback} chips come from the fallback box.")
    return text


def describe_leakage(leakage: pd.DataFrame, dataset: str) -> str:
    """Markdown: each dataset's clean setting B with its interval, the best classifier, how linear the
    information is, what grouping the folds by identity changes, and for LFW the paper's figure beside ours."""
    lines = []
    for name in leakage.index.get_level_values("dataset").unique():
        rows = leakage.loc[name]
        first = rows.iloc[0]
        linear_gap = first["rbf_svm"] - first["logreg"]
        best = first[list(evaluation.CLASSIFIERS)].max()
        text = (f"* **{name}** ({int(first['images']):,} labelled images): setting B on clean templates is "
                f"**{first['mean']:.1%}** (95 % interval {first['low']:.1%} to {first['high']:.1%}; folds "
                f"{rows.index[0]}), the best classifier reaching {best:.1%}. The RBF SVM scores "
                f"{100 * linear_gap:+.2f} points against logistic regression: the gender information is "
                + ("largely linear in the template." if linear_gap < 0.02 else "partly non-linear in the template."))
        if len(rows) > 1:
            diff = rows["mean"].iloc[1] - first["mean"]
            text += (f" The paper's stratified folds give {rows['mean'].iloc[1]:.1%}, {100 * diff:+.2f} points: "
                     + ("seeing a person's other images in training inflates the score." if diff > 0 else
                        "grouping by identity does not lower the score here."))
        lines.append(text)
    if dataset == "lfw" and "lfw" in leakage.index.get_level_values("dataset"):
        ours, theirs = leakage.loc["lfw", "mean"].iloc[0], paper.LFW_REFERENCE["setting_b"]
        lines.append(f"* The paper's IResNet50-ArcFace templates of LFW leak {theirs:.1%}; ours leak "
                     + (f"more, {ours:.1%}." if ours > theirs else f"less, {ours:.1%}."))
    return "\n".join(lines)


def describe_parameters(n_port: int, n_file: int) -> str:
    """Markdown: the port's parameter count against the count stored in dlib's file."""
    return (f"The port has **{n_port:,}** parameters. dlib's file stores {n_file:,}: the difference, "
            f"{n_file - n_port:,}, is the affine layers' separate scale and shift, folded into the convolutions here.")
