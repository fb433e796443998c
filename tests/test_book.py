"""``mifgsm book``: chapters run through papermill with the given parameters, then the HTML build."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import nbformat
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


def _chapters() -> dict[str, object]:
    return {c: nbformat.read(ROOT / f"{c}.ipynb", as_version=4) for c in book.toc_chapters(ROOT)}


def _tagged(nb: object, tag: str) -> list:
    return [c for c in nb.cells if tag in c.get("metadata", {}).get("tags", [])]


def test_every_chapter_has_the_parameters_cell() -> None:
    for chapter, nb in _chapters().items():
        tagged = _tagged(nb, "parameters")
        assert len(tagged) == 1, f"{chapter}: expected one cell tagged 'parameters'"
        assert book.chapter_parameters(ROOT, chapter)[:len(book.CHAPTER_PARAMETERS)] == list(book.CHAPTER_PARAMETERS)
        assert not any(c.get("outputs") for c in nb.cells if c.cell_type == "code"), f"{chapter}: stored with outputs"


def test_every_setup_cell_is_the_published_template() -> None:
    """One template installs the library from _config.yml's repository and release, and fetches the chapter's data:
    each chapter's setup cell is that template with the chapter's own datasets."""
    for chapter, nb in _chapters().items():
        (setup,) = _tagged(nb, "setup")
        expected = book.setup_source(ROOT, chapter, book.setup_datasets(setup.source))
        assert setup.source == expected, f"{chapter}: setup cell out of date; regenerate it with book.setup_source"
        index = nb.cells.index(setup)
        assert _tagged(nb, "parameters")[0] is nb.cells[index - 1], f"{chapter}: the setup follows the parameters"


def test_a_release_rewrites_every_setup_cell_from_the_config(tmp_path: Path) -> None:
    """``mifgsm book --write-setup-cells``: the repository URL and release live in ``_config.yml`` only."""
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "book", tmp_path / "book")
    assert book.write_setup_cells(tmp_path) == [], "the chapters' setup cells are up to date"
    config = tmp_path / "_config.yml"
    config.write_text(config.read_text().replace("https://github.com/mifgsm/mifgsm", "https://example.org/fork/mifgsm"))
    assert book.write_setup_cells(tmp_path) == book.toc_chapters(ROOT)
    for chapter in book.toc_chapters(ROOT):
        nb = nbformat.read(tmp_path / f"{chapter}.ipynb", as_version=4)
        (setup,) = _tagged(nb, "setup")
        assert '%pip install -q "mifgsm @ git+https://example.org/fork/mifgsm@v' in setup.source, chapter
        original = nbformat.read(ROOT / f"{chapter}.ipynb", as_version=4)
        assert [c.source for c in nb.cells if c is not setup] == \
            [c.source for c in original.cells if "setup" not in c.metadata.get("tags", [])], chapter


def test_chapters_ask_colab_for_a_gpu_and_hide_their_plumbing() -> None:
    for chapter, nb in _chapters().items():
        assert nb.metadata.get("accelerator") == "GPU", chapter
        assert nb.metadata["colab"]["gpuType"], chapter
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert code[0] is _tagged(nb, "parameters")[0], f"{chapter}: the parameters come first (papermill)"
        checks = [c for c in code if "checks.require(" in c.source]
        assert checks and all("remove-cell" in c.metadata.get("tags", []) for c in checks), chapter


def test_code_lines_fit_the_page() -> None:
    """The book's code column holds 79 characters: no code cell scrolls sideways."""
    for chapter, nb in _chapters().items():
        for cell in nb.cells:
            if cell.cell_type == "code":
                long = [line for line in cell.source.splitlines() if len(line) > book.CODE_LINE]
                assert not long, f"{chapter}: lines longer than {book.CODE_LINE} characters: {long}"


def _unshown_tables(source: str) -> list[int]:
    """Lines of a code cell where ``page.table(...)`` is a statement whose value Jupyter does not display: any but
    the cell's last top-level statement (``page.table`` returns the table; it must be displayed or be last)."""
    import ast

    tree = ast.parse("\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))))
    found = []

    def visit(statements: list[ast.stmt], top: bool) -> None:
        for k, statement in enumerate(statements):
            call = statement.value if isinstance(statement, ast.Expr) else None
            if (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.func.attr == "table"
                    and isinstance(call.func.value, ast.Name) and call.func.value.id == "page"
                    and not (top and k == len(statements) - 1)):
                found.append(statement.lineno)
            for block in ("body", "orelse", "finalbody"):
                if isinstance(getattr(statement, block, None), list):
                    visit(getattr(statement, block), False)

    visit(tree.body, True)
    return found


def test_every_table_a_chapter_makes_is_shown() -> None:
    assert _unshown_tables("page.table(a, 'x')\nb = 1") == [1]  # not last: its value is dropped
    assert _unshown_tables("display(page.table(a, 'x'))\nb = 1\npage.table(b, 'y')") == []
    assert _unshown_tables("if a:\n    page.table(a, 'x')") == [2]
    for chapter, nb in _chapters().items():
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not _unshown_tables(cell.source), f"{chapter}: a table never shown: {cell.source[:200]}"


def test_hidden_cells_are_removed_from_the_html(tmp_path: Path) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]}),
                                         nbformat.v4.new_code_cell("y = 2", metadata={"tags": ["injected-parameters"]}),
                                         nbformat.v4.new_code_cell("z = 3", metadata={"tags": ["setup"]}),
                                         nbformat.v4.new_code_cell("shown = 4")])
    path = tmp_path / "chapter.ipynb"
    nbformat.write(nb, path)
    book.hide_setup(path)
    tags = [c.metadata.get("tags", []) for c in nbformat.read(path, as_version=4).cells]
    assert [("remove-cell" in t) for t in tags] == [True, True, True, False]


def test_unknown_parameter_and_chapter_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown chapter parameters \['epsilon'\]: no chapter run defines them"):
        book.run_chapters(ROOT, tmp_path, {"epsilon": 1})
    with pytest.raises(ValueError, match=r"unknown chapter parameters \['methods'\]"):  # only the attacks' chapters
        book.run_chapters(ROOT, tmp_path, {"methods": ["mi-fgsm"]}, chapters=["book/intro"])
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
    from mifgsm_lib import page

    for chapter, nb in _chapters().items():
        assert set(page.RUN_MINUTES[chapter]) == {"quick", "default"}, chapter
        assert any(f'page.header("{chapter}", cfg)' in c.source for c in nb.cells), chapter
    assert "min with the `default` profile" in page.run_time("book/attacks", "quick")
    with pytest.raises(ValueError, match="chapter='book/nope'"):
        page.run_time("book/nope", "quick")


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

    for chapter, nb in _chapters().items():
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert code[-1].source == "page.show_run(cfg)", chapter
