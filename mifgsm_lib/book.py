"""Run the book: every chapter through papermill with one set of parameters, then ``jupyter-book build``.

The executed notebooks are staged in ``<out>/_build/executed`` beside copies of ``_config.yml`` and ``_toc.yml``,
so the sources in ``book/`` stay free of outputs, and the HTML goes to ``<out>/_build/html``. The cells that only
set a chapter up (its parameters, papermill's injected parameters, the setup) are removed from the HTML and kept
in the notebooks for Colab and papermill users. Where Debian's MathJax is installed (``libjs-mathjax``) the book
carries its own copy, so its formulas render offline.

Every chapter's setup cell is one template (:func:`setup_source`) that installs the library from the one place
that publishes it: ``_config.yml``'s ``repository`` (its URL, and its branch: the release tag).
"""

from __future__ import annotations

import ast
import json
import os
import platform
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from mifgsm_lib.progress import TEXT_ENV, bar

#: The parameters every chapter's ``parameters`` cell defines (the fields of :class:`mifgsm_lib.config.RunConfig`).
CHAPTER_PARAMETERS = ("dataset", "data_dir", "labels", "model", "weights", "device", "seed", "profile",
                      "artifacts_dir")

#: Where Debian's ``libjs-mathjax`` puts MathJax 2, and the parts of it an offline book needs (CommonHTML output).
MATHJAX_DIR = Path("/usr/share/javascript/mathjax")
MATHJAX_PARTS = ("MathJax.js", "config/TeX-AMS_CHTML.js", "extensions", "jax/input/TeX", "jax/output/CommonHTML",
                 "jax/element", "fonts/HTML-CSS/TeX/woff", "localization/en")

#: The longest line of a chapter's code cell: what the book's code column shows without scrolling.
CODE_LINE = 79

#: Tags of the cells removed from the HTML (they stay in the notebook).
HIDDEN_TAGS = ("parameters", "injected-parameters", "setup")

_VERSIONED = ("mifgsm", "torch", "numpy", "scikit-learn", "dlib-bin", "papermill", "jupyter-book")


def repo_root() -> Path:
    """The project root (the folder holding ``_toc.yml``)."""
    here = Path(__file__).resolve().parent.parent
    if not (here / "_toc.yml").is_file():
        raise FileNotFoundError(f"{here / '_toc.yml'}: not found; run `mifgsm book` from a clone of the repository")
    return here


def toc_chapters(root: Path) -> list[str]:
    """The executable chapters (notebooks) in ``_toc.yml`` order, as paths relative to ``root`` without suffix;
    the book's Markdown pages (:func:`toc_pages`) are not among them."""
    return [f for f in _toc_files(root) if (root / f"{f}.ipynb").is_file()]


def toc_pages(root: Path) -> list[str]:
    """The Markdown pages of ``_toc.yml`` (no code: copied into every build as they are)."""
    return [f for f in _toc_files(root) if not (root / f"{f}.ipynb").is_file()]


def _toc_files(root: Path) -> list[str]:
    """Every file of ``_toc.yml`` in order, as paths relative to ``root`` without suffix."""
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
    """A copy of ``_toc.yml`` that keeps only ``chapters`` (the book of the chapters a run executed) and the
    Markdown pages; a book of the root chapter alone has no ``chapters`` entry."""
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    if toc["root"] not in chapters:
        raise ValueError(f"chapters: the root chapter {toc['root']!r} must be among the chapters run")
    kept = set(chapters) | set(toc_pages(root))
    toc["chapters"] = [entry for entry in toc.get("chapters", []) if entry.get("file") in kept]
    if not toc["chapters"]:
        del toc["chapters"]
    target.write_text(yaml.safe_dump(toc, sort_keys=False))


def staging_dir(out: Path) -> Path:
    """Where the executed notebooks of a run are staged for the build."""
    return out / "_build" / "executed"


def chapter_parameters(root: Path, chapter: str) -> list[str]:
    """The names a chapter's ``parameters`` cell assigns (what papermill may set in it)."""
    import nbformat

    nb = nbformat.read(root / f"{chapter}.ipynb", as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise ValueError(f"{chapter}: expected one cell tagged 'parameters', found {len(cells)}")
    tree = ast.parse(cells[0].source)
    return [t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets if isinstance(t, ast.Name)]


def hide_setup(path: Path) -> None:
    """Tag the executed notebook's setup cells (:data:`HIDDEN_TAGS`, papermill's injected cell among them) with
    ``remove-cell``, so that the HTML shows none of them."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        if set(tags) & set(HIDDEN_TAGS) and "remove-cell" not in tags:
            tags.append("remove-cell")
    nbformat.write(nb, path)


def run_chapters(
    root: Path,
    out: Path,
    parameters: Mapping[str, Any],
    chapters: Iterable[str] | None = None,
    progress: bool = True,
) -> list[Path]:
    """Execute chapters with papermill into ``out/_build/executed``; returns the executed notebooks.

    ``parameters`` may name any parameter of the chapters run (their ``parameters`` cells); a name no chapter
    defines is refused before anything runs.
    """
    import papermill as pm

    all_chapters = toc_chapters(root)
    selected = list(chapters) if chapters else all_chapters
    missing = [c for c in selected if c not in all_chapters]
    if missing:
        raise ValueError(f"chapters {missing} are not in {root / '_toc.yml'}; known: {all_chapters}")
    known = {name for chapter in selected for name in chapter_parameters(root, chapter)}
    unknown = set(parameters) - known
    if unknown:
        raise ValueError(f"unknown chapter parameters {sorted(unknown)}: no chapter run defines them; the chapters' "
                         f"parameters are {sorted(known)}")
    src = staging_dir(out)
    src.mkdir(parents=True, exist_ok=True)
    shutil.copy2(root / "_config.yml", src / "_config.yml")
    if (root / "_static").is_dir():  # the book's CSS
        shutil.copytree(root / "_static", src / "_static", dirs_exist_ok=True)
    write_toc(root, src / "_toc.yml", selected)
    for page in toc_pages(root):
        (src / page).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / f"{page}.md", src / f"{page}.md")
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
                parameters={k: v for k, v in parameters.items() if k in chapter_parameters(root, chapter)},
                cwd=str(root / Path(chapter).parent),
                progress_bar=False,
                kernel_name="python3",
            )
            hide_setup(target)
            executed.append(target)
    finally:
        if previous is None:
            os.environ.pop(TEXT_ENV, None)
        else:
            os.environ[TEXT_ENV] = previous
    return executed


#: MathJax 2's configuration for the offline copy: Debian's packed ``TeX-AMS_CHTML`` config names no input or output
#: processor, and MyST marks its sections ``tex2jax_ignore``, which MathJax's defaults would skip.
MATHJAX_CONFIG = {
    "jax": ["input/TeX", "output/CommonHTML"],
    "extensions": ["tex2jax.js", "TeX/AMSmath.js", "TeX/AMSsymbols.js", "TeX/noErrors.js", "TeX/noUndefined.js"],
    "tex2jax": {"inlineMath": [["\\(", "\\)"]], "displayMath": [["\\[", "\\]"]], "processEscapes": True,
                "processClass": "math|output_area|tex2jax_process|mathjax_process",
                "ignoreClass": "tex2jax_ignore|mathjax_ignore|document"},
}


def _offline_mathjax(src: Path) -> None:
    """Copy Debian's MathJax 2 (CommonHTML) beside the staged book, outside ``_static`` (Jupyter Book would add
    every script under ``_static`` to every page), publish it at the HTML root and point Sphinx at it."""
    target = src / "_mathjax" / "mathjax"
    for part in MATHJAX_PARTS:
        origin = MATHJAX_DIR / part
        if origin.is_dir():
            shutil.copytree(origin, target / part, dirs_exist_ok=True)
        else:
            (target / part).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, target / part)
    config = yaml.safe_load((src / "_config.yml").read_text())
    sphinx_config = config.setdefault("sphinx", {}).setdefault("config", {})
    sphinx_config["html_extra_path"] = ["_mathjax"]
    sphinx_config["mathjax_path"] = "../mathjax/MathJax.js"  # relative to _static: the HTML root's mathjax/
    sphinx_config["mathjax2_config"] = MATHJAX_CONFIG
    (src / "_config.yml").write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))


def build_html(out: Path) -> Path:
    """``jupyter-book build`` of the staged notebooks, warnings as errors; returns ``index.html``. With Debian's
    MathJax installed the book carries its own copy (formulas render without a network)."""
    src = staging_dir(out)
    if (MATHJAX_DIR / "MathJax.js").is_file():
        _offline_mathjax(src)
    exe = Path(sys.executable).parent / "jupyter-book"
    cmd = [str(exe) if exe.exists() else "jupyter-book", "build", str(src), "--path-output", str(out), "-W", "--keep-going", "--all"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"jupyter-book build failed (exit {done.returncode}):\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    index = out / "_build" / "html" / "index.html"
    if not index.is_file():
        raise RuntimeError(f"jupyter-book build finished but {index} is missing")
    return index


# --------------------------------------------------------------------------------------------------
# The setup cell of every chapter
# --------------------------------------------------------------------------------------------------

#: The setup cell's template: where the library is missing, it is put on the path (a clone opened from ``book/``,
#: on a hub) or installed (Colab, a fresh kernel) from the repository and release of ``_config.yml``; then the
#: chapter's configuration is made and its data fetched (:func:`mifgsm_lib.page.start`).
SETUP_TEMPLATE = """\
# Setup, hidden in the book: the library wherever this notebook runs,
# then this chapter's data.
import importlib.util
import pathlib
import sys

if importlib.util.find_spec("mifgsm_lib") is None:
    if (pathlib.Path("..") / "mifgsm_lib").is_dir():  # a clone, from book/
        sys.path.insert(0, str(pathlib.Path("..").resolve()))
    else:  # Colab or a fresh kernel: the release of this book
        %pip install -q "mifgsm @ git+{url}@{ref}"
        importlib.invalidate_caches()  # find the package just installed
from mifgsm_lib import page

cfg = page.start(
    "{chapter}", datasets=[{datasets}],
    dataset=dataset, data_dir=data_dir, labels=labels, model=model,
    weights=weights, device=device, seed=seed, profile=profile,
    artifacts_dir=artifacts_dir,
)"""


def repository(root: Path) -> tuple[str, str]:
    """The repository URL and the release (branch or tag) the book is published from, from ``_config.yml``."""
    config = yaml.safe_load((root / "_config.yml").read_text())
    repo = config.get("repository", {})
    if not repo.get("url") or not repo.get("branch"):
        raise ValueError(f"{root / '_config.yml'}: expected repository.url and repository.branch (the release)")
    return str(repo["url"]), str(repo["branch"])


def setup_source(root: Path, chapter: str, datasets: Iterable[str] = ()) -> str:
    """The setup cell of ``chapter``: :data:`SETUP_TEMPLATE` with the repository of ``_config.yml``; ``datasets``
    names the chapter parameters that hold the datasets it reads (fetched where missing)."""
    url, ref = repository(root)
    return SETUP_TEMPLATE.format(url=url, ref=ref, chapter=chapter, datasets=", ".join(datasets))


def setup_datasets(source: str) -> list[str]:
    """The datasets a setup cell's ``page.start(..., datasets=[...])`` names (parameter names or quoted names)."""
    found = re.search(r"datasets=\[(.*?)\]", source)
    if found is None:
        raise ValueError("expected a setup cell calling page.start(..., datasets=[...])")
    return [d.strip() for d in found.group(1).split(",") if d.strip()]


def write_setup_cells(root: Path) -> list[str]:
    """Rewrite each chapter's setup cell (tag ``setup``) from :func:`setup_source`, keeping its datasets: run after
    ``_config.yml``'s repository or release changes (a release), so that every chapter installs what the launch
    buttons open. Returns the chapters whose cell changed."""
    import nbformat

    changed = []
    for chapter in toc_chapters(root):
        path = root / f"{chapter}.ipynb"
        nb = nbformat.read(path, as_version=4)
        (cell,) = [c for c in nb.cells if "setup" in c.metadata.get("tags", [])]
        source = setup_source(root, chapter, setup_datasets(cell.source))
        if cell.source != source:
            cell.source = source
            nbformat.write(nb, path)
            changed.append(chapter)
    return changed
