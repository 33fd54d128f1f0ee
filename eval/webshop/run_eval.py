"""Evaluate Lumos on webshop: `python -m eval.webshop.run_eval --help` (flags: eval/runner.py,
eval/webshop/benchmark.py)."""

import sys

from eval.runner import main
from eval.webshop.benchmark import BENCHMARK

if __name__ == "__main__":
    sys.exit(main(BENCHMARK))
