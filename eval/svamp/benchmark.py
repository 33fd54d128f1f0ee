"""SVAMP (``data/eval/svamp/test.json``): a JSON list of ``ID``, ``Body``, ``Question``, ``Answer``.

The task is ``Body + " " + Question``, unchanged, as the released evaluation builds it (some bodies
stop without a period: they stay so); domain maths; numeric accuracy. ``--scoring original``: the
final variable's text equals ``str(int(Answer))``.
"""

from __future__ import annotations

from pathlib import Path

from eval.runner import Benchmark, Example, read_examples
from lumos.metrics import extract_number, numeric_accuracy, original_maths_score


def task_text(body: str, question: str) -> str:
    return body + " " + question


def original_answer(answer: object) -> str:
    """The released evaluation's gold text: ``str(int(Answer))`` (``2.5`` -> ``'2'``)."""
    return str(int(float(answer)))


def load(path: Path) -> list[Example]:
    return read_examples(path, "SVAMP", lambda data, n: Example(
        id=str(data.get("ID", f"svamp_{n}")), question=task_text(data["Body"], data["Question"]),
        answer=data["Answer"]))


BENCHMARK = Benchmark(name="svamp", domain="maths", data_file="test.json", load=load,
                      score=lambda prediction, gold: {"accuracy": numeric_accuracy(prediction, gold)},
                      extract=lambda text: extract_number(text) or text,
                      original_rounds=4,  # the released eval/svamp/run_eval.py: 2 subgoals (a planner and a grounder call each)
                      score_original=lambda episode, example, formulation: original_maths_score(
                          episode, original_answer(example.answer), formulation))
