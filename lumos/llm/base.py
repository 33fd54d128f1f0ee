"""The one batched generation interface, its typed errors, and the backend picker.

Two shapes of call, because two kinds of model are driven:

* ``Generator.generate(prompts, stop=..., max_new_tokens=...)`` takes prompt *text* that
  ``lumos.prompts.render_prompt`` already rendered (Lumos checkpoints, local or served);
* ``ChatGenerator.chat(conversations, temperature=..., max_tokens=..., stop=...)`` takes
  OpenAI-style message lists (hosted chat models, e.g. GPT-4 for annotation conversion).

Each has a ``try_*`` twin returning one ``str | GenerationError`` per input, so one failing
request never costs the rest of the batch; the plain methods raise ``BatchGenerationError``
(which still carries every per-item result) when any item failed.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import Any, Sequence

Message = dict[str, str]

DEFAULT_STOP = ("\n",)


class GenerationError(Exception):
    """One request that produced no usable text (after its retries, where a backend retries)."""

    def __init__(self, message: str, *, attempts: int = 1, status: int | None = None, kind: str = "error"):
        super().__init__(message)
        self.attempts = attempts
        self.status = status
        self.kind = kind

    def to_record(self) -> dict[str, Any]:
        """What a caller writes into a failed record."""
        return {"error": str(self), "kind": self.kind, "status": self.status, "attempts": self.attempts}


class BatchGenerationError(Exception):
    """Raised by ``generate``/``chat`` when some items failed; ``results`` keeps all of them."""

    def __init__(self, results: list[str | GenerationError]):
        self.results = results
        self.failures = {i: r for i, r in enumerate(results) if isinstance(r, GenerationError)}
        first_index, first = next(iter(self.failures.items()))
        super().__init__(f"{len(self.failures)} of {len(results)} generations failed; "
                         f"first (item {first_index}): {first}")


@dataclass
class Usage:
    """Counters a backend keeps over its lifetime (printed at the end of a run)."""

    requests: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0  # of prompt_tokens, those whose keys and values came from a cache (not prefilled)
    retries: int = 0
    failures: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    def summary(self) -> str:
        return (f"{self.requests} requests, {self.cache_hits} cache hits, {self.retries} retries, "
                f"{self.failures} failures, {self.prompt_tokens} prompt + {self.completion_tokens} completion tokens")


def _raise_on_failure(results: list[str | GenerationError]) -> list[str]:
    if any(isinstance(r, GenerationError) for r in results):
        raise BatchGenerationError(results)
    return results  # type: ignore[return-value]


def truncate_at_stop(text: str, stop: Sequence[str] | None) -> str:
    """``text`` cut before the earliest occurrence of any stop string."""
    cut = len(text)
    for s in stop or ():
        if s:
            position = text.find(s)
            if position != -1:
                cut = min(cut, position)
    return text[:cut]


class Generator(ABC):
    """Batched completion of rendered prompt text: the one interface every model backend implements.

    ``try_generate(prompts, stop=..., max_new_tokens=...)`` returns one continuation per prompt, in
    order, and a :class:`GenerationError` in place of a reply that could not be had (the loop records
    it in that task's episode); ``generate`` raises instead. Backends are chosen by spec with
    ``lumos.llm.get_generator`` (a local path or hub id, an OpenAI-compatible URL, ``openai:<model>``,
    ``scripted:<file>``) and load their model once; ``close()`` releases it. ``usage`` counts requests
    and tokens.
    """

    usage: Usage

    @abstractmethod
    def try_generate(self, prompts: Sequence[str], *, stop: list[str] | None = None,
                     max_new_tokens: int = 256) -> list[str | GenerationError]:
        """One continuation (or error) per prompt, in input order; never raises per item."""

    def generate(self, prompts: Sequence[str], *, stop: list[str] | None = None,
                 max_new_tokens: int = 256) -> list[str]:
        """One continuation per prompt, in input order. ``stop=None`` means stop at the first newline."""
        return _raise_on_failure(self.try_generate(prompts, stop=stop, max_new_tokens=max_new_tokens))

    def close(self) -> None:
        """Release connections, threads or models; the default holds nothing."""

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class ChatGenerator(ABC):
    """Batched chat completion of OpenAI-style conversations."""

    usage: Usage

    @abstractmethod
    def try_chat(self, conversations: Sequence[Sequence[Message]], *, temperature: float = 0.0,
                 max_tokens: int = 1024, stop: list[str] | None = None) -> list[str | GenerationError]:
        """One assistant reply (or error) per conversation, in input order; never raises per item."""

    def chat(self, conversations: Sequence[Sequence[Message]], *, temperature: float = 0.0,
             max_tokens: int = 1024, stop: list[str] | None = None) -> list[str]:
        return _raise_on_failure(self.try_chat(conversations, temperature=temperature,
                                               max_tokens=max_tokens, stop=stop))

    def close(self) -> None:
        """Release connections, threads or models; the default holds nothing."""

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def get_generator(spec: str, **options: Any):
    """A backend picked by the form of ``spec``; each backend module is imported only when chosen.

    * ``scripted:<file>``            -> ``ScriptedGenerator`` (rules read from a JSON file)
    * ``openai:<model>``             -> ``OpenAIGenerator(model=<model>)`` (base URL from options or
                                        ``OPENAI_BASE_URL``)
    * ``http://...`` / ``https://...`` -> ``OpenAIGenerator(base_url=spec)`` (a vLLM/TGI/llama.cpp/Ollama
                                        server; ``model=`` in options, else the server's first model)
    * anything else                  -> ``HFGenerator.from_pretrained(spec)`` (a local folder or hub id)

    ``options`` go to the backend's constructor.
    """
    if not spec:
        raise ValueError("empty generator spec; give a model path, 'openai:<model>', a URL or 'scripted:<file>'")
    scheme, _, rest = spec.partition(":")
    if scheme == "scripted":
        from lumos.llm.scripted import ScriptedGenerator
        return ScriptedGenerator.from_file(rest, **options)
    if scheme == "openai":
        from lumos.llm.openai_backend import OpenAIGenerator
        if not rest:
            raise ValueError("'openai:' needs a model name, e.g. 'openai:gpt-4'")
        return OpenAIGenerator(model=rest, **options)
    if scheme in ("http", "https"):
        from lumos.llm.openai_backend import OpenAIGenerator
        options.setdefault("model", None)  # ask the server which model it serves
        return OpenAIGenerator(base_url=spec, **options)
    from lumos.llm.hf_backend import HFGenerator
    return HFGenerator.from_pretrained(spec, **options)
