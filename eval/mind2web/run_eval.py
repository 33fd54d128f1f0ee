"""Evaluate Lumos on mind2web: `python -m eval.mind2web.run_eval --help` (flags: eval/runner.py,
eval/mind2web/benchmark.py)."""

import sys

from eval.mind2web.benchmark import BENCHMARK
from eval.runner import main

if __name__ == "__main__":
    sys.exit(main(BENCHMARK))
