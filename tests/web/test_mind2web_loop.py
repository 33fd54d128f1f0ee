"""Mind2Web through the shared runner, against scripted planning and grounding models served on
127.0.0.1: MindAct's step-level protocol (gold history for the planner, every step judged on its own
candidates, task success = every step), the free-running loop under its own name, resumption, the
real step-level file, and the one-line refusal of a file of another shape."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from eval.mind2web.adapter import candidate_pool, gold_grounding, score_grounding
from eval.mind2web.data import load_step_instances, task_from_instance
from eval.mind2web.protocol import step_sentence
from eval.mind2web.benchmark import BENCHMARK
from eval.runner import run


def main(argv):
    return run(BENCHMARK, argv)
from lumos.convert.rules_web import parse_action_repr, web_plan
from lumos.tools.web import BM25Ranker, render_web_action

HTML = ('<html backend_node_id="1"><body backend_node_id="2"><form backend_node_id="3">'
        '<div backend_node_id="10"><input backend_node_id="4" type="text" placeholder="Departure airport"/></div>'
        '<div backend_node_id="11"><input backend_node_id="7" type="text" placeholder="Arrival airport"/></div>'
        '<div backend_node_id="12"><select backend_node_id="5" aria_label="Cabin class"><text>Economy Business</text>'
        '</select></div><div backend_node_id="13"><button backend_node_id="6"><text>Search flights</text></button>'
        '</div><div backend_node_id="14"><a backend_node_id="8"><text>Boston, MA (BOS)</text></a></div>'
        '</form></body></html>')


def _candidates(*ids):
    return [{"backend_node_id": i, "tag": "", "attributes": json.dumps({"backend_node_id": i})} for i in ids]


def _action(op, value, gold, others=("4", "5", "6", "7", "8")):
    return {"operation": {"op": op, "value": value}, "pos_candidates": _candidates(gold),
            "neg_candidates": _candidates(*[i for i in others if i != gold]), "cleaned_html": HTML}


TASKS = {
    "test_domain": [
        {"annotation_id": "flight", "confirmed_task": "Find economy flights from Boston to Denver", "website": "air",
         "action_reprs": ["[textbox]  Departure airport -> TYPE: Boston", "[link]  Boston, MA (BOS) -> CLICK",
                          "[textbox]  Arrival airport -> TYPE: Denver", "[combobox]  Cabin class -> SELECT: Economy",
                          "[button]  Search flights -> CLICK"],
         "actions": [_action("TYPE", "Boston", "4"), _action("CLICK", "", "8"), _action("TYPE", "Denver", "7"),
                     _action("SELECT", "Economy", "5"), _action("CLICK", "", "6")]},
        {"annotation_id": "search", "confirmed_task": "Search flights", "website": "air",
         "action_reprs": ["[button]  Search flights -> CLICK"], "actions": [_action("CLICK", "", "6")]},
    ],
    "test_task": [
        {"annotation_id": "to", "confirmed_task": "Fly to Denver", "website": "air",
         "action_reprs": ["[textbox]  Arrival airport -> TYPE: Denver", "[button]  Search flights -> CLICK"],
         "actions": [_action("TYPE", "Denver", "7"), _action("CLICK", "", "6")]},
    ],
}
REPRS = {record["confirmed_task"]: record["action_reprs"] for records in TASKS.values() for record in records}
_PLAN_TASK = re.compile(r"Task: (.*?); Initial Environment Description: None\.")
_GROUND_TASK = re.compile(r"^Task: (.*?) $", re.MULTILINE)
_SUBGOAL = re.compile(r"Subgoal to be grounded: Subgoal (\d+): ")


def _write_data(root):
    for split, records in TASKS.items():
        (root / split).mkdir(parents=True)
        (root / split / "part_0.json").write_text(json.dumps(records))
    return root


def step_planner(overrides=None):
    """Proposes gold step k+1 after k gold steps in its history (``overrides[(task, k)]`` replaces a reply)."""

    def reply(prompt):
        task = _PLAN_TASK.search(prompt).group(1)
        done = prompt.count("Should we stop planning?")
        if overrides and (task, done) in overrides:
            return overrides[task, done]
        text = f"Subgoal {done + 1}: Do step {done + 1}."
        return text if done == 0 else "No, I will keep planning. " + text

    return reply


def gold_action(action_repr, number, value=None):
    step = parse_action_repr(action_repr)
    text = value or step.value
    return render_web_action(step.operation, "Env" if number == 1 else f"R{number - 1}", step.element,
                             text, f"R{number}")


def step_grounder(overrides=None):
    """Grounds 'Subgoal k' with the gold action of step k, its query the element's text."""

    def reply(prompt):
        task = _GROUND_TASK.search(prompt).group(1)
        number = int(_SUBGOAL.findall(prompt)[-1])
        if overrides and (task, number) in overrides:
            return overrides[task, number]
        return gold_action(REPRS[task][number - 1], number)

    return reply


def _run(serve, tmp_path, planner=None, grounder=None, save="out", extra=()):
    planner_script, planner_url = serve(planner or step_planner())
    _, grounder_url = serve(grounder or step_grounder())
    data = tmp_path / "data" if (tmp_path / "data").is_dir() else _write_data(tmp_path / "data")
    metrics = main(["--data_dir", str(data), "--save_dir", str(tmp_path / save), "--planner", planner_url,
                    "--grounder", grounder_url, "--eval_batch_size", "2", "--top_k", "6", "--ranker_kind", "bm25",
                    *extra])
    return metrics, planner_script


def _records(path):
    return {r["id"]: r for r in map(json.loads, path.read_text().splitlines())}


def test_gold_steps_score_full_marks_and_the_planner_sees_the_gold_past(serve, tmp_path):
    metrics, planner = _run(serve, tmp_path)
    assert metrics["num_examples"] == 3 and metrics["status"] == {"finished": 3}
    assert (metrics["element_acc"], metrics["op_f1"], metrics["step_sr"], metrics["task_sr"]) == (1.0, 1.0, 1.0, 1.0)
    assert metrics["splits"]["test_domain"]["num_steps"] == 6 and metrics["splits"]["test_task"]["num_tasks"] == 1
    flight = _records(tmp_path / "out" / "predictions.jsonl")["test_domain/flight"]
    assert [s["element_id"] for s in flight["step_scores"]] == ["4", "8", "7", "5", "6"]
    # step 3's planner history: the two gold steps as the original makes their sentences
    third = next(p for p in planner.calls if "Boston to Denver" in p and p.count("Should we stop planning?") == 2)
    assert ("<|assistant|>\nSubgoal 1: Type Boston in the textbox Departure airport</s>\n<|user|>\n"
            "We have already type Boston in the textbox Departure airport. Should we stop planning?\n"
            "<|assistant|>\nNo, I will keep planning. "
            "Subgoal 2: Click link Boston, MA (BOS)</s>\n") in third
    assert third.endswith("We have already click link Boston, MA (BOS). Should we stop planning?\n<|assistant|>\n")
    assert json.loads((tmp_path / "out" / "run.json").read_text())["config"]["extra"]["protocol"] == "step_level"


def test_each_step_is_judged_on_its_own_whatever_came_before(serve, tmp_path):
    grounder = step_grounder({
        # right element, wrong value
        ("Fly to Denver", 1): gold_action("[textbox]  Arrival airport -> TYPE: Denver", 1, value="Dallas"),
        ("Search flights", 1): "R1 = CLICK(Env, QUERY: Cabin class Economy)",  # wrong element
        ("Find economy flights from Boston to Denver", 2): "I would click the suggestion",  # unparsable
    })
    metrics, planner = _run(serve, tmp_path, grounder=grounder)
    records = _records(tmp_path / "out" / "predictions.jsonl")
    to = records["test_task/to"]
    assert [s["element_correct"] for s in to["step_scores"]] == [True, True]
    assert [s["step_success"] for s in to["step_scores"]] == [False, True]
    assert to["scores"] == {"element_acc": 1.0, "op_f1": 0.75, "step_sr": 0.5, "task_sr": 0.0}
    assert records["test_domain/search"]["scores"] == {"element_acc": 0.0, "op_f1": 1.0, "step_sr": 0.0,
                                                      "task_sr": 0.0}
    flight = records["test_domain/flight"]
    assert [s["step_success"] for s in flight["step_scores"]] == [True, False, True, True, True]
    assert "grounder reply" in flight["step_scores"][1]["error"] and flight["status"] == "finished"
    # the planner at step 3 still sees the gold step 2, not what the grounder did
    assert any("We have already click link Boston, MA (BOS)." in p for p in planner.calls)
    assert metrics["task_sr"] == 0.0 and metrics["splits"]["test_domain"]["step_sr"] == pytest.approx(0.4)


def test_a_planner_that_stops_misses_that_step_only(serve, tmp_path):
    planner = step_planner({("Fly to Denver", 1): "Yes, I will stop planning."})
    metrics, _ = _run(serve, tmp_path, planner=planner, extra=["--splits", "test_task"])
    (record,) = _records(tmp_path / "out" / "predictions.jsonl").values()
    assert record["status"] == "finished" and [s["element_id"] for s in record["step_scores"]] == ["7", None]
    assert record["step_scores"][1]["error"] == "the planner stopped before the task's last step"
    assert metrics["step_sr"] == 0.5 and metrics["task_sr"] == 0.0


def test_max_num_examples_caps_each_split_not_the_run(serve, tmp_path):
    """``--max_num_examples 1`` over two splits (test_domain: 2 tasks, test_task: 1): the first task of
    each split, for the model-driven run as for ``--oracle gold`` (not the first task of the run)."""
    metrics, _ = _run(serve, tmp_path, extra=["--max_num_examples", "1"])
    assert set(_records(tmp_path / "out" / "predictions.jsonl")) == {"test_domain/flight", "test_task/to"}
    assert metrics["num_examples"] == 2 and set(metrics["splits"]) == {"test_domain", "test_task"}
    assert metrics["splits"]["test_domain"]["num_tasks"] == 1
    assert json.loads((tmp_path / "out" / "run.json").read_text())["config"]["extra"]["max_num_examples"] == 1
    gold = main(["--data_dir", str(tmp_path / "data"), "--save_dir", str(tmp_path / "gold"), "--oracle", "gold",
                 "--top_k", "6", "--ranker_kind", "bm25", "--max_num_examples", "1"])
    assert set(_records(tmp_path / "gold" / "predictions.jsonl")) == {"test_domain/flight", "test_task/to"}
    assert gold["num_examples"] == metrics["num_examples"]
    metrics, _ = _run(serve, tmp_path, save="two", extra=["--max_num_examples", "2"])
    assert metrics["num_examples"] == 3  # a split with fewer tasks than the cap gives all it has


def test_killed_run_resumes_with_the_same_metrics(serve, tmp_path):
    _, planner = serve(step_planner())
    _, grounder = serve(step_grounder())
    data = _write_data(tmp_path / "data")

    def run(save):
        return main(["--data_dir", str(data), "--save_dir", str(tmp_path / save), "--planner", planner, "--grounder",
                     grounder, "--eval_batch_size", "2", "--top_k", "6", "--ranker_kind", "bm25"])

    whole = run("whole")
    lines = (tmp_path / "whole" / "predictions.jsonl").read_text().splitlines(keepends=True)
    (tmp_path / "resumed").mkdir()
    (tmp_path / "resumed" / "predictions.jsonl").write_text(lines[0] + lines[1][:50])  # what a kill leaves
    (tmp_path / "resumed" / "run.json").write_text((tmp_path / "whole" / "run.json").read_text())
    resumed = run("resumed")
    strip = lambda m: {k: v for k, v in m.items() if k != "seconds_this_run"}  # noqa: E731
    assert strip(resumed) == strip(whole)
    assert len((tmp_path / "resumed" / "predictions.jsonl").read_text().splitlines()) == 3


def test_free_running_loop_stays_an_option(serve, following, tmp_path):
    plans = {task: web_plan(reprs) for task, reprs in REPRS.items()}
    for plan in plans.values():  # queries the ranker can match: the element's own text
        assert plan.actions[0].render().startswith("R1 = ")
    _, planner = serve(following.planner(plans))
    _, grounder = serve(following.grounder(plans))
    metrics = main(["--data_dir", str(_write_data(tmp_path / "data")), "--save_dir", str(tmp_path / "out"),
                    "--planner", planner, "--grounder", grounder, "--protocol", "free_running", "--top_k", "6",
                    "--ranker_kind", "bm25"])
    assert metrics["status"] == {"finished": 3} and metrics["splits"]["test_domain"]["num_steps"] == 6
    flight = _records(tmp_path / "out" / "predictions.jsonl")["test_domain/flight"]
    assert len(flight["step_scores"]) == 5 and flight["steps"][0]["subgoal"].startswith("Type Boston into")


def test_sentences_of_gold_steps():
    assert step_sentence("[button]  Search -> CLICK") == "Click button Search"
    assert step_sentence("[textbox]  From -> TYPE: New York") == "Type New York in the textbox From"
    assert step_sentence("[combobox]  Size -> SELECT: 2") == "Select 2 in the combobox Size"
    assert step_sentence("[link]  MMA -> HOVER") == "Click link MMA"
    assert step_sentence("[svg]   -> ENTER") == "enter svg ."
    assert step_sentence("[svg]   -> CLICK", lambda phrases: phrases[-1]) == "Enter svg "


@pytest.mark.shared_data
def test_real_step_level_file_scores_as_the_gold_grounding(serve, tmp_path, shared_data):
    source = shared_data / "mind2web" / "mind2web_train_n100_actionlevel.skillgen.json"
    tasks = load_step_instances(source)
    ranker = BM25Ranker()
    golds = {}
    for task in tasks:
        step = task.steps[0]
        golds[task.task, len(step.previous_actions)] = gold_grounding(step, len(step.previous_actions) + 1)
    expected = sum(score_grounding(gold_grounding(t.steps[0]), t, t.steps[0],
                                   candidate_pool(t, t.steps[0], ranker, 50), ranker)["step_success"] for t in tasks)

    def grounder(prompt):
        task = _GROUND_TASK.search(prompt).group(1)
        return golds[task, int(_SUBGOAL.findall(prompt)[-1]) - 1]

    _, planner_url = serve(step_planner())
    _, grounder_url = serve(grounder)
    metrics = main(["--data_dir", str(source), "--save_dir", str(tmp_path / "out"), "--planner", planner_url,
                    "--grounder", grounder_url, "--eval_batch_size", "50", "--ranker_kind", "bm25"])
    assert metrics["num_examples"] == 100 and metrics["status"] == {"finished": 100}
    assert metrics["splits"]["step_level"]["num_steps"] == 100
    assert metrics["step_sr"] == pytest.approx(expected / 100) and expected >= 60
    first = task_from_instance(json.loads(source.read_text())["instances"][5])
    assert first.steps[0].previous_actions  # the planner's gold past comes from the instance's own list


def test_a_file_of_another_shape_gets_one_line(tmp_path, repo_root):
    bad = tmp_path / "records.json"
    bad.write_text(json.dumps([{"task": "x"}]))
    run = subprocess.run([sys.executable, "-m", "eval.mind2web.run_eval", "--data_dir", str(bad), "--save_dir",
                          str(tmp_path / "out"), "--planner", "scripted:x", "--grounder", "scripted:y"],
                         cwd=repo_root, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and run.stdout == ""
    (line,) = run.stderr.strip().splitlines()
    assert "neither a task list nor a step-level file" in line and "step-level .json file" in line
    assert "split folders test_task/" in line


@pytest.mark.shared_data
def test_the_shell_script_runs_both_shapes(tmp_path, repo_root, shared_data):
    replies = tmp_path / "replies"
    replies.mkdir()
    (replies / "plan.json").write_text(json.dumps({"rules": [], "default": "Subgoal 1: Click the search button."}))
    (replies / "ground.json").write_text(json.dumps({"rules": [], "default": "R1 = CLICK(Env, QUERY: Search)"}))
    shapes = {"steps": shared_data / "mind2web" / "mind2web_train_n100_actionlevel.skillgen.json",
              "tasks": _write_data(tmp_path / "data")}
    for name, data in shapes.items():
        env = {**os.environ, "DATA_DIR": str(data), "SAVE_DIR": str(tmp_path / name), "MAX_NUM_EXAMPLES": "3"}
        env.pop("MODEL_DIR", None)
        run = subprocess.run([str(repo_root / "scripts" / "eval" / "mind2web.sh"), "--planner",
                              f"scripted:{replies / 'plan.json'}", "--grounder", f"scripted:{replies / 'ground.json'}",
                              "--ranker_kind", "bm25"], cwd=repo_root, env=env, capture_output=True, text=True,
                             timeout=300)
        assert run.returncode == 0, run.stderr[-2000:]
        metrics = json.loads((tmp_path / name / "metrics.json").read_text())
        assert metrics["status"] == {"finished": 3}
        assert set(metrics["splits"]) == ({"step_level"} if name == "steps" else {"test_domain", "test_task"})
