#!/usr/bin/env bash
# Evaluate on SVAMP; flags pass through to python -m eval.svamp.run_eval (`--help` lists them with their defaults), e.g.
#   scripts/eval/svamp.sh --model_name_or_path checkpoints --formulation lumos_iterative --save_dir results/svamp
#   scripts/eval/svamp.sh --planner URL --grounder URL --data_dir data/eval/svamp --max_num_examples 50 --no_progress
# Paths are read from the directory you run it in; MODEL_DIR, DATA_DIR, SAVE_DIR, ... give defaults (common.bash).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.bash"
run_eval svamp "$@"
