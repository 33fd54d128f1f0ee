#!/usr/bin/env bash
# Fine-tune the grounding module (iterative formulation); settings as in scripts/train/finetune.sh.
exec "$(dirname "$0")/finetune.sh" ground iterative "$@"
