#!/usr/bin/env bash
# Lumos end to end on the embedded default, with no benchmark data and no internet:
#   generated GSM8K-style maths problems -> rule-based conversion -> verification by execution
#   -> planning/grounding training files -> tiny planning and grounding modules trained on the CPU
#   -> evaluation of the Lumos iterative loop on held-out generated problems (new numbers, names and
#   step combinations) -> accuracy by number of steps, failures by kind, and an HTML trajectory report.
# Usage: ./quickstart.sh            (outputs under quickstart_out/; re-running resumes)
#        N_TRAIN=2000 PLAN_STEPS=300 GROUND_STEPS=300 ./quickstart.sh      (smaller and faster)
# Size: N_TRAIN problems, PLAN_STEPS / GROUND_STEPS optimizer steps of ROWS packed rows of MAX_LEN tokens,
# TINY_HIDDEN x TINY_LAYERS model with a TINY_VOCAB tokenizer, N_TEST held-out problems.
set -euo pipefail
cd "$(dirname "$0")"
OUT=${OUT:-quickstart_out}
N_TRAIN=${N_TRAIN:-20000}
N_TEST=${N_TEST:-200}
# A narrow two-layer model (128 wide, 4 heads, ~0.5M parameters) with a 1,000-token vocabulary (digits
# always single tokens, names in pieces so that new names are copied like seen ones, the fixed prompt text
# one token per phrase) takes several times more steps per minute than a wider one; the steps matter more
# than the size here. Examples are packed into rows so no time goes to padding. The planner, which must
# keep track of which fact of the task comes next, needs more steps (about two passes over N_TRAIN) than
# the grounder (about one); with 2,400 and 1,600 they solve 87.5% of the held-out problems.
TINY_HIDDEN=${TINY_HIDDEN:-128}
TINY_LAYERS=${TINY_LAYERS:-2}
TINY_VOCAB=${TINY_VOCAB:-1000}
PLAN_STEPS=${PLAN_STEPS:-2400}
GROUND_STEPS=${GROUND_STEPS:-1600}
ROWS=${ROWS:-2}
MAX_LEN=${MAX_LEN:-1024}
LR=${LR:-1e-3}
MODELS="$OUT/models"
DATA="$OUT/data/train"
RAW="$DATA/maths/raw_data/synthetic_gsm_train.jsonl"
TEST="$OUT/data/eval/synthetic_gsm/test.jsonl"
SAVE="$OUT/eval/synthetic_gsm_iterative"
# In a log file (not a terminal) every progress bar, ours and the libraries', draws a line every 20 s at most.
[[ -t 2 ]] || export TQDM_MININTERVAL=${TQDM_MININTERVAL:-20}
SECONDS=0

step() { printf '\n== [%dm%02ds] %s\n' $((SECONDS / 60)) $((SECONDS % 60)) "$*"; }

step "1/6 generating $N_TRAIN maths word problems (GSM8K socratic format)"
python3 -m lumos.synthetic --n "$N_TRAIN" --seed 0 --split train --out "$RAW"
head -n 1 "$RAW"

step "2/6 converting by rules and verifying every action by execution"
python3 -m data.prompt_convertion --domain maths --data_fn "$RAW" --convert_all --backend rules \
    --verify --keep verified --output_dir "$DATA/maths/converted" --no_progress

step "3/6 writing planning/grounding training files (iterative and onetime)"
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

step "4/6 training tiny planning and grounding modules side by side (iterative; ${TINY_HIDDEN} wide, $TINY_LAYERS layers) on the CPU"
# Two small models train faster side by side, one core each, than one after the other on all cores.
CORES=$(nproc 2>/dev/null || echo 2)
THREADS=$(( CORES / 2 > 0 ? CORES / 2 : 1 ))
train_module() {
    local module=$1 steps=$2
    OMP_NUM_THREADS=$THREADS TASK=maths MODEL=tiny DATA_DIR="$DATA" OUTPUT_DIR="$MODELS/lumos_maths_${module}_iterative" \
        LR="$LR" EPOCHS=1 MAX_LEN="$MAX_LEN" PACKING=1 TOTAL_BATCH_SIZE="$ROWS" BATCH_SIZE_PER_DEVICE="$ROWS" \
        EXTRA_ARGS="--tiny_hidden_size $TINY_HIDDEN --tiny_num_layers $TINY_LAYERS --tiny_vocab_size $TINY_VOCAB --max_train_steps $steps ${EXTRA_ARGS:-}" \
        ./train.sh "$module" iterative 2>&1 | sed -u "s/^/[$module] /"
    return "${PIPESTATUS[0]}"
}
train_module plan "$PLAN_STEPS" & plan_job=$!
train_module ground "$GROUND_STEPS" & ground_job=$!
wait "$plan_job" || { echo "quickstart: training the planning module failed" >&2; exit 1; }
wait "$ground_job" || { echo "quickstart: training the grounding module failed" >&2; exit 1; }

step "5/6 evaluating the trained modules on $N_TEST held-out generated problems"
python3 -m lumos.synthetic --n "$N_TEST" --seed 1 --split test --out "$TEST"
python3 -m eval.gsm.run_eval --data_dir "$(dirname "$TEST")" --model_name_or_path "$MODELS" \
    --formulation lumos_iterative --eval_batch_size 50 --save_dir "$SAVE"

step "6/6 what went wrong"
python3 -m lumos.synthetic --diagnose "$SAVE/predictions.jsonl" --problems "$TEST"
printf '\nquickstart finished in %dm%02ds\n' $((SECONDS / 60)) $((SECONDS % 60))
echo "predictions: $SAVE/predictions.jsonl"
echo "metrics:     $SAVE/metrics.json"
echo "report:      $SAVE/report.html   (open in a browser; python -m lumos.report $SAVE)"
