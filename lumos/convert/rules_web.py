"""Rule-based conversion of Mind2Web action traces into subgoal plans.

A Mind2Web step is written ``[<tag>]  <element text> -> <OP>[: <value>]``, for example
``[textbox]  From -> TYPE: New York`` or ``[svg]   -> CLICK`` (no element text). Each becomes
one web action in the released format (docs/FORMAT.md §1): it acts on the page left by the previous
action (``Env`` for the first) and names the page it leads to::

    R1 = TYPE(Env, QUERY: Type New York into the From field, TEXT: New York)
    R2 = CLICK(R1, QUERY: Click the Search button)
    R3 = SELECT(R2, QUERY: Select Dine-in in the Reservation type dropdown, TEXT: Dine-in)

The query is a short sentence describing the step (as in the released annotations); the text is
the typed value or selected option, unchanged. The grammar is :mod:`lumos.tools.web`'s (one reader
and writer for the whole project). A query must also pass ``lumos.format``'s scanner, which balances
parentheses and quotes: an unmatched ``(`` or ``)`` of an element text (Mind2Web truncates long
texts as ``(...``) is left out of the sentence and ``"`` is written ``'``; a value that the scanner
could not read back raises :class:`WebReprError`, so the record is reported, never dropped silently.

``HOVER`` and ``ENTER`` steps become ``CLICK``, as Mind2Web itself maps them.

Subgoals: one per action, except that typing into a field followed by clicking the suggestion
that repeats the typed text (``TYPE: Boston, NY`` then ``[span] Boston, NY -> CLICK``) is one
subgoal. Subgoal texts are short imperative sentences ("Type New York into the From field.").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lumos.format import Action, FormatError, Plan, Subgoal, parse_action
from lumos.tools.web import WebArgumentError, WebCall, parse_web_call

WEB_OPERATIONS = ("CLICK", "TYPE", "SELECT")
# Mind2Web's own mapping of its raw operations onto the three it evaluates.
OPERATION_ALIASES = {"HOVER": "CLICK", "ENTER": "CLICK"}
_REPR = re.compile(r"\[(?P<tag>[^\]]*)\]\s*(?P<text>.*?)\s*->\s*"
                   r"(?P<op>CLICK|TYPE|SELECT|HOVER|ENTER)\b(?::\s?(?P<value>.*))?", re.DOTALL)

# How a tag is named in a subgoal sentence.
_TAG_NOUNS = {
    "button": "button", "link": "link", "a": "link", "checkbox": "checkbox", "radio": "option",
    "option": "option", "combobox": "dropdown", "select": "dropdown", "textbox": "field",
    "searchbox": "search box", "input": "field", "textarea": "field", "svg": "icon", "img": "image",
    "label": "label", "li": "item", "tab": "tab", "menuitem": "menu item", "heading": "heading",
}


class WebReprError(ValueError):
    """A Mind2Web action repr that does not have the ``[tag] text -> OP[: value]`` shape."""

    def __init__(self, text: str, reason: str):
        self.text = text
        self.reason = reason
        super().__init__(f"{reason}: {text!r} (expected '[tag] text -> CLICK|TYPE|SELECT[: value]')")


@dataclass(frozen=True)
class WebStep:
    """One parsed Mind2Web action repr."""

    tag: str
    element: str  # the element's text, "" when it has none
    operation: str  # CLICK, TYPE or SELECT
    value: str | None  # typed text or selected option; None for CLICK

    @property
    def query(self) -> str:
        return self.element or self.tag or "element"


def parse_action_repr(text: str) -> WebStep:
    """``"[textbox]  From -> TYPE: New York"`` -> ``WebStep("textbox", "From", "TYPE", "New York")``."""
    match = _REPR.fullmatch(text.strip())
    if not match:
        raise WebReprError(text, "not a Mind2Web action repr")
    operation = OPERATION_ALIASES.get(match.group("op"), match.group("op"))
    value = match.group("value")
    if operation == "CLICK":
        if value is not None and value.strip():
            raise WebReprError(text, "CLICK carries a value")
        value = None
    elif value is None:
        raise WebReprError(text, f"{operation} has no value")
    else:
        value = " ".join(value.split())
    return WebStep(" ".join(match.group("tag").split()), " ".join(match.group("text").split()), operation, value)


# --------------------------------------------------------------------------- actions


def _plain(text: str) -> str:
    """``text`` without unmatched parentheses and with ``"`` written ``'`` (query sentences only)."""
    text = text.replace('"', "'")
    unmatched: set[int] = set()
    opened: list[int] = []
    for index, char in enumerate(text):
        if char == "(":
            opened.append(index)
        elif char == ")":
            if opened:
                opened.pop()
            else:
                unmatched.add(index)
    unmatched.update(opened)
    return " ".join("".join(c for i, c in enumerate(text) if i not in unmatched).split())


def step_call(step: WebStep, page: str, output: str, query: str | None = None) -> WebCall:
    """The web call of one step acting on ``page``; the query defaults to the step's description."""
    try:
        return WebCall(step.operation, page, _plain(query or _describe(step)), step.value, output)
    except WebArgumentError as error:
        raise WebReprError(step.element, f"no web action for this step ({error.reason})") from None


def step_action(step: WebStep, index: int = 1, query: str | None = None) -> Action:
    """The ``index``-th (1-based) action of a trace: ``R<index> = OP(Env|R<index-1>, QUERY: ...[, TEXT: ...])``."""
    page = "Env" if index == 1 else f"R{index - 1}"
    action = step_call(step, page, f"R{index}", query).to_action()
    try:
        if parse_action(action.render()) != action:
            raise FormatError("does not read back", action.render())
    except FormatError:
        raise WebReprError(step.value or step.element, "the value does not fit the action format "
                                                         "(unbalanced quote or parenthesis)") from None
    return action


def action_step(action: Action) -> tuple[str, str, str | None]:
    """``(operation, query, value)`` of a released-format web action; WebArgumentError (a ValueError)
    when its arguments do not fit."""
    call = parse_web_call(action)
    return call.tool, call.query, call.text


# --------------------------------------------------------------------------- subgoals


def _describe(step: WebStep) -> str:
    noun = _TAG_NOUNS.get(step.tag.lower(), "element")
    if step.operation == "TYPE":
        target = f"the {step.element} {noun}" if step.element else f"the {step.tag or 'text'} field"
        return f"Type {step.value} into {target}"
    if step.operation == "SELECT":
        target = f"the {step.element} {noun}" if step.element else "the dropdown"
        return f"Select {step.value} in {target}"
    if step.element:
        return f"Click the {step.element} {noun}"
    return f"Click the {step.tag} {noun}" if step.tag else "Click the element"


def _suggestion(step: WebStep) -> str:
    return f"Choose the {step.element} suggestion"


def _picks_suggestion(typed: WebStep, click: WebStep) -> bool:
    if typed.operation != "TYPE" or click.operation != "CLICK" or not click.element or not typed.value:
        return False
    value, element = typed.value.lower(), click.element.lower()
    return value in element or element in value


def group_steps(steps: list[WebStep]) -> list[list[WebStep]]:
    """One group per step, a TYPE and the click on its suggestion sharing one group."""
    groups: list[list[WebStep]] = []
    for step in steps:
        if groups and len(groups[-1]) == 1 and _picks_suggestion(groups[-1][0], step):
            groups[-1].append(step)
        else:
            groups.append([step])
    return groups


def subgoal_text(group: list[WebStep]) -> str:
    if len(group) == 2:
        return f"{_describe(group[0])} and {_suggestion(group[1])[0].lower()}{_suggestion(group[1])[1:]}."
    return _describe(group[0]) + "."


def web_plan(action_reprs: list[str]) -> Plan:
    """The subgoal plan of a Mind2Web trace; WebReprError names the first bad step."""
    if not action_reprs:
        raise WebReprError("", "empty action trace")
    steps = [parse_action_repr(text) for text in action_reprs]
    subgoals, index = [], 0
    for group in group_steps(steps):
        actions = []
        for position, step in enumerate(group):
            index += 1
            actions.append(step_action(step, index, _suggestion(step) if position == 1 else None))
        subgoals.append(Subgoal(_plain(subgoal_text(group)), tuple(actions)))
    return Plan(tuple(subgoals))


def mind2web_plan(task) -> Plan:
    """The plan of a Mind2Web :class:`~lumos.convert.sources.SourceTask`."""
    return web_plan(list(task.raw["action_reprs"]))
