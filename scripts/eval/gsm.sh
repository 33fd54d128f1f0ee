#!/usr/bin/env bash
# Evaluate on GSM8K; flags pass through to python -m eval.gsm.run_eval (`--help` lists them with their defaults), e.g.
#   scripts/eval/gsm.sh --model_name_or_path checkpoints --formulation lumos_iterative --save_dir results/gsm
#   scripts/eval/gsm.sh --planner URL --grounder URL --data_dir data/eval/gsm --max_num_examples 50 --no_progress
# Paths are read from the directory you run it in; MODEL_DIR, DATA_DIR, SAVE_DIR, ... give defaults (common.bash).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.bash"
run_eval gsm "$@"
