"""LLM replies and servers as untrusted input: a dripping server meets a total deadline, and any reply
(lone surrogates included) is cached and replayed safely."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from lumos.llm.cache import MAX_TEXT_CHARS, ResponseCache, request_key
from lumos.llm.openai_backend import OpenAIGenerator
from lumos.llm.scripted import ScriptedGenerator
from lumos.llm.serve import OpenAICompatibleServer


class DrippingServer:
    """Answers every request with headers at once, then one byte of body per ``interval`` seconds."""

    def __init__(self, interval: float = 0.5):
        self.interval = interval
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"
        self.stopped = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn: socket.socket) -> None:
        body = b'{"choices": [{"index": 0, "text": "slow", "finish_reason": "stop"}]}'
        try:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n")
            for byte in body:
                if self.stopped.is_set():
                    break
                conn.sendall(bytes([byte]))
                time.sleep(self.interval)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self) -> None:
        self.stopped.set()
        self.sock.close()


def test_request_timeout_is_a_total_deadline_per_request():
    server = DrippingServer(interval=0.5)
    client = OpenAIGenerator("m", base_url=server.url, timeout_s=2.0, max_attempts=1, progress=False)
    try:
        start = time.monotonic()
        [reply] = client.try_generate(["hello"], max_new_tokens=4)
        elapsed = time.monotonic() - start
    finally:
        client.close()
        server.close()
    assert not isinstance(reply, str) and "timed out" in str(reply)
    assert elapsed < 4.0, elapsed  # without a total deadline: ~35 s (one byte per 0.5 s, each read in time)


def test_a_lone_surrogate_in_a_reply_is_cached_and_replayed(tmp_path):
    weird = "R1 = Calculator(1 + 1) \udcff and \ud800"
    cache = tmp_path / "cache.sqlite"
    with OpenAICompatibleServer(ScriptedGenerator(lambda text: weird)) as server:
        for run in range(2):
            client = OpenAIGenerator("m", base_url=server.url, cache_path=cache, progress=False, timeout_s=5.0)
            try:
                replies = client.try_generate([f"prompt {n}" for n in range(6)], max_new_tokens=16)
            finally:
                client.close()
            assert replies == [weird] * 6
        assert server.stats.requests == 6  # the second run came entirely from the cache


def test_cache_stores_any_text_and_skips_oversized_replies(tmp_path):
    cache = ResponseCache(tmp_path / "cache.sqlite")
    try:
        request = {"messages": [{"role": "user", "content": "a \udcff request"}]}
        cache.put(request, "\ud83d lone high surrogate")
        assert cache.get(request) == ("\ud83d lone high surrogate", 0, 0)
        assert cache.get_many([request_key(request)])[request_key(request)][0] == "\ud83d lone high surrogate"
        cache.put({"big": 1}, "x" * (MAX_TEXT_CHARS + 1))
        assert cache.get({"big": 1}) is None and len(cache) == 1
        # keys of valid text are what they always were
        assert request_key({"a": "é"}) == __import__("hashlib").sha256('{"a":"é"}'.encode()).hexdigest()
    finally:
        cache.close()


@pytest.mark.parametrize("body", ['{"messages": [1, 2]}', '{"max_tokens": "lots", "messages": []}', "[]", "{"])
def test_serve_survives_what_the_issue_sent(body):
    import json
    import urllib.error
    import urllib.request

    with OpenAICompatibleServer(ScriptedGenerator(lambda text: "ok")) as server:
        request = urllib.request.Request(server.url + "/chat/completions", data=body.encode(),
                                         headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=5)
        assert caught.value.code == 400 and "error" in json.loads(caught.value.read())
        fine = urllib.request.Request(server.url + "/completions", data=b'{"prompt": "hi"}',
                                      headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(fine, timeout=5) as response:
            assert json.loads(response.read())["choices"][0]["text"] == "ok"
