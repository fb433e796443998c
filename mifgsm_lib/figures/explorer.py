"""The ε explorer of the chapter "Attacks": one face, an attack, a storage mode and ε chosen by the reader.

Each view shows the attacked face, its perturbation amplified (−ε black, +ε white), how far its template moved
against the clean mated and non-mated pair distances, and settings A and B at that ε from the measured sweep
(:class:`mifgsm_lib.studies.attacks.Explorer`). In a live kernel :func:`widget` draws the view chosen with
ipywidgets; in the rendered book, without a kernel, :func:`animation_html` holds one precomputed frame per ε (all
attacks side by side, in the sweep's storage mode) behind a JavaScript slider.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from mifgsm_lib.figures.attacks import amplified
from mifgsm_lib.methods import label, style_of
from mifgsm_lib.progress import live
from mifgsm_lib.studies.attacks import Explorer


def _numbers(ax: plt.Axes, data: Explorer, method: str, eps: float, mode: str) -> None:
    """The template shift as a bar against the clean pair distances, and settings A and B as text."""
    values = data.at(method, eps, mode)
    top = 1.15 * max(data.distances.get("non_mated", 0.0), data.shift["shift"].max())
    ax.barh([0], [values["shift"]], color=style_of(method)[0], height=0.5)
    for name, style in (("mated", ":"), ("non_mated", "--")):
        if name not in data.distances:  # a dataset without pairs
            continue
        ax.axvline(data.distances[name], color="grey", ls=style)
        ax.text(data.distances[name], 0.42, name.replace("_", "-"), fontsize=7, ha="center", color="grey")
    ax.set(xlim=(0, top), ylim=(-0.5, 0.6), yticks=[], xlabel="‖f(x*) − f(x)‖ of this face")
    if np.isnan(values["setting_b"]):
        text = f"settings A, B: measured in {data.measured_mode} storage"
    else:
        text = (f"setting A {values['setting_a']:.1%} [{values['setting_a_low']:.1%}, {values['setting_a_high']:.1%}]\n"
                f"setting B {values['setting_b']:.1%} [{values['setting_b_low']:.1%}, {values['setting_b_high']:.1%}]")
    ax.set_title(text, fontsize=8)


def draw(data: Explorer, method: str, eps: float, mode: str) -> Figure:
    """One view: the attacked face, the amplified perturbation, and the numbers at that setting."""
    fig, (face, perturbation, numbers) = plt.subplots(1, 3, figsize=(10, 3.2),
                                                      gridspec_kw={"width_ratios": [1, 1, 1.6]})
    attacked = data.attacked(method, eps, mode)
    face.imshow(attacked)
    face.set_title(f"{label(method)}, ε = {eps:g} ({255 * eps:.2g} grey levels), {mode}", fontsize=8)
    perturbation.imshow(amplified(data.clean, attacked, eps))
    perturbation.set_title("x* − x (−ε black, +ε white)", fontsize=8)
    for ax in (face, perturbation):
        ax.set_xticks([])
        ax.set_yticks([])
    _numbers(numbers, data, method, eps, mode)
    fig.tight_layout()
    return fig


def frame(fig: Figure, data: Explorer, eps: float) -> None:
    """Redraw ``fig`` as the static frame of ``eps``: every attack (rows) in the sweep's storage mode."""
    fig.clear()
    methods = list(data.directions)
    axes = fig.subplots(len(methods), 3, gridspec_kw={"width_ratios": [1, 1, 2.2]}, squeeze=False)
    for row, method in zip(axes, methods):
        attacked = data.attacked(method, eps, data.measured_mode)
        row[0].imshow(attacked)
        row[1].imshow(amplified(data.clean, attacked, eps))
        row[0].set_ylabel(label(method), fontsize=8)
        for ax in row[:2]:
            ax.set_xticks([])
            ax.set_yticks([])
        _numbers(row[2], data, method, eps, data.measured_mode)
    fig.suptitle(f"ε = {eps:g} ({255 * eps:.2g} grey levels), {data.measured_mode} storage; middle column: x* − x "
                 "amplified", fontsize=9)
    fig.tight_layout()


def animation_html(data: Explorer, eps_list: Sequence[float] | None = None) -> str:
    """The static explorer: one frame per ε (:func:`frame`) behind matplotlib's JavaScript slider, as HTML that
    works without a kernel (frames embedded as JPEG)."""
    from matplotlib import animation

    frames = list(data.eps if eps_list is None else eps_list)
    fig = plt.figure(figsize=(8.5, 2.3 * len(data.directions)))
    with plt.rc_context({"animation.frame_format": "jpeg", "animation.embed_limit": 50.0}):
        movie = animation.FuncAnimation(fig, lambda k: frame(fig, data, frames[k]), frames=len(frames))
        html = movie.to_jshtml(fps=2, default_mode="once")
    plt.close(fig)
    return html


def widget(data: Explorer) -> Any:
    """The live explorer: a slider over ε and a choice of attack and storage mode (ipywidgets), redrawing
    :func:`draw`. None in a chapter executed by ``mifgsm book`` (:func:`mifgsm_lib.progress.live`): nobody can
    move its controls there, and the widget messages of a cell can stall the notebook client's wait for that
    cell's reply (seen with papermill: the chapter never finishes)."""
    if not live():
        return None
    import ipywidgets as widgets
    from IPython.display import display

    out = widgets.Output()
    method = widgets.Dropdown(options=[(label(m), m) for m in data.directions], description="attack")
    mode = widgets.ToggleButtons(options=["float", "uint8"], value=data.measured_mode, description="storage")
    eps = widgets.SelectionSlider(options=[(f"{e:g}", e) for e in data.eps], description="ε")

    def update(_: Any = None) -> None:
        with out:
            out.clear_output(wait=True)
            fig = draw(data, method.value, eps.value, mode.value)
            display(fig)
            plt.close(fig)

    for control in (method, mode, eps):
        control.observe(update, names="value")
    update()
    return widgets.VBox([widgets.HBox([method, mode]), eps, out])


def frame_count(html: str) -> int:
    """The number of frames embedded in :func:`animation_html`'s HTML."""
    import re

    return len(re.findall(r"frames\[\d+\] = \"data:image/", html))
