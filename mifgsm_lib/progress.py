"""Progress of the long loops, in a form that reads well both live and in the rendered book.

In a live session (a terminal, Jupyter, Colab) a loop shows a tqdm bar (a widget in notebooks). A chapter
executed by ``mifgsm book`` cannot keep a live widget: its saved output would read "0%". There
(``$MIFGSM_TEXT_PROGRESS`` set, as :func:`mifgsm_lib.book.run_chapters` does) each loop prints one line when
it ends: what it did, 100 %, the count and the time taken.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm.auto import tqdm

#: Set (to any value) to print one line per finished loop instead of a live bar.
TEXT_ENV = "MIFGSM_TEXT_PROGRESS"

T = TypeVar("T")


def _summary(iterable: Iterable[T], desc: str, total: int | None) -> Iterator[T]:
    start, done = time.perf_counter(), 0
    for item in iterable:
        done += 1
        yield item
    print(f"{desc}: 100% ({done:,} of {total if total is not None else done:,}) in "
          f"{time.perf_counter() - start:.1f} s", flush=True)


def live() -> bool:
    """Whether this kernel's outputs are seen as they come (a terminal, Jupyter, Colab), not read later from a
    chapter executed by ``mifgsm book`` (``$MIFGSM_TEXT_PROGRESS`` set)."""
    return not os.environ.get(TEXT_ENV)


def bar(iterable: Iterable[T], desc: str, total: int | None = None, disable: bool = False) -> Iterable[T]:
    """``iterable`` with its progress shown (see the module's text); ``disable`` shows nothing."""
    if disable:
        return iterable
    if not live():
        return _summary(iterable, desc, total if total is not None else _length(iterable))
    return tqdm(iterable, desc=desc, total=total)


def _length(iterable: Iterable[T]) -> int | None:
    try:
        return len(iterable)  # type: ignore[arg-type]
    except TypeError:
        return None
