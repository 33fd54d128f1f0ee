#!/usr/bin/env bash
# Mind2Web evaluation (original flags), MindAct's step-level protocol; flags pass through to
# python -m eval.mind2web.run_eval (`--help` lists them with their defaults). --data_dir (or DATA_DIR) is either
#   a folder holding test_task/, test_website/, test_domain/ (the official task-level splits;
#   scripts/download_data.sh --web fetches them), a task-list .json file, or
#   the step-level file, e.g. ../shared/data/mind2web/mind2web_train_n100_actionlevel.skillgen.json;
# another shape is refused with one line naming these. MODEL_DIR (or --model_name_or_path) holds
# lumos_web_agent_{plan,ground}_iterative (omit it when --planner and --grounder are given). Further flags:
# --top_k, --ranker_model, --planner/--grounder (a path, an OpenAI-compatible URL or scripted:<file>),
# --prompt_style original, --scoring original, --protocol free_running, ...
# Paths are read from the directory you run it in. Defaults as the original script's: DATA_DIR
# data/eval/mind2web/, SAVE_DIR results/mind2web, MAX_NUM_EXAMPLES 10 (tasks per split), EVAL_BATCH_SIZE 16.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.bash"
DATA_DIR=${DATA_DIR:-data/eval/mind2web/} SAVE_DIR=${SAVE_DIR:-results/mind2web} \
    MAX_NUM_EXAMPLES=${MAX_NUM_EXAMPLES:-10} EVAL_BATCH_SIZE=${EVAL_BATCH_SIZE:-16} \
    run_eval mind2web --formulation lumos_iterative "$@"
