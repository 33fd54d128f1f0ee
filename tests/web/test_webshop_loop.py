"""WebShop through the Lumos iterative loop and the shared runner, against scripted planning and
grounding models served on 127.0.0.1, on the shipped sample catalogue: buying the goal product
with its options earns reward 1.0, a step-limited or failed episode scores 0 and is counted, a
killed run resumes with the same metrics."""

from __future__ import annotations

import json

import pytest

from eval.runner import run
from eval.webshop.benchmark import BENCHMARK


def main(argv):
    return run(BENCHMARK, argv)
from lumos.format import Plan, Subgoal, parse_action
from lumos.webshop.catalogue import load_catalogue

GOALS = load_catalogue().goals


def _plan(*steps):
    return Plan(tuple(Subgoal(text, tuple(parse_action(a) for a in actions)) for text, actions in steps))


# goal 1: a fast charging usb c power bank in blue; the product is named by its title, not its ASIN
POWER_BANK = _plan(("Search for a fast charging usb c power bank.", ['TYPE(Env, QUERY: search bar, TEXT: usb c power bank)']),
                   ("Click the Portable USB C Power Bank.", ['CLICK(Env, QUERY: Portable USB C Power Bank 20000mAh)']),
                   ("Select the blue color.", ['SELECT(Env, QUERY: color, TEXT: Blue)']),
                   ("Buy it.", ['CLICK(Env, QUERY: Buy Now)']))
# goal 3: the cake topper in rose gold, with WebShop's own actions
CAKE_TOPPER = _plan(("Search for a birthday cake topper.", ["Search(happy birthday cake topper)"]),
                    ("Open the toppers.", ["Click(smpb000020)"]),
                    ("Choose rose gold.", ["Click(rose gold)"]),
                    ("Buy.", ["Click(buy now)"]))
# goal 2: a laptop, but the agent keeps searching: invalid on the results page, until the step limit
LAPTOP_LOOP = _plan(*[("Search for a laptop.", ['TYPE(Env, QUERY: search, TEXT: intel core laptop)'])] * 20)
# goal 0: bought, but the wrong colour and size: a partial reward, no success
RAIN_JACKET = _plan(("Search.", ['TYPE(Env, QUERY: search, TEXT: kids rain jacket)']),
                    ("Open it.", ['CLICK(Env, QUERY: Kids Hooded Rain Jacket)']),
                    ("Buy.", ['CLICK(Env, QUERY: Buy Now)']))

PLANS = {GOALS[0]["instruction_text"]: RAIN_JACKET, GOALS[1]["instruction_text"]: POWER_BANK,
         GOALS[2]["instruction_text"]: LAPTOP_LOOP, GOALS[3]["instruction_text"]: CAKE_TOPPER}


def _run(serve, following, save, *extra):
    _, planner = serve(following.planner(PLANS))
    _, grounder = serve(following.grounder(PLANS))
    return main(["--save_dir", str(save), "--planner", planner, "--grounder", grounder, "--max_num_examples", "5",
                 "--max_steps", "6", "--eval_batch_size", "3", *extra])


def _records(path):
    return {r["id"]: r for r in map(json.loads, path.read_text().splitlines())}


def test_scripted_episodes_score_as_webshop_does(serve, following, tmp_path):
    metrics = _run(serve, following, tmp_path / "out")
    records = _records(tmp_path / "out" / "predictions.jsonl")
    bank, cake, laptop, jacket, unplanned = (records[f"webshop_{i}"] for i in (1, 3, 2, 0, 4))
    assert bank["scores"] == {"reward": 1.0, "success": 1.0} and bank["status"] == "finished"
    assert bank["webshop"]["actions"] == ["search[usb c power bank]", "click[smpb000013]", "click[blue]",
                                          "click[buy now]"]
    assert cake["scores"]["reward"] == 1.0 and cake["webshop"]["actions"][-1] == "click[buy now]"
    assert laptop["status"] == "step_limit" and laptop["webshop"]["status"] == "step_limit"
    assert laptop["scores"] == {"reward": 0.0, "success": 0.0} and len(laptop["webshop"]["actions"]) == 6
    assert jacket["status"] == "finished" and 0.0 < jacket["scores"]["reward"] < 1.0
    assert unplanned["status"] == "parse_error" and unplanned["scores"]["reward"] == 0.0
    # all five episodes count: two successes, one partial reward
    assert metrics["num_examples"] == 5 and metrics["num_bought"] == 3
    assert metrics["success_rate"] == 0.4
    assert metrics["average_reward"] == pytest.approx((2.0 + jacket["scores"]["reward"]) / 5, abs=1e-6)
    assert metrics["status"] == {"finished": 3, "parse_error": 1, "step_limit": 1}
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["success_rate"] == 0.4


def test_planner_is_told_the_page_or_what_was_done(serve, following, tmp_path):
    planner_script, planner = serve(following.planner(PLANS))
    _, grounder = serve(following.grounder(PLANS))
    argv = ["--planner", planner, "--grounder", grounder, "--max_num_examples", "2"]
    main(["--save_dir", str(tmp_path / "observation"), *argv])
    told = [call for call in planner_script.calls if "usb c power bank" in call][-1]
    assert "The executed result for Subgoal 1 is Instruction: [SEP] i need a fast charging" in told
    assert "Portable USB C Power Bank 20000mAh Fast Charging" in told
    planner_script.calls.clear()
    main(["--save_dir", str(tmp_path / "completion"), "--feedback", "completion", *argv])
    told = [call for call in planner_script.calls if "usb c power bank" in call][-1]
    assert "We have already select the blue color. Should we stop planning?" in told


def test_killed_run_resumes_with_the_same_metrics(serve, following, tmp_path):
    _, planner = serve(following.planner(PLANS))
    _, grounder = serve(following.grounder(PLANS))  # the same servers: their URLs are part of the settings
    run = lambda save: main(["--save_dir", str(save), "--planner", planner, "--grounder", grounder,  # noqa: E731
                             "--max_num_examples", "5", "--max_steps", "6", "--eval_batch_size", "3"])
    whole = run(tmp_path / "whole")
    lines = (tmp_path / "whole" / "predictions.jsonl").read_text().splitlines(keepends=True)
    (tmp_path / "resumed").mkdir()
    (tmp_path / "resumed" / "predictions.jsonl").write_text(lines[0] + lines[1] + lines[2][:60])
    (tmp_path / "resumed" / "run.json").write_text((tmp_path / "whole" / "run.json").read_text())  # written first
    resumed = run(tmp_path / "resumed")
    strip = lambda m: {k: v for k, v in m.items() if k != "seconds_this_run"}  # noqa: E731
    assert strip(resumed) == strip(whole)
    assert len((tmp_path / "resumed" / "predictions.jsonl").read_text().splitlines()) == 5
