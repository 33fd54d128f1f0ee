#!/usr/bin/env bash
# Installs Lumos and everything it needs on a fresh machine, then the project in editable mode.
# Torch goes first, pinned, so that no other package pulls a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
"$PYTHON" -m pip install --quiet "torch==2.13.0"
"$PYTHON" -m pip install --quiet -r requirements.txt
"$PYTHON" -m pip install --quiet --no-deps -e .
echo "Lumos installed. Next: ./quickstart.sh (or the tests: python -m pytest -q)"
