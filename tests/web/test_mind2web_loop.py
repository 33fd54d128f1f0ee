"""Mind2Web through the Lumos iterative loop and the shared runner, against scripted planning and
grounding models served on 127.0.0.1: gold plans score full marks, wrong groundings score as they
must, the real step-level file scores exactly as the gold grounding does, a killed run resumes."""

from __future__ import annotations

import json

import pytest

from eval.mind2web.adapter import candidate_pool, gold_grounding, score_grounding
from eval.mind2web.data import load_step_instances, task_from_instance
from eval.mind2web.run_eval import main
from lumos.convert.rules_web import web_plan
from lumos.format import Plan, Subgoal, parse_action
from lumos.tools.web import BM25Ranker

HTML = ('<html backend_node_id="1"><body backend_node_id="2"><form backend_node_id="3">'
        '<input backend_node_id="4" type="text" placeholder="From city"/>'
        '<input backend_node_id="7" type="text" placeholder="To city"/>'
        '<select backend_node_id="5" aria_label="Cabin class"><text>Economy Business</text></select>'
        '<button backend_node_id="6"><text>Search flights</text></button>'
        '<a backend_node_id="8"><text>Boston, MA (BOS)</text></a></form></body></html>')


def _candidates(*ids):
    return [{"backend_node_id": i, "tag": "", "attributes": json.dumps({"backend_node_id": i})} for i in ids]


def _action(op, value, gold, html=HTML, others=("4", "5", "6", "7", "8")):
    return {"operation": {"op": op, "value": value}, "pos_candidates": _candidates(gold),
            "neg_candidates": _candidates(*[i for i in others if i != gold]), "cleaned_html": html}


TASKS = {
    "test_domain": [
        {"annotation_id": "flight", "confirmed_task": "Find economy flights from Boston to Denver", "website": "air",
         "action_reprs": ["[textbox]  From city -> TYPE: Boston", "[link]  Boston, MA (BOS) -> CLICK",
                          "[textbox]  To city -> TYPE: Denver", "[combobox]  Cabin class -> SELECT: Economy",
                          "[button]  Search flights -> CLICK"],
         "actions": [_action("TYPE", "Boston", "4"), _action("CLICK", "", "8"), _action("TYPE", "Denver", "7"),
                     _action("SELECT", "Economy", "5"), _action("CLICK", "", "6")]},
        {"annotation_id": "search", "confirmed_task": "Search flights", "website": "air",
         "action_reprs": ["[button]  Search flights -> CLICK"], "actions": [_action("CLICK", "", "6")]},
    ],
    "test_task": [
        {"annotation_id": "to", "confirmed_task": "Fly to Denver", "website": "air",
         "action_reprs": ["[textbox]  To city -> TYPE: Denver", "[button]  Search flights -> CLICK"],
         "actions": [_action("TYPE", "Denver", "7"), _action("CLICK", "", "6")]},
    ],
}


def _write_data(root):
    for split, records in TASKS.items():
        (root / split).mkdir(parents=True)
        (root / split / "part_0.json").write_text(json.dumps(records))
    return root


def _gold_plans():
    return {record["confirmed_task"]: web_plan(record["action_reprs"])
            for records in TASKS.values() for record in records}


def _run(serve, following, tmp_path, plans, grounder_plans=None, save="out", extra=()):
    _, planner = serve(following.planner(plans))
    _, grounder = serve(following.grounder(grounder_plans or plans))
    data = tmp_path / "data" if (tmp_path / "data").is_dir() else _write_data(tmp_path / "data")
    return main(["--data_dir", str(data), "--save_dir", str(tmp_path / save), "--planner", planner,
                 "--grounder", grounder, "--eval_batch_size", "2", "--top_k", "6", *extra])


def _records(path):
    return {r["id"]: r for r in map(json.loads, path.read_text().splitlines())}


def test_gold_plans_score_full_marks_through_the_loop(serve, following, tmp_path):
    metrics = _run(serve, following, tmp_path, _gold_plans())
    assert metrics["num_examples"] == 3 and metrics["status"] == {"finished": 3}
    assert (metrics["element_acc"], metrics["op_f1"], metrics["step_sr"], metrics["task_sr"]) == (1.0, 1.0, 1.0, 1.0)
    assert metrics["splits"]["test_domain"]["num_steps"] == 6 and metrics["splits"]["test_task"]["num_tasks"] == 1
    assert all(m["step_sr"] == 1.0 for m in metrics["splits"].values())
    flight = _records(tmp_path / "out" / "predictions.jsonl")["test_domain/flight"]
    # the TYPE and the click on its suggestion are one subgoal; the trace's end ends the episode
    assert [s["subgoal"] for s in flight["steps"]][:2] == ["Type Boston into the From city field and choose "
                                                           "the Boston, MA (BOS) suggestion.",
                                                           "Type Denver into the To city field."]
    assert [s["element_id"] for s in flight["step_scores"]] == ["4", "8", "7", "5", "6"]
    assert json.loads((tmp_path / "out" / "run.json").read_text())["config"]["extra"]["top_k"] == 6


def test_planner_is_told_what_was_done(serve, following, tmp_path):
    planner_script, planner = serve(following.planner(_gold_plans()))
    _, grounder = serve(following.grounder(_gold_plans()))
    main(["--data_dir", str(_write_data(tmp_path / "data")), "--save_dir", str(tmp_path / "out"),
          "--planner", planner, "--grounder", grounder, "--splits", "test_task"])
    # subgoal 1, then subgoal 2 after being told; acting on the trace's last step ends the episode
    assert len(planner_script.calls) == 2
    assert planner_script.calls[1].endswith("<|user|>\nWe have already type Denver into the To city field. "
                                            "Should we stop planning?\n<|assistant|>\n")


def test_wrong_groundings_score_as_they_must(serve, following, tmp_path):
    plans = _gold_plans()
    wrong = dict(plans)
    # right element, wrong value: element correct, operation F1 < 1, no step success
    wrong["Fly to Denver"] = Plan((Subgoal("Type Denver.", (parse_action('TYPE(Env, "To city", "Dallas")'),)),
                                   Subgoal("Search.", (parse_action('CLICK(Env, "Search flights")'),))))
    # wrong element for the only step of a one-step task
    wrong["Search flights"] = Plan((Subgoal("Search.", (parse_action('CLICK(Env, "Cabin class Economy")'),)),))
    metrics = _run(serve, following, tmp_path, plans, wrong)
    records = _records(tmp_path / "out" / "predictions.jsonl")
    to = records["test_task/to"]
    assert [s["element_correct"] for s in to["step_scores"]] == [True, True]
    assert [s["step_success"] for s in to["step_scores"]] == [False, True]
    assert to["step_scores"][0]["op_f1"] == pytest.approx(0.5)
    assert to["scores"] == {"element_acc": 1.0, "op_f1": 0.75, "step_sr": 0.5, "task_sr": 0.0}
    search = records["test_domain/search"]
    assert search["scores"] == {"element_acc": 0.0, "op_f1": 1.0, "step_sr": 0.0, "task_sr": 0.0}
    assert metrics["splits"]["test_domain"]["step_sr"] == 0.5  # macro: (1.0 + 0.0) / 2
    assert metrics["task_sr"] == pytest.approx(1 / 3)


def test_a_planner_that_stops_early_leaves_misses(serve, following, tmp_path):
    plans = _gold_plans()
    short = dict(plans)
    short["Fly to Denver"] = Plan(plans["Fly to Denver"].subgoals[:1])
    metrics = _run(serve, following, tmp_path, short, plans, extra=["--splits", "test_task"])
    (record,) = _records(tmp_path / "out" / "predictions.jsonl").values()
    assert record["status"] == "finished" and [s["element_id"] for s in record["step_scores"]] == ["7", None]
    assert metrics["step_sr"] == 0.5 and metrics["task_sr"] == 0.0


def test_unparsable_grounding_is_a_recorded_miss(serve, following, tmp_path):
    _, planner = serve(following.planner(_gold_plans()))
    _, grounder = serve(lambda prompt: "I would click on the search button")
    metrics = main(["--data_dir", str(_write_data(tmp_path / "data")), "--save_dir", str(tmp_path / "out"),
                    "--planner", planner, "--grounder", grounder])
    assert metrics["status"] == {"parse_error": 3} and metrics["step_sr"] == 0.0 and metrics["op_f1"] == 0.0


def test_killed_run_resumes_with_the_same_metrics(serve, following, tmp_path):
    whole = _run(serve, following, tmp_path, _gold_plans(), save="whole")
    lines = (tmp_path / "whole" / "predictions.jsonl").read_text().splitlines(keepends=True)
    (tmp_path / "resumed").mkdir()
    (tmp_path / "resumed" / "predictions.jsonl").write_text(lines[0] + lines[1][:50])  # what a kill leaves
    resumed = _run(serve, following, tmp_path, _gold_plans(), save="resumed")
    strip = lambda m: {k: v for k, v in m.items() if k != "seconds_this_run"}  # noqa: E731
    assert strip(resumed) == strip(whole)
    assert len((tmp_path / "resumed" / "predictions.jsonl").read_text().splitlines()) == 3


@pytest.mark.shared_data
def test_real_step_level_file_scores_as_the_gold_grounding(serve, following, tmp_path, shared_data):
    source = json.loads((shared_data / "mind2web" / "mind2web_train_n100_actionlevel.skillgen.json").read_text())
    # the scripted models look plans up by task text: keep the first instance of each task
    instances, seen = [], set()
    for instance, task in zip(source["instances"], map(task_from_instance, source["instances"])):
        if task.task not in seen:
            seen.add(task.task)
            instances.append(instance)
    path = tmp_path / "steps.json"
    path.write_text(json.dumps({"instances": instances}))
    tasks = load_step_instances(path)
    ranker = BM25Ranker()
    expected = sum(score_grounding(gold_grounding(t.steps[0]), t, t.steps[0],
                                   candidate_pool(t, t.steps[0], ranker, 50), ranker)["step_success"] for t in tasks)
    plans = {task.task: Plan((Subgoal("Do the step.", (parse_action(gold_grounding(task.steps[0])),)),))
             for task in tasks}
    _, planner = serve(following.planner(plans))
    _, grounder = serve(following.grounder(plans))
    metrics = main(["--data_dir", str(path), "--save_dir", str(tmp_path / "out"), "--planner", planner,
                    "--grounder", grounder, "--eval_batch_size", "32"])
    assert metrics["num_examples"] == len(tasks) > 80 and metrics["status"] == {"finished": len(tasks)}
    assert metrics["splits"]["step_level"]["num_steps"] == len(tasks)
    assert metrics["step_sr"] == pytest.approx(expected / len(tasks)) and expected / len(tasks) >= 0.75
