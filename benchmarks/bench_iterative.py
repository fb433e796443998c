"""The cost per image of every iterative protection of the registry, against its floor, in one run.

On ``--n`` real LFW chips (a gender-balanced subset, aligned with dlib) and the dlib face model, each
``iterative`` method of :mod:`mifgsm_lib.methods` (MI-PGD and its variants, Erasure-PGD) protects one stratified
batch of ``--batch-size`` images at ``--grey`` grey levels in ``--steps`` steps, built as the chapter "Beyond one
step" builds it (its vCLUB estimator trained briefly and its LEACE eraser fitted on the same images' clean
templates: the cost does not depend on how well they fit). The floor is ``steps`` plain forward + backward passes
of the face model to the pixels on the same batch. Printed per method: face-model gradients per image (the
registry's count), milliseconds per image (median of ``--repeats``, interleaved; the best in brackets) and the
ratio to the floor.

    python benchmarks/bench_iterative.py [--n 256] [--steps 5] [--grey 2] [--repeats 3] [--mirror PATH]
"""

from __future__ import annotations

import argparse
import os
import statistics

import numpy as np
import torch

from bench_embedding import interleaved
from mifgsm_lib import attacks, data, methods
from mifgsm_lib.config import GREY_LEVEL, MIRROR_ENV, profile_settings, resolve_device
from mifgsm_lib.erasure import LinearEraser
from mifgsm_lib.faces.alignment import align_faces
from mifgsm_lib.faces.models import embed, load_face_model
from mifgsm_lib.mi import stratified_batches, train_vclub


class BenchResources:
    """:class:`mifgsm_lib.methods.Resources` from the benchmark's own images."""

    def __init__(self, model: torch.nn.Module, clean: np.ndarray, y: np.ndarray, seed: int, iterations: int) -> None:
        self.seed, self.model = seed, model
        self.estimator = train_vclub(clean, y, clean, y, iterations=iterations, batch_size=min(256, len(y)),
                                     seed=seed, progress=False).estimator
        self._eraser = LinearEraser().fit(clean, y)

    def face_model(self) -> torch.nn.Module:
        return self.model

    def mlp(self) -> None:
        raise ValueError("no iterative protection uses the MLP")

    def vclub(self, features: str) -> torch.nn.Module:
        return self.estimator

    def eraser(self) -> LinearEraser:
        return self._eraser


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=256, help="images (gender-balanced LFW subset)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=profile_settings("default")["beyond"]["pgd_steps"])
    parser.add_argument("--grey", type=float, default=2.0, help="the budget in grey levels")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=300, help="vCLUB training iterations")
    parser.add_argument("--mirror", default=os.environ.get(MIRROR_ENV, "/work/shared/data"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    device = resolve_device("cpu")
    model = load_face_model("dlib", device=device)
    ds = data.load_dataset("lfw", args.mirror)
    indices, message = data.balanced_subset(ds.gender, args.n, seed=args.seed)
    chips = align_faces([ds.abs_paths()[i] for i in indices], "dlib", progress=False).chips
    y = ds.gender[indices]
    clean = embed(model, chips, batch_size=args.batch_size, progress=False)
    resources = BenchResources(model, clean, y, args.seed, args.iterations)
    batch = stratified_batches(y, args.batch_size, args.seed)[0]
    x, yb = attacks.as_float_images(chips[batch]), torch.as_tensor(y[batch])
    eps = args.grey * GREY_LEVEL

    def floor() -> None:
        for _ in range(args.steps):
            pixels = x.detach().requires_grad_(True)
            torch.autograd.grad(model(pixels).sum(), pixels)

    names = methods.names("iterative")
    built = {name: methods.get(name).build(resources, eps, args.steps) for name in names}
    runs = {"floor": floor, **{name: (lambda a=attack: a(x, yb)) for name, attack in built.items()}}
    seconds, load_before, load_after = interleaved(runs, args.repeats)
    per = {name: 1e3 * statistics.median(t) / len(batch) for name, t in seconds.items()}
    best = {name: 1e3 * min(t) / len(batch) for name, t in seconds.items()}
    print(f"LFW, {message}; batch of {len(batch)}, {args.steps} steps at {args.grey:g} grey levels, "
          f"{torch.get_num_threads()} torch threads; load average {load_before:.2f} / {load_after:.2f}")
    print(f"{'protection':40s} {'gradients':>9s} {'ms/image median [best]':>24s} {'x floor':>8s}")
    print(f"{'floor: ' + str(args.steps) + ' forward+backward passes':40s} {args.steps:9d} "
          f"{per['floor']:13.1f} [{best['floor']:7.1f}] {1.0:8.2f}")
    for name in names:
        print(f"{methods.label(name):40s} {methods.get(name).gradients(args.steps):9d} "
              f"{per[name]:13.1f} [{best[name]:7.1f}] {per[name] / per['floor']:8.2f}")


if __name__ == "__main__":
    main()
