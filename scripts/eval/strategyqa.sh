#!/usr/bin/env bash
# Evaluate on StrategyQA; flags pass through to python -m eval.strategyqa.run_eval (`--help` lists them with their defaults), e.g.
#   scripts/eval/strategyqa.sh --model_name_or_path checkpoints --formulation lumos_iterative --save_dir results/strategyqa --corpus corpus.jsonl --qa_model URL
#   scripts/eval/strategyqa.sh --planner URL --grounder URL --data_dir data/eval/strategyqa --max_num_examples 50 --no_progress --corpus corpus.jsonl --qa_model URL
# Paths are read from the directory you run it in; MODEL_DIR, DATA_DIR, SAVE_DIR, ... give defaults (common.bash).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.bash"
run_eval strategyqa "$@"
