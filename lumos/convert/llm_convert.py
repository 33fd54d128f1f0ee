"""Conversion by any OpenAI-compatible LLM: prompts out, untrusted replies parsed strictly.

Tasks flow to the endpoint as a steady stream (the backend keeps every concurrency slot busy,
bounds the request rate, retries 429/5xx/timeouts/empty replies and caches answers); each record
is handed back the moment its reply is parsed, so the caller can append it at once. A reply that cannot be
read is asked again once per ``parse_retries`` with the parse error in a follow-up turn; after
that the record fails with the reason (``no_plan``, ``unparseable``), as it does when the
backend gives up (``llm_<kind>``: ``llm_empty``, ``llm_rate_limit``, ``llm_server_error``, ...).
Nothing loops: every record takes at most ``1 + parse_retries`` rounds.
"""

from __future__ import annotations

from typing import Hashable, Iterable, Iterator

from lumos.convert.llm_prompts import conversion_messages, correction_turn, user_turn
from lumos.convert.pipeline import ConversionConfig, Converted, RecordFailure
from lumos.convert.sources import SourceTask
from lumos.format import FormatError, Plan, parse_plan
from lumos.llm.base import ChatGenerator, GenerationError

PLAN_START = "Subgoal 1:"


class ReplyError(ValueError):
    """A reply with no readable subgoal plan; ``reason`` is a short category."""

    def __init__(self, reason: str, detail: str):
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


def _strip_fence(text: str) -> str:
    """The inside of a reply wrapped whole in a Markdown code fence."""
    lines = text.strip().split("\n")
    if len(lines) >= 2 and lines[0].startswith("```") and lines[-1].strip() == "```":
        return "\n".join(lines[1:-1]).strip()
    return text.strip()


def read_reply(reply: str) -> tuple[Plan, str | None]:
    """The plan in an LLM reply and the preamble removed before ``Subgoal 1:`` (``None`` when none).

    Only a leading preamble and a whole-reply code fence are removed; anything else that does
    not parse is a ``ReplyError`` quoting the parser's error.
    """
    text = _strip_fence(reply)
    if not text:
        raise ReplyError("empty_reply", "the reply is empty")
    start = text.find(PLAN_START)
    if start == -1:
        raise ReplyError("no_plan", f"the reply has no {PLAN_START!r}: {text[:120]!r}")
    preamble, body = text[:start].rstrip(), text[start:].rstrip()
    fence_line = preamble.rsplit("\n", 1)[-1].strip()
    if fence_line.startswith("```") and body.endswith("```"):  # "Here it is:\n```\nSubgoal 1: ...\n```"
        preamble, body = preamble[: -len(fence_line)], body[:-3]
    try:
        plan = parse_plan(body.strip())
    except FormatError as error:
        raise ReplyError("unparseable", str(error)) from None
    return plan, preamble.strip() or None


class LLMConverter:
    """Converts batches of :class:`SourceTask` through a chat backend that offers ``iter_chat``."""

    def __init__(self, generator: ChatGenerator, domain: str, *, max_tokens: int = 800, parse_retries: int = 1,
                 batch_size: int = 32, temperature: float = 0.0):
        if not hasattr(generator, "iter_chat"):
            raise TypeError(f"{type(generator).__name__} has no iter_chat; use an OpenAI-compatible backend")
        self.generator = generator
        self.domain = domain
        self.max_tokens = max_tokens
        self.parse_retries = parse_retries
        self.batch_size = batch_size
        self.temperature = temperature
        self._prefix: list[dict[str, str]] | None = None

    def _prompt_prefix(self) -> list[dict[str, str]]:
        """The turns before the record's own (instruction and examples): the same for every record."""
        if self._prefix is None:
            self._prefix = conversion_messages(self.domain, "", "")[:-1]
        return self._prefix

    @property
    def usage(self):
        return self.generator.usage

    def convert_batch(self, tasks: list[SourceTask]) -> Iterator[tuple[int, Converted | RecordFailure]]:
        return self.convert_stream(enumerate(tasks))

    def convert_stream(self, tasks: Iterable[tuple[Hashable, SourceTask]]
                       ) -> Iterator[tuple[Hashable, Converted | RecordFailure]]:
        """``(key, result)`` for each ``(key, task)``, as each finishes; tasks are read only as slots free up.

        A reply that cannot be read goes back into the same stream with the error in a follow-up
        turn (at most ``parse_retries`` times), so no record waits for a whole batch.
        """
        if not hasattr(self.generator, "chat_stream"):
            yield from self._convert_in_batches(tasks)
            return
        source = iter(tasks)
        exhausted = False
        live: dict[int, tuple[Hashable, SourceTask, list[dict[str, str]], int]] = {}  # tag -> key, task, turns, round
        next_tag = 0
        with self.generator.chat_stream(prefix=self._prompt_prefix(), temperature=self.temperature,
                                        max_tokens=self.max_tokens) as stream:
            while True:
                while not exhausted and stream.room > 0:
                    try:
                        key, task = next(source)
                    except StopIteration:
                        exhausted = True
                        break
                    turns = [{"role": "user", "content": user_turn(task.task, task.natural_language_plan)}]
                    live[next_tag] = (key, task, turns, 0)
                    stream.submit(next_tag, turns)
                    next_tag += 1
                if exhausted and stream.idle:
                    return
                for tag, reply in stream.completed():
                    key, task, turns, round_number = live.pop(tag)
                    result = self._read(task, reply, last_round=round_number == self.parse_retries)
                    if isinstance(result, ReplyError):
                        turns = turns + [{"role": "assistant", "content": reply},
                                         {"role": "user", "content": correction_turn(result.detail)}]
                        live[tag] = (key, task, turns, round_number + 1)
                        stream.submit(tag, turns)
                        continue
                    yield key, result

    def _read(self, task: SourceTask, reply: str | GenerationError, *, last_round: bool
              ) -> Converted | RecordFailure | ReplyError:
        """The record a reply makes; a ``ReplyError`` when it is worth asking again."""
        if isinstance(reply, GenerationError):
            return RecordFailure(f"llm_{reply.kind}", str(reply))
        try:
            plan, preamble = read_reply(reply)
        except ReplyError as error:
            return RecordFailure(error.reason, error.detail, reply=reply) if last_round else error
        return Converted(task.task, task.natural_language_plan, plan, task.answer, preamble)

    def _convert_in_batches(self, tasks: Iterable[tuple[Hashable, SourceTask]]
                            ) -> Iterator[tuple[Hashable, Converted | RecordFailure]]:
        """For chat backends with ``iter_chat`` only: rounds of ``batch_size`` conversations."""
        items = list(tasks)
        prefix = self._prompt_prefix()
        for start in range(0, len(items), self.batch_size):
            batch = items[start:start + self.batch_size]
            pending = {i: prefix + [{"role": "user", "content": user_turn(t.task, t.natural_language_plan)}]
                       for i, (_, t) in enumerate(batch)}
            for round_number in range(1 + self.parse_retries):
                order = list(pending)
                asked_again: dict[int, list[dict[str, str]]] = {}
                for position, reply in self.generator.iter_chat([pending[i] for i in order],
                                                                temperature=self.temperature,
                                                                max_tokens=self.max_tokens):
                    index = order[position]
                    key, task = batch[index]
                    result = self._read(task, reply, last_round=round_number == self.parse_retries)
                    if isinstance(result, ReplyError):
                        asked_again[index] = pending[index] + [
                            {"role": "assistant", "content": reply},
                            {"role": "user", "content": correction_turn(result.detail)}]
                        continue
                    yield key, result
                pending = asked_again
                if not pending:
                    break

    def close(self) -> None:
        self.generator.close()


def openai_generator(config: ConversionConfig):
    """The OpenAI-compatible backend that ``config`` describes (key from ``OPENAI_API_KEY``, never stored)."""
    from lumos.llm.openai_backend import OpenAIGenerator

    return OpenAIGenerator(model=config.model, base_url=config.base_url, concurrency=config.concurrency,
                           requests_per_minute=config.rpm, timeout_s=config.request_timeout,
                           max_attempts=config.max_attempts, cache_path=config.llm_cache_path,
                           progress=config.progress, read_cache=not config.retry_failed)
