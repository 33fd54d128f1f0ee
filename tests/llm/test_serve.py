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


@pytest.mark.parametrize("body, param", [
    ({"messages": [1, 2]}, "messages[0]"),
    ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
    ({"messages": [{"role": "user", "content": "2 + 3"}], "max_tokens": "lots"}, "max_tokens"),
    ({"messages": [{"role": "user", "content": "2 + 3"}], "max_tokens": True}, "max_tokens"),
    ({"messages": [{"role": "user", "content": "2 + 3"}], "temperature": "hot"}, "temperature"),
    ({"messages": [{"role": "user", "content": "2 + 3"}], "stop": 7}, "stop"),
    ({"messages": []}, "messages"),
    ([1, 2, 3], None),
])
def test_bad_request_bodies_get_an_openai_style_400_and_the_server_goes_on(server, body, param):
    status, answer = post(server.url + "/chat/completions", json.dumps(body).encode())
    assert status == 400
    assert answer["error"]["type"] == "invalid_request_error" and answer["error"]["param"] == param
    assert "bad request body" in answer["error"]["message"]
    status, answer = post(server.url + "/completions", json.dumps({"prompt": ["2 + 3", 4]}).encode())
    assert status == 400 and answer["error"]["param"] == "prompt"
    status, answer = post(server.url + "/chat/completions",
                          json.dumps({"messages": [{"role": "user", "content": "2 + 3"}]}).encode())
    assert status == 200 and answer["choices"][0]["message"]["content"] == "5"
    assert server.stats.requests == 1  # bad bodies are refused before they count


@pytest.mark.parametrize("length", ["lots", "-5", "99999999999999"])
def test_a_bad_content_length_gets_an_error_not_a_dropped_connection(server, length):
    host, port = server.url.split("//")[1].split("/")[0].split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n{{}}".encode())
        reply = b""
        while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
    head, _, payload = reply.partition(b"\r\n\r\n")
    assert head.split()[1] in (b"400", b"413")
    assert json.loads(payload)["error"]["param"] == "Content-Length"
    status, answer = post(server.url + "/chat/completions",
                          json.dumps({"messages": [{"role": "user", "content": "2 + 3"}]}).encode())
    assert status == 200


def test_a_failing_generator_answers_500_and_the_server_goes_on():
    from lumos.llm.scripted import ScriptedGenerator

    def reply(text: str) -> str:
        if "boom" in text:
            raise RuntimeError("the model broke")
        return "fine"

    with OpenAICompatibleServer(ScriptedGenerator(reply)) as running:
        status, answer = post(running.url + "/completions", json.dumps({"prompt": "boom"}).encode())
        assert status in (400, 500) and "error" in answer
        status, answer = post(running.url + "/completions", json.dumps({"prompt": "hello"}).encode())
        assert status == 200 and answer["choices"][0]["text"] == "fine"
