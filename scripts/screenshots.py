#!/usr/bin/env python
"""Screenshots and browser checks of a built book: ``python scripts/screenshots.py DIR/_build/html``.

Opens every chapter in headless Chromium, writes ``DIR/_build/html/_screenshots/<chapter>.png`` and prints the
problems a reader would see (the checks of ``tests/test_browser.py``; see ``tests/browser.py``). Exit status 1
when there are problems. ``--help`` lists the options and the checks.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from browser import main  # noqa: E402 - tests/ is put on the path just above

if __name__ == "__main__":
    sys.exit(main())
