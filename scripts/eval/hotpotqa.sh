#!/usr/bin/env bash
# Evaluate on HotpotQA; flags pass through to python -m eval.hotpotqa.run_eval (`--help` lists them with their defaults), e.g.
#   scripts/eval/hotpotqa.sh --model_name_or_path checkpoints --formulation lumos_iterative --save_dir results/hotpotqa --corpus corpus.jsonl --qa_model URL
#   scripts/eval/hotpotqa.sh --planner URL --grounder URL --data_dir data/eval/hotpotqa --max_num_examples 50 --no_progress --corpus corpus.jsonl --qa_model URL
# Paths are read from the directory you run it in; MODEL_DIR, DATA_DIR, SAVE_DIR, ... give defaults (common.bash).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.bash"
run_eval hotpotqa "$@"
