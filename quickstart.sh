#!/usr/bin/env bash
# Lumos end to end on the embedded default, with no benchmark data and no internet:
#   generated GSM8K-style maths problems -> rule-based conversion -> verification by execution
#   -> planning/grounding training files -> tiny planning and grounding modules trained on the CPU
#   -> evaluation of the Lumos iterative loop on held-out generated problems.
# Usage: ./quickstart.sh            (outputs under quickstart_out/; re-running resumes)
#        N_TRAIN=500 EPOCHS=1 ./quickstart.sh      (smaller and faster; TINY_LAYERS sets the model depth)
set -euo pipefail
cd "$(dirname "$0")"
OUT=${OUT:-quickstart_out}
N_TRAIN=${N_TRAIN:-3000}
N_TEST=${N_TEST:-200}
EPOCHS=${EPOCHS:-3}
# Two layers train about twice as fast as the default four on a CPU and learn to copy numbers in
# about as many steps, so three epochs of each module fit the quarter-hour budget of this script.
TINY_LAYERS=${TINY_LAYERS:-2}
MODELS="$OUT/models"
DATA="$OUT/data/train"
RAW="$DATA/maths/raw_data/synthetic_gsm_train.jsonl"

step() { printf '\n== %s\n' "$*"; }

step "1/5 generating $N_TRAIN maths word problems (GSM8K socratic format)"
python3 -m lumos.convert.synthetic --n "$N_TRAIN" --seed 0 --split train --out "$RAW"
head -n 1 "$RAW"

step "2/5 converting by rules and verifying every action by execution"
python3 -m data.prompt_convertion --domain maths --data_fn "$RAW" --convert_all --backend rules \
    --verify --keep verified --output_dir "$DATA/maths/converted" --no_progress

step "3/5 writing planning/grounding training files (iterative and onetime)"
python3 -m data.process_for_train --domain maths --formulation lumos_iterative --data_dir "$DATA"
python3 -m data.process_for_train --domain maths --formulation lumos_onetime --data_dir "$DATA"
python3 - "$DATA" <<'PY'
import json, sys
path = f"{sys.argv[1]}/maths/train_annots/lumos_maths_ground_iterative.jsonl"
with open(path) as handle:
    example = json.loads(handle.readline())
print(f"example grounding conversation ({path}):")
for message in example["messages"][1:]:
    print(f"  {message['role']:>9}: {message['content'].strip()}")
PY

step "4/5 training tiny planning and grounding modules (iterative, $TINY_LAYERS layers) on the CPU ($EPOCHS epoch(s) each)"
for module in plan ground; do
    TASK=maths MODEL=tiny DATA_DIR="$DATA" EPOCHS="$EPOCHS" OUTPUT_DIR="$MODELS/lumos_maths_${module}_iterative" \
        EXTRA_ARGS="--tiny_num_layers $TINY_LAYERS ${EXTRA_ARGS:-}" \
        ./train.sh "$module" iterative
done

step "5/5 evaluating the trained modules on $N_TEST held-out generated problems"
python3 -m lumos.convert.synthetic --n "$N_TEST" --seed 1 --split test --out "$OUT/data/eval/synthetic_gsm/test.jsonl"
python3 -m eval.gsm.run_eval --data_dir "$OUT/data/eval/synthetic_gsm" --model_name_or_path "$MODELS" \
    --formulation lumos_iterative --eval_batch_size 32 --save_dir "$OUT/eval/synthetic_gsm_iterative"
echo "trajectories: $OUT/eval/synthetic_gsm_iterative/predictions.jsonl"
