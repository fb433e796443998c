"""The main job, measured: every chapter of the book on one profile, from an empty cache, then the HTML build.

Prints, per chapter, the wall time papermill recorded and the face-model passes its kernel ran (images through
the network without a gradient, and with one), then the build time and the totals. Then the passes against
the floor, the minimum work the book needs: one gradient per (image, attack) attacked and one forward pass per
distinct stored image (image, attack, ε, storage) that a figure or table uses, counted from what the chapters
requested (``requested`` in each cached entry of :func:`mifgsm_lib.pipeline.perturbed_templates`). The other
passes (clean templates, MI-PGD's steps, processed views, small checks) are counted as needed. Last, the
floor in time: the cost of one forward and one gradient pass per image, measured in the same run after the book
(batches of 64, the face model as the chapters load it), times the floor's passes, in all and for the chapters of
the paper's own figures (every chapter but "Beyond one step"), beside the minutes those chapters took.

    python benchmarks/bench_book.py --profile quick [--out DIR] [--artifacts DIR] [--setup]

``--setup`` also times ``bash scripts/setup.sh`` (the README's first step). A fresh ``--artifacts`` folder (the
default, a temporary one) measures a new user's run; an existing one measures a rerun.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from bench_attack import best_seconds
from mifgsm_lib import book, page
from mifgsm_lib.cache import load_npz
from mifgsm_lib.config import resolve_device
from mifgsm_lib.faces.models import load_face_model

#: The chapter beyond the paper's own figures (its passes are not the paper's floor).
BEYOND = "book/beyond"


def chapter_rows(out: Path, ledger: Path) -> list[dict[str, float | str]]:
    """Per chapter: papermill's duration and the passes of its kernel (one ledger line per chapter, in order)."""
    chapters = book.toc_chapters(book.repo_root())
    lines = [json.loads(line) for line in ledger.read_text().splitlines()] if ledger.exists() else []
    if len(lines) != len(chapters):
        raise RuntimeError(f"{ledger}: {len(lines)} ledger lines for {len(chapters)} chapters")
    rows = []
    for chapter, passes in zip(chapters, lines):
        notebook = json.loads((book.staging_dir(out) / f"{chapter}.ipynb").read_text())
        rows.append({"step": chapter, "seconds": float(notebook["metadata"]["papermill"]["duration"]), **passes})
    return rows


def _clean_templates(artifacts: Path, params: dict) -> np.ndarray:
    """The clean templates of the dataset and model a perturbed entry was computed from."""
    keys = ("dataset", "images", "content", "model", "weights", "preprocessing")
    for meta in (artifacts / "templates").glob("*.json"):
        found = json.loads(meta.read_text())["params"]
        if all(found.get(k) == params.get(k) for k in keys):
            return load_npz(meta.with_suffix(".npz"))["templates"]
    raise FileNotFoundError(f"{artifacts / 'templates'}: no clean templates of {[params.get(k) for k in keys]}")


def floor(artifacts: Path) -> dict[str, int]:
    """The sweeps' minimum: per (image, attack, storage), one forward pass per distinct stored image other than
    the clean one over the ε requested, and one gradient per image a gradient attack moved."""
    groups: dict[str, list[Path]] = defaultdict(list)
    for meta in sorted((artifacts / "perturbed").glob("*.json")):
        params = json.loads(meta.read_text())["params"]
        params.pop("eps")
        groups[json.dumps(params, sort_keys=True)].append(meta.with_suffix(".npz"))
    forward = 0
    moved_images: dict[str, set[int]] = defaultdict(set)  # per direction (the float and uint8 sweeps share it)
    for key, paths in groups.items():
        params = json.loads(key)
        entries = [load_npz(p) for p in paths]
        clean = _clean_templates(artifacts, params)[entries[0]["over"]]
        wanted = np.stack([e["requested"] for e in entries], axis=1)  # (images, ε)
        stack = np.stack([e["templates"] for e in entries], axis=1)  # (images, ε, d)
        direction = json.dumps({k: v for k, v in params.items() if k != "mode"}, sort_keys=True)
        for image, row, asked, z in zip(entries[0]["over"], stack, wanted, clean):
            moved = row[asked][(row[asked] != z).any(axis=1)]
            forward += len(np.unique(moved, axis=0))
            if len(moved) and params["method"] != "random":
                moved_images[direction].add(int(image))
    gradient = sum(len(images) for images in moved_images.values())
    return {"forward": forward, "gradient": gradient, "groups": len(groups)}


def pass_costs(device: str, batch: int = 64, repeats: int = 3) -> dict[str, float]:
    """Seconds per image of a forward pass of the face model (no autograd) and of a gradient pass (forward and
    backward to the pixels), the best of ``repeats`` batches after one warm-up. A pass costs the same whatever the
    pixels, so the batch is uniform noise."""
    model = load_face_model("dlib", device=device)
    x = torch.rand(batch, 3, 150, 150, generator=torch.Generator().manual_seed(0)).to(resolve_device(device))

    def forward() -> None:
        with torch.inference_mode():
            model(x)

    def gradient() -> None:
        pixels = x.detach().requires_grad_(True)
        torch.autograd.grad(model(pixels).sum(), pixels)

    best = best_seconds({"forward": forward, "gradient": gradient}, repeats, x.device)
    return {name: seconds / batch for name, seconds in best.items()}


def print_time_floor(rows: list[dict[str, float | str]], floor_passes: dict[str, int], costs: dict[str, float]) -> None:
    """The floor's passes at the measured costs, in all and for the paper's chapters, beside the chapters' minutes."""
    def minutes(forward: float, gradient: float) -> float:
        return (forward * costs["forward"] + gradient * costs["gradient"]) / 60

    chapters = [r for r in rows if "forward" in r]
    paper = [r for r in chapters if r["step"] != BEYOND]
    paper_minutes = sum(float(r["seconds"]) for r in paper) / 60
    paper_passes = minutes(sum(int(r["forward"]) for r in paper), sum(int(r["gradient"]) for r in paper))
    print(f"\nthe floor in time, at {costs['forward'] * 1e3:.2f} ms per image and forward pass and "
          f"{costs['gradient'] * 1e3:.2f} ms per gradient pass (batches of 64, measured now):")
    print(f"  every chapter: the floor's passes {minutes(floor_passes['forward'], floor_passes['gradient']):.1f} min")
    print(f"  the paper's chapters (all but {BEYOND!r}): their passes {paper_passes:.1f} min of the "
          f"{paper_minutes:.1f} min they took")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="quick", choices=["quick", "default", "paper"])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--artifacts", type=Path, default=None)
    parser.add_argument("--setup", action="store_true", help="also time scripts/setup.sh")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    # absolute: the chapters' kernels run in book/ and append to the ledger
    out = (args.out or Path(tempfile.mkdtemp(prefix=f"bench-book-{args.profile}-"))).resolve()
    artifacts = (args.artifacts or Path(tempfile.mkdtemp(prefix="bench-artifacts-"))).resolve()
    out.mkdir(parents=True, exist_ok=True)
    ledger = out / "passes.jsonl"
    ledger.unlink(missing_ok=True)
    rows: list[dict[str, float | str]] = []
    if args.setup:
        start = time.perf_counter()
        subprocess.run(["bash", str(book.repo_root() / "scripts" / "setup.sh")], check=True)
        rows.append({"step": "setup", "seconds": time.perf_counter() - start})
    env = {**os.environ, page.LEDGER_ENV: str(ledger)}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "mifgsm_lib.cli", "book", "--profile", args.profile, "--out", str(out),
                    "--artifacts", str(artifacts), "--device", args.device, "--no-build"], check=True, env=env)
    chapters_wall = time.perf_counter() - start
    rows += chapter_rows(out, ledger)
    start = time.perf_counter()
    book.build_html(out)
    rows.append({"step": "HTML build", "seconds": time.perf_counter() - start})

    print(f"profile {args.profile}, artifacts {artifacts}, HTML {out / '_build' / 'html' / 'index.html'}")
    print(f"{'step':28s} {'seconds':>9s} {'forward':>10s} {'gradient':>10s}")
    for row in rows:
        print(f"{row['step']:28s} {row['seconds']:9.1f} {row.get('forward', 0):10,d} {row.get('gradient', 0):10,d}")
    total = sum(float(r["seconds"]) for r in rows)
    passes = {k: sum(int(r.get(k, 0)) for r in rows) for k in ("forward", "gradient", "sweep_forward", "sweep_gradient")}
    print(f"{'total':28s} {total:9.1f} {passes['forward']:10,d} {passes['gradient']:10,d}"
          f"   (chapters' wall time with kernel starts: {chapters_wall:.1f} s)")
    need = floor(artifacts)
    sweep_f, sweep_g = passes["sweep_forward"], passes["sweep_gradient"]
    print(f"\nsweeps (perturbed templates, {need['groups']} attack x storage x estimator sets):")
    print(f"  forward passes  {sweep_f:10,d} run, floor {need['forward']:10,d}: ratio {sweep_f / max(1, need['forward']):.3f}")
    print(f"  gradient passes {sweep_g:10,d} run, floor {need['gradient']:10,d}: ratio {sweep_g / max(1, need['gradient']):.3f}")
    run_all = passes["forward"] + passes["gradient"]
    floor_all = run_all - sweep_f - sweep_g + need["forward"] + need["gradient"]
    print(f"all passes        {run_all:10,d} run, floor {floor_all:10,d}: ratio {run_all / max(1, floor_all):.3f}")
    floor_split = {"forward": passes["forward"] - sweep_f + need["forward"],
                   "gradient": passes["gradient"] - sweep_g + need["gradient"]}
    print_time_floor(rows, floor_split, pass_costs(args.device))


if __name__ == "__main__":
    main()
