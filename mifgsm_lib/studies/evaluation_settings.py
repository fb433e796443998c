"""The chapter "Evaluation settings" (paper Secs. 5-6.2, Figs. 2-6): the attacks in settings A and B over ε.

Each function returns a :class:`pandas.DataFrame` that the chapter plots or tabulates, built from the cached
steps of :mod:`mifgsm_lib.pipeline` and measured by :func:`mifgsm_lib.evaluation.measure`, so nothing is
computed twice across chapters. The sweeps of Figs. 2-6 share one set of ε grids
(:func:`mifgsm_lib.config.eps_grids`): one :func:`attack_sweep` over their union embeds every ε once per
attack, and each figure takes its rows with :func:`mifgsm_lib.privacy.on_grid`; the paper's findings are
decided on the measured sweep by :func:`mifgsm_lib.verdicts.paper_findings`.

It is longer than most modules because the chapter is: five figures, setting B+ and the privacy cost, each with
the sentence (``describe_*``) the chapter displays beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from mifgsm_lib import evaluation, methods, paper, pipeline, privacy, verdicts
from mifgsm_lib.attacks import MI_BATCH_SIZE
from mifgsm_lib.baselines import LOCKED_COMPONENTS, elimination_plan, train_dataset_for
from mifgsm_lib.config import SENSITIVE_MAX_EPS, RunConfig
from mifgsm_lib.evaluation import REFERENCE, SetKey
from mifgsm_lib.validation import check_eps_list

def _sets(cfg: RunConfig, attacks: Sequence[str], eps_values: Sequence[float], indices: np.ndarray, mode: str,
          batch_size: int, iteration: int | None = None) -> dict[SetKey, np.ndarray]:
    """The clean templates of ``indices`` (:data:`mifgsm_lib.evaluation.REFERENCE`) and each attack's at each ε."""
    sets = {evaluation.REFERENCE: pipeline.templates(cfg)["templates"][indices]}
    for method in attacks:
        perturbed = pipeline.perturbed_templates(cfg, method, eps_values, indices, mode=mode, batch_size=batch_size,
                                                 iteration=iteration)
        sets.update({SetKey(method, "eps", e): z for e, z in perturbed.items()})
    return sets


def _per_attack(frame: pd.DataFrame, attacks: Sequence[str], eps_values: Sequence[float],
                columns: Sequence[str]) -> pd.DataFrame:
    """One row per (attack, ε), the clean row repeated as each attack's ε = 0, from :func:`measure`'s rows."""
    by_key = {(r.method, r.value): r for r in frame.itertuples(index=False)}
    rows = []
    for method in attacks:
        for key in [("reference", 0.0)] + [(method, e) for e in eps_values]:
            r = by_key[key]
            rows.append({"method": method, "eps": key[1], **{c: getattr(r, c) for c in columns}})
    return pd.DataFrame(rows)


def attack_sweep(
    cfg: RunConfig,
    attacks: Sequence[str] | None,
    eps_list: Sequence[float],
    indices: np.ndarray,
    mode: str = "float",
    iteration: int | None = None,
    batch_size: int = MI_BATCH_SIZE,
    grouped: bool = True,
    replicates: dict[SetKey, dict[str, np.ndarray]] | None = None,
) -> pd.DataFrame:
    """Settings A and B for each attack and ε (Figs. 2-4); ε = 0 is the clean row of each attack.

    Setting A is the MLP trained on clean templates; setting B is the mean balanced accuracy of the three
    classifiers cross-validated on the perturbed templates (folds grouped by identity unless ``grouped=False``).
    ``iteration`` is the vCLUB checkpoint of the MI attacks (default: the profile's ``estimator_iterations``),
    ``batch_size`` the batch of the MI gradient. ``attacks=None``: every one-step attack of
    :mod:`mifgsm_lib.methods`. All (attack, ε) sets are evaluated in one parallel pool. Every number comes with its
    95 % interval (``*_low``, ``*_high``) and setting B also in the paper's plain accuracy (``setting_b_plain``) and
    on each of two halves of the people (``setting_b_choose``, ``setting_b_report``: where ε* is chosen and where it
    is reported, :meth:`mifgsm_lib.evaluation.EvaluationSet.halves`);
    ``replicates``, where given, receives the bootstrap replicates of every set (for paired differences,
    :func:`mifgsm_lib.verdicts.paper_findings`).
    """
    attacks = methods.one_step_or_all(attacks)
    eps_values = check_eps_list(eps_list)
    checkpoint = _checkpoint(cfg, iteration)
    target = pipeline.evaluation_set(cfg, indices=indices)
    folds = int(cfg.sizes["cv_folds"])
    params = pipeline.step_key(cfg, attacks=list(attacks), eps=list(eps_values), images=pipeline.digest(indices),
                               mode=mode, iteration=checkpoint, batch_size=batch_size, grouped=grouped, folds=folds,
                               halves=True, **pipeline.estimators_key(cfg))

    def compute() -> tuple[pd.DataFrame, dict[SetKey, dict[str, np.ndarray]]]:
        sets = _sets(cfg, attacks, eps_values, target.indices, mode, batch_size, checkpoint)
        found: dict[SetKey, dict[str, np.ndarray]] = {}
        frame = evaluation.measure(sets, target, folds=folds, grouped=grouped, seed=cfg.seed,
                                   classifier=setting_a_classifier(cfg, target), replicates=found, halves=True)
        return frame, found

    frame, found = pipeline.measured(cfg, "attack-sweep", params, compute)
    if replicates is not None:
        replicates.update(found)
    rows = _per_attack(frame, attacks, eps_values,
                       ["setting_a", "setting_b", *(f"B_{c}" for c in evaluation.CLASSIFIERS), "setting_a_low",
                        "setting_a_high", "setting_b_low", "setting_b_high", "setting_b_plain", "setting_b_choose",
                        "setting_b_report", "setting_b_report_low", "setting_b_report_high"])
    rows.insert(2, "mode", mode)
    rows.insert(3, "iteration", int(cfg.sizes["estimator_iterations"] if checkpoint is None else checkpoint))
    rows.insert(4, "batch_size", batch_size)
    rows.insert(5, "grouped", grouped)
    return rows


def setting_a_classifier(cfg: RunConfig, target: evaluation.EvaluationSet) -> Any:
    """Setting A's classifier for ``target``'s labelled images: the MLP of Sec. 3.1 where it never saw them
    (:func:`mifgsm_lib.pipeline.mlp_held_out`), else cross-fitted MLPs, each image scored by one that did not."""
    labelled = target.indices[target.labelled]
    if pipeline.mlp_held_out(cfg, labelled):
        return pipeline.mlp(cfg)[0]
    return pipeline.crossfit_classifier(cfg, labelled)


def _checkpoint(cfg: RunConfig, iteration: int | None) -> int | None:
    """The estimator checkpoint as the cache keys it: the profile's final iteration is the default (``None``)."""
    if iteration is None or int(iteration) == int(cfg.sizes["estimator_iterations"]):
        return None
    return int(iteration)


def estimator_iterations_sweep(
    cfg: RunConfig,
    eps_list: Sequence[float],
    indices: np.ndarray,
    mode: str = "float",
    batch_size: int = MI_BATCH_SIZE,
    final: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Fig. 2: MI-FGSM with the estimator stopped at each of the profile's ``estimator_checkpoints``.

    ``final``, an :func:`attack_sweep` of MI-FGSM with the final estimator on the same images, mode and batch
    size, supplies that checkpoint's rows instead of a second computation; it must hold every ε of ``eps_list``.
    """
    eps_values = check_eps_list(eps_list)
    reused = None
    if final is not None:
        same = (final["method"] == "mi-fgsm") & (final["mode"] == mode) & (final["batch_size"] == batch_size)
        reused = privacy.on_grid(final[same & final["grouped"]], eps_values)
        if len(reused) != len(eps_values) + 1:
            raise ValueError(f"final: expected MI-FGSM rows ({mode}, batch {batch_size}) at every ε of "
                             f"{eps_values} and the clean row, found {sorted(reused['eps'])}")
    frames = [
        reused if reused is not None and _checkpoint(cfg, it) is None
        else attack_sweep(cfg, ["mi-fgsm"], eps_values, indices, mode=mode, iteration=int(it), batch_size=batch_size)
        for it in cfg.sizes["estimator_checkpoints"]
    ]
    return pd.concat(frames, ignore_index=True)


def mixing_curve(
    cfg: RunConfig,
    method: str,
    eps: float,
    indices: np.ndarray,
    mode: str = "float",
    batch_size: int = MI_BATCH_SIZE,
    grid: Sequence[float] | None = None,
    replicates: dict[verdicts.MixingKey, np.ndarray] | None = None,
) -> pd.DataFrame:
    """Fig. 5: setting B when a fraction of the templates is clean and the rest attacked at ``eps``, with its 95 %
    interval (``setting_b_low``, ``setting_b_high``: people resampled, one draw for every curve of ``cfg``).

    ``grid`` is the ε list of the sweep that ``eps`` comes from, so its cached templates are reused
    (default ``[eps]``). The clean fractions are :data:`mifgsm_lib.evaluation.MIXING_FRACTIONS`. ``replicates``,
    where given, receives each point's bootstrap replicates by (method, ε, fraction), for
    :func:`mifgsm_lib.verdicts.mixing_observations`.
    """
    grid = [float(eps)] if grid is None else [float(e) for e in grid]
    if not np.isclose(grid, float(eps), rtol=0.0, atol=1e-12).any():
        raise ValueError(f"eps={eps!r}: expected one of the grid's levels {grid}")
    target = pipeline.evaluation_set(cfg, indices=indices)
    clean = pipeline.templates(cfg)["templates"][target.indices][target.labelled]
    perturbed = pipeline.perturbed_templates(cfg, method, grid, indices, mode=mode, batch_size=batch_size)
    attacked = perturbed[grid[int(np.argmin(np.abs(np.asarray(grid) - float(eps))))]][target.labelled]
    results = evaluation.mixing(clean, attacked, target.labels[target.labelled],
                                groups=target.identity[target.labelled], seed=cfg.seed, folds=cfg.sizes["cv_folds"],
                                progress=False)
    weights, _ = target.bootstrap_weights(seed=cfg.seed)
    rows = []
    for fraction, result in results.items():
        reps = result.replicates(weights)
        interval = result.interval(weights, reps)
        if replicates is not None:
            replicates[(method, float(eps), float(fraction))] = reps
        rows.append({"method": method, "eps": float(eps), "clean_fraction": fraction, "setting_b": result.mean,
                     "setting_b_low": interval.low, "setting_b_high": interval.high})
    return pd.DataFrame(rows)


def tsne_points(templates: np.ndarray, seed: int, perplexity: float = 30.0) -> np.ndarray:
    """Fig. 6: a 2-D t-SNE of templates (scikit-learn, PCA initialisation, seeded).

    It runs on one thread: scikit-learn's OpenMP gradient is ~10x slower on busy (shared) cores and not faster on
    a few hundred points.
    """
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    n = len(templates)
    tsne = TSNE(n_components=2, perplexity=min(perplexity, (n - 1) / 3), init="pca", random_state=seed)
    with threadpool_limits(limits=1):
        return tsne.fit_transform(np.asarray(templates, dtype=np.float64))


def tsne_panels(
    cfg: RunConfig,
    method: str,
    eps_values: Sequence[float],
    indices: np.ndarray,
    grid: Sequence[float],
    mode: str = "float",
    batch_size: int = MI_BATCH_SIZE,
) -> pd.DataFrame:
    """Fig. 6 (bottom): t-SNE of the clean templates and of the templates at each ε, coloured by gender.

    The same ``cfg.sizes["tsne_points"]`` images (a seeded sample of ``indices``) appear in every panel; the
    templates at ε come from the sweep over ``grid``.
    """
    clean = pipeline.templates(cfg)
    n = min(int(cfg.sizes["tsne_points"]), len(indices))
    pick = np.sort(np.random.default_rng(cfg.seed).choice(len(indices), n, replace=False))
    perturbed = pipeline.perturbed_templates(cfg, method, [float(e) for e in grid], indices, mode=mode,
                                             batch_size=batch_size)
    panels = {0.0: clean["templates"][indices]}
    for e in eps_values:
        match = [g for g in perturbed if np.isclose(g, float(e), rtol=0.0, atol=1e-12)]
        if not match:
            raise ValueError(f"eps_values: {e!r} is not in the grid {sorted(perturbed)}")
        panels[float(e)] = perturbed[match[0]]
    frames = []
    for e, z in panels.items():
        xy = tsne_points(z[pick], seed=cfg.seed)
        frames.append(pd.DataFrame({"method": method, "eps": e, "x": xy[:, 0], "y": xy[:, 1],
                                    "gender": clean["gender"][indices][pick]}))
    return pd.concat(frames, ignore_index=True)


def setting_a_readings(cfg: RunConfig, attacks: Sequence[str], eps_list: Sequence[float], indices: np.ndarray,
                       mode: str = "float", batch_size: int = MI_BATCH_SIZE) -> pd.DataFrame:
    """Setting A under the two readings of the paper, per attack and ε: ``held_out``, the book's (the MLP never saw
    the images scored, :func:`setting_a_classifier`), and ``paper_reading``, an MLP trained on every labelled image
    of the dataset (80 % of them, the other 20 % for early stopping), the images scored included
    (:func:`mifgsm_lib.pipeline.mlp_all`)."""
    attacks = methods.one_step_or_all(attacks)
    target = pipeline.evaluation_set(cfg, indices=indices)
    mask = target.labelled
    y = target.labels[mask]
    held, seen = setting_a_classifier(cfg, target), pipeline.mlp_all(cfg)
    sets = _sets(cfg, attacks, check_eps_list(eps_list), target.indices, mode, batch_size)
    rows = []
    for key, z in sets.items():
        rows.append({"method": key.method, "eps": key.value,
                     "held_out": evaluation.setting_a(held, z[mask], y),
                     "paper_reading": evaluation.setting_a(seen, z[mask], y)})
    frame = pd.DataFrame(rows)
    frame["difference"] = frame["paper_reading"] - frame["held_out"]
    return frame


def verification_sweep(
    cfg: RunConfig, attacks: Sequence[str] | None, eps_list: Sequence[float], mode: str = "float",
    batch_size: int = MI_BATCH_SIZE,
) -> pd.DataFrame:
    """Beyond the paper: verification (EER, accuracy, TAR@FAR=0.1 %) and setting B as ε grows, per attack, on the
    images of the profile's verification pairs (:func:`mifgsm_lib.pipeline.evaluation_set`).

    ``attacks=None``: every one-step attack of :mod:`mifgsm_lib.methods`. Images of unknown gender keep their clean
    template (the attacks need the label, :func:`mifgsm_lib.pipeline.directions`) and are left out of setting B.
    """
    attacks = methods.one_step_or_all(attacks)
    eps_values = check_eps_list(eps_list)
    target = pipeline.evaluation_set(cfg)
    folds = int(cfg.sizes["cv_folds"])
    pairs = target.pairs
    params = pipeline.step_key(cfg, attacks=list(attacks), eps=list(eps_values), images=pipeline.digest(target.indices),
                               mode=mode, batch_size=batch_size, folds=folds, **pipeline.estimators_key(cfg),
                               pairs=pipeline.digest(np.concatenate([pairs.left, pairs.right, pairs.same, pairs.fold])))

    def compute() -> tuple[pd.DataFrame, dict[SetKey, dict[str, np.ndarray]]]:
        found: dict[SetKey, dict[str, np.ndarray]] = {}
        sets = _sets(cfg, attacks, eps_values, target.indices, mode, batch_size)
        return evaluation.measure(sets, target, folds=folds, seed=cfg.seed, replicates=found), found

    frame, _ = pipeline.measured(cfg, "verification-sweep", params, compute)
    rows = _per_attack(frame, attacks, eps_values, ["setting_b", "eer", "accuracy", "tar_at_far", "setting_b_low",
                                                    "setting_b_high", "eer_low", "eer_high", "tar_at_far_low",
                                                    "tar_at_far_high"])
    rows.insert(2, "mode", mode)
    rows["n_pairs"] = len(target.pairs)
    return rows


def stronger_adversary(cfg: RunConfig, sweep: pd.DataFrame, mode: str = "float", batch_size: int = MI_BATCH_SIZE,
                       train_dataset: str | None = None) -> pd.DataFrame:
    """Setting B and setting B+ (:mod:`mifgsm_lib.evaluation.adversary`) of the clean templates, MI-FGSM and FGSM
    at their ε* (over the ε ≤ 0.03 of ``sweep``, where the paper looks for it) and IVE and Multi-IVE at the step
    whose setting B is closest to MI-FGSM's there (trained on ``train_dataset``, None:
    :func:`mifgsm_lib.baselines.train_dataset_for` the evaluated dataset).

    ε* and the matched steps are chosen on one half of the sweep's people (``setting_b_choose``,
    :meth:`mifgsm_lib.evaluation.EvaluationSet.halves`), and both settings are measured afresh on the other half,
    so that no number here is read on the images that chose it (``images``: how many). One row per set, with both
    settings' 95 %
    intervals, the strongest single classifier of setting B+ (``setting_b_plus_best``, chosen after the fact) and
    the privacy each method buys against each adversary (``gain_b``, ``gain_b_plus``: the clean value minus the
    method's, with paired intervals).
    """
    train_dataset = train_dataset or train_dataset_for(cfg.dataset)
    indices = pipeline.subset(cfg)
    target = pipeline.evaluation_set(cfg, indices=indices)
    low = privacy.chosen_on(sweep[(sweep["eps"] <= SENSITIVE_MAX_EPS) & (sweep["mode"] == mode)], "choose")
    star = privacy.eps_star(low)
    sets = {REFERENCE: pipeline.templates(cfg)["templates"][indices]}
    for method in (m for m in ("mi-fgsm", "fgsm") if m in star.index):
        eps = float(star[method])
        sets[SetKey(method, "eps", eps)] = pipeline.perturbed_templates(cfg, method, [eps], indices, mode=mode,
                                                                        batch_size=batch_size)[eps]
    if train_dataset != cfg.dataset and "mi-fgsm" in star.index:
        target_b = float(privacy.at_eps(low, {"mi-fgsm": float(star["mi-fgsm"])})["setting_b"].iloc[0])
        n_per_step, n_steps = elimination_plan(sets[REFERENCE].shape[1])
        mask = target.labelled
        choosing = (target.halves(cfg.seed)[mask] == 0).astype(np.float64)[None, :]
        for method in methods.names("template"):
            curve = pipeline.baseline_templates(cfg, method, train_dataset, n_per_step, n_steps, LOCKED_COMPONENTS,
                                                progress=False)
            steps = evaluation.setting_b_sweep({k: z[indices][mask] for k, z in curve.templates.items()},
                                               target.labels[mask], target.identity[mask],
                                               folds=int(cfg.sizes["cv_folds"]), seed=cfg.seed, progress=False)
            read = {k: float(r.replicates(choosing)[0]) for k, r in steps.items()}  # on the choosing half
            step = min(read, key=lambda k: (abs(read[k] - target_b), k))
            sets[SetKey(method, "step", float(step))] = curve.templates[step][indices]
    target, rows = target.half(1, cfg.seed)
    sets = {key: z[rows] for key, z in sets.items()}
    folds = int(cfg.sizes["cv_folds"])
    plain, replicates = pipeline.measure_sets(cfg, sets, target, folds=folds)
    plus, found = pipeline.measure_sets(cfg, sets, target, plus=True, folds=folds)
    for key, metrics in found.items():
        replicates.setdefault(key, {}).update(metrics)
    table = plain[["method", "parameter", "value", "setting_b", "setting_b_low", "setting_b_high"]].merge(
        plus, on=["method", "parameter", "value"])
    table["setting_b_plus_best"] = table[[f"B+_{c}" for c in evaluation.STRONGER_CLASSIFIERS]].max(axis=1)
    table["images"] = int(target.labelled.sum())
    for metric, column in (("setting_b", "gain_b"), ("setting_b_plus", "gain_b_plus")):
        gains = [evaluation.paired_difference(table, replicates, REFERENCE, SetKey(m, p, v), metric)
                 for m, p, v in zip(table["method"], table["parameter"], table["value"])]
        table[column] = [g.estimate for g in gains]
        table[f"{column}_low"] = [g.low for g in gains]
        table[f"{column}_high"] = [g.high for g in gains]
    return table


# --------------------------------------------------------------------------------------------- the chapter's prose


def describe_clean(clean: pd.Series, n_images: int, model: str, batch_size: int, mode: str) -> str:
    """Markdown: the clean templates' settings A and B (with intervals) beside the paper's clean LFW figure."""
    return (f"**Clean templates** ({n_images} images, {model}): setting A {clean['setting_a']:.1%} "
            f"[{clean['setting_a_low']:.1%}, {clean['setting_a_high']:.1%}], setting B {clean['setting_b']:.1%} "
            f"[{clean['setting_b_low']:.1%}, {clean['setting_b_high']:.1%}] (logistic regression "
            f"{clean['B_logreg']:.1%}, linear SVM {clean['B_linear_svm']:.1%}, RBF SVM {clean['B_rbf_svm']:.1%}; "
            f"in plain accuracy, the paper's kind in Figs. 2-4, {clean['setting_b_plain']:.1%}). The paper's clean "
            f"LFW setting B with ArcFace is {paper.LFW_REFERENCE['setting_b']:.2%} (its Table 2, on all of LFW). "
            f"MI gradient batch size: {batch_size}; storage: `{mode}`. Brackets: 95 % intervals.")


def describe_readings(readings: pd.DataFrame) -> str:
    """Markdown: how far the paper's reading of setting A (an MLP that saw the images) is from the held-out one."""
    clean = readings[readings["eps"] == 0].iloc[0]
    attacked = readings[readings["eps"] > 0]
    return (f"On clean templates the MLP that saw the images scores {clean['paper_reading']:.1%}, the held-out MLP "
            f"{clean['held_out']:.1%}. Over every attack and ε the paper's reading is {100 * attacked['difference'].mean():+.1f} "
            f"points from the held-out one on average (from {100 * attacked['difference'].min():+.1f} to "
            f"{100 * attacked['difference'].max():+.1f}). The figures below use the held-out setting A.")


def describe_folds(grouped: pd.DataFrame, stratified: pd.DataFrame) -> str:
    """Markdown: setting B with the paper's stratified folds against folds grouped by identity."""
    gap = (stratified["setting_b"] - grouped["setting_b"]).to_numpy()
    return (f"Clean setting B: stratified {stratified[stratified['eps'] == 0].iloc[0]['setting_b']:.1%}, grouped "
            f"{grouped[grouped['eps'] == 0].iloc[0]['setting_b']:.1%}. Over every attack and $\\epsilon$, the "
            f"stratified folds give {gap.mean() * 100:+.1f} points on average (from {gap.min() * 100:+.1f} to "
            f"{gap.max() * 100:+.1f}). The rest of the chapter uses grouped folds.")


def describe_fig2(fig2: pd.DataFrame) -> str:
    """Markdown: how much the estimator's checkpoint changes settings A and B (Fig. 2)."""
    spread = fig2[fig2["eps"] > 0].groupby("eps")[["setting_a", "setting_b"]].agg(lambda s: s.max() - s.min())
    lowest = fig2.loc[fig2["setting_b"].idxmin()]
    return (f"Across the checkpoints, the largest spread at one $\\epsilon$ is {spread['setting_a'].max() * 100:.1f} "
            f"points in setting A and {spread['setting_b'].max() * 100:.1f} points in setting B. The lowest setting B "
            f"of the figure, {lowest['setting_b']:.1%}, comes from the estimator trained for "
            f"{int(lowest['iteration']):,} iterations, at ε = {lowest['eps']:g}. The paper (Sec. 6.1) also finds that "
            "training longer does not always help in setting B.")


def describe_default_range(rows: pd.DataFrame, clean: pd.Series) -> str:
    """Markdown, per attack over the paper's default range: setting A's range, the ε where setting B is above
    clean, and setting B at the largest ε."""
    top = rows["eps"].max()
    lines = []
    for method, part in rows.groupby("method", sort=False):
        above = part.loc[part["setting_b"] > clean["setting_b"], "eps"].tolist()
        lines.append(f"* {methods.label(method)}: setting A {part['setting_a'].min():.1%} to "
                     f"{part['setting_a'].max():.1%}; setting B above clean at ε = "
                     f"{', '.join(f'{e:g}' for e in above) or 'none'}, and "
                     f"{part.loc[part['eps'] == top, 'setting_b'].iloc[0]:.1%} at ε = {top:g}")
    return (f"Over the default range (clean: setting A {clean['setting_a']:.1%}, setting B {clean['setting_b']:.1%}):"
            "\n\n" + "\n".join(lines))


def eps_star_table(sweep: pd.DataFrame, sensitive: Sequence[float], low: Sequence[float]) -> pd.DataFrame:
    """Per attack: ε* on the paper's sensitive grid and on the union with the finer grid, with settings A and B
    (balanced and plain accuracy) there."""
    on_paper = privacy.eps_star(privacy.on_grid(sweep, sensitive))
    star = privacy.eps_star(privacy.on_grid(sweep, low))
    at_star = privacy.at_eps(sweep, star.to_dict())
    return pd.DataFrame({
        "ε* on the paper's grid": on_paper,
        "setting B there": privacy.at_eps(sweep, on_paper.to_dict())["setting_b"],
        "ε* on both grids": star,
        "grey levels": 255 * star,
        "setting A at ε*": at_star["setting_a"],
        "setting B at ε*": at_star["setting_b"],
        "low": at_star["setting_b_low"],
        "high": at_star["setting_b_high"],
        "plain accuracy": at_star["setting_b_plain"],
    })


def held_out_eps_star(sweep: pd.DataFrame, low: Sequence[float]) -> pd.DataFrame:
    """Per attack, ε* over ``low`` chosen on one half of the people and setting B reported on the other
    (the book's way, :func:`attack_sweep`'s halves), beside ε* chosen on the reported half itself (the paper's way:
    choose and report on the same images). ``selection effect``: the paper's way minus the book's, on the same
    images (negative: choosing on the reported images flatters the attack)."""
    rows = privacy.on_grid(sweep, low)
    chosen = privacy.eps_star(privacy.chosen_on(rows, "choose"))
    itself = privacy.eps_star(privacy.chosen_on(rows, "report"))
    held, same = privacy.at_eps(rows, chosen.to_dict()), privacy.at_eps(rows, itself.to_dict())
    return pd.DataFrame({
        "ε* chosen on half A": chosen,
        "setting B on half B": held["setting_b_report"],
        "low": held["setting_b_report_low"],
        "high": held["setting_b_report_high"],
        "ε* chosen on half B": itself,
        "setting B on half B there": same["setting_b_report"],
        "selection effect": same["setting_b_report"] - held["setting_b_report"],
    })


def describe_held_out_eps_star(table: pd.DataFrame) -> str:
    """Markdown: ε* chosen on one half and reported on the other, against choosing on the reported half."""
    flattered = table[table["selection effect"] < 0]
    return ("Chosen on half A of the people and reported on half B: " + "; ".join(
        f"{methods.label(m)} ε* = {r['ε* chosen on half A']:.4g}, setting B {r['setting B on half B']:.1%} "
        f"[{r['low']:.1%}, {r['high']:.1%}]" for m, r in table.iterrows())
        + ". Chosen on half B itself, the paper's way, the same images read "
        + "; ".join(f"{methods.label(m)} {r['setting B on half B there']:.1%}" for m, r in table.iterrows())
        + (f": choosing on the reported images flatters {len(flattered)} of {len(table)} attacks, by up to "
           f"{-100 * flattered['selection effect'].min():.1f} points." if len(flattered)
           else ": here choosing on the reported images flatters no attack."))


def describe_eps_star(table: pd.DataFrame, first: float, clean_b: float) -> str:
    """Markdown: where ε* falls on the paper's grid and on the finer one, beside the paper's own LFW figures."""
    on_edge = int((table["ε* on the paper's grid"] == first).sum())
    quoted = paper.LOWEST_SETTING_B["LFW"]
    return ("$\\epsilon^*$ is the $\\epsilon$ whose setting-B accuracy is closest to 50 %. On the paper's grid alone "
            f"it is the grid's first step ({first:g}) for {on_edge} of {len(table)} attacks. "
            + ("That is the edge of the grid, so the true optimum may lie below it. " if on_edge else "")
            + "With the finer grid: " + "; ".join(
                f"{methods.label(m)} ε* = {r['ε* on both grids']:.4g} ({r['grey levels']:.2f} grey levels), setting B "
                f"{r['setting B at ε*']:.1%} [{r['low']:.1%}, {r['high']:.1%}]" for m, r in table.iterrows())
            + f" (clean: {clean_b:.1%}). On LFW the paper's lowest setting B in this range is {quoted['mi-fgsm']} % "
            f"for MI-FGSM and {quoted['fgsm']} % for FGSM, from a clean {paper.LFW_REFERENCE['setting_b']:.2%}.")


def describe_storage(modes: pd.DataFrame, clean_b: float) -> str:
    """Markdown: setting B in uint8 storage below half a grey level against the clean value."""
    u8 = modes[(modes["mode"] == "uint8") & (modes["eps"] > 0) & (modes["eps"] < 0.5 / 255)]
    if u8.empty:
        return "No level of this grid is below half a grey level."
    same = bool(np.allclose(u8["setting_b"], clean_b, rtol=0, atol=1e-12))
    return (f"In `uint8` mode, at {'the level' if len(u8) == 1 else f'the {len(u8)} levels'} below half a grey level, "
            "setting B "
            f"{'equals the clean value exactly' if same else 'differs from the clean value'} "
            f"({', '.join(f'{v:.1%}' for v in u8['setting_b'])} vs {clean_b:.1%}).")


def describe_mixing(mixing: pd.DataFrame, clean_b: float, observations: pd.DataFrame) -> str:
    """Markdown: the lowest setting B of each mixing curve (Fig. 5) with its interval, and the paper's two
    observations on it as decided by :func:`mifgsm_lib.verdicts.mixing_observations`."""
    curves = {key: part.set_index("clean_fraction") for key, part in mixing.groupby(["method", "eps"])}
    lowest = "; ".join(
        f"{methods.label(m)} at ε = {e:.4g}: {c['setting_b'].min():.1%} "
        f"[{c.loc[c['setting_b'].idxmin(), 'setting_b_low']:.1%}, "
        f"{c.loc[c['setting_b'].idxmin(), 'setting_b_high']:.1%}] with {c['setting_b'].idxmin():.1%} clean "
        f"(all attacked: {c.loc[0.0, 'setting_b']:.1%})" for (m, e), c in curves.items())
    return f"Lowest setting B per curve: {lowest}. All clean: {clean_b:.1%}.\n\n" + describe_findings(observations)


def describe_findings(findings: pd.DataFrame) -> str:
    """Markdown: each finding with its verdict, slack and 95 % interval, what was measured and what the paper
    says (their asterisks, as in ε*, escaped: markdown would read them as emphasis)."""
    def text(value: str) -> str:
        return str(value).replace("*", "\\*")

    return "\n\n".join(
        f"**{text(r.finding)}**: *{r.verdict}* (slack {r.slack:+.4g}, 95 % interval [{r.low:+.4g}, {r.high:+.4g}]). "
        f"Measured: {text(r.measured)}. Paper: {text(r.paper)}." for r in findings.itertuples())


def describe_choice(held_out: pd.DataFrame, same_images: pd.DataFrame) -> str:
    """Markdown: finding 1 (its ε* chosen, then setting B compared) decided the book's way, ε* chosen on one half of
    the people and read on the other, beside the paper's way, chosen and read on the same images."""
    def said(r: pd.Series) -> str:
        return f"*{r['verdict']}* (slack {r['slack']:+.4g} [{r['low']:+.4g}, {r['high']:+.4g}])"

    return (f"Finding 1 picks a minimum: with ε* chosen on half A of the people and setting B read on half B it "
            f"{said(held_out.iloc[0])}; chosen and read on the same images, the paper's way, it "
            f"{said(same_images.iloc[0])}.")


def describe_cost(cost: pd.DataFrame) -> str:
    """Markdown: the clean verification and privacy, and each attack's lowest setting B with its EER."""
    c0 = cost[cost["eps"] == 0].iloc[0]
    best = cost.loc[cost[cost["eps"] > 0].groupby("method")["setting_b"].idxmin()]
    return (f"On {int(c0['n_pairs'])} pairs, clean: setting B {c0['setting_b']:.1%}, EER {c0['eer']:.2%} "
            f"[{c0['eer_low']:.2%}, {c0['eer_high']:.2%}]. " + " ".join(
                f"{methods.label(r.method)}'s lowest setting B, {r.setting_b:.1%} at ε = {r.eps:.4g}, comes with an "
                f"EER of {r.eer:.2%} [{r.eer_low:.2%}, {r.eer_high:.2%}]." for r in best.itertuples()))


def describe_adversary(table: pd.DataFrame) -> str:
    """Markdown: for each protection, the privacy it buys against setting B and against setting B+, and whether
    it survives the stronger adversary."""
    lines = []
    for _, r in table.iterrows():
        if r["method"] == "reference":
            lines.append(f"* clean templates: setting B {r['setting_b']:.1%}, setting B+ {r['setting_b_plus']:.1%} "
                         f"[{r['setting_b_plus_low']:.1%}, {r['setting_b_plus_high']:.1%}], on the "
                         f"{int(r['images']):,} images of half B.")
            continue
        kept = ("survives" if r["gain_b_plus_low"] > 0 else "is not shown to survive")
        lines.append(f"* {methods.label(r['method'])} ({r['parameter']} {r['value']:.4g}): it lowers setting B by "
                     f"{100 * r['gain_b']:.1f} points [{100 * r['gain_b_low']:.1f}, {100 * r['gain_b_high']:.1f}] and "
                     f"setting B+ by {100 * r['gain_b_plus']:.1f} [{100 * r['gain_b_plus_low']:.1f}, "
                     f"{100 * r['gain_b_plus_high']:.1f}]: its privacy {kept} against the stronger adversary.")
    return "\n".join(lines)


def describe_tsne(setting_b: dict[float, float]) -> str:
    """Markdown: what t-SNE shows and does not, with the lowest setting B of its panels."""
    return ("t-SNE keeps neighbourhoods, not the linear separability that setting B measures. The panels show how the "
            "genders mix locally, yet a retrained classifier still separates them: setting B is at least "
            f"{min(setting_b.values()):.1%} in every panel. The paper makes the same remark about its own Fig. 6.")
