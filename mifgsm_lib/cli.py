"""The ``mifgsm`` command: data, embed, verify, attack, evaluate and book.

Every subcommand that reports results takes ``--json`` and then prints one JSON object on stdout; each says on
stderr (and in the JSON) which data folder it read. A user error (a missing or unreadable file, a bad value, no
network) ends with one line on stderr naming the file or parameter, and exit code 2; a bug still shows its
traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mifgsm_lib import methods
from mifgsm_lib.attacks import MI_BATCH_SIZE
from mifgsm_lib.config import MIRROR_ENV, PROFILES, RunConfig
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
                   help="face model (dlib: the embedded default; iresnet50 needs --weights)")
    p.add_argument("--labels", default="labels.csv", help="the CSV of a `folder` dataset, relative to --data-dir")
    p.add_argument("--weights", default=None, help="the face model's weights file or URL (iresnet50: backbone.pth)")
    p.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda, mps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--profile", default="default", choices=sorted(PROFILES))
    p.add_argument("--artifacts", default=None, help="artifacts cache (default $MIFGSM_ARTIFACTS or ~/.cache/mifgsm/artifacts)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def _config(args: argparse.Namespace) -> RunConfig:
    return RunConfig(
        dataset=getattr(args, "dataset", "lfw"), data_dir=args.data_dir, labels=args.labels, model=args.model,
        weights=args.weights,
        device=args.device, seed=args.seed, profile=args.profile, artifacts_dir=args.artifacts,
    )


def _read_from(cfg: RunConfig, command: str) -> str:
    """The folder the configured dataset is read from, said on stderr once."""
    from mifgsm_lib import pipeline

    root = str(pipeline.dataset(cfg).root)
    print(f"mifgsm {command}: reading {cfg.dataset} from {root}", file=sys.stderr)
    return root


def _output(path: str, name: str = "--out") -> Path:
    """An output file path, checked before any work: not a folder, its parent a folder (created if missing) that
    this user may write in."""
    out = Path(path)
    if out.is_dir():
        raise IsADirectoryError(f"{name} {out}: is a folder; expected a file name such as {out / 'result.npz'}")
    for parent in out.parents:
        if parent.exists() and not parent.is_dir():
            raise NotADirectoryError(f"{name} {out}: {parent} is a file, not a folder")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except PermissionError as exc:
        raise PermissionError(f"{name} {out}: cannot create {exc.filename} (permission denied)") from exc
    if not os.access(out.parent, os.W_OK) or (out.exists() and not os.access(out, os.W_OK)):
        raise PermissionError(f"{name} {out}: this user may not write there (permission denied)")
    return out


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
        was_there = data.is_complete(args.name, data_dir)
        mirror = args.mirror or os.environ.get(MIRROR_ENV)
        path = data.fetch(args.name, data_dir, mirror=Path(args.mirror) if args.mirror else None)
        how = ("already there" if was_there else "linked" if path.is_symlink() else "copied" if mirror
               else "downloaded")
        said = {"already there": "already there", "linked": f"a link to the mirror's {path.resolve()}",
                "copied": f"copied from the mirror {mirror}", "downloaded": "downloaded, each file's sha256 checked"}
        print(f"mifgsm data fetch: {args.name} is in {path} ({said[how]})", file=sys.stderr)
        return {"dataset": args.name, "path": str(path), "data_folder": str(path.resolve()), "how": how}
    report = data.info(args.name, data_dir)
    print(f"mifgsm data info: read {args.name} from {report['root']}", file=sys.stderr)
    return {**report, "data_folder": str(report["root"])}


def _templates_file(path: str, cfg: RunConfig, by_image: bool = True) -> dict[str, np.ndarray]:
    """A templates file of ``mifgsm embed`` or ``mifgsm attack`` with its ``templates`` and ``gender``. Where rows are
    matched to the configured dataset's images (``by_image``: pairs, the MLP), it must also name its images
    (``image_ids``) and its face model, and that model must be the configured one."""
    from mifgsm_lib.cache import load_npz

    arrays = load_npz(Path(path))
    for key in ("templates", "gender") + (("image_ids", "model") if by_image else ()):
        if key not in arrays:
            raise ValueError(f"{path}: expected an .npz written by `mifgsm embed` or `mifgsm attack`, with a {key!r} "
                             "array")
    if by_image and str(arrays["model"]) != cfg.model:
        raise ValueError(f"{path}: templates of face model {str(arrays['model'])!r}, but --model is {cfg.model!r}")
    if by_image and "preprocessing" in arrays:
        from mifgsm_lib import pipeline

        written, configured = json.loads(str(arrays["preprocessing"])), pipeline.model_key(cfg)
        for part in ("weights", "landmarks"):
            if written.get(part) != configured[part]:
                raise ValueError(f"{path}: templates of {cfg.model} with other {part} (digest {written.get(part)}) "
                                 f"than the configured ones ({configured[part]}); embed again with these")
    if by_image:
        ids, counts = np.unique(arrays["image_ids"].astype(str), return_counts=True)
        if (counts > 1).any():
            raise ValueError(f"{path}: image id {ids[counts > 1][0]!r} appears {counts.max()} times; expected one "
                             "template per image")
    return arrays


def _aligned(arrays: dict[str, np.ndarray], cfg: RunConfig, path: str, needed: np.ndarray) -> np.ndarray:
    """The file's templates in the order of the configured dataset's images, by image id: a template for each image
    of ``needed`` (dataset indices) is required, and a file of another dataset is refused."""
    from mifgsm_lib import pipeline

    ids = pipeline.dataset(cfg).image_ids
    row_of = {str(i): k for k, i in enumerate(arrays["image_ids"].tolist())}
    missing = [str(ids[i]) for i in needed if str(ids[i]) not in row_of]
    if missing:
        raise ValueError(f"{path}: has no template of {len(missing)} image(s) of {cfg.dataset!r} that are needed "
                         f"(e.g. {missing[:3]}); was it made from another dataset, or with --subset?")
    z = np.zeros((len(ids), arrays["templates"].shape[1]), dtype=arrays["templates"].dtype)
    z[needed] = arrays["templates"][[row_of[str(ids[i])] for i in needed]]
    return z


def cmd_embed(args: argparse.Namespace) -> dict[str, Any]:
    from mifgsm_lib import pipeline
    from mifgsm_lib.cache import save_npz

    cfg = _config(args)
    out = _output(args.out)
    root = _read_from(cfg, "embed")
    arrays = pipeline.templates(cfg)
    meta = {"preprocessing": json.dumps(pipeline.model_key(cfg)), "dataset": cfg.dataset}
    save_npz(out, {**arrays, **{k: np.asarray(v) for k, v in meta.items()}})
    return {"out": str(out), "data_folder": root, "images": int(len(arrays["templates"])),
            "dim": int(arrays["templates"].shape[1]), "fallback_alignments": int(arrays["fallback"].sum())}


def cmd_verify(args: argparse.Namespace) -> dict[str, Any]:
    from mifgsm_lib import pipeline, verification

    cfg = _config(args)
    root = _read_from(cfg, "verify")
    pairs = pipeline.pairs(cfg)
    if args.templates:
        needed = np.unique(np.concatenate([pairs.left, pairs.right]))
        z = _aligned(_templates_file(args.templates, cfg), cfg, args.templates, needed)
    else:
        z = pipeline.templates(cfg)["templates"]
    report = verification.verify(z, pairs.left, pairs.right, pairs.same, pairs.fold)
    return {"dataset": cfg.dataset, "data_folder": root, "model": cfg.model, **report.as_dict(),
            "pair_problems": pairs.problems}


def cmd_attack(args: argparse.Namespace) -> dict[str, Any]:
    from mifgsm_lib import pipeline
    from mifgsm_lib.cache import save_npz

    cfg = _config(args)
    eps = _eps_list(args.eps)
    out = _output(args.out)
    if args.images_out and Path(args.images_out).is_file():
        raise NotADirectoryError(f"--images-out {args.images_out}: is a file; expected a folder")
    root = _read_from(cfg, "attack")
    ds = pipeline.dataset(cfg)
    indices = pipeline.subset(cfg) if args.subset else np.arange(len(ds))
    per_eps = pipeline.perturbed_templates(cfg, args.method, eps, indices, mode=args.mode, batch_size=args.batch_size)
    arrays: dict[str, np.ndarray] = {
        "eps": np.asarray(eps), "indices": indices, "gender": ds.gender[indices], "identity": ds.identity[indices],
        "image_ids": np.asarray(ds.image_ids, dtype=str)[indices], "method": np.asarray(args.method),
        "mode": np.asarray(args.mode), "model": np.asarray(cfg.model), "dataset": np.asarray(cfg.dataset),
    }
    arrays.update({f"templates_eps{i}": z for i, z in enumerate(per_eps.values())})
    arrays["templates"] = per_eps[eps[-1]]
    save_npz(out, arrays)
    if args.images_out:
        pipeline.save_perturbed_images(cfg, args.method, eps, indices, args.mode, Path(args.images_out),
                                       batch_size=args.batch_size)
    return {"out": str(out), "data_folder": root, "method": args.method, "eps": eps, "mode": args.mode,
            "images": int(len(indices))}


def cmd_evaluate(args: argparse.Namespace) -> dict[str, Any]:
    from mifgsm_lib import evaluation, pipeline

    cfg = _config(args)
    root = _read_from(cfg, "evaluate")
    if args.templates:
        arrays = _templates_file(args.templates, cfg, by_image=args.setting == "A")
    else:
        arrays = {**pipeline.templates(cfg), "image_ids": np.asarray(pipeline.dataset(cfg).image_ids, dtype=str)}
    z, y = arrays["templates"], arrays["gender"]
    if args.setting == "A":  # the file's rows are the dataset's images by id, with the dataset's labels
        ds = pipeline.dataset(cfg)
        row_of = {str(i): k for k, i in enumerate(ds.image_ids.tolist())}
        foreign = [str(i) for i in arrays["image_ids"].tolist() if str(i) not in row_of]
        if foreign:
            raise ValueError(f"{args.templates}: {len(foreign)} of its {len(z)} templates are of images not in "
                             f"{cfg.dataset!r} at {ds.root} (e.g. {foreign[:3]}); expected templates of this "
                             "dataset's images (was it made from another dataset?)")
        y = ds.gender[[row_of[str(i)] for i in arrays["image_ids"].tolist()]]
    keep = y >= 0  # images of unknown gender (a few in LFW) cannot be scored
    if args.setting == "A":
        ids = pipeline.dataset(cfg).image_ids
        trained = {str(ids[i]) for i in pipeline.mlp_training_images(cfg)}
        unseen = keep & ~np.isin(arrays["image_ids"].astype(str), list(trained))
        if not unseen.any():
            raise ValueError("setting A: every labelled image of the templates was used to train the MLP; setting A "
                             "is measured on images it never saw (the profile's sweep subset)")
        model, _ = pipeline.mlp(cfg)
        return {"setting": "A", "data_folder": root, "images": int(unseen.sum()),
                "accuracy": evaluation.setting_a(model, z[unseen], y[unseen])}
    groups = arrays.get("identity") if not args.stratified else None
    result = evaluation.setting_b(z[keep], y[keep], groups=None if groups is None else groups[keep],
                                  folds=cfg.sizes["cv_folds"], grouped=not args.stratified, seed=cfg.seed)
    return {"setting": "B", "data_folder": root, "folds": "stratified" if args.stratified else "grouped by identity",
            **result.as_dict()}


def _book_parameters(args: argparse.Namespace) -> dict[str, Any]:
    """The chapters' parameters: the common options, then ``-f`` files, then ``-p NAME=VALUE`` (YAML values)."""
    import yaml

    params: dict[str, Any] = {
        "dataset": args.dataset, "labels": args.labels, "model": args.model, "weights": args.weights, "device": args.device,
        "seed": args.seed, "profile": args.profile, "data_dir": args.data_dir, "artifacts_dir": args.artifacts,
    }
    for path in args.parameters_file or []:
        try:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ValueError(f"-f {path}: not a YAML file of parameters ({exc})") from exc
        if not isinstance(loaded, dict):
            raise ValueError(f"-f {path}: expected a mapping of parameter names to values, got {type(loaded).__name__}")
        params.update(loaded)
    for item in args.parameter or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"-p {item!r}: expected NAME=VALUE")
        params[name.strip()] = yaml.safe_load(value)
    return params


#: The tools `mifgsm book` runs (module: distribution), installed with the ``book`` extra, not with the library.
BOOK_TOOLS = {"papermill": "papermill", "jupyter_book": "jupyter-book"}


class MissingTool(RuntimeError):
    """A tool the command needs is not installed (the user's environment, not a bug)."""


def _require_book_tools(build: bool) -> None:
    """Refuse, naming the extra to install, where the tools that run (papermill) and build (jupyter-book) the
    book are missing: a chapter needs only the library, so ``pip install mifgsm`` leaves them out."""
    import importlib.util

    wanted = [m for m in BOOK_TOOLS if build or m != "jupyter_book"]
    missing = [BOOK_TOOLS[m] for m in wanted if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingTool(f"{' and '.join(missing)} not installed: running the book needs the `book` extra, "
                           "pip install \"mifgsm[book]\" (in a clone: pip install -e \".[book]\")")


def cmd_book(args: argparse.Namespace) -> dict[str, Any]:
    from mifgsm_lib import book

    if args.write_setup_cells:
        return {"setup_cells_rewritten": book.write_setup_cells(book.repo_root())}
    _require_book_tools(build=not args.no_build)
    root = book.repo_root()
    params = _book_parameters(args)
    RunConfig(**{k: params[k] for k in book.CHAPTER_PARAMETERS if k in params})  # bad values refused before any run
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
    p.add_argument("--batch-size", type=int, default=MI_BATCH_SIZE)
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
    p.add_argument("-p", "--parameter", action="append", metavar="NAME=VALUE",
                   help="a chapter parameter (papermill's convention; VALUE is read as YAML), repeatable")
    p.add_argument("-f", "--parameters-file", action="append", metavar="FILE",
                   help="a YAML file of chapter parameters (papermill's -f), repeatable; -p wins over it")
    p.add_argument("--out", default=".", help="executed notebooks go to OUT/_build/executed, the HTML to OUT/_build/html")
    p.add_argument("--chapters", nargs="*", default=None, help="only these chapters (e.g. book/intro)")
    p.add_argument("--no-build", action="store_true", help="execute only, do not build the HTML")
    p.add_argument("--write-setup-cells", action="store_true",
                   help="only rewrite each chapter's setup cell from _config.yml's repository and release (a release)")
    p.set_defaults(func=cmd_book)
    return parser


#: The errors that are the user's (a file, a value, the network, a missing tool): one line on stderr, exit code 2.
#: Any other ``RuntimeError`` (torch's, say) is a bug's and keeps its traceback.
USER_ERRORS = (ValueError, OSError, MissingTool)
#: Errors among those that only a bug raises (an abstract method reached, endless recursion): their traceback shows.
BUGS = (NotImplementedError, RecursionError)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.func(args)
    except USER_ERRORS as exc:
        if isinstance(exc, BUGS):
            raise
        message = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())  # one line, always
        print(f"mifgsm {args.command}: error: {message}", file=sys.stderr)
        return 2
    _emit(result, getattr(args, "json", False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
