"""Validation of untrusted complex-QA and web annotations, and the offline download script."""

from __future__ import annotations

import os
import subprocess

import pytest

from lumos.convert.validate import (FORMAT, GOLD_MISMATCH, MISSING_RESULT, OUTPUT_NUMBERING, UNDEFINED_VARIABLE,
                                    UNKNOWN_TOOL, WEB_SHAPE, validate_annotation, validate_complex_qa, validate_web)

GOOD_QA = ("Subgoal 1: Find the publisher.\n"
           "Action 1-1: R1 = KnowledgeQuery(Journal X) = WikipediaPage(Journal X)\n"
           "Action 1-2: R2 = ParagraphRetrieve(R1, Query: Who publishes Journal X?) = Acme publishes it.\n"
           "Action 1-3: R3 = QA([R2], Question: Who publishes the Audi R8 guide?) = Acme\n\n"
           "Subgoal 2: Answer.\n"
           "Action 2-1: Output = QA([R3], Question: Is R3 a company?) = yes")


def _kinds(problems):
    return [p.kind for p in problems]


def test_valid_complex_qa_has_no_problem():
    assert validate_complex_qa(GOOD_QA) == []
    assert validate_annotation({"subgoal_plan": GOOD_QA}, "complex_qa") == []


@pytest.mark.parametrize("broken, kind", [
    (GOOD_QA.replace("QA([R2]", "QA([R5]"), UNDEFINED_VARIABLE),
    (GOOD_QA.replace("R2 = Paragraph", "R4 = Paragraph"), OUTPUT_NUMBERING),
    (GOOD_QA.replace("KnowledgeQuery", "GoogleSearch"), UNKNOWN_TOOL),
    (GOOD_QA.replace(" = yes", ""), MISSING_RESULT),
    (GOOD_QA.replace("Action 1-2", "Action 1-3"), FORMAT),
    (GOOD_QA.replace("R1 = KnowledgeQuery", "KnowledgeQuery"), OUTPUT_NUMBERING),
])
def test_complex_qa_problems_are_typed(broken, kind):
    problems = validate_complex_qa(broken)
    assert kind in _kinds(problems), problems
    assert all(str(p) for p in problems)


def test_undefined_variable_names_the_action():
    (problem,) = validate_complex_qa(GOOD_QA.replace("QA([R2]", "QA([R9]"))
    assert (problem.subgoal, problem.action) == (1, 3) and "R9" in problem.reason


GOLD = ["[textbox]  From -> TYPE: New York", "[button]  Search -> CLICK", "[combobox]  Size -> SELECT: 2"]
GOOD_WEB = ("Subgoal 1: Type New York into the From field.\n"
            "Action 1-1: R1 = TYPE(Env, QUERY: Type New York into the From field, TEXT: new  york)\n\n"
            "Subgoal 2: Search and pick the size.\nAction 2-1: R2 = CLICK(R1, QUERY: Click the Search button)\n"
            "Action 2-2: R3 = SELECT(R2, QUERY: Pick size 2 (not R9), TEXT: 2)")


def test_web_matches_gold_by_operation_and_value():
    assert validate_web(GOOD_WEB, GOLD) == []
    assert validate_web(GOOD_WEB) == []
    wrong_value = validate_web(GOOD_WEB.replace("TEXT: 2)", "TEXT: 3)"), GOLD)
    assert _kinds(wrong_value) == [GOLD_MISMATCH] and "SELECT: 2" in wrong_value[0].reason
    swapped = validate_web(GOOD_WEB.replace("CLICK(R1, QUERY: Click the Search button)",
                                            "TYPE(R1, QUERY: Search, TEXT: x)"), GOLD)
    assert _kinds(swapped) == [GOLD_MISMATCH]
    shorter = validate_web(GOOD_WEB.split("\nAction 2-2")[0], GOLD)
    assert _kinds(shorter) == [GOLD_MISMATCH] and "2 actions for 3 gold steps" in shorter[0].reason


@pytest.mark.parametrize("old, new, kinds", [
    ('R2 = CLICK(R1, QUERY: Click the Search button)', 'CLICK(Env, "Search button")', [WEB_SHAPE]),  # quoted form
    ('R2 = CLICK(R1, QUERY: Click the Search button)', 'R2 = CLICK(R1)', [WEB_SHAPE]),
    ('R2 = CLICK(R1, QUERY: Click the Search button)', 'R2 = CLICK(R1, QUERY: Search, TEXT: x)', [WEB_SHAPE]),
    ('R2 = CLICK(R1, QUERY: Click the Search button)', 'R2 = CLICK(R1, QUERY: Search) = done', [WEB_SHAPE]),
    ('R2 = CLICK(R1, QUERY: Click the Search button)', 'CLICK(R1, QUERY: Search)', [OUTPUT_NUMBERING]),
    ('R2 = CLICK(R1, QUERY: Click the Search button)', 'R5 = CLICK(R1, QUERY: Search)', [OUTPUT_NUMBERING]),
    ('R2 = CLICK(R1, QUERY: Click the Search button)', 'R2 = CLICK(Env, QUERY: Search)', [WEB_SHAPE]),
    ('R3 = SELECT(R2,', 'R3 = SELECT(R4,', [UNDEFINED_VARIABLE]),
    ("SELECT(", "SCROLL(", [UNKNOWN_TOOL]),
])
def test_web_shape_problems(old, new, kinds):
    assert _kinds(validate_web(GOOD_WEB.replace(old, new), GOLD)) == kinds


def test_web_queries_are_free_text():
    """A '"' or an unmatched parenthesis in a query is data (the lumos.format scanner would balance them)."""
    text = GOOD_WEB.replace("QUERY: Click the Search button", 'QUERY: Click the 27" (4K Search button')
    assert validate_web(text, GOLD) == []
    assert _kinds(validate_web(text.replace("Action 2-2", "Action 2-3"), GOLD)) == [FORMAT]
    assert _kinds(validate_web(text.replace("R3 = SELECT(R2, QUERY:", "R3 = SELECT(R2, QUERY"), GOLD)) == [WEB_SHAPE]


def test_web_annotation_edge_cases():
    assert _kinds(validate_annotation({"subgoal_plan": ""}, "web_agent")) == [FORMAT]
    with pytest.raises(ValueError, match="verified by execution"):
        validate_annotation({"subgoal_plan": GOOD_QA}, "maths")


@pytest.mark.timeout(120)
def test_download_script_fails_cleanly_offline(repo_root, tmp_path):
    unreachable = "http://127.0.0.1:9"
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HTTPS_PROXY=unreachable,
               HTTP_PROXY=unreachable, https_proxy=unreachable, http_proxy=unreachable, NO_PROXY="", no_proxy="",
               HF_HOME=str(tmp_path / "hf"))
    run = subprocess.run([str(repo_root / "scripts" / "download_data.sh"), "--out", str(tmp_path / "data"),
                          "--drive", "--only", "complex_qa_plan_iterative,web_agent_ground_iterative"],
                         env=env, capture_output=True, text=True, timeout=100)
    lines = run.stdout.strip().splitlines()
    assert run.returncode == 1, run.stdout + run.stderr
    assert "Traceback" not in run.stdout + run.stderr
    # the hosts are probed first (through the proxy when one is set): offline is said at once, then each item
    assert lines[0].startswith("offline: cannot reach drive.google.com or huggingface.co")
    assert lines[1] == "could not fetch the Google Drive folder: offline (cannot reach drive.google.com)"
    assert lines[2].startswith("could not fetch ai2lumos/lumos_complex_qa_plan_iterative: offline")
    assert lines[3].startswith("could not fetch ai2lumos/lumos_web_agent_ground_iterative: offline")
    assert lines[4] == "0 of 3 items fetched"
    assert not (tmp_path / "data" / "train").exists()


def test_download_script_rejects_unknown_names(repo_root):
    run = subprocess.run([str(repo_root / "scripts" / "download_data.sh"), "--only", "maths_plan_sometimes"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "unknown dataset name(s): maths_plan_sometimes" in run.stderr
