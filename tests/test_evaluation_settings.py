"""Tests of the paper's experiments (Figs. 2-6): grids, ε*, the findings, the perturbation, and a small real run."""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mifgsm_lib import config, evaluation, intervals, mi, pipeline, privacy, verdicts
from mifgsm_lib.studies import attacks as attacks_study
from mifgsm_lib.studies import evaluation_settings as study
from mifgsm_lib.config import RunConfig

SIZE, DIM = 12, 6


class TinyFace(nn.Module):
    """A face-model stand-in with the FaceModel contract: [0,1] images (N,3,H,W) -> templates (N,d)."""

    embedding_dim = DIM
    name = "tiny"

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 3 * 3, DIM)

    @property
    def device(self) -> torch.device:
        return self.fc.weight.device

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(F.avg_pool2d(torch.tanh(self.conv(x - 0.5)), 4).flatten(1))


def sweep_frame(values: dict[str, dict[float, tuple[float, float]]]) -> pd.DataFrame:
    """A sweep DataFrame from {method: {eps: (setting_a, setting_b)}}."""
    return pd.DataFrame([{"method": m, "eps": e, "setting_a": a, "setting_b": b}
                         for m, rows in values.items() for e, (a, b) in rows.items()])


# ------------------------------------------------------------------------------------------- grids


def test_eps_grids_follow_the_paper_and_the_profile():
    cfg = RunConfig(profile="quick")
    grids = config.eps_grids(cfg.sizes, fine_max_eps=0.004)
    assert grids["default"] == pytest.approx([0.05, 0.1, 0.15, 0.2, 0.25, 0.3])
    assert len(grids["sensitive"]) == cfg.sizes["sensitive_steps"] and max(grids["sensitive"]) == pytest.approx(0.03)
    assert len(grids["fine"]) == cfg.sizes["fine_steps"] and max(grids["fine"]) == pytest.approx(0.004)
    union = config.union_eps(grids)
    assert union == sorted(set(union)) and len(union) == sum(len(g) for g in grids.values())


def test_eps_grids_reject_a_fine_grid_above_the_sensitive_range():
    with pytest.raises(ValueError, match="fine_max_eps"):
        config.eps_grids(RunConfig(profile="quick").sizes, fine_max_eps=0.05)


def test_all_eps_merges_equal_levels_and_on_grid_selects_rows():
    union = config.union_eps({"a": [0.1, 0.3 / 3], "b": [0.2, 0.05]})
    assert union == [0.05, 0.1, 0.2]
    sweep = sweep_frame({"fgsm": {0.0: (1, 1), 0.05: (0.5, 0.6), 0.1: (0.4, 0.7)}})
    assert privacy.on_grid(sweep, [0.1])["eps"].tolist() == [0.0, 0.1]
    assert privacy.on_grid(sweep, [0.05, 0.3], clean=False)["eps"].tolist() == [0.05]


def test_sweeps_reject_a_zero_level():
    with pytest.raises(ValueError, match="ε > 0"):
        study.attack_sweep(RunConfig(profile="quick"), ["fgsm"], [0.0, 0.1], np.arange(4))


def test_fig2_rejects_final_rows_that_lack_an_eps():
    cfg = RunConfig(profile="quick")
    final = pd.DataFrame([{"method": "mi-fgsm", "eps": e, "mode": "float", "batch_size": 64, "grouped": True,
                           "setting_a": 1.0, "setting_b": 1.0} for e in (0.0, 0.01)])
    with pytest.raises(ValueError, match="final: expected MI-FGSM rows"):
        study.estimator_iterations_sweep(cfg, [0.01, 0.02], np.arange(4), final=final)


# ------------------------------------------------------------------------------------------- ε* and the findings


def test_eps_star_is_closest_to_chance_per_attack():
    sweep = sweep_frame({
        "mi-fgsm": {0.0: (0.9, 0.9), 0.01: (0.5, 0.7), 0.02: (0.4, 0.6), 0.03: (0.3, 0.95)},
        "fgsm": {0.0: (0.9, 0.9), 0.01: (0.5, 0.8), 0.02: (0.4, 0.85), 0.03: (0.3, 0.99)},
    })
    star = privacy.eps_star(sweep)
    assert star.to_dict() == {"fgsm": 0.01, "mi-fgsm": 0.02}
    assert privacy.at_eps(sweep, star.to_dict())["setting_b"].to_dict() == {"mi-fgsm": 0.6, "fgsm": 0.8}


def _findings_sweep(mi_best_b: float, fgsm_best_b: float, big_eps_b: float, mi_a: float) -> pd.DataFrame:
    clean = (0.95, 0.9)
    rows = {}
    for m in ("mi-fgsm", "mi-fgsm-mlp", "fgsm", "random"):
        best = fgsm_best_b if m == "fgsm" else mi_best_b if m in verdicts.MI_ATTACKS else 0.9
        a = mi_a if m == "mi-fgsm" else 0.2
        rows[m] = {0.0: clean, 0.005: (0.6, best), 0.05: (a, big_eps_b), 0.3: (a, big_eps_b)}
    return sweep_frame(rows)


def test_paper_findings_hold_when_the_numbers_say_so():
    table = verdicts.paper_findings(_findings_sweep(0.7, 0.8, 0.99, 0.22), default_range=[0.05, 0.3])
    assert table["verdict"].tolist() == ["holds"] * 4
    assert ", FGSM 80.0% (ε* = 0.005)" in table.loc[0, "measured"]
    assert table["slack"].tolist() == pytest.approx([0.1, 0.09, 0.03, 0.025])


def test_paper_findings_do_not_hold_when_the_numbers_disagree():
    table = verdicts.paper_findings(_findings_sweep(0.85, 0.8, 0.88, 0.5), default_range=[0.05, 0.3])
    assert table["verdict"].tolist()[:3] == ["does not hold"] * 3
    assert (table["slack"][:3] < 0).all()
    # finding 4: ε* over every ε; here the default range's 0.88 is farther from 50 % than 0.85 at 0.005
    assert table.loc[3, "verdict"] == "holds"
    late = _findings_sweep(0.85, 0.8, 0.88, 0.5)
    late.loc[(late["method"] == "mi-fgsm") & (late["eps"] == 0.3), "setting_b"] = 0.5
    assert verdicts.paper_findings(late, default_range=[0.05, 0.3]).loc[3, "verdict"] == "does not hold"


def test_paper_findings_need_the_three_gradient_attacks():
    sweep = sweep_frame({"mi-fgsm": {0.0: (0.9, 0.9), 0.01: (0.5, 0.7)}})
    with pytest.raises(ValueError, match="missing"):
        verdicts.paper_findings(sweep, default_range=[0.01])


# ------------------------------------------------------------------------------------------- the perturbation


@pytest.fixture(scope="module")
def faces() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    chips = rng.integers(10, 246, size=(4, SIZE, SIZE, 3)).astype(np.uint8)  # no clipping at ±2 grey levels
    direction = (2 * rng.integers(0, 2, size=(4, 3, SIZE, SIZE)) - 1).astype(np.int8)
    return chips, direction


def test_uint8_storage_erases_perturbations_below_half_a_grey_level(faces):
    chips, direction = faces
    eps = [0.25 / 255, 0.45 / 255, 0.75 / 255, 1.25 / 255, 1.6 / 255]
    table = attacks_study.perturbation_table(chips, direction, eps, face_model=TinyFace().eval())
    u8 = table[table["mode"] == "uint8"].reset_index(drop=True)
    assert u8["changed"].tolist()[:2] == [0.0, 0.0]
    assert u8["template_shift"].tolist()[:2] == [0.0, 0.0]
    assert np.isinf(u8["psnr"][:2]).all()
    assert u8["changed"].tolist()[2:] == [1.0, 1.0, 1.0]
    assert u8["linf_grey"].round(3).tolist() == [0.0, 0.0, 1.0, 1.0, 2.0]
    assert u8["same_as_previous"].tolist() == [False, True, False, True, False]
    fl = table[table["mode"] == "float"]
    assert np.allclose(fl["linf_grey"], fl["grey_levels"], atol=1e-4)
    assert (fl["template_shift"] > 0).all() and not fl["same_as_previous"].any()


def test_attacked_images_are_displayable(faces):
    chips, direction = faces
    images = attacks_study.attacked_images(chips, direction, [0.01, 0.3])
    assert images.shape == (2, 4, SIZE, SIZE, 3)
    assert images.min() >= 0 and images.max() <= 1
    assert np.allclose(np.abs(images[0] - chips / 255.0).max(), 0.01, atol=1e-6)


def test_gradient_batches_hold_both_genders():
    y = np.array([0] * 30 + [1] * 10)
    batches = attacks_study.gradient_batches(y, batch_size=8, seed=0)
    assert batches["images"].sum() == 40 and len(batches) == 5
    assert (batches["women"] == 2).all()


# ------------------------------------------------------------------------------------------- a small real run


@pytest.fixture(scope="module")
def small_run(mirror, tmp_path_factory):
    """Every experiment on 48 LFW images: a 32-image subset, a briefly trained estimator, two ε."""
    sizes = {"max_images": {"lfw": 90}, "subset_size": 32, "estimator_iterations": 40,
             "estimator_checkpoints": (20, 40), "sensitive_steps": 2, "tsne_points": 24}
    cfg = RunConfig(data_dir=str(mirror), device="cpu", profile="quick", sizes=sizes,
                    artifacts_dir=str(tmp_path_factory.mktemp("artifacts")))
    indices = pipeline.subset(cfg)
    with pytest.MonkeyPatch.context() as patch:  # vCLUB's default batch (256) exceeds these 72 training images
        patch.setattr(pipeline.mi, "train_vclub", functools.partial(mi.train_vclub, batch_size=32))
        sweep = study.attack_sweep(cfg, ["mi-fgsm", "random"], [0.002, 0.3], indices, batch_size=16)
    return cfg, indices, sweep


def test_attack_sweep_clean_row_is_setting_a_and_b_on_clean_templates(small_run):
    cfg, indices, sweep = small_run
    assert len(sweep) == 6 and set(sweep["method"]) == {"mi-fgsm", "random"}
    clean = pipeline.templates(cfg)
    y, groups = clean["gender"][indices], clean["identity"][indices]
    direct = evaluation.setting_b(clean["templates"][indices], y, groups=groups, seed=cfg.seed)
    rows = sweep[sweep["eps"] == 0]
    assert rows["setting_b"].tolist() == pytest.approx([direct.mean] * 2, abs=1e-12)
    target = pipeline.evaluation_set(cfg, indices=indices)
    held_out = study.setting_a_classifier(cfg, target)  # never saw the images it scores
    scored = target.indices[target.labelled]
    expected = evaluation.setting_a(held_out, clean["templates"][scored], clean["gender"][scored])
    assert rows["setting_a"].tolist() == pytest.approx([expected] * 2)
    assert (sweep["iteration"] == 40).all() and (sweep["batch_size"] == 16).all()


def test_the_stronger_adversary_chooses_on_one_half_of_the_people_and_measures_on_the_other(small_run):
    cfg, indices, sweep = small_run
    table = study.stronger_adversary(cfg, sweep, train_dataset=cfg.dataset).set_index("method")
    half = pipeline.evaluation_set(cfg, indices=indices).halves(cfg.seed)
    assert (table["images"] == int((half == 1).sum())).all() and 0 < (half == 1).sum() < len(indices)
    chosen = privacy.eps_star(privacy.chosen_on(sweep[sweep["eps"] <= config.SENSITIVE_MAX_EPS], "choose"))
    assert table.loc["mi-fgsm", "value"] == chosen["mi-fgsm"]
    assert table.loc["reference", "gain_b"] == 0.0


def test_fig2_reuses_the_final_checkpoint_and_computes_the_others(small_run):
    cfg, indices, sweep = small_run
    fig2 = study.estimator_iterations_sweep(cfg, [0.002], indices, batch_size=16, final=sweep)
    assert sorted(fig2["iteration"].unique().tolist()) == [20, 40]
    final = fig2[fig2["iteration"] == 40].reset_index(drop=True)
    expected = privacy.on_grid(sweep[sweep["method"] == "mi-fgsm"], [0.002])
    pd.testing.assert_frame_equal(final, expected)


def test_mixing_ends_are_the_clean_and_attacked_sweep_values(small_run):
    cfg, indices, sweep = small_run
    replicates = {}
    curve = study.mixing_curve(cfg, "mi-fgsm", 0.3, indices, batch_size=16, grid=[0.002, 0.3], replicates=replicates)
    ends = curve.set_index("clean_fraction")["setting_b"]
    assert ((curve["setting_b_low"] <= curve["setting_b"]) & (curve["setting_b"] <= curve["setting_b_high"])).all()
    assert sorted(replicates) == [("mi-fgsm", 0.3, f) for f in curve["clean_fraction"]]
    assert all(r.shape == (intervals.N_BOOT,) for r in replicates.values())
    mi = sweep[sweep["method"] == "mi-fgsm"].set_index("eps")["setting_b"]
    assert ends[1.0] == pytest.approx(mi[0.0], abs=1e-12) and ends[0.0] == pytest.approx(mi[0.3], abs=1e-12)
    with pytest.raises(ValueError, match="grid"):
        study.mixing_curve(cfg, "mi-fgsm", 0.1, indices, grid=[0.002, 0.3])


def test_tsne_panels_show_the_same_images_at_each_eps(small_run):
    cfg, indices, _ = small_run
    points = study.tsne_panels(cfg, "mi-fgsm", [0.3], indices, grid=[0.002, 0.3], batch_size=16)
    assert points.groupby("eps").size().to_dict() == {0.0: 24, 0.3: 24}
    genders = points.groupby("eps")["gender"].apply(list)
    assert genders[0.0] == genders[0.3]
    again = study.tsne_panels(cfg, "mi-fgsm", [0.3], indices, grid=[0.002, 0.3], batch_size=16)
    pd.testing.assert_frame_equal(points, again)


def test_describe_adversary_says_survives_only_where_the_whole_interval_of_the_gain_is_above_zero() -> None:
    rows = pd.DataFrame([
        {"method": "reference", "parameter": "", "value": 0.0, "setting_b": 0.9, "setting_b_plus": 0.93,
         "setting_b_plus_low": 0.91, "setting_b_plus_high": 0.95, "images": 1000},
        {"method": "mi-fgsm", "parameter": "eps", "value": 0.002, "gain_b": 0.05, "gain_b_low": 0.03,
         "gain_b_high": 0.07, "gain_b_plus": 0.02, "gain_b_plus_low": 0.005, "gain_b_plus_high": 0.04},
        {"method": "fgsm", "parameter": "eps", "value": 0.004, "gain_b": 0.04, "gain_b_low": 0.02,
         "gain_b_high": 0.06, "gain_b_plus": 0.01, "gain_b_plus_low": -0.01, "gain_b_plus_high": 0.03},
    ])
    lines = study.describe_adversary(rows).splitlines()
    assert lines[0] == "* clean templates: setting B 90.0%, setting B+ 93.0% [91.0%, 95.0%], on the 1,000 images of half B."
    assert "MI-FGSM" in lines[1] and lines[1].endswith("its privacy survives against the stronger adversary.")
    assert "FGSM" in lines[2] and "is not shown to survive" in lines[2]


def test_the_explorer_of_a_real_sweep_shows_its_numbers_and_redraws(small_run, monkeypatch: pytest.MonkeyPatch) -> None:
    """The chapter's path: the explorer built from the cached sweep, its live widget and its static frames."""
    from mifgsm_lib.figures import explorer as explorer_figures
    from mifgsm_lib.progress import TEXT_ENV

    cfg, indices, sweep = small_run
    chip = pipeline.chips(cfg)["chips"][indices[0]]
    directions = {m: pipeline.directions(cfg, m, indices[:1], 16)[0] for m in ("mi-fgsm", "random")}
    face = attacks_study.explorer(cfg, pipeline.face_model(cfg), chip, directions, [0.002, 0.3], sweep, "float")
    row = sweep[(sweep["method"] == "mi-fgsm") & (sweep["eps"] == 0.3)].iloc[0]
    at = face.at("mi-fgsm", 0.3, "float")
    assert at["setting_b"] == row["setting_b"] and at["setting_a"] == row["setting_a"] and at["shift"] > 0
    monkeypatch.delenv(TEXT_ENV, raising=False)  # a live kernel
    drawn = []
    draw = explorer_figures.draw
    monkeypatch.setattr(explorer_figures, "draw",
                        lambda d, m, e, mode: drawn.append((m, e, mode)) or draw(d, m, e, mode))
    controls, slider, _ = explorer_figures.widget(face).children
    slider.value = 0.3
    controls.children[1].value = "uint8"
    assert drawn[-2:] == [("mi-fgsm", 0.3, "float"), ("mi-fgsm", 0.3, "uint8")]
    assert explorer_figures.frame_count(explorer_figures.animation_html(face)) == 2


# ------------------------------------------------------------------------- ε* chosen on one half, read on the other


def _halved_sweep() -> pd.DataFrame:
    """MI-FGSM and FGSM over three ε; on half A (choose) MI-FGSM looks best at 0.002, on half B (report) at 0.003."""
    rows = []
    for method, values in {"mi-fgsm": {0.001: (0.80, 0.75), 0.002: (0.55, 0.70), 0.003: (0.60, 0.58)},
                           "fgsm": {0.001: (0.85, 0.86), 0.002: (0.80, 0.81), 0.003: (0.90, 0.90)}}.items():
        rows.append({"method": method, "eps": 0.0, "setting_b": 0.9, "setting_b_choose": 0.9, "setting_b_report": 0.9,
                     "setting_b_report_low": 0.88, "setting_b_report_high": 0.92})
        for eps, (choose, report) in values.items():
            rows.append({"method": method, "eps": eps, "setting_b": (choose + report) / 2, "setting_b_choose": choose,
                         "setting_b_report": report, "setting_b_report_low": report - 0.02,
                         "setting_b_report_high": report + 0.02})
    return pd.DataFrame(rows)


def test_eps_star_is_chosen_on_one_half_and_reported_on_the_other():
    table = study.held_out_eps_star(_halved_sweep(), [0.001, 0.002, 0.003])
    mi = table.loc["mi-fgsm"]
    assert mi["ε* chosen on half A"] == 0.002 and mi["setting B on half B"] == pytest.approx(0.70)
    assert mi["ε* chosen on half B"] == 0.003 and mi["setting B on half B there"] == pytest.approx(0.58)
    assert mi["selection effect"] == pytest.approx(-0.12)
    assert table.loc["fgsm", "selection effect"] == pytest.approx(0.0)  # both halves pick 0.002
    text = study.describe_held_out_eps_star(table)
    assert "MI-FGSM ε* = 0.002, setting B 70.0% [68.0%, 72.0%]" in text
    assert text.endswith("flatters 1 of 2 attacks, by up to 12.0 points.")


def test_chosen_on_reads_setting_b_on_the_named_half():
    sweep = _halved_sweep()
    assert privacy.chosen_on(sweep, "choose")["setting_b"].tolist() == sweep["setting_b_choose"].tolist()
    assert privacy.chosen_on(sweep, "report")["setting_b"].tolist() == sweep["setting_b_report"].tolist()
    with pytest.raises(ValueError, match="half='B': expected 'choose' or 'report'"):
        privacy.chosen_on(sweep, "B")


def test_finding_one_chosen_on_one_half_is_read_on_the_other():
    sweep = _halved_sweep()
    sweep = pd.concat([sweep, sweep[sweep["method"] == "mi-fgsm"].assign(method="mi-fgsm-mlp")], ignore_index=True)
    sweep["setting_a"] = 0.5
    held = verdicts.paper_findings(sweep, default_range=[0.003], held_out=True)
    same = verdicts.paper_findings(sweep, default_range=[0.003])
    # held out: MI ε* 0.002 read 0.70 on half B, FGSM ε* 0.002 read 0.81: slack 0.11
    assert held.loc[0, "slack"] == pytest.approx(0.11) and "chosen on half A" in held.loc[0, "measured"]
    # the paper's way: ε* on the mean of the halves (MI: 0.003, 0.59; FGSM: 0.002, 0.805)
    assert same.loc[0, "slack"] == pytest.approx(0.215)
    text = study.describe_choice(held.assign(low=0.05, high=0.2), same.assign(low=0.1, high=0.3))
    assert text == ("Finding 1 picks a minimum: with ε* chosen on half A of the people and setting B read on half B it "
                    "*holds* (slack +0.11 [+0.05, +0.2]); chosen and read on the same images, the paper's way, it "
                    "*holds* (slack +0.215 [+0.1, +0.3]).")
