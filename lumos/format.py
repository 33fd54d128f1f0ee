"""Parse and render the unified subgoal/action format (docs/FORMAT.md §1).

A converted annotation's ``subgoal_plan`` looks like::

    Subgoal 1: Calculate how many eggs Janet sells each day.
    Action 1-1: R1 = Calculator(16 - 3 - 4) = 9

    Subgoal 2: Calculate how much she makes at the market.
    Action 2-1: Output = Calculator(R1 * 2) = 18

and a grounding module answers with actions joined by ``"; "``::

    R1 = Calculator(16 - 3 - 4); R2 = Calculator(R1 * 2)

Everything here is strict: text that does not fit raises :class:`FormatError`, which names
the line and what was expected. Canonical text round-trips exactly through parse and render.
This module imports nothing else from the project.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Sequence

OUTPUT = "Output"
# The one variable grammar: R1, R2, ... (no R0, no leading zero). Everything that reads variables uses these.
VARIABLE_NUMBER = r"[1-9]\d*"
VARIABLE = rf"R{VARIABLE_NUMBER}"
VARIABLE_IN_TEXT = re.compile(rf"\bR({VARIABLE_NUMBER})\b")  # a variable standing as a word; group 1: its number
# The released evaluation's reading (its findvariables): R and digits anywhere, R0 included; original modes only.
ORIGINAL_VARIABLE = re.compile(r"R[0-9]+")
_VARIABLE = rf"(?:{VARIABLE}|Output)"
_OUTPUTS_PREFIX = re.compile(rf"({_VARIABLE}(?:, {_VARIABLE})*) = ")
_TOOL_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SUBGOAL_LINE = re.compile(r"Subgoal (\d+): (.*)")
_ACTION_LINE = re.compile(r"Action (\d+)-(\d+): (.*)")

ACTION_SHAPE = "<outputs> = <Tool>(<args>)[ = <result>] or <Tool>(<args>)"


class FormatError(ValueError):
    """Text that does not fit the unified format.

    ``line_no`` is 1-based within the parsed text (None for single-line inputs);
    ``text`` is the offending line or fragment, quoted in the message.
    """

    def __init__(self, reason: str, text: str, *, line_no: int | None = None, expected: str = ""):
        self.reason = reason
        self.text = text
        self.line_no = line_no
        self.expected = expected
        where = f"line {line_no}: " if line_no is not None else ""
        shown = text if len(text) <= 200 else text[:197] + "..."
        message = f"{where}{reason}: {shown!r}"
        if expected:
            message += f" (expected {expected})"
        super().__init__(message)


@dataclass(frozen=True)
class Action:
    """One action: ``R1, R2 = Tool(args) = result``; outputs are empty for web actions."""

    tool: str
    args: str
    outputs: tuple[str, ...] = ()
    result: str | None = None

    def render(self, with_result: bool = True) -> str:
        call = f"{self.tool}({self.args})"
        text = f"{', '.join(self.outputs)} = {call}" if self.outputs else call
        if with_result and self.result is not None:
            text += f" = {self.result}"
        return text

    def without_result(self) -> "Action":
        return replace(self, result=None)


@dataclass(frozen=True)
class Subgoal:
    text: str
    actions: tuple[Action, ...] = field(default_factory=tuple)

    @property
    def last_result(self) -> str | None:
        return self.actions[-1].result if self.actions else None


@dataclass(frozen=True)
class Plan:
    subgoals: tuple[Subgoal, ...]

    def render(self) -> str:
        return render_plan(self)

    @property
    def actions(self) -> list[Action]:
        return [action for subgoal in self.subgoals for action in subgoal.actions]


# --------------------------------------------------------------------------- scanning


def matching_paren(text: str, open_pos: int, *, quotes: str = "") -> int:
    """Index of the ``)`` that balances the ``(`` at ``open_pos``; -1 when none does (the one bracket matcher).

    Parentheses inside strings quoted with a character of ``quotes`` do not count (``'"'``: web queries
    such as ``Code(print("a :)"))`` parse); an unterminated quote means no balance.
    """
    depth = 0
    quote = ""
    for pos in range(open_pos, len(text)):
        char = text[pos]
        if quote:
            if char == quote:
                quote = ""
        elif char in quotes:
            quote = char
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return pos
    return -1


def split_top_level(text: str, separator: str = "; ", *, brackets: str = "()", quotes: str = '"') -> list[str]:
    """Split on ``separator`` where it is outside ``brackets`` (openers then closers: "()" or "([{)]}")
    and outside ``quotes``; a stray closer never makes the depth negative."""
    half = len(brackets) // 2
    openers, closers = brackets[:half], brackets[half:]
    parts: list[str] = []
    depth = 0
    in_quote = False
    start = 0
    pos = 0
    while pos < len(text):
        char = text[pos]
        if char in quotes:
            in_quote = not in_quote
        elif not in_quote:
            if char in openers:
                depth += 1
            elif char in closers:
                depth = max(depth - 1, 0)
            elif depth == 0 and text.startswith(separator, pos):
                parts.append(text[start:pos])
                pos += len(separator)
                start = pos
                continue
        pos += 1
    parts.append(text[start:])
    return parts


# --------------------------------------------------------------------------- actions


def parse_action(text: str, *, line_no: int | None = None) -> Action:
    """Parse one action such as ``R5, R6 = SolveEquation(R2=xy, R3=x/y) = 3, 4``."""
    if text != text.strip() or not text:
        raise FormatError("action has surrounding whitespace or is empty", text, line_no=line_no,
                          expected=ACTION_SHAPE)
    outputs: tuple[str, ...] = ()
    rest = text
    prefix = _OUTPUTS_PREFIX.match(text)
    if prefix:
        outputs = tuple(prefix.group(1).split(", "))
        rest = text[prefix.end():]
    name = _TOOL_NAME.match(rest)
    if not name or rest[name.end():name.end() + 1] != "(":
        raise FormatError("action does not start with a tool call", text, line_no=line_no,
                          expected=ACTION_SHAPE)
    open_pos = name.end()
    close_pos = matching_paren(rest, open_pos, quotes='"')
    if close_pos < 0:
        raise FormatError("unbalanced parentheses in action", text, line_no=line_no,
                          expected="the argument to end at the ')' balancing the first '('")
    args = rest[open_pos + 1:close_pos]
    tail = rest[close_pos + 1:]
    result: str | None = None
    if tail:
        if not tail.startswith(" = ") or not tail[3:].strip():
            raise FormatError("unexpected text after the tool call", text, line_no=line_no,
                              expected="nothing or ' = <result>'")
        result = tail[3:]
        if result != result.strip():
            raise FormatError("result has surrounding whitespace", text, line_no=line_no)
    return Action(tool=name.group(0), args=args, outputs=outputs, result=result)


def parse_actions(text: str) -> list[Action]:
    """Parse a grounding answer: actions joined by ``"; "`` (results optional)."""
    stripped = text.strip()
    if not stripped:
        raise FormatError("no action", text, expected=ACTION_SHAPE)
    return [parse_action(part.strip()) for part in split_top_level(stripped)]


def render_actions(actions: list[Action] | tuple[Action, ...], with_result: bool = False) -> str:
    return "; ".join(action.render(with_result=with_result) for action in actions)


# --------------------------------------------------------------------------- plans


def parse_subgoal_line(text: str, *, line_no: int | None = None) -> tuple[int, str]:
    """``"Subgoal 2: Compute x."`` -> ``(2, "Compute x.")``."""
    match = _SUBGOAL_LINE.fullmatch(text.strip())
    if not match or not match.group(2).strip():
        raise FormatError("not a subgoal line", text, line_no=line_no,
                          expected="'Subgoal <k>: <text>'")
    return int(match.group(1)), match.group(2).strip()


def parse_plan(text: str) -> Plan:
    """Parse a subgoal plan: ``Subgoal k:`` lines each followed by ``Action k-j:`` lines.

    Blank lines separate blocks; numbering must run 1, 2, ... for subgoals and for the
    actions inside each subgoal; every subgoal needs at least one action.
    """
    subgoals: list[Subgoal] = []
    current_text: str | None = None
    current_actions: list[Action] = []
    current_line = 0

    def close_block() -> None:
        if current_text is None:
            return
        if not current_actions:
            raise FormatError("subgoal has no action", f"Subgoal {len(subgoals) + 1}: {current_text}",
                              line_no=current_line, expected="at least one 'Action k-j:' line")
        subgoals.append(Subgoal(current_text, tuple(current_actions)))

    lines = text.replace("\r\n", "\n").split("\n")
    for line_no, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line:
            continue
        subgoal = _SUBGOAL_LINE.fullmatch(line)
        if subgoal:
            close_block()
            number, body = int(subgoal.group(1)), subgoal.group(2).strip()
            if number != len(subgoals) + 1:
                raise FormatError(f"subgoal numbered {number}, expected {len(subgoals) + 1}", raw,
                                  line_no=line_no)
            if not body:
                raise FormatError("empty subgoal", raw, line_no=line_no)
            current_text, current_actions, current_line = body, [], line_no
            continue
        action = _ACTION_LINE.fullmatch(line)
        if action:
            if current_text is None:
                raise FormatError("action before any subgoal", raw, line_no=line_no,
                                  expected="'Subgoal 1: ...' first")
            k, j = int(action.group(1)), int(action.group(2))
            expected_k, expected_j = len(subgoals) + 1, len(current_actions) + 1
            if (k, j) != (expected_k, expected_j):
                raise FormatError(f"action numbered {k}-{j}, expected {expected_k}-{expected_j}", raw,
                                  line_no=line_no)
            current_actions.append(parse_action(action.group(3).strip(), line_no=line_no))
            continue
        raise FormatError("line is neither a subgoal nor an action", raw, line_no=line_no,
                          expected="'Subgoal k: <text>' or 'Action k-j: <action>'")
    close_block()
    if not subgoals:
        raise FormatError("no subgoal found", text[:200], expected="'Subgoal 1: <text>'")
    return Plan(tuple(subgoals))


def render_subgoal(index: int, subgoal: Subgoal) -> str:
    """``index`` is 1-based."""
    return f"Subgoal {index}: {subgoal.text}"


def render_plan(plan: Plan) -> str:
    blocks = []
    for k, subgoal in enumerate(plan.subgoals, start=1):
        lines = [render_subgoal(k, subgoal)]
        lines += [f"Action {k}-{j}: {action.render()}" for j, action in enumerate(subgoal.actions, start=1)]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


# --------------------------------------------------------------------------- variables


def variables_used(args: str) -> list[int]:
    """Indices of the ``R<n>`` variables an argument string refers to, in order of appearance."""
    return [int(n) for n in VARIABLE_IN_TEXT.findall(args)]


def number_action_outputs(actions: Sequence[Action], highest: int = 0) -> list[Action]:
    """Replace each ``Output`` by ``R<last+1>``, counting on from ``highest`` (the last ``R`` so far)."""
    numbered = []
    for action in actions:
        outputs = []
        for name in action.outputs:
            if name == OUTPUT:
                highest += 1
                outputs.append(f"R{highest}")
            else:
                highest = max(highest, int(name[1:]))
                outputs.append(name)
        numbered.append(replace(action, outputs=tuple(outputs)))
    return numbered


def number_outputs(plan: Plan) -> Plan:
    """Replace each ``Output`` variable by ``R<last+1>``, as training data and grounding need."""
    numbered = iter(number_action_outputs(plan.actions))
    return Plan(tuple(replace(subgoal, actions=tuple(next(numbered) for _ in subgoal.actions))
                      for subgoal in plan.subgoals))
