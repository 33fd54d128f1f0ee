#!/usr/bin/env bash
# Fine-tune one Lumos module. The finetune_llama2_<module>_<formulation>.sh wrappers and ./train.sh call this.
#
#   scripts/train/finetune.sh plan iterative
#   TASK=maths MODEL=tiny scripts/train/finetune.sh ground onetime
#
# Settings, from the environment:
#   MODEL        base checkpoint: default meta-llama/Llama-2-7b-hf when CUDA GPUs are present, else "tiny"
#                (the embedded small LLaMA-architecture model, tokenizer trained on the training file)
#   TASK         maths | complex_qa | web_agent | unified (default unified)
#   DATA_DIR     default data/train; the train file is
#                $DATA_DIR/$TASK/train_annots/lumos_${TASK}_<module>_<formulation>.jsonl
#   TRAIN_FILE   overrides that path (a JSONL file or a hub dataset name such as ai2lumos/lumos_maths_plan_iterative)
#   OUTPUT_DIR   default output/lumos_${TASK}_<module>_<formulation> (re-running resumes from its last checkpoint)
#   NUM_GPUS     default: detected with nvidia-smi (0: train on the CPU, one process, no DeepSpeed)
#   TOTAL_BATCH_SIZE, BATCH_SIZE_PER_DEVICE   gradient accumulation = TOTAL / (PER_DEVICE x devices)
#   LR, EPOCHS, MAX_LEN, WARMUP, SCHEDULER, CHECKPOINT_STEPS, PACKING=1 (pack examples), OFFLOAD=1 (ZeRO-3
#   with CPU offload), DEEPSPEED=0 (plain data parallel on the GPUs: what --use_qlora and
#   --use_8bit_optimizer need), EXTRA_ARGS (appended to train/finetune.py's flags; later flags win), e.g.
#   DEEPSPEED=0 EXTRA_ARGS="--use_lora --use_qlora --use_8bit_optimizer --clip_grad_norm 1.0" ./train.sh plan iterative
#
# Defaults: with a real base model (GPUs) as the original: total batch 128 (1 per GPU), lr 2e-5, linear
# schedule, warmup 0.03, 2 epochs, max length 1024, DeepSpeed ZeRO-3, bf16.
# With MODEL=tiny the model is small and starts from random weights, so it needs a larger step and
# many more updates: lr 1e-3 and a total batch of 8 (8 per device, no accumulation).
# Paths given in the environment are read from the directory the script is run in; the defaults from the repository.
set -euo pipefail
caller=$PWD
cd "$(dirname "$0")/../.."

fail() { echo "train: $*" >&2; exit 2; }
from_caller() { if [[ "$1" == /* ]]; then printf '%s' "$1"; else printf '%s' "$caller/$1"; fi; }
[[ -n "${DATA_DIR:-}" ]] && DATA_DIR=$(from_caller "$DATA_DIR")
[[ -n "${OUTPUT_DIR:-}" ]] && OUTPUT_DIR=$(from_caller "$OUTPUT_DIR")
# a file (or a folder that exists there); a hub dataset / model id stays as it is
if [[ -n "${TRAIN_FILE:-}" ]] && [[ "$TRAIN_FILE" == *.json || "$TRAIN_FILE" == *.jsonl || -e "$caller/$TRAIN_FILE" ]]; then
    TRAIN_FILE=$(from_caller "$TRAIN_FILE")
fi
if [[ -n "${MODEL:-}" && "$MODEL" != tiny && -e "$caller/$MODEL" ]]; then MODEL=$(from_caller "$MODEL"); fi

MODULE=${1:-}
FORMULATION=${2:-}
case "$MODULE" in plan|ground) ;; *) fail "unknown module '${MODULE}': use plan or ground, e.g. ./train.sh plan iterative";; esac
case "$FORMULATION" in iterative|onetime) ;; *) fail "unknown formulation '${FORMULATION}': use iterative or onetime, e.g. ./train.sh $MODULE iterative";; esac

TASK=${TASK:-unified}
DOMAINS=$(python3 -m lumos.domains --training)  # the domains with training data (lumos/domains.py)
case " $DOMAINS unified " in *" $TASK "*) ;; *) fail "unknown TASK '${TASK}': use ${DOMAINS// /, } or unified";; esac
if [[ "$TASK" == unified && "$FORMULATION" == onetime ]]; then
    fail "the unified training files exist for the iterative formulation only: set TASK=<domain> or use iterative"
fi

if [[ -z "${NUM_GPUS:-}" ]]; then
    NUM_GPUS=0
    if command -v nvidia-smi >/dev/null 2>&1; then NUM_GPUS=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true); fi
fi
if [[ "$NUM_GPUS" -gt 0 ]]; then MODEL=${MODEL:-meta-llama/Llama-2-7b-hf}; else MODEL=${MODEL:-tiny}; fi

DATA_DIR=${DATA_DIR:-data/train}
TRAIN_FILE=${TRAIN_FILE:-$DATA_DIR/$TASK/train_annots/lumos_${TASK}_${MODULE}_${FORMULATION}.jsonl}
if [[ "$TRAIN_FILE" == *.json || "$TRAIN_FILE" == *.jsonl ]] && [[ ! -f "$TRAIN_FILE" ]]; then
    if [[ "$TASK" == unified ]]; then make="python -m data.process_for_train --unified ${DOMAINS// /,}"
    else make="python -m data.process_for_train --domain $TASK --formulation lumos_$FORMULATION"; fi
    fail "no training file $TRAIN_FILE: make it with '$make', or set TASK / TRAIN_FILE"
fi
if [[ -f "$TRAIN_FILE" ]]; then
    # the shape of the first records, before accelerate starts: a wrong file is one line, not a traceback
    problem=$(python3 - "$TRAIN_FILE" <<'PY'
import itertools, json, sys
path = sys.argv[1]
with open(path, encoding="utf-8", errors="replace") as handle:
    head = handle.read(1)
    while head.isspace():
        head = handle.read(1)
    handle.seek(0)
    try:
        lines = (line for line in handle if line.strip())
        records = json.load(handle)[:5] if head == "[" else [json.loads(line) for line in itertools.islice(lines, 5)]
    except (ValueError, TypeError) as error:
        print(f"it is not JSON lines (or a JSON list): {' '.join(str(error).split())}")
        sys.exit()
if not records:
    print("it holds no record")
for number, record in enumerate(records, start=1):
    if isinstance(record, dict) and "subgoal_plan" in record and "messages" not in record:
        print("it holds converted annotations (task, subgoal_plan: docs/FORMAT.md §1), not training "
              "conversations: make them with 'python -m data.process_for_train --domain <domain> --formulation "
              "lumos_<iterative|onetime>' and give TRAIN_FILE=data/train/<domain>/train_annots/lumos_<domain>_"
              "<plan|ground>_<formulation>.jsonl")
        break
    messages = record.get("messages") if isinstance(record, dict) else None
    if not (isinstance(messages, list) and messages and all(isinstance(m, dict) and "role" in m and "content" in m
                                                            for m in messages)):
        print(f"record {number} has no 'messages' list of {{role, content}} turns (docs/FORMAT.md §2)")
        break
PY
) || fail "cannot read TRAIN_FILE $TRAIN_FILE"
    [[ -z "$problem" ]] || fail "TRAIN_FILE $TRAIN_FILE is not a training file: $problem"
fi
if [[ "$MODEL" != tiny ]]; then  # a missing folder, or a hub id not cached while offline: one line, in seconds
    problem=$(python3 -c 'import sys
from lumos.llm.hf_backend import ModelNotFoundError, check_model_source
try:
    check_model_source(sys.argv[1])
except ModelNotFoundError as error:
    print(error)' "$MODEL") || fail "cannot check MODEL $MODEL"
    [[ -z "$problem" ]] || fail "MODEL: $problem"
fi
OUTPUT_DIR=${OUTPUT_DIR:-output/lumos_${TASK}_${MODULE}_${FORMULATION}}

if [[ "$MODEL" == tiny ]]; then
    LR=${LR:-1e-3}; TOTAL_BATCH_SIZE=${TOTAL_BATCH_SIZE:-8}; BATCH_SIZE_PER_DEVICE=${BATCH_SIZE_PER_DEVICE:-8}
else
    LR=${LR:-2e-5}; TOTAL_BATCH_SIZE=${TOTAL_BATCH_SIZE:-128}; BATCH_SIZE_PER_DEVICE=${BATCH_SIZE_PER_DEVICE:-1}
fi
DEVICES=$(( NUM_GPUS > 0 ? NUM_GPUS : 1 ))
if (( TOTAL_BATCH_SIZE % (BATCH_SIZE_PER_DEVICE * DEVICES) )); then
    fail "TOTAL_BATCH_SIZE=$TOTAL_BATCH_SIZE is not a multiple of BATCH_SIZE_PER_DEVICE=$BATCH_SIZE_PER_DEVICE x $DEVICES device(s)"
fi
ACCUMULATION=$(( TOTAL_BATCH_SIZE / (BATCH_SIZE_PER_DEVICE * DEVICES) ))

ARGS=(
    --model_name_or_path "$MODEL"
    --train_file "$TRAIN_FILE"
    --max_seq_length "${MAX_LEN:-1024}"
    --per_device_train_batch_size "$BATCH_SIZE_PER_DEVICE"
    --gradient_accumulation_steps "$ACCUMULATION"
    --learning_rate "$LR"
    --lr_scheduler_type "${SCHEDULER:-linear}"
    --warmup_ratio "${WARMUP:-0.03}"
    --weight_decay 0.
    --num_train_epochs "${EPOCHS:-2}"
    --output_dir "$OUTPUT_DIR"
    --with_tracking --report_to tensorboard
    --logging_steps 1
    --checkpointing_steps "${CHECKPOINT_STEPS:-500}"
    --resume_from_checkpoint latest
)
[[ "${PACKING:-0}" == 1 ]] && ARGS+=(--packing)

echo "train: $MODULE/$FORMULATION on $TRAIN_FILE from $MODEL -> $OUTPUT_DIR" \
     "($DEVICES x $BATCH_SIZE_PER_DEVICE x $ACCUMULATION accumulation, lr $LR)" >&2
if [[ "$NUM_GPUS" -gt 0 && "${DEEPSPEED:-1}" == 0 ]]; then
    python3 -c "import flash_attn" >/dev/null 2>&1 && ARGS+=(--use_flash_attn)
    [[ "$MODEL" != tiny ]] && ARGS+=(--tokenizer_name "$MODEL" --preprocessing_num_workers 16)
    MULTI=(); [[ "$NUM_GPUS" -gt 1 ]] && MULTI=(--multi_gpu)
    # shellcheck disable=SC2086
    exec accelerate launch --mixed_precision bf16 --num_machines 1 --num_processes "$NUM_GPUS" "${MULTI[@]}" \
        train/finetune.py "${ARGS[@]}" ${EXTRA_ARGS:-}
elif [[ "$NUM_GPUS" -gt 0 ]]; then
    DS_CONFIG=train/ds_configs/stage3_no_offloading_accelerate.conf
    [[ "${OFFLOAD:-0}" == 1 ]] && DS_CONFIG=train/ds_configs/stage3_offloading_accelerate.conf
    python3 -c "import flash_attn" >/dev/null 2>&1 && ARGS+=(--use_flash_attn)
    [[ "$MODEL" != tiny ]] && ARGS+=(--tokenizer_name "$MODEL" --preprocessing_num_workers 16)
    # shellcheck disable=SC2086
    exec accelerate launch --mixed_precision bf16 --num_machines 1 --num_processes "$NUM_GPUS" \
        --use_deepspeed --deepspeed_config_file "$DS_CONFIG" \
        train/finetune.py "${ARGS[@]}" ${EXTRA_ARGS:-}
else
    # shellcheck disable=SC2086
    exec accelerate launch --config_file train/accelerate_configs/cpu.yaml \
        train/finetune.py "${ARGS[@]}" ${EXTRA_ARGS:-}
fi
