#!/usr/bin/env bash
# The main job: set up, fetch the data (from MIFGSM_MIRROR when set, else by download), run every chapter
# on the embedded default (LFW, dlib's ResNet, profile `default`), build the HTML book in _build/html and, where
# Chromium is installed, check every page in it and keep a screenshot of each in _build/html/_screenshots.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export MIFGSM_DATA="${MIFGSM_DATA:-$PWD/.mifgsm/data}"
mifgsm data fetch lfw
mifgsm data fetch utkface
mifgsm book --profile "${PROFILE:-default}" --data-dir "$MIFGSM_DATA" "$@"
if [ -f _build/html/index.html ] && command -v chromium >/dev/null; then
  python scripts/screenshots.py _build/html
else
  echo "main.sh: no screenshots (they need the HTML in _build/html and Chromium: apt-get install chromium" \
       "libjs-mathjax fonts-mathjax)"
fi
