"""Mind2Web's gold oracle (``--oracle gold``): each step grounded with its gold action, as a ceiling.

The grounding is executed and scored as the step-level protocol does
(:mod:`eval.mind2web.protocol`): on the ranker's top-k pool, the element chosen by the ranker for
``task is: <QUERY>\\nPrevious actions: ``. With the gold element's own text as the query, what is
left of the step's success is what the pool and the ranker lose.
"""

from __future__ import annotations

from typing import Any

from eval.mind2web.data import Step, Task
from eval.mind2web.metrics import score_step
from eval.mind2web.protocol import candidate_pool, choose_element, element_query
from lumos.tools.web import Ranker, WebActionError, WebPage, parse_web_actions, parse_web_call, render_web_action

__all__ = ["candidate_pool", "gold_grounding", "score_grounding"]


def score_grounding(grounding: str, task: Task, step: Step, pool: WebPage, ranker: Ranker) -> dict[str, Any]:
    """Execute the first web action of a grounding answer on the pool and score it; an answer
    that does not parse scores as a miss with its error kept."""
    gold_in_pool = any(element.id in step.gold_ids for element in pool.elements)
    try:
        call = parse_web_call(parse_web_actions(grounding)[0])
    except WebActionError as error:
        score = score_step(None, "", "", step.gold_ids, step.op, step.value)
        return {"error": str(error), "element_id": None, "element_correct": False, "op_f1": score.op_f1,
                "step_success": False, "gold_in_pool": gold_in_pool}
    query = call.query if call.tool != "SELECT" else f"{call.query} {call.text}"
    element = choose_element(ranker, element_query(query), pool.elements)
    score = score_step(element.id, call.tool, call.text or "", step.gold_ids, step.op, step.value)
    return {"element_id": element.id, "element_correct": score.element_correct, "op_f1": score.op_f1,
            "step_success": score.success, "gold_in_pool": gold_in_pool, "op": call.tool,
            "value": call.text or "", "element_text": element.text}


def gold_grounding(step: Step, index: int = 1) -> str:
    """The gold action in the released format, its query the gold element's ``target:`` text."""
    gold = next((element for element in step.candidates if element.id in step.gold_ids), None)
    if gold is None:
        raise WebActionError("the step has no gold element among its candidates")
    query = " ".join(gold.text.rpartition("target:")[2].split()) or gold.tag or "element"
    page = "Env" if index == 1 else f"R{index - 1}"
    text = (" ".join(step.value.split()) or None) if step.op in ("TYPE", "SELECT") else None
    tool = step.op if text or step.op == "CLICK" else "CLICK"
    return render_web_action(tool, page, query.replace(", TEXT:", " TEXT:"), text, f"R{index}")
