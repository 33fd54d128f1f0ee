"""Evaluate Lumos on strategyqa: `python -m eval.strategyqa.run_eval --help` (flags: eval/runner.py)."""

import sys

from eval.strategyqa.benchmark import BENCHMARK
from eval.runner import main

if __name__ == "__main__":
    sys.exit(main(BENCHMARK))
