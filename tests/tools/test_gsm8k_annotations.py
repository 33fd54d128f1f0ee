"""The Calculator reproduces GSM8K's own calculator annotations ``<<expr=value>>``."""

import json
import re

import pytest

from lumos.format import Action
from lumos.tools import ToolError, same_number

_ANNOTATION = re.compile(r"<<([^=<>]*)=([^<>]*)>>")


@pytest.mark.shared_data
def test_calculator_matches_gsm8k_annotations(shared_data, maths):
    pairs = []
    with open(shared_data / "gsm8k" / "train.jsonl") as lines:
        for _, line in zip(range(500), lines):
            pairs += _ANNOTATION.findall(json.loads(line)["answer"])
    assert len(pairs) > 1000
    mismatches = []
    for formula, claimed in pairs:
        try:
            value = maths.execute(Action("Calculator", formula, ("R1",)), {})
        except ToolError as error:
            mismatches.append((formula, claimed, str(error)))
            continue
        if not same_number(value, claimed):
            mismatches.append((formula, claimed, value))
    assert len(mismatches) <= 0.01 * len(pairs), mismatches[:20]
