"""The ``mifgsm`` command: data, embed, verify, attack, evaluate and book.

Every subcommand that reports results takes ``--json`` and then prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mifgsm_lib import methods
from mifgsm_lib.config import PROFILES, RunConfig
from mifgsm_lib.faces.models import FACE_MODELS


def _emit(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(result, indent=2, default=str))
        return
    for key, value in result.items():
        print(f"{key}: {value}")


def _common(p: argparse.ArgumentParser, dataset: bool = True) -> None:
    if dataset:
        p.add_argument("--dataset", default="lfw", help="dataset name (lfw, utkface, agedb, colorferet, folder)")
    p.add_argument("--data-dir", default=None, help="data folder (default $MIFGSM_DATA or ~/.cache/mifgsm/data)")
    p.add_argument("--model", default="dlib", choices=list(FACE_MODELS),
                   help="face model (dlib: the embedded default; iresnet50 needs its weights)")
    p.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda, mps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--profile", default="default", choices=sorted(PROFILES))
    p.add_argument("--artifacts", default=None, help="artifacts cache (default $MIFGSM_ARTIFACTS or ~/.cache/mifgsm/artifacts)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def _config(args: argparse.Namespace) -> RunConfig:
    return RunConfig(
        dataset=getattr(args, "dataset", "lfw"), data_dir=args.data_dir, model=args.model, device=args.device,
        seed=args.seed, profile=args.profile, artifacts_dir=args.artifacts,
    )


def _eps_list(values: Sequence[str]) -> list[float]:
    from mifgsm_lib.validation import check_eps_list

    eps = []
    for v in values:
        try:
            eps.append(float(v))
        except ValueError as exc:
            raise ValueError(f"--eps {v!r}: expected a number in [0, 1] on the [0,1] pixel scale") from exc
    return check_eps_list(eps, "--eps")


def cmd_data(args: argparse.Namespace) -> dict[str, Any]:
    from mifgsm_lib import data
    from mifgsm_lib.config import default_data_dir

    data_dir = Path(args.data_dir) if args.data_dir else default_data_dir()
    if args.action == "fetch":
        path = data.fetch(args.name, data_dir, mirror=Path(args.mirror) if args.mirror else None)
        return {"dataset": args.name, "path": str(path)}
    return data.info(args.name, data_dir)


def _load_templates_file(path: str) -> dict[str, np.ndarray]:
    from mifgsm_lib.cache import load_npz

    arrays = load_npz(Path(path))
    for key in ("templates", "gender"):
        if key not in arrays:
            raise ValueError(f"{path}: expected an .npz written by `mifgsm embed` or `mifgsm attack` with a {key!r} array")
    return arrays


def cmd_embed(args: argparse.Namespace) -> dict[str, Any]:
    from mifgsm_lib import pipeline
    from mifgsm_lib.cache import save_npz

    cfg = _config(args)
    arrays = pipeline.templates(cfg)
    meta = {"preprocessing": json.dumps(pipeline.model_key(cfg)), "dataset": cfg.dataset}
    save_npz(Path(args.out), {**arrays, **{k: np.asarray(v) for k, v in meta.items()}})
    return {"out": args.out, "images": int(len(arrays["templates"])), "dim": int(arrays["templates"].shape[1]),
            "fallback_alignments": int(arrays["fallback"].sum())}


def cmd_verify(args: argparse.Namespace) -> dict[str, Any]:
    from mifgsm_lib import data, pipeline, verification

    cfg = _config(args)
    ds = pipeline.dataset(cfg)
    z = _load_templates_file(args.templates)["templates"] if args.templates else pipeline.templates(cfg)["templates"]
    pairs = data.dataset_pairs(ds, seed=cfg.seed)
    report = verification.verify(z, pairs.left, pairs.right, pairs.same, pairs.fold)
    return {"dataset": cfg.dataset, "model": cfg.model, **report.as_dict()}


def cmd_attack(args: argparse.Namespace) -> dict[str, Any]:
    from mifgsm_lib import pipeline
    from mifgsm_lib.cache import save_npz

    cfg = _config(args)
    eps = _eps_list(args.eps)
    ds = pipeline.dataset(cfg)
    indices = pipeline.subset(cfg) if args.subset else np.arange(len(ds))
    per_eps = pipeline.perturbed_templates(cfg, args.method, eps, indices, mode=args.mode, batch_size=args.batch_size)
    arrays: dict[str, np.ndarray] = {
        "eps": np.asarray(eps), "indices": indices, "gender": ds.gender[indices], "identity": ds.identity[indices],
        "image_ids": np.asarray(ds.image_ids, dtype=str)[indices], "method": np.asarray(args.method),
        "mode": np.asarray(args.mode),
    }
    arrays.update({f"templates_eps{i}": z for i, z in enumerate(per_eps.values())})
    arrays["templates"] = per_eps[eps[-1]]
    save_npz(Path(args.out), arrays)
    if args.images_out:
        pipeline.save_perturbed_images(cfg, args.method, eps, indices, args.mode, Path(args.images_out),
                                       batch_size=args.batch_size)
    return {"out": args.out, "method": args.method, "eps": eps, "mode": args.mode, "images": int(len(indices))}


def cmd_evaluate(args: argparse.Namespace) -> dict[str, Any]:
    from mifgsm_lib import evaluation, pipeline

    cfg = _config(args)
    arrays = _load_templates_file(args.templates) if args.templates else pipeline.templates(cfg)
    z, y = arrays["templates"], arrays["gender"]
    if args.setting == "A":
        model, _ = pipeline.mlp(cfg)
        keep = y >= 0
        return {"setting": "A", "accuracy": evaluation.setting_a(model, z[keep], y[keep])}
    groups = arrays.get("identity") if not args.stratified else None
    keep = y >= 0  # images of unknown gender (a few in LFW) cannot be scored
    result = evaluation.setting_b(z[keep], y[keep], groups=None if groups is None else groups[keep],
                                  folds=cfg.sizes["cv_folds"], grouped=not args.stratified, seed=cfg.seed)
    return {"setting": "B", "folds": "stratified" if args.stratified else "grouped by identity", **result.as_dict()}


def cmd_book(args: argparse.Namespace) -> dict[str, Any]:
    from mifgsm_lib import book

    root = book.repo_root()
    params = {
        "dataset": args.dataset, "model": args.model, "device": args.device, "seed": args.seed,
        "profile": args.profile, "data_dir": args.data_dir, "artifacts_dir": args.artifacts,
    }
    out = Path(args.out).resolve()
    executed = book.run_chapters(root, out, params, chapters=args.chapters)
    result: dict[str, Any] = {"executed": [str(p) for p in executed]}
    if not args.no_build:
        result["html"] = str(book.build_html(out))
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mifgsm", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("data", help="fetch a dataset or report on it")
    p.add_argument("action", choices=["fetch", "info"])
    p.add_argument("name", help="lfw, utkface (agedb, colorferet: licence-restricted, info only)")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--mirror", default=None, help="local mirror folder (default $MIFGSM_MIRROR)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_data)

    p = sub.add_parser("embed", help="templates of every image of a dataset into one .npz")
    _common(p)
    p.add_argument("--out", required=True, help="output .npz")
    p.set_defaults(func=cmd_embed)

    p = sub.add_parser("verify", help="verification on the dataset's pairs: 10-fold accuracy, EER, TAR@FAR=0.1%%")
    _common(p)
    p.add_argument("--templates", default=None, help=".npz from embed/attack (default: the clean templates)")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("attack", help="perturb images with a one-step attack and write their templates")
    _common(p)
    p.add_argument("--method", default="mi-fgsm", choices=methods.names("one-step"),
                   help="a one-step attack of mifgsm_lib.methods")
    p.add_argument("--eps", nargs="+", default=["0.015"], help="ε values on the [0,1] pixel scale")
    p.add_argument("--mode", default="float", choices=["float", "uint8"])
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--subset", action="store_true", help="only the profile's gender-balanced subset")
    p.add_argument("--out", required=True, help="output .npz")
    p.add_argument("--images-out", default=None, help="also write the perturbed images (PNG) to this folder")
    p.set_defaults(func=cmd_attack)

    p = sub.add_parser("evaluate", help="setting A (fixed MLP) or setting B (3-fold CV of 3 classifiers)")
    _common(p)
    p.add_argument("--setting", required=True, choices=["A", "B"])
    p.add_argument("--templates", default=None, help=".npz from embed/attack (default: the clean templates)")
    p.add_argument("--stratified", action="store_true", help="the paper's plain stratified folds instead of identity-grouped")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("book", help="run every chapter with papermill, then build the HTML book")
    _common(p)
    p.add_argument("--out", default=".", help="executed notebooks go to OUT/_build/executed, the HTML to OUT/_build/html")
    p.add_argument("--chapters", nargs="*", default=None, help="only these chapters (e.g. book/intro)")
    p.add_argument("--no-build", action="store_true", help="execute only, do not build the HTML")
    p.set_defaults(func=cmd_book)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.func(args)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"mifgsm {args.command}: error: {exc}", file=sys.stderr)
        return 2
    _emit(result, getattr(args, "json", False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
