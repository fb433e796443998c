"""What the figures draw from the measured frames: intervals as bands and bars, the paper's plain accuracy."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.container import ErrorbarContainer  # noqa: E402

from mifgsm_lib.figures import evaluation as evaluation_figures  # noqa: E402
from mifgsm_lib.figures.evaluation import error_bars  # noqa: E402


def test_error_bars_span_each_points_interval_in_percent() -> None:
    rows = pd.DataFrame({"setting_b": [0.8, 0.7], "setting_b_low": [0.78, 0.65], "setting_b_high": [0.83, 0.72],
                         "eer": [0.02, 0.03], "eer_low": [0.01, np.nan], "eer_high": [0.025, np.nan]})
    fig, ax = plt.subplots()
    error_bars(ax, rows, "setting_b", "eer", "red")
    (bars,) = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    horizontal, vertical = bars.lines[2]
    np.testing.assert_allclose(horizontal.get_segments()[0], [[78, 2], [83, 2]])
    np.testing.assert_allclose(vertical.get_segments()[0], [[80, 1], [80, 2.5]])
    np.testing.assert_allclose(vertical.get_segments()[1], [[70, 3], [70, 3]])  # no interval: no bar
    fig, ax = plt.subplots()
    error_bars(ax, rows[["setting_b", "eer"]], "setting_b", "eer", "red")  # no intervals at all: nothing drawn
    assert not ax.containers
    plt.close("all")


def test_settings_figure_draws_the_plain_accuracy_dashed_beside_the_balanced() -> None:
    sweep = pd.DataFrame({"method": ["mi-fgsm"] * 3, "eps": [0.0, 0.01, 0.02], "setting_a": [0.9, 0.8, 0.7],
                          "setting_b": [0.9, 0.85, 0.8], "setting_b_plain": [0.91, 0.86, 0.82]})
    fig = evaluation_figures.plot_settings(sweep)
    dashed = [line for line in fig.axes[1].get_lines() if line.get_linestyle() == "--"]
    np.testing.assert_allclose(dashed[0].get_ydata(), [0.86, 0.82])
    assert "plain accuracy (the paper's kind)" in [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert not [line for line in fig.axes[0].get_lines() if line.get_linestyle() == "--"]  # setting A: none
    plt.close("all")
