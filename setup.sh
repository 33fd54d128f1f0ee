#!/usr/bin/env bash
# Installs Lumos and everything it needs on a fresh machine, then the project in editable mode.
#   ./setup.sh
# System packages (Debian's, installed when running as root with apt-get; otherwise named in a note):
#   bubblewrap     namespaces for the Code sandbox (lumos/tools/sandbox.py; without it: a warning and a weaker fallback)
#   mariadb-server the SQL server InterCode-SQL's queries run against (lumos/tools/sql.py starts a private one)
#   chromium       headless browser that renders a trajectory report in the tests (tests/test_report.py)
# Torch goes first, pinned, so that no other package pulls a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}

missing=()
command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || missing+=(mariadb-server)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null) \
      || echo "note: could not install ${missing[*]} with apt-get; see the list at the top of setup.sh" >&2
  else
    echo "note: install ${missing[*]} (e.g. sudo apt-get install ${missing[*]}); see the list at the top of setup.sh" >&2
  fi
fi

"$PYTHON" -m pip install --quiet "torch==2.13.0"
"$PYTHON" -m pip install --quiet -r requirements.txt
"$PYTHON" -m pip install --quiet --no-deps -e .
echo "Lumos installed. Next: ./quickstart.sh (or the tests: python3 -m pytest -q)"
