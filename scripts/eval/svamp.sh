#!/usr/bin/env bash
# Evaluate on svamp; flags pass through, e.g.
#   scripts/eval/svamp.sh --model_name_or_path checkpoints --formulation lumos_iterative --eval_batch_size 16
set -euo pipefail
cd "$(dirname "$0")/../.."
exec python -m eval.svamp.run_eval "$@"
