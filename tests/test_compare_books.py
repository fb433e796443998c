"""scripts/compare_books.py: two executed books compared table by table, run times left out."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "compare_books.py"


@pytest.fixture(scope="module")
def compare_books():
    spec = importlib.util.spec_from_file_location("compare_books", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _book(folder: Path, accuracy: str, ms: str, prose: str) -> Path:
    table = ("<table><caption>Setting B per attack.</caption><thead><tr><th></th><th>setting_b</th>"
             f"<th>ms_per_iteration</th></tr></thead><tbody><tr><th>mi-fgsm</th><td>{accuracy}</td><td>{ms}</td></tr>"
             "</tbody></table>")
    cells = [{"cell_type": "code", "outputs": [{"data": {"text/html": [table]}},
                                               {"data": {"text/markdown": [prose]}}]}]
    folder.mkdir()
    (folder / "chapter.ipynb").write_text(json.dumps({"cells": cells}))
    return folder


def test_run_times_are_left_out_and_a_changed_number_is_reported(tmp_path, compare_books, capsys) -> None:
    before = _book(tmp_path / "before", "0.912", "9.1", "The sweep took 12 s; setting B 91.2 %.")
    same = _book(tmp_path / "same", "0.912", "3.5", "The sweep took 40 s; setting B 91.2 %.")
    other = _book(tmp_path / "other", "0.913", "9.1", "The sweep took 12 s; setting B 91.3 %.")
    assert compare_books.compare(before, same)
    assert not compare_books.compare(before, other)
    printed = capsys.readouterr().out
    assert "cell 4: '0.912' -> '0.913'" in printed and "'91.2' -> '91.3'" not in printed  # prose: words around it
    assert "setting B 91.2 %." in printed and "setting B 91.3 %." in printed
