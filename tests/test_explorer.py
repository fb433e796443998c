"""The ε explorer of the chapter "Attacks": its numbers come from the measured sweep, its live widget redraws on
every control, and its static HTML holds one frame per ε."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mifgsm_lib.figures import explorer as figures
from mifgsm_lib.progress import TEXT_ENV
from mifgsm_lib.studies.attacks import Explorer

EPS = (0.002, 0.01, 0.05)


@pytest.fixture(scope="module")
def data() -> Explorer:
    rng = np.random.default_rng(0)
    clean = rng.integers(0, 256, size=(24, 24, 3)).astype(np.float64) / 255.0
    directions = {m: rng.choice([-1, 1], size=(3, 24, 24)).astype(np.int8) for m in ("mi-fgsm", "random")}
    shift = pd.DataFrame([{"method": m, "mode": mode, "eps": e, "shift": 10 * e + (mode == "uint8")}
                          for m in directions for mode in ("float", "uint8") for e in EPS])
    settings = pd.DataFrame([{"method": m, "eps": e, "setting_a": 0.9 - e, "setting_a_low": 0.8, "setting_a_high": 1.0,
                              "setting_b": 0.8 + e, "setting_b_low": 0.7, "setting_b_high": 0.9}
                             for m in directions for e in EPS])
    return Explorer(clean, directions, EPS, shift, {"mated": 0.4, "non_mated": 0.8}, settings, "float")


def test_the_numbers_of_a_setting_come_from_the_sweep(data: Explorer) -> None:
    at = data.at("mi-fgsm", 0.01, "float")
    assert at["shift"] == pytest.approx(0.1) and at["setting_b"] == pytest.approx(0.81)
    other = data.at("mi-fgsm", 0.01, "uint8")  # the sweep was measured in float storage
    assert other["shift"] == pytest.approx(1.1) and np.isnan(other["setting_b"])
    with pytest.raises(ValueError, match=r"not among the explorer's settings"):
        data.at("fgsm", 0.01, "float")


def test_the_attacked_face_moves_every_pixel_by_eps(data: Explorer) -> None:
    face = data.attacked("mi-fgsm", 0.05, "float")
    moved = np.abs(face - data.clean)
    assert moved.max() == pytest.approx(0.05, abs=1e-6)
    assert np.allclose(moved[(data.clean > 0.05) & (data.clean < 0.95)], 0.05, atol=1e-6)


def test_the_widget_redraws_on_every_control(data: Explorer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TEXT_ENV, raising=False)
    drawn = []
    draw = figures.draw
    monkeypatch.setattr(figures, "draw", lambda d, m, e, mode: drawn.append((m, e, mode)) or draw(d, m, e, mode))
    box = figures.widget(data)
    controls, slider, _ = box.children
    method, mode = controls.children
    assert [o[1] for o in slider.options] == list(EPS) and mode.value == "float"
    slider.value = 0.05
    method.value = "random"
    mode.value = "uint8"
    assert drawn == [("mi-fgsm", 0.002, "float"), ("mi-fgsm", 0.05, "float"), ("random", 0.05, "float"),
                     ("random", 0.05, "uint8")]


def test_no_widget_in_a_chapter_run_by_mifgsm_book(data: Explorer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TEXT_ENV, "1")  # as mifgsm_lib.book.run_chapters sets it for the kernels it starts
    monkeypatch.setattr(figures, "draw", lambda *args: pytest.fail("drawn for nobody to see"))
    assert figures.widget(data) is None


def test_the_static_explorer_holds_one_frame_per_eps(data: Explorer) -> None:
    html = figures.animation_html(data)
    assert figures.frame_count(html) == len(EPS)
    assert "data:image/jpeg;base64" in html and "<script" in html
