"""WebShop evaluation.

    python -m eval.webshop.run_eval --data_dir data/eval/webshop/ --max_num_examples 500 \\
        --save_dir results/webshop --model_name_or_path MODEL_DIR --eval_batch_size 8 --formulation lumos_iterative
    python -m eval.webshop.run_eval --save_dir results/webshop_replay --formulation replay --actions_file A.jsonl

``lumos_iterative`` runs the shared agent loop through the shared runner (``eval.runner.run`` with
``eval/webshop/benchmark.py``'s BENCHMARK: the runner's flags and WebShop's own, all in ``--help``),
one episode per goal in its own shopping session; ``--max_steps`` (default 15) limits the
environment actions of an episode; ``--feedback`` picks what the planner is told after a subgoal.
Without ``--data_dir`` the shipped sample catalogue is used.

``--prompt_style original`` replays the released evaluation with the released checkpoints
(``eval/webshop/original.py``): ``--model_name_or_path`` holds ``lumos_unified_plan_iterative``
and ``lumos_unified_ground_iterative``; FeatureRetrieve and Pick rank with ``--feature_ranker``
(default ``cross-encoder/stsb-roberta-large``, as the original; ``bm25`` offline);
``--max_steps`` and ``--feedback`` do not apply (the original runs 10 rounds and says what it
says). ``--scoring original`` averages the reward over the goals that ended, as it did.
``--goals synthetic`` evaluates WebShop's synthetic goals, which the released evaluation used
(its price bounds come from an unseeded generator there, a seeded one here); default ``human``.

``replay`` runs scripted actions
(JSONL lines ``{"goal_index": i, "actions": ["search[...]", "click[...]", ...]}``) through the
environment: the offline check of the environment and the scoring. Writes predictions.jsonl
(one episode per line, resumable), metrics.json and run.json; metrics count all episodes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from eval.runner import EvalSetupError, check_save_dir, fingerprint, run
from eval.webshop.adapter import DEFAULT_MAX_STEPS, metrics, replay
from eval.webshop.benchmark import BENCHMARK
from lumos.jsonl import BadRecord, JsonlStore, read_records, write_run_info
from lumos.webshop.catalogue import SAMPLE_DIR, load_catalogue
from lumos.webshop.env import WebShopTextEnv

FORMULATIONS = ("lumos_iterative", "replay")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data_dir", type=str, default=None, help="WebShop data (default: the sample catalogue)")
    parser.add_argument("--max_num_examples", type=int, default=None)
    parser.add_argument("--save_dir", type=str, required=True)
    parser.add_argument("--model_name_or_path", type=str, default=None)
    parser.add_argument("--eval_batch_size", type=int, default=1)
    parser.add_argument("--formulation", type=str, default="lumos_iterative", choices=FORMULATIONS)
    parser.add_argument("--load_in_8bit", action="store_true")
    parser.add_argument("--gptq", action="store_true")
    parser.add_argument("--max_steps", type=int, default=DEFAULT_MAX_STEPS)
    parser.add_argument("--actions_file", type=str, default=None, help="scripted actions for --formulation replay")
    parser.add_argument("--overwrite", action="store_true", help="start afresh in a --save_dir that holds predictions")
    parser.add_argument("--no_progress", action="store_true", help="(replay prints no progress)")
    args = parser.parse_args(argv)
    if args.formulation == "replay" and not args.actions_file:
        parser.error("--formulation replay needs --actions_file")
    return args


def main(argv: list[str] | None = None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    chooser = argparse.ArgumentParser(add_help=False)
    chooser.add_argument("--formulation", default="lumos_iterative")
    if chooser.parse_known_args(argv)[0].formulation != "replay":
        try:
            return run(BENCHMARK, argv)
        except EvalSetupError as error:  # data, models or a save_dir of other settings: one line, nothing written
            print(f"error: {error}", file=sys.stderr)
            raise SystemExit(2) from None
    args = parse_args(argv)
    scripted = {}
    try:  # the inputs, before anything is written
        env = WebShopTextEnv(load_catalogue(args.data_dir))
        for record in read_records(args.actions_file):
            if isinstance(record, BadRecord):
                raise ValueError(f"bad actions record: {record}")
            if not isinstance(record.data.get("actions"), list) or "goal_index" not in record.data:
                raise ValueError(f"{record.path}:{record.line_no}: an actions record needs 'goal_index' and an "
                                 f"'actions' list")
            scripted[int(record.data["goal_index"])] = record.data["actions"]
        # resuming is keyed by what the episodes depend on (as the runner's): refused under other settings
        settings = {"benchmark": "webshop", "formulation": "replay", "max_steps": args.max_steps,
                    "data": fingerprint(args.data_dir or SAMPLE_DIR), "actions_file": fingerprint(args.actions_file)}
        check_save_dir(args, settings)
    except (OSError, ValueError) as error:
        print(f"error: {' '.join(str(error).split())}", file=sys.stderr)
        raise SystemExit(2) from None
    count = len(env.goals) if args.max_num_examples is None else min(args.max_num_examples, len(env.goals))
    save_dir = Path(args.save_dir)
    if args.overwrite:
        for name in ("predictions.jsonl", "metrics.json"):
            (save_dir / name).unlink(missing_ok=True)
    write_run_info(save_dir, {**vars(args), "settings": settings},
                   packages=("bm25s", "rapidfuzz", "torch", "transformers"))
    with JsonlStore(save_dir / "predictions.jsonl") as store:
        for goal_index in range(count):
            if f"webshop_{goal_index}" in store:
                continue
            store.append(replay(env, goal_index, scripted.get(goal_index, []), args.max_steps).to_record())
        result = metrics([r for r in store.records() if r["goal_index"] < count], num_episodes=count)
    (save_dir / "metrics.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result))
    from lumos.report import write_report

    report = write_report(save_dir)
    for name, path in (("predictions", save_dir / "predictions.jsonl"), ("metrics", save_dir / "metrics.json"),
                       ("report", report)):
        print(f"{name + ':':<12} {path}")
    return result


if __name__ == "__main__":
    main()
