#!/usr/bin/env bash
# The GPU figures bench/README.md ("GPU") still lacks, as one short prepared script:
#   1 env    nvidia-smi, torch (and whether it is a CUDA build), torch.cuda.is_available(), bf16 support,
#            the other packages; stops with a clear message when there is no usable CUDA device
#   2 data   generated GSM8K-style problems -> rules conversion -> planning/grounding training files
#   3 train  bench/bench_train.py, ~1B LLaMA (2048 wide, 20 layers), bf16 autocast, SDPA: tokens/s, MFU
#   4 agent  bench/bench_agent.py, ours vs the original's shape with a ~1B LLaMA in bf16 on cuda
#   5 zero3  one short ZeRO-3 training run through ./train.sh (DeepSpeed; the tiny architecture at
#            1024 wide, 8 layers, ~100M parameters, 30 steps: that the path works, and its tokens/s)
#
# Usage:
#   bench/gpu_check.sh --prepare      # on a machine with PyPI, before a GPU session: build/gpu_check/
#                                     # gets the wheels the GPU image lacks and the quickstart's modules
#   bench/gpu_check.sh                # on the GPU machine: 5-7 minutes on an H200 (estimated), at most 570 s
#   bench/gpu_check.sh --dry_run      # the same steps with tiny sizes on the CPU (ZeRO-3 step: ./train.sh's
#                                     # CPU form, no DeepSpeed; DeepSpeed itself needs CUDA)
#   bench/gpu_check.sh --steps train,agent    # some steps only (env always runs; data when train/zero3 run)
# Everything measured goes under ${OUT:-gpu_out}/ (env.txt, data.log, train.log, agent.log, zero3.log,
# summary.txt: six files) and the summary is printed at the end. Scratch (checkpoints of several GB on the
# GPU) goes under ${WORK:-a new temporary folder}, removed at the end unless KEEP_WORK=1.
#
# Settings (environment): BUDGET_S (570: every step's timeout is cut to what is left of it, so the summary
# is written inside a 600 s command limit), PEAK_TFLOPS (MFU's denominator; default from the GPU's name in
# bench_train.py, 989 for an H200), ZERO3_SIZE (HIDDEN,LAYERS of step 5's model, 1024,8), AGENT_MODELS (a
# folder holding lumos_maths_plan_iterative and lumos_maths_ground_iterative; default build/gpu_check/models,
# else quickstart_out/models), PYTHON, WORK, KEEP_WORK.
#
# Step 4's model: a random 1B model answers noise, so every task would end with a parse error after one
# round and the comparison would time one round of prefill, not the multi-round loop. bench_agent.py
# --widen instead embeds the quickstart's trained modules in a 2048-wide, 20-layer LLaMA that computes
# exactly what they compute (see widen_checkpoint): the same questions, replies, rounds and prompt lengths
# as on the CPU, at a 1B model's cost per pass. Without trained modules it widens a fresh tiny model and
# the summary says that its figures are those of one round of noise.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PYTHON=${PYTHON:-python3}
OUT=${OUT:-gpu_out}
PREP=build/gpu_check
DRY=0
PREPARE=0
STEPS=env,data,train,agent,zero3
while [[ $# -gt 0 ]]; do
    case "$1" in
        --dry_run) DRY=1 ;;
        --prepare) PREPARE=1 ;;
        --steps) STEPS="env,$2"; shift ;;
        -h|--help) sed -n '2,/^set -uo/{/^set -uo/!p}' "$0"; exit 0 ;;
        *) echo "gpu_check: unknown argument '$1' (--dry_run, --prepare, --steps LIST, --help)" >&2; exit 2 ;;
    esac
    shift
done

# ------------------------------------------------------------------------------------------- --prepare
if [[ $PREPARE == 1 ]]; then
    # The GPU image (see the device notes) has torch (CUDA), transformers, accelerate, tokenizers, sympy,
    # tensorboard, matplotlib, peft, pyarrow, pandas, xxhash, psutil, ninja, einops, msgpack, py-cpuinfo and
    # nvidia-ml-py, but not datasets, deepspeed or their other needs (found by tracing the imports of a
    # --dry_run); transformers is carried too, at the version the project is tested with (the image's is
    # older). Wheels for its Python 3.12; never torch (the pinned one is a CPU build).
    set -e
    mkdir -p "$PREP/wheels" "$PREP/models"
    rm -f "$PREP"/wheels/*.whl
    version() { "$PYTHON" -c "from importlib.metadata import version; print(version('$1'))"; }
    specs=()
    for name in transformers datasets dill multiprocess hjson pydantic pydantic_core annotated-types \
                typing-inspection; do
        specs+=("$name==$(version "$name")")
    done
    "$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d "$PREP/wheels" "${specs[@]}"
    # DeepSpeed is published as source only: a pure-Python wheel (its CUDA ops build on first use)
    "$PYTHON" -m pip wheel --quiet --no-deps --no-build-isolation -w "$PREP/wheels" "deepspeed==$(version deepspeed)"
    for module in plan ground; do
        source_dir=${AGENT_MODELS:-quickstart_out/models}/lumos_maths_${module}_iterative
        if [[ -f "$source_dir/model.safetensors" ]]; then
            mkdir -p "$PREP/models/lumos_maths_${module}_iterative"
            cp "$source_dir"/{config.json,model.safetensors,tokenizer.json,tokenizer_config.json} \
               "$PREP/models/lumos_maths_${module}_iterative/"
            [[ -f "$source_dir/generation_config.json" ]] && cp "$source_dir/generation_config.json" \
               "$PREP/models/lumos_maths_${module}_iterative/"
        else
            echo "gpu_check: no trained $module module in $source_dir (run ./quickstart.sh first): step 4 will" \
                 "widen a fresh tiny model, whose replies are noise" >&2
        fi
    done
    ls -l "$PREP"/wheels "$PREP"/models/* 2>/dev/null
    du -sh "$PREP"
    echo "prepared $PREP: carry it to the GPU machine (it is ignored by git: /build/)"
    exit 0
fi

# ------------------------------------------------------------------------------------------- helpers
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")}
mkdir -p "$WORK"
[[ ${KEEP_WORK:-0} == 1 ]] || trap 'rm -rf "$WORK"' EXIT
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 TQDM_MININTERVAL=20 \
       HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
BUDGET_S=${BUDGET_S:-570}
SUMMARY="$OUT/summary.txt"
: > "$SUMMARY"
SECONDS=0
say() { echo "$*" | tee -a "$SUMMARY"; }
wants() { [[ ",$STEPS," == *",$1,"* ]]; }

# run_step NAME LIMIT_S LOG COMMAND...: runs under `timeout` (cut to what is left of BUDGET_S), logs to LOG
run_step() {
    local name=$1 limit=$2 log=$3; shift 3
    local left=$(( BUDGET_S - SECONDS - 10 ))
    (( left < limit )) && limit=$left
    if (( limit < 20 )); then say "[$name] skipped: the time budget (BUDGET_S=$BUDGET_S) is spent"; return 124; fi
    echo "== [$(( SECONDS / 60 ))m$(printf %02d $(( SECONDS % 60 )))s] $name (timeout ${limit}s) -> $log"
    local start=$SECONDS rc=0
    echo "\$ $*" >> "$log"
    timeout --kill-after=15 "$limit" "$@" >> "$log" 2>&1 || rc=$?
    local took=$(( SECONDS - start ))
    if (( rc == 124 || rc == 137 )); then say "[$name] TIMED OUT after ${took}s (limit ${limit}s); see $(basename "$log")"
    elif (( rc != 0 )); then say "[$name] FAILED (exit $rc) after ${took}s; last lines of $(basename "$log"):"
        tail -n 15 "$log" | sed 's/^/    /' | tee -a "$SUMMARY"
    else say "[$name] ok in ${took}s"; fi
    return $rc
}

if [[ $DRY == 1 ]]; then say "gpu_check DRY RUN (tiny sizes, CPU allowed): $(date -u '+%Y-%m-%d %H:%M UTC')"
else say "gpu_check: $(date -u '+%Y-%m-%d %H:%M UTC')"; fi

# ------------------------------------------------------------------------------------------- 1 env
ENV_LOG="$OUT/env.txt"
: > "$ENV_LOG"
{
    echo "\$ nvidia-smi"; nvidia-smi 2>&1 || echo "(no nvidia-smi)"
    echo "\$ uname -a; nproc; free -g"; uname -a; nproc; free -g 2>/dev/null
    echo "\$ $PYTHON --version"; "$PYTHON" --version
} >> "$ENV_LOG" 2>&1
NEEDED="torch transformers accelerate tokenizers datasets sympy safetensors"
wants zero3 && NEEDED="$NEEDED deepspeed tensorboard matplotlib"
missing() {
    "$PYTHON" - $NEEDED <<'PY'
import importlib.util, sys
print(" ".join(name for name in sys.argv[1:] if importlib.util.find_spec(name) is None))
PY
}
MISSING=$(missing)
if [[ -n "$MISSING" || $DRY == 0 ]] && compgen -G "$PREP/wheels/*.whl" > /dev/null; then
    # the wheels --prepare fetched, into a folder of their own ahead of the image's packages (never torch)
    say "[env] missing: ${MISSING:-nothing}; installing $PREP/wheels into $WORK/site"
    "$PYTHON" -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir --target "$WORK/site" \
        "$PREP"/wheels/*.whl >> "$ENV_LOG" 2>&1 || say "[env] installing the wheels failed (see env.txt)"
    export PYTHONPATH="$WORK/site:$PYTHONPATH" PATH="$WORK/site/bin:$PATH"
    MISSING=$(missing)
fi
if [[ -n "$MISSING" ]]; then
    # setup.sh's way, from whatever index or cache this machine has, without its torch line: the pinned
    # torch is the CPU build and would replace a CUDA one
    say "[env] missing: $MISSING; trying pip install -r requirements.txt (without torch), 60 s at most"
    grep -v '^torch' requirements.txt > "$WORK/requirements-notorch.txt"
    PIP_DEFAULT_TIMEOUT=5 PIP_RETRIES=0 timeout 60 "$PYTHON" -m pip install --quiet -r "$WORK/requirements-notorch.txt" \
        >> "$ENV_LOG" 2>&1 || say "[env] pip install -r requirements.txt failed (no index reachable?)"
    MISSING=$(missing)
fi
"$PYTHON" - >> "$ENV_LOG" 2>&1 <<'PY'
import importlib.metadata as m
for name in ("torch", "transformers", "accelerate", "deepspeed", "datasets", "tokenizers", "safetensors",
             "sympy", "numpy", "pyarrow", "flash_attn", "triton"):
    try:
        print(f"{name} {m.version(name)}")
    except m.PackageNotFoundError:
        print(f"{name} (not installed)")
PY
CUDA_STATE=$("$PYTHON" - 2>> "$ENV_LOG" <<'PY'
import torch
cuda = torch.cuda.is_available()
line = [f"torch {torch.__version__}", f"built for CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU build",
        f"cuda available: {cuda}"]
if cuda:
    props = torch.cuda.get_device_properties(0)
    line += [f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}", f"{props.total_memory / 2**30:.0f} GiB",
             f"capability {props.major}.{props.minor}", f"bf16 supported: {torch.cuda.is_bf16_supported()}",
             f"SDPA flash: {torch.backends.cuda.flash_sdp_enabled()}"]
print("; ".join(line))
print("CUDA_OK" if cuda and torch.cuda.is_bf16_supported() else "NO_CUDA")
PY
) || CUDA_STATE=$'torch does not import\nNO_CUDA'
say "[env] $(head -n 1 <<< "$CUDA_STATE")"
say "[env] $(grep -E '^(transformers|accelerate|deepspeed|datasets) ' "$ENV_LOG" | tr '\n' ';' | sed 's/;$//; s/;/; /g')"
[[ -n "$MISSING" ]] && say "[env] still missing: $MISSING"
if [[ $(tail -n 1 <<< "$CUDA_STATE") != CUDA_OK ]]; then
    if [[ $DRY == 1 ]]; then
        say "[env] no usable CUDA device: dry run on the CPU (the figures below say nothing about a GPU)"
    else
        say "[env] STOP: no usable CUDA device with bf16 ($(head -n 1 <<< "$CUDA_STATE")). A torch '+cpu' build"
        say "      (requirements.txt pins the CPU build) or a missing driver would run every step on the CPU."
        say "      Use the machine's own CUDA torch (do not install torch==2.13.0 there); bench/gpu_check.sh --dry_run"
        say "      runs the steps on the CPU with tiny sizes. Logs: $OUT"
        exit 3
    fi
fi
if [[ -n "$MISSING" ]]; then
    say "[env] STOP: packages missing ($MISSING): run bench/gpu_check.sh --prepare where PyPI is reachable and carry $PREP"
    exit 4
fi

# ------------------------------------------------------------------------------------------- sizes
if [[ $DRY == 1 ]]; then
    N_PROBLEMS=300; TRAIN_ARGS=(--hidden_size 64 --num_layers 2 --vocab_size 1000 --batch_size 4 --max_seq_length 512
                                --steps 3 --warmup_steps 1)
    AGENT_ARGS=(--n 8 --widen 256,3 --device cpu --dtype float32 --kv_cache_tokens 100000)
    ZERO3_ENV=(NUM_GPUS=0); ZERO3_ARGS=(--tiny_hidden_size 64 --tiny_num_layers 2 --tiny_vocab_size 1000)
    ZERO3_STEPS=4; MAX_LEN=512
else
    # bench_train: 8 packed rows of 2,048 tokens a step (16k tokens), 3 warm-up and 10 timed steps a mode
    N_PROBLEMS=2000; TRAIN_ARGS=(--hidden_size 2048 --num_layers 20 --batch_size 8 --max_seq_length 2048
                                 --steps 10 --warmup_steps 3)
    # 64 questions as on the CPU, 16 rows per batch; a prefix cache of 131,072 tokens per module (20 GiB of
    # a 1B model's keys and values in bf16) so that no live conversation is evicted
    AGENT_ARGS=(--n 64 --widen 2048,20 --device cuda --dtype bfloat16 --kv_cache_tokens 131072 --threads 4)
    IFS=, read -r zero3_hidden zero3_layers <<< "${ZERO3_SIZE:-1024,8}"
    ZERO3_ENV=(NUM_GPUS=1); ZERO3_ARGS=(--tiny_hidden_size "$zero3_hidden" --tiny_num_layers "$zero3_layers"
                                        --tiny_vocab_size 4000)
    ZERO3_STEPS=30; MAX_LEN=1024
fi
[[ -n "${PEAK_TFLOPS:-}" ]] && TRAIN_ARGS+=(--peak_tflops "$PEAK_TFLOPS")

# ------------------------------------------------------------------------------------------- 2 data
DATA="$WORK/data/train"
PLAN_FILE="$DATA/maths/train_annots/lumos_maths_plan_iterative.jsonl"
GROUND_FILE="$DATA/maths/train_annots/lumos_maths_ground_iterative.jsonl"
DATA_OK=1
if wants train || wants zero3 || wants data; then
    DATA_LOG="$OUT/data.log"; : > "$DATA_LOG"
    RAW="$DATA/maths/raw_data/synthetic_gsm_train.jsonl"
    make_data() {
        set -e
        "$PYTHON" -m lumos.synthetic --n "$N_PROBLEMS" --seed 0 --split train --out "$RAW"
        "$PYTHON" -m data.prompt_convertion --domain maths --data_fn "$RAW" --convert_all --backend rules \
            --verify --keep verified --output_dir "$DATA/maths/converted" --no_progress
        "$PYTHON" -m data.process_for_train --domain maths --formulation lumos_iterative --data_dir "$DATA"
        wc -l "$PLAN_FILE" "$GROUND_FILE"
    }
    export -f make_data
    export PYTHON N_PROBLEMS RAW DATA PLAN_FILE GROUND_FILE
    run_step data 90 "$DATA_LOG" bash -c make_data || DATA_OK=0
fi

# ------------------------------------------------------------------------------------------- 3 train
if wants train; then
    TRAIN_LOG="$OUT/train.log"; : > "$TRAIN_LOG"
    if [[ $DATA_OK == 1 ]]; then
        run_step train 170 "$TRAIN_LOG" "$PYTHON" bench/bench_train.py --train_files "$PLAN_FILE" "$GROUND_FILE" \
            "${TRAIN_ARGS[@]}" \
            && grep -E '^\{|packed / padded|MFU' "$TRAIN_LOG" | sed 's/^/    /' | tee -a "$SUMMARY"
    else say "[train] skipped: no training data"; fi
fi

# ------------------------------------------------------------------------------------------- 4 agent
if wants agent; then
    AGENT_LOG="$OUT/agent.log"; : > "$AGENT_LOG"
    MODELS=${AGENT_MODELS:-}
    if [[ -z "$MODELS" ]]; then
        for candidate in "$PREP/models" quickstart_out/models; do
            if [[ -f "$candidate/lumos_maths_plan_iterative/model.safetensors" ]]; then MODELS=$candidate; break; fi
        done
    fi
    if [[ -n "$MODELS" && -f "$MODELS/lumos_maths_plan_iterative/model.safetensors" ]]; then
        AGENT_ARGS+=(--model "$MODELS/lumos_maths_plan_iterative" --grounder "$MODELS/lumos_maths_ground_iterative")
        say "[agent] modules: $MODELS (trained), widened"
    else
        say "[agent] WARNING: no trained modules (build/gpu_check/models or quickstart_out/models): a fresh tiny"
        say "        model, widened; its replies are noise, so the figures are one round of prefill, not the loop"
    fi
    run_step agent 170 "$AGENT_LOG" "$PYTHON" bench/bench_agent.py --parts hf "${AGENT_ARGS[@]}" \
        && grep -vE 'Loading weights|Writing model|it/s\]|WARNING' "$AGENT_LOG" | grep -E '^(widened|model:|questions:|  )' \
           | sed 's/^/    /' | tee -a "$SUMMARY"
fi

# ------------------------------------------------------------------------------------------- 5 zero3
if wants zero3; then
    ZERO3_LOG="$OUT/zero3.log"; : > "$ZERO3_LOG"
    if [[ $DATA_OK == 1 ]]; then
        [[ $DRY == 1 ]] && say "[zero3] dry run: ./train.sh's CPU form (one process, no DeepSpeed); ZeRO-3 needs CUDA"
        if [[ $DRY == 1 ]]; then  # at least the DeepSpeed config parses and DeepSpeed imports
            "$PYTHON" -c "import json, deepspeed; c = json.load(open('train/ds_configs/stage3_no_offloading_accelerate.conf'));
print('deepspeed', deepspeed.__version__, 'ZeRO stage', c['zero_optimization']['stage'])" >> "$ZERO3_LOG" 2>&1 \
                && say "[zero3] $(tail -n 1 "$ZERO3_LOG") (config parsed, DeepSpeed imports)"
        fi
        # TASK/MODEL/DATA_DIR/... as in scripts/train/finetune.sh; one epoch cut at ZERO3_STEPS optimizer steps
        # of 8 packed rows of MAX_LEN tokens; the tiny architecture at ZERO3_SIZE (its tokenizer trained on
        # the file); DeepSpeed ZeRO-3 (train/ds_configs/stage3_no_offloading_accelerate.conf), bf16; the
        # final checkpoint (model, optimizer shards) and model are saved as in any run
        run_step zero3 200 "$ZERO3_LOG" env "${ZERO3_ENV[@]}" TASK=maths MODEL=tiny DATA_DIR="$DATA" \
            OUTPUT_DIR="$WORK/zero3" EPOCHS=1 MAX_LEN="$MAX_LEN" PACKING=1 TOTAL_BATCH_SIZE=8 BATCH_SIZE_PER_DEVICE=8 \
            CHECKPOINT_STEPS=100000 EXTRA_ARGS="${ZERO3_ARGS[*]} --max_train_steps $ZERO3_STEPS" \
            ./train.sh ground iterative \
            && "$PYTHON" - "$WORK/zero3" "$ZERO3_LOG" "${ZERO3_ENV[0]#NUM_GPUS=}" <<'PY' | tee -a "$SUMMARY"
import glob, json, re, statistics, sys
out, log, gpus = sys.argv[1], open(sys.argv[2], errors="replace").read(), int(sys.argv[3])
losses = json.load(open(f"{out}/loss_history.json"))
line = f"    {len(losses)} steps, loss {losses[0][1]:.3f} -> {losses[-1][1]:.3f}"
try:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    rates = []
    for path in glob.glob(f"{out}/**/events.out.tfevents*", recursive=True):
        events = EventAccumulator(path)
        events.Reload()
        if "tokens_per_second" in events.Tags().get("scalars", []):
            rates += [e.value for e in events.Scalars("tokens_per_second")]
    if rates:
        line += (f"; tokens/s median {statistics.median(rates[len(rates) // 3:]):,.0f} over the last two thirds "
                 f"of the steps (first step {rates[0]:,.0f})")
except Exception as error:  # the figure is optional, the run is what matters
    line += f"; tokens/s not read ({error.__class__.__name__})"
if gpus == 0:
    line += "; CPU form (no DeepSpeed)"
else:  # DeepSpeed's engine logs "Creating <dtype> ZeRO stage 3 optimizer"
    stage = re.search(r"Creating \S* ?ZeRO stage (\d)", log)
    line += "; DeepSpeed: " + (f"ZeRO stage {stage.group(1)} optimizer" if stage else
                               "no 'ZeRO stage' line in zero3.log (look there)")
print(line)
PY
    else say "[zero3] skipped: no training data"; fi
fi

say "gpu_check finished in $(( SECONDS / 60 ))m$(printf %02d $(( SECONDS % 60 )))s; logs in $OUT"
echo
echo "================ summary ($SUMMARY)"
cat "$SUMMARY"
