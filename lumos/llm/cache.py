"""On-disk response cache: sqlite in WAL mode, shared safely by concurrent processes.

Keys are a hash of what determines a response (endpoint, model, messages or prompt, sampling
parameters); the request payload is stored beside the text for inspection. Nothing about the
client (base URL, API key, headers) is ever written here.

Conversion sends thousands of requests that share kilobytes of leading messages (instruction
and examples): :class:`SharedPrefixKeys` hashes that shared part once and gives, for each
request, the very key :func:`request_key` gives for the whole request. Lookups and inserts come
in batches (``get_many``/``put_many``: one query, one transaction).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    request TEXT NOT NULL,
    text TEXT NOT NULL,
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL
)
"""


_LOOKUP_CHUNK = 500  # keys per SELECT: under every sqlite build's limit on bound variables
MAX_TEXT_CHARS = 4_000_000  # a reply longer than this is returned but not cached
_TAIL_MARKER = "\x00lumos-cache-tail\x00"


def canonical_json(value: Any) -> str:
    """The one serialisation keys are hashed from (dict keys sorted, no whitespace variance)."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _utf8(text: str) -> bytes:
    """UTF-8 bytes of any str, lone surrogates included (for valid text, exactly ``text.encode()``)."""
    return text.encode("utf-8", "surrogatepass")


def request_key(request: dict[str, Any]) -> str:
    """Stable hash of a request description."""
    return hashlib.sha256(_utf8(canonical_json(request))).hexdigest()


class SharedPrefixKeys:
    """``request_key`` of ``{**fields, "messages": prefix + tail}`` for many tails, hashing the rest once.

    The canonical text of such a request is ``head + tails + end``, where ``head`` (every field that
    sorts before ``messages``, and the prefix messages) and ``end`` (the fields after) are the same
    for every tail: the hash state after ``head`` is computed once and copied per request.
    """

    def __init__(self, fields: dict[str, Any], prefix: list[dict[str, Any]]):
        if "messages" in fields:
            raise ValueError("fields must not hold 'messages': the prefix and tails make them")
        self._fields = fields
        self._prefix = list(prefix)
        parts = canonical_json({**fields, "messages": [*self._prefix, _TAIL_MARKER]}).split(
            canonical_json(_TAIL_MARKER))
        self._shared = len(parts) == 2  # else the marker text occurs in a message: hash whole requests
        if self._shared:
            self._head = hashlib.sha256(_utf8(parts[0]))
            self._end = _utf8(parts[1])

    def key(self, tail: list[dict[str, Any]]) -> str:
        if not self._shared or not tail:
            return request_key({**self._fields, "messages": [*self._prefix, *tail]})
        digest = self._head.copy()
        digest.update(_utf8(",".join(canonical_json(message) for message in tail)))
        digest.update(self._end)
        return digest.hexdigest()


class ResponseCache:
    """``get``/``put`` of response text by request; one connection per instance, guarded by a lock."""

    def __init__(self, path: str | Path, *, busy_timeout_s: float = 30.0):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=busy_timeout_s, check_same_thread=False,
                                   isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)

    def get(self, request: dict[str, Any]) -> tuple[str, int, int] | None:
        """``(text, prompt_tokens, completion_tokens)`` of a cached response, or ``None``."""
        with self._lock:
            row = self._db.execute("SELECT text, prompt_tokens, completion_tokens FROM responses WHERE key = ?",
                                   (request_key(request),)).fetchone()
        return None if row is None else (_text(row[0]), row[1], row[2])

    def put(self, request: dict[str, Any], text: str, *, prompt_tokens: int = 0, completion_tokens: int = 0) -> None:
        self.put_many([(request_key(request), request, text, prompt_tokens, completion_tokens)])

    def get_many(self, keys: list[str]) -> dict[str, tuple[str, int, int]]:
        """``{key: (text, prompt_tokens, completion_tokens)}`` for the keys that are cached."""
        found: dict[str, tuple[str, int, int]] = {}
        with self._lock:
            for start in range(0, len(keys), _LOOKUP_CHUNK):
                chunk = keys[start:start + _LOOKUP_CHUNK]
                rows = self._db.execute("SELECT key, text, prompt_tokens, completion_tokens FROM responses "
                                        f"WHERE key IN ({','.join('?' * len(chunk))})", chunk)
                for key, text, prompt_tokens, completion_tokens in rows:
                    found[key] = (_text(text), prompt_tokens, completion_tokens)
        return found

    def put_many(self, entries: list[tuple[str, dict[str, Any], str, int, int]]) -> None:
        """Store ``(key, request, text, prompt_tokens, completion_tokens)`` entries in one transaction.

        ``key`` must be ``request_key(request)`` (callers that hash shared prefixes once pass it in).
        Any text is stored (a lone surrogate too: such text goes in as its UTF-8 bytes with the
        surrogates kept, and comes back equal); a reply over :data:`MAX_TEXT_CHARS` is not cached.
        """
        now = time.time()
        rows = [(key, _request_text(request), _storable(text), prompt_tokens, completion_tokens, now)
                for key, request, text, prompt_tokens, completion_tokens in entries
                if isinstance(text, str) and len(text) <= MAX_TEXT_CHARS]
        if not rows:
            return
        with self._lock:
            with self._db:  # one transaction: one commit for the whole batch
                self._db.execute("BEGIN")
                self._db.executemany("INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?)", rows)

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _storable(text: str) -> str | bytes:
    """``text`` as sqlite can take it: itself, or its bytes when it holds lone surrogates (not UTF-8)."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return _utf8(text)


def _text(value: str | bytes) -> str:
    return value.decode("utf-8", "surrogatepass") if isinstance(value, bytes) else value


def _request_text(request: dict[str, Any]) -> str:
    text = json.dumps(request, sort_keys=True, ensure_ascii=False)
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return json.dumps(request, sort_keys=True)  # \u escapes: readable, and always valid UTF-8
