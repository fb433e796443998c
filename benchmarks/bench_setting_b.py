"""Setting B over many ε: the naive loop of ``setting_b`` per ε against ``setting_b_sweep``.

Measured in one run, on random templates of real size (default 1,000 x 128, 10 ε,
4 images per identity, a gender signal that fades with ε), after one warm-up call that
starts the joblib worker pool:

1. the cost of one fold of each classifier in this process, with the BLAS thread pool as
   it comes and limited to one thread (what setting B does), to show the slow part;
2. five ways to get the same numbers: the plain scikit-learn loop (``cross_validate`` per
   ε and classifier, BLAS as it comes), the loop of ``setting_b`` per ε and the sweep,
   each sequential and with ``--n-jobs``. All five must agree exactly.

    python benchmarks/bench_setting_b.py [--n 1000] [--dim 128] [--n-eps 10] [--n-jobs -1] [--repeat 3]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from sklearn.model_selection import cross_validate
from threadpoolctl import threadpool_limits

from mifgsm_lib.evaluation import CLASSIFIERS, fold_splits, setting_b, setting_b_classifier, setting_b_sweep

PerFold = dict[float, dict[str, tuple[float, ...]]]


def synthetic_sweep(n: int, dim: int, n_eps: int, seed: int) -> tuple[dict[float, np.ndarray], np.ndarray, np.ndarray]:
    """Templates per ε whose gender signal shrinks as ε grows, with identities of 4 images."""
    rng = np.random.default_rng(seed)
    groups = np.arange(n) // 4
    y = groups % 2
    direction = rng.normal(size=dim) / np.sqrt(dim)
    base = rng.normal(size=(n, dim))
    gender_shift = 3.0 * np.outer(2 * y - 1, direction)
    return (
        {
            float(eps): base + (1.0 - 0.9 * eps / 0.3) * gender_shift + eps * rng.normal(size=(n, dim))
            for eps in np.linspace(0.0, 0.3, n_eps)
        },
        y,
        groups,
    )


def best_of(repeat: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    """The fastest of ``repeat`` runs (the machine may be shared) and the last result."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--n-eps", type=int, default=10)
    parser.add_argument("--n-jobs", type=int, default=-1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3, help="report the best of this many runs")
    args = parser.parse_args()
    sets, y, groups = synthetic_sweep(args.n, args.dim, args.n_eps, args.seed)
    first = next(iter(sets.values()))
    splits = fold_splits(y, groups, 3, True, args.seed)
    print(f"data: {args.n} x {args.dim} templates, {len(sets)} eps, 3 grouped folds, n_jobs={args.n_jobs}")

    for name in CLASSIFIERS:
        model = setting_b_classifier(name, args.seed)
        per_fold_ms = []
        for limit in (None, 1):
            with threadpool_limits(limits=limit, user_api="blas"):
                start = time.perf_counter()
                for train, test in splits:
                    model.fit(first[train], y[train]).predict(first[test])
                per_fold_ms.append((time.perf_counter() - start) / len(splits) * 1e3)
        print(f"  {name:<11s} one fold: {per_fold_ms[0]:6.1f} ms default BLAS threads, {per_fold_ms[1]:6.1f} ms one")

    def plain_loop() -> PerFold:
        """What one writes without this module: cross_validate per eps and classifier."""
        return {
            eps: {
                name: tuple(
                    cross_validate(
                        setting_b_classifier(name, args.seed), x, y, cv=splits, scoring="balanced_accuracy", n_jobs=1
                    )["test_score"]
                )
                for name in CLASSIFIERS
            }
            for eps, x in sets.items()
        }

    def per_eps(n_jobs: int) -> PerFold:
        return {eps: setting_b(x, y, groups, n_jobs=n_jobs, seed=args.seed).per_fold for eps, x in sets.items()}

    def sweep(n_jobs: int) -> PerFold:
        results = setting_b_sweep(sets, y, groups, n_jobs=n_jobs, seed=args.seed, progress=False)
        return {eps: r.per_fold for eps, r in results.items()}

    runs: dict[str, Callable[[], PerFold]] = {
        "plain cross_validate loop, n_jobs=1, default BLAS": plain_loop,
        "loop of setting_b per eps, n_jobs=1": lambda: per_eps(1),
        f"loop of setting_b per eps, n_jobs={args.n_jobs}": lambda: per_eps(args.n_jobs),
        "setting_b_sweep, n_jobs=1": lambda: sweep(1),
        f"setting_b_sweep, n_jobs={args.n_jobs} (one Parallel)": lambda: sweep(args.n_jobs),
    }
    setting_b(first, y, groups, n_jobs=args.n_jobs, seed=args.seed)  # warm-up: start the worker pool
    timings, results = {}, []
    for label, run in runs.items():
        timings[label], result = best_of(args.repeat, run)
        results.append(result)
    if any(result != results[0] for result in results):
        raise SystemExit("the five ways disagree")
    print(f"best of {args.repeat} runs, identical per-fold scores:")
    for label, seconds in timings.items():
        print(f"  {label:<52s} {seconds:6.2f} s")
    t = list(timings.values())
    print(f"sweep over the loop of setting_b, n_jobs={args.n_jobs}: {t[2] / t[4]:.1f}x")
    print(f"fastest sweep over the plain scikit-learn loop: {t[0] / min(t[3], t[4]):.1f}x")
    means = {eps: np.mean([np.mean(s) for s in scores.values()]) for eps, scores in results[-1].items()}
    print("mean balanced accuracy per eps: " + ", ".join(f"{e:.3g}: {m:.3f}" for e, m in means.items()))


if __name__ == "__main__":
    main()
