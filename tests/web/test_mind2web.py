"""Mind2Web loading, MindAct's candidate texts, the faithful top-k candidate pool, and MindAct's metrics."""

from __future__ import annotations

import json

import pytest

from eval.mind2web.adapter import candidate_pool, gold_grounding, score_grounding
from eval.mind2web.data import load_split, load_step_instances, load_tasks
from eval.mind2web.metrics import aggregate, score_step, token_f1
from lumos.tools.web import BM25Ranker, WebPage

N100 = "mind2web/mind2web_train_n100_actionlevel.skillgen.json"


@pytest.fixture(scope="module")
def step_tasks(shared_data):
    return load_step_instances(shared_data / N100)


def test_token_f1():
    assert token_f1("CLICK", "CLICK") == 1.0
    assert token_f1("TYPE san diego", "TYPE san diego") == 1.0
    assert token_f1("TYPE san diego ca", "TYPE san diego") == pytest.approx(2 * 1 * 0.75 / 1.75)
    assert token_f1("CLICK", "TYPE boston") == 0.0
    assert token_f1("", "") == 1.0


def test_gold_actions_score_full_marks_and_wrong_ones_do_not(step_tasks):
    assert len(step_tasks) == 100
    gold, wrong_element, wrong_op, wrong_value = [], [], [], []
    for task in step_tasks:
        step = task.steps[0]
        gold_id = sorted(step.gold_ids)[0]
        other_id = next(e.id for e in step.candidates if e.id not in step.gold_ids)
        gold.append([score_step(gold_id, step.op, step.value, step.gold_ids, step.op, step.value)])
        wrong_element.append([score_step(other_id, step.op, step.value, step.gold_ids, step.op, step.value)])
        other_op = "TYPE" if step.op == "CLICK" else "CLICK"
        wrong_op.append([score_step(gold_id, other_op, step.value, step.gold_ids, step.op, step.value)])
        if step.value:
            wrong_value.append([score_step(gold_id, step.op, "zzz", step.gold_ids, step.op, step.value)])
    full = aggregate(gold)
    assert (full["element_acc"], full["op_f1"], full["step_sr"], full["task_sr"]) == (1.0, 1.0, 1.0, 1.0)
    bad = aggregate(wrong_element)
    assert (bad["element_acc"], bad["op_f1"], bad["step_sr"], bad["task_sr"]) == (0.0, 1.0, 0.0, 0.0)
    op = aggregate(wrong_op)
    assert op["element_acc"] == 1.0 and op["step_sr"] == 0.0 and op["op_f1"] < 0.5
    value = aggregate(wrong_value)
    assert len(wrong_value) == 20 and value["step_sr"] == 0.0 and 0.0 < value["op_f1"] < 1.0


def test_the_pool_never_uses_the_sources_gold_first_order(step_tasks):
    class Indifferent:
        def scores(self, query, texts):
            return [0.0] * len(texts)

    assert all(task.steps[0].candidates[0].id in task.steps[0].gold_ids for task in step_tasks)  # as the source
    assert all(len(task.steps[0].candidates) == 30 for task in step_tasks)
    firsts = [candidate_pool(task, task.steps[0], Indifferent(), 30).elements[0].id in task.steps[0].gold_ids
              for task in step_tasks]
    assert sum(firsts) < 50  # ties keep backend-node-id order


def test_candidate_texts_are_mindacts_pruned_trees():
    from eval.mind2web.candidates import candidate_elements

    html = ('<html backend_node_id="1"><body backend_node_id="2"><div backend_node_id="3" class="x">'
            '<a backend_node_id="4" title="Deals &amp; offers"><text backend_node_id="5">Deals</text></a>'
            '<img backend_node_id="6" alt="http://x"/><input backend_node_id="7" type="hidden" value="Go now"/>'
            '</div></body></html>')
    elements = candidate_elements([{"backend_node_id": "4", "tag": "a"}, {"backend_node_id": "7", "tag": "input"},
                                   {"backend_node_id": "9", "tag": "button", "attributes": '{"aria_label": "Cut"}'}],
                                  html)
    assert [e.text for e in elements] == [
        "ancestors: /html/div x/img/input go now\ntarget: (a id=0 deals & offersDeals)",
        "ancestors: /html/div x/a deals & offersDeals/img\ntarget: (input id=0 go now )",
        # absent from the page (a truncated excerpt): added at the end of the root with its listed attributes
        "ancestors: /html\ntarget: (button id=0 cut )"]


def test_ranker_pipeline_on_real_steps_and_the_pool_can_miss(step_tasks):
    ranker = BM25Ranker()
    full, small = [], []
    for task in step_tasks:
        step = task.steps[0]
        grounding = gold_grounding(step)
        full.append(score_grounding(grounding, task, step, candidate_pool(task, step, ranker, 30), ranker))
        small.append(score_grounding(grounding, task, step, candidate_pool(task, step, ranker, 5), ranker))
    assert all(r["gold_in_pool"] for r in full)
    assert sum(r["step_success"] for r in full) >= 75
    missed = [r for r in small if not r["gold_in_pool"]]
    assert missed and not any(r["element_correct"] or r["step_success"] for r in missed)
    assert sum(r["step_success"] for r in small) < sum(r["step_success"] for r in full)


def test_unparsable_grounding_scores_as_a_miss(step_tasks):
    task = step_tasks[0]
    step = task.steps[0]
    record = score_grounding("I would click the button", task, step, WebPage(list(step.candidates)), BM25Ranker())
    assert record["element_id"] is None and not record["step_success"] and "error" in record


HTML = ('<html backend_node_id="1"><body backend_node_id="2"><form backend_node_id="3">'
        '<input backend_node_id="4" type="text" placeholder="From city"/>'
        '<select backend_node_id="5" aria_label="Cabin class"><text>Economy Business</text></select>'
        '<button backend_node_id="6"><text>Search flights</text></button></form></body></html>')


def _candidate(node_id, tag):
    return {"backend_node_id": node_id, "tag": tag, "attributes": json.dumps({"backend_node_id": node_id})}


def test_official_format_split_and_task_success(tmp_path):
    actions = [
        {"operation": {"op": "TYPE", "value": "Boston"}, "pos_candidates": [_candidate("4", "input")],
         "neg_candidates": [_candidate("5", "select"), _candidate("6", "button")], "cleaned_html": HTML},
        {"operation": {"op": "CLICK", "value": ""}, "pos_candidates": [_candidate("6", "button")],
         "neg_candidates": [_candidate("4", "input"), _candidate("5", "select")], "cleaned_html": HTML},
    ]
    record = {"annotation_id": "a1", "confirmed_task": "Find flights from Boston", "website": "air",
              "action_reprs": ["[textbox]  From city -> TYPE: Boston", "[button]  Search flights -> CLICK"],
              "actions": actions}
    (tmp_path / "test_domain").mkdir()
    (tmp_path / "test_domain" / "part_0.json").write_text(json.dumps([record]))
    [task] = load_split(tmp_path, "test_domain")
    assert load_tasks(tmp_path) == [task]
    assert load_tasks(tmp_path / "test_domain" / "part_0.json")[0].steps == task.steps
    assert task.steps[1].previous_actions == ("[textbox]  From city -> TYPE: Boston",)
    # body and form carry nothing but their node id and have one child each: they dissolve
    assert task.steps[0].candidates[1].text == ("ancestors: /html/form/input text from city/buttonSearch flights"
                                                "\ntarget: (select id=0 cabin classEconomy Business)")
    ranker = BM25Ranker()
    answers = ["R1 = TYPE(Env, QUERY: from city, TEXT: Boston)", "R2 = CLICK(R1, QUERY: search flights button)"]
    records = [score_grounding(answer, task, step, candidate_pool(task, step, ranker, 3), ranker)
               for answer, step in zip(answers, task.steps)]
    assert [r["step_success"] for r in records] == [True, True]
    wrong = score_grounding("R1 = TYPE(Env, QUERY: from city, TEXT: Bostn)", task, task.steps[0],
                            candidate_pool(task, task.steps[0], ranker, 3), ranker)
    assert wrong["element_correct"] and not wrong["step_success"]
    with pytest.raises(ValueError):
        load_split(tmp_path, "train")


def test_gold_grounding_is_in_the_released_format(step_tasks):
    step = step_tasks[0].steps[0]
    text = gold_grounding(step, 3)
    assert text.startswith(f"R3 = {step.op}(R2, QUERY: ")
    assert score_grounding(text, step_tasks[0], step, WebPage(list(step.candidates)), BM25Ranker())["op_f1"] == 1.0


def test_oracle_gold_writes_metrics_and_resumes(tmp_path):
    """``--oracle gold`` through the shared runner: every step grounded with its gold action, per split."""
    from eval.mind2web.benchmark import BENCHMARK
    from eval.runner import EvalSetupError, run

    data = tmp_path / "data"  # (a save_dir outside the data folder: the folder's files are its fingerprint)
    data.mkdir()
    test_official_format_split_and_task_success(data)  # writes data/test_domain/part_0.json
    argv = ["--data_dir", str(data), "--save_dir", str(tmp_path / "out"), "--oracle", "gold",
            "--top_k", "1"]
    first = run(BENCHMARK, argv)
    assert first["splits"]["test_domain"]["num_steps"] == 2 and set(first["splits"]) == {"test_domain"}
    assert first["formulation"] == "oracle" and first["status"] == {"finished": first["num_examples"]}
    predictions = tmp_path / "out" / "predictions.jsonl"
    records = [json.loads(line) for line in predictions.read_text().splitlines()]
    assert sum(len(r["step_scores"]) for r in records) == 2 and len(records) == first["num_examples"]
    again = run(BENCHMARK, argv)
    assert {k: v for k, v in again.items() if k != "seconds_this_run"} == \
        {k: v for k, v in first.items() if k != "seconds_this_run"}
    assert len(predictions.read_text().splitlines()) == len(records)
    with pytest.raises(EvalSetupError):  # other settings: refused, nothing written
        run(BENCHMARK, [*argv[:-1], "2"])
    assert len(predictions.read_text().splitlines()) == len(records)
    assert run(BENCHMARK, [*argv[:-1], "2", "--overwrite"])["splits"]["test_domain"]["num_steps"] == 2
