"""Evaluate Lumos on hotpotqa: `python -m eval.hotpotqa.run_eval --help` (flags: eval/runner.py)."""

import sys

from eval.hotpotqa.benchmark import BENCHMARK
from eval.runner import main

if __name__ == "__main__":
    sys.exit(main(BENCHMARK))
