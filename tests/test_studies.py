"""Each study's library entry point on real faces with the awkward cases of real data: images of unknown
gender inside the verification pairs, people with a single image, and (a second dataset) no identities.

The default profile attacks every pair of LFW, and LFW's pairs hold three images of unknown gender; these
tests run the same code paths on a small LFW-layout dataset made from the mirror, so that CI takes them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mifgsm_lib import attacks, checks, data, methods, pipeline, robustness, verdicts
from mifgsm_lib.studies import beyond, tradeoff
from mifgsm_lib.studies import evaluation_settings
from mifgsm_lib.config import RunConfig

#: Pairs kept per fold and kind (matched, mismatched) of the real pairs.txt.
PER_FOLD = 6

SIZES = {"subset_size": 60, "estimator_iterations": 40, "estimator_checkpoints": (20, 40), "sensitive_steps": 2,
         "tsne_points": 24, "verification_folds": tuple(range(10)), "max_images": {"utkface": 300}}

#: MI-PGD and the robustness views at their smallest.
CHAPTER = {"folds": (0, 4, 8, 9), "pgd_steps": 1, "one_step_budgets": (1,), "pgd_budgets": (1,),
           "extra_budgets": {"erasure-pgd": (2,)}, "robustness_methods": ("mi-fgsm", "erasure-pgd", "erasure-pgd-eot"),
           "attribute_protections": (("mi-fgsm", 1),), "attribute_images": 150}


def _pair_lines(mirror: Path) -> list[tuple[list[str], list[str]]]:
    lines = (mirror / "lfw" / "pairs.txt").read_text().splitlines()
    folds, n = map(int, lines[0].split())
    body = [line.split() for line in lines[1:]]
    return [(body[2 * n * f: 2 * n * f + n], body[2 * n * f + n: 2 * n * (f + 1)]) for f in range(folds)]


def _images(pair: list[str]) -> list[str]:
    if len(pair) == 3:
        return [f"{pair[0]}_{int(pair[1]):04d}", f"{pair[0]}_{int(pair[2]):04d}"]
    return [f"{pair[0]}_{int(pair[1]):04d}", f"{pair[2]}_{int(pair[3]):04d}"]


@pytest.fixture(scope="module")
def small_lfw(mirror: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An LFW folder (the mirror's layout, linked images) with 10 folds of 6 + 6 of the real pairs, every pair
    that holds an image of unknown gender among them."""
    mirror = mirror.resolve()
    full = data.load_dataset("lfw", mirror)
    unknown = {str(i) for i in full.image_ids[full.gender < 0]}
    root = tmp_path_factory.mktemp("data") / "lfw"
    kept: list[str] = [f"10\t{PER_FOLD}"]
    for matched, mismatched in _pair_lines(mirror):
        for group in (matched, mismatched):
            first = [p for p in group if unknown & set(_images(p))]
            kept += [" ".join(p) for p in (first + [p for p in group if p not in first])[:PER_FOLD]]
    for line in kept[1:]:
        for image in _images(line.split()):
            target = root / "lfw" / image[:-5] / f"{image}.jpg"
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists():
                target.symlink_to(mirror / "lfw" / "lfw" / image[:-5] / f"{image}.jpg")
    (root / "pairs.txt").write_text("\n".join(kept) + "\n")
    for names in ("male_names.txt", "female_names.txt"):
        (root / names).symlink_to(mirror / "lfw" / names)
    return root.parent


@pytest.fixture(scope="module")
def cfg(small_lfw: Path, tmp_path_factory: pytest.TempPathFactory) -> RunConfig:
    config = RunConfig(data_dir=str(small_lfw), device="cpu", profile="quick", sizes=SIZES,
                       artifacts_dir=str(tmp_path_factory.mktemp("artifacts")))
    ds = pipeline.dataset(config)
    indices, _ = pipeline.verification_indices(config)
    people = np.bincount(ds.identity[indices])
    assert (ds.gender[indices] < 0).sum() == 3, "the three LFW images of unknown gender are in the pairs"
    assert (people == 1).any() and (people > 1).any(), "people with one image and with several"
    return config


def _unknown(config: RunConfig, indices: np.ndarray) -> np.ndarray:
    return pipeline.dataset(config).gender[indices] < 0


@pytest.mark.parametrize("method", methods.names("one-step", paper=True))
def test_images_of_unknown_gender_keep_their_clean_template(cfg: RunConfig, method: str) -> None:
    indices, _ = pipeline.verification_indices(cfg)
    clean = pipeline.templates(cfg)["templates"][indices]
    unknown = _unknown(cfg, indices)
    for mode in ("float", "uint8"):
        z = pipeline.perturbed_templates(cfg, method, [0.004], indices, mode=mode)[0.004]
        assert np.array_equal(z[unknown], clean[unknown])
        assert (np.abs(z[~unknown] - clean[~unknown]).max(axis=1) > 0).all()
    assert not pipeline.directions(cfg, method, indices)[unknown].any()


def test_a_sweep_of_the_subset_embeds_no_other_image(cfg: RunConfig, tmp_path: Path) -> None:
    fresh = RunConfig(data_dir=cfg.data_dir, device="cpu", profile="quick", sizes={**SIZES, "subset_size": 20},
                      artifacts_dir=str(tmp_path))  # a subset that leaves women among the other images
    sub, shared = pipeline.subset(fresh), pipeline.attack_set(fresh)
    assert np.array_equal(np.sort(shared[:len(sub)]), sub) and len(shared) > len(sub)
    pipeline.perturbed_templates(fresh, "random", [0.01], sub)
    (entry,) = (tmp_path / "perturbed").glob("*.npz")
    stored = np.load(entry)
    assert stored["requested"].sum() == len(sub) and stored["requested"][:len(sub)].all()
    assert (stored["templates"][:len(sub)] != 0).any(axis=1).all()
    assert not stored["templates"][len(sub):].any(), "images outside the subset were embedded"


def test_blocks_give_the_same_templates_whatever_was_asked_first(cfg: RunConfig) -> None:
    indices = pipeline.attack_set(cfg)
    some = indices[::7]
    first = pipeline.perturbed_templates(cfg, "random", [0.01, 0.02], some)
    whole = pipeline.perturbed_templates(cfg, "random", [0.02, 0.01], indices)
    for e in (0.01, 0.02):
        assert np.array_equal(whole[e][::7], first[e])
    assert [b.stop - b.start for b in pipeline.blocks(600)] == [256, 344]
    assert [b.stop - b.start for b in pipeline.blocks(100)] == [100]


def test_estimators_trained_in_parallel_equal_those_trained_alone(cfg: RunConfig, tmp_path: Path) -> None:
    fresh = RunConfig(data_dir=cfg.data_dir, device="cpu", profile="quick", sizes=SIZES,
                      artifacts_dir=str(tmp_path / "parallel"))
    pipeline.train_estimators(fresh, [None])
    alone = RunConfig(data_dir=cfg.data_dir, device="cpu", profile="quick", sizes=SIZES,
                      artifacts_dir=str(tmp_path / "alone"))
    for features in ("face", "mlp"):
        parallel, curve = pipeline.vclub(fresh, features)
        single, single_curve = pipeline.vclub(alone, features)
        for key, value in parallel.state_dict().items():
            assert torch.equal(value, single.state_dict()[key]), (features, key)
        assert np.array_equal(curve["val_mi"], single_curve["val_mi"])


def test_attack_sweep_and_verification_sweep(cfg: RunConfig) -> None:
    sweep = evaluation_settings.attack_sweep(cfg, methods.names("one-step", paper=True), [0.002, 0.3], pipeline.subset(cfg), batch_size=16)
    assert len(sweep) == 12 and sweep[["setting_a", "setting_b"]].notna().all().all()
    cost = evaluation_settings.verification_sweep(cfg, ["mi-fgsm", "random"], [0.002, 0.3])
    assert (cost["n_pairs"] == 10 * 2 * PER_FOLD).all() and cost[["setting_b", "eer"]].notna().all().all()


def test_tradeoff_runs_and_keeps_unknown_images_clean(cfg: RunConfig) -> None:
    result = tradeoff.run(cfg, attacks=["mi-fgsm"], eps_list=[0.002, 0.005], n_steps=2, n_estimators=5, n_jobs=1,
                          progress=False)
    assert (~result.target.labelled).sum() == 3 and result.n_labelled == int(result.report.labelled.sum())
    assert not np.isin(result.report.indices, result.target.split_by_folds()[0].indices).any()
    assert set(result.frontier["method"]) == {"reference", "mi-fgsm", "ive", "multi-ive"}
    frontier = result.frontier
    assert frontier[[m for m in tradeoff.METRICS if m != "pic"]].notna().all().all()
    reference = frontier[frontier["method"] == "reference"].iloc[0]
    assert frontier["pic"].isna().all() == (reference["eer"] == 0), "PIC is undefined only for a clean EER of 0"


def test_beyond_iterative_study(cfg: RunConfig) -> None:
    study = beyond.iterative_study(cfg, chapter_sizes=CHAPTER)
    target = study.evaluated
    assert len(target.pairs) == 4 * 2 * PER_FOLD and (~target.labelled).sum() == 3, "LFW's folds 4, 8, 9 hold them"
    unknown = ~target.labelled
    clean = pipeline.templates(cfg)["templates"][target.indices]
    for views in study.templates.values():
        for z in views.values():
            assert np.array_equal(z[unknown], clean[unknown])
    assert study.frontier[["setting_a", "setting_b", "eer"]].notna().all().all()
    assert set(study.robustness["transform"]) >= {"none", "jpeg90"}
    assert sorted(g for m, g in study.templates if m == "erasure-pgd") == [1.0, 2.0]

    trade = tradeoff.run(cfg, attacks=["mi-fgsm"], eps_list=[0.002, 0.005], n_steps=2, n_estimators=5, n_jobs=1,
                         progress=False)
    comparison = beyond.against_baseline(cfg, study, trade.curves["ive"])
    assert comparison.methods == beyond.FRONTIER_METHODS
    # (setting B, B+) x IVE's 2 steps x the budgets: Erasure-PGD's 2, its EOT variant's 1
    assert len(comparison.pairs_of("erasure-pgd")) == 2 * 2 * 2 and len(comparison.pairs_of("erasure-pgd-eot")) == 4
    assert comparison.points[["setting_b", "setting_b_plus", "eer"]].notna().all().all()
    checks.require(checks.dominance(study.frontier, comparison.points, comparison.pairs, comparison.methods, "ive"))
    for method, budgets in (("erasure-pgd", "1, 2"), ("erasure-pgd-eot", "1")):
        results = {m: verdicts.dominance(comparison.pairs_of(method, m), beyond.DOMINANCE_DOWN_TO)
                   for m in beyond.DOMINANCE_METRICS}
        assert all(sorted(r["points"].index) == [1, 2] for r in results.values()), "one verdict point per IVE step"
        survives = verdicts.processed_dominance(study.robustness, comparison.pairs_of(method), method,
                                                beyond.DOMINANCE_DOWN_TO)
        assert survives["view"].tolist() == ["none", *robustness.TRANSFORMS]
        assert (survives["grey_levels"] == budgets).all() and survives["every_budget"].all(), "every budget processed"
        assert survives["holds"].dtype == bool
        goal = verdicts.frontier_goal(results, survives)
        assert goal["status"] in ("met", "not met") and len(goal["held"]) + len(goal["failed"]) == 2 + 5
    quality = beyond.budget_quality(cfg, study, n_images=8)
    assert quality.index.tolist() == [("Erasure-PGD (LEACE target)", 1.0), ("Erasure-PGD (LEACE target)", 2.0),
                                      ("Erasure-PGD (EOT)", 1.0)] and (quality["images"] == 8).all()
    greys = quality.index.get_level_values("grey_levels")
    assert (quality["linf_grey"] <= greys + 1e-4).all() and (quality["ssim"] > 0.9).all()
    with pytest.raises(ValueError, match=r"\['fgsm'\] are not methods of kind iterative"):
        beyond.against_baseline(cfg, study, trade.curves["ive"], protections=["fgsm"])
    unmeasured = methods.Method("unmeasured", "Unmeasured", "iterative", "black", ".")
    with methods.registered(unmeasured), pytest.raises(ValueError, match="'unmeasured' was not measured"):
        beyond.against_baseline(cfg, study, trade.curves["ive"], protections=["unmeasured"])


def test_beyond_attributes_on_the_chapter_images(cfg: RunConfig) -> None:
    images = beyond.attribute_images(cfg, CHAPTER, "utkface")
    gender = pipeline.dataset(cfg, "utkface").gender[images]
    assert len(images) == 150 and (gender == 1).sum() == 75
    assert np.array_equal(beyond.attribute_images(cfg, {"attribute_images": None}, "utkface"),
                          pipeline.subset(cfg, "utkface"))
    leakage = beyond.attribute_leakage(cfg, CHAPTER["attribute_protections"], CHAPTER["pgd_steps"],
                                       attributes=("gender", "age_group"), indices=images)  # race: too few per class
    assert set(leakage["measured"]) == {"gender", "age_group"} and leakage["setting_b"].notna().all()


def test_without_identities_the_sweeps_run_and_pairs_say_why_not(cfg: RunConfig, tmp_path: Path) -> None:
    lfw = pipeline.dataset(cfg)
    rows = ["path,gender"] + [f"{lfw.root / p},{('' if g < 0 else g)}" for p, g in zip(lfw.paths[:80], lfw.gender)]
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    folder = RunConfig(dataset="folder", data_dir=str(tmp_path), device="cpu", profile="quick",
                       sizes={**SIZES, "subset_size": 40}, artifacts_dir=cfg.artifacts_dir)
    assert not pipeline.dataset(folder).has_identities
    sweep = evaluation_settings.attack_sweep(folder, ["mi-fgsm"], [0.002], pipeline.subset(folder), batch_size=16)
    assert sweep["setting_b"].notna().all()
    with pytest.raises(ValueError, match="has no identities: verification pairs need them"):
        evaluation_settings.verification_sweep(folder, ["mi-fgsm"], [0.002])


class ConstantSign(attacks.SignAttack):
    """A toy one-step attack: every pixel one step up (d = +1), whatever the image."""

    name = "constant"

    def signs(self, images: torch.Tensor, y: torch.Tensor, index: torch.Tensor | None = None) -> torch.Tensor:
        return torch.ones_like(images, dtype=torch.int8)


TOY = methods.Method("toy-constant", "Toy constant step", "one-step", "tab:pink", "X", gradient=False,
                     build=lambda resources: ConstantSign())


def test_a_registered_attack_appears_in_the_cli_every_sweep_every_figure_and_the_frontier(cfg: RunConfig) -> None:
    """A new one-step attack is one class plus one registry entry: no other edit."""
    from mifgsm_lib.cli import build_parser
    from mifgsm_lib.figures import evaluation as evaluation_figures
    from mifgsm_lib.figures import tradeoff as tradeoff_figures

    with methods.registered(TOY):
        parser = build_parser()
        sub = next(a for a in parser._actions if a.dest == "command")
        method = next(a for a in sub.choices["attack"]._actions if a.dest == "method")
        assert "toy-constant" in method.choices

        sweep = evaluation_settings.attack_sweep(cfg, None, [0.004], pipeline.subset(cfg), batch_size=16)
        assert set(sweep["method"]) == set(methods.names("one-step"))
        toy = sweep[(sweep["method"] == "toy-constant") & (sweep["eps"] > 0)]
        assert len(toy) == 1 and toy[["setting_a", "setting_b"]].notna().all(axis=None)

        fig = evaluation_figures.plot_settings(sweep)
        drawn = {line.get_label(): line.get_color() for line in fig.axes[1].get_lines()}
        assert drawn["Toy constant step"] == "tab:pink"

        cost = evaluation_settings.verification_sweep(cfg, None, [0.004], batch_size=16)
        assert set(cost["method"]) == set(methods.names("one-step"))
        fig = evaluation_figures.plot_privacy_cost(cost)
        labels = {line.get_label() for ax in fig.axes for line in ax.get_lines()}
        assert "Toy constant step" in labels, labels

        sized = RunConfig(data_dir=cfg.data_dir, device="cpu", profile="quick",
                          sizes={**SIZES, "frontier_attacks": None}, artifacts_dir=cfg.artifacts_dir)
        result = tradeoff.run(sized, eps_list=[0.004], n_steps=2, n_estimators=5, n_jobs=1, progress=False)
        assert "toy-constant" in set(result.frontier["method"]) and "toy-constant" in result.attacks
        fig = tradeoff_figures.plot_frontier(result.frontier)
        assert "Toy constant step" in [text.get_text() for text in fig.legends[0].get_texts()]
    assert "toy-constant" not in methods.METHODS
