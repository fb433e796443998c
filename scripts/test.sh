#!/usr/bin/env bash
# The test command: set up, link the data from the mirror, run every chapter on the quick profile and build the
# HTML book (into .mifgsm/book-quick), then pytest: the library's tests, the book's pages in headless Chromium
# (where a Chromium is installed; CI installs one) and nbval on every chapter (the results now cached).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export MIFGSM_MIRROR="${MIFGSM_MIRROR:-$(cd .. && pwd)/shared/data}"
export MIFGSM_DATA="${MIFGSM_DATA:-$PWD/.mifgsm/data}"
export MIFGSM_ARTIFACTS="${MIFGSM_ARTIFACTS:-$PWD/.mifgsm/artifacts-quick}"
export MIFGSM_PROFILE=quick
mifgsm data fetch lfw
mifgsm data fetch utkface
# The quick book, timed per chapter; its HTML is what tests/test_browser.py opens.
python benchmarks/bench_book.py --profile quick --out .mifgsm/book-quick --artifacts "$MIFGSM_ARTIFACTS"
export MIFGSM_BOOK_HTML="$PWD/.mifgsm/book-quick/_build/html"
set +e
python -m pytest -q -p no:cacheprovider tests book --nbval-lax --durations=20 "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi
exit "$rc"
