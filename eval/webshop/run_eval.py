"""WebShop evaluation.

    python -m eval.webshop.run_eval --data_dir data/eval/webshop/ --max_num_examples 500 \\
        --save_dir results/webshop --model_name_or_path MODEL_DIR --eval_batch_size 8 --formulation lumos_iterative
    python -m eval.webshop.run_eval --save_dir results/webshop_replay --formulation replay --actions_file A.jsonl

Without ``--data_dir`` the shipped sample catalogue is used. ``replay`` runs scripted actions
(JSONL lines ``{"goal_index": i, "actions": ["search[...]", "click[...]", ...]}``) through the
environment: the offline check of the environment and the scoring. Writes predictions.jsonl
(one episode per line, resumable), metrics.json and run.json; metrics count all episodes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from eval.webshop.adapter import DEFAULT_MAX_STEPS, metrics, replay
from lumos.jsonl import JsonlStore, read_records, write_run_info, BadRecord
from lumos.webshop.catalogue import load_catalogue
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
    args = parser.parse_args(argv)
    if args.formulation == "replay" and not args.actions_file:
        parser.error("--formulation replay needs --actions_file")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    env = WebShopTextEnv(load_catalogue(args.data_dir))
    count = len(env.goals) if args.max_num_examples is None else min(args.max_num_examples, len(env.goals))
    save_dir = Path(args.save_dir)
    write_run_info(save_dir, vars(args), packages=("bm25s", "rapidfuzz", "torch", "transformers"))
    if args.formulation == "lumos_iterative":
        raise SystemExit("the lumos_iterative formulation needs the shared agent loop (lumos.agent), "
                         "which this checkout does not have yet; use --formulation replay")
    scripted = {}
    for record in read_records(args.actions_file):
        if isinstance(record, BadRecord):
            raise SystemExit(f"bad actions record: {record}")
        scripted[int(record.data["goal_index"])] = record.data["actions"]
    with JsonlStore(save_dir / "predictions.jsonl") as store:
        for goal_index in range(count):
            if f"webshop_{goal_index}" in store:
                continue
            store.append(replay(env, goal_index, scripted.get(goal_index, []), args.max_steps).to_record())
        result = metrics([r for r in store.records() if r["goal_index"] < count], num_episodes=count)
    (save_dir / "metrics.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
