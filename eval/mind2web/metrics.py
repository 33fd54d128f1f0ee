"""MindAct's step-level metrics for Mind2Web.

- element accuracy: the chosen element is one of the gold (positive) elements;
- operation F1: token-set F1 between ``"op value"`` predicted and gold;
- step success: element correct and operation F1 = 1;
- task success: every step of the task succeeds.
Element accuracy, operation F1 and step success are averaged per task, then over tasks (macro,
as MindAct reports); micro averages over all steps are given beside them.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import mean
from typing import Sequence


def operation_string(op: str, value: str) -> str:
    return f"{op} {value}".strip()


def token_f1(predicted: str, gold: str) -> float:
    predicted_tokens, gold_tokens = set(predicted.strip().split()), set(gold.strip().split())
    if not predicted_tokens and not gold_tokens:
        return 1.0
    if not predicted_tokens or not gold_tokens:
        return 0.0
    common = len(predicted_tokens & gold_tokens)
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted_tokens), common / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


@dataclass(frozen=True)
class StepScore:
    element_correct: bool
    op_f1: float

    @property
    def success(self) -> bool:
        return self.element_correct and self.op_f1 == 1.0


def score_step(predicted_id: str | None, predicted_op: str, predicted_value: str,
               gold_ids: frozenset[str] | set[str], gold_op: str, gold_value: str) -> StepScore:
    """``predicted_id`` None (no element chosen, e.g. a parse error) scores as a miss."""
    element_correct = predicted_id is not None and str(predicted_id) in gold_ids
    f1 = token_f1(operation_string(predicted_op, predicted_value), operation_string(gold_op, gold_value))
    return StepScore(element_correct, f1)


def aggregate(tasks: Sequence[Sequence[StepScore]]) -> dict[str, float]:
    tasks = [list(steps) for steps in tasks if steps]
    if not tasks:
        return {"num_tasks": 0, "num_steps": 0}
    steps = [step for task in tasks for step in task]
    return {
        "num_tasks": len(tasks),
        "num_steps": len(steps),
        "element_acc": mean(mean(s.element_correct for s in task) for task in tasks),
        "op_f1": mean(mean(s.op_f1 for s in task) for task in tasks),
        "step_sr": mean(mean(s.success for s in task) for task in tasks),
        "task_sr": mean(all(s.success for s in task) for task in tasks),
        "micro_element_acc": mean(s.element_correct for s in steps),
        "micro_op_f1": mean(s.op_f1 for s in steps),
        "micro_step_sr": mean(s.success for s in steps),
    }
