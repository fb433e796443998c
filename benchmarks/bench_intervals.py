"""What the intervals and setting B+ cost beside the paper's setting B, on real templates.

On the clean templates of a profile's sweep subset (LFW and dlib's ResNet by default; computed and cached by
the pipeline where they are not cached yet), measured in one run:

1. setting B as the paper defines it (three classifiers, grouped 3-fold cross-validation): the baseline;
2. its 95 % interval: the bootstrap over identities (``N_BOOT`` replicates) of the out-of-fold predictions that
   setting B already made, so no classifier is refitted;
3. setting B+ (three tuned classifiers, each with a two-value search inside the training folds) and its interval.

It prints each time and its ratio to setting B, then what the default profile's chapters spend on them: setting B+
runs on five sets in "Evaluation settings" (clean, MI-FGSM and FGSM at ε*, IVE and Multi-IVE at their matched step)
and on two sets per processing view in "Beyond one step".

    python benchmarks/bench_intervals.py [--profile default] [--artifacts DIR] [--data-dir DIR] [--repeat 1]
"""

from __future__ import annotations

import argparse

import numpy as np

from mifgsm_lib import evaluation, pipeline
from mifgsm_lib.config import RunConfig
from mifgsm_lib.intervals import N_BOOT, cluster_weights
from mifgsm_lib.robustness import TRANSFORMS

from bench_setting_b import best_of  # the benchmarks' folder is on the path when a script runs

#: Setting-B+ sets per chapter of the default profile (see the module's text): "Evaluation settings" measures five,
#: "Beyond one step" the clean and the protected photos under each view (the unprocessed one and the transforms).
PLUS_SETS = {"evaluation_settings": 5, "beyond": 2 * (1 + len(TRANSFORMS))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="default")
    parser.add_argument("--artifacts", default=None, help="the results cache (default: $MIFGSM_ARTIFACTS)")
    parser.add_argument("--data-dir", default=None, help="the data folder (default: $MIFGSM_DATA)")
    parser.add_argument("--repeat", type=int, default=1, help="report the best of this many runs")
    args = parser.parse_args()
    cfg = RunConfig(profile=args.profile, device="cpu", artifacts_dir=args.artifacts, data_dir=args.data_dir)
    indices = pipeline.subset(cfg)
    target = pipeline.evaluation_set(cfg, indices=indices)
    z = pipeline.templates(cfg)["templates"][target.indices][target.labelled]
    y, people = target.labels[target.labelled], target.identity[target.labelled]
    folds = int(cfg.sizes["cv_folds"])
    print(f"{cfg.dataset}, profile {cfg.profile}: {len(y):,} labelled templates of the sweep subset "
          f"({z.shape[1]}-D, {len(np.unique(people)):,} people), {folds} grouped folds, {N_BOOT} bootstrap replicates")

    evaluation.setting_b(z[:90], y[:90], folds=folds, grouped=False, seed=cfg.seed)  # starts the worker pool
    base, result = best_of(args.repeat, lambda: evaluation.setting_b(z, y, groups=people, folds=folds, seed=cfg.seed))
    weights = cluster_weights(people, N_BOOT, cfg.seed)
    interval, found = best_of(args.repeat, lambda: result.interval(weights))
    plus, plus_result = best_of(args.repeat, lambda: evaluation.setting_b_plus({0: z}, y, people, folds=folds,
                                                                             seed=cfg.seed)[0])
    plus_interval, plus_found = best_of(args.repeat, lambda: plus_result.interval(weights))
    rows = [("setting B (the baseline)", base, f"{result.mean:.1%}"),
            ("its 95 % interval", interval, f"[{found.low:.1%}, {found.high:.1%}]"),
            ("setting B+", plus, f"{plus_result.mean:.1%}"),
            ("its 95 % interval", plus_interval, f"[{plus_found.low:.1%}, {plus_found.high:.1%}]")]
    print(f"{'step':<26s} {'seconds':>8s} {'x setting B':>12s}  value")
    for name, seconds, value in rows:
        print(f"{name:<26s} {seconds:8.3f} {seconds / base:12.3f}  {value}")
    per_set = plus + plus_interval
    for chapter, sets in PLUS_SETS.items():
        print(f"{chapter}: {sets} set(s) in setting B+ ~ {sets * per_set / 60:.1f} min on this machine "
              f"(templates of the subset's size; the views of 'beyond' are smaller)")


if __name__ == "__main__":
    main()
