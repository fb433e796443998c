"""Run the book: every chapter through papermill with one set of parameters, then ``jupyter-book build``.

The executed notebooks are staged in ``<out>/_build/executed`` beside copies of ``_config.yml`` and ``_toc.yml``,
so the sources in ``book/`` stay free of outputs, and the HTML goes to ``<out>/_build/html``.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from mifgsm_lib.progress import TEXT_ENV, bar

#: The parameters every chapter's ``parameters`` cell defines.
CHAPTER_PARAMETERS = ("dataset", "data_dir", "model", "device", "seed", "profile", "artifacts_dir")

_VERSIONED = ("mifgsm", "torch", "numpy", "scikit-learn", "dlib-bin", "papermill", "jupyter-book")


def repo_root() -> Path:
    """The project root (the folder holding ``_toc.yml``)."""
    here = Path(__file__).resolve().parent.parent
    if not (here / "_toc.yml").is_file():
        raise FileNotFoundError(f"{here / '_toc.yml'}: not found; run `mifgsm book` from a clone of the repository")
    return here


def toc_chapters(root: Path) -> list[str]:
    """The chapters in ``_toc.yml`` order, as paths relative to ``root`` without suffix."""
    toc_path = root / "_toc.yml"
    toc = yaml.safe_load(toc_path.read_text())
    if not isinstance(toc, dict) or "root" not in toc:
        raise ValueError(f"{toc_path}: expected a jb-book table of contents with a 'root' entry")
    files = [toc["root"]]
    for part in [toc] + list(toc.get("parts", [])):
        files += [entry["file"] for entry in part.get("chapters", []) if "file" in entry]
    return files


def versions() -> dict[str, str]:
    """Versions of Python and the packages that produce the book's numbers."""
    found = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    return found


def write_toc(root: Path, target: Path, chapters: list[str]) -> None:
    """A copy of ``_toc.yml`` that keeps only ``chapters`` (the book of the chapters a run executed)."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    if toc["root"] not in chapters:
        raise ValueError(f"chapters: the root chapter {toc['root']!r} must be among the chapters run")
    toc["chapters"] = [entry for entry in toc.get("chapters", []) if entry.get("file") in chapters]
    target.write_text(yaml.safe_dump(toc, sort_keys=False))


def staging_dir(out: Path) -> Path:
    """Where the executed notebooks of a run are staged for the build."""
    return out / "_build" / "executed"


def run_chapters(
    root: Path,
    out: Path,
    parameters: Mapping[str, Any],
    chapters: Iterable[str] | None = None,
    progress: bool = True,
) -> list[Path]:
    """Execute chapters with papermill into ``out/_build/executed``; returns the executed notebooks."""
    import papermill as pm

    unknown = set(parameters) - set(CHAPTER_PARAMETERS)
    if unknown:
        raise ValueError(f"unknown chapter parameters {sorted(unknown)}; expected a subset of {list(CHAPTER_PARAMETERS)}")
    all_chapters = toc_chapters(root)
    selected = list(chapters) if chapters else all_chapters
    missing = [c for c in selected if c not in all_chapters]
    if missing:
        raise ValueError(f"chapters {missing} are not in {root / '_toc.yml'}; known: {all_chapters}")
    src = staging_dir(out)
    src.mkdir(parents=True, exist_ok=True)
    shutil.copy2(root / "_config.yml", src / "_config.yml")
    write_toc(root, src / "_toc.yml", selected)
    run_info = {"parameters": dict(parameters), "versions": versions()}
    (src / "run_info.json").write_text(json.dumps(run_info, indent=2, default=str))
    executed = []
    # Figures must reach the notebooks: a non-interactive MPLBACKEND (e.g. Agg) would silence matplotlib's
    # inline backend in the kernels papermill starts, which inherit this environment.
    os.environ.pop("MPLBACKEND", None)
    chapters_shown = bar(selected, desc="chapters", disable=not progress)  # this process: a live bar on stderr
    previous = os.environ.get(TEXT_ENV)
    os.environ[TEXT_ENV] = "1"  # the kernels' progress as one line per finished loop: their outputs are read later
    try:
        for chapter in chapters_shown:
            target = src / f"{chapter}.ipynb"
            target.parent.mkdir(parents=True, exist_ok=True)
            pm.execute_notebook(
                str(root / f"{chapter}.ipynb"),
                str(target),
                parameters=dict(parameters),
                cwd=str(root),
                progress_bar=False,
                kernel_name="python3",
            )
            executed.append(target)
    finally:
        if previous is None:
            os.environ.pop(TEXT_ENV, None)
        else:
            os.environ[TEXT_ENV] = previous
    return executed


def build_html(out: Path) -> Path:
    """``jupyter-book build`` of the staged notebooks, warnings as errors; returns ``index.html``."""
    src = staging_dir(out)
    exe = Path(sys.executable).parent / "jupyter-book"
    cmd = [str(exe) if exe.exists() else "jupyter-book", "build", str(src), "--path-output", str(out), "-W", "--keep-going", "--all"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"jupyter-book build failed (exit {done.returncode}):\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    index = out / "_build" / "html" / "index.html"
    if not index.is_file():
        raise RuntimeError(f"jupyter-book build finished but {index} is missing")
    return index


def run_table(parameters: Mapping[str, Any]) -> str:
    """A Markdown table of a run's parameters and package versions, shown at the end of every chapter."""
    rows = [("parameter", k, v) for k, v in parameters.items()] + [("version", k, v) for k, v in versions().items()]
    lines = ["| kind | name | value |", "|---|---|---|"] + [f"| {a} | `{b}` | `{c}` |" for a, b, c in rows]
    return "\n".join(lines)


#: Minutes each chapter took from an empty cache on the project's 2-core CPU machine (no GPU), measured with
#: ``benchmarks/bench_book.py --profile P``; the ``paper`` profile is meant for a GPU and was not measured there.
RUN_MINUTES: dict[str, dict[str, float]] = {
    "book/intro": {"quick": 0.1, "default": 0.1},
    "book/club_theory": {"quick": 0.2, "default": 0.7},
    "book/templates": {"quick": 2.5, "default": 5.2},
    "book/estimator_training": {"quick": 0.6, "default": 3.8},
    "book/attacks": {"quick": 2.9, "default": 11.8},
    "book/evaluation_settings": {"quick": 1.6, "default": 9.5},
    "book/tradeoff": {"quick": 0.3, "default": 1.5},
    "book/beyond": {"quick": 4.7, "default": 12.3},
}


def run_time(chapter: str, profile: str) -> str:
    """One sentence on how long ``chapter`` takes to run, from :data:`RUN_MINUTES`, for the top of each chapter."""
    if chapter not in RUN_MINUTES:
        raise ValueError(f"chapter={chapter!r}: expected one of {sorted(RUN_MINUTES)}")
    times = RUN_MINUTES[chapter]
    measured = ", ".join(f"{minutes:.1f} min with the `{p}` profile" for p, minutes in times.items())
    return (f"**Run time** from an empty cache on a 2-core CPU: {measured} (this run: `{profile}`). Every result "
            "is cached, so a second run only loads it.")


def show_run_time(chapter: str, profile: str) -> None:
    """Display :func:`run_time` in a notebook."""
    from IPython.display import Markdown, display

    display(Markdown(run_time(chapter, profile)))


#: Where a chapter appends the face-model passes its kernel ran (``benchmarks/bench_book.py`` sets it).
LEDGER_ENV = "MIFGSM_LEDGER"


def show_run(parameters: Mapping[str, Any]) -> None:
    """Display :func:`run_table` in a notebook, so the rendered book says what produced its numbers.

    Where ``$MIFGSM_LEDGER`` names a file, one JSON line of the passes this kernel ran
    (:data:`mifgsm_lib.faces.models.PASSES`) is appended to it.
    """
    from IPython.display import Markdown, display

    from mifgsm_lib.faces.models import PASSES

    ledger = os.environ.get(LEDGER_ENV)
    if ledger:
        with open(ledger, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(PASSES) + "\n")
    display(Markdown("**This page was produced by:**\n\n" + run_table(parameters)))
