"""The conda environment and pyproject.toml list the same dependencies; the CLI is wired up."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml

from mifgsm_lib.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent


def _normalise(req: str) -> str:
    return req.replace(" ", "").lower().replace("_", "-")


def test_environment_yml_matches_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_normalise(r) for r in project["dependencies"] + project["optional-dependencies"]["test"]}
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
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "jupyter-book>=1.0.4,<2" in project["dependencies"]
