"""Any OpenAI-compatible endpoint (OpenAI, vLLM, TGI, llama.cpp, Ollama) behind the batched interface.

Built on the official ``openai`` package's async client, driven from one private event-loop
thread so synchronous callers (the agent loop, the converters) get concurrency without
managing asyncio. Our retry policy is the only one: the client's own retries are disabled.

Per request: cache lookup -> concurrency slot -> requests-per-minute pacing -> call. Retried on
429, 408/409, 5xx, timeouts, connection errors, malformed bodies and (chat) empty content, with
exponential backoff and jitter, honouring ``Retry-After``; after ``max_attempts`` the item becomes
a ``GenerationError`` and the rest of the batch goes on. The API key is read from the environment
when the client is built and is never logged, cached or written anywhere.
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import json
import logging
import os
import queue
import random
import threading
import time
from pathlib import Path
from typing import Any, Iterator, Sequence
from urllib.parse import urlsplit, urlunsplit

from lumos.llm.base import DEFAULT_STOP, ChatGenerator, GenerationError, Generator, Message, Usage, truncate_at_stop
from lumos.llm.cache import ResponseCache

logger = logging.getLogger(__name__)

LOCAL_PLACEHOLDER_KEY = "EMPTY"  # what vLLM & co. accept when they check no key
# Concurrency slots per HTTP client: the connection pool scans every one of its connections on
# each request, so one pool of 64 costs more CPU than the round trip; shards of 8 keep it small.
CONNECTIONS_PER_CLIENT = 8
_RETRYABLE_STATUS = {408, 409, 429}


class MissingAPIKeyError(RuntimeError):
    """No key in the environment while talking to the hosted OpenAI API."""


class _RetryableFailure(Exception):
    """A failed attempt worth repeating; ``retry_after`` is the server's requested wait, if any."""

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None, kind: str):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after
        self.kind = kind


def parse_retry_after(headers: Any) -> float | None:
    """Seconds to wait from ``retry-after-ms`` / ``retry-after`` (seconds or an HTTP date), if present."""
    if headers is None:
        return None
    milliseconds = headers.get("retry-after-ms")
    if milliseconds:
        try:
            return max(0.0, float(milliseconds) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, when.timestamp() - time.time())


def normalise_base_url(url: str) -> str:
    """``http://host:port`` -> ``http://host:port/v1`` (the path every OpenAI-compatible server uses)."""
    parts = urlsplit(url)
    if parts.path in ("", "/"):
        parts = parts._replace(path="/v1")
    return urlunsplit(parts).rstrip("/")


class RequestRateLimiter:
    """Spaces request starts ``60 / per_minute`` seconds apart (no bursts). Used inside one event loop."""

    def __init__(self, per_minute: float):
        if per_minute <= 0:
            raise ValueError(f"requests_per_minute must be positive, got {per_minute}")
        self.interval = 60.0 / per_minute
        self._next_start = 0.0

    async def wait(self) -> None:
        now = time.monotonic()
        start = max(now, self._next_start)
        self._next_start = start + self.interval
        if start > now:
            await asyncio.sleep(start - now)


class _LoopThread:
    """One event loop running forever in a daemon thread; coroutines are submitted to it."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="lumos-llm-loop", daemon=True)
        self._thread.start()

    def submit(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


_DONE = object()


def _client_shards(openai, concurrency: int, *, api_key: str, base_url: str | None, timeout: float) -> list:
    """``ceil(concurrency / CONNECTIONS_PER_CLIENT)`` async clients, each with its own small pool.

    One client is built as the ``openai`` package builds it by default; the others share its TLS
    settings through one ``ssl`` context (creating a context reads the CA bundle: tens of ms each).
    """
    count = -(-concurrency // CONNECTIONS_PER_CLIENT)
    size = min(concurrency, CONNECTIONS_PER_CLIENT)
    clients = []
    ssl_context = None
    for _ in range(count):
        options: dict[str, Any] = {}
        if count > 1:
            if ssl_context is None:
                ssl_context = _default_ssl_context()
            limits = type(openai.DEFAULT_CONNECTION_LIMITS)(max_connections=size, max_keepalive_connections=size)
            options["http_client"] = openai.DefaultAsyncHttpxClient(limits=limits, verify=ssl_context)
        clients.append(openai.AsyncOpenAI(api_key=api_key, base_url=base_url, timeout=timeout, max_retries=0,
                                          **options))
    return clients


@functools.lru_cache(maxsize=1)
def _default_ssl_context():
    """The context HTTP clients verify servers with by default: certifi's CA bundle when installed.

    Built once per process: every generator's shards share it (it is only read after creation).
    """
    import ssl

    try:
        import certifi
    except ImportError:
        return ssl.create_default_context()
    return ssl.create_default_context(cafile=certifi.where())


class OpenAIGenerator(Generator, ChatGenerator):
    """Chat (``/v1/chat/completions``) and text (``/v1/completions``) generation against one endpoint.

    ``base_url``: the server (``OPENAI_BASE_URL`` when omitted; the hosted API when neither is set).
    ``model``: the model name; ``None`` with a ``base_url`` asks the server's ``/v1/models`` once.
    ``temperature``: used by ``generate`` (text prompts); ``chat`` takes it per call.
    ``cache_path``: sqlite response cache, shared across runs and processes; ``None`` disables it.
    """

    def __init__(self, model: str | None = "gpt-4", *, base_url: str | None = None,
                 api_key_env: str = "OPENAI_API_KEY", concurrency: int = 8,
                 requests_per_minute: float | None = None, timeout_s: float = 60.0, max_attempts: int = 5,
                 backoff_base_s: float = 1.0, backoff_max_s: float = 60.0, max_retry_after_s: float = 300.0,
                 temperature: float = 0.0, cache_path: str | Path | None = None, progress: bool = True):
        import openai  # lazily: only runs that talk to an endpoint pay for it

        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
        base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
        if base_url is None and model is None:
            raise ValueError("the hosted OpenAI API needs a model name")
        api_key = os.environ.get(api_key_env) or None
        if api_key is None:
            if base_url is None:
                raise MissingAPIKeyError(f"set {api_key_env} to use the hosted OpenAI API "
                                         "(or give a base_url for a local OpenAI-compatible server)")
            api_key = LOCAL_PLACEHOLDER_KEY
        self.base_url = normalise_base_url(base_url) if base_url else None
        self.model = model
        self.concurrency = concurrency
        self.requests_per_minute = requests_per_minute
        self.max_attempts = max_attempts
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.max_retry_after_s = max_retry_after_s
        self.temperature = temperature
        self.progress = progress
        self.usage = Usage()
        self._openai = openai
        from openai.types import Completion
        from openai.types.chat import ChatCompletion

        self._chat_type, self._completion_type = ChatCompletion, Completion
        self._clients = _client_shards(openai, concurrency, api_key=api_key, base_url=self.base_url,
                                       timeout=timeout_s)
        self._client = self._clients[0]
        del api_key
        self._cache = ResponseCache(cache_path) if cache_path is not None else None
        self._loop_thread = _LoopThread()
        self._slots: asyncio.Queue | None = None  # free concurrency slots; slot i uses client i // 8
        self._rate_limiter: RequestRateLimiter | None = None
        self._model_lock: asyncio.Lock | None = None
        self._closed = False

    # ------------------------------------------------------------------ public, synchronous

    def iter_chat(self, conversations: Sequence[Sequence[Message]], *, temperature: float = 0.0,
                  max_tokens: int = 1024, stop: list[str] | None = None
                  ) -> Iterator[tuple[int, str | GenerationError]]:
        """``(index, reply or error)`` as each request finishes, for callers that save as they go."""
        payloads = []
        for conversation in conversations:
            payload: dict[str, Any] = {"messages": [dict(m) for m in conversation], "temperature": temperature,
                                       "max_tokens": max_tokens}
            if stop:
                payload["stop"] = list(stop)
            payloads.append(payload)
        return self._iterate("chat", payloads)

    def try_chat(self, conversations: Sequence[Sequence[Message]], *, temperature: float = 0.0,
                 max_tokens: int = 1024, stop: list[str] | None = None) -> list[str | GenerationError]:
        return self._collect(self.iter_chat(conversations, temperature=temperature, max_tokens=max_tokens,
                                            stop=stop), len(conversations))

    def iter_generate(self, prompts: Sequence[str], *, stop: list[str] | None = None,
                      max_new_tokens: int = 256) -> Iterator[tuple[int, str | GenerationError]]:
        stop = list(DEFAULT_STOP) if stop is None else list(stop)
        payloads = []
        for prompt in prompts:
            payload: dict[str, Any] = {"prompt": prompt, "temperature": self.temperature,
                                       "max_tokens": max_new_tokens}
            if stop:
                payload["stop"] = stop
            payloads.append(payload)
        return self._iterate("completions", payloads)

    def try_generate(self, prompts: Sequence[str], *, stop: list[str] | None = None,
                     max_new_tokens: int = 256) -> list[str | GenerationError]:
        return self._collect(self.iter_generate(prompts, stop=stop, max_new_tokens=max_new_tokens), len(prompts))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for client in self._clients:
            self._loop_thread.submit(client.close()).result()
        self._loop_thread.close()
        if self._cache is not None:
            self._cache.close()
        logger.info("generation usage: %s", self.usage.summary())

    # ------------------------------------------------------------------ batch plumbing

    @staticmethod
    def _collect(items: Iterator[tuple[int, str | GenerationError]], n: int) -> list[str | GenerationError]:
        results: list[str | GenerationError | None] = [None] * n
        for index, result in items:
            results[index] = result
        return results  # type: ignore[return-value]

    def _iterate(self, endpoint: str, payloads: list[dict[str, Any]]) -> Iterator[tuple[int, str | GenerationError]]:
        if self._closed:
            raise RuntimeError("this generator was closed")
        finished: queue.Queue = queue.Queue()

        async def run_all() -> None:
            try:
                await self._prepare()

                async def run_one(index: int, payload: dict[str, Any]) -> None:
                    finished.put((index, await self._request(endpoint, payload)))

                await asyncio.gather(*(run_one(i, p) for i, p in enumerate(payloads)))
            finally:
                finished.put(_DONE)

        return self._drain(self._loop_thread.submit(run_all()), finished, len(payloads))

    def _drain(self, future, finished: queue.Queue, total: int) -> Iterator[tuple[int, str | GenerationError]]:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc=f"{self.model or 'model'}", unit="req", disable=not self.progress, leave=False)
        try:
            while (item := finished.get()) is not _DONE:
                bar.update(1)
                yield item
            future.result()  # re-raise anything the batch itself (not one request) failed with
        finally:
            bar.close()
            if not future.done():  # the caller stopped early: do not keep paying for the rest
                self._loop_thread.loop.call_soon_threadsafe(future.cancel)

    async def _prepare(self) -> None:
        """Loop-bound primitives, created once inside the loop thread; the model name if unknown."""
        if self._slots is None:
            self._slots = asyncio.Queue()
            for slot in range(self.concurrency):
                self._slots.put_nowait(slot)
            self._model_lock = asyncio.Lock()
            if self.requests_per_minute:
                self._rate_limiter = RequestRateLimiter(self.requests_per_minute)
        if self.model is None:
            async with self._model_lock:
                if self.model is None:
                    models = await self._client.models.list()
                    if not models.data:
                        raise GenerationError(f"the server at {self.base_url} lists no models", kind="config")
                    self.model = models.data[0].id

    # ------------------------------------------------------------------ one request

    async def _request(self, endpoint: str, payload: dict[str, Any]) -> str | GenerationError:
        request = {"endpoint": endpoint, "model": self.model, **payload}
        if self._cache is not None and (hit := self._cache.get(request)) is not None:
            self.usage.cache_hits += 1
            return hit[0]
        last: _RetryableFailure | None = None
        for attempt in range(1, self.max_attempts + 1):
            try:
                slot = await self._slots.get()
                try:
                    if self._rate_limiter is not None:
                        await self._rate_limiter.wait()
                    self.usage.requests += 1
                    client = self._clients[slot // CONNECTIONS_PER_CLIENT]
                    text, prompt_tokens, completion_tokens = await self._call(client, endpoint, payload)
                finally:
                    self._slots.put_nowait(slot)
            except _RetryableFailure as failure:
                last = failure
            except self._openai.APIStatusError as err:  # 400, 401, 403, 404, 422: repeating will not help
                self.usage.failures += 1
                return GenerationError(f"{endpoint} request rejected with HTTP {err.status_code}: {err.message}",
                                       attempts=attempt, status=err.status_code, kind="rejected")
            else:
                self.usage.prompt_tokens += prompt_tokens
                self.usage.completion_tokens += completion_tokens
                if self._cache is not None:
                    self._cache.put(request, text, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
                return text
            if attempt < self.max_attempts:
                delay = self._retry_delay(attempt, last.retry_after)
                self.usage.retries += 1
                logger.warning("%s request failed (%s), attempt %d/%d; retrying in %.2fs",
                               endpoint, last, attempt, self.max_attempts, delay)
                await asyncio.sleep(delay)
        self.usage.failures += 1
        return GenerationError(f"{endpoint} request failed after {self.max_attempts} attempts; last: {last}",
                               attempts=self.max_attempts, status=last.status, kind=last.kind)

    def _retry_delay(self, attempt: int, retry_after: float | None) -> float:
        backoff = min(self.backoff_max_s, self.backoff_base_s * 2 ** (attempt - 1))
        if retry_after is not None:  # the server's wait is a floor; a little jitter spreads the herd
            return min(retry_after, self.max_retry_after_s) + random.uniform(0, 0.1 * backoff)
        return backoff * random.uniform(0.5, 1.0)

    async def _call(self, client, endpoint: str, payload: dict[str, Any]) -> tuple[str, int, int]:
        """One HTTP call; failures worth repeating become ``_RetryableFailure``."""
        openai = self._openai
        try:
            # The client's generic ``post``: our payloads are plain JSON already, and the typed
            # ``create`` methods spend more CPU walking them than the HTTP round trip costs.
            path, response_type = ((("/chat/completions", self._chat_type) if endpoint == "chat"
                                    else ("/completions", self._completion_type)))
            response = await client.post(path, body={"model": self.model, **payload}, cast_to=response_type)
        except openai.APITimeoutError as err:
            raise _RetryableFailure(f"timed out: {err}", kind="timeout") from err
        except openai.APIConnectionError as err:
            raise _RetryableFailure(f"connection error: {err}", kind="connection") from err
        except openai.APIStatusError as err:
            if err.status_code in _RETRYABLE_STATUS or err.status_code >= 500:
                raise _RetryableFailure(f"HTTP {err.status_code}", status=err.status_code,
                                        retry_after=parse_retry_after(err.response.headers),
                                        kind="rate_limit" if err.status_code == 429 else "server_error") from err
            raise
        except (openai.APIResponseValidationError, json.JSONDecodeError) as err:
            raise _RetryableFailure(f"malformed response body: {err}", kind="malformed") from err
        choices = getattr(response, "choices", None)
        if not choices:
            raise _RetryableFailure("response has no choices", kind="malformed")
        if endpoint == "chat":
            text = choices[0].message.content
            if not text:  # an empty chat reply is never a usable annotation or answer
                raise _RetryableFailure("empty content", kind="empty")
        else:
            text = choices[0].text or ""  # an empty completion is a legitimate (EOS-first) answer
            text = truncate_at_stop(text, payload.get("stop"))
        usage = getattr(response, "usage", None)
        return (text, getattr(usage, "prompt_tokens", 0) or 0, getattr(usage, "completion_tokens", 0) or 0)
