"""Rule-based conversion of Mind2Web action traces into subgoal plans.

A Mind2Web step is written ``[<tag>]  <element text> -> <OP>[: <value>]``, for example
``[textbox]  From -> TYPE: New York`` or ``[svg]   -> CLICK`` (no element text). Each becomes
one web action with no outputs and no result::

    TYPE(Env, "From", "New York")    CLICK(Env, "Search")    SELECT(Env, "Reservation type", "Dine-in")

Argument conventions: the first argument is ``Env``; the query is the element text, or the
tag when the element has no text (``CLICK(Env, "svg")``); string arguments are in double
quotes, and a double quote inside one is written twice (``"27"" monitor"``) so that the
format's quote-aware scanner stays balanced; :func:`parse_web_arguments` reads them back.

``HOVER`` and ``ENTER`` steps become ``CLICK``, as Mind2Web itself maps them.

Subgoals: one per action, except that typing into a field followed by clicking the suggestion
that repeats the typed text (``TYPE: Boston, NY`` then ``[span] Boston, NY -> CLICK``) is one
subgoal. Subgoal texts are short imperative sentences ("Type New York into the From field.").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lumos.format import Action, Plan, Subgoal

WEB_OPERATIONS = ("CLICK", "TYPE", "SELECT")
# Mind2Web's own mapping of its raw operations onto the three it evaluates.
OPERATION_ALIASES = {"HOVER": "CLICK", "ENTER": "CLICK"}
_REPR = re.compile(r"\[(?P<tag>[^\]]*)\]\s*(?P<text>.*?)\s*->\s*(?P<op>CLICK|TYPE|SELECT|HOVER|ENTER)\b(?::\s?(?P<value>.*))?",
                   re.DOTALL)

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


# --------------------------------------------------------------------------- arguments


def quote_web_argument(text: str) -> str:
    """Double-quote ``text``, writing each inner double quote twice (``27" TV`` -> ``"27"" TV"``)."""
    return '"' + text.replace('"', '""') + '"'


def parse_web_arguments(args: str) -> list[str]:
    """Split web arguments into their values: ``Env, "q", "27"" TV"`` -> ``Env``, ``q``, ``27" TV``.

    Quoted values may hold commas, parentheses and doubled quotes; bare words stay as they are.

    Raises ValueError on an unterminated quote or text after a closing quote.
    """
    values: list[str] = []
    pos, length = 0, len(args)
    while True:
        while pos < length and args[pos] == " ":
            pos += 1
        if pos < length and args[pos] == '"':
            pos += 1
            chunk: list[str] = []
            while True:
                end = args.find('"', pos)
                if end < 0:
                    raise ValueError(f"unterminated quote in arguments {args!r}")
                chunk.append(args[pos:end])
                if args.startswith('""', end):
                    chunk.append('"')
                    pos = end + 2
                    continue
                pos = end + 1
                break
            values.append("".join(chunk))
            while pos < length and args[pos] == " ":
                pos += 1
            if pos < length and args[pos] != ",":
                raise ValueError(f"text after a closing quote in arguments {args!r}")
        else:
            end = args.find(",", pos)
            end = length if end < 0 else end
            values.append(args[pos:end].strip())
            pos = end
        if pos >= length:
            return values
        pos += 1  # the comma


def step_action(step: WebStep) -> Action:
    """The web action of one step, e.g. ``TYPE(Env, "From", "New York")``."""
    args = ["Env", quote_web_argument(step.query)]
    if step.value is not None:
        args.append(quote_web_argument(step.value))
    return Action(tool=step.operation, args=", ".join(args))


def action_step(action: Action) -> tuple[str, str, str | None]:
    """``(operation, query, value)`` of a web action; ValueError when its arguments do not fit."""
    values = parse_web_arguments(action.args)
    expected = 2 if action.tool == "CLICK" else 3
    if len(values) != expected or values[0] != "Env":
        raise ValueError(f"{action.tool} takes {expected} arguments starting with Env, got {action.args!r}")
    return action.tool, values[1], values[2] if expected == 3 else None


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
        return f"{_describe(group[0])} and choose the {group[1].element} suggestion."
    return _describe(group[0]) + "."


def web_plan(action_reprs: list[str]) -> Plan:
    """The subgoal plan of a Mind2Web trace; WebReprError names the first bad step."""
    if not action_reprs:
        raise WebReprError("", "empty action trace")
    steps = [parse_action_repr(text) for text in action_reprs]
    return Plan(tuple(Subgoal(subgoal_text(group), tuple(step_action(s) for s in group))
                      for group in group_steps(steps)))


def mind2web_plan(task) -> Plan:
    """The plan of a Mind2Web :class:`~lumos.convert.sources.SourceTask`."""
    return web_plan(list(task.raw["action_reprs"]))
