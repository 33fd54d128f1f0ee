"""WebShop evaluation entry point: scripted episodes, all-episode metrics, resumption."""

from __future__ import annotations

import json

from eval.webshop.adapter import replay, to_webshop_action
from eval.runner import run
from eval.webshop.benchmark import BENCHMARK, shop_metrics


def main(argv):
    return run(BENCHMARK, argv)
from lumos.format import parse_action
from lumos.webshop.catalogue import load_catalogue
from lumos.webshop.env import WebShopTextEnv


def test_lumos_actions_map_to_webshop_text():
    assert to_webshop_action(parse_action("R1 = Search(teal steel strap)")) == "search[teal steel strap]"
    assert to_webshop_action(parse_action('R2 = Click("buy now")')) == "click[buy now]"


def test_replay_and_metrics_count_unfinished_as_zero(tmp_path):
    env = WebShopTextEnv(load_catalogue())
    goal = 1
    assert env.goals[goal]["asin"] == "SMPB000013"  # the shipped sample's seeded goal order
    good = ["search[usb c power bank]", "click[smpb000013]", "click[blue]", "click[buy now]"]
    lines = [{"goal_index": goal, "actions": good}, {"goal_index": 0, "actions": ["search[jacket]"]}]
    actions_file = tmp_path / "actions.jsonl"
    actions_file.write_text("".join(json.dumps(line) + "\n" for line in lines))
    out = tmp_path / "out"
    argv = ["--save_dir", str(out), "--oracle", str(actions_file), "--max_num_examples", "4"]
    result = main(argv)
    assert (result["num_examples"], result["average_reward"], result["success_rate"], result["num_bought"]) == \
        (4, 0.25, 0.25, 1)
    assert result["reward"] == result["average_reward"] and result["formulation"] == "oracle"
    assert result["status"] == {"finished": 1, "step_limit": 3}
    records = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert {r["status"] for r in records} == {"finished", "step_limit"}
    assert json.loads((out / "metrics.json").read_text()) == result and (out / "run.json").is_file()
    again = main(argv)  # resumed: nothing re-run, same numbers
    assert {k: v for k, v in again.items() if k != "seconds_this_run"} == \
        {k: v for k, v in result.items() if k != "seconds_this_run"}
    assert len((out / "predictions.jsonl").read_text().splitlines()) == 4
    assert replay(env, goal, good[:2] * 10, max_steps=5).status == "step_limit"
    # the runner's summary (the benchmark's shop_metrics) over no episodes: zeros, no division by zero
    assert shop_metrics([]) == {"average_reward": 0.0, "success_rate": 0.0, "num_bought": 0}
