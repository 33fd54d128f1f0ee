"""The synthetic GSM8K-style problems: format, exact arithmetic, variety and leak-free splits."""

from __future__ import annotations

import ast
import collections
import json
import re
import subprocess
import sys
from fractions import Fraction

import pytest

from lumos.synthetic import (
    SPLITS,
    SyntheticError,
    assign_split,
    diagnosis,
    failure_kind,
    generate_problems,
    gold_expressions,
    is_held_out_chain,
    is_held_out_name,
    iter_problems,
    main,
)
from lumos.jsonl import SourceRecord, read_records

STEP_LINE = re.compile(r"^.+\? \*\* .+<<.+=.+>>.+$")
FINAL_LINE = re.compile(r"^#### (\d+)$")
ANNOTATION = re.compile(r"<<([^=<>]+)=([^<>]+)>>")
WORD_CONSTANTS = {2, 3, 4}  # "twice", "half", "a third", "a quarter" carry no digits in the question
_OPS = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b,
        ast.Mult: lambda a, b: a * b, ast.Div: lambda a, b: a / b}


def exact_value(expr: str) -> Fraction:
    """Evaluate a calculator annotation with exact fractions; only + - * / over integers."""

    def walk(node: ast.AST) -> Fraction:
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return _OPS[type(node.op)](walk(node.left), walk(node.right))
        if isinstance(node, ast.Constant) and type(node.value) is int:
            return Fraction(node.value)
        raise AssertionError(f"unexpected element {ast.dump(node)} in {expr!r}")

    return walk(ast.parse(expr, mode="eval").body)


@pytest.fixture(scope="module")
def train() -> list[dict]:
    return generate_problems(2000, seed=0, split="train")


@pytest.fixture(scope="module")
def test_problems() -> list:
    return list(iter_problems(600, seed=0, split="test"))


def test_same_arguments_give_the_same_problems_and_a_new_seed_new_ones():
    first = generate_problems(300, seed=5, split="train")
    assert first == generate_problems(300, seed=5, split="train")
    assert generate_problems(100, seed=5, split="train") == first[:100]  # a prefix does not change
    other = generate_problems(300, seed=6, split="train")
    assert len({r["question"] for r in first} & {r["question"] for r in other}) < 10


def test_records_have_the_gsm8k_fields_and_unique_ids_and_questions(train):
    assert all(set(record) == {"id", "question", "answer"} for record in train)
    assert len({record["id"] for record in train}) == len(train)
    assert len({record["question"] for record in train}) == len(train)


def test_answers_match_the_socratic_format(train):
    for record in train:
        *steps, final = record["answer"].split("\n")
        assert FINAL_LINE.match(final), record["answer"]
        assert 1 <= len(steps) <= 4
        for line in steps:
            assert STEP_LINE.match(line), line
            assert len(ANNOTATION.findall(line)) == 1, line
        assert record["question"].endswith("?")


def test_every_annotation_is_exact_and_the_final_answer_is_the_last_step(train):
    for record in train:
        *steps, final = record["answer"].split("\n")
        values = []
        for line in steps:
            (expr, claimed), = ANNOTATION.findall(line)
            assert re.fullmatch(r"[0-9+\-*/]+", expr), expr
            value = exact_value(expr)
            assert value.denominator == 1 and value >= 0, (expr, value)
            assert claimed == str(value.numerator), line
            # the result is written out right after the annotation, as in GSM8K
            assert line.split(f"<<{expr}={claimed}>>", 1)[1].startswith(claimed)
            values.append(int(value))
        assert FINAL_LINE.match(final).group(1) == str(values[-1])


def test_operands_come_from_the_question_or_earlier_results(train):
    for record in train:
        question_numbers = {int(n) for n in re.findall(r"\d+", record["question"])}
        earlier: list[int] = []
        for line in record["answer"].split("\n")[:-1]:
            (expr, claimed), = ANNOTATION.findall(line)
            for operand in map(int, re.findall(r"\d+", expr)):
                assert operand in question_numbers or operand in earlier or operand in WORD_CONSTANTS, (
                    operand, record)
            # results stay distinct from the question's numbers, so each is traceable to its step
            assert int(claimed) not in question_numbers and int(claimed) not in earlier, record
            earlier.append(int(claimed))


def test_step_counts_cover_one_to_four(train):
    counts = collections.Counter(record["answer"].count("\n") for record in train)
    assert set(counts) == {1, 2, 3, 4}
    assert min(counts.values()) > len(train) / 8  # no step count is starved


def test_names_templates_and_numbers_are_varied():
    problems = list(iter_problems(2000, seed=0, split="train"))
    names = {name for problem in problems for name in problem.names}
    templates = {template for problem in problems for template in problem.templates}
    chains = {problem.templates for problem in problems}
    assert len(names) >= 150
    assert len(templates) >= 20
    assert len(chains) >= 300
    operands = [int(n) for p in problems for n in re.findall(r"\d+", p.question)]
    assert sum(n < 10 for n in operands) > 0.1 * len(operands)
    assert sum(n >= 100 for n in operands) > 0.1 * len(operands)


def test_train_validation_and_test_never_share_a_question(train, test_problems):
    validation = generate_problems(300, seed=0, split="validation")
    train_questions = {record["question"] for record in train}
    test_questions = {problem.question for problem in test_problems}
    validation_questions = {record["question"] for record in validation}
    assert not train_questions & test_questions
    assert not train_questions & validation_questions
    assert not test_questions & validation_questions
    # the same holds across seeds: the split is a function of the problem itself
    assert not test_questions & {r["question"] for r in generate_problems(2000, seed=1, split="train")}


def test_every_problem_belongs_to_the_split_it_was_generated_for(test_problems):
    for split in SPLITS:
        for problem in iter_problems(200, seed=3, split=split):
            assert assign_split(problem.question, problem.templates, problem.names) == split
    for problem in test_problems:
        assert assign_split(problem.question, problem.templates, problem.names) == "test"


def test_training_never_sees_held_out_names_or_chains_and_the_test_split_does():
    train_problems = list(iter_problems(2000, seed=0, split="train"))
    assert not any(is_held_out_name(name) for p in train_problems for name in p.names)
    assert not any(is_held_out_chain(p.templates) for p in train_problems)
    test_problems = list(iter_problems(600, seed=0, split="test"))
    new_names = sum(any(is_held_out_name(name) for name in p.names) for p in test_problems)
    new_chains = sum(is_held_out_chain(p.templates) for p in test_problems)
    assert 0.1 * len(test_problems) < new_names < 0.8 * len(test_problems)
    assert new_chains > 0.02 * len(test_problems)
    # every single template of the test split is also trained
    trained = {t for p in train_problems for t in p.templates}
    assert {t for p in test_problems for t in p.templates} <= trained


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(SyntheticError, match="unknown split 'dev'"):
        generate_problems(1, seed=0, split="dev")
    with pytest.raises(SyntheticError, match=">= 0"):
        generate_problems(-1, seed=0)
    assert generate_problems(0, seed=0) == []


def test_cli_writes_the_file_it_is_given(tmp_path, capsys):
    out = tmp_path / "raw_data" / "my_problems.jsonl"
    assert main(["--n", "50", "--seed", "2", "--split", "test", "--out", str(out)]) == 0
    records = [r.data for r in read_records(out)]
    assert all(isinstance(r, SourceRecord) for r in read_records(out))
    assert records == generate_problems(50, seed=2, split="test")
    assert str(out) in capsys.readouterr().out
    assert [p.name for p in out.parent.iterdir()] == ["my_problems.jsonl"]


def test_cli_runs_as_a_module(tmp_path, repo_root):
    out = tmp_path / "train.jsonl"
    subprocess.run([sys.executable, "-m", "lumos.synthetic", "--n", "20", "--out", str(out)],
                   check=True, cwd=repo_root, capture_output=True, timeout=60)
    lines = out.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == generate_problems(20, seed=0, split="train")


def test_records_have_the_keys_of_the_real_socratic_file(shared_data, train):
    path = shared_data / "gsm8k" / "train_socratic.jsonl"
    with open(path, encoding="utf-8") as handle:
        real = [json.loads(next(handle)) for _ in range(50)]
    assert all(set(record) - {"id"} == set(real[0]) for record in train)
    # the shape our answer lines follow is the common shape of the real ones
    real_lines = [line for record in real for line in record["answer"].split("\n")[:-1]]
    assert sum(bool(STEP_LINE.match(line)) for line in real_lines) > 0.8 * len(real_lines)
    assert all(FINAL_LINE.match(record["answer"].split("\n")[-1]) for record in real)


def _episode(problem, args, status="finished", right=False, subgoals=None):
    """A prediction record (the runner's shape) whose steps call the Calculator with ``args``."""
    subgoals = len(args) if subgoals is None else subgoals
    steps = [{"index": i + 1, "subgoal": f"Calculate step {i + 1}." if i < subgoals else None,
              "calls": [{"tool": "Calculator", "args": arg, "outputs": [f"R{i + 1}"], "result": "1", "error": None}]}
             for i, arg in enumerate(args)]
    return {"id": problem["id"], "status": status, "steps": steps, "scores": {"accuracy": 1.0 if right else 0.0}}


def test_failures_are_sorted_by_kind():
    problems = {len(gold_expressions(p["answer"])): p for p in generate_problems(60, seed=3, split="test")}
    two = problems[2]
    first, second = gold_expressions(two["answer"])
    first_result = re.search(r"<<[^=]+=(\d+)>>", two["answer"]).group(1)
    second = re.sub(rf"\b{first_result}\b", "R1", second)  # as grounded: the earlier result by its variable
    wrong_copy = re.sub(r"\d+", lambda m: m.group() + "7", first, count=1)  # a digit added
    records = [
        _episode(two, [first, second], right=True),
        _episode(two, [wrong_copy, second]),
        _episode(two, [first]),  # stopped after one subgoal of two
        _episode(two, [first, second, "R2+R1"]),  # went on for a third
        _episode(two, [first, "R1*2"]),  # right numbers and length, wrong operation
        _episode(two, [first], status="tool_error"),
    ]
    kinds = [failure_kind(record, two) for record in records]
    assert kinds == [None, "number copied wrongly", "planner stopped early", "planner went on",
                     "wrong operation or operand", "tool_error"]
    # R1 is a variable, not the number 1; word constants (half: 2) are not copies
    assert failure_kind(_episode(two, ["R1/2", second]), two) != "number copied wrongly"

    one = problems[1]
    table = diagnosis([{**record, "id": f"{two['id']}"} for record in records]
                      + [_episode(one, gold_expressions(one["answer"]), right=True)], [two, one])
    assert "      1         1      1     1.000" in table
    assert "      2         6      1     0.167" in table
    assert "failures by kind (5):" in table and "number copied wrongly" in table


def test_cli_diagnoses_an_evaluation(tmp_path, capsys):
    problems = generate_problems(10, seed=4, split="test")
    (tmp_path / "test.jsonl").write_text("".join(json.dumps(p) + "\n" for p in problems))
    records = [_episode(p, [], right=i % 2 == 0) for i, p in enumerate(problems)]
    (tmp_path / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    assert main(["--diagnose", str(tmp_path / "predictions.jsonl"), "--problems", str(tmp_path / "test.jsonl")]) == 0
    out = capsys.readouterr().out
    assert "    all        10      5     0.500" in out and "failures by kind (5):" in out
    with pytest.raises(SystemExit):
        main(["--diagnose", str(tmp_path / "predictions.jsonl")])
    assert "--diagnose needs --problems" in capsys.readouterr().err
