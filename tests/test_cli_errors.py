"""Common mistakes end in one line, never a traceback, fast, and before any output folder exists;
the eval wrappers agree (paths from the caller's directory, the same flags, --help with defaults).

Every test runs the real CLI in a subprocess from a folder outside the repository.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPTED = {"rules": [["", "Subgoal 1: Add the numbers."]]}
GSM_RECORD = {"question": "Ann has 3 apples and buys 4 more. How many apples does she have?",
              "answer": "Ann has 3+4 = <<3+4=7>>7 apples.\n#### 7"}


def run(command: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 120):
    started = time.monotonic()
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})
    done.seconds = time.monotonic() - started
    return done


def assert_one_line_error(done, *expected: str, code: int = 2) -> None:
    assert done.returncode == code, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr and lines[0].startswith(("error: ", "train: "))
    for text in expected:
        assert text in lines[0], lines[0]


@pytest.fixture
def work(tmp_path):
    """A working folder outside the repository with a scripted module and a small GSM8K-style file."""
    (tmp_path / "scripted.json").write_text(json.dumps(SCRIPTED))
    (tmp_path / "gsm").mkdir()
    (tmp_path / "gsm" / "test.jsonl").write_text(json.dumps(GSM_RECORD) + "\n")
    return tmp_path


def evaluation(benchmark: str, *args: str) -> list[str]:
    return [sys.executable, "-m", f"eval.{benchmark}.run_eval", "--save_dir", "out", *args]


SCRIPTED_MODULES = ("--planner", "scripted:scripted.json", "--grounder", "scripted:scripted.json")


# --------------------------------------------------------------------------- evaluation inputs


def test_model_folder_that_does_not_exist(work):
    done = run(evaluation("gsm", "--data_dir", "gsm", "--model_name_or_path", "checkpoints"), work)
    assert_one_line_error(done, "--model_name_or_path checkpoints: no such folder")
    assert not (work / "out").exists()
    done = run(evaluation("gsm", "--data_dir", "gsm", "--formulation", "cot", "--model_name_or_path", "./nowhere"), work)
    assert_one_line_error(done, "does not exist", "config.json")
    assert not (work / "out").exists()


def test_module_folder_missing_inside_the_model_folder(work):
    (work / "checkpoints" / "lumos_maths_plan_iterative").mkdir(parents=True)
    (work / "checkpoints" / "lumos_maths_plan_iterative" / "config.json").write_text("{}")
    done = run(evaluation("gsm", "--data_dir", "gsm", "--model_name_or_path", "checkpoints"), work)
    assert_one_line_error(done, "lumos_maths_ground_iterative does not exist")
    assert not (work / "out").exists()


@pytest.mark.parametrize("env", [{"HF_HUB_OFFLINE": "1"}, {"HF_ENDPOINT": "https://hub.invalid"}],
                         ids=["HF_HUB_OFFLINE", "unreachable"])
def test_hub_id_offline_fails_within_seconds_naming_the_switch_and_the_layout(work, tmp_path, env):
    env = {**env, "HF_HOME": str(tmp_path / "hf_home")}  # an empty cache
    done = run(evaluation("gsm", "--data_dir", "gsm", "--formulation", "cot",
                          "--model_name_or_path", "some-org/some-model"), work, env)
    assert_one_line_error(done, "'some-org/some-model'", "HF_HUB_OFFLINE", "config.json", "tokenizer")
    assert done.seconds < 10 and not (work / "out").exists()
    # the server too
    done = run([sys.executable, "-m", "lumos.llm.serve", "--model", "some-org/some-model", "--port", "0"], work, env)
    assert_one_line_error(done, "HF_HUB_OFFLINE")
    assert done.seconds < 10


def test_wrong_data_dir(work):
    done = run(evaluation("gsm", "--data_dir", "data/eval/gsm", *SCRIPTED_MODULES), work)
    assert_one_line_error(done, "gsm data data/eval/gsm does not exist", "test.jsonl")
    assert not (work / "out").exists()


def test_a_file_of_another_benchmark(work):
    done = run(evaluation("svamp", "--data_dir", "gsm/test.jsonl", *SCRIPTED_MODULES), work)
    assert_one_line_error(done, "gsm/test.jsonl", "'Body'", "another benchmark's file")
    assert not (work / "out").exists()
    (work / "svamp.json").write_text(json.dumps([{"ID": "a", "Body": "Ann has 3.", "Question": "How many?",
                                                  "Answer": 3}]))
    done = run(evaluation("gsm", "--data_dir", "svamp.json", *SCRIPTED_MODULES), work)
    assert_one_line_error(done, "'question'", "another benchmark's file")
    assert not (work / "out").exists()


def test_scripted_file_that_does_not_exist(work):
    done = run(evaluation("gsm", "--data_dir", "gsm", "--planner", "scripted:nope.json",
                          "--grounder", "scripted:scripted.json"), work)
    assert_one_line_error(done, "--planner scripted:nope.json: no such file")
    assert not (work / "out").exists()


def test_hosted_openai_model_without_a_key(work):
    env = {key: value for key, value in os.environ.items() if key not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    done = subprocess.run(evaluation("gsm", "--data_dir", "gsm", *SCRIPTED_MODULES, "--judge", "openai:gpt-4"),
                          cwd=work, env={**env, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=60)
    assert_one_line_error(done, "--judge openai:gpt-4: set OPENAI_API_KEY")
    assert not (work / "out").exists()


def test_mind2web_file_of_the_wrong_shape(work):
    (work / "tasks.json").write_text(json.dumps({"foo": 1}))
    done = run(evaluation("mind2web", "--data_dir", "tasks.json", *SCRIPTED_MODULES), work)
    assert_one_line_error(done, "tasks.json", "test_task/")
    assert not (work / "out").exists()


def test_webshop_files_of_the_wrong_shape(work):
    (work / "shop").mkdir()
    (work / "shop" / "items_shuffle_1000.json").write_text(json.dumps({"not": "a list"}))
    done = run(evaluation("webshop", "--data_dir", "shop", *SCRIPTED_MODULES), work)
    assert_one_line_error(done, "items_shuffle_1000.json", "JSON list of products")
    assert not (work / "out").exists()
    done = run(evaluation("webshop", "--data_dir", "README.md", *SCRIPTED_MODULES), work)
    assert_one_line_error(done)
    assert not (work / "out").exists()


def test_webshop_replay_inputs(work):
    done = run([sys.executable, "-m", "eval.webshop.run_eval", "--oracle", "actions.jsonl",
                "--save_dir", "out"], work)
    assert_one_line_error(done, "actions.jsonl")
    (work / "actions.jsonl").write_text(json.dumps({"goal": 0}) + "\n")
    done = run([sys.executable, "-m", "eval.webshop.run_eval", "--oracle", "actions.jsonl",
                "--save_dir", "out"], work)
    assert_one_line_error(done, "actions.jsonl:1", "'goal_index'")
    assert not (work / "out").exists()


def test_webshop_replay_resume_is_keyed_by_settings(work):
    replay = [sys.executable, "-m", "eval.webshop.run_eval", "--save_dir", "out", "--max_num_examples", "2",
              "--oracle"]
    (work / "a.jsonl").write_text(json.dumps({"goal_index": 0, "actions": ["search[red]"]}) + "\n")
    (work / "b.jsonl").write_text(json.dumps({"goal_index": 0, "actions": ["search[blue]"]}) + "\n")
    assert run([*replay, "a.jsonl"], work).returncode == 0
    before = (work / "out" / "predictions.jsonl").read_text()
    assert run([*replay, "a.jsonl"], work).returncode == 0  # the same settings resume
    assert_one_line_error(run([*replay, "b.jsonl"], work), "other settings: oracle was", "--overwrite")
    assert (work / "out" / "predictions.jsonl").read_text() == before
    assert run([*replay, "b.jsonl", "--overwrite"], work).returncode == 0


# --------------------------------------------------------------------------- the server


def test_serve_with_a_bad_model(work):
    done = run([sys.executable, "-m", "lumos.llm.serve", "--model", "./no_model", "--port", "0"], work)
    assert_one_line_error(done, "cannot load --model ./no_model", "config.json")
    done = run([sys.executable, "-m", "lumos.llm.serve", "--model", "scripted:nope.json", "--port", "0"], work)
    assert_one_line_error(done, "cannot load --model scripted:nope.json")


def test_serve_on_a_busy_port(work):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = run([sys.executable, "-m", "lumos.llm.serve", "--model", "scripted:scripted.json",
                    "--port", str(port)], work, timeout=30)
    assert_one_line_error(done, f"cannot listen on 127.0.0.1:{port}", "--port")


# --------------------------------------------------------------------------- training


def test_converted_file_given_as_train_file(work):
    converted = work / "gsm8k_converted.json"
    converted.write_text(json.dumps({"id": "gsm8k:1", "task": "2 + 3?", "natural_language_plan": "2+3=5",
                                     "subgoal_plan": "Subgoal 1: Add.\nAction 1-1: R1 = Calculator(2 + 3) = 5",
                                     "ans": "5"}) + "\n")
    env = {"TRAIN_FILE": "gsm8k_converted.json", "OUTPUT_DIR": "trained", "NUM_GPUS": "0"}
    done = run([str(REPO / "train.sh"), "plan", "iterative"], work, env)
    # the 'train: plan/iterative on ...' banner is not printed: the check comes first
    assert_one_line_error(done, str(converted), "converted annotations", "data.process_for_train", "docs/FORMAT.md")
    assert done.seconds < 10 and not (work / "trained").exists()
    (work / "raw.jsonl").write_text(json.dumps(GSM_RECORD) + "\n")
    done = run([str(REPO / "train.sh"), "plan", "iterative"], work, {**env, "TRAIN_FILE": "raw.jsonl"})
    assert_one_line_error(done, "no 'messages' list", "docs/FORMAT.md")


@pytest.mark.parametrize("model, expected", [("./no_model", "does not exist"), ("some-org/some-model", "HF_HUB_OFFLINE")])
def test_train_sh_with_a_model_that_cannot_load(work, tmp_path, model, expected):
    turns = [{"role": "user", "content": "2 + 3?"}, {"role": "assistant", "content": "5"}]
    (work / "train.jsonl").write_text(json.dumps({"dataset": "maths", "id": "maths_0", "messages": turns}) + "\n")
    env = {"TRAIN_FILE": "train.jsonl", "OUTPUT_DIR": "trained", "NUM_GPUS": "0", "MODEL": model,
           "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf_home")}
    done = run([str(REPO / "train.sh"), "plan", "iterative"], work, env)
    assert_one_line_error(done, "train: MODEL: ", expected, "config.json")
    assert done.seconds < 10 and not (work / "trained").exists()


# --------------------------------------------------------------------------- the wrappers agree

WRAPPERS = ("gsm", "svamp", "strategyqa", "hotpotqa", "mind2web", "webshop", "intercode_sql")


@pytest.mark.parametrize("name", WRAPPERS)
def test_every_wrapper_shows_every_flag_with_its_default(name, tmp_path):
    done = run([str(REPO / "scripts" / "eval" / f"{name}.sh"), "--help"], tmp_path)
    assert done.returncode == 0, done.stderr
    for flag in ("--data_dir", "--save_dir", "--max_num_examples", "--no_progress", "--planner", "--grounder",
                 "--overwrite", "--retry_failed"):
        assert flag in done.stdout, flag
    options = done.stdout.split("options:", 1)[1]
    flags = [line.split()[0] for line in options.splitlines() if line.startswith("  --")]
    assert flags and " ".join(options.split()).count("(default: ") >= len(flags)
    assert "FORMAT.md" not in done.stdout.replace("docs/FORMAT.md", "")


def test_wrappers_read_paths_from_the_callers_folder_and_need_no_model_dir(work):
    env = {key: value for key, value in os.environ.items() if key != "MODEL_DIR"}
    done = subprocess.run([str(REPO / "scripts" / "eval" / "gsm.sh"), "--data_dir", "gsm", "--save_dir", "results",
                           *SCRIPTED_MODULES, "--max_num_examples", "1", "--no_progress"], cwd=work, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (work / "results" / "predictions.jsonl").is_file() and "[gsm]" not in done.stderr
    done = subprocess.run([str(REPO / "scripts" / "eval" / "webshop.sh"), "--save_dir", "shop_results",
                           *SCRIPTED_MODULES, "--max_num_examples", "1", "--no_progress"], cwd=work, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (work / "shop_results" / "metrics.json").is_file()


def test_download_data_offline_says_so_within_seconds(tmp_path):
    done = run([str(REPO / "scripts" / "download_data.sh"), "--hf", "--only", "maths_plan_iterative",
                "--out", str(tmp_path / "data")], tmp_path,
               {"HF_ENDPOINT": "https://hub.invalid", "HF_HOME": str(tmp_path / "hf_home")}, timeout=60)
    assert done.returncode == 1 and done.seconds < 10, done.stdout + done.stderr
    assert done.stdout.splitlines()[0].startswith("offline: cannot reach hub.invalid")
    assert "could not fetch ai2lumos/lumos_maths_plan_iterative: offline" in done.stdout


def test_no_help_text_or_error_cites_a_format_file_the_repository_lacks():
    assert (REPO / "docs" / "FORMAT.md").is_file()
    cited = []
    for path in [*REPO.glob("scripts/**/*.sh"), *REPO.glob("scripts/**/*.bash"), REPO / "train.sh",
                 *REPO.glob("data/*.py"), *REPO.glob("eval/**/*.py"), *REPO.glob("train/*.py"), *REPO.glob("bench/*.py")]:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            code = line.split("#", 1)[0]
            if "FORMAT.md" in code.replace("docs/FORMAT.md", "") and ("help=" in code or "Error(" in code
                                                                       or "print(" in code or "fail " in code):
                cited.append(f"{path.relative_to(REPO)}:{number}")
    assert not cited
