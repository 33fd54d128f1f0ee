"""The run_eval entry points end to end: HotpotQA against a small local corpus, GSM8K resume after a
kill, gold-plan mode on the real GSM8K test set."""

import json
import subprocess
import sys

import pytest

from eval.gsm.benchmark import BENCHMARK as GSM
from eval.runner import evaluate, parse_config


def _run(module, *args, cwd):
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_hotpotqa_run_eval_with_local_corpus(scripts, tmp_path, repo_root):
    data = tmp_path / "hotpotqa"
    data.mkdir()
    (data / "test.json").write_text(json.dumps([{"question": t, "answer": a} for _, t, a in scripts.QA_TASKS]
                                               + [{"question": "What is the capital of Japan?", "answer": "Tokyo"}]))
    corpus = scripts.write_corpus(tmp_path / "corpus.jsonl")
    planner = scripts.write_rules(tmp_path / "planner.json", scripts.QA_PLANNER)
    grounder = scripts.write_rules(tmp_path / "grounder.json", scripts.QA_GROUNDER)
    qa = scripts.write_rules(tmp_path / "qa.json", scripts.QA_MODEL)
    save = tmp_path / "out"
    done = _run("eval.hotpotqa.run_eval", "--data_dir", str(data), "--save_dir", str(save), "--planner", planner,
                "--grounder", grounder, "--qa_model", qa, "--corpus", corpus, "--eval_batch_size", "2",
                cwd=repo_root)
    assert done.returncode == 0, done.stderr
    metrics = json.loads((save / "metrics.json").read_text())
    # the first question is answered through the whole trajectory; the unscripted one ends as a recorded error
    assert metrics["num_examples"] == 2 and metrics["em"] == 0.5 and metrics["f1"] == 0.5
    assert metrics["status"] == {"finished": 1, "generation_error": 1}
    # written as each episode ends: the unscripted one first; read by question
    records = sorted((json.loads(line) for line in (save / "predictions.jsonl").read_text().splitlines()),
                     key=lambda record: record["task"] != scripts.QA_TASKS[0][1])
    assert records[0]["prediction"] == "yes" and len(records[0]["steps"]) == 3
    assert records[0]["steps"][0]["calls"][0]["result"] == "WikipediaPage(Scott Derrickson)"
    assert records[1]["status"] == "generation_error" and "no scripted reply" in records[1]["error"]
    assert json.loads((save / "run.json").read_text())["config"]["corpus"] == corpus
    assert "em" in done.stdout and "status.finished" in done.stdout


def test_complex_qa_needs_a_knowledge_source(tmp_path, repo_root):
    done = _run("eval.strategyqa.run_eval", "--planner", "scripted:x", "--grounder", "scripted:y",
                "--save_dir", str(tmp_path), cwd=repo_root)
    assert done.returncode == 2 and "--corpus FILE or --wikipedia" in done.stderr


def test_complex_qa_without_a_qa_model_is_refused_at_start_up(tmp_path, repo_root):
    done = _run("eval.hotpotqa.run_eval", "--planner", "scripted:x", "--grounder", "scripted:y", "--wikipedia",
                "--save_dir", str(tmp_path / "out"), cwd=repo_root)
    assert done.returncode == 2 and done.stderr.strip().splitlines()[-1].endswith(
        "complex QA tools need --qa_model (the model behind the QA tool: a path, a URL or scripted:<file>)")
    assert not (tmp_path / "out").exists()


def test_a_ranker_whose_library_is_missing_is_refused_at_start_up(tmp_path, repo_root, monkeypatch):
    import importlib.util

    from eval.hotpotqa.benchmark import BENCHMARK
    from eval.runner import parse_config

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "sentence_transformers" else real(name, *a))
    with pytest.raises(SystemExit) as exited:
        parse_config(BENCHMARK, ["--planner", "scripted:x", "--grounder", "scripted:y", "--wikipedia", "--qa_model",
                                 "scripted:q", "--retriever_model", "some/bi-encoder"])
    assert exited.value.code == 2


def _gsm_config(tmp_path, scripts, save):
    data = tmp_path / "gsm"
    data.mkdir(exist_ok=True)
    tasks = [*scripts.MATHS_TASKS, ("x", "Unforeseen question?", "5")] * 1
    (data / "test.jsonl").write_text("".join(json.dumps({"question": t, "answer": f"...\n#### {a}"}) + "\n"
                                             for _, t, a in tasks))
    return parse_config(GSM, ["--data_dir", str(data), "--save_dir", str(save), "--eval_batch_size", "1",
                              "--planner", scripts.write_rules(tmp_path / "p.json", scripts.MATHS_PLANNER),
                              "--grounder", scripts.write_rules(tmp_path / "g.json", scripts.MATHS_GROUNDER)])


def test_killed_evaluation_resumes_with_the_same_metrics(scripts, tmp_path):
    whole = evaluate(_gsm_config(tmp_path, scripts, tmp_path / "whole"), GSM)
    assert whole["accuracy"] == pytest.approx(2 / 3) and whole["num_examples"] == 3
    # what a kill leaves: one finished record and a torn second line
    lines = (tmp_path / "whole" / "predictions.jsonl").read_text().splitlines(keepends=True)
    resumed_dir = tmp_path / "resumed"
    resumed_dir.mkdir()
    (resumed_dir / "predictions.jsonl").write_text(lines[0] + lines[1][:40])
    (resumed_dir / "run.json").write_text((tmp_path / "whole" / "run.json").read_text())  # written before any record
    resumed = evaluate(_gsm_config(tmp_path, scripts, resumed_dir), GSM)
    strip = lambda m: {k: v for k, v in m.items() if k != "seconds_this_run"}  # noqa: E731
    assert strip(resumed) == strip(whole)
    records = [json.loads(line) for line in (resumed_dir / "predictions.jsonl").read_text().splitlines()]
    assert sorted(r["id"] for r in records) == ["gsm_0", "gsm_1", "gsm_2"]  # each once, in the order they ended
    # started once more with everything done: nothing is generated, same metrics
    again = evaluate(_gsm_config(tmp_path, scripts, resumed_dir), GSM)
    assert strip(again) == strip(whole)


@pytest.mark.slow
@pytest.mark.shared_data
def test_gold_plan_accuracy_on_gsm8k_test(shared_data, tmp_path, repo_root):
    converted = tmp_path / "converted"
    done = _run("data.prompt_convertion", "--domain", "maths", "--backend", "rules", "--convert_all", "--no_progress",
                "--data_fn", str(shared_data / "gsm8k" / "test_socratic.jsonl"), "--output_dir", str(converted),
                cwd=repo_root)
    assert done.returncode in (0, 1), done.stderr  # 1: some records had no calculation to convert
    done = _run("eval.gsm.run_eval", "--oracle", str(converted / "test_socratic_converted.json"),
                "--save_dir", str(tmp_path / "oracle"), "--eval_batch_size", "128", cwd=repo_root)
    assert done.returncode == 0, done.stderr
    metrics = json.loads((tmp_path / "oracle" / "metrics.json").read_text())
    total = sum(1 for _ in open(shared_data / "gsm8k" / "test_socratic.jsonl"))
    print(f"gold-plan accuracy: {metrics['accuracy']:.4f} of {metrics['num_examples']} converted; "
          f"{metrics['accuracy'] * metrics['num_examples'] / total:.4f} of all {total}")
    assert metrics["num_examples"] >= 0.98 * total
    assert metrics["accuracy"] * metrics["num_examples"] / total >= 0.95
