#!/usr/bin/env bash
# Evaluate on strategyqa; flags pass through, e.g.
#   scripts/eval/strategyqa.sh --model_name_or_path checkpoints --formulation lumos_iterative --eval_batch_size 16
set -euo pipefail
cd "$(dirname "$0")/../.."
exec python -m eval.strategyqa.run_eval "$@"
