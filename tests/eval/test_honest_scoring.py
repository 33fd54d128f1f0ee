"""Honest scoring: an episode that did not finish scores 0 on every metric, whatever its last result."""

import json

import pytest

from eval.gsm.benchmark import BENCHMARK as GSM
from eval.runner import evaluate, honest_scores, parse_config

JANET = ("Janet's ducks lay 16 eggs per day. She eats 3 and bakes with 4. She sells the rest for $2 each. "
         "How much does she make?")


@pytest.mark.parametrize("status", ["parse_error", "tool_error", "step_limit", "generation_error"])
def test_unfinished_statuses_score_zero_on_every_metric(status):
    assert honest_scores({"em": 1.0, "f1": 0.5}, status) == {"em": 0.0, "f1": 0.0}


def test_finished_episode_keeps_its_scores():
    assert honest_scores({"accuracy": 1.0}, "finished") == {"accuracy": 1.0}


def _config(tmp_path, scripts, planner_rules, extra=()):
    data = tmp_path / "gsm"
    data.mkdir(exist_ok=True)
    # gold answer 9: exactly the result of the first subgoal
    (data / "test.jsonl").write_text(json.dumps({"question": JANET, "answer": "...\n#### 9"}) + "\n")
    return parse_config(GSM, ["--data_dir", str(data), "--save_dir", str(tmp_path / "out"),
                              "--planner", scripts.write_rules(tmp_path / "p.json", planner_rules),
                              "--grounder", scripts.write_rules(tmp_path / "g.json", scripts.MATHS_GROUNDER),
                              *extra])


def _records(tmp_path):
    return [json.loads(line) for line in (tmp_path / "out" / "predictions.jsonl").read_text().splitlines()]


def test_parse_error_after_a_lucky_result_scores_zero(scripts, tmp_path):
    planner = [(r"Subgoal 1 is 9\. Should we stop planning\?\n<\|assistant\|>\n$", "I am confused."),
               *scripts.MATHS_PLANNER]
    metrics = evaluate(_config(tmp_path, scripts, planner), GSM)
    assert metrics["accuracy"] == 0.0 and metrics["status"] == {"parse_error": 1}
    [record] = _records(tmp_path)
    # the partial prediction is kept for reading, but it does not count
    assert record["prediction"] == "9" and record["scores"] == {"accuracy": 0.0}


def test_step_limit_after_a_lucky_result_scores_zero(scripts, tmp_path):
    metrics = evaluate(_config(tmp_path, scripts, scripts.MATHS_PLANNER, ["--max_steps", "1"]), GSM)
    assert metrics["accuracy"] == 0.0 and metrics["status"] == {"step_limit": 1}
    [record] = _records(tmp_path)
    assert record["prediction"] == "9" and record["scores"] == {"accuracy": 0.0}


def test_the_same_result_counts_when_the_planner_stops(scripts, tmp_path):
    planner = [(r"Subgoal 1 is 9\. Should we stop planning\?\n<\|assistant\|>\n$", "Yes, I will stop planning."),
               *scripts.MATHS_PLANNER]
    metrics = evaluate(_config(tmp_path, scripts, planner), GSM)
    assert metrics["accuracy"] == 1.0 and metrics["status"] == {"finished": 1}
