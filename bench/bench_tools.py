"""Calculator throughput: the exact in-process fast path against sympy in the worker (same run).

    python bench/bench_tools.py                                          # generated formulas
    python bench/bench_tools.py --data ../shared/data/gsm8k/train.jsonl  # GSM8K's <<expr=value>> annotations

Prints Calculator calls/s through ``Toolbox.execute`` (fast path for arithmetic), the baseline
calls/s with every formula sent to sympy in the confined worker, and the ratio. Both run on the
same formulas; the worker is started before timing.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import time

from lumos.format import Action
from lumos.tools.maths import MathsEngine, maths_toolbox

_ANNOTATION = re.compile(r"<<([^=<>]*)=([^<>]*)>>")


def gsm8k_formulas(path: str, limit: int) -> list[str]:
    formulas: list[str] = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            formulas += [formula for formula, _ in _ANNOTATION.findall(json.loads(line)["answer"])]
            if len(formulas) >= limit:
                break
    return formulas[:limit]


def generated_formulas(count: int, seed: int = 0) -> list[str]:
    """Word-problem-like arithmetic: 2-4 operands, money and percentages included."""
    rng = random.Random(seed)
    operands = [lambda: str(rng.randint(1, 500)), lambda: f"{rng.randint(0, 99)}.{rng.randint(0, 99):02d}",
                lambda: f"${rng.randint(1, 9)},{rng.randint(0, 999):03d}", lambda: f"{rng.randint(1, 100)}%"]
    formulas = []
    for _ in range(count):
        terms = [rng.choice(operands)() for _ in range(rng.randint(2, 4))]
        text = terms[0]
        for term in terms[1:]:
            text += f" {rng.choice(['+', '-', '*', '/', 'x'])} {term}"
        formulas.append(text)
    return formulas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="GSM8K jsonl whose <<expr=value>> annotations are the formulas")
    parser.add_argument("--n", type=int, default=3000, help="formulas for the fast path")
    parser.add_argument("--baseline_n", type=int, default=300, help="formulas for the sympy baseline (slower)")
    args = parser.parse_args()

    formulas = gsm8k_formulas(args.data, args.n) if args.data else generated_formulas(args.n)
    source = args.data or "generated formulas"

    with maths_toolbox() as toolbox:
        toolbox.execute(Action("Calculator", "x + 1", ("R1",)), {})  # start the worker before timing
        started = time.perf_counter()
        for formula in formulas:
            toolbox.execute(Action("Calculator", formula, ("R1",)), {})
        fast = len(formulas) / (time.perf_counter() - started)

    engine = MathsEngine(timeout=5.0)
    try:
        baseline_formulas = formulas[:args.baseline_n]
        engine.evaluate_symbolic("x + 1")
        started = time.perf_counter()
        for formula in baseline_formulas:
            engine.evaluate_symbolic(formula)
        baseline = len(baseline_formulas) / (time.perf_counter() - started)
    finally:
        engine.close()

    print(f"formulas: {len(formulas)} from {source}")
    print(f"Calculator, fast path (Toolbox.execute):   {fast:10.0f} calls/s")
    print(f"Calculator, sympy in the worker (baseline): {baseline:10.0f} calls/s  ({len(baseline_formulas)} calls)")
    print(f"ratio fast / baseline: {fast / baseline:.1f}x")


if __name__ == "__main__":
    main()
