"""StrategyQA (``data/eval/strategyqa/test.json``): a JSON list of ``question`` and boolean ``answer``.

Domain complex_qa; the prediction (``yes``, ``True.``, ``No, because ...``) is read as yes/no and
compared with the gold boolean; anything else scores 0.
"""

from __future__ import annotations

from pathlib import Path

from eval.hotpotqa.benchmark import extract
from eval.runner import Benchmark, Example
from lumos.jsonl import BadRecord, read_records
from lumos.metrics import yes_no_accuracy


def load(path: Path) -> list[Example]:
    examples = []
    for record in read_records(path):
        if isinstance(record, BadRecord):
            raise ValueError(f"StrategyQA {record}")
        data = record.data
        examples.append(Example(id=str(data.get("qid", f"strategyqa_{record.line_no - 1}")),
                                question=data["question"].strip(), answer=data["answer"]))
    return examples


BENCHMARK = Benchmark(name="strategyqa", domain="complex_qa", data_file="test.json", load=load,
                      score=lambda prediction, gold: {"accuracy": yes_no_accuracy(prediction, gold)},
                      extract=extract)
