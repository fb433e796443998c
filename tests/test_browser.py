"""The rendered book in a real browser: every chapter of ``_toc.yml`` opened in headless Chromium.

Reads the built HTML folder from ``$MIFGSM_BOOK_HTML`` (``DIR/_build/html`` of ``mifgsm book --profile quick --out
DIR``); without it the tests are skipped, except under ``CI=true``, where they fail. Each page is checked for its
figures, error output, raw MyST or TeX, MathJax errors, code or tables wider than their box (see
:data:`browser.CHECKS`), and its full-page screenshot is saved to ``$MIFGSM_BOOK_HTML/_screenshots/<chapter>.png``.
``python scripts/screenshots.py DIR/_build/html`` runs the same checks outside pytest.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from browser import BookChecker, chapter_name, toc_files

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = toc_files(ROOT / "_toc.yml")
ENV = "MIFGSM_BOOK_HTML"


@pytest.fixture(scope="module")
def book_html() -> Path:
    """The built HTML folder of ``$MIFGSM_BOOK_HTML``; skipped where it is unset (a failure in CI)."""
    value = os.environ.get(ENV)
    if not value:
        message = (f"{ENV} is not set: build the book (mifgsm book --profile quick --out DIR) and set "
                   f"{ENV}=DIR/_build/html to check it in a browser")
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but {message}", pytrace=False)
        pytest.skip(message)
    html = Path(value)
    if not (html / "index.html").is_file():
        pytest.fail(f"{ENV}={value}: no index.html there; is it the book's _build/html folder?", pytrace=False)
    return html


@pytest.fixture(scope="module")
def book(book_html: Path) -> Iterator[BookChecker]:
    """One headless Chromium for all the chapters (killed, with its temporary profile, at the end)."""
    with BookChecker(book_html) as checker:
        yield checker


@pytest.mark.parametrize("file", CHAPTERS, ids=[chapter_name(f) for f in CHAPTERS])
def test_chapter_renders(book: BookChecker, file: str) -> None:
    report = book.check(file)
    print(report.text())
    if report.screenshot is None and not report.problems:
        pytest.fail(f"{file}: no screenshot was written", pytrace=False)
    if report.problems:
        pytest.fail(f"{file}.html shows {len(report.problems)} problem(s) in headless Chromium (screenshot: "
                    f"{report.screenshot}):\n" + "\n".join(f"  - {p}" for p in report.problems)
                    + "\n(the checks and their thresholds: CHECKS in tests/browser.py)", pytrace=False)


def test_the_attacks_page_holds_the_static_explorer(book_html: Path) -> None:
    """The ε explorer works without a kernel: the attacks page embeds one frame per ε behind matplotlib's slider."""
    page = (book_html / "book" / "attacks.html").read_text(encoding="utf-8")
    frames = {int(k) for k in re.findall(r'frames\[(\d+)\] = "data:image/jpeg;base64,', page)}
    assert len(frames) >= 2 and frames == set(range(len(frames))), f"frames found: {sorted(frames)}"
    assert re.search(r'<input[^>]*type="range"', page), "no slider over the frames"
