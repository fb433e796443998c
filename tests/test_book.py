"""``mifgsm book``: chapters run through papermill with the given parameters, then the HTML build."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mifgsm_lib import book
from mifgsm_lib.cli import main
from mifgsm_lib.progress import TEXT_ENV

ROOT = Path(__file__).resolve().parent.parent


def test_toc_lists_the_intro_first_and_existing_notebooks() -> None:
    chapters = book.toc_chapters(ROOT)
    assert chapters[0] == "book/intro"
    for chapter in chapters:
        assert (ROOT / f"{chapter}.ipynb").is_file(), chapter


def test_every_chapter_has_the_parameters_cell() -> None:
    import nbformat

    for chapter in book.toc_chapters(ROOT):
        nb = nbformat.read(ROOT / f"{chapter}.ipynb", as_version=4)
        tagged = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(tagged) == 1, f"{chapter}: expected one cell tagged 'parameters'"
        for name in book.CHAPTER_PARAMETERS:
            assert f"{name} = " in tagged[0].source, f"{chapter}: parameters cell lacks {name}"
        assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), f"{chapter}: stored with outputs"


def test_unknown_parameter_and_chapter_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown chapter parameters"):
        book.run_chapters(ROOT, tmp_path, {"epsilon": 1})
    with pytest.raises(ValueError, match="not in"):
        book.run_chapters(ROOT, tmp_path, {"profile": "quick"}, chapters=["book/nope"])


@pytest.mark.slow
def test_book_runs_chapters_and_builds_html(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Run the intro and the CLUB-theory chapter with papermill (quick profile) and build the HTML book."""
    code = main(["book", "--profile", "quick", "--seed", "3", "--chapters", "book/intro", "book/club_theory",
                 "--out", str(tmp_path), "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    result = json.loads(out)  # progress never mixes into --json
    assert os.environ.get(TEXT_ENV) is None, "the kernels' text progress must not leak into this process"
    index = Path(result["html"])
    assert index.is_file()
    assert "book/intro.html" in index.read_text()
    html = (index.parent / "book" / "intro.html").read_text()
    assert "MI-FGSM" in html
    # the rendered page says which parameters produced it
    assert "quick" in html and "seed" in html
    assert (tmp_path / "_build" / "html" / "book" / "club_theory.html").is_file()
    executed = (tmp_path / "_build" / "executed" / "book" / "club_theory.ipynb").read_text()
    assert "image/png" in executed, "the chapter's figures did not reach the executed notebook"
    run_info = json.loads((tmp_path / "_build" / "executed" / "run_info.json").read_text())
    assert run_info["parameters"]["seed"] == 3 and "torch" in run_info["versions"]


def test_every_chapter_states_its_run_time() -> None:
    import nbformat

    for chapter in book.toc_chapters(ROOT):
        assert set(book.RUN_MINUTES[chapter]) == {"quick", "default"}, chapter
        nb = nbformat.read(ROOT / f"{chapter}.ipynb", as_version=4)
        assert any(f'show_run_time("{chapter}", cfg.profile)' in c.source for c in nb.cells), chapter
    assert "min with the `default` profile" in book.run_time("book/attacks", "quick")
    with pytest.raises(ValueError, match="chapter='book/nope'"):
        book.run_time("book/nope", "quick")


def test_progress_prints_one_finished_line_in_book_runs(monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    from mifgsm_lib import progress

    monkeypatch.setenv(progress.TEXT_ENV, "1")
    assert list(progress.bar(range(5), desc="work")) == [0, 1, 2, 3, 4]
    line = capsys.readouterr().out
    assert line.startswith("work: 100% (5 of 5) in ") and line.endswith(" s\n")
    assert list(progress.bar(iter([1, 2]), desc="no length")) == [1, 2]
    assert capsys.readouterr().out.startswith("no length: 100% (2 of 2)")
    assert list(progress.bar(range(3), desc="quiet", disable=True)) == [0, 1, 2]
    assert capsys.readouterr().out == ""


def test_every_chapter_ends_with_the_run_table() -> None:
    """The run table says what produced the page, and it is where a chapter writes its passes to the ledger."""
    import nbformat

    for chapter in book.toc_chapters(ROOT):
        nb = nbformat.read(ROOT / f"{chapter}.ipynb", as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert "show_run(cfg.as_dict())" in code[-1].source, chapter
