"""A scripted model for tests and offline demos: replies come from a function or regex rules.

Rules are ``(pattern, reply)`` pairs tried in order with ``re.search`` against the prompt text
(``generate``) or the last user turn (``chat``); the first match's reply is returned, cut at the
stop strings like a real backend would. No match and no ``default`` is a per-item
``GenerationError``, so a test sees exactly which prompt its script did not foresee.
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from typing import Callable, Mapping, Sequence

from lumos.llm.base import DEFAULT_STOP, ChatGenerator, GenerationError, Generator, Message, Usage, truncate_at_stop

Rules = Callable[[str], str] | Mapping[str, str] | Sequence[tuple[str, str]]


class ScriptedGenerator(Generator, ChatGenerator):
    """``replies``: a function of the text, a ``{pattern: reply}`` mapping, or ``[(pattern, reply)]`` pairs."""

    thread_safe = True

    def __init__(self, replies: Rules, *, default: str | None = None):
        self.usage = Usage()
        self.default = default
        self.calls: list[str] = []  # every text answered, in order (for tests)
        self._lock = threading.Lock()
        if callable(replies):
            self._function: Callable[[str], str] | None = replies
            self._rules: list[tuple[re.Pattern, str]] = []
        else:
            self._function = None
            pairs = replies.items() if isinstance(replies, Mapping) else replies
            self._rules = [(re.compile(pattern), reply) for pattern, reply in pairs]

    @classmethod
    def exact(cls, replies: Mapping[str, str] | Sequence[tuple[str, str]], **options) -> "ScriptedGenerator":
        """Replies looked up by the whole prompt text, byte for byte (replays of recorded transcripts)."""
        table = dict(replies.items() if isinstance(replies, Mapping) else replies)
        default = options.pop("default", None)

        def lookup(text: str) -> str:
            if text in table:
                return table[text]
            if default is not None:
                return default
            raise LookupError(f"no recorded prompt equals {text[-200:]!r}")

        return cls(lookup, **options)

    @classmethod
    def from_file(cls, path: str | Path, **options) -> "ScriptedGenerator":
        """Rules from JSON: ``{"rules": [[pattern, reply], ...], "default": ...}`` or ``{pattern: reply}``;
        ``{"exact": [[prompt, reply], ...]}`` answers whole prompts equal byte for byte."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise ValueError(f"cannot read scripted replies from {path}: {err}") from err
        if isinstance(data, dict) and "exact" in data:
            options.setdefault("default", data.get("default"))
            return cls.exact([tuple(pair) for pair in data["exact"]], **options)
        if isinstance(data, dict) and "rules" in data:
            options.setdefault("default", data.get("default"))
            return cls([tuple(rule) for rule in data["rules"]], **options)
        if isinstance(data, (dict, list)):
            return cls(data if isinstance(data, dict) else [tuple(rule) for rule in data], **options)
        raise ValueError(f"{path}: expected a JSON object or a list of [pattern, reply] pairs")

    def reply(self, text: str) -> str:
        """The scripted reply to ``text``; ``LookupError`` when nothing matches and there is no default."""
        with self._lock:
            self.calls.append(text)
            self.usage.requests += 1
        if self._function is not None:
            return self._function(text)
        for pattern, reply in self._rules:
            if pattern.search(text):
                return reply
        if self.default is not None:
            return self.default
        raise LookupError(f"no scripted reply matches {text[-200:]!r}")

    def _answer(self, text: str, stop: Sequence[str] | None) -> str | GenerationError:
        try:
            return truncate_at_stop(self.reply(text), stop)
        except LookupError as err:
            with self._lock:
                self.usage.failures += 1
            return GenerationError(str(err), kind="unscripted")

    def try_generate(self, prompts: Sequence[str], *, stop: list[str] | None = None,
                     max_new_tokens: int = 256) -> list[str | GenerationError]:
        stop = list(DEFAULT_STOP) if stop is None else stop
        return [self._answer(prompt, stop) for prompt in prompts]

    def try_chat(self, conversations: Sequence[Sequence[Message]], *, temperature: float = 0.0,
                 max_tokens: int = 1024, stop: list[str] | None = None) -> list[str | GenerationError]:
        return [self._answer(_last_user_turn(conversation), stop) for conversation in conversations]


def _last_user_turn(conversation: Sequence[Message]) -> str:
    for message in reversed(conversation):
        if message.get("role") == "user":
            return message.get("content", "")
    return ""
