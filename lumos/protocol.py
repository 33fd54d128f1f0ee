"""How the agent loop talks to its modules: our standard protocol, and the released evaluation's.

The loop in ``lumos.agent`` is the same for both; what differs is written here, as a policy
object the :class:`~lumos.agent.Agent` consults at each decision point:

* ``render`` — the prompt text of a conversation;
* ``read_plan`` / ``read_onetime_plan`` — what a planner reply means and what of it the next
  prompts carry;
* ``ground_turn`` / ``onetime_ground_prompt`` — the grounding module's user turns;
* ``read_grounding`` / ``execute`` — the grounded actions and how they run;
* ``feedback`` — the planner's turn after a subgoal ran;
* ``max_new_tokens``, ``round_limit``, ``end_on_tool_error``, ``add_special_tokens``.

:class:`Protocol` is ours: strict parsing, canonical turns, a failed action ends the episode.
:class:`OriginalProtocol` reproduces ``eval/<bench>/run_eval.py`` of the released Lumos, byte for
byte in what the modules receive (the reference transcripts in ``lumos_reference/B_eval`` are the
oracle): raw replies kept in later prompts, a stop read as a substring, 512 new tokens, no BOS,
a round limit counted in module calls, and the original's own bookkeeping (results table and
action records) kept on ``Episode.original`` for ``--scoring original``.
:class:`OriginalMathsProtocol` adds the original maths ``execute()``. Other domains subclass
:class:`OriginalProtocol` and override ``execute`` / ``ground_turn`` / ``feedback``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Sequence

from lumos import prompts
from lumos.domains import domain as lumos_domain
from lumos.episode import Episode, Step, ToolCall
from lumos.format import (
    ORIGINAL_VARIABLE, Action, FormatError, matching_paren, number_action_outputs, render_actions,
)
from lumos.tools.base import Toolbox, ToolError

FeedbackFunction = Callable[[int, str, str], str]


@dataclass(frozen=True)
class PlanTurn:
    """What an iterative planner reply means to the loop.

    ``subgoal`` is what the episode records; ``history`` the assistant turn the planner's
    conversation keeps; ``ground_line`` what follows ``Subgoal to be grounded: ``.
    """

    stop: bool
    subgoal: str | None = None
    history: str = ""
    ground_line: str = ""


class StepFailed(Exception):
    """An action of a step could not run; ``message`` says which and why."""


class Protocol:
    """Our protocol: replies parsed strictly, the conversation keeps canonical turns, a failure ends the task."""

    name = "standard"
    prompt_style: prompts.PromptStyle = "tulu"
    max_new_tokens = 256
    round_limit: int | None = None  # module calls per task (one planner or one grounder call each); None: max_steps
    end_on_tool_error = True
    add_special_tokens = True  # whether the backend adds BOS to a prompt
    # A task's prompts depend only on its own replies and results, so tasks may advance out of step
    # (the served loop without a round barrier); the released evaluation ran round by round.
    tasks_independent = True

    # ------------------------------------------------------------------ prompts

    def render(self, turns: Sequence[dict[str, str]], eos: str) -> str:
        return prompts.render_prompt(turns, eos, self.prompt_style)

    def start(self, episode: Episode) -> None:
        """Called once per task before its first round (bookkeeping a protocol keeps)."""

    # ------------------------------------------------------------------ planning

    def read_plan(self, reply: str, index: int) -> PlanTurn:
        """The iterative planner's reply for subgoal ``index``; ``FormatError`` when it is neither subgoal nor stop."""
        parsed = prompts.parse_planner_reply(reply)
        if parsed.stop:
            return PlanTurn(stop=True)
        # The conversation keeps the canonical turn, numbered by us: a model's own numbering is untrusted.
        return PlanTurn(stop=False, subgoal=parsed.text, history=prompts.planner_answer(index, parsed.text),
                        ground_line=f"Subgoal {index}: {parsed.text}")

    def read_onetime_plan(self, reply: str) -> tuple[list[str], str]:
        """A onetime plan: the subgoal texts and what follows ``Subgoals to be grounded: ``."""
        subgoals = prompts.split_onetime_plan(reply)
        lines = [f"Subgoal {k}: {text}" for k, (_, text) in enumerate(subgoals, start=1)]
        return [text for _, text in subgoals], "; ".join(lines)

    # ------------------------------------------------------------------ grounding

    def ground_with_results(self, domain: str) -> bool:
        """Whether later grounding turns carry earlier results (the domain's, as training did: complex QA)."""
        return lumos_domain(domain).grounding_sees_results

    def ground_turn(self, domain: str, task: str, index: int, turn: PlanTurn, earlier: Sequence[Step]) -> str:
        """The user turn asking to ground subgoal ``index`` (``earlier``: the steps before it)."""
        if index == 1:
            return prompts.ground_instruction(domain, task) + prompts.ground_subgoal_prompt(turn.ground_line)
        previous = [(s.index, s.result or "") for s in earlier] if self.ground_with_results(domain) else []
        return prompts.ground_subgoal_prompt(turn.ground_line, previous)

    def onetime_ground_prompt(self, domain: str, task: str, ground_text: str) -> str:
        return prompts.ground_instruction(domain, task) + f"Subgoals to be grounded: {ground_text}\n"

    def read_grounding(self, reply: str, step: Step, toolbox: Toolbox, variables: dict[str, str]) -> str:
        """Set ``step.calls`` from the grounder's reply; returns the assistant turn its conversation keeps.

        ``FormatError`` when the reply does not parse or names a tool the toolbox lacks.
        """
        # the toolbox reads its domain's actions (the web's and SQL's arguments hold quotes and parentheses)
        actions = toolbox.read_actions(reply)
        unknown = [action.tool for action in actions if action.tool not in toolbox.tools]
        if unknown:
            raise FormatError(f"names unknown tool(s) {', '.join(unknown)}; available: {', '.join(toolbox.tool_names)}",
                              reply)
        highest = max((int(name[1:]) for name in variables if name[1:].isdigit()), default=0)
        actions = number_action_outputs(actions, highest)
        step.calls = [pending_call(action) for action in actions]
        return render_actions(actions)

    # ------------------------------------------------------------------ execution and feedback

    def execute(self, step: Step, toolbox: Toolbox, variables: dict[str, str], episode: Episode) -> None:
        """Run a step's calls in order; ``StepFailed`` at the first failure (the call keeps its error)."""
        for call in step.calls:
            run_call(call, toolbox, variables)
            if call.error is not None:
                raise StepFailed(call.error)
            episode.prediction = call.result
            if toolbox.episode_end is not None:
                return

    def feedback(self, step: Step, episode: Episode, default: FeedbackFunction) -> str:
        """The planner's user turn after subgoal ``step`` ran."""
        return default(step.index, step.subgoal or "", step.result or "")

    def on_stop(self, episode: Episode, toolbox: Toolbox) -> None:
        """Called when the iterative planner stops a task that ran without failure, before it is finished;
        ``StepFailed`` ends the task ``tool_error`` instead."""


# --------------------------------------------------------------------------- the released evaluation

STOP_MARK = "Yes, I will stop planning"  # the original stops on this substring anywhere in the reply


class OriginalProtocol(Protocol):
    """The released evaluation's protocol (``--prompt_style original``), domain-independent part.

    ``rounds``: the original's loop length in module calls (GSM8K 16, SVAMP 4, QA 10); a task
    still running after it ends ``step_limit``. Episodes get ``original`` = ``{"subgoals": [...],
    "actions": [...], "results": {...}}`` as the original keeps them (``results`` None once an
    action failed: the original then writes no prediction for the task).
    """

    name = "original"
    prompt_style: prompts.PromptStyle = "original"
    max_new_tokens = 512
    end_on_tool_error = False  # the original keeps asking both modules; nothing more is executed
    add_special_tokens = False
    tasks_independent = False  # round by round, tasks in input order (QA carries one example's result to the next)

    def __init__(self, rounds: int | None = None):
        if rounds is not None and rounds < 1:
            raise ValueError(f"rounds must be at least 1, got {rounds}")
        self.round_limit = rounds

    def start(self, episode: Episode) -> None:
        episode.original = {"subgoals": [], "actions": [], "results": {}}

    def read_plan(self, reply: str, index: int) -> PlanTurn:
        text = reply.strip()
        if STOP_MARK in text:
            return PlanTurn(stop=True)
        try:
            parsed = prompts.parse_planner_reply(text)
            subgoal = parsed.text if not parsed.stop else text
        except FormatError:
            subgoal = text  # the original never rejects a reply: it grounds whatever came
        return PlanTurn(stop=False, subgoal=subgoal, history=text, ground_line=text)

    def read_onetime_plan(self, reply: str) -> tuple[list[str], str]:
        text = reply.strip()
        try:
            subgoals = [subgoal for _, subgoal in prompts.split_onetime_plan(text)]
        except FormatError:
            subgoals = [text]
        return subgoals, text

    def ground_with_results(self, domain: str) -> bool:
        return False

    def read_grounding(self, reply: str, step: Step, toolbox: Toolbox, variables: dict[str, str]) -> str:
        """Never rejects: each ``'; '``-separated piece becomes a call, read as leniently as the original."""
        text = reply.strip()
        step.calls = []
        for piece in text.split("; "):
            piece = piece.strip()
            outputs, tool, args = read_original_action(piece)
            step.calls.append(ToolCall(action=piece, tool=tool, args=args, outputs=outputs))
        return text

    def record_action(self, episode: Episode, piece: str, values: list[str] | None) -> None:
        """The original's action record: ``<action> = <values>``, or the bare action when it failed."""
        actions = episode.original["actions"]
        actions.append(piece if values is None else f"{piece} = {', '.join(values)}")

    def feedback(self, step: Step, episode: Episode, default: FeedbackFunction) -> str:
        """``The executed result for Subgoal k is <text after the last '=' of the last action record>.``"""
        actions = episode.original["actions"] if episode.original else []
        value = actions[-1].split("=")[-1].strip() if actions else ""
        return f"The executed result for Subgoal {step.index} is {value}{prompts.STOP_QUESTION}"


class OriginalMathsProtocol(OriginalProtocol):
    """The original maths ``execute()``: Calculator, SetEquation, SolveEquation, Define (and a bare value).

    ``Count``, ``SolveInequality`` and ``Code`` are offered to the grounder but the original runs
    nothing for them: the task's results are lost, as there. Values are kept as the original
    keeps them: a solved unknown is the text after ``=`` of WolframAlpha's ``x = 5`` (so ``' 5'``
    in the iterative results table, stripped in the onetime one); ``SolveEquation`` of a formula
    without an unknown is WolframAlpha's plain value, kept whole (``R5 = SolveEquation(R2 + R4) = 110``
    in the original's in-context examples).
    """

    EXECUTED = ("", "Calculator", "SetEquation", "SolveEquation", "Define")

    def __init__(self, rounds: int | None = None, onetime: bool = False):
        super().__init__(rounds)
        self.onetime = onetime

    def execute(self, step: Step, toolbox: Toolbox, variables: dict[str, str], episode: Episode) -> None:
        book = episode.original
        if book["results"] is None:
            return  # the original runs nothing more for a task whose results are lost
        book["subgoals"].append((step.plan_reply or "").strip())
        failure = None
        for call in step.calls:
            values = None
            if book["results"] is not None:
                values = self._run(call, toolbox, variables, book["results"])
                if values is None:
                    book["results"] = None
                    failure = call.error or f"{call.action}: not executed"
                else:
                    for name, value in zip(call.outputs, values):
                        book["results"][name] = value.strip() if self.onetime else value
                    episode.prediction = call.result
            if not self.onetime:
                self.record_action(episode, call.action, values)
            elif failure is not None:
                break  # onetime stops at the first failure
        if self.onetime:
            book["actions"].append("; ".join(call.action for call in step.calls))
        if failure is not None:
            raise StepFailed(failure)

    def _values(self, call: ToolCall, results: dict[str, str]) -> list[str]:
        """The call's values as the original keeps them: the text after the first ``=`` of WolframAlpha's answer."""
        values = _split_values(call)
        if call.tool != "SolveEquation":
            return values
        try:
            query = original_substitute(call.args, results)  # what the original sends after ``Solve ``
        except KeyError:
            query = call.args
        if not _HAS_UNKNOWN.search(query):
            return values  # ``110`` stays
        return [f" {value}" for value in values]  # ``x = 5`` -> `` 5``

    def _run(self, call: ToolCall, toolbox: Toolbox, variables: dict[str, str],
             results: dict[str, str]) -> list[str] | None:
        if call.tool not in self.EXECUTED:
            call.error = f"the original execute() runs nothing for {call.tool or 'this action'!r}"
            return None
        if not call.outputs or not all(call.outputs):
            call.error = "no result variable"
            return None
        if call.tool in ("", "Define") or (call.tool == "SetEquation" and "," not in call.args):
            # kept as written, earlier results put in as the original puts them (no tool runs)
            try:
                value = original_substitute(call.args, results)
            except KeyError as missing:
                call.error = f"undefined variable {missing}"
                return None
            call.result = value
            for name in call.outputs:
                variables[name] = value.strip()
            return [value] * len(call.outputs)
        run_call(call, toolbox, variables)
        if call.error is not None:
            return None
        values = self._values(call, results)
        if len(values) < len(call.outputs):
            call.error = f"{len(values)} value(s) for {len(call.outputs)} result variable(s)"
            return None
        return values


_ORIGINAL_FUNCTION = re.compile(r"R[0-9]+\(")
# an equation or a letter: WolframAlpha's ``Solve`` answers ``x = ...`` (else the formula's plain value)
_HAS_UNKNOWN = re.compile(r"[=A-Za-z]")


def original_substitute(args: str, results: dict[str, str]) -> str:
    """Earlier results put into ``args`` as the released evaluation does, textually.

    With an operator in the arguments (and no ``R<n>(`` call) each value goes in parentheses, an
    equation as ``:(...):``; otherwise as it is. ``KeyError`` for a variable not in ``results``.
    """
    grouped = any(op in args for op in "*/+-^") and not _ORIGINAL_FUNCTION.search(args)
    for name in ORIGINAL_VARIABLE.findall(args):
        value = str(results[name])
        if grouped:
            value = f":({value}):" if "=" in value else f"({value})"
        args = args.replace(name, value)
    return args


def _split_values(call: ToolCall) -> list[str]:
    """A call's values, one per result variable (the toolbox joins several with ``", "``)."""
    if len(call.outputs) > 1:
        return [value.strip() for value in (call.result or "").split(", ")]
    return [call.result or ""]


def read_original_action(text: str) -> tuple[list[str], str, str]:
    """``R1, R2 = Tool(args)`` read as the released evaluation reads it: (variables, tool, arguments).

    Variables are what precedes the first `` = `` split on ``", "``; the tool what lies between it
    and the first ``(``; the arguments run to the ``)`` that closes that ``(``. A piece without
    `` = `` gives no variables; one without a call (``Output = R9 = 40``) gives tool ``""`` and the
    value between the first and the last `` = ``.
    """
    equals = text.find(" = ")
    if equals < 0:
        return [], text.partition("(")[0].strip(), _call_args(text, text.find("("))
    outputs = text[:equals].split(", ")
    rest = text[equals + 3:]
    paren = rest.find("(")
    if paren < 0 or (" = " in rest and rest.find(" = ") < paren):
        last = rest.rfind(" = ")
        return outputs, "", (rest[:last] if last >= 0 else rest).strip()
    return outputs, rest[:paren].strip(), _call_args(rest, paren)


def _call_args(text: str, paren: int) -> str:
    if paren < 0:
        return ""
    close = matching_paren(text, paren)
    if close >= 0:
        return text[paren + 1:close]
    return text[paren + 1:text.rfind(")")] if ")" in text[paren:] else text[paren + 1:]


# --------------------------------------------------------------------------- running calls


def pending_call(action: Action) -> ToolCall:
    return ToolCall(action=action.render(with_result=False), tool=action.tool, args=action.args,
                    outputs=list(action.outputs))


def run_call(call: ToolCall, toolbox: Toolbox, variables: dict[str, str], *, tool: str | None = None) -> None:
    """Execute one call, filling ``call.result`` or ``call.error`` (a tool bug is recorded, not raised)."""
    import time

    action = Action(tool=tool or call.tool, args=call.args, outputs=tuple(call.outputs))
    started = time.perf_counter()
    try:
        call.result = toolbox.execute(action, variables)
    except ToolError as error:
        call.error = str(error)
    except Exception as error:  # noqa: BLE001 - per-task boundary: a tool bug is recorded, the run goes on
        call.error = f"{type(error).__name__}: {error}"
    call.seconds = time.perf_counter() - started


def original_maths_protocol(rounds: int | None, formulation: str) -> OriginalMathsProtocol:
    """The maths domain's released protocol (``lumos.domains``; benchmarks may declare their own)."""
    return OriginalMathsProtocol(rounds, onetime=formulation == "onetime")


def protocol_for(style: str, *, rounds: int | None = None, domain: str = "maths",
                 formulation: str = "iterative") -> Protocol:
    """The protocol a ``--prompt_style`` names: ours (``tulu``), or the domain's original one."""
    if style == "tulu":
        return Protocol()
    if style == "original":
        return lumos_domain(domain).make_original_protocol(rounds, formulation)
    raise ValueError(f"unknown prompt style {style!r}; choose 'tulu' or 'original'")
