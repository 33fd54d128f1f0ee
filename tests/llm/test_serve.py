"""The OpenAI-compatible server: protocol details, serving a local model, and the command line."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import urllib.error
import urllib.request

import openai
import pytest

from lumos.llm.hf_backend import HFGenerator
from lumos.llm.serve import OpenAICompatibleServer
from lumos.prompts import render_prompt


def post(url: str, body: bytes) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_protocol_objects_and_errors(server):
    client = openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0)
    assert [m.id for m in client.models.list().data] == ["scripted-model"]
    chat = client.chat.completions.create(model="scripted-model", messages=[{"role": "user", "content": "2 + 3"}])
    assert chat.object == "chat.completion" and chat.choices[0].message.content == "5"
    assert chat.choices[0].finish_reason == "stop" and chat.usage.total_tokens > 0
    completion = client.completions.create(model="scripted-model", prompt=["2 + 3", "capital of France"],
                                           max_tokens=5)
    assert [c.text for c in completion.choices] == ["5", "Paris"]

    status, body = post(server.url + "/chat/completions", b"{not json")
    assert status == 400 and "bad request body" in body["error"]["message"]
    status, body = post(server.url + "/chat/completions", json.dumps({"model": "m"}).encode())
    assert status == 400 and "messages" in body["error"]["message"]
    status, body = post(server.url + "/embeddings", b"{}")
    assert status == 404
    assert server.stats.requests == 2  # only the two well-formed generation requests


def test_serves_a_local_model_with_the_training_chat_rendering(tiny_model):
    model, tokenizer = tiny_model
    generator = HFGenerator(model, tokenizer)
    messages = [{"role": "user", "content": "Task: how many apples?"}]
    expected = generator.generate([render_prompt(messages, tokenizer.eos_token)], stop=[], max_new_tokens=6)[0]
    with OpenAICompatibleServer(generator, eos=tokenizer.eos_token) as server:
        client = openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0)
        reply = client.chat.completions.create(model="lumos", messages=messages, max_tokens=6)
    assert reply.choices[0].message.content == expected


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.timeout(60)
def test_command_line_serves_scripted_replies(tmp_path):
    rules = tmp_path / "replies.json"
    rules.write_text(json.dumps({"What is 2 \\+ 3": "5"}))
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "lumos.llm.serve", "--model", f"scripted:{rules}",
                                "--port", str(port), "--model_name", "tiny"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert process.stdout.readline().strip() == f"serving scripted:{rules} at http://127.0.0.1:{port}/v1"
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", max_retries=0)
        reply = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "What is 2 + 3?"}])
        assert reply.choices[0].message.content == "5"
    finally:
        process.terminate()
        process.wait(timeout=10)
