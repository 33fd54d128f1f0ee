"""SVAMP (``data/eval/svamp/test.json``): a JSON list of ``ID``, ``Body``, ``Question``, ``Answer``.

The task is ``Body`` and ``Question`` joined by a space; domain maths; numeric accuracy.
"""

from __future__ import annotations

from pathlib import Path

from eval.runner import Benchmark, Example
from lumos.jsonl import BadRecord, read_records
from lumos.metrics import extract_number, numeric_accuracy


def task_text(body: str, question: str) -> str:
    body = body.strip()
    if body and body[-1] not in ".?!":
        body += "."  # some bodies stop mid-sentence ("... a discount of 25 dollars on each pack")
    return f"{body} {question.strip()}".strip()


def load(path: Path) -> list[Example]:
    examples = []
    for record in read_records(path):
        if isinstance(record, BadRecord):
            raise ValueError(f"SVAMP {record}")
        data = record.data
        examples.append(Example(id=str(data.get("ID", f"svamp_{record.line_no - 1}")),
                                question=task_text(data["Body"], data["Question"]), answer=data["Answer"]))
    return examples


BENCHMARK = Benchmark(name="svamp", domain="maths", data_file="test.json", load=load,
                      score=lambda prediction, gold: {"accuracy": numeric_accuracy(prediction, gold)},
                      extract=lambda text: extract_number(text) or text)
