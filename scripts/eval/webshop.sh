#!/usr/bin/env bash
# WebShop evaluation (original flags); flags pass through to python -m eval.webshop.run_eval (`--help` lists them
# with their defaults). --data_dir (or DATA_DIR) holds items_shuffle_1000.json, items_ins_v2_1000.json and
# items_human_ins.json (scripts/download_data.sh --web); without it the small catalogue shipped with the package
# is used. MODEL_DIR (or --model_name_or_path) holds the planning/grounding checkpoints (omit it when --planner
# and --grounder are given). Further flags: --max_steps (environment actions, default 15), --feedback, ...
# --prompt_style original replays the released evaluation: MODEL_DIR then holds lumos_unified_{plan,ground}_iterative
# (add --scoring original for its average over the goals that ended, --goals synthetic for the goals it ran,
# --feature_ranker bm25 to run offline).
# Paths are read from the directory you run it in. Defaults as the original script's: SAVE_DIR results/webshop,
# MAX_NUM_EXAMPLES 500, EVAL_BATCH_SIZE 8.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.bash"
SAVE_DIR=${SAVE_DIR:-results/webshop} MAX_NUM_EXAMPLES=${MAX_NUM_EXAMPLES:-500} EVAL_BATCH_SIZE=${EVAL_BATCH_SIZE:-8} \
    run_eval webshop --formulation lumos_iterative "$@"
