"""Lenient reading of converted annotations, as the released Lumos training files were made.

The released training files were cut out of each annotation's ``subgoal_plan`` by string
positions, not by a grammar: blocks are split on blank lines, an action's output variables run
from the line's first ``:`` to its first `` = ``, its tool name from there to the first ``(``,
and its arguments and result are found by counting parentheses. Annotations that do not fit
the format (a trailing ``. `` after the call, ``Output = R9 = 40``, doubled spaces, a triple
newline) still give training text, and this module gives exactly the same text, so that
training files match the released ones byte for byte (docs/FORMAT.md §3.6).

This is for reading *annotations* only. Model output (a planner reply, a grounding answer) is
parsed strictly by :mod:`lumos.format`; nothing here is used on it.

What a record can fail on is raised as :class:`AnnotationError` with a short reason code,
which the caller writes into the record's ``.skipped.jsonl`` entry.
"""

from __future__ import annotations

from dataclasses import dataclass

from lumos import prompts
from lumos.domains import Domain, domain as lumos_domain, domain_names
from lumos.format import matching_paren

OUTPUT = "Output"


class AnnotationError(ValueError):
    """An annotation that gives no training conversation; ``reason`` is a short code."""

    def __init__(self, reason: str, detail: str):
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


@dataclass(frozen=True)
class AnnotatedSubgoal:
    """One blank-line-separated block: its first line (the subgoal, as written) and the rest."""

    line: str
    action_lines: tuple[str, ...]

    @property
    def key(self) -> str:
        """The label the grounding prompt uses for this subgoal's result: the text before ``:``."""
        colon = self.line.find(":")
        return self.line[:colon] if colon >= 0 else self.line[:-1]  # no colon: all but the last character


@dataclass(frozen=True)
class AnnotatedAction:
    """An action line cut into pieces by position (see :func:`read_action`)."""

    variables: tuple[str, ...]
    tool: str
    args: str
    result: str

    @property
    def grounded(self) -> str:
        """The action as the grounding module is trained to write it: without its result."""
        return f"{', '.join(self.variables)} = {self.tool}({self.args})"


def read_subgoal_plan(text: str) -> list[AnnotatedSubgoal]:
    """Blocks from ``Subgoal 1`` on, split on every blank line (so ``\\n\\n\\n`` leaves an empty
    first line in the next block and a trailing blank line an empty last block)."""
    start = text.find("Subgoal 1")
    body = text[start:] if start >= 0 else text[-1:]
    blocks = []
    for block in body.split("\n\n"):
        first, *rest = block.split("\n")
        blocks.append(AnnotatedSubgoal(first, tuple(rest)))
    return blocks


def _closing_paren(line: str, open_pos: int) -> int:
    """Position of the ``)`` balancing the ``(`` at ``open_pos``; the last position scanned when
    none balances. With ``open_pos == -1`` only the line's last character is looked at."""
    if open_pos < 0:
        return -1 if line else -2  # what the original's scan gives: one character looked at, never a "("
    close = matching_paren(line, open_pos)
    return close if close >= 0 else len(line) - 1


def read_action(line: str, *, with_result: bool = True) -> AnnotatedAction:
    """Cut an ``Action k-j: <outputs> = <Tool>(<args>) = <result>`` line into its pieces.

    Never raises: text that does not fit still gives pieces (possibly odd ones), as it did for
    the released files. ``with_result=False`` is for web actions, which have no result: their
    arguments run to the last ``)``, so ``R1 = CLICK(Env, QUERY: Open the menu). `` keeps its
    query whole.
    """
    after_outputs = line.find(" = ") + 3
    open_pos = line.find("(")
    variables = tuple(line[line.find(":") + 2:after_outputs - 3].split(", "))
    tool = line[after_outputs:open_pos]
    if not with_result:
        return AnnotatedAction(variables, tool, line[open_pos + 1:line.rfind(")")], "")
    close_pos = _closing_paren(line, open_pos)
    last_equals = line.rfind(" = ")
    if close_pos + 2 >= len(line):
        # the call ends the line (or is followed by one character): no result; the result is the arguments
        args = line[open_pos + 1:line.rfind(")")]
        return AnnotatedAction(variables, tool, args, args)
    if close_pos == open_pos:
        # no call at all, as in ``Output = R9 = 40``: the "arguments" are the text between the ``=`` signs
        return AnnotatedAction(variables, "", line[after_outputs:last_equals].strip(),
                               line[last_equals + 3:].strip())
    if line[close_pos + 2] != "=":
        # text between the call and its result: the arguments end one character before the last " = "
        return AnnotatedAction(variables, tool, line[open_pos + 1:last_equals - 1], line[last_equals + 3:].strip())
    return AnnotatedAction(variables, tool, line[open_pos + 1:close_pos], line[close_pos + 3:].strip())


def executed_result(action_line: str) -> str:
    """What the planner is told a subgoal produced: the text after the line's last ``=``, with
    surrounding spaces and dots stripped (``x + 5 = 10`` gives ``10``, ``.5`` gives ``5``)."""
    return action_line[action_line.rfind("=") + 2:].strip().strip(".")


def planner_variable(action_line: str) -> str:
    """The last output variable of an action line, as the planning files read it: between the
    line's first ``:`` and its first `` = ``, the last of those joined by ``, ``."""
    outputs = action_line.split(" = ")[0].split(":")
    if len(outputs) < 2:
        raise AnnotationError("no_output_variable", f"no ':' before the outputs in {action_line!r}")
    return outputs[1].strip().split(", ")[-1]


class OutputNumbering:
    """Renames ``Output`` to ``R<n+1>``, ``n`` being the index of the last ``R`` variable that
    ended a subgoal.

    ``carry_over=False`` (our default) starts every record from ``n = 0``. ``carry_over=True``
    reproduces the released files: ``n`` carries over from the previous record, and an
    ``Output`` met before any record has set it makes the record unusable.
    """

    def __init__(self, carry_over: bool = False):
        self.carry_over = carry_over
        self.last: int | None = None if carry_over else 0

    def start_record(self) -> None:
        if not self.carry_over:
            self.last = 0

    def rename(self, variable: str, text: str) -> str:
        """``variable`` ended a subgoal: remember its index, or rename ``Output`` in ``text``."""
        if not variable:
            raise AnnotationError("no_output_variable", "a subgoal's last action names no output variable")
        if variable[0] == "R":
            try:
                self.last = int(variable[1:])
            except ValueError:
                raise AnnotationError("bad_output_variable", f"{variable!r} is not R<number>") from None
            return text
        if self.last is None:
            raise AnnotationError("output_before_any_variable",
                                  f"{variable!r} ends a subgoal before any R<n> variable has been seen")
        return text.replace(OUTPUT, f"R{self.last + 1}")


def web_subgoal_done(subgoal_line: str) -> str:
    """The subgoal's text after ``: ``, first letter lower-cased (web planner feedback)."""
    text = subgoal_line[subgoal_line.find(": ") + 2:]
    if not text:
        raise AnnotationError("empty_subgoal", f"no subgoal text in {subgoal_line!r}")
    return text[0].lower() + text[1:]


# --------------------------------------------------------------------------- conversations


# Each training domain's rules for its conversations: the Domain's feedback (web: "We have already <subgoal>."
# instead of a result), actions_have_results (web actions end at their call) and grounding_sees_results
# (complex_qa: later grounding turns list earlier results).
TRAINING_RULES = {name: lumos_domain(name) for name in domain_names(training=True)}


def plan_conversation(task: str, subgoal_plan: str, rules: Domain, formulation: str,
                      numbering: OutputNumbering) -> list[dict[str, str]]:
    """The planning module's training conversation (``formulation``: iterative or onetime)."""
    subgoals = read_subgoal_plan(subgoal_plan)
    lines = [subgoal.line for subgoal in subgoals]
    if formulation == "onetime":
        return prompts.plan_messages(task, lines)
    numbering.start_record()
    feedback = []
    for number, subgoal in enumerate(subgoals, start=1):
        _require_actions(number, subgoal)
        last = subgoal.action_lines[-1]
        if rules.feedback == "completion":
            turn = prompts.subgoal_done_feedback(web_subgoal_done(subgoal.line))
        else:
            turn = prompts.executed_result_feedback(number, executed_result(last))
        feedback.append(numbering.rename(planner_variable(last), turn))
    return prompts.plan_messages(task, lines, feedback)


def ground_conversation(domain: str, task: str, subgoal_plan: str, rules: Domain, formulation: str,
                        numbering: OutputNumbering) -> list[dict[str, str]]:
    """The grounding module's training conversation. Onetime answers keep ``Output`` as written;
    iterative answers have it renamed by ``numbering``."""
    subgoals = read_subgoal_plan(subgoal_plan)
    lines = [subgoal.line for subgoal in subgoals]
    with_result = rules.actions_have_results
    if formulation == "onetime":
        answer = "; ".join(read_action(line, with_result=with_result).grounded
                           for subgoal in subgoals for line in subgoal.action_lines)
        return prompts.ground_onetime_messages(domain, task, lines, answer)
    numbering.start_record()
    answers: list[str] = []
    earlier: list[list[tuple[str, str]] | None] = []
    results: dict[str, str] = {}
    for number, subgoal in enumerate(subgoals, start=1):
        _require_actions(number, subgoal)
        # earlier results are listed in sorted() order of their labels: "Subgoal 10" before "Subgoal 2"
        earlier.append(sorted(results.items()) if rules.grounding_sees_results and number > 1 else None)
        actions = [read_action(line, with_result=with_result) for line in subgoal.action_lines]
        results[subgoal.key] = actions[-1].result
        answer = "; ".join(action.grounded for action in actions)
        answers.append(numbering.rename(actions[-1].variables[-1], answer))
    return prompts.ground_messages(domain, task, lines, answers, earlier)


def _require_actions(number: int, subgoal: AnnotatedSubgoal) -> None:
    if not subgoal.action_lines:
        raise AnnotationError("subgoal_without_action", f"block {number} ({subgoal.line!r}) has no action line")
