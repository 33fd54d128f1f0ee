"""Resuming is keyed by settings: a save_dir written with other settings is refused in one line and never
mixed; --overwrite starts afresh; --retry_failed re-runs only the episodes that ended in generation_error."""

import json
import subprocess
import sys

import pytest

from eval.gsm.benchmark import BENCHMARK as GSM
from eval.runner import EvalSetupError, evaluate, parse_config


@pytest.fixture
def setup(tmp_path, scripts):
    """Two GSM8K-style files (same tasks, different contents), scripted modules and gold plans."""
    data = tmp_path / "gsm"
    data.mkdir()
    lines = "".join(json.dumps({"question": t, "answer": f"...\n#### {a}"}) + "\n" for _, t, a in scripts.MATHS_TASKS)
    (data / "test.jsonl").write_text(lines)
    other = tmp_path / "gsm_other"
    other.mkdir()
    (other / "test.jsonl").write_text(lines.replace("#### 18", "#### 19"))
    oracle = tmp_path / "oracle.jsonl"
    oracle.write_text(json.dumps({"id": "o1", "task": "2 + 3?", "subgoal_plan": "Subgoal 1: Add.\n"
                                  "Action 1-1: R1 = Calculator(2 + 3) = 5", "ans": "5"}) + "\n")
    oracle_other = tmp_path / "oracle_other.jsonl"
    oracle_other.write_text(oracle.read_text().replace('"ans": "5"', '"ans": "6"'))
    for role in ("plan", "ground"):  # a folder of modules (never loaded here: the settings differ first)
        (tmp_path / "models" / f"lumos_maths_{role}_iterative").mkdir(parents=True)
        (tmp_path / "models" / f"lumos_maths_{role}_iterative" / "config.json").write_text("{}")
    return {
        "models": tmp_path / "models",
        "data": data, "other": other, "oracle": oracle, "oracle_other": oracle_other,
        "planner": scripts.write_rules(tmp_path / "planner.json", scripts.MATHS_PLANNER),
        "planner2": scripts.write_rules(tmp_path / "planner2.json", scripts.MATHS_PLANNER),
        "grounder": scripts.write_rules(tmp_path / "grounder.json", scripts.MATHS_GROUNDER),
        "save": tmp_path / "out",
    }


def _args(setup, **changes):
    args = {"--data_dir": str(setup["data"]), "--save_dir": str(setup["save"]), "--planner": setup["planner"],
            "--grounder": setup["grounder"], "--eval_batch_size": "2"}
    args.update(changes)
    return [item for flag, value in args.items() if value is not None
            for item in ((flag,) if value is True else (flag, value))]


def _run(setup, **changes):
    return evaluate(parse_config(GSM, _args(setup, **changes)), GSM)


@pytest.mark.parametrize("change, named", [
    ({"--formulation": "lumos_onetime"}, "formulation was 'lumos_iterative' (now 'lumos_onetime')"),
    ({"--prompt_style": "original"}, "prompt_style was 'tulu' (now 'original')"),
    # original scoring of a lumos formulation needs the original prompt style: both differ, both are named
    ({"--prompt_style": "original", "--scoring": "original"}, "scoring was 'standard' (now 'original')"),
    ({"--planner": "planner2"}, "planner was 'scripted:"),
    ({"--model_name_or_path": "models", "--planner": None, "--grounder": None}, "model_name_or_path was None"),
    ({"--data_dir": "other"}, "data was '"),
    ({"--max_steps": "3"}, "max_steps was 10 (now 3)"),
])
def test_other_settings_are_refused_in_one_line_and_nothing_is_mixed(setup, change, named):
    first = _run(setup)
    before = (setup["save"] / "predictions.jsonl").read_bytes()
    change = {flag: str(setup[value]) if value in setup else value for flag, value in change.items()}
    with pytest.raises(EvalSetupError) as refused:
        _run(setup, **change)
    message = str(refused.value)
    assert "\n" not in message and named in message and "--overwrite" in message
    assert (setup["save"] / "predictions.jsonl").read_bytes() == before
    # settings that are not settings: more examples, another batch size, the same run started again
    again = _run(setup, **{"--eval_batch_size": "1"})
    assert {k: v for k, v in again.items() if k != "seconds_this_run"} == \
        {k: v for k, v in first.items() if k != "seconds_this_run"}


def test_oracle_file_contents_are_a_setting(setup):
    evaluate(parse_config(GSM, ["--oracle", str(setup["oracle"]), "--save_dir", str(setup["save"])]), GSM)
    with pytest.raises(EvalSetupError, match="oracle was '"):
        evaluate(parse_config(GSM, ["--oracle", str(setup["oracle_other"]), "--save_dir", str(setup["save"])]), GSM)
    # the same contents under another name are the same data
    copy = setup["oracle"].with_name("copy.jsonl")
    copy.write_bytes(setup["oracle"].read_bytes())
    metrics = evaluate(parse_config(GSM, ["--oracle", str(copy), "--save_dir", str(setup["save"])]), GSM)
    assert metrics["accuracy"] == 1.0


def test_overwrite_starts_afresh(setup):
    _run(setup)
    metrics = _run(setup, **{"--formulation": "lumos_onetime", "--overwrite": True})
    records = [json.loads(line) for line in (setup["save"] / "predictions.jsonl").read_text().splitlines()]
    assert [r["formulation"] for r in records] == ["onetime"] * len(records)
    assert metrics["formulation"] == "lumos_onetime" and metrics["num_examples"] == len(records)
    run = json.loads((setup["save"] / "run.json").read_text())
    assert run["config"]["settings"]["formulation"] == "lumos_onetime"


def test_retry_failed_reruns_only_generation_errors(setup, scripts, tmp_path):
    # the planner "server" knows only the first task: the second ends in generation_error
    path = tmp_path / "planner.json"
    scripts.write_rules(path, [rule for rule in scripts.MATHS_PLANNER if not rule[0].startswith("Task: A robe")])
    first = _run(setup)
    lines = (setup["save"] / "predictions.jsonl").read_text().splitlines()
    status = {json.loads(line)["task"][:5]: json.loads(line)["status"] for line in lines}
    assert status == {"Janet": "finished", "A rob": "generation_error"}
    # started again as it was: nothing is retried
    assert _run(setup)["status"] == first["status"]
    # the server is back with every reply: --retry_failed re-runs the failed episode only
    scripts.write_rules(path, scripts.MATHS_PLANNER)
    metrics = _run(setup, **{"--retry_failed": True})
    after = (setup["save"] / "predictions.jsonl").read_text().splitlines()
    finished = next(line for line in lines if json.loads(line)["status"] == "finished")
    assert after[0] == finished  # the finished record, byte for byte, kept ahead of the re-run one
    assert metrics["status"] == {"finished": len(after)} and metrics["accuracy"] == 1.0
    assert len(after) == len(lines)


def test_refusal_through_the_cli_is_one_line_and_leaves_the_folder_as_it_was(setup, repo_root):
    _run(setup)
    before = sorted(p.name for p in setup["save"].iterdir())
    done = subprocess.run([sys.executable, "-m", "eval.gsm.run_eval", *_args(setup, **{"--prompt_style": "original"})],
                          cwd=repo_root, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: ")
    assert "prompt_style was 'tulu' (now 'original')" in done.stderr
    assert sorted(p.name for p in setup["save"].iterdir()) == before


def test_predictions_without_run_json_are_not_resumed(setup):
    setup["save"].mkdir()
    (setup["save"] / "predictions.jsonl").write_text(json.dumps({"id": "gsm_0", "status": "finished"}) + "\n")
    with pytest.raises(EvalSetupError, match="no run.json"):
        _run(setup)
    _run(setup, **{"--overwrite": True})
