#!/usr/bin/env bash
# The main job: set up, fetch the data (from MIFGSM_MIRROR when set, else by download), run every chapter
# on the embedded default (LFW, dlib's ResNet, profile `default`) and build the HTML book in _build/html.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export MIFGSM_DATA="${MIFGSM_DATA:-$PWD/.mifgsm/data}"
mifgsm data fetch lfw
mifgsm data fetch utkface
mifgsm book --profile "${PROFILE:-default}" --data-dir "$MIFGSM_DATA" "$@"
