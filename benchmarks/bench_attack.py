"""The cost of the attacks: one MI-FGSM gradient against its floor, and a sensitive-range sweep per 1,000 images.

Measured in one run on real LFW chips (a gender-balanced subset, aligned with dlib) and the dlib face model:

1. Per image, one MI-FGSM direction (face model forward, vCLUB estimate, backward to the pixels, sign) against
   one plain forward + backward of the face model to the pixels on the same batch: the floor no gradient attack
   can beat. Goal: ratio <= 1.15. Both run with the same memory format (channels_last), best of ``--repeats``.
2. A sensitive-range sweep (``--steps`` ε up to 0.03, Sec. 6.2.2) split into its three parts: the gradient
   (``protect.directions``), the re-embedding of every ε (``protect.embed_perturbed``) and setting B on every ε
   (``setting_b_sweep``, grouped folds), each reported per 1,000 images (scaled linearly when ``--n`` is not
   1,000; setting B grows faster than linearly, so its scaled figure is a lower bound for n > 1,000).

The vCLUB estimator is trained briefly (``--iterations``) on the clean templates of the same images; the cost
of a gradient does not depend on how well it is trained.

    python benchmarks/bench_attack.py [--n 1000] [--batch-size 64] [--steps 10] [--mode float|uint8] [--device auto]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import torch

from mifgsm_lib import attacks, data, evaluation, protect
from mifgsm_lib.faces.alignment import align_faces
from mifgsm_lib.config import MIRROR_ENV, eps_grid_sensitive, profile_settings, resolve_device
from mifgsm_lib.faces.models import embed, load_face_model
from mifgsm_lib.mi import stratified_batches, train_vclub


def floor_and_attack(attack: attacks.MIFGSM, x: torch.Tensor, y: torch.Tensor, repeats: int) -> tuple[float, float]:
    """Best-of-``repeats`` seconds of a plain forward+backward to the pixels and of one MI-FGSM direction."""
    model = attack.face_model

    def floor() -> None:
        pixels = x.detach().requires_grad_(True)
        torch.autograd.grad(model(pixels).sum(), pixels)

    def mi_fgsm() -> None:
        attack.signs(x, y)

    best = best_seconds({"floor": floor, "attack": mi_fgsm}, repeats, x.device)
    return best["floor"], best["attack"]


def best_seconds(runs: dict[str, Callable[[], object]], repeats: int, device: torch.device) -> dict[str, float]:
    """The best of ``repeats`` timed calls of each run, interleaved, after one warm-up round (CUDA synchronised)."""
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats + 1):  # the first round warms up
        for name, fn in runs.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - start)
    return {name: min(t[1:]) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="images in the sweep (gender-balanced LFW subset)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=profile_settings("default")["sensitive_steps"],
                        help="ε of the sensitive range (paper: 50)")
    parser.add_argument("--mode", default="float", choices=attacks.MODES, help="storage of the perturbed images")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=500, help="vCLUB training iterations")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes for the alignment")
    parser.add_argument("--mirror", default=os.environ.get(MIRROR_ENV, "/work/shared/data"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    device = resolve_device(args.device)
    try:
        model = load_face_model("dlib", device=str(device))
        ds = data.load_dataset("lfw", args.mirror)
    except (FileNotFoundError, ImportError, OSError, ValueError) as exc:
        raise SystemExit(f"bench_attack could not run: {exc}") from exc

    indices, message = data.balanced_subset(ds.gender, args.n, seed=args.seed)
    paths = [ds.abs_paths()[i] for i in indices]
    chips = align_faces(paths, "dlib", progress=False, workers=args.workers).chips
    y, groups = ds.gender[indices], ds.identity[indices]
    n = len(chips)
    clean = embed(model, chips, batch_size=args.batch_size, device=device, progress=False)
    estimator = train_vclub(clean, y, clean, y, iterations=args.iterations, batch_size=min(256, n), seed=args.seed,
                            progress=False,
                            device=device).estimator
    attack = attacks.MIFGSM(model, estimator)
    print(f"data: LFW, {message}; dlib model on {device} ({torch.get_num_threads()} CPU threads), "
          f"batch size {args.batch_size}")

    # 1. One MI-FGSM gradient against the floor, on the same batch.
    batch = stratified_batches(y, args.batch_size, args.seed)[0]
    attack.to(device, memory_format=torch.channels_last).eval()
    x = attacks.as_float_images(chips[batch]).to(device, memory_format=torch.channels_last)
    t_floor, t_attack = floor_and_attack(attack, x, torch.from_numpy(y[batch]).to(device), args.repeats)
    per = 1e3 / len(batch)
    print(f"plain forward+backward to the pixels (floor): {t_floor * per:8.2f} ms/image")
    print(f"one MI-FGSM direction:                         {t_attack * per:8.2f} ms/image")
    print(f"ratio: {t_attack / t_floor:.3f}x (goal <= 1.15x)")

    # 2. A sensitive-range sweep, split into its parts.
    eps_list = eps_grid_sensitive(args.steps)
    start = time.perf_counter()
    direction = protect.directions(attack, chips, y, batch_size=args.batch_size, device=device,
                                           seed=args.seed, progress=False)
    t_gradient = time.perf_counter() - start
    start = time.perf_counter()
    perturbed = protect.embed_perturbed(model, chips, direction, eps_list, mode=args.mode, batch_size=args.batch_size,
                                        device=device, progress=False)
    t_embed = time.perf_counter() - start
    start = time.perf_counter()
    results = evaluation.setting_b_sweep(perturbed, y, groups=groups, seed=args.seed, progress=False)
    t_setting_b = time.perf_counter() - start
    scale = 1000 / n
    total = t_gradient + t_embed + t_setting_b
    print(f"sensitive-range sweep, {len(eps_list)} eps up to {eps_list[-1]}, {args.mode} mode, measured on {n} images, "
          "per 1,000 images:")
    for name, t in (("gradient", t_gradient), ("re-embedding", t_embed), ("setting B", t_setting_b)):
        print(f"  {name:<13s} {t * scale:8.1f} s  ({100 * t / total:4.1f}%)")
    print(f"  {'total':<13s} {total * scale:8.1f} s")
    print("setting-B mean balanced accuracy per eps: "
          + ", ".join(f"{e:.4g}: {r.mean:.3f}" for e, r in results.items()))
    print(f"clean: {evaluation.setting_b(clean, y, groups=groups, seed=args.seed).mean:.3f}")


if __name__ == "__main__":
    main()
