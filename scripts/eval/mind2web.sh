#!/usr/bin/env bash
# Mind2Web evaluation (original flags). DATA_DIR holds test_task/, test_website/, test_domain/ (Mind2Web JSON;
# scripts/download_data.sh --web fetches them). Further flags pass through: --top_k, --ranker_model,
# --planner/--grounder (a path, an OpenAI-compatible URL or scripted:<file>), --prompt_style original, ...
set -euo pipefail
MODEL_DIR=${MODEL_DIR:?set MODEL_DIR to the folder of the planning/grounding checkpoints}
python -m eval.mind2web.run_eval \
    --data_dir "${DATA_DIR:-data/eval/mind2web/}" \
    --max_num_examples "${MAX_NUM_EXAMPLES:-10}" \
    --save_dir "${SAVE_DIR:-results/mind2web}" \
    --model_name_or_path "$MODEL_DIR" \
    --eval_batch_size "${EVAL_BATCH_SIZE:-16}" \
    --formulation lumos_iterative "$@"
