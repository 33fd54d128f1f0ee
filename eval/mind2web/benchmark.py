"""Mind2Web through the shared runner: each task is one episode of the Lumos agent loop.

The task's environment is its recorded action trace, teacher-forced: the page an action sees is
the candidate pool of the trace's next step (the ranker's top-k over ALL the step's candidates,
so the gold element may be missing), and every executed web action consumes one step, right or
wrong, as MindAct's step-level evaluation does. The episode ends when the trace is used up, the
planner stops, or the loop fails; steps never reached score as misses. Scores: per task, the
mean element accuracy, operation F1 and step success over its steps, and task success; per
split, MindAct's aggregates (:func:`eval.mind2web.metrics.aggregate`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from eval.mind2web.adapter import candidate_pool
from eval.mind2web.data import SPLITS, Task, load_split, load_step_instances
from eval.mind2web.metrics import StepScore, aggregate, score_step
from eval.runner import Benchmark, EvalConfig, Example
from lumos.tools.web import Ranker, WebActionError, WebActionResult, WebPage, web_toolbox

STEP_LEVEL_SPLIT = "step_level"  # a file of step-level instances, each a one-step task


@dataclass
class TraceEnvironment:
    """A task's action trace as a web environment: one page per step, advanced by every action."""

    task: Task
    ranker: Ranker
    top_k: int
    results: list[WebActionResult] = field(default_factory=list)
    pools: list[WebPage] = field(default_factory=list)

    @property
    def position(self) -> int:
        return len(self.results)

    def page(self) -> WebPage:
        if self.position >= len(self.task.steps):
            raise WebActionError(f"task {self.task.id} has {len(self.task.steps)} step(s), all acted on already")
        while len(self.pools) <= self.position:
            step = self.task.steps[len(self.pools)]
            self.pools.append(candidate_pool(self.task, step, self.ranker, self.top_k))
        return self.pools[self.position]

    def acted(self, result: WebActionResult) -> None:
        self.results.append(result)

    @property
    def episode_end(self) -> str | None:
        return "finished" if self.position >= len(self.task.steps) else None


def gold_answer(task: Task) -> list[dict[str, Any]]:
    """What a prediction record keeps of the gold trace (JSON)."""
    return [{"op": step.op, "value": step.value, "gold_ids": sorted(step.gold_ids)} for step in task.steps]


def score_trace(task: Task, environment: TraceEnvironment | None) -> list[dict[str, Any]]:
    """One record per gold step: the element acted on (None when never reached) and its scores."""
    results = environment.results if environment is not None else []
    records = []
    for index, step in enumerate(task.steps):
        result = results[index] if index < len(results) else None
        if result is None:
            score = score_step(None, "", "", step.gold_ids, step.op, step.value)
            records.append({"element_id": None, "op": None, "value": None, "element_correct": False,
                            "op_f1": score.op_f1, "step_success": False, "gold_in_pool": None})
            continue
        score = score_step(result.element.id, result.op, result.value, step.gold_ids, step.op, step.value)
        pool = environment.pools[index]
        records.append({"element_id": result.element.id, "op": result.op, "value": result.value,
                        "element_text": result.element.text, "element_correct": score.element_correct,
                        "op_f1": score.op_f1, "step_success": score.success,
                        "gold_in_pool": any(element.id in step.gold_ids for element in pool.elements)})
    return records


def task_scores(step_records: Sequence[dict[str, Any]]) -> dict[str, float]:
    steps = [StepScore(r["element_correct"], r["op_f1"]) for r in step_records]
    if not steps:
        return {"element_acc": 0.0, "op_f1": 0.0, "step_sr": 0.0, "task_sr": 0.0}
    return {"element_acc": sum(s.element_correct for s in steps) / len(steps),
            "op_f1": sum(s.op_f1 for s in steps) / len(steps),
            "step_sr": sum(s.success for s in steps) / len(steps),
            "task_sr": float(all(s.success for s in steps))}


def split_metrics(records: list[dict[str, Any]]) -> dict[str, Any]:
    """MindAct's aggregates per split (macro over tasks, micro over steps)."""
    by_split: dict[str, list[list[StepScore]]] = {}
    for record in records:
        steps = [StepScore(r["element_correct"], r["op_f1"]) for r in record["step_scores"]]
        by_split.setdefault(record["split"], []).append(steps)
    return {"splits": {split: aggregate(tasks) for split, tasks in sorted(by_split.items())}}


def load_tasks(path: Path, splits: Sequence[str], per_split: int | None) -> list[Task]:
    """A folder of official splits (those of ``splits`` present), or one step-level instance file."""
    if path.is_file():
        tasks = [Task(t.id, t.task, t.website, t.steps, STEP_LEVEL_SPLIT, t.extra) for t in load_step_instances(path)]
        return tasks[:per_split] if per_split else tasks
    present = [split for split in splits if (path / split).is_dir()]
    if not present:
        raise FileNotFoundError(f"{path}: none of the split folders {', '.join(splits)} is there")
    tasks = []
    for split in present:
        loaded = load_split(path, split)
        tasks += loaded[:per_split] if per_split else loaded
    return tasks


def make_benchmark(ranker: Ranker, top_k: int, splits: Sequence[str] = SPLITS,
                   per_split: int | None = None) -> Benchmark:
    """The Mind2Web benchmark for the shared runner; ``per_split`` caps the tasks of each split."""
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}")
    tasks: dict[str, Task] = {}

    def load(path: Path) -> list[Example]:
        examples = []
        for task in load_tasks(path, splits, per_split):
            example_id = f"{task.split}/{task.id}"
            tasks[example_id] = task
            examples.append(Example(id=example_id, question=task.task, answer=gold_answer(task)))
        return examples

    def task_toolbox(example: Example, config: EvalConfig):
        return web_toolbox(TraceEnvironment(tasks[example.id], ranker, top_k), ranker)

    def score_episode(episode, example: Example, toolbox) -> dict[str, Any]:
        environment = getattr(toolbox, "environment", None)
        steps = score_trace(tasks[example.id], environment)
        return {"split": tasks[example.id].split, "step_scores": steps, "scores": task_scores(steps)}

    return Benchmark(name="mind2web", domain="web_agent", data_file="", load=load,
                     score=lambda prediction, gold: {}, task_toolbox=task_toolbox, score_episode=score_episode,
                     summarise=split_metrics)
