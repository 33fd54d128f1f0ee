"""Verification of converted maths annotations by execution.

An annotation passes when every action, executed by the maths tools, gives the result the
annotation claims, and the final claimed result equals the gold answer. A failure carries a
short reason (for counting) and a detail naming the action.
"""

from __future__ import annotations

from dataclasses import dataclass

from lumos.format import Plan
from lumos.tools.base import ToolError, Toolbox
from lumos.tools.engines.numbers import parse_number, same_number

# Failure reasons, in the order they are checked.
MISSING_RESULT = "missing_result"
TOOL_ERROR = "tool_error"
RESULT_MISMATCH = "result_mismatch"
ANSWER_MISMATCH = "answer_mismatch"


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str | None = None
    detail: str = ""
    final_result: str | None = None


def _results_agree(computed: str, claimed: str) -> bool:
    if same_number(computed, claimed):
        return True
    # Symbolic results (equations, expressions) are compared as text without spaces.
    return computed.replace(" ", "") == claimed.replace(" ", "")


def _answer_value(claimed: str) -> str:
    """A final claim such as ``25%`` answers a question asked in percent: compare 25."""
    claimed = claimed.strip()
    return claimed[:-1] if claimed.endswith("%") else claimed


def verify_plan(plan: Plan, gold_answer: str | None, toolbox: Toolbox) -> Verdict:
    """Execute every action of ``plan`` and check each claimed result and the final answer."""
    variables: dict[str, str] = {}
    computed = None
    for k, subgoal in enumerate(plan.subgoals, start=1):
        for j, action in enumerate(subgoal.actions, start=1):
            where = f"action {k}-{j} {action.render()!r}"
            if action.result is None:
                return Verdict(False, MISSING_RESULT, f"{where} claims no result")
            try:
                computed = toolbox.execute(action, variables)
            except ToolError as error:
                return Verdict(False, TOOL_ERROR, f"{where}: {error}")
            if not _results_agree(computed, action.result):
                return Verdict(False, RESULT_MISMATCH, f"{where}: computed {computed!r}")
    final_claim = plan.subgoals[-1].actions[-1].result or ""
    if gold_answer is not None:
        gold = gold_answer.replace(",", "").strip()
        if not same_number(_answer_value(final_claim), gold) and parse_number(gold) is not None:
            return Verdict(False, ANSWER_MISMATCH, f"final result {final_claim!r}, gold answer {gold!r}",
                           final_result=computed)
        if parse_number(gold) is None and final_claim.strip().lower() != gold.lower():
            return Verdict(False, ANSWER_MISMATCH, f"final result {final_claim!r}, gold answer {gold!r}",
                           final_result=computed)
    return Verdict(True, final_result=computed)
