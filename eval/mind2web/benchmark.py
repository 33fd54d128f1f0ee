"""Mind2Web through the shared runner, one task per example, under one of two protocols.

- ``step_level`` (default): MindAct's step-level protocol (:mod:`eval.mind2web.protocol`): every
  gold step is judged on its own candidates with the gold previous steps as the planner's history;
- ``free_running``: the shared agent loop runs freely over the task's recorded trace
  (:class:`TraceEnvironment`): every executed web action consumes the trace's next step, right or
  wrong; the episode ends when the trace is used up, the planner stops or the loop fails, and
  steps never reached score as misses.

Scores: per task, the mean element accuracy, operation F1 and step success over its steps, and
task success (every step succeeded); per split, MindAct's aggregates
(:func:`eval.mind2web.metrics.aggregate`); under ``--scoring original`` the original's figure too.

    python -m eval.mind2web.run_eval --data_dir data/eval/mind2web/ --max_num_examples 10 \\
        --save_dir results/mind2web --model_name_or_path MODEL_DIR --eval_batch_size 16 --formulation lumos_iterative
    python -m eval.mind2web.run_eval --data_dir ../shared/data/mind2web/mind2web_train_n100_actionlevel.skillgen.json \\
        --save_dir results/m2w_steps --planner URL --grounder URL
    python -m eval.mind2web.run_eval --data_dir data/eval/mind2web/ --save_dir results/m2w_gold --oracle gold

The runner's flags (``eval/runner.py``) apply, and Mind2Web's own (:func:`flags`, in ``--help``).
``--data_dir`` is a folder of split folders, a task-list file or a step-level file
(``eval/mind2web/data.py``); another shape is refused with one line naming these.
``--max_num_examples`` counts tasks per split. metrics.json holds the macro scores over all tasks
and MindAct's aggregates per split (``splits``).

``--oracle gold`` grounds each step with the gold action (Query = the gold element's text,
:mod:`eval.mind2web.adapter`): the ceiling the candidate pool (top ``--top_k`` of the ranker) and
the ranker leave. ``--ranker_model`` takes a sentence-transformers cross-encoder (e.g.
osunlp/MindAct_CandidateGeneration_deberta-v3-base); BM25 otherwise. The model is checked when the
flags are read and loaded once before the first task: a model that cannot be used ends the run in one
line before anything is written.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from eval.mind2web.data import SPLITS, Task, load_tasks
from eval.mind2web.metrics import StepScore, aggregate, score_step
from eval.mind2web.protocol import StepLevelProtocol, candidate_pool
from eval.runner import (GOLD_ORACLE, Benchmark, EvalConfig, EvalSetupError, Example, check_ranker_spec, load_ranker,
                         runs_tools)
from lumos.tools.web import (RANKER_KINDS, Ranker, WebActionError, WebActionResult, WebPage, make_ranker,
                             web_toolbox)

PROTOCOLS = ("step_level", "free_running")
DEFAULT_MAX_STEPS = 40  # subgoals (free_running); the trace's end normally ends an episode first


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
    """MindAct's aggregates per split (macro over tasks, micro over steps); the original's figure
    (correct / executed actions over the run) where the records carry its bookkeeping."""
    by_split: dict[str, list[list[StepScore]]] = {}
    for record in records:
        steps = [StepScore(r["element_correct"], r["op_f1"]) for r in record.get("step_scores") or []]
        by_split.setdefault(record.get("split", ""), []).append(steps)
    metrics: dict[str, Any] = {"splits": {split: aggregate(tasks) for split, tasks in sorted(by_split.items())}}
    actions = [entry for record in records for step in record.get("step_scores") or []
               for entry in step.get("original") or [] if entry.get("executed")]
    if actions:
        metrics["original_step_success"] = round(sum(a["step_success"] for a in actions) / len(actions), 6)
        metrics["original_executed_actions"] = len(actions)
    return metrics


def original_scores(step_records: Sequence[dict[str, Any]]) -> dict[str, float]:
    """The original's count for one task: executed actions and the correct ones among them."""
    actions = [entry for step in step_records for entry in step.get("original") or [] if entry.get("executed")]
    return {"corr_em": float(sum(entry["step_success"] for entry in actions)), "tot_tags": float(len(actions))}


def make_benchmark(ranker: Ranker, top_k: int, splits: Sequence[str] = SPLITS, per_split: int | None = None,
                   protocol: str = "step_level", phrase_seed: int = 0) -> Benchmark:
    """The Mind2Web benchmark for the shared runner; ``per_split`` caps the tasks of each split."""
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}")
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    tasks: dict[str, Task] = {}
    step_records: dict[str, list[dict[str, Any]]] = {}

    def load(path: Path) -> list[Example]:
        examples = []
        for task in load_tasks(path, splits, per_split):
            example_id = f"{task.split}/{task.id}"
            tasks[example_id] = task
            examples.append(Example(id=example_id, question=task.task, answer=gold_answer(task)))
        return examples

    def step_level(examples: list[Example], config: EvalConfig, modules) -> list:
        from eval.runner import module_spec

        runner = StepLevelProtocol(modules.generator(module_spec(config, "web_agent", "plan")),
                                   modules.generator(module_spec(config, "web_agent", "ground")), ranker,
                                   style=config.prompt_style, top_k=top_k, max_new_tokens=config.max_new_tokens,
                                   phrase_seed=phrase_seed)
        runs = runner.run([(example.id, tasks[example.id]) for example in examples])
        for run in runs:
            step_records[run.example_id] = run.records
            if run.sentences:
                run.episode.original = {"sentences": run.sentences}
        return [run.episode for run in runs]

    def gold_loop(examples: list[Example], config: EvalConfig, modules) -> list:
        """``--oracle gold``: every step grounded with its gold action on the ranker's pool."""
        from eval.mind2web.adapter import gold_grounding, score_grounding
        from lumos.episode import Episode

        episodes = []
        for example in examples:
            task = tasks[example.id]
            records = []
            for index, step in enumerate(task.steps):
                pool = candidate_pool(task, step, ranker, top_k)
                records.append({"step": index,
                                **score_grounding(gold_grounding(step, index + 1), task, step, pool, ranker)})
            step_records[example.id] = records
            episode = Episode(id=example.id, task=example.question, formulation="oracle")
            episode.end("finished")
            episodes.append(episode)
        return episodes

    def task_toolbox(example: Example, config: EvalConfig):
        return web_toolbox(TraceEnvironment(tasks[example.id], ranker, top_k), ranker)

    def score_episode(episode, example: Example, toolbox) -> dict[str, Any]:
        task = tasks[example.id]
        if protocol == "step_level" or example.id in step_records:  # (--oracle gold: whatever the protocol)
            records = step_records.pop(example.id, [])
            judged = {record["step"] for record in records}
            for index in range(len(task.steps)):  # steps never judged (a failed episode) are misses
                if index not in judged:
                    records.append({"step": index, "element_id": None, "element_correct": False,
                                    "op_f1": score_step(None, "", "", frozenset(), task.steps[index].op,
                                                        task.steps[index].value).op_f1,
                                    "step_success": False, "error": "not judged"})
            steps = sorted(records, key=lambda record: record["step"])
        else:
            steps = score_trace(task, getattr(toolbox, "environment", None))
        return {"split": task.split, "step_scores": steps, "scores": task_scores(steps)}

    scored: dict[str, list[dict[str, Any]]] = {}  # example id -> its step records, until score_original reads them

    def score_and_keep(episode, example: Example, toolbox) -> dict[str, Any]:
        record = score_episode(episode, example, toolbox)
        scored[example.id] = record["step_scores"]
        return record

    def score_original(episode, example: Example, formulation: str) -> dict[str, float]:
        return original_scores(scored.pop(example.id, []))

    free = protocol == "free_running"
    return Benchmark(name="mind2web", domain="web_agent", data_file="", load=load,
                     score=lambda prediction, gold: {}, task_toolbox=task_toolbox if free else None,
                     score_episode=score_and_keep, summarise=split_metrics,
                     loop=None if free else step_level, score_original=None if free else score_original,
                     oracle_loop=gold_loop, flags=flags, configure=configure)


def _at_least_one(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def flags() -> argparse.ArgumentParser:
    """Mind2Web's own flags (in ``config.extra``; ``--max_num_examples`` counts tasks per split)."""
    parser = argparse.ArgumentParser(prog="python -m eval.mind2web.run_eval", add_help=False)
    group = parser.add_argument_group("Mind2Web")
    group.add_argument("--max_num_examples", type=_at_least_one, default=None,
                       help="evaluate only the first N tasks of each split: N per split of --splits, not N in "
                            "all (a file is one split); None: every task")
    group.add_argument("--max_steps", type=int, default=DEFAULT_MAX_STEPS,
                       help="subgoals per episode under --protocol free_running (the trace's end normally "
                            "ends an episode first)")
    group.add_argument("--splits", nargs="+", default=list(SPLITS), choices=SPLITS,
                       help="the official splits to read from a folder of split folders")
    group.add_argument("--top_k", type=_at_least_one, default=50,
                       help="candidate pool: the ranker's top k of all candidates")
    group.add_argument("--ranker_model", type=str, default=None,
                       help="sentence-transformers model (e.g. osunlp/MindAct_CandidateGeneration_deberta-v3-base); "
                            "None: BM25")
    group.add_argument("--ranker_kind", type=str, default="cross_encoder", choices=RANKER_KINDS)
    group.add_argument("--protocol", type=str, default="step_level", choices=PROTOCOLS,
                       help="step_level: MindAct's (gold history, each step on its own candidates); "
                            "free_running: the agent loop over the task's trace")
    group.add_argument("--phrase_seed", type=int, default=0,
                       help="seed of the original's random verbs in gold-step sentences (--prompt_style original)")
    return parser


def configure(config: EvalConfig) -> Benchmark:
    """The benchmark for these flags: its ranker, pool size, splits, per-split cap and protocol."""
    extra = config.extra
    extra["max_num_examples"] = config.max_num_examples  # (the per-split cap, not in the run's settings)
    per_split = config.max_num_examples
    config.max_num_examples = None  # the loader caps each split; the runner must not cap the run as a whole
    if config.oracle is not None and config.oracle != GOLD_ORACLE:
        raise EvalSetupError(f"--oracle {config.oracle}: Mind2Web executes its own gold actions: give --oracle "
                             f"{GOLD_ORACLE}")
    if config.oracle is None and config.scoring == "original" and (
            config.prompt_style != "original" or extra["protocol"] != "step_level"):
        raise EvalSetupError("--scoring original counts what the released evaluation executed: it needs "
                             "--prompt_style original and --protocol step_level")
    model, kind = extra["ranker_model"], extra["ranker_kind"]
    # the ranker builds every step's candidate pool: it runs with the modules and under --oracle gold
    used = model is not None and kind != "bm25" and runs_tools(config)  # (another --oracle was refused above)
    if used:  # a missing or wrong model: one line now, not a failure at the first step
        check_ranker_spec(model, "--ranker_model", kind)
    ranker = make_ranker(model, kind)
    benchmark = make_benchmark(ranker, extra["top_k"], extra["splits"], per_split, extra["protocol"],
                               extra["phrase_seed"])

    def start(config: EvalConfig) -> None:
        """The ranker loaded once before the first task: a model that fails to load ends the run here."""
        load_ranker(ranker, "--ranker_model", model)

    return dataclasses.replace(benchmark, start=start) if used else benchmark


BENCHMARK = make_benchmark(None, 50)  # its parts depend on its flags: ``configure`` builds the one that runs
