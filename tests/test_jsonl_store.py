"""JsonlStore: damaged lines are set aside and every good line kept; one writer at a time; SIGKILL anywhere
during a conversion or an evaluation loses nothing and duplicates nothing."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lumos.jsonl import JsonlDamageWarning, JsonlStore, StoreLocked

REPO = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(REPO)}


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_a_store_damaged_in_the_middle_keeps_every_good_line(tmp_path):
    path = tmp_path / "out.jsonl"
    good = [json.dumps({"id": str(n), "value": n}).encode() for n in range(1, 7)]
    damaged = [b'{"id": "half-writ', b'{"no_id": 1}', b'[1, 2, 3]', b'{"id": "bad \xff utf8"}', b'"just a string"',
               good[0]]  # the last one: a key written twice
    content = (good[0] + b"\n" + damaged[0] + b"\n" + good[1] + b"\n" + damaged[1] + b"\n" + good[2] + b"\n"
               + damaged[2] + b"\n" + damaged[3] + b"\n" + good[3] + b"\n\n" + damaged[4] + b"\n" + good[4] + b"\n"
               + damaged[5] + b"\n" + good[5] + b"\n")
    path.write_bytes(content)
    with pytest.warns(JsonlDamageWarning) as caught:
        store = JsonlStore(path)
    with store:
        assert store.done == {str(n) for n in range(1, 7)}
        assert [(bad.line_no, bad.reason.split(":")[0]) for bad in store.damaged] == [
            (2, "invalid JSON"), (4, "no 'id' field"), (6, "a JSON list, not an object"),
            (7, "invalid UTF-8 at byte 12"), (10, "a JSON str, not an object"), (12, "id='1' was already written at line 1")]
        store.append({"id": "7", "value": 7})
    message = str(caught[0].message)
    assert f"{path}:2: invalid JSON" in message and f"{path}:7: invalid UTF-8" in message
    assert [r["id"] for r in _lines(path)] == ["1", "2", "3", "4", "5", "6", "7"]
    aside = _lines(path.with_name("out.jsonl.damaged"))
    assert [entry["line"] for entry in aside] == [2, 4, 6, 7, 10, 12]
    assert aside[0]["text"] == '{"id": "half-writ' and aside[3]["text"] == '{"id": "bad \\xff utf8"}'
    with JsonlStore(path) as again:  # nothing left to set aside, nothing set aside twice
        assert again.damaged == [] and len(again.done) == 7
    assert len(_lines(path.with_name("out.jsonl.damaged"))) == 6


def test_only_a_torn_last_line_is_repaired_and_a_whole_one_is_kept(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_bytes(b'{"id": "a"}\n{"id": "b"}\n{"id": "c", "te')
    with JsonlStore(path) as store:
        assert store.done == {"a", "b"} and store.repaired_torn_line == 3 and store.damaged == []
    assert not path.with_name("out.jsonl.damaged").exists()
    path.write_bytes(b'{"id": "a"}\n{"id": "b"}')  # complete, only its newline missing
    with JsonlStore(path) as store:
        assert store.done == {"a", "b"}
        store.append({"id": "c"})
    assert [r["id"] for r in _lines(path)] == ["a", "b", "c"]


_HOLDER = """
import sys, time
from lumos.jsonl import JsonlStore
store = JsonlStore(sys.argv[1])
print("locked", flush=True)
time.sleep(60)
"""


def test_a_second_writer_is_refused_with_the_holders_pid(tmp_path):
    path = tmp_path / "out.jsonl"
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(path)], stdout=subprocess.PIPE, text=True, env=ENV)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(StoreLocked, match=f"process {holder.pid}"):
            JsonlStore(path)
    finally:
        holder.kill()
        holder.wait()
    with JsonlStore(path) as store:  # the lock went with its process
        store.append({"id": "x"})
        with pytest.raises(StoreLocked, match="this process"):
            JsonlStore(path)
    with JsonlStore(path) as store:  # and with close()
        assert store.done == {"x"}


_WRITER = """
import sys
from lumos.jsonl import JsonlStore, StoreLocked
try:
    store = JsonlStore(sys.argv[1])
except StoreLocked as error:
    print(error)
    sys.exit(3)
for n in range(500):
    if str(n) not in store:
        store.append({"id": str(n)})
import time; time.sleep(1.0)
store.close()
"""


def test_two_processes_appending_to_one_store_write_no_duplicates(tmp_path):
    path = tmp_path / "out.jsonl"
    writers = [subprocess.Popen([sys.executable, "-c", _WRITER, str(path)], stdout=subprocess.PIPE, text=True,
                                env=ENV) for _ in range(2)]
    outputs = [(w.wait(timeout=60), w.stdout.read()) for w in writers]
    codes = sorted(code for code, _ in outputs)
    assert codes == [0, 3], outputs
    refused = next(text for code, text in outputs if code == 3)
    assert refused.count("\n") == 1 and "is being written by process" in refused
    ids = [r["id"] for r in _lines(path)]
    assert len(ids) == len(set(ids)) == 500


# ------------------------------------------------------------------------ SIGKILL at several points


def _gsm_records(count: int) -> list[str]:
    lines = []
    for n in range(1, count + 1):
        a, b = n % 97 + 2, n % 13 + 1
        lines.append(json.dumps({"question": f"Tom has {a} apples and buys {b} more. How many apples does he have?",
                                 "answer": f"How many apples does Tom have? ** Tom has {a}+{b} = <<{a}+{b}={a + b}>>"
                                           f"{a + b} apples.\n#### {a + b}"}))
    return lines


def _kill_at_several_points(command: list[str], cwd: Path, output: Path, total: int, points: int = 5) -> list[int]:
    """Start ``command`` again and again, killing it (SIGKILL) once the output grows past random sizes."""
    rng = random.Random(7)
    seen = []
    for _ in range(points):
        before = output.read_bytes().count(b"\n") if output.exists() else 0
        target = before + rng.randint(1, max(2, (total - before) // (points + 1)))
        process = subprocess.Popen(command, cwd=cwd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            if output.exists() and output.read_bytes().count(b"\n") >= target:
                break
            time.sleep(rng.uniform(0, 0.01))
        process.send_signal(signal.SIGKILL)
        process.wait()
        seen.append(output.read_bytes().count(b"\n") if output.exists() else 0)
    return seen


@pytest.mark.slow
def test_sigkill_at_several_points_of_a_conversion_loses_and_duplicates_nothing(tmp_path):
    total = 4000
    source = tmp_path / "apples.jsonl"
    source.write_text("".join(line + "\n" for line in _gsm_records(total)), encoding="utf-8")
    output = tmp_path / "data/train/maths/converted/apples_converted.json"
    command = [sys.executable, "-m", "data.prompt_convertion", "--domain", "maths", "--data_fn", str(source),
               "--convert_all", "--no_progress"]
    seen = _kill_at_several_points(command, tmp_path, output, total)
    assert seen == sorted(seen) and 0 < seen[-1] < total, seen  # killed part-way, more each time
    done = subprocess.run(command, cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    ids = [r["id"] for r in _lines(output)]
    assert len(ids) == len(set(ids)) == total
    assert set(ids) == {f"apples:{n}" for n in range(1, total + 1)}


@pytest.mark.slow
def test_sigkill_at_several_points_of_an_evaluation_loses_and_duplicates_nothing(tmp_path):
    total = 600
    data = tmp_path / "gsm"
    data.mkdir()
    (data / "test.jsonl").write_text("".join(
        json.dumps({"question": f"Task number {n}: what is {n} + 1?", "answer": f"...\n#### {n + 1}"}) + "\n"
        for n in range(total)))
    planner = tmp_path / "planner.json"
    planner.write_text(json.dumps({"rules": [[r"Subgoal 1 is \d+\. Should we stop planning\?\n<\|assistant\|>\n$",
                                              "Yes, I will stop planning."],
                                             [r"None\.\n<\|assistant\|>\n$", "Subgoal 1: Add one."]]}))
    grounder = tmp_path / "grounder.json"
    grounder.write_text(json.dumps({"rules": [[r"Subgoal 1: Add one", "R1 = Calculator(2 + 1)"]]}))
    save = tmp_path / "out"
    command = [sys.executable, "-m", "eval.gsm.run_eval", "--data_dir", str(data), "--save_dir", str(save),
               "--planner", f"scripted:{planner}", "--grounder", f"scripted:{grounder}", "--eval_batch_size", "8"]
    output = save / "predictions.jsonl"
    seen = _kill_at_several_points(command, REPO, output, total)
    assert 0 < seen[-1] < total, seen
    done = subprocess.run(command, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    records = _lines(output)
    ids = [r["id"] for r in records]
    assert len(ids) == len(set(ids)) == total
    assert all(r["status"] == "finished" for r in records)
    assert json.loads((save / "metrics.json").read_text())["num_examples"] == total


@pytest.mark.parametrize("cli", ["conversion", "evaluation"])
def test_a_second_run_on_the_same_output_gets_one_line_naming_the_first(tmp_path, cli):
    if cli == "conversion":
        source = tmp_path / "apples.jsonl"
        source.write_text("".join(line + "\n" for line in _gsm_records(3)), encoding="utf-8")
        output = tmp_path / "data/train/maths/converted/apples_converted.json"
        command = [sys.executable, "-m", "data.prompt_convertion", "--domain", "maths", "--data_fn", str(source),
                   "--convert_all", "--no_progress"]
    else:
        data = tmp_path / "gsm"
        data.mkdir()
        (data / "test.jsonl").write_text(json.dumps({"question": "What is 1 + 1?", "answer": "...\n#### 2"}) + "\n")
        rules = tmp_path / "rules.json"
        rules.write_text(json.dumps({"rules": [[".", "Yes, I will stop planning."]]}))
        output = tmp_path / "out" / "predictions.jsonl"
        command = [sys.executable, "-m", "eval.gsm.run_eval", "--data_dir", str(data), "--save_dir",
                   str(output.parent), "--planner", f"scripted:{rules}", "--grounder", f"scripted:{rules}"]
    output.parent.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(output)], stdout=subprocess.PIPE, text=True,
                              env=ENV)
    try:
        assert holder.stdout.readline().strip() == "locked"
        second = subprocess.run(command, cwd=tmp_path if cli == "conversion" else REPO, env=ENV,
                                capture_output=True, text=True, timeout=300)
    finally:
        holder.kill()
        holder.wait()
    assert second.returncode == 2, second.stderr
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1 and f"is being written by process {holder.pid}" in lines[0], second.stderr


def test_remove_and_clear_rewrite_under_the_lock(tmp_path):
    path = tmp_path / "out.jsonl"
    with JsonlStore(path) as store:
        store.append_many([{"id": str(n), "status": "generation_error" if n % 2 else "finished"} for n in range(6)])
        assert store.remove(lambda record: record["status"] == "generation_error") == 3
        assert store.done == {"0", "2", "4"} and "1" not in store
        store.append({"id": "1", "status": "finished"})
        with pytest.raises(StoreLocked):
            JsonlStore(path)  # the rewritten file is still locked by this store
    assert [r["id"] for r in _lines(path)] == ["0", "2", "4", "1"]
    with JsonlStore(path) as store:
        store.clear()
        assert store.done == set()
        store.append({"id": "new"})
    assert [r["id"] for r in _lines(path)] == ["new"]


def test_read_records_names_file_and_line_for_every_kind_of_damage(tmp_path):
    from lumos.jsonl import BadRecord, read_records

    path = tmp_path / "input.jsonl"
    path.write_bytes(b'{"a": 1}\n{"b": "\xff"}\n' + b"[" * 100_000 + b'\n{"n": ' + b"9" * 5000 + b'}\n[1]\n{"c": 3}\n')
    items = list(read_records(path))
    assert [item.line_no for item in items] == [1, 2, 3, 4, 5, 6]
    assert [type(item).__name__ for item in items] == ["SourceRecord", "BadRecord", "BadRecord", "BadRecord",
                                                        "BadRecord", "SourceRecord"]
    assert str(items[1]).startswith(f"{path}:2: invalid UTF-8")
    listing = tmp_path / "input.json"
    listing.write_bytes(b'[{"a": 1},\n{"b": "\xff"}]')
    [bad] = list(read_records(listing))
    assert isinstance(bad, BadRecord) and str(bad).startswith(f"{listing}:2: invalid UTF-8")
