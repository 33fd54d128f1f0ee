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
from typing import Any, Hashable, Iterator, Sequence
from urllib.parse import urlsplit, urlunsplit

from lumos.llm.base import DEFAULT_STOP, ChatGenerator, GenerationError, Generator, Message, Usage, truncate_at_stop
from lumos.llm.cache import ResponseCache, SharedPrefixKeys, request_key

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


def _new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's loop where installed (less CPU per request on the socket path), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class _LoopThread:
    """One event loop running forever in a daemon thread; coroutines are submitted to it."""

    def __init__(self):
        self.loop = _new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="lumos-llm-loop", daemon=True)
        self._thread.start()

    def submit(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


class _Crash:
    """An exception a request's task raised (not a per-request failure): re-raised in the caller."""

    def __init__(self, error: BaseException):
        self.error = error


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


class RequestStream:
    """Requests submitted one at a time and answered as each finishes: a bounded, steady flow.

    Made by :meth:`OpenAIGenerator.chat_stream` / :meth:`OpenAIGenerator.completion_stream`. The
    caller keeps ``room`` requests queued (:meth:`submit`, with any hashable tag) and takes what
    has finished with :meth:`completed`; the backend keeps every concurrency slot busy in between,
    instead of waiting for the slowest request of a batch. Queued requests are looked up in the
    cache together (one query) and only the misses reach the event loop; replies are stored in the
    cache in batches. Chat requests share ``prefix`` (leading messages), hashed once for the keys.
    """

    def __init__(self, generator: "OpenAIGenerator", endpoint: str, params: dict[str, Any],
                 prefix: Sequence[Message] = (), window: int | None = None):
        self._generator = generator
        self._endpoint = endpoint
        self._params = params
        self._prefix = [dict(m) for m in prefix]
        self.window = window or 2 * generator.concurrency + 16
        self._queued: list[tuple[Hashable, Any]] = []
        self._ready: list[tuple[Hashable, str | GenerationError]] = []
        self._live: dict[int, tuple[Hashable, str | None, dict[str, Any]]] = {}  # id -> tag, cache key, request
        self._finished: queue.SimpleQueue = queue.SimpleQueue()
        self._tasks: set[asyncio.Task] = set()
        self._next_id = 0
        self._keys: SharedPrefixKeys | None = None
        self._to_store: list[tuple[str, dict[str, Any], str, int, int]] = []  # answers not yet cached
        self._bar = None
        self._closed = False

    @property
    def room(self) -> int:
        """How many more requests to submit now to keep the flow full."""
        return self.window - len(self._live) - len(self._queued)

    @property
    def idle(self) -> bool:
        """Nothing queued, running or waiting to be taken."""
        return not (self._queued or self._live or self._ready)

    def submit(self, tag: Hashable, item: Any) -> None:
        """Queue one request: chat messages after the prefix, or a text prompt."""
        if self._closed:
            raise RuntimeError("this stream was closed")
        self._queued.append((tag, item))

    def completed(self) -> list[tuple[Hashable, str | GenerationError]]:
        """Sends what is queued, then returns every finished ``(tag, reply or error)``; waits for at least one."""
        self._dispatch()
        if not self._ready:
            if not self._live:
                return []
            self._ready.append(self._take(self._finished.get()))
        while self._live:
            try:
                item = self._finished.get_nowait()
            except queue.Empty:
                break
            self._ready.append(self._take(item))
        done, self._ready = self._ready, []
        self._handed_out(len(done))
        return done

    def close(self) -> None:
        """Stops what is still running (a caller that stopped early does not keep paying)."""
        if self._closed:
            return
        self._closed = True
        self._store_answers()
        if self._tasks:
            tasks = list(self._tasks)
            self._generator._loop().call_soon_threadsafe(lambda: [task.cancel() for task in tasks])
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> "RequestStream":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ internals

    def _request(self, item: Any) -> dict[str, Any]:
        """The description the cache keys (and the body, less ``endpoint``, sent to the server)."""
        if self._endpoint == "chat":
            return {"endpoint": "chat", "model": self._generator.model, "messages": self._prefix + list(item),
                    **self._params}
        return {"endpoint": "completions", "model": self._generator.model, "prompt": item, **self._params}

    def _key(self, item: Any, request: dict[str, Any]) -> str:
        if self._endpoint != "chat":
            return request_key(request)
        if self._keys is None:
            self._keys = SharedPrefixKeys({"endpoint": "chat", "model": self._generator.model, **self._params},
                                          self._prefix)
        return self._keys.key(list(item))

    def _dispatch(self) -> None:
        if not self._queued:
            return
        generator = self._generator
        if self._bar is None and generator.progress:
            from lumos.progress import progress_bar

            self._bar = progress_bar(desc=f"{generator.model or 'model'}", unit="req", leave=False)
        generator._ensure_model()
        queued, self._queued = self._queued, []
        cache = generator._cache
        requests = [self._request(item) for _, item in queued]
        keys: list[str | None] = [None] * len(queued)
        hits: dict[str, tuple[str, int, int]] = {}
        if cache is not None:
            keys = [self._key(item, request) for (_, item), request in zip(queued, requests)]
            hits = cache.get_many(keys) if generator.read_cache else {}
        misses = []
        for (tag, _), key, request in zip(queued, keys, requests):
            hit = hits.get(key) if key is not None else None
            if hit is not None:
                generator.usage.cache_hits += 1
                self._ready.append((tag, hit[0]))
                continue
            self._next_id += 1
            self._live[self._next_id] = (tag, key, request)
            misses.append((self._next_id, request))
        if misses:
            generator._start(misses, self._finished, self._tasks)

    def _take(self, item: tuple[int, Any]) -> tuple[Hashable, str | GenerationError]:
        request_id, result = item
        tag, key, request = self._live.pop(request_id)
        if isinstance(result, _Crash):
            self.close()
            raise result.error
        if isinstance(result, GenerationError):
            return tag, result
        text, prompt_tokens, completion_tokens = result
        if key is not None:
            self._to_store.append((key, request, text, prompt_tokens, completion_tokens))
        return tag, text

    def _store_answers(self) -> None:
        if self._generator._cache is not None and self._to_store:
            self._generator._cache.put_many(self._to_store)
        self._to_store = []

    def _handed_out(self, count: int) -> None:
        """``count`` replies were returned to the caller: cache the new answers, advance the progress bar."""
        self._store_answers()
        if self._bar is not None:
            self._bar.update(count)


class _GroupInbox:
    """Where a grouped stream's finished requests go: the group's one queue, marked with the stream."""

    def __init__(self, stream: RequestStream, shared: queue.SimpleQueue):
        self._stream = stream
        self._shared = shared

    def put(self, item: tuple[int, Any]) -> None:
        self._shared.put((self._stream, item))


class StreamGroup:
    """Several :class:`RequestStream` (e.g. a planner's and a grounder's, on different servers) waited on
    together: :meth:`completed` returns whatever finished on any of them, as soon as something has.

        with StreamGroup() as group:
            plans = group.add(planner.completion_stream(max_new_tokens=256))
            grounds = group.add(grounder.completion_stream(max_new_tokens=256))
            plans.submit(tag, prompt)
            for stream, tag, reply in group.completed(): ...

    A stream in a group is read through the group only (its own ``completed`` would miss replies).
    """

    def __init__(self):
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        self.streams: list[RequestStream] = []

    def add(self, stream: RequestStream) -> RequestStream:
        if stream._live or stream._ready:
            raise ValueError("add a stream to a group before submitting to it")
        stream._finished = _GroupInbox(stream, self._inbox)
        self.streams.append(stream)
        return stream

    @property
    def idle(self) -> bool:
        return all(stream.idle for stream in self.streams)

    def completed(self) -> list[tuple[RequestStream, Hashable, str | GenerationError]]:
        """Sends what is queued on every stream, then returns every finished ``(stream, tag, reply or error)``;
        waits for at least one while any request is running."""
        for stream in self.streams:
            stream._dispatch()
        done = [(stream, tag, result) for stream in self.streams for tag, result in stream._ready]
        for stream in self.streams:
            stream._ready = []
        if not done and any(stream._live for stream in self.streams):
            stream, item = self._inbox.get()
            done.append((stream, *stream._take(item)))
        while True:
            try:
                stream, item = self._inbox.get_nowait()
            except queue.Empty:
                break
            done.append((stream, *stream._take(item)))
        for stream in self.streams:
            stream._handed_out(sum(1 for owner, _, _ in done if owner is stream))
        return done

    def close(self) -> None:
        for stream in self.streams:
            stream.close()

    def __enter__(self) -> "StreamGroup":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class OpenAIGenerator(Generator, ChatGenerator):
    """Chat (``/v1/chat/completions``) and text (``/v1/completions``) generation against one endpoint.

    ``base_url``: the server (``OPENAI_BASE_URL`` when omitted; the hosted API when neither is set).
    ``model``: the model name; ``None`` with a ``base_url`` asks the server's ``/v1/models`` once.
    ``temperature``: used by ``generate`` (text prompts); ``chat`` takes it per call.
    ``cache_path``: sqlite response cache, shared across runs and processes; ``None`` disables it.
    ``read_cache=False`` sends every request anyway and caches the new answers (a retry).

    The HTTP clients and the event-loop thread are made on the first request that needs them: a
    run answered entirely from the cache never builds them.
    """

    def __init__(self, model: str | None = "gpt-4", *, base_url: str | None = None,
                 api_key_env: str = "OPENAI_API_KEY", concurrency: int = 8,
                 requests_per_minute: float | None = None, timeout_s: float = 60.0, max_attempts: int = 5,
                 backoff_base_s: float = 1.0, backoff_max_s: float = 60.0, max_retry_after_s: float = 300.0,
                 temperature: float = 0.0, cache_path: str | Path | None = None, progress: bool = True,
                 add_special_tokens: bool = True, read_cache: bool = True):
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts}")
        base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
        if base_url is None and model is None:
            raise ValueError("the hosted OpenAI API needs a model name")
        if not os.environ.get(api_key_env) and base_url is None:
            raise MissingAPIKeyError(f"set {api_key_env} to use the hosted OpenAI API "
                                     "(or give a base_url for a local OpenAI-compatible server)")
        self.base_url = normalise_base_url(base_url) if base_url else None
        self.model = model
        self.concurrency = concurrency
        self.requests_per_minute = requests_per_minute
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.max_retry_after_s = max_retry_after_s
        self.temperature = temperature
        # False: text completions ask the server not to add BOS (the released evaluation's prompts
        # had none). Sent as ``add_special_tokens: false``, which vLLM honours; other servers may ignore it.
        self.add_special_tokens = add_special_tokens
        self.progress = progress
        self.usage = Usage()
        self._api_key_env = api_key_env
        self._openai = None
        self._clients: list = []
        self._cache = ResponseCache(cache_path) if cache_path is not None else None
        # False: every request is sent (and its answer cached, replacing the old one): asking again
        # for records whose cached answer was unusable
        self.read_cache = read_cache
        self._loop_thread: _LoopThread | None = None
        self._slots: asyncio.Queue | None = None  # free concurrency slots; slot i uses client i // 8
        self._rate_limiter: RequestRateLimiter | None = None
        self._closed = False

    # ------------------------------------------------------------------ public, synchronous

    def chat_stream(self, *, prefix: Sequence[Message] = (), temperature: float = 0.0, max_tokens: int = 1024,
                    stop: list[str] | None = None, window: int | None = None) -> RequestStream:
        """A :class:`RequestStream` of chat requests; each submitted item is the messages after ``prefix``."""
        params: dict[str, Any] = {"temperature": temperature, "max_tokens": max_tokens}
        if stop:
            params["stop"] = list(stop)
        return RequestStream(self, "chat", params, prefix, window)

    def completion_stream(self, *, stop: list[str] | None = None, max_new_tokens: int = 256,
                          window: int | None = None) -> RequestStream:
        """A :class:`RequestStream` of text completions; each submitted item is a prompt."""
        stop = list(DEFAULT_STOP) if stop is None else list(stop)
        params: dict[str, Any] = {"temperature": self.temperature, "max_tokens": max_new_tokens}
        if stop:
            params["stop"] = stop
        if not self.add_special_tokens:
            params["add_special_tokens"] = False
        return RequestStream(self, "completions", params, (), window)

    def iter_chat(self, conversations: Sequence[Sequence[Message]], *, temperature: float = 0.0,
                  max_tokens: int = 1024, stop: list[str] | None = None
                  ) -> Iterator[tuple[int, str | GenerationError]]:
        """``(index, reply or error)`` as each request finishes, for callers that save as they go."""
        return self._iterate(self.chat_stream(temperature=temperature, max_tokens=max_tokens, stop=stop),
                             conversations)

    def try_chat(self, conversations: Sequence[Sequence[Message]], *, temperature: float = 0.0,
                 max_tokens: int = 1024, stop: list[str] | None = None) -> list[str | GenerationError]:
        return self._collect(self.iter_chat(conversations, temperature=temperature, max_tokens=max_tokens,
                                            stop=stop), len(conversations))

    def iter_generate(self, prompts: Sequence[str], *, stop: list[str] | None = None,
                      max_new_tokens: int = 256) -> Iterator[tuple[int, str | GenerationError]]:
        return self._iterate(self.completion_stream(stop=stop, max_new_tokens=max_new_tokens), prompts)

    def try_generate(self, prompts: Sequence[str], *, stop: list[str] | None = None,
                     max_new_tokens: int = 256) -> list[str | GenerationError]:
        return self._collect(self.iter_generate(prompts, stop=stop, max_new_tokens=max_new_tokens), len(prompts))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._loop_thread is not None:
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

    def _iterate(self, stream: RequestStream, items: Sequence[Any]) -> Iterator[tuple[int, str | GenerationError]]:
        if self._closed:
            raise RuntimeError("this generator was closed")

        def run() -> Iterator[tuple[int, str | GenerationError]]:
            with stream:
                position = 0
                while position < len(items) or not stream.idle:
                    while position < len(items) and stream.room > 0:
                        stream.submit(position, items[position])
                        position += 1
                    yield from stream.completed()

        return run()

    def _loop(self) -> asyncio.AbstractEventLoop:
        """The event loop of the private thread, started on first use."""
        if self._closed:
            raise RuntimeError("this generator was closed")
        if self._loop_thread is None:
            self._loop_thread = _LoopThread()
        return self._loop_thread.loop

    def _ensure_model(self) -> None:
        """The model name, asked of the server once when none was given (cache keys need it)."""
        if self.model is None:
            self._loop()
            self._loop_thread.submit(self._discover_model()).result()

    async def _discover_model(self) -> None:
        self._prepare()
        models = await self._clients[0].models.list()
        if not models.data:
            raise GenerationError(f"the server at {self.base_url} lists no models", kind="config")
        self.model = models.data[0].id

    def _prepare(self) -> None:
        """Loop-bound state (slots, pacing) and the HTTP clients; made once, inside the loop thread."""
        if self._slots is not None:
            return
        import openai  # lazily: only runs that talk to an endpoint pay for it

        self._openai = openai
        api_key = os.environ.get(self._api_key_env) or LOCAL_PLACEHOLDER_KEY
        self._clients = _client_shards(openai, self.concurrency, api_key=api_key, base_url=self.base_url,
                                       timeout=self.timeout_s)
        del api_key
        self._slots = asyncio.Queue()
        for slot in range(self.concurrency):
            self._slots.put_nowait(slot)
        if self.requests_per_minute:
            self._rate_limiter = RequestRateLimiter(self.requests_per_minute)

    def _start(self, requests: list[tuple[int, dict[str, Any]]], finished: queue.SimpleQueue,
               tasks: set[asyncio.Task]) -> None:
        """Hands requests to the loop thread (one wake-up for all); each answer goes to ``finished``."""
        loop = self._loop()

        def start_all() -> None:
            try:
                self._prepare()
            except Exception as error:  # noqa: BLE001 - every request of the call fails with it
                for request_id, _ in requests:
                    finished.put((request_id, _Crash(error)))
                return
            for request_id, request in requests:
                task = loop.create_task(self._run_one(request_id, request, finished))
                tasks.add(task)  # the loop keeps only weak references to tasks
                task.add_done_callback(tasks.discard)

        loop.call_soon_threadsafe(start_all)

    async def _run_one(self, request_id: int, request: dict[str, Any], finished: queue.SimpleQueue) -> None:
        try:
            result = await self._fetch(request)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 - handed to the caller's thread, which re-raises it
            result = _Crash(error)
        finished.put((request_id, result))

    # ------------------------------------------------------------------ one request

    async def _fetch(self, request: dict[str, Any]) -> tuple[str, int, int] | GenerationError:
        """One request with our retry policy: ``(text, prompt_tokens, completion_tokens)`` or the error."""
        endpoint = request["endpoint"]
        last: _RetryableFailure | None = None
        for attempt in range(1, self.max_attempts + 1):
            try:
                slot = await self._slots.get()
                try:
                    if self._rate_limiter is not None:
                        await self._rate_limiter.wait()
                    self.usage.requests += 1
                    client = self._clients[slot // CONNECTIONS_PER_CLIENT]
                    result = await self._call(client, request)
                finally:
                    self._slots.put_nowait(slot)
            except _RetryableFailure as failure:
                last = failure
            except self._openai.APIStatusError as err:  # 400, 401, 403, 404, 422: repeating will not help
                self.usage.failures += 1
                return GenerationError(f"{endpoint} request rejected with HTTP {err.status_code}: {err.message}",
                                       attempts=attempt, status=err.status_code, kind="rejected")
            else:
                self.usage.prompt_tokens += result[1]
                self.usage.completion_tokens += result[2]
                return result
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

    async def _call(self, client, request: dict[str, Any]) -> tuple[str, int, int]:
        """One HTTP call; failures worth repeating become ``_RetryableFailure``."""
        openai = self._openai
        endpoint = request["endpoint"]
        body = {name: value for name, value in request.items() if name != "endpoint"}
        try:
            # The client's generic ``post`` with the raw body back: our payloads are plain JSON, and
            # the typed ``create`` methods and response models spend more CPU than the round trip.
            # ``timeout_s`` bounds the whole request (connect, send, every read), not each read: a server
            # dripping a byte at a time cannot hold a request open past it.
            raw = await asyncio.wait_for(
                client.post("/chat/completions" if endpoint == "chat" else "/completions", body=body, cast_to=bytes),
                timeout=self.timeout_s)
        except asyncio.TimeoutError as err:
            raise _RetryableFailure(f"timed out: no whole answer within {self.timeout_s:g} s", kind="timeout") from err
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
        return read_completion(raw, endpoint, request.get("stop"))


def read_completion(raw: bytes, endpoint: str, stop: list[str] | None) -> tuple[str, int, int]:
    """``(text, prompt_tokens, completion_tokens)`` from a response body, which is untrusted input.

    A body that is not the expected JSON shape, has no choices, or (chat) has empty content is a
    ``_RetryableFailure``; an empty text completion is a legitimate (EOS-first) answer.
    """
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise _RetryableFailure(f"malformed response body: {err}", kind="malformed") from err
    choices = data.get("choices") if isinstance(data, dict) else None
    if not choices or not isinstance(choices, list) or not isinstance(choices[0], dict):
        raise _RetryableFailure("response has no choices", kind="malformed")
    choice = choices[0]
    if endpoint == "chat":
        message = choice.get("message")
        text = message.get("content") if isinstance(message, dict) else None
        if text is not None and not isinstance(text, str):
            raise _RetryableFailure(f"message content is a {type(text).__name__}", kind="malformed")
        if not text:  # an empty chat reply is never a usable annotation or answer
            raise _RetryableFailure("empty content", kind="empty")
    else:
        text = choice.get("text") or ""
        if not isinstance(text, str):
            raise _RetryableFailure(f"completion text is a {type(text).__name__}", kind="malformed")
        text = truncate_at_stop(text, stop)
    usage = data.get("usage")
    if not isinstance(usage, dict):
        return text, 0, 0
    return text, _count(usage.get("prompt_tokens")), _count(usage.get("completion_tokens"))


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0
