"""What a chapter calls on its page: the setup (configuration, device, data), the run-time line, figures with
numbered captions, formatted tables and the closing table of what produced the page (the in-chapter checks are in
:mod:`mifgsm_lib.checks`).

Each is one call in a chapter, so that the chapter shows narrative, a few library calls, a figure and a table,
and no plumbing.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from mifgsm_lib import paper
from mifgsm_lib.book import versions
from mifgsm_lib.config import RunConfig


def start(chapter: str, datasets: Iterable[str | None] = (), **parameters: Any) -> RunConfig:
    """A chapter's configuration from its parameters (:class:`~mifgsm_lib.config.RunConfig`; bad values are refused
    here, before any work), with the ``datasets`` it reads present: each is fetched (:func:`mifgsm_lib.data.fetch`:
    from ``$MIFGSM_MIRROR`` or by download, with retries and pinned-hash checks) unless it is already in the data
    folder, or is a folder of the user's (``folder``). Prints the chapter, the device picked and, on Colab, where
    results are cached."""
    from mifgsm_lib import data

    cfg = RunConfig(**parameters)
    for name in dict.fromkeys(n for n in datasets if n):
        if name != "folder" and not (cfg.data_path / name).is_dir():
            data.fetch(name, cfg.data_path)
    print(f"{chapter}: profile {cfg.profile!r}; device: {describe_device(cfg)}")
    if "google.colab" in sys.modules and not cfg.artifacts_dir:
        print(f"results are cached in {cfg.artifacts_path}, which a Colab runtime loses; mount Google Drive and set "
              "artifacts_dir to a folder there to keep them between sessions")
    return cfg


def describe_device(cfg: RunConfig) -> str:
    """Which device the run uses and why (``auto`` picks CUDA, then MPS, then the CPU)."""
    import torch

    device = cfg.torch_device
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        return f"{device} ({name})" + (", picked by device='auto'" if cfg.device == "auto" else "")
    why = " (device='auto': no CUDA or MPS device found)" if cfg.device == "auto" else ""
    return f"{device}{why}, {torch.get_num_threads()} CPU threads"


def figure(name: str, fig: Any) -> None:
    """Glue a matplotlib figure under ``name`` for a numbered, captioned ``{glue:figure}`` in the chapter's text,
    and close it (so that it is not also shown where it was drawn)."""
    import matplotlib.pyplot as plt
    from myst_nb import glue

    glue(name, fig, display=False)
    plt.close(fig)


def placeholder(reason: str) -> Any:
    """A small figure that says why a figure of the chapter was not drawn (its caption stays in the text)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 1.2))
    ax.text(0.5, 0.5, f"Not drawn: {reason}.", ha="center", va="center", fontsize=11)
    ax.set_axis_off()
    return fig


def skip(reason: str, figures: Iterable[str] = ()) -> None:
    """Say why a section is skipped, and glue a :func:`placeholder` under each of its figures' names (so that the
    page still builds, and says where each figure would be)."""
    from IPython.display import Markdown, display

    display(Markdown(f"**Skipped:** {reason}."))
    for name in figures:
        figure(name, placeholder(reason))


def table(frame: pd.DataFrame, caption: str, percent: Iterable[str] = (), digits: int = 3,
          formats: Mapping[str, str] | None = None, index: bool = True) -> Any:
    """A DataFrame as a table a reader compares: ``caption`` above it, the columns of ``percent`` (fractions) in
    percent with one decimal, other numbers with ``digits`` significant digits, a ``method`` column or index level
    by the methods' labels (:func:`mifgsm_lib.methods.label`), ``formats`` for the rest."""
    shown = dict(formats or {})
    numeric = frame.select_dtypes("number").columns
    for column in numeric:
        key = column
        if column in percent or (isinstance(column, tuple) and any(c in percent for c in column)):
            shown.setdefault(key, "{:.1%}")
        else:
            shown.setdefault(key, f"{{:.{digits}g}}")
    from mifgsm_lib.methods import label

    if "method" in frame.columns:
        shown.setdefault("method", label)
    levels = list(frame.index.names)
    frame = frame.rename_axis(index=[_header(n) if n is not None else None for n in levels])
    styler = frame.style.format(shown, na_rep="").set_caption(caption)
    styler = styler.format_index(_header, axis=1).format_index(_index_value, axis=0)
    if "method" in levels:
        styler = styler.format_index(label, axis=0, level=levels.index("method"))
    styler = styler.set_table_styles([{"selector": "caption", "props": "caption-side: top; font-weight: bold;"}],
                                     overwrite=False)
    return styler if index else styler.hide(axis="index")


#: Words of column names that the book writes in capitals (the paper's names).
CAPITALS = {"eer": "EER", "pic": "PIC", "tar": "TAR", "far": "FAR", "psnr": "PSNR", "ssim": "SSIM", "mlp": "MLP",
            "vclub": "vCLUB", "ive": "IVE", "nll": "NLL"}


def _header(name: Any) -> str:
    """A column name as a table header that can wrap, in the paper's words: ``setting_b_low`` is shown as
    ``setting B low``, ``gain_b_plus`` as ``gain B+``, ``tar_at_far`` as ``TAR at FAR``."""
    words = str(name).replace("_", " ").split(" ")
    shown = [CAPITALS.get(w, w) for w in words]
    for k in range(1, len(shown)):
        if shown[k - 1] in ("setting", "gain") and shown[k] in ("a", "b"):
            shown[k] = shown[k].upper()
    text = " ".join(shown)
    return text.replace("B plus", "B+")


def _index_value(value: Any) -> str:
    """A row label: a float in its shortest form (``1`` and ``0.5``, not ``1.000000``)."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def run_table(parameters: Mapping[str, Any]) -> str:
    """A Markdown table of a run's parameters and package versions, shown at the end of every chapter."""
    rows = [("parameter", k, v) for k, v in parameters.items()] + [("version", k, v) for k, v in versions().items()]
    lines = ["| kind | name | value |", "|---|---|---|"] + [f"| {a} | `{b}` | `{c}` |" for a, b, c in rows]
    return "\n".join(lines)


#: Minutes each chapter took from an empty cache on the project's 2-core CPU machine (no GPU), measured with
#: ``benchmarks/bench_book.py --profile P`` (quick: 2026-12-02, on a clean clone in CI; default: 2026-12-01, before
#: the held-out setting A, the intervals and setting B+ were added); the ``paper`` profile is meant for a GPU and
#: was not measured there.
RUN_MINUTES: dict[str, dict[str, float]] = {
    "book/intro": {"quick": 0.2, "default": 0.1},
    "book/club_theory": {"quick": 0.3, "default": 0.8},
    "book/templates": {"quick": 4.4, "default": 7.0},
    "book/estimator_training": {"quick": 0.9, "default": 5.6},
    "book/attacks": {"quick": 2.4, "default": 13.0},
    "book/evaluation_settings": {"quick": 2.1, "default": 10.3},
    "book/tradeoff": {"quick": 0.5, "default": 1.3},
    "book/beyond": {"quick": 4.7, "default": 8.2},
}


def run_time(chapter: str, profile: str) -> str:
    """One sentence on how long ``chapter`` takes to run, from :data:`RUN_MINUTES`, for the top of each chapter."""
    if chapter not in RUN_MINUTES:
        raise ValueError(f"chapter={chapter!r}: expected one of {sorted(RUN_MINUTES)}")
    times = RUN_MINUTES[chapter]
    measured = ", ".join(f"{minutes:.1f} min with the `{p}` profile" for p, minutes in times.items())
    return (f"**Run time** from an empty cache on a 2-core CPU: {measured} (this run: `{profile}`). Every result "
            "is cached, so a second run only loads it.")


def header(chapter: str, cfg: RunConfig) -> None:
    """The line at the top of a chapter: how long it takes per profile (:func:`run_time`), and the profile and
    device of this run. Glues the paper's numbers (:func:`mifgsm_lib.paper.quotes`) as ``paper_<name>`` for the
    chapter's prose."""
    from IPython.display import Markdown, display
    from myst_nb import glue

    display(Markdown(f"{run_time(chapter, cfg.profile)} This run: the `{cfg.profile}` profile on "
                     f"{describe_device(cfg)}."))
    for name, text in paper.quotes().items():
        glue(f"paper_{name}", text, display=False)


#: Where a chapter appends the face-model passes its kernel ran (``benchmarks/bench_book.py`` sets it).
LEDGER_ENV = "MIFGSM_LEDGER"


def show_run(cfg: RunConfig) -> None:
    """Display :func:`run_table` of ``cfg``'s parameters (its profile named, its sizes left to the profile's table)
    in a notebook, so the rendered book says what produced its numbers.

    Where ``$MIFGSM_LEDGER`` names a file, one JSON line of the passes this kernel ran
    (:data:`mifgsm_lib.faces.models.PASSES`) is appended to it.
    """
    from IPython.display import Markdown, display

    from mifgsm_lib.faces.models import PASSES

    ledger = os.environ.get(LEDGER_ENV)
    if ledger:
        with open(ledger, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(PASSES) + "\n")
    parameters = {k: v for k, v in cfg.as_dict().items() if k != "sizes"}
    display(Markdown("**This page was produced by:**\n\n" + run_table(parameters)))
