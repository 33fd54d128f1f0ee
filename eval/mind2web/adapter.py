"""Mind2Web as the agent loop sees it: per step, a candidate pool and the scoring of a grounded action.

Faithful to the benchmark: the pool is the candidate ranker's top-k over ALL candidates of the
page, built from the task and the previous actions only — the gold element may be missing from
it, and then no action can hit it. Steps are teacher-forced: each step is judged on the page
and history the annotator saw.
"""

from __future__ import annotations

from typing import Any

from eval.mind2web.data import Step, Task
from eval.mind2web.metrics import StepScore, score_step
from lumos.format import Action, FormatError, parse_actions
from lumos.tools.web import Ranker, WebActionError, WebPage, execute_web_action, top_k

HISTORY_WINDOW = 3


def candidate_query(task: Task, step: Step) -> str:
    """MindAct's candidate-generation query: the task and the last three actions."""
    previous = "; ".join(step.previous_actions[-HISTORY_WINDOW:])
    return f"task is: {task.task}\nPrevious actions: {previous}"


def candidate_pool(task: Task, step: Step, ranker: Ranker, k: int) -> WebPage:
    return WebPage(top_k(ranker, candidate_query(task, step), list(step.candidates), k))


def score_grounding(grounding: str, task: Task, step: Step, pool: WebPage, ranker: Ranker) -> dict[str, Any]:
    """Execute the last web action of a grounding answer on the pool and score it.

    An answer that does not parse, or names no web action, scores as a miss with its error kept.
    """
    try:
        actions = [action for action in parse_actions(grounding) if action.tool in ("CLICK", "TYPE", "SELECT")]
        if not actions:
            raise WebActionError(f"no CLICK/TYPE/SELECT action in {grounding!r}")
        result = execute_web_action(actions[-1], pool, ranker)
    except (FormatError, WebActionError) as error:
        score = score_step(None, "", "", step.gold_ids, step.op, step.value)
        return {"error": str(error), **_score_fields(score, None, step, pool)}
    score = score_step(result.element.id, result.op, result.value, step.gold_ids, step.op, step.value)
    record = _score_fields(score, result.element.id, step, pool)
    record.update(op=result.op, value=result.value, element_text=result.element.text)
    return record


def _score_fields(score: StepScore, element_id: str | None, step: Step, pool: WebPage) -> dict[str, Any]:
    return {"element_id": element_id, "element_correct": score.element_correct, "op_f1": score.op_f1,
            "step_success": score.success,
            "gold_in_pool": any(element.id in step.gold_ids for element in pool.elements)}


def gold_grounding(step: Step) -> str:
    """The gold action as a grounding answer, its Query being the gold element's own text."""
    gold = next((element for element in step.candidates if element.id in step.gold_ids), None)
    if gold is None:
        raise WebActionError("the step has no gold element among its candidates")
    query = gold.text.replace('"', "'")
    if step.op in ("TYPE", "SELECT"):
        return Action(step.op, f'Env, "{query}", "{step.value.replace(chr(34), chr(39))}"').render()
    return Action("CLICK", f'Env, "{query}"').render()
