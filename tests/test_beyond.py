"""Tests of the chapter "Beyond one step": the gradient analysis (mifgsm_lib.mi), views (robustness), the iterative
methods of the registry, the study's tables (mifgsm_lib.studies.beyond), its decisions (mifgsm_lib.verdicts) and
K-class setting B, on a tiny stand-in face model.

The closed-form gradient, MI-PGD's ball, re-estimation, the K-class estimator and the transforms are also tested in
test_mi.py, test_attacks.py and test_robustness.py.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from types import SimpleNamespace

from mifgsm_lib import attacks, data, evaluation, methods, mi, protect, robustness, verdicts
from mifgsm_lib.config import PROFILES, grey_eps, profile_settings
from mifgsm_lib.data import FaceDataset
from mifgsm_lib.mi import VCLUB, train_vclub
from mifgsm_lib.nets import seeded_init
from mifgsm_lib.studies import beyond

from support import SIZE, TinyFace, embed_iterative


def embed_views(face, shield, chips, y, views, batch_size=64, seed=0, progress=False):
    """Templates of the protected images in each named view (:func:`mifgsm_lib.robustness.stored_view`)."""
    return protect.embed_protected(face, shield, chips, y, {v: (lambda x, v=v: robustness.stored_view(x, v))
                                                            for v in views}, batch_size=batch_size, seed=seed,
                                   progress=progress)

N = 32
pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def setup() -> dict:
    torch.manual_seed(0)
    face = TinyFace().eval()
    rng = np.random.default_rng(0)
    y = np.arange(N) % 2
    chips = rng.integers(0, 256, size=(N, SIZE, SIZE, 3)).astype(np.int64)
    chips[..., 0] = np.clip(chips[..., 0] + np.where(y[:, None, None] == 1, 60, -60), 0, 255)
    chips = chips.astype(np.uint8)
    with torch.no_grad():
        z = face(attacks.as_float_images(chips))
    estimator = train_vclub(z, y, z, y, iterations=100, batch_size=16, seed=0, progress=False).estimator
    return {"face": face, "chips": chips, "y": y, "z": z, "estimator": estimator}


# --- 1. The gradient of Eq. 7 ---------------------------------------------------------------------------------


@pytest.mark.parametrize("num_classes", [2, 3])
def test_gradient_check_agrees_with_autograd(num_classes: int) -> None:
    estimator = seeded_init(VCLUB, 1, dim=5, num_classes=num_classes)
    z = torch.randn(40, 5, generator=torch.Generator().manual_seed(1))
    y = np.arange(40) % num_classes
    row = mi.gradient_check(estimator, z, y)
    assert row["classes"] == num_classes and row["templates"] == 40
    assert row["max_gradient"] > 1e-4
    assert row["closed_form_error"] < 1e-12
    assert ("margin_form_error" in row) == (num_classes == 2)
    if num_classes == 2:
        assert row["margin_form_error"] < 1e-12


def test_margin_weights_known_values() -> None:
    w = mi.margin_weights(np.array([0, 0, 1]))
    # pi = (2/3, 1/3), N = 3: y=0 -> -(1/3)/3, y=1 -> +(2/3)/3
    np.testing.assert_allclose(w.numpy(), [-1 / 9, -1 / 9, 2 / 9])
    with pytest.raises(ValueError, match="at least 2 classes"):
        mi.margin_weights(np.zeros(4, dtype=int))


def test_template_signs_do_not_depend_on_the_batch_for_two_classes_only() -> None:
    z = torch.randn(24, 5, generator=torch.Generator().manual_seed(2))
    two = seeded_init(VCLUB, 2, dim=5, num_classes=2)
    y2 = np.r_[np.zeros(17, dtype=int), np.ones(7, dtype=int)]  # skewed: batch frequencies differ from the whole
    assert mi.template_sign_change(two, z, y2, batch_size=8, seed=0) == 0.0
    three = seeded_init(VCLUB, 2, dim=5, num_classes=3)
    y3 = np.r_[np.zeros(10, dtype=int), np.ones(10, dtype=int), np.full(4, 2)]
    assert mi.template_sign_change(three, z, y3, batch_size=8, seed=0) > 0.0


def test_sign_change() -> None:
    assert mi.sign_change(np.array([1, -1, 0, 2]), np.array([3, 1, 0, -1])) == 0.5
    with pytest.raises(ValueError, match="expected one shape"):
        mi.sign_change(np.zeros(3), np.zeros(4))


# --- 2. Protections and their views ---------------------------------------------------------------------------


def test_views_are_checked_and_stored() -> None:
    with pytest.raises(ValueError, match="views="):
        robustness.check_views(["png"])
    with pytest.raises(ValueError, match="views="):
        robustness.check_views("uint8")
    x = torch.full((1, 3, 8, 8), 0.5 + 0.3 / 255)
    assert torch.equal(robustness.stored_view(x, "float"), x)
    assert torch.allclose(robustness.stored_view(x, "uint8") * 255, torch.full_like(x, 128.0))
    assert robustness.stored_view(x, "jpeg90").shape == x.shape


def test_embed_views_equal_direct_embedding(setup: dict) -> None:
    face, chips, y = setup["face"], setup["chips"], setup["y"]
    views = ["float", "uint8", "jpeg75", "blur1"]
    out = embed_views(face, lambda x, yb, idx: x, chips, y, views, batch_size=8, progress=False)
    with torch.no_grad():
        clean = face(attacks.as_float_images(chips)).numpy()
        jpeg = face(attacks.as_float_images(robustness.TRANSFORMS["jpeg75"](chips))).numpy()
    np.testing.assert_allclose(out["float"], clean, atol=1e-6)
    np.testing.assert_allclose(out["uint8"], clean, atol=1e-6)
    np.testing.assert_allclose(out["jpeg75"], jpeg, atol=1e-5)
    assert not np.allclose(out["blur1"], clean, atol=1e-3)


def test_embed_views_of_pgd_equal_embed_iterative(setup: dict) -> None:
    face, chips, y = setup["face"], setup["chips"], setup["y"]
    pgd = attacks.MIPGD(face, setup["estimator"], eps=2 / 255, alpha=methods.step_size(2 / 255, 3), steps=3,
                        objective="confusion", reestimate=True, reestimate_iterations=5)
    out = embed_views(face, lambda x, yb, idx: pgd(x, yb), chips, y, ["float", "uint8"], batch_size=16,
                             seed=3, progress=False)
    for mode in ("float", "uint8"):
        expected = embed_iterative(pgd, chips, y, mode=mode, batch_size=16, seed=3, progress=False)
        np.testing.assert_allclose(out[mode], expected, atol=1e-6)


def test_step_size_and_budgets() -> None:
    assert methods.step_size(0.01, 1) == 0.01
    assert methods.step_size(0.01, 10) == pytest.approx(0.0025)
    assert grey_eps(2) == pytest.approx(2 / 255)
    assert methods.get("mi-fgsm").gradients(5) == 1 and methods.get("mi-pgd-aware").gradients(5) == 5
    assert methods.get("erasure-pgd-eot").gradients(5) == 5 * (1 + len(robustness.EXPECTED))
    with pytest.raises(ValueError, match="steps=0: expected a positive integer"):
        methods.step_size(0.01, 0)
    with pytest.raises(ValueError, match="grey_levels=0"):
        grey_eps(0)
    with pytest.raises(ValueError, match=r"method: \['pgd'\] are not methods of kind iterative"):
        methods.check_methods(["pgd"], "iterative", "method")
    with pytest.raises(ValueError, match="profile='fast'"):
        profile_settings("fast")


def test_pgd_bad_step_size_and_steps(setup: dict) -> None:
    """Bad inputs, through the chapter's path (alpha > eps and 0 steps are refused by MI-PGD)."""
    with pytest.raises(ValueError, match=r"alpha=.*expected a step size with 0 < alpha <= eps"):
        attacks.MIPGD(setup["face"], setup["estimator"], eps=1 / 255, alpha=2 / 255, steps=3)
    with pytest.raises(ValueError, match="steps=0"):
        attacks.MIPGD(setup["face"], setup["estimator"], eps=1 / 255, alpha=methods.step_size(1 / 255, 1), steps=0)


def test_plan_from_sizes() -> None:
    plan = beyond.Plan.from_sizes(PROFILES["default"]["beyond"])
    assert plan.protections[0] == ("reference", 0.0)
    assert ("mi-fgsm", 1.0) in plan.protections and ("mi-pgd-aware", 2.0) in plan.protections
    assert set(plan.views[("reference", 0.0)]) == set(robustness.TRANSFORMS)
    assert "jpeg90" in plan.views[("mi-pgd-confusion", 2.0)] and "jpeg90" not in plan.views[("mi-pgd", 2.0)]
    assert plan.views[("mi-fgsm", 1.0)] == ("float", "uint8", *robustness.TRANSFORMS)
    assert plan.views[("mi-pgd-aware", 2.0)] == ("float", "uint8")
    erasure = sorted(g for m, g in plan.protections if m == "erasure-pgd")
    assert erasure == [1.0, 2.0, 4.0], "pgd_budgets and its extra_budgets, once each"
    for grey in erasure:
        assert plan.views[("erasure-pgd", grey)] == robustness.VIEWS, "a robustness method: every budget processed"
    assert sorted(g for m, g in plan.protections if m == "mi-pgd") == [2.0]
    other = beyond.Plan.from_sizes({**PROFILES["default"]["beyond"], "extra_budgets": {"mi-pgd": (4,)}})
    assert other.views[("mi-pgd", 4.0)] == ("float", "uint8"), "not a robustness method: a frontier point only"


# --- 2-3. Tables and decisions on measured frames -------------------------------------------------------------


def frontier_frame(pgd_b: float, pgd_eer: float) -> pd.DataFrame:
    rows = [("reference", 0.0, 0, 0.97, 0.02), ("mi-fgsm", 1.0, 1, 0.93, 0.025), ("mi-fgsm", 2.0, 1, 0.95, 0.03),
            ("mi-pgd-aware", 2.0, 3, pgd_b, pgd_eer)]
    frames = []
    for mode in ("float", "uint8"):
        frames.append(pd.DataFrame([{"method": m, "value": g / 255, "grey_levels": g, "gradients": k, "setting_b": b,
                                     "setting_a": 0.6, "eer": e, "accuracy": 1 - e, "mode": mode}
                                    for m, g, k, b, e in rows]))
    return pd.concat(frames, ignore_index=True)


def robustness_frame(pgd_jpeg90: float) -> pd.DataFrame:
    rows = []
    for t, ref, fg, pgd in [("none", 0.97, 0.95, 0.80), ("jpeg90", 0.96, 0.96, pgd_jpeg90), ("blur1", 0.95, 0.95, 0.9)]:
        rows += [{"transform": t, "method": "reference", "value": 0.0, "grey_levels": 0.0, "setting_b": ref,
                  "eer": 0.02, "accuracy": 0.98},
                 {"transform": t, "method": "mi-fgsm", "value": 2 / 255, "grey_levels": 2.0, "setting_b": fg,
                  "eer": 0.03, "accuracy": 0.97},
                 {"transform": t, "method": "mi-pgd-aware", "value": 2 / 255, "grey_levels": 2.0, "setting_b": pgd,
                  "eer": 0.03, "accuracy": 0.97}]
    return pd.DataFrame(rows)


def study(pgd_b: float = 0.80, pgd_eer: float = 0.03, pgd_jpeg90: float = 0.955) -> SimpleNamespace:
    """The parts of :class:`mifgsm_lib.studies.beyond.Study` the decisions read."""
    return SimpleNamespace(frontier=frontier_frame(pgd_b, pgd_eer), robustness=robustness_frame(pgd_jpeg90))


def leakage_frame(changes: dict[tuple[str, float], float]) -> pd.DataFrame:
    """Leakage of gender and age group, clean and protected against each by each (method, grey levels) of
    ``changes``, every attribute's own leakage moved by the given change; age moves by -0.01 when protecting gender."""
    clean = {"gender": 0.83, "age_group": 0.75}
    rows = [{"protected": "none", "method": "reference", "grey_levels": 0.0, "measured": a, "setting_b": b,
             "chance": 1 / (2 if a == "gender" else 3)} for a, b in clean.items()]
    for (method, grey), change in changes.items():
        for protected in clean:
            for measured, b in clean.items():
                moved = b + change if protected == measured else b - 0.01
                rows.append({"protected": protected, "method": method, "grey_levels": grey, "measured": measured,
                             "setting_b": moved, "chance": 1 / (2 if measured == "gender" else 3)})
    return pd.DataFrame(rows)


def test_target_check() -> None:
    met = verdicts.target_check(frontier_frame(0.80, 0.03))
    assert met["met"] and met["best"]["method"] == "mi-pgd-aware" and met["best"]["mode"] == "uint8"
    assert met["one_step_1grey"] == 0.93
    assert not verdicts.target_check(frontier_frame(0.80, 0.05))["met"]  # EER too high
    assert not verdicts.target_check(frontier_frame(0.90, 0.03))["met"]  # not private enough


def test_assessment_and_recommendation() -> None:
    s = study(pgd_b=0.80, pgd_eer=0.03, pgd_jpeg90=0.85)
    table = verdicts.assess(s.frontier, verdicts.retained_gain(s.robustness))
    assert list(zip(table["method"], table["grey_levels"])) == [("mi-fgsm", 1.0), ("mi-fgsm", 2.0),
                                                                ("mi-pgd-aware", 2.0)]
    assert np.isnan(table.loc[0, "robust"]) and table.loc[2, "robust"] == 1.0 and table["transfers"].isna().all()
    assert verdicts.recommend(table)["method"] == "mi-pgd-aware"
    # a protection that costs too much EER gives way to one within the limit
    s = study(pgd_b=0.80, pgd_eer=0.05, pgd_jpeg90=0.85)
    pick = verdicts.recommend(verdicts.assess(s.frontier, verdicts.retained_gain(s.robustness)))
    assert (pick["method"], pick["grey_levels"]) == ("mi-fgsm", 1.0)
    # one that vanishes under JPEG 90 is never recommended
    s = study(pgd_b=0.80, pgd_eer=0.03, pgd_jpeg90=0.955)
    table = verdicts.assess(s.frontier, verdicts.retained_gain(s.robustness))
    assert table.loc[2, "robust"] == 0.0 and verdicts.recommend(table)["method"] == "mi-fgsm"
    # one that raises the leakage on the other dataset is never recommended; verified ones come first
    s = study(pgd_b=0.80, pgd_eer=0.05, pgd_jpeg90=0.85)
    leakage = leakage_frame({("mi-fgsm", 1.0): +0.08, ("mi-fgsm", 2.0): +0.1, ("mi-pgd-aware", 2.0): -0.1})
    table = verdicts.assess(s.frontier, verdicts.retained_gain(s.robustness), leakage)
    assert table["transfers"].tolist() == [0.0, 0.0, 1.0]
    assert verdicts.recommend(table)["method"] == "mi-pgd-aware"  # over the EER limit, but the only one left
    # no candidate left
    leakage = leakage_frame({("mi-fgsm", 1.0): +0.08, ("mi-fgsm", 2.0): +0.1, ("mi-pgd-aware", 2.0): +0.1})
    assert verdicts.recommend(verdicts.assess(s.frontier, verdicts.retained_gain(s.robustness), leakage)) is None


def test_retained_gain_and_vanishing() -> None:
    kept = verdicts.retained_gain(robustness_frame(pgd_jpeg90=0.955))
    pgd = kept[kept["method"] == "mi-pgd-aware"].set_index("transform")
    # unprocessed gain 0.17; after JPEG 90 the gain is 0.005 (3 %): vanished; after blur 0.05 (29 %): kept
    assert pgd.loc["jpeg90", "share"] == pytest.approx(0.005 / 0.17)
    assert bool(pgd.loc["jpeg90", "vanished"]) and not bool(pgd.loc["blur1", "vanished"])
    fg = kept[kept["method"] == "mi-fgsm"].set_index("transform")
    assert fg.loc["jpeg90", "share"] == pytest.approx(0.0 / 0.02)
    assert "none" not in set(kept["transform"])


def test_verdict_is_decided_by_the_numbers() -> None:
    s = study(pgd_jpeg90=0.85)
    text = verdicts.verdict(s.frontier, verdicts.retained_gain(s.robustness))
    assert "We would recommend MI-PGD (confusion, attacker-aware) at 2 grey" in text and "**met**" in text
    assert "keeps at least a quarter" in text and "not measured in this profile" in text
    s = study(pgd_jpeg90=0.955)
    text = verdicts.verdict(s.frontier, verdicts.retained_gain(s.robustness))
    assert "We would recommend MI-FGSM at 1 grey" in text
    assert "Not MI-PGD (confusion, attacker-aware) at 2 grey levels" in text and "vanishes under processing" in text
    assert "less than half" in text
    s = study(pgd_b=0.80, pgd_eer=0.05, pgd_jpeg90=0.85)
    leakage = leakage_frame({("mi-fgsm", 1.0): +0.08, ("mi-fgsm", 2.0): +0.1, ("mi-pgd-aware", 2.0): -0.1})
    text = verdicts.verdict(s.frontier, verdicts.retained_gain(s.robustness), leakage)
    assert "recommend MI-PGD (confusion, attacker-aware)" in text and "above the 4% limit" in text
    assert "raises the leakage it targets on the other dataset" in text and "**not met**" in text
    assert "changes the age-group leakage on the other dataset by -1.0 points" in text
    leakage = leakage_frame({("mi-fgsm", 1.0): +0.08, ("mi-fgsm", 2.0): +0.1, ("mi-pgd-aware", 2.0): +0.1})
    assert "**No protection to recommend.**" in verdicts.verdict(s.frontier, verdicts.retained_gain(s.robustness), leakage)


def test_tables() -> None:
    table = beyond.budget_table(frontier_frame(0.8, 0.03))
    assert list(table.index.get_level_values(0))[0] == methods.label("reference")
    assert list(table.columns.get_level_values(0))[:4] == ["uint8"] * 4
    assert table.loc[(methods.label("mi-pgd-aware"), 2.0, 3), ("uint8", "setting B (%)")] == pytest.approx(80.0)
    rob = beyond.robustness_table(robustness_frame(0.9))
    assert list(rob.columns) == ["none", *robustness.TRANSFORMS]
    assert rob.loc["MI-PGD (confusion, attacker-aware), 2 grey", "jpeg90"] == pytest.approx(90.0)
    assert np.isnan(rob.loc["MI-PGD (confusion, attacker-aware), 2 grey", "jpeg50"])  # not measured
    assert beyond.robustness_table(robustness_frame(0.9), "eer").loc["Reference (no privacy)", "none"] == 2.0
    with pytest.raises(ValueError, match="metric='psnr'"):
        beyond.robustness_table(robustness_frame(0.9), "psnr")


# --- 4. Other soft biometrics ---------------------------------------------------------------------------------


def utk_like(age: list[int], race: list[int]) -> FaceDataset:
    n = len(age)
    return FaceDataset("utkface", ".", [f"{i}.jpg" for i in range(n)], [str(i) for i in range(n)], np.arange(n), [],
                       np.arange(n) % 2, {"age": np.asarray(age), "race": np.asarray(race)})


def test_attribute_labels() -> None:
    ds = utk_like([1, 29, 30, 59, 60, 99], [0, 1, 2, 3, 4, 0])
    np.testing.assert_array_equal(data.attribute_labels(ds, "age_group"), [0, 0, 1, 1, 2, 2])
    np.testing.assert_array_equal(data.attribute_labels(ds, "race"), [0, 1, 2, 3, 4, 0])
    np.testing.assert_array_equal(data.attribute_labels(ds, "gender"), [0, 1, 0, 1, 0, 1])
    with pytest.raises(ValueError, match="attribute='eyes'"):
        data.attribute_labels(ds, "eyes")
    young = utk_like([20, 21, 25], [0, 1, 2])
    with pytest.raises(ValueError, match=r"attribute 'age_group': 1 class\(es\) \[0\] among 3 images; expected"):
        data.attribute_labels(young, "age_group")
    lfw_like = FaceDataset("lfw", ".", ["a.jpg", "b.jpg"], ["a", "b"], [0, 1], ["A", "B"], [0, 1])
    with pytest.raises(ValueError, match="dataset 'lfw' has no 'age' labels"):
        data.attribute_labels(lfw_like, "age_group")


def test_leakage_tables() -> None:
    rows = []
    for p, m, g, base in [("none", "reference", 0.0, 0.0), ("gender", "mi-fgsm", 2.0, 0.05),
                          ("age_group", "mi-fgsm", 2.0, -0.2)]:
        rows += [{"protected": p, "method": m, "grey_levels": g, "measured": "gender", "setting_b": 0.9 + base,
                  "chance": 0.5},
                 {"protected": p, "method": m, "grey_levels": g, "measured": "age_group",
                  "setting_b": 0.7 - 0.025 if p == "gender" else 0.7 + base, "chance": 1 / 3}]
    leakage = pd.DataFrame(rows)
    col = verdicts.collateral(leakage).iloc[0]
    assert col["method"] == "mi-fgsm" and col["grey_levels"] == 2.0
    assert col["change"] == pytest.approx(-0.025) and col["direct change"] == pytest.approx(-0.2)
    own = verdicts.self_protection(leakage).set_index("measured")
    assert own.loc["gender", "change"] == pytest.approx(0.05)  # the protection raised its own attribute's leakage
    assert own.loc["age_group", "change"] == pytest.approx(-0.2)
    table = beyond.leakage_table(leakage)
    assert table.loc["chance (1/K)", "age_group"] == pytest.approx(100 / 3)
    assert table.loc["gender: MI-FGSM, 2 grey", "gender"] == pytest.approx(95.0)
    assert table.loc["none (clean)", "age_group"] == pytest.approx(70.0)


def test_attribute_protection_bad_method() -> None:
    from mifgsm_lib.config import RunConfig

    cfg = RunConfig(profile="quick")
    with pytest.raises(ValueError, match="method='fgsm'"):
        beyond.attribute_protection(cfg, "age_group", "fgsm", [0.004], np.arange(4))
    with pytest.raises(ValueError, match="steps=None"):
        beyond.attribute_protection(cfg, "age_group", "mi-pgd-confusion", [0.004], np.arange(4))


# --- evaluation.py: K-class setting B --------------------------------------------------------------------------


def test_setting_b_for_k_classes() -> None:
    rng = np.random.default_rng(0)
    y = np.arange(90) % 3
    x = rng.normal(size=(90, 4)) + 3.0 * np.eye(4)[y]
    groups = np.arange(90)
    result = evaluation.setting_b(x, y, groups, multiclass=True, n_jobs=1)
    assert result.mean > 0.9
    noise = evaluation.setting_b(rng.normal(size=(90, 4)), y, groups, multiclass=True, n_jobs=1)
    assert noise.mean < 0.6  # chance is 1/3
    sweep = evaluation.setting_b_sweep({0: x}, y, groups, multiclass=True, n_jobs=1, progress=False)
    assert sweep[0].balanced_accuracy == pytest.approx(result.balanced_accuracy)
    with pytest.raises(ValueError, match=r"y: labels must lie in 0..1 \(num_classes=2\), got values in 0..2"):
        evaluation.setting_b(x, y, groups, n_jobs=1)
    with pytest.raises(ValueError, match=r"y: only class\(es\) \[0\] present in 90 labels; expected at least 2"):
        evaluation.setting_b(x, np.zeros(90, dtype=int), groups, multiclass=True, n_jobs=1)
    two = y % 2
    assert (evaluation.setting_b(x, two, groups, n_jobs=1).balanced_accuracy
            == evaluation.setting_b(x, two, groups, multiclass=True, n_jobs=1).balanced_accuracy)


def test_logit_margins_and_their_gradient() -> None:
    two = seeded_init(VCLUB, 4, dim=5, num_classes=2)
    z = torch.randn(6, 5, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        logits = two.logits(z)
    np.testing.assert_allclose(mi.logit_margins(two, z.numpy()), (logits[:, 1] - logits[:, 0]).numpy(), atol=1e-6)
    step = 1e-3 * mi.logit_margin_gradient(two, z)  # a small step up the gradient raises every margin
    assert (mi.logit_margins(two, (z + step).numpy()) > mi.logit_margins(two, z.numpy())).all()
    with pytest.raises(ValueError, match="needs two classes"):
        mi.logit_margins(seeded_init(VCLUB, 4, dim=5, num_classes=3), z.numpy())


def test_figures_draw_the_measured_frames() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from mifgsm_lib.figures import beyond as figures

    frontier = frontier_frame(0.8, 0.03)
    curve = frontier[frontier["mode"] == "float"].replace({"mi-pgd-aware": "mi-fgsm"})
    fig = figures.plot_frontier(frontier, curve)
    assert len(fig.axes[0].collections) >= 6  # the target region aside, one scatter per (method, mode)
    fig = figures.plot_robustness(robustness_frame(0.9))
    assert len(fig.axes) == 2 and len(fig.axes[0].patches) == 3 * 3
    leakage = leakage_frame({("mi-fgsm", 1.0): 0.05, ("mi-pgd-confusion", 2.0): -0.1})
    fig = figures.plot_leakage(leakage)
    assert [len(ax.patches) for ax in fig.axes] == [5, 5]
    m = np.array([-2.0, 1.0, 3.0, -1.0])
    fig = figures.plot_margins({"clean": m, "protected": -m}, np.array([0, 1, 1, 0]))
    assert len(fig.axes) == 2
    plt.close("all")


# --- Beyond the frontier: dominance over a template baseline -------------------------------------------------


def comparison_rows(points: list[tuple[int, float, float]], budgets: dict[float, tuple[float, float]],
                    b_halfwidth: float = 0.02, eer_halfwidth: float = 0.005) -> pd.DataFrame:
    """Constructed :class:`~mifgsm_lib.studies.beyond.Comparison` pairs: baseline ``points`` (step, B, EER), each
    budget's (B, EER), every difference with a symmetric interval of the given half-widths."""
    rows = []
    for step, b, eer in points:
        for grey, (mb, meer) in budgets.items():
            d_b, d_eer = mb - b, meer - eer
            rows.append({"metric": "setting_b", "step": step, "baseline_b": b, "baseline_eer": eer, "grey_levels": grey,
                         "d_b": d_b, "d_b_low": d_b - b_halfwidth, "d_b_high": d_b + b_halfwidth,
                         "d_eer": d_eer, "d_eer_low": d_eer - eer_halfwidth, "d_eer_high": d_eer + eer_halfwidth})
    return pd.DataFrame(rows)


IVE_POINTS = [(1, 0.93, 0.013), (2, 0.90, 0.015), (3, 0.82, 0.020), (4, 0.76, 0.027), (5, 0.68, 0.033)]


def test_dominated_needs_one_coordinate_beyond_its_interval_and_the_other_not_worse() -> None:
    rows = pd.DataFrame({"d_b": [-0.05, -0.01, -0.05, 0.01], "d_b_low": [-0.08, -0.04, -0.08, -0.01],
                         "d_b_high": [-0.02, 0.02, -0.02, 0.03], "d_eer": [0.002, 0.0, 0.01, -0.01],
                         "d_eer_low": [-0.003, -0.005, 0.004, -0.015], "d_eer_high": [0.007, 0.005, 0.016, -0.005]})
    assert verdicts.dominated(rows).tolist() == [True, False, False, True]


def test_dominance_holds_down_to_the_goal_and_reports_its_reach() -> None:
    pairs = comparison_rows(IVE_POINTS, {1.0: (0.80, 0.016), 2.0: (0.78, 0.021), 4.0: (0.70, 0.029)})
    result = verdicts.dominance(pairs, down_to=0.75)
    assert result["holds"] and result["first_miss"]["step"] == 5 and result["first_miss"]["grey_levels"] == 4.0
    assert result["reach"] == pytest.approx(0.76)
    text = verdicts.describe_dominance(result, "erasure-pgd", "ive", "setting_b")
    assert text.startswith("**Erasure-PGD (LEACE target) dominates IVE down to setting B = 75%**")
    assert result["points"]["costlier"].tolist() == [True, True, True, True, False]  # every budget's EER is higher
    assert "At 4 of those 4 points every budget that dominates has a higher EER in point estimate" in text
    cheap = verdicts.dominance(comparison_rows(IVE_POINTS, {1.0: (0.80, 0.012), 2.0: (0.74, 0.019)}), 0.75)
    assert cheap["holds"] and "higher EER in point estimate" not in verdicts.describe_dominance(
        cheap, "erasure-pgd", "ive", "setting_b")


def test_dominance_fails_at_its_first_miss_and_says_when_point_estimates_alone_would_pass() -> None:
    pairs = comparison_rows(IVE_POINTS, {1.0: (0.80, 0.012), 2.0: (0.755, 0.026)})
    result = verdicts.dominance(pairs, down_to=0.75)
    assert not result["holds"] and result["first_miss"]["step"] == 4 and result["reach"] == pytest.approx(0.82)
    assert result["first_miss"]["grey_levels"] == 2.0
    text = verdicts.describe_dominance(result, "erasure-pgd", "ive", "setting_b_plus")
    assert "does not dominate IVE down to setting B+ = 75%" in text and "step 4" in text
    assert "In point estimates alone it would dominate that whole range" in text
    worse = verdicts.dominance(comparison_rows(IVE_POINTS, {1.0: (0.95, 0.03)}), down_to=0.75)
    assert not worse["holds"] and worse["reach"] is None
    assert "not even at its first point" in verdicts.describe_dominance(worse, "erasure-pgd", "ive", "setting_b")
    assert "In point estimates" not in verdicts.describe_dominance(worse, "erasure-pgd", "ive", "setting_b")

