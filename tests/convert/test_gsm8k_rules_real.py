"""The rules converter + verification by execution on the real GSM8K socratic files."""

from __future__ import annotations

import json

import pytest

from data import prompt_convertion


@pytest.mark.slow
@pytest.mark.parametrize("name, minimum_records", [("train_socratic.jsonl", 7473), ("test_socratic.jsonl", 1319)])
def test_at_least_95_percent_converted_and_verified(tmp_path, shared_data, capsys, name, minimum_records):
    source = shared_data / "gsm8k" / name
    status = prompt_convertion.main(["--domain", "maths", "--data_fn", str(source), "--convert_all", "--verify",
                                     "--keep", "verified", "--no_progress", "--output_dir", str(tmp_path)])
    stem = name.split(".")[0]
    passed = (tmp_path / f"{stem}_converted.json").read_text().splitlines()
    failed = [json.loads(line) for line in (tmp_path / f"{stem}_converted.failed.jsonl").read_text().splitlines()]
    assert len(passed) + len(failed) == minimum_records  # every record accounted for, none twice
    share = len(passed) / minimum_records
    print(f"{name}: {len(passed)}/{minimum_records} converted and verified ({share:.1%})")
    assert share >= 0.95
    assert all(record["reason"] and record["detail"] for record in failed)
    assert status == 0  # a few records have no arithmetic at all: reported as conversion failures, not fatal
    assert "converted and verified" in capsys.readouterr().out


def test_plain_gsm8k_subgoals_read_as_the_solution_does(shared_data):
    """A plain (non-socratic) GSM8K step writes the value after its annotation (``48/2 = <<48/2=24>>24``):
    the subgoal keeps it once (``48/2 = 24``), never twice (``2424``)."""
    import re

    from lumos.convert.rules_maths import split_solution, subgoal_text

    records = [json.loads(line) for line in (shared_data / "gsm8k" / "train.jsonl").open()][:300]
    checked = 0
    for record in records:
        for step in split_solution(record["answer"]).steps:
            text = subgoal_text(step)
            assert "<<" not in text and ">>" not in text
            for expression, value in re.findall(r"<<([^<>=]*)=([^<>]*)>>", step.text):
                assert value + value not in text.replace(" ", "") or value * 2 in step.text.replace(" ", ""), text
            checked += 1
    assert checked > 500
    first = split_solution(records[0]["answer"]).steps[0]
    assert subgoal_text(first) == "Natalia sold 48/2 = 24 clips in May."
