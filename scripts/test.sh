#!/usr/bin/env bash
# The test command: set up, link the data from the mirror, then pytest on the library and nbval on every
# chapter executed with the quick profile on the real data.
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
set +e
python -m pytest -q -p no:cacheprovider tests book --nbval-lax --durations=15 "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi
exit "$rc"
