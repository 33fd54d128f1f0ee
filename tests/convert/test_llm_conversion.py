"""LLM conversion through the real ``openai`` client against a scripted OpenAI-compatible server on loopback."""

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
from lumos.convert.llm_convert import ReplyError, read_reply
from lumos.convert.llm_prompts import conversion_messages, conversion_prompt, instruction
from lumos.convert.validate import validate_annotation
from lumos.format import parse_plan
from lumos.llm.scripted import ScriptedGenerator
from lumos.llm.serve import OpenAICompatibleServer
from lumos.vocabulary import vocabulary

SECRET = "sk-lumos-test-secret-key"


# --------------------------------------------------------------------------- prompts and reply parsing


@pytest.mark.parametrize("domain", ["maths", "complex_qa", "web_agent"])
def test_examples_are_valid_annotations_of_their_domain(domain):
    examples = conversion_prompt(domain).examples
    assert examples
    for example in examples:
        plan = parse_plan(example.subgoal_plan)
        assert plan.render() == example.subgoal_plan  # written in the canonical unified format
        assert {a.tool for a in plan.actions} <= set(vocabulary(domain).tool_names)
        if domain == "maths":
            from lumos.convert.verify import verify_plan
            from lumos.tools.maths import maths_toolbox

            verdict = verify_plan(plan, example.answer, maths_toolbox())
            assert verdict.ok, verdict
        else:
            gold = list(example.gold_action_reprs) if example.gold_action_reprs else None
            assert validate_annotation({"subgoal_plan": example.subgoal_plan}, domain, gold) == []


def test_conversation_shape_and_vocabulary():
    messages = conversion_messages("web_agent", "Book a table", "[button]  Book -> CLICK")
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    assert "'CLICK', 'TYPE', 'SELECT'" in messages[1]["content"]
    assert messages[-1]["content"] == "Task: Book a table\nNatural language plan: [button]  Book -> CLICK"
    assert "'Calculator', 'SetEquation', 'SolveEquation', 'Count', 'SolveInequality', 'Code', and 'Define'" \
        in instruction("maths")
    assert vocabulary("complex_qa").descriptions_text() in instruction("complex_qa")


def test_reply_preamble_and_fence_are_stripped_explicitly():
    plan_text = "Subgoal 1: Add.\nAction 1-1: Output = Calculator(2 + 3) = 5"
    plan, preamble = read_reply(f"Sure! Here is the plan:\n\n```\n{plan_text}\n```")
    assert plan.render() == plan_text and preamble == "Sure! Here is the plan:"
    assert read_reply(f"```text\n{plan_text}\n```") == (parse_plan(plan_text), None)
    with pytest.raises(ReplyError) as no_plan:
        read_reply("I cannot convert this task.")
    assert no_plan.value.reason == "no_plan"
    with pytest.raises(ReplyError) as broken:
        read_reply(plan_text + "\nLet me know if you need anything else!")
    assert broken.value.reason == "unparseable"


# --------------------------------------------------------------------------- end to end against the server


def gsm8k_record(name: str, a: int, b: int) -> dict:
    return {"question": f"{name} has {a} apples and buys {b} more. How many apples does {name} have?",
            "answer": f"How many apples? ** {name} has {a}+{b} = <<{a}+{b}={a + b}>>{a + b} apples.\n#### {a + b}"}


def maths_plan(a: int, b: int, claimed: int | None = None) -> str:
    return (f"Subgoal 1: Calculate how many apples there are.\n"
            f"Action 1-1: Output = Calculator({a} + {b}) = {a + b if claimed is None else claimed}")


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def by_task(replies: dict[str, str], fallback: str | None = None):
    """A scripted model answering by a marker found in the last user turn."""

    def reply(text: str) -> str:
        for marker, answer in replies.items():
            if marker in text:
                return answer
        if fallback is not None:
            return fallback
        raise LookupError(f"no scripted reply for {text[:80]!r}")

    return reply


@pytest.fixture
def serve():
    servers = []

    def start(replies, **options) -> OpenAICompatibleServer:
        server = OpenAICompatibleServer(ScriptedGenerator(replies), model_name="scripted-gpt", **options).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def api_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


def convert(server, *args: str) -> list[str]:
    return ["--backend", "openai", "--base_url", server.url, "--model", "scripted-gpt", "--convert_all",
            "--no_progress", *args]


def assert_secret_absent(tmp_path: Path, *texts: str) -> None:
    for text in texts:
        assert SECRET not in text
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def test_maths_replies_verified_preamble_recorded_failures_kept(tmp_path, serve, api_key, capsys):
    source = write_jsonl(tmp_path / "gsm8k_mini.jsonl", [gsm8k_record("Ann", 3, 4), gsm8k_record("Bob", 10, 5),
                                                         gsm8k_record("Cid", 7, 8), gsm8k_record("Dee", 2, 2)])
    server = serve(by_task({"Ann": maths_plan(3, 4), "Bob": "Here is the plan you asked for.\n" + maths_plan(10, 5),
                            "Cid": "I am not able to help with that.", "Dee": maths_plan(2, 2, claimed=5)},
                           fallback="Still no plan."))
    out = tmp_path / "out"
    code = prompt_convertion.main(["--domain", "maths", "--data_fn", str(source), "--output_dir", str(out),
                                   "--verify", *convert(server)])
    stdout = capsys.readouterr().out
    assert code == 0  # Cid could not be converted (reported); the rest was
    records = {r["id"]: r for r in read_jsonl(out / "gsm8k_mini_converted.json")}
    assert sorted(records) == ["gsm8k_mini:1", "gsm8k_mini:2"]
    assert records["gsm8k_mini:1"] == {
        "id": "gsm8k_mini:1", "task": "Ann has 3 apples and buys 4 more. How many apples does Ann have?",
        "natural_language_plan": "Ann has 3+4 = <<3+4=7>>7 apples.", "subgoal_plan": maths_plan(3, 4), "ans": "7"}
    assert records["gsm8k_mini:2"]["stripped_preamble"] == "Here is the plan you asked for."
    assert records["gsm8k_mini:2"]["subgoal_plan"] == maths_plan(10, 5)
    failed = {r["id"]: r for r in read_jsonl(out / "gsm8k_mini_converted.failed.jsonl")}
    assert failed["gsm8k_mini:3"]["reason"] == "no_plan" and failed["gsm8k_mini:3"]["reply"] == "Still no plan."
    assert failed["gsm8k_mini:4"]["reason"] == "result_mismatch"
    assert "failed, no_plan: 1" in stdout and "rejected, result_mismatch: 1" in stdout
    assert "(stripped): 1" in stdout and "llm: 5 requests, 0 cache hits" in stdout  # Cid was asked twice
    assert server.stats.requests == 5 and f"Bearer {SECRET}" in server.stats.authorizations
    # the request is the real conversation: system, instruction + examples, then the record
    assert server.stats.texts[0].startswith("Task: ") and "Natural language plan: " in server.stats.texts[0]
    assert_secret_absent(tmp_path, stdout)

    # a repeated run asks nothing; a fresh output is rebuilt from the cache alone
    assert prompt_convertion.main(["--domain", "maths", "--data_fn", str(source), "--output_dir", str(out),
                                   "--verify", *convert(server)]) == 0
    assert "already done before this run: 4" in capsys.readouterr().out and server.stats.requests == 5
    first = (out / "gsm8k_mini_converted.json").read_text()
    (out / "gsm8k_mini_converted.json").unlink()
    (out / "gsm8k_mini_converted.failed.jsonl").unlink()
    prompt_convertion.main(["--domain", "maths", "--data_fn", str(source), "--output_dir", str(out), "--verify",
                            *convert(server)])
    assert "llm: 0 requests, 5 cache hits" in capsys.readouterr().out and server.stats.requests == 5
    assert (out / "gsm8k_mini_converted.json").read_text() == first


def test_unreadable_reply_is_asked_again_with_the_error(tmp_path, serve, api_key, capsys):
    source = write_jsonl(tmp_path / "gsm8k_one.jsonl", [gsm8k_record("Eve", 6, 1)])
    server = serve(by_task({"could not be read": maths_plan(6, 1), "Eve": maths_plan(6, 1) + "\nHope this helps!"}))
    out = tmp_path / "out"
    assert prompt_convertion.main(["--domain", "maths", "--data_fn", str(source), "--output_dir", str(out),
                                   *convert(server)]) == 0
    assert [r["subgoal_plan"] for r in read_jsonl(out / "gsm8k_one_converted.json")] == [maths_plan(6, 1)]
    assert server.stats.requests == 2 and "line 3" in server.stats.texts[1]  # the parser's error, quoted


def test_faults_are_retried_and_exhausted_retries_fail_with_reason(tmp_path, serve, api_key, capsys):
    names = ["Ann", "Bob", "Cid", "Dee", "Eve", "Fay", "Gus"]
    source = write_jsonl(tmp_path / "gsm8k_faults.jsonl", [gsm8k_record(n, i + 1, 2) for i, n in enumerate(names)])
    server = serve(by_task({n: maths_plan(i + 1, 2) for i, n in enumerate(names)}))
    server.add_fault("rate_limit", match="Ann", retry_after=0.6)
    server.add_fault("server_error", match="Bob")
    server.add_fault("delay", match="Cid", delay_s=3.0)
    server.add_fault("empty", match="Dee")
    server.add_fault("malformed", match="Eve")
    server.add_fault("empty", match="Fay", times=None)  # never answers: fails after its attempts
    out = tmp_path / "out"
    started = time.monotonic()
    code = prompt_convertion.main(["--domain", "maths", "--data_fn", str(source), "--output_dir", str(out),
                                   "--request_timeout", "1", "--max_attempts", "3", "--concurrency", "8",
                                   *convert(server)])
    stdout = capsys.readouterr().out
    assert code == 0
    assert time.monotonic() - started >= 0.6  # Retry-After was waited for
    converted = {r["id"] for r in read_jsonl(out / "gsm8k_faults_converted.json")}
    assert converted == {f"gsm8k_faults:{n}" for n in (1, 2, 3, 4, 5, 7)}
    failed = read_jsonl(out / "gsm8k_faults_converted.failed.jsonl")
    assert [(r["id"], r["reason"]) for r in failed] == [("gsm8k_faults:6", "llm_empty")]
    assert "3 attempts" in failed[0]["detail"]
    # 7 first attempts + one retry each for Ann..Eve + two more attempts for Fay
    assert "llm: 14 requests, 0 cache hits, 7 retries, 1 failures" in stdout


STRATEGY = {"qid": "q1", "term": "Llama", "description": "", "question": "Could a llama birth twice in a year?",
            "answer": False, "facts": ["A llama's gestation period is 11 months."],
            "decomposition": ["How long is a llama's gestation period?", "Is #1 times two at most 12 months?"],
            "evidence": [[[["Llama-12"]], ["operation"]]]}
QA_REPLY = ("Subgoal 1: Find the gestation period of a llama.\n"
            "Action 1-1: R1 = KnowledgeQuery(Llama) = WikipediaPage(Llama)\n"
            "Action 1-2: R2 = ParagraphRetrieve(R1, Query: How long is a llama's gestation period?) = "
            "A llama's gestation period is 11 months.\n"
            "Action 1-3: R3 = QA([R2], Question: How long is a llama's gestation period?) = 11 months\n\n"
            "Subgoal 2: Decide whether two gestations fit into a year.\n"
            "Action 2-1: R4 = QA([R3], Question: Is R3 times two at most 12 months?) = no")
MIND2WEB = {"annotation_id": "w1", "website": "exploretock", "confirmed_task": "Book a table for 2 at 7 pm.",
            "action_reprs": ["[combobox]  Guests -> SELECT: 2 guests", "[button]  7:00 PM -> CLICK"]}
WEB_REPLY = ("Subgoal 1: Choose 2 guests.\nAction 1-1: R1 = SELECT(Env, QUERY: Select 2 guests, TEXT: 2 guests)\n\n"
             "Subgoal 2: Pick 7 pm.\nAction 2-1: R2 = CLICK(R1, QUERY: Click the 7:00 PM button)")


@pytest.mark.parametrize("domain, record, reply, bad_reply, bad_reason, name", [
    ("complex_qa", STRATEGY, QA_REPLY, QA_REPLY.replace("QA([R3]", "QA([R9]"), "undefined_variable", "strategyqa"),
    ("web_agent", MIND2WEB, WEB_REPLY, WEB_REPLY.replace("CLICK(R1, QUERY: Click the 7:00 PM button)", "TYPE(R1, QUERY: Time, TEXT: 8 pm)"),
     "gold_mismatch", "mind2web"),
], ids=["complex_qa", "web_agent"])
def test_complex_qa_and_web_replies_are_validated(tmp_path, serve, api_key, capsys, domain, record, reply,
                                                  bad_reply, bad_reason, name):
    other = json.loads(json.dumps(record))
    other[next(k for k in ("qid", "annotation_id") if k in record)] = "second"
    key = "question" if domain == "complex_qa" else "confirmed_task"
    other[key] = record[key].replace("a", "the other", 1)
    source = write_jsonl(tmp_path / "raw.json", [record, other])
    server = serve(by_task({other[key]: bad_reply, record[key]: reply}))
    out = tmp_path / "out"
    code = prompt_convertion.main(["--domain", domain, "--data_fn", str(source), "--output_dir", str(out),
                                   "--verify", "--keep", "all", *convert(server)])
    assert code == 0, capsys.readouterr().out
    records = read_jsonl(out / f"{name}_converted.json")
    assert [r["subgoal_plan"] for r in records] == [reply, bad_reply]  # --keep all keeps the rejected one too
    failed = read_jsonl(out / f"{name}_converted.failed.jsonl")
    assert [(r["id"], r["reason"]) for r in failed] == [(f"{name}:2", bad_reason)]
    assert "verified: 1/2" in capsys.readouterr().out


def test_missing_key_for_hosted_api_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    source = write_jsonl(tmp_path / "g.jsonl", [gsm8k_record("Ann", 1, 2)])
    assert prompt_convertion.main(["--domain", "maths", "--data_fn", str(source), "--output_dir",
                                   str(tmp_path / "out"), "--backend", "openai", "--convert_all"]) == 2
    assert "OPENAI_API_KEY" in capsys.readouterr().err


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_loses_nothing_and_writes_nothing_twice(tmp_path, serve):
    names = [f"Kid{n:03d}" for n in range(60)]
    doomed = {"Kid007", "Kid031", "Kid052"}
    source = write_jsonl(tmp_path / "gsm8k_kill.jsonl", [gsm8k_record(n, i, 3) for i, n in enumerate(names)])
    replies = {n: ("no plan here" if n in doomed else maths_plan(i, 3)) for i, n in enumerate(names)}
    server = serve(by_task(replies, fallback="still no plan"), latency_s=0.05)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "data.prompt_convertion", "--domain", "maths", "--data_fn", str(source),
               "--output_dir", str(out), "--concurrency", "2", "--batch_size", "8", *convert(server)]
    env = {**os.environ, "OPENAI_API_KEY": SECRET,
           "PYTHONPATH": str(Path(prompt_convertion.__file__).resolve().parents[1])}
    env.pop("OPENAI_BASE_URL", None)
    output = out / "gsm8k_kill_converted.json"
    process = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and (not output.exists() or output.read_bytes().count(b"\n") < 12):
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    before = output.read_bytes().count(b"\n")
    assert 12 <= before < 57, "the run must be killed part-way for this test to mean anything"

    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr  # the doomed records failed, the rest converted
    converted = [r["id"] for r in read_jsonl(output)]
    failed = read_jsonl(out / "gsm8k_kill_converted.failed.jsonl")
    failed_ids = [r["id"] for r in failed]
    assert len(converted) == len(set(converted)) == 57 and len(failed_ids) == len(set(failed_ids))
    assert set(converted) | set(failed_ids) == {f"gsm8k_kill:{n}" for n in range(1, 61)}
    assert {names[int(i.split(":")[1]) - 1] for i in failed_ids} == doomed
    assert all(r["reason"] == "no_plan" for r in failed)
    assert_secret_absent(tmp_path, result.stdout, result.stderr)


def test_retry_failed_asks_the_model_again_rather_than_its_cached_reply(tmp_path, serve, api_key, capsys):
    source = write_jsonl(tmp_path / "gsm8k_two.jsonl", [gsm8k_record("Ann", 3, 4), gsm8k_record("Cid", 7, 8)])
    out = tmp_path / "out"
    args = ["--domain", "maths", "--data_fn", str(source), "--output_dir", str(out), "--parse_retries", "0"]
    refusing = serve(by_task({"Ann": maths_plan(3, 4), "Cid": "I am not able to help with that."}))
    assert prompt_convertion.main([*args, *convert(refusing)]) == 0
    assert [r["id"] for r in read_jsonl(out / "gsm8k_two_converted.failed.jsonl")] == ["gsm8k_two:2"]
    # the same requests again (the cache is keyed by the request, not the server): a plain re-run skips Cid,
    # --retry_failed asks again, only for Cid, and keeps the new answer
    answering = serve(by_task({"Ann": maths_plan(3, 4), "Cid": maths_plan(7, 8)}))
    assert prompt_convertion.main([*args, *convert(answering)]) == 0 and answering.stats.requests == 0
    capsys.readouterr()
    assert prompt_convertion.main([*args, "--retry_failed", *convert(answering)]) == 0
    assert answering.stats.requests == 1 and "Cid" in answering.stats.texts[0]
    assert "llm: 1 requests, 0 cache hits" in capsys.readouterr().out
    records = {r["id"]: r for r in read_jsonl(out / "gsm8k_two_converted.json")}
    assert records["gsm8k_two:2"]["subgoal_plan"] == maths_plan(7, 8)
    assert not read_jsonl(out / "gsm8k_two_converted.failed.jsonl")
