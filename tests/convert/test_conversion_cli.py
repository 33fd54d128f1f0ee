"""The conversion CLI on GSM8K-format files: output layout, failures with reasons, SIGKILL resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from data import prompt_convertion
from lumos.format import parse_plan

GOOD = {"question": "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
                    "How many clips did Natalia sell altogether in April and May?",
        "answer": "How many clips did Natalia sell in May? ** Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n"
                  "How many clips did Natalia sell altogether in April and May? ** Natalia sold 48+24 = "
                  "<<48+24=72>>72 clips altogether in April and May.\n#### 72"}
PLAIN_LAST_STEP = {"question": "Robert buys 5 pizzas at $10 and drinks for $20. What does he spend?",
                   "answer": "How much do the pizzas cost? ** Five pizzas cost 5 x $10 = $<<5*10=50>>50.\n"
                             "How much does Robert spend? ** So, Robert spends $50 + $20 = $70.\n#### 70"}
NO_MATH = {"question": "Who is taller?", "answer": "Who is taller? ** Tom is taller.\n#### 1"}


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "data.prompt_convertion", *args, "--no_progress"], cwd=cwd,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(Path(prompt_convertion.__file__).resolve().parents[1])})


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_converts_reports_bad_lines_and_keeps_failures(tmp_path):
    source = write_lines(tmp_path / "gsm8k_mini.jsonl", [
        json.dumps(GOOD), "{not json", json.dumps({"question": "no answer"}), json.dumps(NO_MATH),
        json.dumps(PLAIN_LAST_STEP)])
    result = run_cli("--domain", "maths", "--data_fn", str(source), "--convert_all", cwd=tmp_path)
    # what could be converted was: exit 0 (set -e scripts go on), the failures reported in one line
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip().splitlines() == [
        "warning: 2 record(s) could not be converted (reasons in "
        "data/train/maths/converted/gsm8k_mini_converted.failed.jsonl); the rest was converted "
        "(--strict makes this exit 1)"]
    output = tmp_path / "data/train/maths/converted/gsm8k_mini_converted.json"
    records = read_jsonl(output)
    assert [r["id"] for r in records] == ["gsm8k_mini:1", "gsm8k_mini:5"]
    assert records[0]["subgoal_plan"] == (
        "Subgoal 1: Calculate how many clips did Natalia sell in May.\n"
        "Action 1-1: R1 = Calculator(48/2) = 24\n\n"
        "Subgoal 2: Calculate how many clips did Natalia sell altogether in April and May.\n"
        "Action 2-1: Output = Calculator(48+R1) = 72")
    assert records[0]["ans"] == "72" and records[0]["task"] == GOOD["question"]
    assert records[0]["natural_language_plan"].startswith("Natalia sold 48/2 = <<48/2=24>>24 clips in May.")
    # plain-text arithmetic in the last step is read, and earlier results become variables
    assert parse_plan(records[1]["subgoal_plan"]).actions[-1].args == "R1 + 20"
    failed = {r["id"]: r for r in read_jsonl(output.with_name("gsm8k_mini_converted.failed.jsonl"))}
    assert failed["gsm8k_mini:2"]["reason"] == "bad_input" and "gsm8k_mini.jsonl:2" in failed["gsm8k_mini:2"]["detail"]
    assert failed["gsm8k_mini:3"]["reason"] == "missing_field"
    assert failed["gsm8k_mini:4"]["reason"] == "no_calculation"
    assert "failed, no_calculation: 1" in result.stdout

    again = run_cli("--domain", "maths", "--data_fn", str(source), "--convert_all", cwd=tmp_path)
    assert "already done before this run: 5" in again.stdout
    assert read_jsonl(output) == records  # a finished run costs nothing and writes nothing twice


def test_shards_are_named_like_the_original(tmp_path):
    source = write_lines(tmp_path / "gsm_train.jsonl", [json.dumps(GOOD)] * 5)
    result = run_cli("--domain", "maths", "--data_fn", str(source), "--st_idx", "1", "--ed_idx", "3", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    shard = read_jsonl(tmp_path / "data/train/maths/converted/gsm_train_converted_1_3.json")
    assert [r["id"] for r in shard] == ["gsm_train:2", "gsm_train:3"]


def test_bad_arguments_get_a_clear_error(tmp_path):
    result = run_cli("--domain", "maths", "--data_fn", str(tmp_path / "missing.jsonl"), "--convert_all", cwd=tmp_path)
    assert result.returncode == 2 and "is not a file" in result.stderr
    source = write_lines(tmp_path / "x.jsonl", [json.dumps(GOOD)])
    result = run_cli("--domain", "maths", "--data_fn", str(source), cwd=tmp_path)
    assert result.returncode == 2 and "--convert_all" in result.stderr
    result = run_cli("--domain", "maths", "--data_fn", str(source), "--convert_all", "--keep", "verified", cwd=tmp_path)
    assert result.returncode == 2 and "needs --verify" in result.stderr


def _varied_records(count: int) -> list[str]:
    lines = []
    for i in range(count):
        a, b = 10 + i % 97, 2 + i % 13
        lines.append(json.dumps({
            "question": f"Item {i}: a box holds {a} pens and there are {b} boxes; {i % 7} pens break. How many are left?",
            "answer": f"How many pens are there? ** There are {a}*{b} = <<{a}*{b}={a * b}>>{a * b} pens.\n"
                      f"How many pens are left? ** {a * b}-{i % 7} = <<{a * b}-{i % 7}={a * b - i % 7}>>{a * b - i % 7} "
                      f"pens are left.\n#### {a * b - i % 7}"}))
    return lines


def test_sigkill_then_restart_finishes_without_duplicates_or_losses(tmp_path):
    source = write_lines(tmp_path / "big.jsonl", _varied_records(30_000))
    output = tmp_path / "data/train/maths/converted/big_converted.json"
    env = {**os.environ, "PYTHONPATH": str(Path(prompt_convertion.__file__).resolve().parents[1])}
    process = subprocess.Popen([sys.executable, "-m", "data.prompt_convertion", "--domain", "maths", "--data_fn",
                                str(source), "--convert_all", "--no_progress"], cwd=tmp_path, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and (not output.exists() or output.stat().st_size < 200_000):
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    partial = output.read_bytes()
    written_before = partial.count(b"\n")
    assert 0 < written_before < 30_000, "the run must be killed part-way for this test to mean anything"

    result = run_cli("--domain", "maths", "--data_fn", str(source), "--convert_all", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    ids = [r["id"] for r in read_jsonl(output)]
    assert len(ids) == len(set(ids)) == 30_000
    assert set(ids) == {f"big:{n}" for n in range(1, 30_001)}
    # complete lines survive; a torn last line (no newline yet) is dropped and redone
    assert f"already done before this run: {written_before}" in result.stdout


# --------------------------------------------------------------------------- every source, rules backend


def convert_in_process(capsys, *args: str) -> tuple[int, str, str]:
    code = prompt_convertion.main([*args, "--no_progress"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.shared_data
@pytest.mark.parametrize("domain, relative, name, converted, unusable", [
    ("complex_qa", "strategyqa/strategyqa_train.json", "strategyqa", 1977, {"no_evidence": 313}),
    ("complex_qa", "musique/musique_ans_train_sample100.hipporag.json", "musique", 100, {}),
    ("web_agent", "mind2web/mind2web_train_sample5.openbrowser.json", "mind2web", 5, {}),
])
def test_rules_convert_and_validate_real_files(shared_data, tmp_path, capsys, domain, relative, name, converted,
                                               unusable):
    code, out, err = convert_in_process(capsys, "--domain", domain, "--data_fn", str(shared_data / relative),
                                        "--convert_all", "--verify", "--output_dir", str(tmp_path))
    assert code == 0, out + err  # unusable source records are reported, not conversion failures
    records = read_jsonl(tmp_path / f"{name}_converted.json")
    assert len(records) == converted and f"verified: {converted}/{converted} (100.0%)" in out
    assert set(records[0]) >= {"id", "task", "natural_language_plan", "subgoal_plan"}
    assert all(parse_plan(r["subgoal_plan"]).render() == r["subgoal_plan"] for r in records)
    failed = read_jsonl(tmp_path / f"{name}_converted.failed.jsonl")
    assert {reason: sum(r["reason"] == reason for r in failed) for reason in unusable} == unusable
    assert len(failed) == sum(unusable.values())
    for reason, count in unusable.items():
        assert f"unusable, {reason}: {count}" in out


STRATEGY_OK = {"qid": "s1", "term": "T", "description": "", "question": "Is a cat heavier than a mouse?",
               "answer": True, "facts": ["Cats weigh about 4 kg.", "Mice weigh about 20 g."],
               "decomposition": ["How much does a cat weigh?", "How much does a mouse weigh?", "Is #1 more than #2?"],
               "evidence": [[[["Cat-1"]], [["Mouse-2"]], ["operation"]]]}
STRATEGY_NO_EVIDENCE = dict(STRATEGY_OK, qid="s2", evidence=[[["no_evidence"], [["Mouse-2"]], ["operation"]]])
STRATEGY_FORWARD = dict(STRATEGY_OK, qid="s3", decomposition=["Is #2 big?", "b?", "c?"])
MIND2WEB_OK = {"annotation_id": "m1", "confirmed_task": "Search for shoes.",
               "action_reprs": ["[searchbox]  Search -> TYPE: shoes", "[button]  Go -> CLICK"]}
MIND2WEB_BAD = {"annotation_id": "m2", "confirmed_task": "Do something.", "action_reprs": ["no arrow here"]}


def test_small_complex_qa_file_counts_every_kind_of_failure(tmp_path, capsys):
    source = write_lines(tmp_path / "any_name.json", [json.dumps(STRATEGY_OK), json.dumps(STRATEGY_NO_EVIDENCE),
                                                      json.dumps(STRATEGY_FORWARD), "{broken"])
    code, out, _ = convert_in_process(capsys, "--domain", "complex_qa", "--data_fn", str(source), "--convert_all",
                                      "--output_dir", str(tmp_path / "out"))
    assert code == 0  # the forward reference and the broken line could not be converted; the rest was
    records = read_jsonl(tmp_path / "out/strategyqa_converted.json")  # named after the source, not the file
    assert [r["id"] for r in records] == ["strategyqa:1"] and records[0]["ans"] == "yes"
    assert parse_plan(records[0]["subgoal_plan"]).actions[-1].result == "yes"
    failed = {r["id"]: r for r in read_jsonl(tmp_path / "out/strategyqa_converted.failed.jsonl")}
    assert failed["strategyqa:2"]["reason"] == "no_evidence" and failed["strategyqa:2"]["source_id"] == "s2"
    assert failed["strategyqa:3"]["reason"] == "rules_qa_failed" and "#2" in failed["strategyqa:3"]["detail"]
    assert failed["strategyqa:4"]["reason"] == "bad_input"
    assert "unusable, no_evidence: 1" in out and "failed, rules_qa_failed: 1" in out


def test_small_web_file_and_bad_action_repr(tmp_path, capsys):
    source = tmp_path / "train_0.json"
    source.write_text(json.dumps([MIND2WEB_OK, MIND2WEB_BAD]), encoding="utf-8")
    code, out, _ = convert_in_process(capsys, "--domain", "web_agent", "--data_fn", str(source), "--convert_all",
                                      "--verify", "--output_dir", str(tmp_path / "out"))
    assert code == 0
    records = read_jsonl(tmp_path / "out/mind2web_converted.json")
    assert [r["subgoal_plan"] for r in records] == [
        "Subgoal 1: Type shoes into the Search search box.\n"
        "Action 1-1: R1 = TYPE(Env, QUERY: Type shoes into the Search search box, TEXT: shoes)\n\n"
        "Subgoal 2: Click the Go button.\nAction 2-1: R2 = CLICK(R1, QUERY: Click the Go button)"]
    assert "ans" not in records[0]  # Mind2Web has no gold answer
    failed = read_jsonl(tmp_path / "out/mind2web_converted.failed.jsonl")
    assert [(r["id"], r["reason"]) for r in failed] == [("mind2web:2", "bad_action_repr")]


def test_asdiv_formulas_become_calculator_steps(tmp_path, capsys):
    rows = [{"id": "a1", "question": "Seven red apples and two green apples. How many apples?", "solution": "7+2=9",
             "question_only": "How many apples?", "answer": "9 (apples)"},
            {"id": "a2", "question": "Coins.", "solution": "2 (dime)*10 (cent/dime) = 20 (cent); 20+5=25",
             "answer": "25 (cents)"},
            {"id": "a3", "question": "Divide.", "solution": "47/6=7 r5", "answer": "7"}]
    source = write_lines(tmp_path / "asdiv.jsonl", [json.dumps(r) for r in rows])
    code, out, _ = convert_in_process(capsys, "--domain", "maths", "--data_fn", str(source), "--convert_all",
                                      "--verify", "--output_dir", str(tmp_path / "out"))
    assert code == 0
    records = read_jsonl(tmp_path / "out/asdiv_converted.json")
    assert records[0]["subgoal_plan"] == ("Subgoal 1: Answer the question: How many apples?\n"
                                          "Action 1-1: Output = Calculator(7+2) = 9")
    assert records[1]["subgoal_plan"].splitlines()[1] == "Action 1-1: R1 = Calculator(2*10) = 20"
    assert [r["ans"] for r in records] == ["9", "25"] and "verified: 2/2" in out
    assert "failed, asdiv_formula_unsupported: 1" in out


def test_source_detection_override_and_clear_setup_errors(tmp_path, capsys):
    source = write_lines(tmp_path / "web.jsonl", [json.dumps(MIND2WEB_OK)])
    with pytest.raises(SystemExit) as wrong_domain:
        prompt_convertion.parse_args(["--domain", "maths", "--data_fn", str(source), "--convert_all"])
    assert wrong_domain.value.code == 2 and "belong to domain 'web_agent'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        prompt_convertion.parse_args(["--domain", "complex_qa", "--data_fn", str(source), "--convert_all",
                                      "--source", "gsm8k"])
    assert "holds gsm8k records, which belong to domain 'maths'" in capsys.readouterr().err
    # --source forces the reader: the Mind2Web record read as MuSiQue is unusable, with its reason
    code, out, _ = convert_in_process(capsys, "--domain", "complex_qa", "--data_fn", str(source), "--convert_all",
                                      "--source", "musique", "--output_dir", str(tmp_path / "out"))
    assert code == 1 and "unusable, missing_field: 1" in out  # nothing could be converted
    prm = write_lines(tmp_path / "prm.jsonl", [json.dumps({"question": {"problem": "1+1?",
                                                                         "ground_truth_solution": "2"}})])
    code, _, err = convert_in_process(capsys, "--domain", "maths", "--data_fn", str(prm), "--convert_all")
    assert code == 2 and "no rules converter for prm800k, use --backend openai" in err


def test_strict_exit_status_and_the_aliases_of_the_eval_clis(tmp_path, capsys):
    """--strict: exit 1 on any failure; --save_dir / --max_num_examples are --output_dir / --limit."""
    source = write_lines(tmp_path / "gsm8k_mini.jsonl", [json.dumps(GOOD), "{not json", json.dumps(PLAIN_LAST_STEP)])
    code, out, err = convert_in_process(capsys, "--domain", "maths", "--data_fn", str(source), "--convert_all",
                                        "--save_dir", str(tmp_path / "out"), "--max_num_examples", "2", "--strict")
    assert code == 1 and "--strict: exit status 1" in err and "left for a later run (--limit): 1" in out
    assert [r["id"] for r in read_jsonl(tmp_path / "out/gsm8k_mini_converted.json")] == ["gsm8k_mini:1"]
    code, out, err = convert_in_process(capsys, "--domain", "maths", "--data_fn", str(source), "--convert_all",
                                        "--save_dir", str(tmp_path / "out"))
    assert code == 0 and "already done before this run: 2" in out
    assert len(read_jsonl(tmp_path / "out/gsm8k_mini_converted.json")) == 2


def test_help_shows_defaults_and_cites_the_format_the_repository_has(repo_root):
    result = subprocess.run([sys.executable, "-m", "data.prompt_convertion", "--help"], cwd=repo_root,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert "--save_dir OUTPUT_DIR" in result.stdout.replace("--output_dir OUTPUT_DIR, ", "")
    assert "(default: rules)" in result.stdout and "docs/FORMAT.md" in result.stdout
    assert (repo_root / "docs" / "FORMAT.md").is_file()
