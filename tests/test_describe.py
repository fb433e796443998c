"""The decisions in the chapters' prose: every ``describe_*`` function of :mod:`mifgsm_lib.studies` that compares a
number with a threshold or an interval and chooses its wording from it, decided on constructed tables.

One test per decision, parametrized over its branches; each case asserts the words and the numbers (as the chapter
formats them) that tell its branch apart, so a wrong comparison fails a test. Nothing here loads data or a model.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import cast

import numpy as np
import pandas as pd
import pytest

from mifgsm_lib import verification
from mifgsm_lib.data import FaceDataset
from mifgsm_lib.intervals import Interval
from mifgsm_lib.studies import attacks as attacks_study
from mifgsm_lib.studies import beyond
from mifgsm_lib.studies import estimators as estimators_study
from mifgsm_lib.studies import evaluation_settings as settings_study
from mifgsm_lib.studies import templates as templates_study
from mifgsm_lib.studies import tradeoff
from mifgsm_lib.verdicts import MATCH_TOLERANCE

GRADIENT = ["mi-fgsm", "fgsm"]


# --------------------------------------------------------------------------------------------- the chapter "Attacks"


@pytest.mark.parametrize("with_random", [True, False])
def test_agreement_mentions_the_random_attack_only_where_it_was_compared(with_random: bool) -> None:
    check = pd.DataFrame({"batch_size": [64, 16], "equal_to_first": [1.0, 0.99999], "differ": [0, 3]})
    names = [*GRADIENT, "random"] if with_random else GRADIENT
    values = {("mi-fgsm", "fgsm"): 0.8, ("mi-fgsm", "random"): 0.52, ("fgsm", "random"): 0.48}
    agreement = pd.DataFrame([[1.0 if a == b else values.get((a, b), values.get((b, a))) for b in names]
                              for a in names], index=names, columns=names)
    text = attacks_study.describe_agreement(check, agreement, GRADIENT, 300_000)
    assert "With batches of 16 instead of 64, 99.99900% of the direction values are unchanged" in text
    assert "(3 of 300,000 differ" in text and "MI-FGSM and FGSM 80.0%" in text
    if with_random:
        assert "the random attack agrees with each about 50.0% of the time" in text
    else:
        assert "random" not in text


def _quality(offset: float, random_psnr: list[float] | None) -> pd.DataFrame:
    """Two gradient attacks (and the random one) at two ε; grey levels exact, the largest change off by ``offset``."""
    psnr = {"mi-fgsm": [40.0, 34.0], "fgsm": [40.2, 34.1]}
    if random_psnr is not None:
        psnr["random"] = random_psnr
    return pd.DataFrame([{"method": m, "eps": e, "grey_levels": g, "linf_grey": g + offset, "psnr": p,
                          "ssim": 0.99 - 0.01 * i}
                         for m, values in psnr.items() for i, (e, g, p) in enumerate(zip([0.01, 0.02], [2.0, 4.0],
                                                                                          values))])


@pytest.mark.parametrize(("offset", "expected"), [
    (0.0, "equal at every level (largest difference 0 grey levels)"),
    (2.0 ** -10, "equal at every level (largest difference 0.00098 grey levels)"),
    (2.0 ** -9, "NOT equal at some level (largest difference 0.002 grey levels)"),
])
def test_quality_says_whether_the_largest_pixel_change_is_255_eps(offset: float, expected: str) -> None:
    text = attacks_study.describe_quality(_quality(offset, None), GRADIENT)
    assert expected in text


@pytest.mark.parametrize(("random_psnr", "expected", "absent"), [
    (None, None, "random attack's"),
    ([39.0, 33.5], "PSNR is higher than the random attack's at every ε, by 0.50 to 1.20 dB", "lower"),
    ([41.0, 35.0], "PSNR is lower than the random attack's at every ε, by 0.80 to 1.00 dB", "higher"),
    ([39.0, 35.0], "PSNR is on either side of the random attack's, depending on ε", "at every ε, by"),
])
def test_quality_places_the_gradient_attacks_psnr_against_the_random_attacks(
        random_psnr: list[float] | None, expected: str | None, absent: str) -> None:
    text = attacks_study.describe_quality(_quality(0.0, random_psnr), GRADIENT)
    if expected is not None:
        assert expected in text
    assert absent not in text
    assert text.endswith("Only their directions do.")


def _storage(below_changed: float, below_shift: float, above_changed: list[float]) -> pd.DataFrame:
    """MI-FGSM at 0.125, 0.375, 0.625 and 0.875 grey levels, stored as uint8 and as floats."""
    greys = [0.125, 0.375, 0.625, 0.875]
    u8 = pd.DataFrame({"mode": "uint8", "grey_levels": greys, "changed": [below_changed] * 2 + above_changed,
                       "template_shift": [below_shift] * 2 + [0.05, 0.05], "linf_grey": [0.0, 0.0, 1.0, 1.0],
                       "same_as_previous": [False, True, False, True]})
    fl = pd.DataFrame({"mode": "float", "grey_levels": greys, "changed": [0.6] * 4,
                       "template_shift": [0.01, 0.02, 0.03, 0.04], "linf_grey": greys, "same_as_previous": False})
    return pd.concat([u8, fl], ignore_index=True)


@pytest.mark.parametrize(("changed", "shift", "expected"), [
    (0.0, 0.0, "the perturbation **vanishes**: no pixel changes and every template equals its clean template "
               "exactly (largest template shift 0)"),
    (0.0, 0.01, "the perturbation **does not vanish** (largest template shift 0.01)"),
    (0.001, 0.0, "the perturbation **does not vanish** (largest template shift 0)"),
])
def test_uint8_storage_says_whether_a_perturbation_below_half_a_grey_level_vanishes(
        changed: float, shift: float, expected: str) -> None:
    text = attacks_study.describe_storage(_storage(changed, shift, [0.3, 0.3]))
    assert "In `uint8` mode, at the 2 levels below half a grey level " + expected in text
    assert "2 of the 3 steps between neighbouring levels" in text


def test_uint8_storage_with_no_level_below_half_a_grey_level_says_so() -> None:
    storage = _storage(0.0, 0.0, [0.3, 0.3])
    text = attacks_study.describe_storage(storage[storage["grey_levels"] > 0.5])
    assert "In `uint8` mode, no level below half a grey level was measured. 1 of the 1 steps" in text
    assert "vanish" not in text


@pytest.mark.parametrize(("above", "expected"), [
    ([0.3, 0.3], "From half a grey level on, 30.0% of the pixel values change, by [1] whole grey levels."),
    ([0.3, 0.4], "From half a grey level on, 30.0% to 40.0% of the pixel values change, by [1] whole grey levels."),
])
def test_uint8_storage_gives_one_share_or_a_range(above: list[float], expected: str) -> None:
    text = attacks_study.describe_storage(_storage(0.0, 0.0, above))
    assert expected in text
    assert "In `float` mode every level changes 60.0% of the pixel values" in text


def _shift(fgsm: list[float], random: bool = True) -> pd.DataFrame:
    means = {"mi-fgsm": [0.1, 0.5], "fgsm": fgsm, **({"random": [0.01, 0.05]} if random else {})}
    return pd.DataFrame([{"method": m, "eps": e, "shift_mean": v} for m, values in means.items()
                         for e, v in zip([0.001, 0.01], values)])


LABELS = {"mi-fgsm": "MI-FGSM", "fgsm": "FGSM", "random": "RNDATK"}


@pytest.mark.parametrize("distances", [{"mated": 0.4, "non_mated": 0.8}, {}])
def test_shift_compares_with_the_pair_distances_only_where_there_are_pairs(distances: dict[str, float]) -> None:
    text = attacks_study.describe_shift(_shift([0.1, 0.3]), distances, GRADIENT, LABELS)
    if distances:
        assert text.startswith("Median clean distance: same person 0.400, different people 0.800.")
        assert "same-person" in text
    else:
        assert text.startswith("The dataset has no verification pairs to compare with.")
        assert "same-person" not in text


@pytest.mark.parametrize(("fgsm", "random", "expected"), [
    ([0.1, 0.3], True, "At ε = 0.001 the gradient attacks move a template 10 times farther than the random attack"),
    ([0.2, 0.3], True, "At ε = 0.001 the gradient attacks move a template 10 to 20 times farther"),
    ([0.1, 0.3], False, None),
])
def test_shift_compares_the_gradient_attacks_with_the_random_attack(fgsm: list[float], random: bool,
                                                                    expected: str | None) -> None:
    text = attacks_study.describe_shift(_shift(fgsm, random), {"mated": 0.4, "non_mated": 0.8}, GRADIENT, LABELS)
    if expected is None:
        assert "times farther" not in text
    else:
        assert expected in text


def test_shift_says_from_which_eps_an_attack_moves_templates_beyond_a_same_person_pair() -> None:
    text = attacks_study.describe_shift(_shift([0.1, 0.4]), {"mated": 0.4, "non_mated": 0.8}, GRADIENT, LABELS)
    assert "MI-FGSM moves templates farther than a same-person pair from ε = 0.01 on." in text
    assert "FGSM stays below the same-person distance at every ε." in text  # equal to it is not farther
    assert "RNDATK stays below the same-person distance at every ε." in text
    assert ". FGSM moves" not in text


# ----------------------------------------------------------------------------------- the chapter "Beyond one step"


def _gradient_inputs(worst: float, two_class: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    names = ["lfw gender", "utkface age_group", "utkface race"]
    check = pd.DataFrame({"relative error": [worst / 10, worst, worst / 100]}, index=pd.Index(names, name="estimator"))
    signs = pd.DataFrame({"classes": [2, 3, 5], beyond.SIGN_CHANGE: [two_class, 0.05, 0.1]},
                         index=pd.Index(names, name="estimator"))
    return check, signs


@pytest.mark.parametrize(("worst", "expected", "absent"), [
    (3e-12, "at most 3.0e-12 on every estimator (float64 rounding).", "the closed form is wrong"),
    (2e-8, "at most 2.0e-08 on every estimator, **more than float64 rounding: the closed form is wrong**.",
     "(float64 rounding)"),
])
def test_gradient_check_says_whether_the_closed_form_agrees_with_autograd(worst: float, expected: str,
                                                                          absent: str) -> None:
    text = beyond.describe_gradient_checks(*_gradient_inputs(worst, 0.0))
    assert expected in text and absent not in text
    assert "For age group and race it is 5.00% and 10.00%" in text


@pytest.mark.parametrize(("two_class", "expected", "absent"), [
    (0.0, "is 0.00% for gender, as the derivation says: the sign does not depend on the batch", "against"),
    (0.001, "is 0.10% for gender, **against the derivation**.", "as the derivation says"),
])
def test_gradient_check_says_whether_the_two_class_sign_ignores_the_batch(two_class: float, expected: str,
                                                                         absent: str) -> None:
    text = beyond.describe_gradient_checks(*_gradient_inputs(1e-12, two_class))
    assert expected in text and absent not in text


@pytest.mark.parametrize(("changed", "expected", "absent"), [
    (1.2e-5, "(1.2e-05). This is floating-point noise", "more than rounding"),
    (2e-4, "(2.0e-04). That is more than rounding would explain.", "floating-point noise"),
])
def test_pixel_signs_call_a_small_change_rounding_noise(changed: float, expected: str, absent: str) -> None:
    pixels = {"images": 100, "batch_size": 64, "changed_pixels": 12, "pixels": 1_000_000, "changed": changed, "zero_share": 0.1}
    text = beyond.describe_pixel_signs(pixels)
    assert "12 of 1,000,000 pixel signs change" in text and expected in text and absent not in text
    assert "A share of 10.0% of the pixels get a zero gradient" in text
    assert text.startswith("Between batches of 64 and one batch of all 100 images")


def _frontier(pgd: dict[str, tuple[float, float]]) -> pd.DataFrame:
    """The clean reference, one-step MI-FGSM at 1 and 2 grey levels and ``pgd`` (method: (setting B, EER)) at 2
    grey levels, all as 8-bit photos."""
    rows = [{"method": "reference", "mode": "uint8", "grey_levels": 0.0, "setting_b": 0.95, "eer": 0.02,
             "gradients": 0},
            {"method": "mi-fgsm", "mode": "uint8", "grey_levels": 1.0, "setting_b": 0.90, "eer": 0.045,
             "gradients": 1},
            {"method": "mi-fgsm", "mode": "uint8", "grey_levels": 2.0, "setting_b": 0.88, "eer": 0.05,
             "gradients": 1}]
    rows += [{"method": m, "mode": "uint8", "grey_levels": 2.0, "setting_b": b, "eer": eer, "gradients": 10}
             for m, (b, eer) in pgd.items()]
    return pd.DataFrame(rows)


@pytest.mark.parametrize(("pgd", "best", "met"), [
    ({"mi-pgd": (0.84, 0.03)}, "MI-PGD (vCLUB) at 2 grey levels, uint8: setting B 84.0%, EER 3.00%", True),
    ({"mi-pgd": (0.85, 0.04)}, "MI-PGD (vCLUB) at 2 grey levels, uint8: setting B 85.0%, EER 4.00%", True),
    ({"mi-pgd": (0.86, 0.03)}, "MI-PGD (vCLUB) at 2 grey levels, uint8: setting B 86.0%, EER 3.00%", False),
    ({"mi-pgd": (0.80, 0.05)}, None, False),
])
def test_frontier_says_whether_the_target_is_met(pgd: dict[str, tuple[float, float]], best: str | None,
                                                 met: bool) -> None:
    text = beyond.describe_frontier(_frontier(pgd))
    assert text.startswith("Clean templates: setting B 95.0%, EER 2.00%. One-step MI-FGSM on 8-bit photos: 90.0% at "
                           "1 grey level, 88.0% at 2 grey levels.")
    if best is None:
        assert "The most private protection" not in text
    else:
        assert f"The most private protection within 2 grey levels at EER ≤ 4% is {best}." in text
    assert "one-step MI-FGSM at 1 grey level: 90.0%" in text
    assert text.endswith("is **met**." if met else "is **not met** on these images.")


@pytest.mark.parametrize(("pgd", "expected"), [
    ({"mi-pgd": (0.876, 0.03), "mi-pgd-confusion": (0.90, 0.03)},
     "At 2 grey levels, uint8: no iterative protection beats one-step MI-FGSM (88.0%) by more than half a point."),
    ({"mi-pgd": (0.87, 0.03), "mi-pgd-confusion": (0.876, 0.03)},
     "At 2 grey levels, uint8: MI-PGD (vCLUB) beats one-step MI-FGSM (88.0%) by more than half a point."),
    ({"mi-pgd": (0.87, 0.03), "mi-pgd-confusion": (0.80, 0.03)},
     "At 2 grey levels, uint8: MI-PGD (vCLUB), MI-PGD (confusion) beat one-step MI-FGSM (88.0%) by more than half "
     "a point."),
])
def test_frontier_says_which_iterative_protections_beat_one_step_mi_fgsm(pgd: dict[str, tuple[float, float]],
                                                                         expected: str) -> None:
    assert expected in beyond.describe_frontier(_frontier(pgd))


@pytest.mark.parametrize(("vclub_margin", "expected"), [
    (3.0, "As the derivation predicts, the vCLUB objective pushes the templates *through* the boundary"),
    (0.5, "Against the derivation's prediction, the confusion objective does not keep the margins closer"),
    (0.8, "Against the derivation's prediction"),
])
def test_margins_say_whether_vclub_pushes_through_and_confusion_onto_the_boundary(vclub_margin: float,
                                                                                 expected: str) -> None:
    keys = ("MI-PGD (vCLUB), 2 grey", "MI-PGD (confusion), 2 grey")
    margins = pd.DataFrame({"on q's wrong side": [0.05, 0.9, 0.5], "median |margin|": [2.0, vclub_margin, 0.8]},
                           index=["clean", *keys])
    text = beyond.describe_margins(margins, *keys)
    assert text.startswith("MI-PGD on the vCLUB objective puts 90% of the templates on the wrong side of $q$'s "
                           f"boundary (clean: 5.0%), at a median distance |m| of {vclub_margin:.1f} (clean: 2.0).")
    assert expected in text


def _kept(base_gain: float, shares: dict[str, float], method: str = "mi-fgsm", grey: float = 1.0) -> pd.DataFrame:
    return pd.DataFrame([{"transform": t, "method": method, "grey_levels": grey, "base_gain": base_gain,
                          "share": s, "vanished": s < 0.25} for t, s in shares.items()])


def _one_step(settings_b: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"method": "mi-fgsm", "mode": "uint8", "grey_levels": [1.0, 2.0], "setting_b": settings_b})


@pytest.mark.parametrize(("base_gain", "shares", "expected", "absent"), [
    (0.0, {"jpeg90": np.nan}, "* MI-FGSM at 1 grey level has no setting-B gain on unprocessed photos, so there is "
                              "nothing to keep.", ["vanishes", "keeps"]),
    (np.nan, {"jpeg90": np.nan}, "has no setting-B gain on unprocessed photos", ["vanishes", "keeps"]),
    (0.05, {"jpeg90": 0.5, "blur1": 0.9}, "* MI-FGSM at 1 grey level (gain 5.0 points unprocessed): keeps at least a "
                                          "quarter of its gain everywhere.", ["vanishes", "further", "JPEG"]),
    (0.05, {"jpeg90": 0.5, "jpeg50": 0.1, "blur1": 0.2}, "(gain 5.0 points unprocessed): **vanishes** under jpeg50, "
                                                         "blur1.", ["JPEG re-compression", "further"]),
    (0.05, {"jpeg90": 0.2, "jpeg50": 0.1}, "**vanishes** under jpeg90, jpeg50; **it does not survive a JPEG "
                                           "re-compression at quality 90", ["further"]),
    (0.05, {"jpeg90": 0.5, "blur1": 1.5}, "keeps at least a quarter of its gain everywhere; under blur1 setting B "
                                          "falls *further* than on the unprocessed photos.", ["vanishes"]),
])
def test_robustness_says_whether_each_protection_vanishes_or_falls_further(
        base_gain: float, shares: dict[str, float], expected: str, absent: list[str]) -> None:
    text = beyond.describe_robustness(_kept(base_gain, shares), _one_step([0.90, 0.88]))
    assert expected in text
    assert not [word for word in absent if word in text]


@pytest.mark.parametrize(("shares", "one_step", "explained"), [
    ({"blur1": 1.5}, [0.88, 0.92], True),
    ({"blur1": 1.5}, [0.90, 0.88], False),
    ({"blur1": 0.9}, [0.88, 0.92], False),
])
def test_robustness_explains_a_further_fall_only_where_one_step_setting_b_rises_again(
        shares: dict[str, float], one_step: list[float], explained: bool) -> None:
    text = beyond.describe_robustness(_kept(0.05, shares), _one_step(one_step))
    if explained:
        assert ("One-step MI-FGSM's setting B rises again with the budget (88.0% at 1 grey level, 92.0% at 2)"
                in text)
    else:
        assert "rises again" not in text


@pytest.mark.parametrize(("low", "high", "expected"), [
    (0.02, 0.08, "the gain +5.0 points [+2.0, +8.0] survives."),
    (0.0, 0.08, "the gain +5.0 points [+0.0, +8.0] is not shown to survive."),
    (-0.02, 0.08, "the gain +5.0 points [-2.0, +8.0] is not shown to survive."),
    (-0.02, 0.0, "the gain +5.0 points [-2.0, +0.0] is gone."),
])
def test_robustness_plus_says_whether_the_gain_survives_setting_b_plus(low: float, high: float,
                                                                       expected: str) -> None:
    plus = pd.DataFrame([{"view": "uint8", "clean": 0.9, "protected": 0.85, "gain": 0.05, "gain_low": low,
                          "gain_high": high}])
    first, line = beyond.describe_robustness_plus(plus, "mi-fgsm", 1.0).splitlines()
    assert first == "MI-FGSM at 1 grey level, against the stronger adversary of setting B+:"
    assert line == f"* uint8: setting B+ 90.0% clean, 85.0% protected; {expected}"


def _leakage(age_against_age: float) -> pd.DataFrame:
    """UTKFace-like leakage: clean, and MI-FGSM at 1 grey level against gender and against the age group."""
    chance = {"gender": 0.5, "age_group": 1 / 3}
    rows = [("none", "reference", 0.0, "gender", 0.90), ("none", "reference", 0.0, "age_group", 0.60),
            ("gender", "mi-fgsm", 1.0, "gender", 0.85), ("gender", "mi-fgsm", 1.0, "age_group", 0.61),
            ("age_group", "mi-fgsm", 1.0, "gender", 0.89), ("age_group", "mi-fgsm", 1.0, "age_group", age_against_age)]
    return pd.DataFrame([{"protected": p, "method": m, "grey_levels": g, "measured": a, "setting_b": b,
                          "chance": chance[a]} for p, m, g, a, b in rows])


@pytest.mark.parametrize(("age", "age_effect", "raised"), [
    (0.55, "MI-FGSM at 1 grey level: 55.0% (-5.0 points)", False),
    (0.604, "MI-FGSM at 1 grey level: 60.4% (+0.4 points)", False),
    (0.62, "MI-FGSM at 1 grey level: 62.0% (+2.0 points, **more** than clean)", True),
])
def test_attributes_say_where_a_protection_raises_the_leakage_it_targets(age: float, age_effect: str,
                                                                         raised: bool) -> None:
    lines = beyond.describe_attributes(_leakage(age)).splitlines()
    assert lines[0] == ("* **gender** (clean 90.0%, chance 50.0%), protected against itself: MI-FGSM at 1 grey level: "
                        "85.0% (-5.0 points).")
    assert lines[1] == f"* **age_group** (clean 60.0%, chance 33.3%), protected against itself: {age_effect}."
    text = "\n".join(lines)
    if raised:
        assert "In 1 of 2 cases the protection **raises** the leakage of the attribute it targets." in text
    else:
        assert "**raises**" not in text and "**more**" not in text
    assert lines[-1] == ("* **Collateral effect**, MI-FGSM at 1 grey level: protecting gender changes the age-group "
                         f"leakage by +1.0 points (60.0% → 61.0%); protecting the age group itself changes it by "
                         f"{100 * (age - 0.6):+.1f} points.")


# ---------------------------------------------------------------------------------- the chapter "Estimator training"


@pytest.mark.parametrize(("seen", "expected", "absent"), [
    (0, "the MLP is trained on 4,000 labelled images outside the sweep subset, so setting A on the subset's 1,000 "
        "images, and the white-box attacks of those images, meet a classifier that never saw them.", "cross-fitted"),
    (40, "the MLP is trained on 4,000 labelled images including 40 of the sweep subset's 1,000 (too few images are "
         "left outside it): setting A on the subset is then read with cross-fitted MLPs", "outside the sweep subset"),
])
def test_training_images_say_whether_setting_a_meets_unseen_images(seen: int, expected: str, absent: str) -> None:
    index = pd.MultiIndex.from_tuples([("lfw", "MLP (setting A, FGSM, MI-FGSM-MLP)"),
                                       ("lfw", "vCLUB estimators (MI-FGSM, MI-FGSM-MLP)")],
                                      names=["dataset", "trained"])
    table = pd.DataFrame({"images": [4000, 3000], "sweep images seen": [seen, 700], "sweep subset": [1000, 1000],
                          "labelled": [6000, 6000]}, index=index)
    text = estimators_study.describe_training_images(table)
    assert text.startswith("* **lfw**: ") and expected in text and absent not in text
    assert "The vCLUB estimators are trained on 3,000 images, 700 of them in the sweep subset" in text


def _history(val_loglik: np.ndarray, final_mi: float) -> dict[str, np.ndarray]:
    it = np.arange(0, 101, 10)
    return {"iteration": it, "train_loss": np.linspace(0.7, 0.05, it.size), "val_loglik": val_loglik,
            "val_mi": np.linspace(0.0, final_mi, it.size), "seconds": np.array(3.0)}


@pytest.mark.parametrize(("last", "expected"), [
    (-0.305, None),
    (-0.4, "It peaked at iteration 50 (-0.300) and then fell by 0.100: $q_\\theta$ over-fits its training split"),
])
def test_curves_report_a_late_fall_of_the_held_out_log_likelihood_beyond_0_01_nats(last: float,
                                                                                   expected: str | None) -> None:
    loglik = np.r_[np.linspace(-0.69, -0.3, 6), np.linspace(-0.301, last, 5)]
    runs = {("toy", "face"): _history(loglik, 2.0)}
    text = estimators_study.describe_curves(runs, estimators_study.training_table(runs, {"toy": np.log(2)}))
    assert f"the held-out log-likelihood went from -0.690 to {last:.3f} nats" in text
    if expected is None:
        assert "peaked" not in text
    else:
        assert expected in text


@pytest.mark.parametrize(("final_mi", "expected"), [
    (0.6, "The final vCLUB estimate is 0.600 nats, 0.9 times H(Y)."),
    (0.8, "The final vCLUB estimate is 0.800 nats, 1.2 times H(Y) and above log 2."),
])
def test_curves_say_whether_the_final_vclub_estimate_is_above_log_2(final_mi: float, expected: str) -> None:
    runs = {("toy", "face"): _history(np.linspace(-0.69, -0.1, 11), final_mi)}
    text = estimators_study.describe_curves(runs, estimators_study.training_table(runs, {"toy": np.log(2)}))
    assert text.endswith(expected)


@pytest.mark.parametrize(("estimates", "expected", "absent"), [
    ([2.0, 1.5, 0.5], ["2 of 3 final estimates exceed H(Y) (up to 3.0 times). For these, the number is a score",
                       "1 stay below H(Y)."], []),
    ([2.0, 1.0], ["2 of 2 final estimates exceed H(Y) (up to 3.0 times). For these"], ["stay below"]),
    ([0.5, 2 / 3], ["0 of 2 final estimates exceed H(Y). 2 stay below H(Y)."], ["(up to", "For these"]),
])
def test_entropy_bound_counts_the_estimates_above_h_y(estimates: list[float], expected: list[str],
                                                      absent: list[str]) -> None:
    entropy = 2 / 3
    summary = pd.DataFrame({"vclub_heldout": estimates, "H(Y)": entropy,
                            "vclub_over_H(Y)": [e / entropy for e in estimates]})
    text = estimators_study.describe_entropy_bound(summary)
    assert all(e in text for e in expected) and not [a for a in absent if a in text]
    assert text.endswith("whatever its scale.")


@pytest.mark.parametrize(("mismatch", "expected"), [
    (3e-6, "to 3.0e-06 nats: the estimators the attacks load are the ones trained above."),
    (1e-5, "to 1.0e-05 nats: the estimators the attacks load are the ones trained above."),
    (2e-5, "to 2.0e-05 nats: **they do not**."),
])
def test_checkpoints_reproduce_the_curves_within_the_tolerance(mismatch: float, expected: str) -> None:
    assert estimators_study.describe_checkpoints(mismatch, 1e-5).endswith(expected)


# ---------------------------------------------------------------------------------- the chapter "Evaluation settings"


@pytest.mark.parametrize(("settings_b", "expected"), [
    ([0.85, 0.92, 0.95], "setting B above clean at ε = 0.05, 0.1, and 95.0% at ε = 0.1"),
    ([0.85, 0.90, 0.88], "setting B above clean at ε = none, and 88.0% at ε = 0.1"),
])
def test_default_range_lists_the_eps_where_setting_b_is_above_clean(settings_b: list[float], expected: str) -> None:
    rows = pd.DataFrame({"method": "mi-fgsm", "eps": [0.01, 0.05, 0.1], "setting_a": [0.8, 0.75, 0.7],
                         "setting_b": settings_b})
    clean = pd.Series({"setting_a": 0.95, "setting_b": 0.90})
    text = settings_study.describe_default_range(rows, clean)
    assert text.startswith("Over the default range (clean: setting A 95.0%, setting B 90.0%):")
    assert f"* MI-FGSM: setting A 70.0% to 80.0%; {expected}" in text


@pytest.mark.parametrize(("on_paper", "count", "edge"), [
    ([0.002, 0.004], 1, True),
    ([0.004, 0.006], 0, False),
])
def test_eps_star_warns_where_it_sits_on_the_edge_of_the_papers_grid(on_paper: list[float], count: int,
                                                                     edge: bool) -> None:
    table = pd.DataFrame({"ε* on the paper's grid": on_paper, "ε* on both grids": [0.0015, 0.004],
                          "grey levels": [0.3825, 1.02], "setting B at ε*": [0.80, 0.85], "low": [0.78, 0.83],
                          "high": [0.82, 0.87]}, index=["mi-fgsm", "fgsm"])
    text = settings_study.describe_eps_star(table, 0.002, 0.9)
    assert f"it is the grid's first step (0.002) for {count} of 2 attacks." in text
    assert ("That is the edge of the grid" in text) is edge
    assert "MI-FGSM ε* = 0.0015 (0.38 grey levels), setting B 80.0% [78.0%, 82.0%]" in text


@pytest.mark.parametrize(("uint8", "expected"), [
    ({}, "No level of this grid is below half a grey level."),
    ({0.5 / 255: 0.9, 1 / 255: 0.88}, "No level of this grid is below half a grey level."),
    ({0.25 / 255: 0.9, 1 / 255: 0.88}, "In `uint8` mode, at the level below half a grey level, setting B equals the "
                                       "clean value exactly (90.0% vs 90.0%)."),
    ({0.1 / 255: 0.9, 0.25 / 255: 0.9}, "In `uint8` mode, at the 2 levels below half a grey level, setting B equals "
                                        "the clean value exactly (90.0%, 90.0% vs 90.0%)."),
    ({0.1 / 255: 0.9, 0.25 / 255: 0.899}, "In `uint8` mode, at the 2 levels below half a grey level, setting B "
                                          "differs from the clean value (90.0%, 89.9% vs 90.0%)."),
])
def test_storage_says_whether_setting_b_below_half_a_grey_level_equals_clean(uint8: dict[float, float],
                                                                            expected: str) -> None:
    rows = [{"mode": "float", "eps": e, "setting_b": 0.8} for e in (0.0, 0.1 / 255, 0.25 / 255)]
    rows += [{"mode": "uint8", "eps": 0.0, "setting_b": 0.9}]
    rows += [{"mode": "uint8", "eps": e, "setting_b": b} for e, b in uint8.items()]
    assert settings_study.describe_storage(pd.DataFrame(rows), 0.9) == expected


def test_mixing_gives_each_curves_lowest_point_with_its_interval_then_the_observations() -> None:
    mixing = pd.DataFrame([{"method": "mi-fgsm", "eps": 0.004, "clean_fraction": f, "setting_b": b,
                            "setting_b_low": b - 0.02, "setting_b_high": b + 0.03}
                           for f, b in [(0.0, 0.80), (0.5, 0.78), (1.0, 0.90)]])
    observations = pd.DataFrame([{"finding": "Fig. 5, LFW: x", "verdict": "undecided at this size", "slack": -0.02,
                                  "low": -0.05, "high": 0.01, "measured": "m", "paper": "p"}])
    text = settings_study.describe_mixing(mixing, 0.9, observations)
    assert text.startswith("Lowest setting B per curve: MI-FGSM at ε = 0.004: 78.0% [76.0%, 81.0%] with 50.0% clean "
                           "(all attacked: 80.0%). All clean: 90.0%.")
    assert "**Fig. 5, LFW: x**: *undecided at this size* (slack -0.02, 95 % interval [-0.05, +0.01])" in text


# ---------------------------------------------------------------------------------------- the chapter "Templates"


@pytest.mark.parametrize(("identities", "expected"), [
    (True, "* toy has 3 people: 67% have a single image, and the most photographed are George W Bush (2), Ann (1), "
           "Bob (1)."),
    (False, None),
])
def test_datasets_describe_the_people_only_of_a_dataset_with_identities(identities: bool,
                                                                       expected: str | None) -> None:
    names = ["George_W_Bush", "Ann", "Bob"] if identities else []
    primary = FaceDataset(name="toy", root=".", paths=list("abcd"), image_ids=list("abcd"),
                          identity=[0, 0, 1, 2] if identities else [0, 1, 2, 3], identity_names=names,
                          gender=[0, 0, 1, -1])
    summary = pd.DataFrame({"images": [4], "female_share": [1 / 3], "unknown_gender": [1]}, index=["toy"])
    lines = templates_study.describe_datasets(summary, primary).splitlines()
    assert lines[0] == "* **toy**: 4 images, 33.3% of the labelled ones women; 1 without a gender label."
    assert lines[1:] == ([] if expected is None else [expected + " Images of one person share more than gender, "
                                                      "which is why setting B below keeps each person's images in "
                                                      "one fold."])


@pytest.mark.parametrize(("worst", "expected"), [
    (3e-5, "is 3.0e-05, within the tolerance of 1e-04"),
    (1e-4, "is 1.0e-04, within the tolerance of 1e-04"),
    (2e-4, "is 2.0e-04, **outside** the tolerance of 1e-04"),
])
def test_port_is_within_the_tolerance_of_dlib(worst: float, expected: str) -> None:
    check = pd.DataFrame({"max_abs_diff": [worst / 2, worst], "dlib_norm": [0.6, 0.62]})
    text = templates_study.describe_port(check, 1e-4, 128)
    assert text.startswith(f"The largest absolute difference over 2 chips x 128 dimensions {expected}, on templates "
                           "of norm about 0.61.")


@pytest.mark.parametrize(("model", "accuracy", "expected"), [
    ("iresnet50", 0.9838, None),
    ("dlib", 0.9838, " That is 1.00 points below dlib's published 99.38%"),
    ("dlib", 0.995, " That is 0.12 points above dlib's published 99.38%"),
])
def test_verification_compares_dlib_with_its_published_accuracy(model: str, accuracy: float,
                                                                expected: str | None) -> None:
    report = verification.VerificationReport(accuracy_mean=accuracy, accuracy_std=0.005, accuracy_per_fold=(),
                                             eer=0.01, tar_at_far=0.95, far_level=0.001, n_pairs=6000,
                                             n_genuine=3000, n_impostor=3000)
    text = templates_study.describe_verification(report, {"eer": Interval(0.01, 0.008, 0.012)}, 7, model)
    assert text.startswith(f"On 6,000 pairs (3,000 mated) the clean templates reach a 10-fold accuracy of "
                           f"**{accuracy:.2%}** ± 0.50%, an EER of **1.00%** (95 % interval 0.80% to 1.20%)")
    if expected is None:
        assert "dlib" not in text
    else:
        assert expected in text and "and 7 chips come from the fallback box." in text


def _leakage_table(logreg: float, rbf: float, grouped: float, stratified: float | None) -> pd.DataFrame:
    rows = [("lfw", "grouped by identity", grouped)]
    if stratified is not None:
        rows.append(("lfw", "stratified, as in the paper", stratified))
    index = pd.MultiIndex.from_tuples([r[:2] for r in rows], names=["dataset", "folds"])
    return pd.DataFrame({"logreg": logreg, "linear_svm": logreg, "rbf_svm": rbf, "mean": [r[2] for r in rows],
                         "low": [r[2] - 0.01 for r in rows], "high": [r[2] + 0.01 for r in rows], "images": 6000},
                        index=index)


@pytest.mark.parametrize(("rbf", "expected"), [
    (0.91, "+1.00 points against logistic regression: the gender information is largely linear in the template."),
    (0.93, "+3.00 points against logistic regression: the gender information is partly non-linear in the template."),
])
def test_leakage_says_whether_the_gender_information_is_linear(rbf: float, expected: str) -> None:
    text = templates_study.describe_leakage(_leakage_table(0.90, rbf, 0.90, None), "lfw")
    assert "The RBF SVM scores " + expected in text


@pytest.mark.parametrize(("stratified", "expected"), [
    (None, None),
    (0.93, "The paper's stratified folds give 93.0%, +3.00 points: seeing a person's other images in training "
           "inflates the score."),
    (0.89, "The paper's stratified folds give 89.0%, -1.00 points: grouping by identity does not lower the score "
           "here."),
])
def test_leakage_says_what_grouping_the_folds_by_identity_changes(stratified: float | None,
                                                                  expected: str | None) -> None:
    text = templates_study.describe_leakage(_leakage_table(0.90, 0.91, 0.90, stratified), "lfw")
    assert "setting B on clean templates is **90.0%** (95 % interval 89.0% to 91.0%; folds grouped by identity)" in text
    if expected is None:
        assert "stratified folds" not in text
    else:
        assert expected in text


@pytest.mark.parametrize(("dataset", "ours", "expected"), [
    ("lfw", 0.90, "* The paper's IResNet50-ArcFace templates of LFW leak 85.0%; ours leak more, 90.0%."),
    ("lfw", 0.80, "* The paper's IResNet50-ArcFace templates of LFW leak 85.0%; ours leak less, 80.0%."),
    ("utkface", 0.90, None),
])
def test_leakage_compares_lfw_with_the_papers_figure(dataset: str, ours: float, expected: str | None) -> None:
    lines = templates_study.describe_leakage(_leakage_table(0.90, 0.91, ours, None), dataset).splitlines()
    if expected is None:
        assert len(lines) == 1 and "paper's IResNet50" not in lines[0]
    else:
        assert lines[-1] == expected


# ---------------------------------------------------------------------------------------- the chapter "Trade-off"


@pytest.mark.parametrize(("settings_b", "expected"), [
    ([0.85, 0.80, 0.95], "it is above the clean value from ε = 0.1: the retrained classifiers learn the perturbation "
                         "itself."),
    ([0.85, 0.80, 0.90], "it stays below the clean value over the whole grid."),
])
def test_attack_range_says_where_mi_fgsm_rises_above_clean(settings_b: list[float], expected: str) -> None:
    frontier = pd.DataFrame({"method": ["reference", "mi-fgsm", "mi-fgsm", "mi-fgsm"],
                             "value": [0.0, 0.001, 0.01, 0.1], "setting_b": [0.90, *settings_b]})
    assert tradeoff.describe_attack_range(frontier) == ("MI-FGSM's setting B goes from 90.00% on clean templates to "
                                                        f"its lowest, 80.00%, at ε = 0.01; {expected}")


@pytest.mark.parametrize(("floor", "expected"), [
    (0.80, "Setting B on the 5 locked components alone is 80.00%: this is the lowest Multi-IVE can reach, however "
           "many steps it runs. That is above MI-FGSM's 75.00% at ε*, so Multi-IVE **cannot match MI-FGSM's "
           "privacy here**"),
    (0.75 + MATCH_TOLERANCE, "MI-FGSM's 75.00% at ε* is within Multi-IVE's reach."),
    (0.70, "alone is 70.00%: this is the lowest Multi-IVE can reach, however many steps it runs. MI-FGSM's 75.00% "
           "at ε* is within Multi-IVE's reach."),
])
def test_locked_says_whether_multi_ive_can_reach_mi_fgsms_privacy(floor: float, expected: str) -> None:
    table = pd.DataFrame({"setting_b": [0.75, 0.80, 0.78]}, index=["MI-FGSM", "IVE", "Multi-IVE"])
    result = cast(tradeoff.TradeOff, SimpleNamespace(train_dataset="utkface", n_locked=5))
    text = tradeoff.describe_locked(100, 128, floor, table, result)
    assert text.startswith("The `utkface` templates span 100 of their 128 dimensions")
    assert expected in text


@pytest.mark.parametrize(("mi_fgsm", "best"), [(0.30, True), (0.25, False), (0.20, False)])
def test_pic_says_whether_mi_fgsm_has_the_best_trade_off(mi_fgsm: float, best: bool) -> None:
    table = pd.DataFrame({"pic": [mi_fgsm, 0.25, 0.10]}, index=["MI-FGSM", "IVE", "Multi-IVE"])
    text = tradeoff.describe_pic(table)
    assert text.startswith(f"PIC puts privacy and verification in one number: {mi_fgsm:.3f} for MI-FGSM, 0.250 for "
                           "IVE and 0.100 for Multi-IVE.")
    assert text.endswith("MI-FGSM has the best trade-off by PIC." if best
                         else "By PIC, MI-FGSM does not have the best trade-off.")


@pytest.mark.parametrize(("ive", "multi", "expected"), [
    ((0.01, 0.05), (0.02, 0.2), "MI-FGSM has the best trade-off by PIC."),
    ((-0.01, 0.05), (0.02, 0.2), "Whether MI-FGSM has the best trade-off by PIC is undecided at this size."),
    ((-0.01, 0.05), (-0.2, -0.02), "By PIC, MI-FGSM does not have the best trade-off."),
])
def test_pic_is_decided_from_the_paired_intervals(ive: tuple[float, float], multi: tuple[float, float],
                                                  expected: str) -> None:
    table = pd.DataFrame({"pic": [0.30, 0.25, 0.10]}, index=["MI-FGSM", "IVE", "Multi-IVE"])
    differences = {"PIC MI-FGSM - IVE": Interval(0.05, *ive), "PIC MI-FGSM - Multi-IVE": Interval(0.2, *multi),
                   "EER IVE - MI-FGSM": Interval(0.0, -1.0, 1.0)}
    text = tradeoff.describe_pic(table, differences)
    assert expected in text
    assert text.endswith(f"Paired 95 % intervals: PIC MI-FGSM - IVE +0.050 [{ive[0]:+.3f}, {ive[1]:+.3f}]; "
                         f"PIC MI-FGSM - Multi-IVE +0.200 [{multi[0]:+.3f}, {multi[1]:+.3f}].")

def test_findings_escape_the_asterisk_of_eps_star_so_markdown_keeps_the_emphasis() -> None:
    findings = pd.DataFrame([{"finding": "4. ε* ≤ 0.03", "verdict": "does not hold", "slack": -0.27, "low": -0.3,
                              "high": -0.2, "measured": "ε* over every ε: mi-fgsm 0.3", "paper": "ε* up to 0.03"}])
    text = settings_study.describe_findings(findings)
    assert text == ("**4. ε\\* ≤ 0.03**: *does not hold* (slack -0.27, 95 % interval [-0.3, -0.2]). Measured: ε\\* "
                    "over every ε: mi-fgsm 0.3. Paper: ε\\* up to 0.03.")
    import markdown_it

    html = markdown_it.MarkdownIt().render(text)
    assert "<strong>4. ε* ≤ 0.03</strong>: <em>does not hold</em>" in html
