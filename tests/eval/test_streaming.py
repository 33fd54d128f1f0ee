"""The runner hands the agent loop every example with at most --active_tasks in progress and writes each
episode as it ends: bounded calls, the same records as one big batch, each example written once."""

import json
from pathlib import Path

import pytest

from eval.gsm.benchmark import BENCHMARK as GSM
from eval.runner import _Modules, evaluate, load_examples, parse_config, run_examples
from lumos.llm.scripted import ScriptedGenerator


class Counting(ScriptedGenerator):
    """A scripted module that records how many prompts each call carried."""

    def __init__(self, rules):
        super().__init__(rules)
        self.sizes: list[int] = []

    def try_generate(self, prompts, **options):
        self.sizes.append(len(prompts))
        return super().try_generate(prompts, **options)


@pytest.fixture
def gsm(tmp_path, scripts):
    data = tmp_path / "gsm"
    data.mkdir()
    tasks = [*scripts.MATHS_TASKS, ("x", "Unforeseen question?", "5")] * 3
    (data / "test.jsonl").write_text("".join(json.dumps({"question": t, "answer": f"...\n#### {a}"}) + "\n"
                                             for _, t, a in tasks))
    planner = scripts.write_rules(tmp_path / "p.json", scripts.MATHS_PLANNER)
    grounder = scripts.write_rules(tmp_path / "g.json", scripts.MATHS_GROUNDER)

    def config(save: str, *flags: str):
        return parse_config(GSM, ["--data_dir", str(data), "--save_dir", str(tmp_path / save), "--planner", planner,
                                  "--grounder", grounder, "--eval_batch_size", "1", *flags])

    return config, scripts


def _records(config) -> dict[str, dict]:
    lines = (Path(config.save_dir) / "predictions.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    for record in records:
        record.pop("seconds")
        for step in record["steps"]:
            for key in [k for k in step if k.endswith("seconds")]:
                step.pop(key)
            for call in step.get("calls", []):
                call.pop("seconds", None)
    assert len({r["id"] for r in records}) == len(records)  # each example written once
    return {record["id"]: record for record in records}


def test_a_window_gives_the_same_records_as_one_batch(gsm):
    config, _ = gsm
    windowed, whole = config("windowed", "--active_tasks", "2"), config("whole", "--active_tasks", "9")
    metrics = evaluate(windowed, GSM)
    assert strip(metrics) == strip(evaluate(whole, GSM))
    assert metrics["num_examples"] == 9 and metrics["accuracy"] == pytest.approx(6 / 9)
    assert _records(windowed) == _records(whole)


def strip(metrics: dict) -> dict:
    return {key: value for key, value in metrics.items() if key != "seconds_this_run"}


def test_episodes_are_handed_over_as_they_end_with_calls_bounded_by_the_window(gsm):
    make, scripts = gsm
    config = make("direct", "--active_tasks", "2")
    modules = _Modules(config, GSM)
    planner = modules._generators[config.planner] = Counting(scripts.MATHS_PLANNER)
    modules._generators[config.grounder] = Counting(scripts.MATHS_GROUNDER)
    written: list[tuple[str, int]] = []
    try:
        examples = load_examples(config, GSM)
        run_examples(examples, config, GSM, modules, lambda example, episode: written.append(
            (episode.id, len(planner.sizes))))
    finally:
        modules.close()
    assert sorted(episode_id for episode_id, _ in written) == sorted(e.id for e in examples)
    assert max(planner.sizes) == 2 and planner.sizes.count(2) >= len(planner.sizes) - 1
    # the first episodes are written long before the last planner call
    assert written[0][1] < len(planner.sizes) // 2


def test_active_tasks_below_one_is_refused(gsm, capsys):
    config, _ = gsm
    with pytest.raises(SystemExit):
        config("zero", "--active_tasks", "0")
    assert "--active_tasks must be at least 1" in capsys.readouterr().err
