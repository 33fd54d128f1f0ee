# Sourced by the scripts/eval/<benchmark>.sh wrappers: run `python -m eval.<benchmark>.run_eval`.
#
# Paths (flags or environment) are read from the directory the wrapper is run in, as any command's are.
# The environment gives defaults that flags override (the last value of a flag wins):
#   MODEL_DIR         --model_name_or_path (not needed when --planner and --grounder are given)
#   DATA_DIR          --data_dir            SAVE_DIR          --save_dir
#   MAX_NUM_EXAMPLES  --max_num_examples    EVAL_BATCH_SIZE   --eval_batch_size
# `<wrapper> --help` lists every flag with its default.
run_eval() {
    local benchmark=$1
    shift
    local root
    root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
    export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
    local defaults=()
    [[ -n "${MODEL_DIR:-}" ]] && defaults+=(--model_name_or_path "$MODEL_DIR")
    [[ -n "${DATA_DIR:-}" ]] && defaults+=(--data_dir "$DATA_DIR")
    [[ -n "${SAVE_DIR:-}" ]] && defaults+=(--save_dir "$SAVE_DIR")
    [[ -n "${MAX_NUM_EXAMPLES:-}" ]] && defaults+=(--max_num_examples "$MAX_NUM_EXAMPLES")
    [[ -n "${EVAL_BATCH_SIZE:-}" ]] && defaults+=(--eval_batch_size "$EVAL_BATCH_SIZE")
    exec python -m "eval.$benchmark.run_eval" "${defaults[@]}" "$@"
}
