"""Cost of content hashing against the cost of the main job's embedding, on the mirror's LFW and UTKFace.

Every cache key holds a digest of the dataset's content (:func:`mifgsm_lib.data.store.content_digest`), so that no
result outlives an edited image or label. Its cost, per dataset, measured here on every image of the mirror:

- ``hash cold``: :func:`mifgsm_lib.data.store.file_digests` without its memo, every byte read and hashed (the
  files may sit in the OS page cache; on a fresh machine the first read comes from disk, but the embedding reads the
  same files right after, so the hashing only moves that read earlier);
- ``memo warm``: :func:`~mifgsm_lib.data.store.content_digest` with its memo (one ``stat`` per image, a JSON read,
  the label files hashed): what a process's first cache key of the dataset costs;
- ``key/call``: every further :func:`mifgsm_lib.pipeline.dataset_key` (it checks the size and time of every image,
  so that an image rewritten in a running session changes the key).

The main job's embedding is measured in the same run on ``--sample`` images spread over each dataset: dlib's
alignment (:class:`~mifgsm_lib.faces.alignment.FaceAligner`, its models loaded beforehand, one process) and the face
model's forward pass (:func:`~mifgsm_lib.faces.models.embed`, batches of 64, as :func:`mifgsm_lib.pipeline.templates`
runs them). It is extrapolated to every image of the dataset as a lower bound of the job's time: the alignment is
divided by the worker processes :func:`mifgsm_lib.pipeline.chips` would start (perfect scaling), and the rest of the
job (attacks, estimators, studies) is left out. A lower bound of the job makes the printed ratio an upper bound of
the slowdown; the requirement is that hashing slows the main job by no more than 5 %.

Timings are medians of ``--repeats`` runs; the load average is printed before and after, since other processes may
share the CPU.

Usage: ``python benchmarks/bench_hashing.py [--sample 48] [--repeats 3] [--mirror PATH]``
(mirror default: ``$MIFGSM_MIRROR`` or ``/work/shared/data``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mifgsm_lib import data, pipeline
from mifgsm_lib.config import RunConfig
from mifgsm_lib.data.store import content_digest, file_digests
from mifgsm_lib.faces.alignment import FaceAligner, load_rgb
from mifgsm_lib.faces.models import embed, load_face_model, preprocessing

#: The most the hashing may add to the main job.
LIMIT = 0.05


def seconds(run: Callable[[], Any], repeats: int = 1) -> float:
    """The median wall time of ``repeats`` calls of ``run``."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def hashing(name: str, mirror: Path, folder: Path, repeats: int) -> tuple[data.FaceDataset, dict[str, float]]:
    """The dataset (every image: the paper profile samples none) and its hashing costs in seconds."""
    cfg = RunConfig(dataset=name, data_dir=str(mirror), artifacts_dir=str(folder / name), profile="paper",
                    device="cpu")
    ds = pipeline.dataset(cfg)
    cold = seconds(lambda: file_digests(ds.root, ds.paths, None), repeats)
    memo = folder / name / "file-digests"
    content_digest(ds, memo)  # writes the memo
    warm = seconds(lambda: content_digest(ds, memo), repeats)
    pipeline.dataset_key(cfg)  # the process's first key: the digest
    key = seconds(lambda: pipeline.dataset_key(cfg), repeats)
    return ds, {"cold": cold, "warm": warm, "key": key}


def embedding(ds: data.FaceDataset, sample: int, aligner: FaceAligner, model: Any, repeats: int) -> dict[str, float]:
    """Seconds per image of the main job's embedding, on ``sample`` images spread over the dataset."""
    paths = [ds.root / ds.paths[i] for i in np.linspace(0, len(ds) - 1, sample).round().astype(int)]
    chips: list[np.ndarray] = []

    def align() -> None:
        chips[:] = [aligner(load_rgb(p))[0] for p in paths]

    align_s = seconds(align, repeats)
    forward_s = seconds(lambda: embed(model, np.stack(chips), batch_size=64, progress=False), repeats)
    return {"align": align_s / len(paths), "forward": forward_s / len(paths)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sample", type=int, default=48, help="images per dataset whose embedding is timed")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats of each measure (default 3)")
    parser.add_argument("--mirror", type=Path, default=Path(os.environ.get("MIFGSM_MIRROR", "/work/shared/data")))
    args = parser.parse_args()

    print(f"load average before: {os.getloadavg()[0]:.2f}; CPUs: {os.cpu_count()}")
    aligner = FaceAligner(preprocessing("dlib"))
    model = load_face_model("dlib", device="cpu")
    workers = min(os.cpu_count() or 1, 8)  # what pipeline.chips starts for a dataset of this size
    header = (f"{'dataset':8} {'images':>7} {'MB':>6} | {'hash cold':>9} {'memo warm':>9} {'key/call':>9} | "
              f"{'align/img':>9} {'fwd/img':>8} {'embed all':>9} | {'cold/embed':>10} {'warm/embed':>10} "
              f"{'keys for 5%':>12}")
    rows, worst = [], 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("lfw", "utkface"):
            ds, cost = hashing(name, args.mirror, Path(tmp), args.repeats)
            megabytes = sum((ds.root / p).stat().st_size for p in ds.paths) / 1e6
            per_image = embedding(ds, args.sample, aligner, model, args.repeats)
            embed_all = len(ds) * (per_image["align"] / workers + per_image["forward"])
            cold, warm = cost["cold"] / embed_all, cost["warm"] / embed_all
            worst = max(worst, cold, warm)
            rows.append(f"{name:8} {len(ds):7,} {megabytes:6.1f} | {cost['cold']:8.2f}s {cost['warm']:8.3f}s "
                        f"{cost['key'] * 1e3:7.1f}ms | {per_image['align'] * 1e3:7.1f}ms "
                        f"{per_image['forward'] * 1e3:6.1f}ms {embed_all:8.1f}s | {cold:10.3%} {warm:10.4%} "
                        f"{LIMIT * embed_all / cost['key']:12,.0f}")
    print(f"embedding timed on {args.sample} images per dataset; 'embed all' = images x (align / {workers} workers "
          "+ forward), a lower bound of the main job")
    print(header)
    print("\n".join(rows))
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    verdict = "within" if worst <= LIMIT else "ABOVE"
    print(f"hashing adds at most {worst:.3%} to the embedding alone: {verdict} the {LIMIT:.0%} limit "
          "(hash cold: once per dataset content; memo warm: a process's first key; 'keys for 5%': the further "
          "dataset_key calls that would add 5 % to the embedding)")


if __name__ == "__main__":
    main()
