"""Evaluate Lumos on gsm: `python -m eval.gsm.run_eval --help` (flags: eval/runner.py)."""

import sys

from eval.gsm.benchmark import BENCHMARK
from eval.runner import main

if __name__ == "__main__":
    sys.exit(main(BENCHMARK))
