#!/usr/bin/env bash
# Evaluate on InterCode-SQL; flags pass through to python -m eval.intercode_sql.run_eval (`--help` lists them), e.g.
#   scripts/eval/intercode_sql.sh --data_dir ../shared/data/intercode_sql --oracle gold --save_dir results/sql_oracle
#   scripts/eval/intercode_sql.sh --planner URL --grounder URL --data_dir data/eval/intercode_sql --max_num_examples 50 --no_progress
# Without --db_url a private MariaDB server is started on a socket in a temporary folder (setup.sh installs it).
# Paths are read from the directory you run it in; MODEL_DIR, DATA_DIR, SAVE_DIR, ... give defaults (common.bash).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.bash"
run_eval intercode_sql "$@"
