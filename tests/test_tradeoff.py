"""The privacy-verification trade-off (Sec. 6.3, Table 2): end to end on AgeDB and Color FERET fixtures, the
table against direct calls of setting B / verify and the CLI, matched privacy, the claim, bad input.

The fixtures are folders in the datasets' published layouts (tiny images, real loaders, real AgeDB-30 and
LFW-protocol pairs). The face model is replaced by stand-in templates: each person has a random identity
vector, gender shifts one direction, and the stand-in "attack" pulls the templates along that direction
towards the middle as ε grows (so privacy improves and verification degrades with ε).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from mifgsm_lib import checks, cli, data, evaluation, paper, pipeline, privacy, verdicts, verification
from mifgsm_lib.config import PROFILES
from mifgsm_lib.evaluation import REFERENCE, SetKey
from mifgsm_lib.studies import tradeoff
from mifgsm_lib.validation import check_eps_list
from mifgsm_lib.baselines import elimination_plan
from mifgsm_lib.cache import save_npz
from mifgsm_lib.config import MIRROR_ENV, RunConfig

DIM = 64
EPS = [0.01, 0.02, 0.04]
STEPS = 6
PEOPLE, PER_PERSON = 120, 10


def image(path: Path, fmt: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (120, 90, 60)).save(path, format=fmt)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """AgeDB, Color FERET and UTKFace in their layouts: 120 people x 10 images (AgeDB: 5 at age 20, 5 at 50).

    Enough for 6,000 pairs (10 folds of 300 mated + 300 non-mated) with 12 people per fold."""
    root = tmp_path_factory.mktemp("data")
    k = 0
    for person in range(PEOPLE):
        for age in (20, 50):
            for _ in range(PER_PERSON // 2):
                image(root / "agedb" / f"{k}_Person{person:02d}_{age}_{'mf'[person % 2]}.jpg")
                k += 1
    feret = root / "colorferet" / "dvd1" / "data"
    for person in range(PEOPLE):
        subject = f"{person + 1:05d}"
        for date in ("930831", "940128"):
            for pose in ("fa", "fb", "hl", "hr", "ql"):
                image(feret / "images" / subject / f"{subject}_{date}_{pose}.ppm", fmt="PPM")
        if person % 10 != 9:  # every tenth subject has no ground truth: gender unknown, pairs kept
            truth = feret / "ground_truths" / "name_value" / subject
            truth.mkdir(parents=True)
            gender = ("Male", "Female")[person % 2]
            (truth / f"{subject}.txt").write_bytes(f"id=cfrS{subject}\r\ngender={gender}\r\nyob=1960\r\n".encode())
    for k in range(300):
        image(root / "utkface" / f"{20 + k % 50}_{k % 2}_{k % 5}_2017011{k:07d}.jpg.chip.jpg")
    return root


def standin_templates(cfg: RunConfig, name: str | None = None) -> dict[str, np.ndarray]:
    """Stand-in face model: identity vector + a gender shift along dimension 0 + noise, seeded by dataset."""
    ds = pipeline.dataset(cfg, name)
    rng = np.random.default_rng(len(ds.name))
    people = rng.normal(size=(ds.identity.max() + 1, DIM))
    z = 0.8 * people[ds.identity] + rng.normal(size=(len(ds), DIM))
    z[:, 0] += np.where(ds.gender == data.FEMALE, 3.0, np.where(ds.gender == data.MALE, -3.0, 0.0))
    return {"templates": z.astype(np.float32), "gender": ds.gender, "identity": ds.identity,
            "image_ids": np.asarray(ds.image_ids, dtype=str), "fallback": np.zeros(len(ds), dtype=bool)}


def standin_perturbed(cfg: RunConfig, method: str, eps_list: list[float], indices: np.ndarray,
                      mode: str = "float", **_: object) -> dict[float, np.ndarray]:
    """Stand-in attack: shrink the gender shift by 20 ε and add noise of size 5 ε; like
    :func:`pipeline.perturbed_templates`, images of unknown gender keep their clean template."""
    clean = standin_templates(cfg)
    z, gender = clean["templates"][indices].astype(np.float64), clean["gender"][indices]
    known = gender >= 0
    rng = np.random.default_rng(7)
    out = {}
    for eps in eps_list:
        moved = z.copy()
        moved[:, 0] -= min(1.0, 20 * eps) * np.where(gender == data.FEMALE, 3.0, np.where(gender == 0, -3.0, 0.0))
        moved[known] += 5 * eps * rng.normal(size=(int(known.sum()), z.shape[1]))
        out[float(eps)] = moved.astype(np.float32)
    return out


@pytest.fixture
def standins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    monkeypatch.setattr(pipeline, "templates", standin_templates)
    monkeypatch.setattr(pipeline, "perturbed_templates", standin_perturbed)


def config(data_dir: Path, dataset: str, profile: str = "quick") -> RunConfig:
    return RunConfig(dataset=dataset, data_dir=str(data_dir), profile=profile, artifacts_dir=str(data_dir / "art"))


def run(cfg: RunConfig) -> tradeoff.TradeOff:
    return tradeoff.run(cfg, eps_list=EPS, n_steps=STEPS, n_estimators=5, n_jobs=1, progress=False)


# --------------------------------------------------------------------------------------------- end to end


@pytest.mark.parametrize("dataset", ["agedb", "colorferet"])
def test_table2_rows_equal_direct_setting_b_and_verify(data_dir: Path, standins: None, dataset: str) -> None:
    cfg = config(data_dir, dataset)
    result = run(cfg)
    target = pipeline.evaluation_set(cfg)
    assert (result.dataset, result.train_dataset, result.n_train, len(target.pairs)) == (dataset, "utkface", 300, 1200)
    assert result.attacks == ("mi-fgsm",) and result.eps_list == tuple(EPS)
    assert (result.n_per_step, result.n_steps, result.n_locked) == (4, STEPS, 5)
    frontier = result.frontier
    assert len(frontier) == len(result.selection) == 1 + len(EPS) + 2 * STEPS
    assert frontier[frontier["method"] == "ive"]["dims"].tolist() == list(range(60, 60 - 4 * STEPS, -4))
    assert (frontier[frontier["method"] == "multi-ive"]["dims"] == DIM).all()
    assert frontier[frontier["method"] == "multi-ive"]["kept"].tolist() == list(range(60, 60 - 4 * STEPS, -4))

    # chosen on one half of the folds, reported on the other: disjoint images, half of the pairs each
    select, report, select_rows, report_rows = target.split_by_folds()
    assert np.array_equal(report.indices, result.report.indices) and result.n_pairs == len(report.pairs) == 600
    assert not np.isin(select.indices, report.indices).any() and len(select.pairs) == 600
    ds = pipeline.dataset(cfg)
    if dataset == "agedb":  # AgeDB-30: every pair 30 years apart
        age = ds.attributes["age"][target.indices]
        assert (np.abs(age[target.pairs.left] - age[target.pairs.right]) == 30).all()
    else:  # subjects without ground truth: in the pairs, left out of setting B
        assert (~report.labelled).sum() == result.n_images - result.n_labelled > 0
    same_person = target.identity[target.pairs.left] == target.identity[target.pairs.right]
    assert (same_person == target.pairs.same).all() and target.pairs.same.sum() == 600

    sets = tradeoff.protected_sets(cfg, target, ["mi-fgsm"], EPS, result.curves)
    unlabelled = ~target.labelled  # not attacked: their clean templates
    assert np.array_equal(sets[SetKey("mi-fgsm", "eps", EPS[0])][unlabelled],
                          sets[REFERENCE][unlabelled])
    table = tradeoff.table2(frontier, result.selection)
    assert table.index.tolist() == list(paper.TABLE2_ROWS)
    mask = report.labelled

    def direct(z: np.ndarray) -> tuple[evaluation.SettingBResult, verification.VerificationReport]:
        b = evaluation.setting_b(z[mask], report.labels[mask], report.identity[mask], folds=3, seed=cfg.seed,
                                 n_jobs=1)
        p = report.pairs
        return b, verification.verify(z, p.left, p.right, p.same, p.fold)

    reference, reference_v = direct(sets[REFERENCE][report_rows])
    for name, row in table.iterrows():
        b, v = direct(sets[SetKey(row["method"], row["parameter"], row["value"])][report_rows])
        assert row["setting_b"] == pytest.approx(b.mean, abs=1e-12), name
        assert row["B_rbf_svm"] == pytest.approx(b.balanced_accuracy["rbf_svm"], abs=1e-12), name
        assert (row["eer"], row["tar_at_far"], row["accuracy"]) == (v.eer, v.tar_at_far, v.accuracy_mean), name
        assert row["pic"] == pytest.approx(privacy.pic(reference.mean, b.mean, reference_v.eer, v.eer)), name
        assert row["setting_b_low"] <= row["setting_b"] <= row["setting_b_high"], name
        assert row["eer_low"] <= row["eer"] <= row["eer_high"], name
    # ε* and the matched steps come from the selection half: setting B closest to 50 %, then to MI-FGSM's there
    chosen = result.selection
    attack = chosen[chosen["method"] == "mi-fgsm"]
    eps = attack.loc[(attack["setting_b"] - 0.5).abs().idxmin(), "value"]
    assert tradeoff.eps_star(chosen) == eps == table.loc["MI-FGSM", "value"]
    chosen_b = float(attack.loc[attack["value"] == eps, "setting_b"].iloc[0])
    for method, name in (("ive", "IVE"), ("multi-ive", "Multi-IVE")):
        steps = chosen[(chosen["method"] == method) & (chosen["value"] >= 1)]
        assert table.loc[name, "value"] == steps.loc[(steps["setting_b"] - chosen_b).abs().idxmin(), "value"]
    assert table.loc["MI-FGSM", "setting_b"] < table.loc["Reference (no privacy)", "setting_b"] - 0.1
    # the paired intervals of Table 2's differences are centred on the differences of its cells
    differences = tradeoff.table2_differences(result, table)
    for name in ("IVE", "Multi-IVE"):
        gap = differences[f"EER {name} - MI-FGSM"]
        assert gap.estimate == pytest.approx(table.loc[name, "eer"] - table.loc["MI-FGSM", "eer"], abs=1e-12)
        assert gap.low <= gap.estimate <= gap.high
        verdict = verdicts.claim_verdicts(table, differences)[name]
        expected = "holds" if gap.low > 0 else "does not hold" if gap.high < 0 else "undecided at this size"
        assert verdict == expected
    shown = verdicts.claim_verdicts(table, differences)
    assert all(c.passed for c in checks.tradeoff(result, table, differences, shown))
    wrong = {name: "holds" if v != "holds" else "does not hold" for name, v in shown.items()}
    assert sum(not c.passed for c in checks.tradeoff(result, table, differences, wrong)) == 2


def test_table2_numbers_through_the_cli(data_dir: Path, standins: None, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """`mifgsm verify` / `mifgsm evaluate --setting B` on the protected templates give the library's numbers
    (default profile: all 6,000 pairs of the LFW protocol, as the CLI uses them; Table 2's setting B is measured on
    the reported half)."""
    cfg = config(data_dir, "colorferet", profile="default")
    result = run(cfg)
    table = tradeoff.table2(result.frontier, result.selection)
    target = pipeline.evaluation_set(cfg)
    _, report, _, report_rows = target.split_by_folds()
    sets = tradeoff.protected_sets(cfg, target, ["mi-fgsm"], EPS, {})
    row = table.loc["MI-FGSM"]
    z = sets[SetKey("mi-fgsm", "eps", row["value"])]
    ds = pipeline.dataset(cfg)
    every_image = np.zeros((len(ds), DIM), dtype=np.float32)  # the CLI aligns rows by image id
    every_image[target.indices] = z
    order = np.random.default_rng(0).permutation(len(ds))  # in another order than the dataset's
    save_npz(tmp_path / "all.npz", {"templates": every_image[order], "gender": ds.gender[order],
                                    "image_ids": np.asarray(ds.image_ids, dtype=str)[order],
                                    "model": np.asarray(cfg.model)})
    mask = report.labelled
    zr = z[report_rows]
    save_npz(tmp_path / "labelled.npz", {"templates": zr[mask], "gender": report.labels[mask],
                                         "identity": report.identity[mask]})
    common = ["--dataset", "colorferet", "--data-dir", str(data_dir), "--profile", "default", "--json"]
    capsys.readouterr()
    assert cli.main(["verify", "--templates", str(tmp_path / "all.npz"), *common]) == 0
    verified = json.loads(capsys.readouterr().out)
    direct = verification.verify(z, target.pairs.left, target.pairs.right, target.pairs.same, target.pairs.fold)
    assert verified["n_pairs"] == len(target.pairs) == 6000 and result.n_pairs == 3000
    assert (verified["eer"], verified["tar_at_far"]) == (direct.eer, direct.tar_at_far)
    assert cli.main(["evaluate", "--setting", "B", "--templates", str(tmp_path / "labelled.npz"), *common]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["balanced_accuracy"]["mean"] == pytest.approx(row["setting_b"], abs=1e-12)


# --------------------------------------------------------------------------------------------- selection


def frontier_of(points: dict[str, list[tuple[float, float, float]]]) -> pd.DataFrame:
    """A frontier from {method: [(value, setting_b, eer)]}, with the reference at (0.9, 0.01)."""
    rows = [{"method": "reference", "parameter": "none", "value": 0.0, "dims": 8, "kept": 8, "setting_b": 0.9,
             "eer": 0.01, "tar_at_far": 0.9, "pic": 0.0}]
    for method, values in points.items():
        parameter = "eps" if method == "mi-fgsm" else "step"
        rows += [{"method": method, "parameter": parameter, "value": v, "dims": 8, "kept": 8, "setting_b": b,
                  "eer": e, "tar_at_far": 0.9, "pic": 0.0} for v, b, e in values]
    return pd.DataFrame(rows)


def test_matched_step_picks_the_closest_step_ties_to_the_earlier() -> None:
    frontier = frontier_of({"ive": [(0, 0.9, 0.01), (1, 0.85, 0.02), (2, 0.75, 0.03), (3, 0.65, 0.04),
                                    (4, 0.70, 0.05)]})
    assert tradeoff.matched_step(frontier, "ive", 0.74)["value"] == 2
    assert tradeoff.matched_step(frontier, "ive", 0.675)["value"] == 3  # |0.65 - 0.675| = |0.70 - 0.675|
    assert tradeoff.matched_step(frontier, "ive", 0.95)["value"] == 1  # step 0 is the reference, never picked
    with pytest.raises(ValueError, match=r"method: \['pca'\] are not methods of kind template"):
        tradeoff.matched_step(frontier, "pca", 0.7)
    with pytest.raises(ValueError, match=r"frontier: no rows of method 'multi-ive'"):
        tradeoff.matched_step(frontier, "multi-ive", 0.7)
    with pytest.raises(ValueError, match=r"target=75.0: expected a setting-B accuracy as a fraction"):
        tradeoff.matched_step(frontier, "ive", 75.0)


@pytest.mark.parametrize(("ive_eer", "multi_eer", "verdict"), [
    (0.05, 0.06, "holds here**"), (0.01, 0.06, "holds here against Multi-IVE only"), (0.01, 0.012, "does not hold"),
])
def test_claim_is_decided_from_the_numbers(ive_eer: float, multi_eer: float, verdict: str) -> None:
    frontier = frontier_of({"mi-fgsm": [(0.001, 0.8, 0.02), (0.002, 0.7, 0.03), (0.01, 0.95, 0.1)],
                            "ive": [(1, 0.725, ive_eer)], "multi-ive": [(1, 0.85, multi_eer)]})
    table = tradeoff.table2(frontier)
    assert table["value"].tolist() == [0.0, 0.002, 1, 1]
    text = verdicts.claim(table, n_pairs=600)
    assert verdict in text and "MI-FGSM's EER is 3.000%" in text
    assert "one misclassified pair is 0.33 points of FAR or FRR" in text
    assert "lowers setting B by 20.00 points" in text
    assert "loose for Multi-IVE (15.00 points)" in text and "IVE (2.50" not in text


def test_claim_says_when_mi_fgsm_gains_no_privacy() -> None:
    frontier = frontier_of({"mi-fgsm": [(0.01, 0.97, 0.02)], "ive": [(1, 0.96, 0.05)],
                            "multi-ive": [(1, 0.975, 0.05)]})
    assert "no privacy gain at all" in verdicts.claim(tradeoff.table2(frontier))


def test_beside_paper_keeps_the_papers_numbers_apart() -> None:
    frontier = frontier_of({"mi-fgsm": [(0.002, 0.7, 0.03)], "ive": [(1, 0.72, 0.05)], "multi-ive": [(1, 0.75, 0.06)]})
    shown = tradeoff.beside_paper(tradeoff.table2(frontier), "lfw, dlib")
    assert shown[("ours: lfw, dlib", "EER (%)")].tolist() == pytest.approx([1.0, 3.0, 5.0, 6.0])
    assert shown[("paper: LFW", "Gender (%)")].tolist() == [84.96, 75.93, 75.32, 75.62]
    assert shown[("paper: AgeDB", "EER (%)")].tolist() == [5.076, 6.003, 10.88, 10.91]
    assert shown[("paper: ColorFERET", "Gender (%)")].tolist() == [94.60, 76.46, 85.14, 75.22]


def test_grids_and_elimination_plans() -> None:
    assert PROFILES["quick"]["tradeoff_eps"] == (0.001, 0.002, 0.003, 0.005, 0.01)
    assert PROFILES["default"]["tradeoff_eps"] == PROFILES["paper"]["tradeoff_eps"]
    assert elimination_plan(128) == (8, 14) and elimination_plan(512) == (32, 14)
    assert elimination_plan(32) == (2, 13)  # Multi-IVE's 27 eliminable components run out
    assert check_eps_list([0.02, 0.001]) == [0.02, 0.001]
    with pytest.raises(ValueError, match=r"eps_list: 0.02 is given twice; expected distinct values"):
        check_eps_list([0.02, 0.001, 0.02])
    rng = np.random.default_rng(0)
    flat = rng.normal(size=(50, 3)) @ rng.normal(size=(3, 10))
    assert tradeoff.effective_dimension(flat) == 3 and tradeoff.effective_dimension(rng.normal(size=(50, 10))) == 10


# --------------------------------------------------------------------------------------------- bad input


def test_bad_input_messages(data_dir: Path, standins: None) -> None:
    cfg = config(data_dir, "agedb")
    with pytest.raises(ValueError, match=r"eps_list=\[\]: expected a non-empty list of levels ε > 0"):
        check_eps_list([])
    with pytest.raises(ValueError, match=r"eps_list=\[0.0, 0.01\]: expected levels ε > 0"):
        check_eps_list([0.0, 0.01])
    with pytest.raises(ValueError, match=r"eps_list=2.0: expected a number in \[0, 1\]"):
        check_eps_list([2.0])
    with pytest.raises(ValueError, match=r"attacks='mi-fgsm': expected a list of values, not a single string"):
        tradeoff.run(cfg, attacks="mi-fgsm")
    with pytest.raises(ValueError, match=r"attacks: \['pgd'\] are not methods of kind one-step"):
        tradeoff.run(cfg, attacks=["pgd"])
    target = pipeline.evaluation_set(cfg)
    with pytest.raises(ValueError, match=r"train_dataset='agedb': expected a dataset other than the evaluated"):
        pipeline.baseline_templates(cfg, "ive", "agedb", 4, 14, 5)
    with pytest.raises(ValueError, match=r"n_per_step \* n_steps = 10 \* 14 = 140 eliminations, but n_features=64"):
        pipeline.baseline_templates(cfg, "ive", "utkface", 10, 14, 5, n_estimators=2, progress=False)
    with pytest.raises(ValueError, match=r"dim=6: expected a template dimension of at least n_locked \+ 2 = 7"):
        elimination_plan(6)
    without = evaluation.measure({SetKey("ive", "step", 1.0): np.zeros((len(target), 4))}, target, n_jobs=1)
    assert "pic" not in without.columns  # PIC is relative to the clean templates, which are not among the sets
    with pytest.raises(ValueError, match=r"sets\[SetKey\(method='reference'.*expected one template per image"):
        evaluation.measure({REFERENCE: np.zeros((3, 4))}, target)
    with pytest.raises(ValueError, match=r"method: \['pca'\] are not methods of kind template"):
        pipeline.baseline_templates(cfg, "pca", "utkface", 4, 14, 5)
    with pytest.raises(ValueError, match=r"frontier: no rows of method 'mi-fgsm'"):
        tradeoff.table2(frontier_of({"ive": [(1, 0.7, 0.02)], "multi-ive": [(1, 0.7, 0.02)]}))
    with pytest.raises(ValueError, match=r"templates: expected a 2-D array of at least 2 templates"):
        tradeoff.effective_dimension(np.zeros(5))


@pytest.mark.parametrize("standardize", [True, False])
def test_locked_setting_b_is_multi_ive_with_every_other_component_eliminated(data_dir: Path, standins: None,
                                                                             standardize: bool) -> None:
    cfg = config(data_dir, "agedb")
    target = pipeline.evaluation_set(cfg)
    curve = pipeline.baseline_templates(cfg, "multi-ive", "utkface", n_per_step=DIM - 5, n_steps=1,
                                        n_locked=5, n_estimators=2, n_jobs=1, progress=False, standardize=standardize)
    last = curve.templates[1][target.indices][target.labelled]
    expected = evaluation.setting_b(last, target.labels[target.labelled], target.identity[target.labelled],
                                    seed=cfg.seed, n_jobs=1)
    locked = tradeoff.locked_setting_b(curve, target, seed=cfg.seed, n_jobs=1)
    assert locked.mean == pytest.approx(expected.mean, abs=1e-9)
    if not standardize:  # on raw templates the stand-in's gender direction has the largest variance: component 0
        assert locked.mean > 0.9
