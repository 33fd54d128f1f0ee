"""Evaluate Lumos on InterCode-SQL: `python -m eval.intercode_sql.run_eval --help` (flags: eval/runner.py)."""

import sys

from eval.intercode_sql.benchmark import BENCHMARK
from eval.runner import main

if __name__ == "__main__":
    sys.exit(main(BENCHMARK))
