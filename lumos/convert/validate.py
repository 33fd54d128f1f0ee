"""Checks of converted complex-QA and web-agent annotations (LLM output is untrusted).

Maths annotations are verified by executing them; the other domains are checked here:

- the ``subgoal_plan`` parses (``lumos.format``);
- every tool is in the domain's vocabulary (``lumos.vocabulary``);
- complex QA: every action has outputs, numbered ``R1, R2, ...`` in order with none
  redefined; every ``R<n>`` an action uses is defined by an earlier action (in KnowledgeQuery's
  title and in the text after ``Query:``/``Question:`` an undefined ``R<n>`` is taken as a word,
  as in ``Audi R8``); each subgoal ends
  with a result (the iterative planner is told it);
- web agent: actions are in the released format (``lumos.tools.web``'s grammar): each has one
  output, numbered ``R1, R2, ...`` in order, acts on the page the previous action left (``Env``
  for the first) and states no result; only the page argument names a variable (``R9`` in a
  query is a word); and the (operation, value) sequence equals the gold Mind2Web
  ``action_reprs`` (values compared ignoring case and spacing).

Each check returns a list of :class:`Problem`; an empty list means valid.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

from lumos.convert.rules_web import WebReprError, parse_action_repr
from lumos.domains import domain as lumos_domain
from lumos.format import OUTPUT, Action, FormatError, Plan, Subgoal, parse_plan, variables_used
from lumos.tools.web import WebArgumentError, parse_web_action, parse_web_call
from lumos.vocabulary import vocabulary

# Problem kinds
FORMAT = "format"
UNKNOWN_TOOL = "unknown_tool"
UNDEFINED_VARIABLE = "undefined_variable"
OUTPUT_NUMBERING = "output_numbering"
MISSING_RESULT = "missing_result"
WEB_SHAPE = "web_shape"
GOLD_MISMATCH = "gold_mismatch"
BAD_GOLD = "bad_gold"


@dataclass(frozen=True)
class Problem:
    """One reason an annotation is not valid; ``subgoal``/``action`` are 1-based when known."""

    kind: str
    reason: str
    subgoal: int | None = None
    action: int | None = None

    def __str__(self) -> str:
        where = ""
        if self.subgoal is not None:
            where = f"Action {self.subgoal}-{self.action}: " if self.action is not None else f"Subgoal {self.subgoal}: "
        return f"{self.kind}: {where}{self.reason}"


def _parse(text: str) -> tuple[Plan | None, list[Problem]]:
    try:
        return parse_plan(text), []
    except FormatError as error:
        return None, [Problem(FORMAT, str(error), None, None)]


def check_tools(plan: Plan, domain: str) -> list[Problem]:
    known = vocabulary(domain).tool_names
    return [Problem(UNKNOWN_TOOL, f"{action.tool!r} is not a {domain} tool ({', '.join(known)})", k, j)
            for k, subgoal in enumerate(plan.subgoals, start=1)
            for j, action in enumerate(subgoal.actions, start=1) if action.tool not in known]


_FREE_TEXT_MARKERS = (", Query:", ", Question:")


def _variable_part(tool: str, args: str) -> str:
    """The part of an action's arguments whose ``R<n>`` are variables, not words of a title or question.

    KnowledgeQuery takes a bare title and ParagraphRetrieve/QA end with free text after
    ``Query:``/``Question:``, where ``Audi R8`` is a car, not a variable.
    """
    if tool == "KnowledgeQuery":
        return ""
    if tool in ("ParagraphRetrieve", "QA"):
        for marker in _FREE_TEXT_MARKERS:
            if marker in args:
                return args.split(marker, 1)[0]
    return args


def check_variables(plan: Plan) -> list[Problem]:
    """Outputs numbered R1, R2, ... in order (``Output`` allowed), every used R<n> defined earlier."""
    problems: list[Problem] = []
    defined: set[int] = set()
    highest = 0
    for k, subgoal in enumerate(plan.subgoals, start=1):
        for j, action in enumerate(subgoal.actions, start=1):
            for used in dict.fromkeys(variables_used(_variable_part(action.tool, action.args))):
                if used not in defined:
                    problems.append(Problem(UNDEFINED_VARIABLE, f"R{used} is used before any action defines it", k, j))
            if not action.outputs:
                problems.append(Problem(OUTPUT_NUMBERING, "action has no output variable", k, j))
            for name in action.outputs:
                if name == OUTPUT:
                    highest += 1
                    defined.add(highest)  # Output becomes R<last+1> in training data
                    continue
                number = int(name[1:])
                if number != highest + 1:
                    problems.append(Problem(OUTPUT_NUMBERING, f"output {name} should be R{highest + 1}", k, j))
                defined.add(number)
                highest = max(highest, number)
    return problems


def check_results(plan: Plan) -> list[Problem]:
    return [Problem(MISSING_RESULT, "the subgoal's last action states no result", k)
            for k, subgoal in enumerate(plan.subgoals, start=1) if subgoal.last_result is None]


def validate_complex_qa(subgoal_plan: str) -> list[Problem]:
    """Problems of a complex-QA ``subgoal_plan``; empty when it is valid."""
    plan, problems = _parse(subgoal_plan)
    if plan is None:
        return problems
    return check_tools(plan, "complex_qa") + check_variables(plan) + check_results(plan)


def web_actions(plan: Plan) -> tuple[list[tuple[str, str, str | None]], list[Problem]]:
    """``(operation, query, value)`` of each web action, and the problems of those that do not fit."""
    steps: list[tuple[str, str, str | None]] = []
    problems: list[Problem] = []
    page = "Env"
    count = 0
    for k, subgoal in enumerate(plan.subgoals, start=1):
        for j, action in enumerate(subgoal.actions, start=1):
            count += 1
            if action.result is not None:
                problems.append(Problem(WEB_SHAPE, "a web action states no result", k, j))
            try:
                call = parse_web_call(action)
            except WebArgumentError as error:
                problems.append(Problem(WEB_SHAPE, str(error), k, j))
                page = f"R{count}"  # one bad action is one problem: the next is checked as if it were right
                continue
            steps.append((call.tool, call.query, call.text))
            if call.output != f"R{count}":
                problems.append(Problem(OUTPUT_NUMBERING, f"output {call.output or 'missing'}, expected R{count}",
                                        k, j))
            if call.env_name != page:
                problems.append(Problem(UNDEFINED_VARIABLE if call.env_name != "Env" and
                                        int(call.env_name[1:]) >= count else WEB_SHAPE,
                                        f"acts on {call.env_name}, expected the current page {page}", k, j))
            page = f"R{count}"  # a misnumbered output is reported once, above
    return steps, problems


def _normal(value: str | None) -> str | None:
    return None if value is None else " ".join(value.split()).casefold()


_SUBGOAL = re.compile(r"Subgoal (\d+): (.+)")
_ACTION = re.compile(r"Action (\d+)-(\d+): (.+)")


def _parse_web(text: str) -> tuple[Plan | None, list[Problem]]:
    """``parse_plan``; where it fails, the plan read again with web actions' own grammar (a query is
    free text: a ``"`` or an unmatched parenthesis in it is data). The first error stands when that fails too."""
    plan, problems = _parse(text)
    if plan is not None:
        return plan, problems
    subgoals: list[Subgoal] = []
    actions: list[Action] = []
    current: str | None = None
    try:
        for line in (raw.strip() for raw in text.splitlines()):
            if not line:
                continue
            if (match := _SUBGOAL.fullmatch(line)) and int(match.group(1)) == len(subgoals) + (current is not None) + 1:
                if current is not None:
                    if not actions:
                        return None, problems
                    subgoals.append(Subgoal(current, tuple(actions)))
                current, actions = match.group(2).strip(), []
            elif (match := _ACTION.fullmatch(line)) and current is not None and \
                    (int(match.group(1)), int(match.group(2))) == (len(subgoals) + 1, len(actions) + 1):
                actions.append(parse_web_action(match.group(3)))
            else:
                return None, problems
    except WebArgumentError:
        return None, problems
    if current is None or not actions:
        return None, problems
    return Plan(tuple(subgoals) + (Subgoal(current, tuple(actions)),)), []


def validate_web(subgoal_plan: str, gold_action_reprs: Sequence[str] | None = None) -> list[Problem]:
    """Problems of a web-agent ``subgoal_plan``; with the gold trace, also every mismatch with it."""
    plan, problems = _parse_web(subgoal_plan)
    if plan is None:
        return problems
    problems = check_tools(plan, "web_agent")
    if problems:
        return problems
    steps, problems = web_actions(plan)
    if problems or gold_action_reprs is None:
        return problems
    try:
        gold = [parse_action_repr(text) for text in gold_action_reprs]
    except WebReprError as error:
        return [Problem(BAD_GOLD, str(error))]
    for index, (step, expected) in enumerate(zip(steps, gold), start=1):
        operation, _, value = step
        if operation != expected.operation or _normal(value) != _normal(expected.value):
            shown = expected.operation + (f": {expected.value}" if expected.value is not None else "")
            got = operation + (f": {value}" if value is not None else "")
            problems.append(Problem(GOLD_MISMATCH, f"action {index} is {got!r}, the gold step is {shown!r}"))
    if len(steps) != len(gold):
        problems.append(Problem(GOLD_MISMATCH, f"{len(steps)} actions for {len(gold)} gold steps"))
    return problems


def validate_annotation(record: dict, domain: str, gold_action_reprs: Sequence[str] | None = None) -> list[Problem]:
    """Problems of a converted annotation (``{"subgoal_plan": ...}``) by its domain's validator (``lumos.domains``)."""
    text = record.get("subgoal_plan")
    if not isinstance(text, str) or not text.strip():
        return [Problem(FORMAT, "subgoal_plan is missing or empty")]
    return lumos_domain(domain).validate(text, gold_action_reprs)
