"""Embedding throughput: the PyTorch port of dlib's ResNet against dlib itself.

Measured in one run on the same real LFW chips (aligned by :func:`mifgsm_lib.faces.alignment.align_faces`):

- dlib's ``compute_face_descriptor``, one chip per call and a list of chips per call;
- :func:`mifgsm_lib.faces.models.embed` for several batch sizes (weights channels_last, all threads),
  then at batch 32 with contiguous (NCHW) weights, and with one thread (dlib runs on one).

Every configuration is timed ``--repeats`` times, interleaved, and the median is
reported (the best in brackets), because other processes may share the CPU; the
load average before and after is printed for that reason.

Usage: ``python benchmarks/bench_embedding.py [--images 64] [--repeats 3] [--mirror PATH]``
(mirror default: ``$MIFGSM_MIRROR`` or ``/work/shared/data``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import dlib
import numpy as np
import torch

from mifgsm_lib.faces.alignment import align_faces
from mifgsm_lib.faces.dlib_resnet import DLIB_RESNET_FILE, dlib_model_file
from mifgsm_lib.faces.models import embed, load_face_model

BATCH_SIZES = (1, 8, 32, 64)


def lfw_chips(mirror: Path, n_images: int) -> np.ndarray:
    """dlib chips of the first ``n_images`` LFW images in sorted path order."""
    root = mirror / "lfw" / "lfw"
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: LFW not found (set MIFGSM_MIRROR or pass --mirror)")
    paths = sorted(root.glob("*/*.jpg"))[:n_images]
    return align_faces(paths, "dlib", progress=False).chips


def interleaved(configs: dict[str, Callable[[], object]], repeats: int) -> tuple[dict[str, list[float]], float, float]:
    """Seconds of every configuration, run ``repeats`` times in turn (others may share the CPU), and the load
    average (1 min) before and after."""
    load_before = os.getloadavg()[0]
    seconds: dict[str, list[float]] = {name: [] for name in configs}
    for _ in range(repeats):
        for name, run in configs.items():
            start = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - start)
    return seconds, load_before, os.getloadavg()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=64, help="number of LFW chips (default 64)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats per configuration (default 3)")
    parser.add_argument("--mirror", type=Path, default=Path(os.environ.get("MIFGSM_MIRROR", "/work/shared/data")))
    args = parser.parse_args()

    chips = lfw_chips(args.mirror, args.images)
    n = len(chips)
    reference = dlib.face_recognition_model_v1(str(dlib_model_file(DLIB_RESNET_FILE)))
    models = {layout: load_face_model("dlib", device="cpu", channels_last=layout == "channels_last")
              for layout in ("channels_last", "contiguous")}

    configs: dict[str, Callable[[], object]] = {
        "dlib compute_face_descriptor, 1 chip/call": lambda: [reference.compute_face_descriptor(c) for c in chips],
        "dlib compute_face_descriptor, list of chips": lambda: reference.compute_face_descriptor(list(chips)),
    }
    threads = torch.get_num_threads()

    def port(batch_size: int, layout: str = "channels_last", n_threads: int = threads) -> Callable[[], object]:
        def run() -> np.ndarray:
            torch.set_num_threads(n_threads)
            try:
                return embed(models[layout], chips, batch_size=batch_size, progress=False)
            finally:
                torch.set_num_threads(threads)

        return run

    for batch_size in BATCH_SIZES:
        configs[f"torch port, batch {batch_size:>2}, channels_last, {threads} threads"] = port(batch_size)
    configs[f"torch port, batch 32, contiguous,    {threads} threads"] = port(32, layout="contiguous")
    configs["torch port, batch 32, channels_last, 1 thread"] = port(32, n_threads=1)

    ours = embed(models["channels_last"], chips, progress=False)
    theirs = np.array([np.array(reference.compute_face_descriptor(c)) for c in chips])
    for name, run in configs.items():  # warm-up: oneDNN creates its primitives on the first call
        if name.startswith("torch"):
            run()

    seconds, load_before, load_after = interleaved(configs, args.repeats)
    rates = {name: [n / s for s in values] for name, values in seconds.items()}

    baseline = statistics.median(rates["dlib compute_face_descriptor, 1 chip/call"])
    print(f"{n} real LFW chips (150x150), {args.repeats} interleaved repeats; torch {torch.__version__}, "
          f"{threads} torch threads, {os.cpu_count()} CPUs, dlib {dlib.__version__} (1 thread)")
    print(f"load average (1 min) before/after timing: {load_before:.2f} / {load_after:.2f}")
    print(f"max |torch - dlib| over the chips: {np.abs(ours - theirs).max():.2e}")
    print(f"{'configuration':<50} {'images/s median [best]':>24} {'x dlib':>8}")
    for name, values in rates.items():
        median = statistics.median(values)
        print(f"{name:<50} {median:>13.1f} [{max(values):>7.1f}] {median / baseline:>8.1f}")


if __name__ == "__main__":
    main()
