"""The real ``openai`` async client against the local OpenAI-compatible server on loopback."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time

import pytest

from lumos.llm import BatchGenerationError, GenerationError, get_generator
from lumos.llm.openai_backend import MissingAPIKeyError, OpenAIGenerator, normalise_base_url, parse_retry_after


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": "You are terse."}, {"role": "user", "content": text}]


def test_scripted_chat_replies_in_input_order(server, make_client):
    client = make_client(concurrency=4)
    questions = ["What is 2 + 3?", "What is the capital of France?", "Who wrote Hamlet?"] * 3
    assert client.chat([user(q) for q in questions]) == ["5", "Paris", "I do not know"] * 3
    assert client.model == "scripted-model"  # discovered through /v1/models
    assert server.stats.requests == 9
    assert client.usage.requests == 9 and client.usage.prompt_tokens > 0 and client.usage.completion_tokens > 0


def test_text_completions_stop_at_first_newline_by_default(make_client):
    client = make_client()
    assert client.generate(["Subgoal 1: add", "What is 2 + 3?"]) == ["R1 = Calculator(2 + 3)", "5"]
    assert client.generate(["Subgoal 1: add"], stop=["Calculator"]) == ["R1 = "]


def test_429_waits_for_retry_after(server, make_client):
    server.add_fault("rate_limit", retry_after=0.8)
    client = make_client()
    started = time.monotonic()
    assert client.chat([user("capital of France?")]) == ["Paris"]
    elapsed = time.monotonic() - started
    assert elapsed >= 0.75, f"retried after {elapsed:.2f}s, before the server's Retry-After of 0.8s"
    assert server.stats.requests == 2 and client.usage.retries == 1


def test_500_then_success(server, make_client):
    server.add_fault("server_error", times=2)
    client = make_client()
    assert client.chat([user("2 + 3")]) == ["5"]
    assert server.stats.requests == 3 and client.usage.retries == 2 and client.usage.failures == 0


def test_timeout_then_success(server, make_client):
    server.add_fault("delay", delay_s=3.0)
    client = make_client(timeout_s=0.5)
    started = time.monotonic()
    assert client.chat([user("2 + 3")]) == ["5"]
    assert time.monotonic() - started < 2.5, "the client waited for the slow reply instead of timing out"
    assert client.usage.retries == 1


@pytest.mark.parametrize("kind", ["empty", "malformed"])
def test_empty_or_malformed_reply_is_retried(server, make_client, kind):
    server.add_fault(kind)
    client = make_client()
    assert client.chat([user("capital of France")]) == ["Paris"]
    assert server.stats.requests == 2 and client.usage.retries == 1


def test_exhausted_attempts_fail_only_that_item(server, make_client):
    server.add_fault("server_error", match="doomed", times=None)
    client = make_client(max_attempts=3, concurrency=2)
    conversations = [user("2 + 3"), user("a doomed question"), user("capital of France")]
    results = client.try_chat(conversations)
    assert results[0] == "5" and results[2] == "Paris"
    failure = results[1]
    assert isinstance(failure, GenerationError)
    assert failure.attempts == 3 and failure.status == 500 and failure.kind == "server_error"
    assert "3 attempts" in str(failure) and failure.to_record()["status"] == 500
    assert client.usage.failures == 1 and client.usage.retries == 2
    with pytest.raises(BatchGenerationError) as raised:
        client.chat(conversations)
    assert raised.value.results[0] == "5" and list(raised.value.failures) == [1]


def test_rejected_request_is_not_retried(scripted, make_client):
    scripted.default = None  # an unscripted prompt now gets HTTP 400
    client = make_client(max_attempts=4)
    [result] = client.try_chat([user("something unforeseen")])
    assert isinstance(result, GenerationError) and result.status == 400 and result.attempts == 1


def test_cache_hit_pays_nothing_and_survives_a_new_process(server, make_client, tmp_path):
    cache = tmp_path / "cache.sqlite"
    client = make_client(cache_path=cache)
    conversations = [user("2 + 3"), user("capital of France")]
    first = client.chat(conversations, temperature=0.0)
    assert server.stats.requests == 2
    assert client.chat(conversations, temperature=0.0) == first
    assert server.stats.requests == 2 and client.usage.cache_hits == 2
    client.chat(conversations[:1], temperature=0.7)  # other sampling parameters: a new request
    assert server.stats.requests == 3

    script = (
        "import json, sys\n"
        "from lumos.llm.openai_backend import OpenAIGenerator\n"
        f"g = OpenAIGenerator('scripted-model', base_url={server.url!r}, cache_path={str(cache)!r}, progress=False)\n"
        f"print(json.dumps([g.chat({json.dumps(conversations)}), g.usage.as_dict()]))\n"
        "g.close()\n"
    )
    output = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    replies, usage = json.loads(output)
    assert replies == first and usage["cache_hits"] == 2 and usage["requests"] == 0
    assert server.stats.requests == 3


def test_api_key_reaches_the_server_but_never_the_cache_or_logs(server, make_client, tmp_path, monkeypatch,
                                                                caplog, capfd):
    secret = "sk-lumos-test-5ecret-key-0123456789"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    server.add_fault("server_error")
    caplog.set_level(logging.DEBUG)
    client = make_client(cache_path=tmp_path / "cache.sqlite", progress=True)
    assert client.chat([user("2 + 3")]) == ["5"]
    client.close()
    assert f"Bearer {secret}" in server.stats.authorizations
    assert "retrying" in caplog.text  # the retry was logged, so the logs were really looked at
    captured = capfd.readouterr()
    for text in (caplog.text, captured.out, captured.err, repr(client.__dict__)):
        assert secret not in text
    for path in tmp_path.iterdir():
        assert secret.encode() not in path.read_bytes(), f"API key written to {path.name}"


def test_concurrency_limit_is_respected(server, make_client):
    server.latency_s = 0.2
    client = make_client(concurrency=3)
    client.chat([user(f"question {i}") for i in range(12)])
    assert server.stats.max_in_flight == 3


def test_requests_per_minute_spaces_requests(make_client):
    client = make_client(concurrency=8, requests_per_minute=600)  # one every 0.1 s
    started = time.monotonic()
    client.chat([user(f"question {i}") for i in range(6)])
    assert time.monotonic() - started >= 0.45


def test_iter_chat_yields_results_as_they_finish(server, make_client):
    server.add_fault("delay", match="slow", delay_s=0.6)
    client = make_client(concurrency=4)
    order = [index for index, _ in client.iter_chat([user("slow one"), user("2 + 3"), user("capital of France")])]
    assert sorted(order) == [0, 1, 2] and order[-1] == 0


def test_get_generator_picks_the_openai_backend(server, monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with get_generator(server.url.removesuffix("/v1"), progress=False) as client:
        assert isinstance(client, OpenAIGenerator) and client.base_url == server.url
        assert client.chat([user("2 + 3")]) == ["5"] and client.model == "scripted-model"
    with pytest.raises(MissingAPIKeyError, match="OPENAI_API_KEY"):
        get_generator("openai:gpt-4")
    monkeypatch.setenv("OPENAI_BASE_URL", server.url)
    with get_generator("openai:scripted-model", progress=False) as client:
        assert client.model == "scripted-model" and client.generate(["2 + 3"]) == ["5"]


def test_parse_retry_after_forms():
    assert parse_retry_after({"retry-after": "2"}) == 2.0
    assert parse_retry_after({"retry-after-ms": "250"}) == 0.25
    assert 25 < parse_retry_after({"retry-after": time.strftime("%a, %d %b %Y %H:%M:%S GMT",
                                                                 time.gmtime(time.time() + 30))}) <= 30
    assert parse_retry_after({"retry-after": "soon"}) is None and parse_retry_after({}) is None
    assert normalise_base_url("http://127.0.0.1:8000") == "http://127.0.0.1:8000/v1"
    assert normalise_base_url("http://h:1/v1/") == "http://h:1/v1"


def test_many_simultaneous_connections_need_no_retries(server, make_client):
    server.latency_s = 0.2
    client = make_client(concurrency=64)
    assert len(client.chat([user(f"question {i}") for i in range(128)])) == 128
    assert client.usage.retries == 0 and server.stats.max_in_flight > 32
