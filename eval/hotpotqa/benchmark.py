"""HotpotQA (``data/eval/hotpotqa/test.json``): a JSON list of ``question``, ``answer`` (``_id`` when present).

Domain complex_qa; scored by exact match and token F1 after the official normalisation
(lowercase, no punctuation, no a/an/the, single spaces).
"""

from __future__ import annotations

import re
from pathlib import Path

from eval.runner import Benchmark, Example
from lumos.jsonl import BadRecord, read_records
from lumos.metrics import exact_match, f1_score

_ANSWER_IS = re.compile(r"answer is:?\s*(.+?)\.?$", re.IGNORECASE | re.DOTALL)


def load(path: Path) -> list[Example]:
    examples = []
    for record in read_records(path):
        if isinstance(record, BadRecord):
            raise ValueError(f"HotpotQA {record}")
        data = record.data
        examples.append(Example(id=str(data.get("_id", f"hotpotqa_{record.line_no - 1}")),
                                question=data["question"].strip(), answer=str(data["answer"])))
    return examples


def extract(text: str) -> str:
    """A chain of thought's final answer (``... so the answer is X.``), else the whole reply."""
    match = _ANSWER_IS.search(text)
    return match.group(1).strip() if match else text.strip()


BENCHMARK = Benchmark(name="hotpotqa", domain="complex_qa", data_file="test.json", load=load,
                      score=lambda prediction, gold: {"em": exact_match(prediction or "", gold),
                                                      "f1": f1_score(prediction or "", gold)},
                      extract=extract)
