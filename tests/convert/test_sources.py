"""Readers of the raw benchmarks: real files through shared_data, edge cases written here."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from lumos.convert.sources import (SourceError, SourceTask, UnusableRecord, detect_source, read_source)
from lumos.jsonl import BadRecord


def _kinds(items):
    return Counter(type(item).__name__ for item in items)


def _write(path, records):
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in records) + "\n")
    return path


STRATEGY = {
    "qid": "q1", "question": "Are more people related to Genghis Khan than Julius Caesar?", "answer": True,
    "facts": ["Julius Caesar had three children.", "Genghis Khan had sixteen children."],
    "decomposition": ["How many kids did Julius Caesar have?", "How many kids did Genghis Khan have?",
                      "Is #2 greater than #1?"],
    "evidence": [
        [[["Caesarion-2"]], ["no_evidence"], ["operation"]],
        [[["Julius Caesar-75"]], [["Genghis Khan-17"], ["Tolui-1"]], ["operation"]],
    ],
}


def test_strategyqa_plan_text_uses_first_annotator_without_no_evidence(tmp_path):
    (task,) = read_source(_write(tmp_path / "s.jsonl", [STRATEGY]))
    assert isinstance(task, SourceTask) and task.source == "strategyqa" and task.answer == "yes"
    assert task.natural_language_plan == (
        "We find relevant facts: Julius Caesar had three children. Genghis Khan had sixteen children. "
        "We need to answer these questions: 1. How many kids did Julius Caesar have? (Can be answered based on "
        "paragraph 'Julius Caesar-75') 2. How many kids did Genghis Khan have? (Can be answered based on paragraph "
        "'Genghis Khan-17', 'Tolui-1') 3. Is #2 greater than #1? Based on these evidences and decomposed questions, "
        "the answer is True.")


def test_unusable_and_bad_records_are_reported_not_dropped(tmp_path):
    all_no_evidence = dict(STRATEGY, qid="q2", evidence=[[["no_evidence"], [["A-1"]], ["operation"]]])
    missing_facts = {k: v for k, v in STRATEGY.items() if k != "facts"} | {"qid": "q3"}
    path = _write(tmp_path / "s.jsonl", [STRATEGY, all_no_evidence, "{not json", missing_facts, "[1, 2]"])
    items = list(read_source(path))
    assert _kinds(items) == {"SourceTask": 1, "UnusableRecord": 2, "BadRecord": 2}
    unusable = {item.id: item for item in items if isinstance(item, UnusableRecord)}
    assert "no_evidence" in unusable["q2"].reason and unusable["q2"].line_no == 2
    assert "facts" in unusable["q3"].reason
    assert [item.line_no for item in items if isinstance(item, BadRecord)] == [3, 5]


def test_musique_hop_without_support_is_unusable_and_index_zero_is_not(tmp_path):
    base = {"id": "m1", "question": "Who?", "answer": "B",
            "paragraphs": [{"idx": 0, "title": "T0", "paragraph_text": "Zero."},
                           {"idx": 1, "title": "T1", "paragraph_text": "One."}],
            "question_decomposition": [{"question": "q1", "answer": "A", "paragraph_support_idx": 0},
                                       {"question": "q2 #1", "answer": "B", "paragraph_support_idx": 1}]}
    broken = json.loads(json.dumps(base))
    broken["id"] = "m2"
    broken["question_decomposition"][1]["paragraph_support_idx"] = None
    good, bad = read_source(_write(tmp_path / "m.jsonl", [base, broken]))
    assert isinstance(good, SourceTask) and good.answer == "B"
    assert "We find relevant facts: Zero. One. We need to answer" in good.natural_language_plan
    assert "2. q2 #1 (Can be answered based on paragraph 'T1')" in good.natural_language_plan
    assert isinstance(bad, UnusableRecord) and bad.reason == "hop 2 has no supporting paragraph"


def test_source_detected_from_schema_not_file_name(tmp_path):
    gsm = {"question": "How many?", "answer": "Half ** She has 1,000/2 = <<1000/2=500>>500.\n#### 1,000"}
    # A file named like another source is still read by its records' fields.
    (task,) = read_source(_write(tmp_path / "musique_strategyqa.jsonl", [gsm]))
    assert task.source == "gsm8k" and task.answer == "1000"
    assert task.natural_language_plan == "She has 1,000/2 = <<1000/2=500>>500."
    assert detect_source({"confirmed_task": "x", "action_reprs": []}) == "mind2web"
    assert detect_source({"question": {"problem": "p", "ground_truth_solution": "s"}}) == "prm800k"
    with pytest.raises(SourceError, match="no record has the fields"):
        list(read_source(_write(tmp_path / "x.jsonl", [{"text": "hello"}])))
    with pytest.raises(SourceError, match="unknown source"):
        list(read_source(tmp_path / "x.jsonl", source="hotpotqa"))


def test_source_override_reports_missing_fields(tmp_path):
    path = _write(tmp_path / "a.jsonl", [{"question": "How many?", "solution": "1+1=2", "answer": "2 (apples)"}])
    (task,) = read_source(path)
    assert task.source == "asdiv" and task.answer == "2" and task.natural_language_plan == "1+1=2"
    (forced,) = read_source(path, source="mind2web")
    assert isinstance(forced, UnusableRecord) and forced.reason == "missing field 'action_reprs'"


def test_prm800k_fields(tmp_path):
    record = {"question": {"problem": "What is 1+1?", "ground_truth_solution": "1+1 = 2.",
                           "ground_truth_answer": "2"}, "label": {}}
    (task,) = read_source(_write(tmp_path / "p.jsonl", [record]))
    assert (task.source, task.task, task.natural_language_plan, task.answer) == \
        ("prm800k", "What is 1+1?", "1+1 = 2.", "2")


@pytest.mark.shared_data
def test_strategyqa_train_usable_count_matches_original_filter(shared_data):
    items = list(read_source(shared_data / "strategyqa" / "strategyqa_train.json"))
    assert len(items) == 2290
    assert _kinds(items) == {"SourceTask": 1977, "UnusableRecord": 313}
    assert {item.reason for item in items if isinstance(item, UnusableRecord)} == \
        {"every annotator's evidence has a 'no_evidence' step"}


@pytest.mark.shared_data
def test_musique_sample_all_usable(shared_data):
    items = list(read_source(shared_data / "musique" / "musique_ans_train_sample100.hipporag.json"))
    assert _kinds(items) == {"SourceTask": 100}
    first = items[0]
    assert first.id == "2hop__150763_14904" and first.answer == "G. Stanley Hall"
    assert "(Can be answered based on paragraph 'Journal of Psychotherapy Integration')" in first.natural_language_plan


@pytest.mark.shared_data
def test_maths_and_web_sources(shared_data):
    gsm = next(iter(read_source(shared_data / "gsm8k" / "train_socratic.jsonl")))
    assert gsm.answer == "72" and gsm.natural_language_plan.startswith("Natalia sold 48/2 = <<48/2=24>>24 clips")
    assert "How many clips" not in gsm.natural_language_plan
    asdiv = list(read_source(shared_data / "asdiv" / "asdiv_from_xml.jsonl"))
    assert all(isinstance(item, SourceTask) and item.source == "asdiv" for item in asdiv)
    assert asdiv[0].answer == "9"
    web = list(read_source(shared_data / "mind2web" / "mind2web_train_sample5.openbrowser.json"))
    assert [item.source for item in web] == ["mind2web"] * 5
    assert web[0].natural_language_plan.startswith("[combobox]  Reservation type -> SELECT: Dine-in; [svg]   -> CLICK")
