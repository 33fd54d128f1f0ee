#!/usr/bin/env bash
# WebShop evaluation (original flags). DATA_DIR holds items_shuffle_1000.json, items_ins_v2_1000.json and
# items_human_ins.json (scripts/download_data.sh --web); leave it unset to use the small catalogue shipped with
# the package. Further flags pass through: --max_steps (environment actions, default 15), --feedback, --planner, ...
# --prompt_style original replays the released evaluation: MODEL_DIR then holds lumos_unified_{plan,ground}_iterative
# (add --scoring original for its average over the goals that ended, --goals synthetic for the goals it ran,
# --feature_ranker bm25 to run offline).
set -euo pipefail
MODEL_DIR=${MODEL_DIR:?set MODEL_DIR to the folder of the planning/grounding checkpoints}
python -m eval.webshop.run_eval \
    ${DATA_DIR:+--data_dir "$DATA_DIR"} \
    --max_num_examples "${MAX_NUM_EXAMPLES:-500}" \
    --save_dir "${SAVE_DIR:-results/webshop}" \
    --model_name_or_path "$MODEL_DIR" \
    --eval_batch_size "${EVAL_BATCH_SIZE:-8}" \
    --formulation lumos_iterative "$@"
