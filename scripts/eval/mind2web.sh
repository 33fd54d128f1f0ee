#!/usr/bin/env bash
# Mind2Web evaluation (original flags), MindAct's step-level protocol. DATA_DIR is either
#   a folder holding test_task/, test_website/, test_domain/ (the official task-level splits;
#   scripts/download_data.sh --web fetches them), a task-list .json file, or
#   the step-level file, e.g. ../shared/data/mind2web/mind2web_train_n100_actionlevel.skillgen.json;
# another shape is refused with one line naming these. MODEL_DIR holds lumos_web_agent_{plan,ground}_iterative
# (omit it when --planner and --grounder are given). Further flags pass through: --top_k, --ranker_model,
# --planner/--grounder (a path, an OpenAI-compatible URL or scripted:<file>), --prompt_style original,
# --scoring original, --protocol free_running, ...
set -euo pipefail
model=()
if [[ -n "${MODEL_DIR:-}" ]]; then model=(--model_name_or_path "$MODEL_DIR"); fi
python -m eval.mind2web.run_eval \
    --data_dir "${DATA_DIR:-data/eval/mind2web/}" \
    --max_num_examples "${MAX_NUM_EXAMPLES:-10}" \
    --save_dir "${SAVE_DIR:-results/mind2web}" \
    "${model[@]}" \
    --eval_batch_size "${EVAL_BATCH_SIZE:-16}" \
    --formulation lumos_iterative "$@"
