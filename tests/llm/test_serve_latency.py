"""The serve latency model (benchmarks): waits grow with the tokens generated, vary per request, repeat per text."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from lumos.llm.scripted import ScriptedGenerator
from lumos.llm.serve import OpenAICompatibleServer


def test_waits_grow_with_generated_tokens_and_vary_per_request(make_client):
    long_reply = " ".join(["word"] * 20)
    model = ScriptedGenerator([(r"long", long_reply), (r"short", "ok")])
    with OpenAICompatibleServer(model, model_name="m", latency_per_token_s=0.02) as server:
        client = make_client(base_url=server.url)
        client.generate(["short"])  # the client's set-up (imports, model name) before any timing
        started = time.perf_counter()
        assert client.generate(["short"]) == ["ok"]
        short_s = time.perf_counter() - started
        started = time.perf_counter()
        assert client.generate(["long"]) == [long_reply]
        long_s = time.perf_counter() - started
    assert long_s >= 20 * 0.02 and long_s > short_s + 0.3

    with OpenAICompatibleServer(model, latency_jitter=0.5, latency_seed=3) as server, \
            OpenAICompatibleServer(model, latency_jitter=0.5, latency_seed=4) as other_seed, \
            OpenAICompatibleServer(model) as no_jitter:
        factors = [server.latency_factor(f"prompt {k}") for k in range(200)]
        assert all(0.5 <= f <= 1.5 for f in factors) and max(factors) - min(factors) > 0.8
        assert server.latency_factor("prompt 7") == factors[7]  # the same request waits the same in every run
        assert other_seed.latency_factor("prompt 7") != factors[7]
        assert no_jitter.latency_factor("prompt 7") == 1.0
    with pytest.raises(ValueError):
        OpenAICompatibleServer(model, latency_jitter=1.5)


def test_cli_refuses_a_bad_latency_model_in_one_line(tmp_path):
    rules = tmp_path / "rules.json"
    rules.write_text('{"rules": [["x", "y"]]}', encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "lumos.llm.serve", "--model", f"scripted:{rules}", "--port", "0",
                             "--latency_jitter", "2"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.startswith("error:") and len(result.stderr.strip().splitlines()) == 1
