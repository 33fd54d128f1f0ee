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
    assert result.returncode == 1, result.stderr  # some records could not be converted
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
