"""The protect-and-embed loop against its floor: a plain forward pass of the face model per embedded image.

Measured in one run on real LFW chips (aligned by :func:`mifgsm_lib.faces.alignment.align_faces`) and the dlib
face model, with real directions (the random-sign attack's, which cost no gradient; the loop's cost does not depend
on how d was found):

- the floor: :func:`mifgsm_lib.faces.models.embed` of the chips, once per ε, i.e. the same number of forward passes
  as the loop runs, with nothing else;
- :func:`mifgsm_lib.protect.embed_perturbed` over ``--steps`` ε of the sensitive range, in ``float`` and ``uint8``
  storage: the direction applied, the storage rounding, the test for images equal to the previous ε's, and the
  forward passes it then runs (counted, :data:`mifgsm_lib.faces.models.PASSES`).

Both are timed ``--repeats`` times, interleaved, and the median milliseconds per forward pass are reported with
their ratio to the floor (goal: close to 1; the loop's extra work is a few passes over memory per image).

    python benchmarks/bench_protect.py [--images 256] [--steps 10] [--repeats 3] [--mirror PATH]
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from bench_embedding import interleaved, lfw_chips
from mifgsm_lib import attacks, protect
from mifgsm_lib.config import eps_grid_sensitive
from mifgsm_lib.faces.models import PASSES, embed, load_face_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=256, help="number of LFW chips (default 256)")
    parser.add_argument("--steps", type=int, default=10, help="ε of the sensitive range (default 10)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats per configuration (default 3)")
    parser.add_argument("--mirror", type=Path, default=Path(os.environ.get("MIFGSM_MIRROR", "/work/shared/data")))
    args = parser.parse_args()

    chips = lfw_chips(args.mirror, args.images)
    n = len(chips)
    model = load_face_model("dlib", device="cpu")
    labels = np.arange(n) % 2  # the random sign ignores them; its batches need two classes
    direction = protect.directions(attacks.RandomSign(seed=0), chips, labels, progress=False)
    eps_list = eps_grid_sensitive(args.steps)

    passes: dict[str, int] = {}

    def counted(name: str, run: Callable[[], object]) -> Callable[[], None]:
        def timed() -> None:
            before = PASSES["forward"]
            run()
            passes[name] = PASSES["forward"] - before
        return timed

    floor = "floor: embed, one forward pass per image and ε"
    runs = {floor: lambda: [embed(model, chips, progress=False) for _ in eps_list]}
    for mode in ("float", "uint8"):
        runs[f"embed_perturbed, {mode} storage"] = functools.partial(
            protect.embed_perturbed, model, chips, direction, eps_list, mode=mode, progress=False)
    embed(model, chips[:64], progress=False)  # warm-up: oneDNN creates its primitives on the first call
    seconds, load_before, load_after = interleaved({name: counted(name, run) for name, run in runs.items()},
                                                   args.repeats)
    ms = {name: [1000 * s / max(passes[name], 1) for s in values] for name, values in seconds.items()}
    base = statistics.median(ms[floor])
    print(f"{n} real LFW chips (150x150), {len(eps_list)} ε up to {eps_list[-1]:g}, {args.repeats} interleaved "
          f"repeats; torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs")
    print(f"load average (1 min) before/after timing: {load_before:.2f} / {load_after:.2f}")
    print(f"{'configuration':<50} {'passes':>7} {'ms/pass median [best]':>23} {'x floor':>8}")
    for name, values in ms.items():
        median = statistics.median(values)
        print(f"{name:<50} {passes[name]:>7} {median:>13.3f} [{min(values):>7.3f}] {median / base:>8.3f}")


if __name__ == "__main__":
    main()
