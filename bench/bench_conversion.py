"""Conversion and verification throughput, against a naive same-run baseline.

    python bench/bench_conversion.py                                   # generated problems
    python bench/bench_conversion.py --data ../shared/data/gsm8k/train_socratic.jsonl

Prints records/s for rule conversion alone and with verification by execution, tool calls/s,
and the ratio against a baseline measured in the same run on the same plans: every action
evaluated by plain ``sympy.sympify`` in-process (what a straightforward implementation does,
without the bounded exact-arithmetic path or any time/memory limit).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from lumos.convert.rules_maths import ConversionError, convert_record
from lumos.convert.verify import verify_plan
from lumos.tools.maths import maths_toolbox


def load(path: str | None, n: int) -> list[dict]:
    if path:
        with open(path, encoding="utf-8") as handle:
            return [json.loads(line) for line in handle if line.strip()][:n]
    from lumos.synthetic import generate_problems

    return generate_problems(n, seed=1, split="train")


def sympy_baseline(plans) -> tuple[float, int]:
    import sympy

    started, calls = time.perf_counter(), 0
    for plan, _ in plans:
        values: dict[str, object] = {}
        for action in plan.actions:
            expr = action.args
            for name, value in sorted(values.items(), key=lambda item: -len(item[0])):
                expr = expr.replace(name, f"({value})")
            try:
                values[action.outputs[0]] = sympy.sympify(expr.replace("%", "/100"))
            except (sympy.SympifyError, TypeError, SyntaxError, ZeroDivisionError):
                values[action.outputs[0]] = 0
            calls += 1
    return time.perf_counter() - started, calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=None, help="GSM8K-format JSONL (default: generated problems)")
    parser.add_argument("--n", type=int, default=3000)
    args = parser.parse_args()
    records = load(args.data, args.n)

    started = time.perf_counter()
    plans = []
    for record in records:
        try:
            plan, solution = convert_record(record)
        except ConversionError:
            continue
        plans.append((plan, solution.answer))
    convert_seconds = time.perf_counter() - started

    toolbox = maths_toolbox()
    started, calls, passed = time.perf_counter(), 0, 0
    for plan, answer in plans:
        passed += verify_plan(plan, answer, toolbox).ok
        calls += len(plan.actions)
    verify_seconds = time.perf_counter() - started
    toolbox.close()

    baseline_seconds, baseline_calls = sympy_baseline(plans)
    print(f"records: {len(records)} ({Path(args.data).name if args.data else 'generated'}), converted {len(plans)}, "
          f"verified {passed}")
    print(f"rule conversion:           {len(records) / convert_seconds:10.0f} records/s")
    print(f"conversion + verification: {len(records) / (convert_seconds + verify_seconds):10.0f} records/s")
    print(f"tool calls (maths tools):  {calls / verify_seconds:10.0f} calls/s")
    print(f"baseline (sympify each):   {baseline_calls / baseline_seconds:10.0f} calls/s")
    print(f"ratio tool calls/s vs baseline: {(calls / verify_seconds) / (baseline_calls / baseline_seconds):.1f}x")


if __name__ == "__main__":
    main()
