"""Packaging: the library's run-time dependencies apart from the book's tools and the tests' (extras ``book``
and ``test``), the conda environment (and Binder) equal to all of them, the release the chapters install, the
packages and manifests a wheel carries; the CLI is wired up."""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

import mifgsm_lib
from mifgsm_lib import book
from mifgsm_lib.cli import build_parser, main

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
#: What only builds the book or runs the tests: never a run-time dependency of the library.
TOOLS = {"jupyter-book", "papermill", "pytest", "nbval"}


def _normalise(req: str) -> str:
    return req.replace(" ", "").lower().replace("_", "-")


def _names(requirements: list[str]) -> set[str]:
    return {Requirement(r).name.lower().replace("_", "-") for r in requirements}


def test_environment_yml_matches_pyproject() -> None:
    project = PROJECT
    extras = project["optional-dependencies"]
    assert set(extras) == {"book", "test"}
    wanted = {_normalise(r) for r in project["dependencies"] + extras["book"] + extras["test"]}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    listed = {_normalise(r) for r in pip_section if not r.startswith("-e")}
    assert listed == wanted, f"only in environment.yml: {listed - wanted}; only in pyproject: {wanted - listed}"
    assert "-e ." in pip_section, "environment.yml must install the package itself"


def test_every_subcommand_reporting_results_has_json() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name in ("data", "embed", "verify", "attack", "evaluate", "book"):
        options = {opt for action in sub.choices[name]._actions for opt in action.option_strings}
        assert "--json" in options, name


def test_jupyter_book_is_pinned_to_1x() -> None:
    assert "jupyter-book>=1.0.4,<2" in PROJECT["optional-dependencies"]["book"]


def test_the_run_time_dependencies_leave_out_the_book_and_test_tools() -> None:
    """A chapter needs the core only (Colab's setup cell installs nothing else); the extras hold the tools."""
    core = _names(PROJECT["dependencies"])
    assert not core & TOOLS, f"run-time dependencies that only build the book or run the tests: {core & TOOLS}"
    assert _names(PROJECT["optional-dependencies"]["book"]) == {"jupyter-book", "papermill"}
    assert _names(PROJECT["optional-dependencies"]["test"]) >= {"pytest", "nbval"}
    # what a chapter imports at run time: the figures glue with myst-nb, the kernel, the face model's weights
    assert {"myst-nb", "ipykernel", "face-recognition-models", "dlib-bin", "torch"} <= core
    assert 'pip install -q -e ".[book,test]"' in (ROOT / "scripts" / "setup.sh").read_text()


def test_the_release_is_the_version_tag() -> None:
    """The chapters install (and the launch buttons open) ``_config.yml``'s branch: the tag of this version."""
    assert CONFIG["repository"]["branch"] == "v" + PROJECT["version"]
    assert mifgsm_lib.__version__ == PROJECT["version"]


def test_the_setup_cell_installs_the_release_without_extras() -> None:
    url, ref = book.repository(ROOT)
    source = book.setup_source(ROOT, "book/intro")
    installs = re.findall(r'^\s*%pip install -q "([^"]+)"$', source, flags=re.M)
    assert len(installs) == 1, source
    requirement = Requirement(installs[0])
    assert requirement.name == "mifgsm" and not requirement.extras, installs[0]
    assert requirement.url == f"git+{url}@{ref}" and ref == "v" + PROJECT["version"]


def test_the_launch_buttons_are_colab_and_binder() -> None:
    """Colab and the public Binder, which builds environment.yml (it installs the package: ``-e .``); no hub that
    only a university's members may use."""
    buttons = CONFIG["launch_buttons"]
    assert buttons.get("binderhub_url") == "https://mybinder.org"
    assert buttons.get("colab_url") == "https://colab.research.google.com"
    assert "jupyterhub_url" not in buttons
    assert (ROOT / "environment.yml").is_file() and not (ROOT / "binder").exists() and not (ROOT / ".binder").exists()


def test_every_package_and_manifest_is_installed() -> None:
    """A wheel carries every package of mifgsm_lib and every dataset manifest (data/*.yml as mifgsm_lib.manifests)."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    packages = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "mifgsm_lib").rglob("__init__.py")}
    assert packages | {"mifgsm_lib.manifests"} == set(setuptools["packages"])
    assert setuptools["package-dir"]["mifgsm_lib.manifests"] == "data"
    assert setuptools["package-data"]["mifgsm_lib.manifests"] == ["*.yml"] and list((ROOT / "data").glob("*.yml"))


@pytest.mark.parametrize("argv, missing", [(["book"], "papermill and jupyter-book"),
                                           (["book", "--no-build"], "papermill")])
def test_book_without_its_tools_names_the_extra(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                                argv: list[str], missing: str) -> None:
    monkeypatch.setitem(sys.modules, "papermill", None)  # import papermill now fails, as where it is not installed
    monkeypatch.setitem(sys.modules, "jupyter_book", None)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"{missing} not installed" in err and 'pip install "mifgsm[book]"' in err, err
