"""GSM8K test (``data/eval/gsm/test.jsonl``): ``question`` and a solution ending ``#### <answer>``.

Domain maths; the prediction is the last result; scored by numeric accuracy (``18`` = ``18.0`` = ``$18``).
``--scoring original``: the final variable's text equals the answer text (commas between digits removed).
"""

from __future__ import annotations

from pathlib import Path

from eval.runner import Benchmark, Example, read_examples
from lumos.metrics import extract_number, numeric_accuracy, original_maths_score


def gold_answer(solution: str) -> str:
    """``"... #### 1,200"`` -> ``"1200"``."""
    marker = solution.rfind("####")
    if marker < 0:
        raise ValueError(f"GSM8K solution has no '#### <answer>' line: {solution[-80:]!r}")
    return solution[marker + 4:].strip().replace(",", "")


def load(path: Path) -> list[Example]:
    return read_examples(path, "GSM8K", lambda data, n: Example(
        id=str(data.get("id", f"gsm_{n}")), question=data["question"].strip(), answer=gold_answer(data["answer"])))


BENCHMARK = Benchmark(name="gsm", domain="maths", data_file="test.jsonl", load=load,
                      score=lambda prediction, gold: {"accuracy": numeric_accuracy(prediction, gold)},
                      extract=lambda text: extract_number(text) or text,
                      # the released eval/gsm/run_eval.py: 8 subgoals, each a planner and a grounder call, under the
                      # maths domain's original protocol (lumos.domains)
                      original_rounds=16,
                      score_original=lambda episode, example, formulation: original_maths_score(
                          episode, example.answer, formulation))
