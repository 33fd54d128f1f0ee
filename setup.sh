#!/usr/bin/env bash
# Installs Lumos and everything it needs on a fresh machine, then the project in editable mode.
# Torch goes first, pinned, so that no other package pulls a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
# bubblewrap gives the Code sandbox its namespaces (lumos/tools/sandbox.py); without it the sandbox warns and falls back.
if ! command -v bwrap >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && apt-get install -y -qq bubblewrap >/dev/null) \
      || echo "note: could not install bubblewrap; the Code sandbox will warn and use a weaker fallback" >&2
  else
    echo "note: install bubblewrap (e.g. sudo apt-get install bubblewrap) for the Code sandbox's full isolation" >&2
  fi
fi
# MariaDB is the server InterCode-SQL's queries run against (lumos/tools/sql.py starts a private one per run).
if ! command -v mariadbd >/dev/null 2>&1 && [ ! -x /usr/sbin/mariadbd ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mariadb-server >/dev/null
  else
    echo "note: install mariadb-server (e.g. sudo apt-get install mariadb-server) for InterCode-SQL, or pass --db_url" >&2
  fi
fi
"$PYTHON" -m pip install --quiet "torch==2.13.0"
"$PYTHON" -m pip install --quiet -r requirements.txt
"$PYTHON" -m pip install --quiet --no-deps -e .
echo "Lumos installed. Next: ./quickstart.sh (or the tests: python -m pytest -q)"
