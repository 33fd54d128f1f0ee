#!/usr/bin/env bash
# Fine-tune the planning module (onetime formulation); settings as in scripts/train/finetune.sh.
exec "$(dirname "$0")/finetune.sh" plan onetime "$@"
