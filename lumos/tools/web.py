"""Web execution module: ``CLICK``, ``TYPE`` and ``SELECT`` over a page's candidate elements.

A grounded web action names its target in words (``CLICK(Env, "search button")``); executing it
means resolving that Query to ONE element of the page. Which element wins is decided by a
pluggable :class:`Ranker`: lexical BM25 (bm25s) by default, or a sentence-transformers
cross-encoder / bi-encoder (e.g. MindAct's DeBERTa candidate generator) when a model is given.
The result is the chosen element; moving to the next page is the environment's business.

Model output is untrusted: arguments are parsed strictly and a malformed call raises
:class:`WebActionError` naming the action and what was expected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence

from lumos.format import Action
from lumos.tools.base import ToolError, Toolbox

WEB_TOOL_NAMES = ("CLICK", "TYPE", "SELECT")
_VARIABLE = re.compile(r"(?:Env|R[1-9]\d*)")
_LABELLED = re.compile(r"QUERY:\s*(?P<query>.*?)(?:,\s*TEXT:\s*(?P<text>.*))?", re.DOTALL)


class WebActionError(ToolError, ValueError):
    """A web action that cannot be executed: bad arguments, unknown tool or an empty page."""


# --------------------------------------------------------------------------- elements and pages


@dataclass(frozen=True)
class Element:
    """One candidate element: its id on the page (Mind2Web's backend_node_id) and the text the
    ranker sees (tag, visible text, salient attributes)."""

    id: str
    text: str
    tag: str = ""


@dataclass
class WebPage:
    """The environment a web action runs in: the page's candidate elements."""

    elements: list[Element]
    url: str = ""

    def __post_init__(self) -> None:
        if not self.elements:
            raise WebActionError("the page has no candidate element to act on")


@dataclass(frozen=True)
class WebActionResult:
    """What an executed web action did: the operation, the chosen element and the value."""

    op: str
    element: Element
    value: str = ""
    query: str = ""
    scores: tuple[float, ...] = field(default=(), compare=False, repr=False)

    def render(self) -> str:
        """Short text used as the action's result in the agent's history."""
        tag = f"[{self.element.tag}] " if self.element.tag else ""
        shown = f"{tag}{self.element.text}".strip()
        return f"{shown} -> {self.op}" + (f": {self.value}" if self.value else "")


# --------------------------------------------------------------------------- rankers


class Ranker(Protocol):
    """Scores texts against a query; higher is more relevant."""

    def scores(self, query: str, texts: Sequence[str]) -> list[float]: ...


def _tokenize(texts: Sequence[str]) -> list[list[str]]:
    import bm25s

    return bm25s.tokenize(list(texts), stopwords="en", return_ids=False, show_progress=False)


class BM25Ranker:
    """Lexical ranking with bm25s over the candidates of one page (indexed per call: pages are small)."""

    def __init__(self, k1: float = 1.5, b: float = 0.75):
        self.k1 = k1
        self.b = b

    def scores(self, query: str, texts: Sequence[str]) -> list[float]:
        import bm25s

        if not texts:
            return []
        corpus_tokens = _tokenize(texts)
        if not any(corpus_tokens):
            return [0.0] * len(texts)
        retriever = bm25s.BM25(k1=self.k1, b=self.b)
        retriever.index(corpus_tokens, show_progress=False)
        vocabulary = set(retriever.vocab_dict)
        query_tokens = [token for token in _tokenize([query])[0] if token in vocabulary]
        if not query_tokens:
            return [0.0] * len(texts)
        return [float(score) for score in retriever.get_scores(query_tokens)]


class CrossEncoderRanker:
    """A sentence-transformers cross-encoder scoring (query, element) pairs; loaded on first use."""

    def __init__(self, model_name_or_path: str, device: str | None = None, max_length: int = 512,
                 batch_size: int = 64):
        self.model_name_or_path = model_name_or_path
        self.device = device
        self.max_length = max_length
        self.batch_size = batch_size
        self._model = None

    def scores(self, query: str, texts: Sequence[str]) -> list[float]:
        if not texts:
            return []
        if self._model is None:
            from sentence_transformers import CrossEncoder

            self._model = CrossEncoder(self.model_name_or_path, num_labels=1, max_length=self.max_length,
                                       device=self.device)
        predicted = self._model.predict([[query, text] for text in texts], batch_size=self.batch_size,
                                        convert_to_numpy=True, show_progress_bar=False)
        return [float(score) for score in predicted]


class BiEncoderRanker:
    """A sentence-transformers bi-encoder: cosine similarity of query and element embeddings."""

    def __init__(self, model_name_or_path: str, device: str | None = None, batch_size: int = 64):
        self.model_name_or_path = model_name_or_path
        self.device = device
        self.batch_size = batch_size
        self._model = None

    def scores(self, query: str, texts: Sequence[str]) -> list[float]:
        if not texts:
            return []
        if self._model is None:
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(self.model_name_or_path, device=self.device)
        embeddings = self._model.encode([query, *texts], batch_size=self.batch_size, convert_to_numpy=True,
                                        normalize_embeddings=True, show_progress_bar=False)
        return [float(score) for score in embeddings[1:] @ embeddings[0]]


RANKER_KINDS = ("bm25", "cross_encoder", "bi_encoder")


def make_ranker(model_name_or_path: str | None = None, kind: str = "cross_encoder",
                device: str | None = None) -> Ranker:
    """BM25 when no model is given; otherwise a cross-encoder (default) or bi-encoder."""
    if kind not in RANKER_KINDS:
        raise ValueError(f"unknown ranker kind {kind!r}; choose one of {', '.join(RANKER_KINDS)}")
    if model_name_or_path is None or kind == "bm25":
        return BM25Ranker()
    if kind == "cross_encoder":
        return CrossEncoderRanker(model_name_or_path, device=device)
    return BiEncoderRanker(model_name_or_path, device=device)


def rank(ranker: Ranker, query: str, elements: Sequence[Element]) -> list[tuple[Element, float]]:
    """Elements with their scores, best first; ties keep page order (a stable sort)."""
    scores = ranker.scores(query, [element.text for element in elements])
    if len(scores) != len(elements):
        raise WebActionError(f"ranker returned {len(scores)} scores for {len(elements)} elements")
    order = sorted(range(len(elements)), key=lambda index: -scores[index])
    return [(elements[index], scores[index]) for index in order]


def top_k(ranker: Ranker, query: str, elements: Sequence[Element], k: int) -> list[Element]:
    """The ranker's k best elements: a candidate pool that may well miss the gold element."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    return [element for element, _ in rank(ranker, query, elements)[:k]]


# --------------------------------------------------------------------------- argument parsing


def _split_arguments(args: str) -> list[str]:
    """Split on commas outside double quotes."""
    parts, current, in_quote = [], [], False
    for char in args:
        if char == '"':
            in_quote = not in_quote
        if char == "," and not in_quote:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    if in_quote:
        raise WebActionError(f"unterminated quote in arguments {args!r}")
    parts.append("".join(current).strip())
    return parts


def _unquote(text: str) -> str:
    """``"27"" monitor"`` -> ``27" monitor``: a quoted value writes an inner quote twice
    (``lumos.convert.rules_web.quote_web_argument``)."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1].replace('""', '"')
    return text


@dataclass(frozen=True)
class WebCall:
    """A parsed web action: ``tool(env_name, query[, text])``."""

    tool: str
    env_name: str
    query: str
    text: str | None = None


def parse_web_call(action: Action) -> WebCall:
    """Parse ``CLICK(Env, "q")``, ``TYPE(Env, "q", "text")``, ``SELECT(R2, "q", "v")``.

    Also accepted: the labelled form ``CLICK(Env, QUERY: q)`` / ``TYPE(Env, QUERY: q, TEXT: t)``
    and unquoted arguments (for TYPE/SELECT the text is then what follows the last comma).
    """
    if action.tool not in WEB_TOOL_NAMES:
        raise WebActionError(f"{action.tool!r} is not a web action; expected one of {', '.join(WEB_TOOL_NAMES)}")
    needs_text = action.tool != "CLICK"
    env_name, separator, rest = action.args.partition(",")
    env_name, rest = env_name.strip(), rest.strip()
    if not _VARIABLE.fullmatch(env_name) or not separator or not rest:
        shape = f'{action.tool}(Env, "Query", "Text")' if needs_text else f'{action.tool}(Env, "Query")'
        raise WebActionError(f"bad arguments in {action.render(with_result=False)!r}: expected {shape}")
    labelled = _LABELLED.fullmatch(rest)
    if labelled:
        query, text = labelled.group("query").strip(), labelled.group("text")
        text = _unquote(text) if text is not None else None
        query = _unquote(query)
    elif '"' in rest:
        parts = [_unquote(part) for part in _split_arguments(rest)]
        query, text = parts[0], (parts[1] if len(parts) > 1 else None)
        if len(parts) > 2:
            raise WebActionError(f"too many arguments in {action.render(with_result=False)!r}")
    elif needs_text:
        query, _, text = rest.rpartition(",")
        query, text = query.strip(), text.strip()
        if not query:
            query, text = text, None
    else:
        query, text = rest, None
    if not query:
        raise WebActionError(f"empty Query in {action.render(with_result=False)!r}")
    if needs_text and text is None:
        raise WebActionError(f"{action.tool} needs a Text argument: {action.render(with_result=False)!r}")
    if not needs_text and text is not None:
        raise WebActionError(f"CLICK takes no Text argument: {action.render(with_result=False)!r}")
    return WebCall(action.tool, env_name, query, text)


# --------------------------------------------------------------------------- the tools


def _choose(env: WebPage, query: str, ranker: Ranker) -> tuple[Element, tuple[float, ...]]:
    ranked = rank(ranker, query, env.elements)
    return ranked[0][0], tuple(score for _, score in ranked)


def CLICK(env: WebPage, query: str, *, ranker: Ranker | None = None) -> WebActionResult:  # noqa: N802
    """Click the element of ``env`` that best matches ``query``."""
    element, scores = _choose(env, query, ranker or BM25Ranker())
    return WebActionResult("CLICK", element, "", query, scores)


def TYPE(env: WebPage, query: str, text: str, *, ranker: Ranker | None = None) -> WebActionResult:  # noqa: N802
    """Type ``text`` into the element of ``env`` that best matches ``query``."""
    element, scores = _choose(env, query, ranker or BM25Ranker())
    return WebActionResult("TYPE", element, text, query, scores)


def SELECT(env: WebPage, query: str, text: str, *, ranker: Ranker | None = None) -> WebActionResult:  # noqa: N802
    """Select option ``text`` of the selection box of ``env`` that best matches ``query``.

    The option value joins the query, as in the original: the right box usually lists it.
    """
    element, scores = _choose(env, f"{query} {text}", ranker or BM25Ranker())
    return WebActionResult("SELECT", element, text, query, scores)


WEB_TOOLS = {"CLICK": CLICK, "TYPE": TYPE, "SELECT": SELECT}


def execute_web_action(action: Action, env: WebPage, ranker: Ranker | None = None) -> WebActionResult:
    """Parse and execute one grounded web action on ``env``."""
    call = parse_web_call(action)
    if call.tool == "CLICK":
        return CLICK(env, call.query, ranker=ranker)
    return WEB_TOOLS[call.tool](env, call.query, call.text, ranker=ranker)


# --------------------------------------------------------------------------- the toolbox


class WebEnvironment(Protocol):
    """Where web actions happen: the page an action sees, and what acting on it changes."""

    def page(self) -> WebPage: ...

    def acted(self, result: WebActionResult) -> None: ...


@dataclass
class StaticPage:
    """One page that stays as it is (a single-step task, a test)."""

    current: WebPage
    history: list[WebActionResult] = field(default_factory=list)

    def page(self) -> WebPage:
        return self.current

    def acted(self, result: WebActionResult) -> None:
        self.history.append(result)


class WebToolbox(Toolbox):
    """The web tools bound to one environment; the episode ends when the environment says so
    (its optional ``episode_end``, read by the agent loop after every action)."""

    environment: WebEnvironment | None = None

    @property
    def episode_end(self) -> str | None:
        return getattr(self.environment, "episode_end", None)


def web_toolbox(environment: WebEnvironment | WebPage | None = None, ranker: Ranker | None = None) -> WebToolbox:
    """The ``web_agent`` toolbox: ``Env`` is the environment's current page (its candidate elements).

    Each action resolves its Query to one element with ``ranker`` (BM25 when None), tells the
    environment, and returns the chosen element as text (``[button] Search -> CLICK``). Without an
    environment the tools refuse to run, with a message saying so.
    """
    from lumos.vocabulary import vocabulary

    if isinstance(environment, WebPage):
        environment = StaticPage(environment)
    chosen_ranker = ranker or BM25Ranker()

    def run(tool: str) -> Callable[[str, dict[str, str]], list[str]]:
        def tool_function(args: str, variables: dict[str, str]) -> list[str]:
            if environment is None:
                raise WebActionError("no web page to act on: the web toolbox was built without an environment")
            result = execute_web_action(Action(tool=tool, args=args), environment.page(), chosen_ranker)
            environment.acted(result)
            return [result.render()]

        return tool_function

    box = WebToolbox.from_vocabulary(vocabulary("web_agent"), {name: run(name) for name in WEB_TOOL_NAMES})
    box.environment = environment
    return box
