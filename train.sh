#!/usr/bin/env bash
# Fine-tune a Lumos module:  ./train.sh plan|ground iterative|onetime
# Runs scripts/train/finetune_llama2_<module>_<formulation>.sh; settings (MODEL, TASK, OUTPUT_DIR, ...)
# come from the environment, see scripts/train/finetune.sh.
# Paths in the environment (TRAIN_FILE, DATA_DIR, OUTPUT_DIR, MODEL) are read from the directory you run it in.
set -euo pipefail
if [[ $# -ne 2 ]]; then echo "train: usage: ./train.sh plan|ground iterative|onetime" >&2; exit 2; fi
script="$(dirname "$0")/scripts/train/finetune_llama2_$1_$2.sh"
if [[ ! -f "$script" ]]; then
    echo "train: no script for '$1 $2': use ./train.sh plan|ground iterative|onetime" >&2; exit 2
fi
exec bash "$script"
