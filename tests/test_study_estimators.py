"""The chapter "Estimator training": entropy reference, tables and learning-curve figure on synthetic curves."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

from mifgsm_lib.figures import estimators as figures
from mifgsm_lib.studies import estimators as study


def _history(final_loglik: float = -0.1, final_mi: float = 2.0) -> dict[str, np.ndarray]:
    it = np.arange(0, 101, 10)
    return {"iteration": it, "train_loss": np.linspace(0.7, 0.05, it.size),
            "val_loglik": np.linspace(-0.69, final_loglik, it.size), "val_mi": np.linspace(0.0, final_mi, it.size),
            "seconds": np.array(3.0)}


def test_label_entropy() -> None:
    assert study.label_entropy(np.array([0, 1, 0, 1])) == pytest.approx(np.log(2))
    assert study.label_entropy(np.array([1, 1, 1])) == 0.0
    p = 0.25
    assert study.label_entropy(np.array([0, 0, 0, 1])) == pytest.approx(-(p * np.log(p) + (1 - p) * np.log(1 - p)))
    with pytest.raises(ValueError, match="labels >= 0"):
        study.label_entropy(np.array([0, -1]))


def test_training_table_references() -> None:
    runs = {("toy", "face"): _history(-0.1, 2.0), ("toy", "mlp"): _history(-0.2, 0.3)}
    table = study.training_table(runs, {"toy": np.log(2)})
    row = table.loc[("toy", "face")]
    assert row["ba_lower_bound"] == pytest.approx(np.log(2) - 0.1)
    assert row["prior_loglik"] == pytest.approx(-np.log(2))
    assert row["vclub_over_H(Y)"] == pytest.approx(2.0 / np.log(2))
    assert row["ms_per_iteration"] == pytest.approx(30.0)
    with pytest.raises(ValueError, match="history lacks"):
        study.training_table({("toy", "face"): {"iteration": np.arange(3)}}, {"toy": 0.5})


def test_an_estimator_that_over_fits_below_the_prior_is_reported_with_its_peak() -> None:
    good, over = _history(-0.1, 2.0), _history(-0.69, 3.0)
    over["val_loglik"] = np.r_[np.linspace(-0.69, -0.3, 6), np.linspace(-0.4, -0.9, 5)]
    runs = {("toy", "face"): good, ("toy", "mlp"): over}
    table = study.training_table(runs, {"toy": np.log(2)})
    assert table.loc[("toy", "mlp"), "peak_heldout_loglik"] == pytest.approx(-0.3)
    assert table.loc[("toy", "mlp"), "peak_iteration"] == 50
    face, mlp = study.describe_curves(runs, table).splitlines()
    assert "carry at least 86% of the label's entropy" in face and "worse than the prior" not in face
    assert "**worse than the prior guess**" in mlp and "at least" not in mlp
    assert f"{np.log(2) - 0.3:.3f} ≤ I" in mlp and "peaked at iteration 50 (-0.300)" in mlp


def test_plot_learning_curves_one_column_per_dataset() -> None:
    runs = {("a", "face"): _history(), ("b", "face"): _history(), ("b", "mlp"): _history()}
    fig = figures.plot_learning_curves(runs, {"a": 0.6, "b": 0.69}, checkpoints=[50, 100])
    assert len(fig.axes) == 6
    with pytest.raises(ValueError, match="at least one"):
        figures.plot_learning_curves({}, {})


def test_mlp_table_gap() -> None:
    table = study.mlp_table({"toy": {"train_accuracy": 0.9, "val_accuracy": 0.85}})
    assert table.loc["toy", "gap"] == pytest.approx(0.05)
