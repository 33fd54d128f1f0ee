"""Web execution module: ``CLICK``, ``TYPE`` and ``SELECT`` over a page's candidate elements.

A grounded web action names its target in words, in the released format
(``R1 = CLICK(Env, QUERY: Click the search button)``, grammar below); executing it means resolving
that query to ONE element of the page. Which element wins is decided by a
pluggable :class:`Ranker`: lexical BM25 (bm25s) by default, or a sentence-transformers
cross-encoder / bi-encoder (e.g. MindAct's DeBERTa candidate generator) when a model is given.
The result is the chosen element; moving to the next page is the environment's business.

Model output is untrusted: arguments are parsed strictly and a malformed call raises
:class:`WebArgumentError` (a :class:`WebActionError`) quoting the text and naming the expected shape.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Callable, Protocol, Sequence

from lumos.format import VARIABLE, Action
from lumos.tools.engines.retrieval import BiEncoderRanker, BM25Ranker, CrossEncoderRanker, Ranker
from lumos.tools.base import ToolError, Toolbox

WEB_TOOL_NAMES = ("CLICK", "TYPE", "SELECT")


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


# --------------------------------------------------------------------------- the web-argument grammar
#
# Reader and writer of the released web-action format (docs/FORMAT.md §1), side by side:
#
#     R1 = CLICK(Env, QUERY: Enter the site for flight + cruise)
#     R3 = TYPE(R2, QUERY: Type Atlanta as the departure location, TEXT: Atlanta)
#     R7 = SELECT(R6, QUERY: Click 6 nights as the living period for the hotel, TEXT: 6 nights)
#
# The first argument is the page the action acts on (``Env`` or an earlier output ``R<n>``); the
# query runs from ``QUERY:`` to the first ``, TEXT:`` (or the end), the text from there to the end.
# Both are free text: quotes, commas, parentheses and words such as ``R9`` in them are data, never
# syntax or variables. The call's arguments end at the LAST ``)`` of the action.

PAGE_PATTERN = rf"(?:Env|{VARIABLE})"
_PAGE = re.compile(PAGE_PATTERN)
QUERY_LABEL, TEXT_LABEL = "QUERY:", "TEXT:"
_TEXT_SEPARATOR = re.compile(r",\s*TEXT:")
_QUERY_START = re.compile(r"(?P<page>[^,]*),\s*QUERY:(?P<rest>.*)", re.DOTALL)
_OUTPUT_PREFIX = re.compile(rf"(?P<output>{VARIABLE}|Output) = ")
_CALL_START = re.compile(r"(?P<tool>[A-Za-z_][A-Za-z0-9_]*)\(")
# Where a grounding reply may be split into actions: "; " followed by the next "Rk = VERB(".
_ACTION_BOUNDARY = re.compile(rf"; (?=(?:{VARIABLE}|Output) = [A-Za-z_][A-Za-z0-9_]*\(|[A-Za-z_][A-Za-z0-9_]*\()")


class WebArgumentError(WebActionError):
    """Web action text that does not fit the released grammar; the message quotes it and names
    the expected shape."""

    def __init__(self, reason: str, text: str, expected: str):
        self.reason = reason
        self.text = text
        self.expected = expected
        super().__init__(f"{reason}: {text!r} (expected {expected})")


def web_shape(tool: str) -> str:
    """The expected shape of ``tool``'s call, for error messages."""
    if tool == "CLICK":
        return "'Rk = CLICK(Env|R<n>, QUERY: <query>)'"
    return f"'Rk = {tool}(Env|R<n>, QUERY: <query>, TEXT: <text>)'"


@dataclass(frozen=True)
class WebCall:
    """A parsed web action: ``tool(env_name, QUERY: query[, TEXT: text])``; ``env_name`` is the page
    acted on (``Env`` or ``R<n>``), ``output`` the variable naming the page that follows (if any)."""

    tool: str
    env_name: str
    query: str
    text: str | None = None
    output: str | None = None

    def __post_init__(self) -> None:
        expected = web_shape(self.tool)
        if self.tool not in WEB_TOOL_NAMES:
            raise WebArgumentError(f"{self.tool!r} is not a web action", self.tool, " or ".join(WEB_TOOL_NAMES))
        if not _PAGE.fullmatch(self.env_name):
            raise WebArgumentError("the page argument is not Env or R<n>", self.env_name, expected)
        if self.output is not None and not _OUTPUT_PREFIX.fullmatch(f"{self.output} = "):
            raise WebArgumentError("the output is not R<n>", self.output, expected)
        if not self.query or self.query != self.query.strip():
            raise WebArgumentError("the query is empty or has surrounding whitespace", self.query, expected)
        if _TEXT_SEPARATOR.search(self.query):
            raise WebArgumentError("the query contains ', TEXT:'", self.query, expected)
        if (self.text is None) != (self.tool == "CLICK"):
            reason = "CLICK takes no TEXT" if self.tool == "CLICK" else f"{self.tool} needs a TEXT"
            raise WebArgumentError(reason, str(self.text), expected)
        if self.text is not None and (not self.text or self.text != self.text.strip()):
            raise WebArgumentError("the text is empty or has surrounding whitespace", self.text, expected)

    def args(self) -> str:
        """The argument string: ``Env, QUERY: q`` or ``R2, QUERY: q, TEXT: t``."""
        args = f"{self.env_name}, {QUERY_LABEL} {self.query}"
        return args if self.text is None else f"{args}, {TEXT_LABEL} {self.text}"

    def to_action(self, output: str | None = None) -> Action:
        """The action ``output = TOOL(args)``; ``output`` defaults to the call's own."""
        output = output or self.output
        return Action(tool=self.tool, args=self.args(), outputs=(output,) if output else ())

    def render(self) -> str:
        return self.to_action().render(with_result=False)


def render_web_action(tool: str, page: str, query: str, text: str | None = None, output: str | None = None) -> str:
    """``render_web_action("TYPE", "R2", "Type Atlanta", "Atlanta", "R3")`` ->
    ``R3 = TYPE(R2, QUERY: Type Atlanta, TEXT: Atlanta)``; WebArgumentError when it would not read back."""
    return WebCall(tool, page, query, text, output).render()


def parse_web_args(tool: str, args: str) -> WebCall:
    """Read ``Env, QUERY: q[, TEXT: t]`` as ``tool``'s arguments (strict; whitespace around the
    query and text is not part of them)."""
    expected = web_shape(tool)
    if tool not in WEB_TOOL_NAMES:
        raise WebArgumentError(f"{tool!r} is not a web action", tool, " or ".join(WEB_TOOL_NAMES))
    match = _QUERY_START.fullmatch(args)
    if not match:
        raise WebArgumentError(f"{tool} arguments lack ', QUERY:' after the page", args, expected)
    page, rest = match.group("page").strip(), match.group("rest")
    separator = _TEXT_SEPARATOR.search(rest)
    query = (rest[:separator.start()] if separator else rest).strip()
    text = rest[separator.end():].strip() if separator else None
    return WebCall(tool, page, query, text)


def parse_web_call(action: Action) -> WebCall:
    """Parse a web :class:`~lumos.format.Action`'s arguments; its single output, if any, is kept."""
    if len(action.outputs) > 1:
        raise WebArgumentError("a web action has one output", action.render(with_result=False),
                               web_shape(action.tool))
    call = parse_web_args(action.tool, action.args)
    return replace(call, output=action.outputs[0]) if action.outputs else call


def parse_web_action(text: str) -> Action:
    """One web action's text as an :class:`Action`: ``[Rk = ]TOOL(args)``, args ending at the last ``)``
    (a query may hold quotes and unbalanced parentheses). The tool is not checked here."""
    stripped = text.strip()
    prefix = _OUTPUT_PREFIX.match(stripped)
    rest = stripped[prefix.end():] if prefix else stripped
    call = _CALL_START.match(rest)
    if not call or not rest.endswith(")"):
        raise WebArgumentError("not a web action", text, "'Rk = TOOL(Env|R<n>, QUERY: ...)'")
    outputs = (prefix.group("output"),) if prefix else ()
    return Action(tool=call.group("tool"), args=rest[call.end():-1], outputs=outputs)


def parse_web_actions(reply: str) -> list[Action]:
    """A grounding reply's actions, split at ``"; "`` only where the next action starts."""
    if not reply.strip():
        raise WebArgumentError("no action", reply, "'Rk = TOOL(Env|R<n>, QUERY: ...)'")
    return [parse_web_action(part) for part in _ACTION_BOUNDARY.split(reply.strip())]


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


def execute_call(call: WebCall, env: WebPage, ranker: Ranker | None = None) -> WebActionResult:
    """Execute a parsed web call on ``env`` (its page argument is the caller's business)."""
    if call.tool == "CLICK":
        return CLICK(env, call.query, ranker=ranker)
    return WEB_TOOLS[call.tool](env, call.query, call.text, ranker=ranker)


def execute_web_action(action: Action, env: WebPage, ranker: Ranker | None = None) -> WebActionResult:
    """Parse and execute one grounded web action on ``env``."""
    return execute_call(parse_web_call(action), env, ranker)


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

    def variables_in(self, action: Action) -> list[int]:
        """Only the page argument names a variable: ``R9`` inside a query or text is a word."""
        page = action.args.split(",", 1)[0].strip()
        return [int(page[1:])] if re.fullmatch(VARIABLE, page) else []

    @property
    def episode_end(self) -> str | None:
        return getattr(self.environment, "episode_end", None)


def web_toolbox(environment: WebEnvironment | WebPage | None = None, ranker: Ranker | None = None) -> WebToolbox:
    """The ``web_agent`` toolbox: ``Env`` is the environment's current page (its candidate elements).

    Each action resolves its query to one element with ``ranker`` (BM25 when None), tells the
    environment, and returns the chosen element as text (``[button] Search -> CLICK``); the page
    argument (``Env`` or ``R<n>``) must name a page seen already, and the current page is acted on. Without an
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
