#!/usr/bin/env bash
# Create .venv and install mifgsm with the extras that build the book and run the tests. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q -e ".[book,test]"
python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (mifgsm)" >/dev/null
