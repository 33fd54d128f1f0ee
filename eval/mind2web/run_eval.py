"""Mind2Web evaluation (MindAct's step-level protocol, MindAct metrics per split).

    python -m eval.mind2web.run_eval --data_dir data/eval/mind2web/ --max_num_examples 10 \\
        --save_dir results/mind2web --model_name_or_path MODEL_DIR --eval_batch_size 16 --formulation lumos_iterative
    python -m eval.mind2web.run_eval --data_dir ../shared/data/mind2web/mind2web_train_n100_actionlevel.skillgen.json \\
        --save_dir results/m2w_steps --planner URL --grounder URL
    python -m eval.mind2web.run_eval --data_dir data/eval/mind2web/ --save_dir results/m2w_gold --formulation gold

``lumos_iterative`` runs through the shared runner (``eval/runner.py``: its flags
``--planner``/``--grounder``/``--prompt_style``/``--scoring``/... apply), one example per task.
``--protocol step_level`` (default) judges every gold step on its own candidates with the gold
previous steps as the planner's history (``eval/mind2web/protocol.py``; ``--prompt_style original``
replays the released evaluation, ``--scoring original`` adds its figure); ``--protocol free_running``
lets the agent loop run over the task's trace instead. ``--data_dir`` is a folder of split folders,
a task-list file or a step-level file (``eval/mind2web/data.py``); another shape is refused with one
line naming these. ``--max_num_examples`` counts tasks per split. metrics.json holds the macro
scores over all tasks and MindAct's aggregates per split.

``gold`` grounds each step with the gold action (Query = the gold element's text): the ceiling
the candidate pool (top ``--top_k`` of the ranker) and the ranker leave. ``--ranker_model`` takes a
sentence-transformers cross-encoder (e.g. osunlp/MindAct_CandidateGeneration_deberta-v3-base);
BM25 otherwise. Writes predictions.jsonl (one step per line, resumable), metrics.json, run.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from eval.mind2web.adapter import candidate_pool, gold_grounding, score_grounding
from eval.mind2web.data import SPLITS, Mind2WebDataError, load_tasks
from eval.mind2web.metrics import StepScore, aggregate
from lumos.jsonl import JsonlStore, write_run_info
from lumos.tools.web import RANKER_KINDS, make_ranker

PROTOCOLS = ("step_level", "free_running")

FORMULATIONS = ("lumos_iterative", "gold")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data_dir", type=str, required=True,
                        help="folder of test_task/, test_website/, test_domain/, a task-list or a step-level file")
    parser.add_argument("--max_num_examples", type=int, default=None, help="tasks per split")
    parser.add_argument("--save_dir", type=str, required=True)
    parser.add_argument("--overwrite", action="store_true", help="start afresh in --save_dir")
    parser.add_argument("--model_name_or_path", type=str, default=None)
    parser.add_argument("--eval_batch_size", type=int, default=1)
    parser.add_argument("--formulation", type=str, default="lumos_iterative", choices=FORMULATIONS)
    parser.add_argument("--load_in_8bit", action="store_true")
    parser.add_argument("--gptq", action="store_true")
    parser.add_argument("--splits", nargs="+", default=list(SPLITS), choices=SPLITS)
    parser.add_argument("--top_k", type=int, default=50, help="candidate pool size")
    parser.add_argument("--ranker_model", type=str, default=None)
    parser.add_argument("--ranker_kind", type=str, default="cross_encoder", choices=RANKER_KINDS)
    parser.add_argument("--protocol", type=str, default="step_level", choices=PROTOCOLS)
    parser.add_argument("--phrase_seed", type=int, default=0)
    return parser.parse_args(argv)


DEFAULT_MAX_STEPS = 40  # subgoals; the trace's end normally ends an episode first


def _own_flags() -> argparse.ArgumentParser:
    """Mind2Web's own flags (they land in ``config.extra``; ``--max_num_examples`` counts tasks per split)."""
    parser = argparse.ArgumentParser(prog="python -m eval.mind2web.run_eval", add_help=False)
    group = parser.add_argument_group("Mind2Web")
    group.add_argument("--max_num_examples", type=int, default=None, help="tasks per split")
    group.add_argument("--splits", nargs="+", default=list(SPLITS), choices=SPLITS,
                       help="the official splits to read from a folder of split folders")
    group.add_argument("--top_k", type=int, default=50, help="candidate pool: the ranker's top k of all candidates")
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


def _benchmark_options(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """Mind2Web's own flags, checked; ``argv`` with the free-running loop's default step limit added."""
    parser = _own_flags()
    options, _ = parser.parse_known_args(argv)
    if options.top_k < 1:
        parser.error("--top_k must be at least 1")
    if options.max_num_examples is not None and options.max_num_examples < 1:
        parser.error("--max_num_examples must be at least 1")
    if not any(arg == "--max_steps" or arg.startswith("--max_steps=") for arg in argv):
        argv = [*argv, "--max_steps", str(DEFAULT_MAX_STEPS)]
    return options, argv


def run_lumos(argv: list[str]) -> dict:
    """Every task through the shared runner, under the step-level protocol or the free-running loop."""
    from eval.mind2web.benchmark import make_benchmark
    from eval.runner import EvalSetupError, evaluate, parse_config

    options, argv = _benchmark_options(argv)
    benchmark = make_benchmark(make_ranker(options.ranker_model, options.ranker_kind), options.top_k,
                               options.splits, options.max_num_examples, options.protocol, options.phrase_seed)
    config = parse_config(benchmark, argv, parents=[_own_flags()])
    if config.scoring == "original" and (config.prompt_style != "original" or options.protocol != "step_level"):
        raise EvalSetupError("--scoring original counts what the released evaluation executed: it needs "
                             "--prompt_style original and --protocol step_level")
    config.extra = {**config.extra, **vars(options)}
    return evaluate(config, benchmark)


def main(argv: list[str] | None = None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    chooser = argparse.ArgumentParser(add_help=False)
    chooser.add_argument("--formulation", default="lumos_iterative")
    from eval.runner import EvalSetupError

    try:
        if chooser.parse_known_args(argv)[0].formulation != "gold":
            return run_lumos(argv)
        return run_gold(argv)
    except (Mind2WebDataError, EvalSetupError) as error:  # one line: what is wrong and what is accepted
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


def run_gold(argv: list[str]) -> dict:
    """Every step grounded with its gold action on the ranker's pool: the ceiling the pool and ranker leave."""
    from eval.runner import check_save_dir, fingerprint

    args = parse_args(argv)
    try:  # the data and the save_dir are checked before anything is written
        loaded = load_tasks(args.data_dir, args.splits, args.max_num_examples)
    except Mind2WebDataError as error:
        raise Mind2WebDataError(f"mind2web data {args.data_dir}: {error}") from None
    data = Path(args.data_dir)
    read = [data / split for split in args.splits if (data / split).is_dir()] if data.is_dir() else [data]
    settings = {"benchmark": "mind2web", "formulation": "gold",
                "data": {path.name: fingerprint(path) for path in read},
                "splits": args.splits, "max_num_examples": args.max_num_examples, "top_k": args.top_k,
                "ranker_model": args.ranker_model, "ranker_kind": args.ranker_kind}
    check_save_dir(args, settings)
    save_dir = Path(args.save_dir)
    if args.overwrite:
        for name in ("predictions.jsonl", "metrics.json"):
            (save_dir / name).unlink(missing_ok=True)
    write_run_info(save_dir, {**vars(args), "settings": settings}, packages=("bm25s", "torch", "transformers"))
    ranker = make_ranker(args.ranker_model, args.ranker_kind)
    results = {}
    with JsonlStore(save_dir / "predictions.jsonl") as store:
        for split in dict.fromkeys(task.split for task in loaded):
            tasks = [task for task in loaded if task.split == split]
            for task in tasks:
                for index, step in enumerate(task.steps):
                    key = f"{split}/{task.id}/{index}"
                    if key in store:
                        continue
                    pool = candidate_pool(task, step, ranker, args.top_k)
                    record = score_grounding(gold_grounding(step, index + 1), task, step, pool, ranker)
                    store.append({"id": key, "split": split, "task_id": task.id, "step": index, **record})
            by_task: dict[str, list[StepScore]] = {}
            for record in store.records():
                if record["split"] == split and record["task_id"] in {t.id for t in tasks}:
                    by_task.setdefault(record["task_id"], []).append(
                        StepScore(record["element_correct"], record["op_f1"]))
            results[split] = aggregate(list(by_task.values()))
    (save_dir / "metrics.json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(results))
    return results


if __name__ == "__main__":
    main()
