"""On-disk response cache: sqlite in WAL mode, shared safely by concurrent processes.

Keys are a hash of what determines a response (endpoint, model, messages or prompt, sampling
parameters); the request payload is stored beside the text for inspection. Nothing about the
client (base URL, API key, headers) is ever written here.
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


def request_key(request: dict[str, Any]) -> str:
    """Stable hash of a request description (dict keys sorted, no whitespace variance)."""
    canonical = json.dumps(request, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


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
        return None if row is None else (row[0], row[1], row[2])

    def put(self, request: dict[str, Any], text: str, *, prompt_tokens: int = 0, completion_tokens: int = 0) -> None:
        payload = json.dumps(request, sort_keys=True, ensure_ascii=False)
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?)",
                             (request_key(request), payload, text, prompt_tokens, completion_tokens, time.time()))

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()
