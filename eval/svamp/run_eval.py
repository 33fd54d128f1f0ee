"""Evaluate Lumos on svamp: `python -m eval.svamp.run_eval --help` (flags: eval/runner.py)."""

import sys

from eval.svamp.benchmark import BENCHMARK
from eval.runner import main

if __name__ == "__main__":
    sys.exit(main(BENCHMARK))
