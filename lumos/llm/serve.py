"""A small OpenAI-compatible HTTP server in front of any ``lumos.llm`` generator.

    python -m lumos.llm.serve --model out/tiny_plan --port 8000          # a local checkpoint
    python -m lumos.llm.serve --model scripted:replies.json --port 8000   # scripted replies

Speaks the real protocol for ``POST /v1/chat/completions``, ``POST /v1/completions`` and
``GET /v1/models``, so the ``openai`` client (and anything else) talks to it unchanged. Binds
127.0.0.1 unless told otherwise. For tests, ``faults`` scripts per-request failures (429 with
``Retry-After``, 500, a long delay, empty content, a malformed body) and ``stats`` counts
requests and the most requests in flight at once.

A latency model for benchmarks stands in for a real server's compute: each request waits
``(latency_s + latency_per_token_s * tokens generated) * f``, where ``f`` varies per request
(uniform in ``1 ± latency_jitter``, drawn from the request's text and ``latency_seed``, so the same
request waits the same in every run). The waits overlap, as a continuously batching server's do.

    python -m lumos.llm.serve --model scripted:replies.json --latency_s 0.05 --latency_per_token_s 0.01 \
        --latency_jitter 0.5
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

from lumos.llm.base import ChatGenerator, GenerationError, Generator

FaultKind = Literal["rate_limit", "server_error", "delay", "empty", "malformed"]


@dataclass
class Fault:
    """A failure served instead of (or before) a normal reply.

    ``match``: regex searched in the request's text (last user turn or prompt); ``None`` matches all.
    ``times``: how many matching requests get it; ``None`` means every one.
    """

    kind: FaultKind
    match: str | None = None
    times: int | None = 1
    retry_after: float = 1.0  # rate_limit: the Retry-After header, in seconds
    delay_s: float = 5.0  # delay: sleep this long, then answer normally

    def __post_init__(self):
        if self.kind not in ("rate_limit", "server_error", "delay", "empty", "malformed"):
            raise ValueError(f"unknown fault kind {self.kind!r}")


@dataclass
class ServerStats:
    requests: int = 0  # generation requests received (POSTs), faulty ones included
    in_flight: int = 0
    max_in_flight: int = 0
    faults_served: int = 0
    texts: list[str] = field(default_factory=list)  # request text of each generation request
    authorizations: set[str] = field(default_factory=set)  # Authorization headers seen (tests check keys arrive)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # the default backlog of 5 resets connections when many clients open at once


class OpenAICompatibleServer:
    """``with OpenAICompatibleServer(generator) as server: OpenAI(base_url=server.url, ...)``."""

    def __init__(self, generator: Generator | ChatGenerator, *, host: str = "127.0.0.1", port: int = 0,
                 model_name: str = "lumos", latency_s: float = 0.0, eos: str = "</s>",
                 latency_per_token_s: float = 0.0, latency_jitter: float = 0.0, latency_seed: int = 0):
        if min(latency_s, latency_per_token_s) < 0 or not 0 <= latency_jitter <= 1:
            raise ValueError("latencies must be at least 0 and latency_jitter between 0 and 1")
        self.generator = generator
        self.model_name = model_name
        self.latency_s = latency_s
        self.latency_per_token_s = latency_per_token_s
        self.latency_jitter = latency_jitter
        self.latency_seed = latency_seed
        self.eos = eos
        self.faults: list[Fault] = []
        self.stats = ServerStats()
        self._lock = threading.Lock()
        # A model that is not thread-safe (a local torch model) answers one request at a time.
        self._generation_lock = None if getattr(generator, "thread_safe", False) else threading.Lock()
        self._httpd = _Server((host, port), _handler_for(self))
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def add_fault(self, kind: FaultKind, **options: Any) -> Fault:
        fault = Fault(kind, **options)
        with self._lock:
            self.faults.append(fault)
        return fault

    def start(self) -> "OpenAICompatibleServer":
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="lumos-llm-serve", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join()

    def serve_forever(self) -> None:
        self._httpd.serve_forever()

    def __enter__(self) -> "OpenAICompatibleServer":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # ------------------------------------------------------------------ request bookkeeping

    def _enter(self, text: str, authorization: str | None) -> Fault | None:
        with self._lock:
            self.stats.requests += 1
            if authorization:
                self.stats.authorizations.add(authorization)
            self.stats.texts.append(text)
            self.stats.in_flight += 1
            self.stats.max_in_flight = max(self.stats.max_in_flight, self.stats.in_flight)
            for fault in self.faults:
                if fault.times == 0 or (fault.match is not None and not re.search(fault.match, text)):
                    continue
                if fault.times is not None:
                    fault.times -= 1
                self.stats.faults_served += 1
                return fault
        return None

    def _leave(self) -> None:
        with self._lock:
            self.stats.in_flight -= 1

    def latency_factor(self, text: str) -> float:
        """The request's own multiplier of the latency model, in ``1 ± latency_jitter``; the same for the same text."""
        if not self.latency_jitter:
            return 1.0
        draw = random.Random(f"{self.latency_seed}\x00{text}").uniform(-1.0, 1.0)
        return 1.0 + self.latency_jitter * draw

    def _generate(self, kind: str, body: dict[str, Any]) -> list[str | GenerationError]:
        stop = body.get("stop")
        stop = [stop] if isinstance(stop, str) else list(stop or [])  # protocol: no stop means none
        max_tokens = int(body.get("max_tokens") or 256)
        if kind == "chat":
            messages = body["messages"]
            if isinstance(self.generator, ChatGenerator):
                return self.generator.try_chat([messages], temperature=float(body.get("temperature") or 0.0),
                                               max_tokens=max_tokens, stop=stop)
            from lumos.prompts import render_prompt  # a Lumos checkpoint: render as in training
            prompts = [render_prompt(messages, self.eos)]
        else:
            prompts = body["prompt"] if isinstance(body["prompt"], list) else [body["prompt"]]
        return self.generator.try_generate(prompts, stop=stop, max_new_tokens=max_tokens)

    def generate(self, kind: str, body: dict[str, Any]) -> list[str | GenerationError]:
        if self._generation_lock is None:
            return self._generate(kind, body)
        with self._generation_lock:
            return self._generate(kind, body)


MAX_BODY_BYTES = 64 * 1024 * 1024


class BadRequest(ValueError):
    """A request body that does not follow the protocol; ``param`` names the field."""

    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.param = param


def _check_body(kind: str, body: Any) -> None:
    """Refuse, naming the field, a body the generation could not use (before anything is counted or run)."""
    if not isinstance(body, dict):
        raise BadRequest(f"the body must be a JSON object, not {type(body).__name__}")
    if kind == "chat":
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise BadRequest("'messages' must be a non-empty list", "messages")
        for index, message in enumerate(messages):
            if not isinstance(message, dict) or not isinstance(message.get("role"), str):
                raise BadRequest(f"messages[{index}] must be an object with a string 'role'", f"messages[{index}]")
            if not isinstance(message.get("content"), (str, type(None))):
                raise BadRequest(f"messages[{index}].content must be a string", f"messages[{index}].content")
    else:
        prompt = body.get("prompt")
        if not (isinstance(prompt, str) or (isinstance(prompt, list) and prompt
                                            and all(isinstance(p, str) for p in prompt))):
            raise BadRequest("'prompt' must be a string or a non-empty list of strings", "prompt")
    max_tokens = body.get("max_tokens")
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1):
        raise BadRequest(f"'max_tokens' must be a positive integer, got {max_tokens!r}"[:200], "max_tokens")
    temperature = body.get("temperature")
    if temperature is not None and (isinstance(temperature, bool) or not isinstance(temperature, (int, float))
                                    or not 0 <= temperature <= 2):
        raise BadRequest(f"'temperature' must be a number from 0 to 2, got {temperature!r}"[:200], "temperature")
    stop = body.get("stop")
    if stop is not None and not isinstance(stop, str) and not (
            isinstance(stop, list) and all(isinstance(s, str) for s in stop)):
        raise BadRequest("'stop' must be a string or a list of strings", "stop")


def _request_text(kind: str, body: dict[str, Any]) -> str:
    if kind == "chat":
        users = [m.get("content", "") for m in body.get("messages", []) if m.get("role") == "user"]
        return str(users[-1]) if users else ""
    prompt = body.get("prompt", "")
    return "\n".join(prompt) if isinstance(prompt, list) else str(prompt)


def _count_tokens(text: str) -> int:
    return len(text.split())  # a cheap stand-in: the protocol needs a number, not a tokenizer


def _handler_for(server: OpenAICompatibleServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # else a small reply waits ~40 ms on the client's delayed ACK

        def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
            pass

        def _send(self, status: int, payload: bytes, headers: dict[str, str] | None = None) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (its timeout); nothing to tell it

        def _send_json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
            self._send(status, json.dumps(obj).encode("utf-8"), headers)

        def _error(self, status: int, message: str, headers: dict[str, str] | None = None,
                   param: str | None = None) -> None:
            kind = {400: "invalid_request_error", 404: "not_found_error", 413: "invalid_request_error",
                    429: "rate_limit_error"}.get(status, "server_error")
            self._send_json(status, {"error": {"message": message, "type": kind, "param": param, "code": None}},
                            headers)

        def do_GET(self) -> None:
            if self.path.rstrip("/") == "/v1/models":
                self._send_json(200, {"object": "list", "data": [
                    {"id": server.model_name, "object": "model", "created": 0, "owned_by": "lumos"}]})
            else:
                self._error(404, f"no route GET {self.path}")

        def do_POST(self) -> None:
            kind = {"/v1/chat/completions": "chat", "/v1/completions": "completions"}.get(self.path.rstrip("/"))
            declared = (self.headers.get("Content-Length") or "0").strip()
            if not declared.isdigit() or int(declared) > MAX_BODY_BYTES:
                self.close_connection = True  # the body's end is unknown: this connection cannot go on
                reason = "not a number of bytes" if not declared.isdigit() else f"over {MAX_BODY_BYTES} bytes"
                return self._error(400 if not declared.isdigit() else 413, f"bad Content-Length {declared[:40]!r}: "
                                   f"{reason}", param="Content-Length")
            raw = self.rfile.read(int(declared))
            if kind is None:
                return self._error(404, f"no route POST {self.path}")
            try:
                body = json.loads(raw)
                _check_body(kind, body)
            except BadRequest as err:
                return self._error(400, f"bad request body: {err}", param=err.param)
            except (ValueError, RecursionError) as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
                return self._error(400, f"bad request body: not JSON ({type(err).__name__}: {err})")
            text = _request_text(kind, body)
            fault = server._enter(text, self.headers.get("Authorization"))
            try:
                self._answer(kind, body, text, fault)
            except Exception as err:  # noqa: BLE001 - per-request boundary: one request's failure is its 500
                self._error(500, f"generation failed: {type(err).__name__}: {err}"[:2000])
            finally:
                server._leave()

        def _answer(self, kind: str, body: dict[str, Any], text: str, fault: Fault | None) -> None:
            factor = server.latency_factor(text)
            if server.latency_s:
                time.sleep(server.latency_s * factor)
            if fault is not None:
                if fault.kind == "rate_limit":
                    return self._error(429, "rate limit reached (injected)",
                                       {"Retry-After": f"{fault.retry_after:g}"})
                if fault.kind == "server_error":
                    return self._error(500, "internal error (injected)")
                if fault.kind == "malformed":
                    return self._send(200, b'{"id": "cmpl-broken", "choices": [')
                if fault.kind == "delay":
                    time.sleep(fault.delay_s)
            results = server.generate(kind, body)
            generated = sum(_count_tokens(r) for r in results if isinstance(r, str))
            if server.latency_per_token_s:  # outside the generation lock: waits overlap
                time.sleep(server.latency_per_token_s * generated * factor)
            if fault is not None and fault.kind == "empty":
                results = ["" for _ in results]
                generated = 0
            for result in results:
                if isinstance(result, GenerationError):
                    return self._error(400 if result.kind == "unscripted" else 500, str(result))
            self._send_json(200, _completion_body(kind, body, results, _count_tokens(text), generated))

    return Handler


def _completion_body(kind: str, body: dict[str, Any], texts: list[str], prompt_tokens: int,
                     completion_tokens: int) -> dict[str, Any]:
    if kind == "chat":
        choices = [{"index": i, "message": {"role": "assistant", "content": t}, "finish_reason": "stop",
                    "logprobs": None} for i, t in enumerate(texts)]
        object_name, prefix = "chat.completion", "chatcmpl"
    else:
        choices = [{"index": i, "text": t, "finish_reason": "stop", "logprobs": None} for i, t in enumerate(texts)]
        object_name, prefix = "text_completion", "cmpl"
    return {"id": f"{prefix}-{uuid.uuid4().hex}", "object": object_name, "created": int(time.time()),
            "model": body.get("model", ""), "choices": choices,
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens}}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve a lumos.llm generator over the OpenAI HTTP protocol.")
    parser.add_argument("--model", required=True, help="a local model folder / hub id, or scripted:<file>")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--model_name", default=None, help="the id /v1/models reports (default: --model)")
    parser.add_argument("--latency_s", type=float, default=0.0, help="added delay per request (benchmarks)")
    parser.add_argument("--latency_per_token_s", type=float, default=0.0,
                        help="added delay per generated token (whitespace-separated word) of a request")
    parser.add_argument("--latency_jitter", type=float, default=0.0,
                        help="each request's delays scaled by a factor in 1 +- this (0 to 1), fixed per request text")
    parser.add_argument("--latency_seed", type=int, default=0, help="seed of the per-request latency factors")
    parser.add_argument("--eos", default="</s>", help="EOS text used when rendering chat turns for a text model")
    args = parser.parse_args(argv)

    from lumos.llm.base import get_generator

    import socket

    try:  # the port first: a busy one fails in a second, before a model is loaded
        with socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds
            probe.bind((args.host, args.port))
    except OSError as error:
        _exit(f"cannot listen on {args.host}:{args.port}: {error.strerror or error} "
              "(another server there? choose another --port)")
    try:
        generator = get_generator(args.model)
    except (OSError, ValueError) as error:  # a missing folder, an uncached hub id offline, a bad scripted file
        _exit(f"cannot load --model {args.model}: {' '.join(str(error).split())}")
    try:
        server = OpenAICompatibleServer(generator, host=args.host, port=args.port,
                                        model_name=args.model_name or args.model, latency_s=args.latency_s,
                                        eos=args.eos, latency_per_token_s=args.latency_per_token_s,
                                        latency_jitter=args.latency_jitter, latency_seed=args.latency_seed)
    except OSError as error:
        generator.close()
        _exit(f"cannot listen on {args.host}:{args.port}: {error.strerror or error}")
    except ValueError as error:  # a negative latency, a jitter outside 0..1
        generator.close()
        _exit(str(error))
    print(f"serving {args.model} at {server.url}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        generator.close()



def _exit(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


if __name__ == "__main__":
    main()
