"""A ranker model that cannot be used stops the run at start-up with one line naming the flag and the value,
before anything is written, for each ranker flag: run_eval's --retriever_model (complex QA's
ParagraphRetrieve), WebShop's --feature_ranker (FeatureRetrieve/Pick under --prompt_style original) and
Mind2Web's --ranker_model (the candidate pools). A missing path, a folder without a model, a hub id not in
the local cache while the hub is off or unreachable are found when the flags are read; a model that fails
to load (here: garbage weights) when the run starts, before the first task. A good local model still runs,
and a run with nothing left to do does not load its ranker at all.

The errors come from the real CLI in a subprocess, from a folder outside the repository; the runs in-process.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.test_cli_errors import SCRIPTED_MODULES, assert_one_line_error, evaluation, run
from tests.tools.ranker_models import build_broken, build_cross_encoder, build_models

REPO = Path(__file__).resolve().parent.parent
MISSING = "./no-such-ranker"
HUB_ID = "some-org/no-such-ranker"


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("ranker_models")
    paths = build_models(root)
    paths["cross2"] = build_cross_encoder(root / "cross2", num_labels=2, seed=1)
    paths["cross3"] = build_cross_encoder(root / "cross3", num_labels=3, seed=2)
    paths["broken_cross"] = build_broken(root / "broken_cross", paths["cross"])
    paths["broken_bi"] = build_broken(root / "broken_bi", paths["bi"])
    return paths


def _mind2web_data(root: Path) -> Path:
    from tests.web.test_mind2web_loop import _write_data

    return _write_data(root)


@pytest.fixture
def work(tmp_path, scripts):
    """A folder outside the repository: scripted modules, a HotpotQA file and corpus, Mind2Web tasks, an
    empty model folder."""
    (tmp_path / "scripted.json").write_text(json.dumps({"rules": [["", "Subgoal 1: Do it."]]}))
    (tmp_path / "hotpotqa").mkdir()
    (tmp_path / "hotpotqa" / "test.json").write_text(json.dumps([{"question": t, "answer": a}
                                                                  for _, t, a in scripts.QA_TASKS]))
    scripts.write_corpus(tmp_path / "corpus.jsonl")
    _mind2web_data(tmp_path / "mind2web")
    (tmp_path / "not_a_model").mkdir()
    (tmp_path / "not_a_model" / "notes.txt").write_text("weights will go here\n")
    return tmp_path


# flag -> (benchmark, its other arguments, the kind of model it takes: a key of the models fixture)
FLAGS = {
    "--retriever_model": ("hotpotqa", ["--data_dir", "hotpotqa", "--corpus", "corpus.jsonl", *SCRIPTED_MODULES,
                                       "--qa_model", "scripted:scripted.json"], "bi"),
    "--feature_ranker": ("webshop", ["--prompt_style", "original", *SCRIPTED_MODULES], "cross"),
    "--ranker_model": ("mind2web", ["--data_dir", "mind2web", *SCRIPTED_MODULES], "cross"),
}


def _cli(flag: str, value: str, work: Path, env: dict[str, str] | None = None):
    benchmark, args, _ = FLAGS[flag]
    return run(evaluation(benchmark, *args, flag, value), work, env)


@pytest.mark.parametrize("flag", FLAGS)
def test_a_missing_path_is_one_line_at_start_up(work, flag):
    done = _cli(flag, MISSING, work)
    assert_one_line_error(done, f"error: {flag} {MISSING}: no such folder {MISSING}: expected")
    assert not (work / "out").exists() and done.seconds < 10


@pytest.mark.parametrize("flag", FLAGS)
def test_a_folder_without_a_model_is_one_line_at_start_up(work, flag):
    done = _cli(flag, "not_a_model", work)
    assert_one_line_error(done, f"error: {flag} not_a_model: folder not_a_model holds no model "
                                "(no config.json or modules.json)")
    assert not (work / "out").exists() and done.seconds < 10


@pytest.mark.parametrize("env,expected", [
    ({"HF_HUB_OFFLINE": "1"}, "HF_HUB_OFFLINE=1 keeps the hub off"),
    ({"HF_HUB_OFFLINE": "", "TRANSFORMERS_OFFLINE": "", "HF_ENDPOINT": "https://hub.invalid"},
     "the hub cannot be reached"),
], ids=["HF_HUB_OFFLINE", "unreachable"])
@pytest.mark.parametrize("flag", FLAGS)
def test_a_hub_id_not_in_the_cache_is_one_line_at_start_up(work, flag, env, expected):
    env = {**env, "HF_HOME": str(work / "hf_home")}  # an empty cache
    done = _cli(flag, HUB_ID, work, env)
    assert_one_line_error(done, f"error: {flag} {HUB_ID}: no folder {HUB_ID} here and {HUB_ID!r} is not in the "
                                "local Hugging Face cache", expected)
    assert not (work / "out").exists() and done.seconds < 10


@pytest.mark.parametrize("flag", FLAGS)
def test_a_model_that_fails_to_load_is_one_line_before_the_first_task(work, models, flag):
    kind = FLAGS[flag][2]
    broken = models[f"broken_{kind}"]
    done = _cli(flag, broken, work)
    encoder = "bi-encoder" if kind == "bi" else "cross-encoder"
    assert_one_line_error(done, f"error: {flag} {broken}: loading {broken!r} as a {encoder} failed: ")
    assert not (work / "out").exists()


@pytest.mark.parametrize("flag,value,expected", [
    ("--feature_ranker", "cross3", "is a classifier of 3 labels"),
    ("--ranker_model", "cross3", "is a classifier of 3 labels"),
    ("--feature_ranker", "bi", "is a sentence-transformers embedding model (SentenceTransformer), not a cross-encoder"),
    ("--ranker_model", "bert", "is not a cross-encoder: its config.json names BertModel"),
    ("--retriever_model", "cross", "is a cross-encoder (BertForSequenceClassification), not a sentence-transformers"),
], ids=["feature_3_labels", "mind2web_3_labels", "feature_bi", "mind2web_bare", "retriever_cross"])
def test_a_model_of_another_kind_is_one_line_at_start_up(work, models, flag, value, expected):
    done = _cli(flag, models[value], work)
    assert_one_line_error(done, f"error: {flag} {models[value]}: folder {models[value]} {expected}")
    assert not (work / "out").exists() and done.seconds < 10


# --------------------------------------------------------------------------- good models run


def test_paragraph_retrieve_runs_with_a_good_local_model(work, models, scripts):
    from eval.hotpotqa.benchmark import BENCHMARK
    from eval.runner import run as run_eval

    planner = scripts.write_rules(work / "planner.json", scripts.QA_PLANNER)
    grounder = scripts.write_rules(work / "grounder.json", scripts.QA_GROUNDER)
    qa = scripts.write_rules(work / "qa.json", scripts.QA_MODEL)
    metrics = run_eval(BENCHMARK, ["--data_dir", str(work / "hotpotqa"), "--corpus", str(work / "corpus.jsonl"),
                                   "--planner", planner, "--grounder", grounder, "--qa_model", qa,
                                   "--retriever_model", models["bi"], "--save_dir", str(work / "out"),
                                   "--no_progress"])
    assert metrics["num_examples"] == 1
    (record,) = map(json.loads, (work / "out" / "predictions.jsonl").read_text().splitlines())
    calls = record["steps"][0]["calls"]
    assert calls[1]["tool"] == "ParagraphRetrieve"
    paragraphs = {paragraph["text"] for paragraph in scripts.QA_CORPUS if paragraph["title"] == "Scott Derrickson"}
    assert calls[1]["result"] in paragraphs  # ranked by the model, no tool error


@pytest.mark.parametrize("model", ["cross", "cross2"], ids=["one_label", "two_labels"])
def test_webshop_features_are_ranked_by_a_good_local_cross_encoder(tmp_path, models, model):
    from eval.runner import run as run_eval
    from eval.webshop.benchmark import BENCHMARK
    from tests.web.test_webshop_original import _GROUND, _PLAN

    (tmp_path / "plan.json").write_text(json.dumps({"rules": _PLAN}))
    (tmp_path / "ground.json").write_text(json.dumps({"rules": _GROUND}))
    metrics = run_eval(BENCHMARK, ["--prompt_style", "original", "--planner", f"scripted:{tmp_path / 'plan.json'}",
                                   "--grounder", f"scripted:{tmp_path / 'ground.json'}", "--feature_ranker",
                                   models[model], "--max_num_examples", "3", "--save_dir", str(tmp_path / "out"),
                                   "--no_progress"])
    assert metrics["num_examples"] == 3
    records = {r["id"]: r for r in map(json.loads, (tmp_path / "out" / "predictions.jsonl").read_text().splitlines())}
    bank = records["webshop_1"]  # its plan runs FeatureRetrieve and Pick: scored by the model
    assert bank["status"] == "finished", bank.get("error")
    assert bank["webshop"]["env_actions"][-1] == "click[buy now]"


def test_mind2web_pools_are_ranked_by_a_good_local_model_and_a_finished_run_does_not_load_it(tmp_path, models):
    from eval.mind2web.benchmark import BENCHMARK
    from eval.runner import EvalSetupError
    from eval.runner import run as run_eval

    ranker = tmp_path / "ranker"
    shutil.copytree(models["cross"], ranker)
    argv = ["--data_dir", str(_mind2web_data(tmp_path / "data")), "--oracle", "gold", "--ranker_model", str(ranker),
            "--top_k", "3", "--save_dir", str(tmp_path / "out"), "--no_progress"]
    metrics = run_eval(BENCHMARK, argv)
    assert metrics["num_examples"] == 3 and metrics["status"] == {"finished": 3}
    predictions = (tmp_path / "out" / "predictions.jsonl").read_text()
    # the model breaks: a run with nothing left to do resumes without loading it ...
    shutil.rmtree(ranker)
    build_broken(ranker, models["cross"])
    assert run_eval(BENCHMARK, argv)["num_examples"] == 3
    # ... and a run that starts afresh stops before it clears or writes anything
    with pytest.raises(EvalSetupError, match=r"^--ranker_model .*ranker: loading .* as a cross-encoder failed"):
        run_eval(BENCHMARK, [*argv, "--overwrite"])
    assert (tmp_path / "out" / "predictions.jsonl").read_text() == predictions


def test_a_cached_hub_id_runs_offline_through_the_cli(work, models):
    """WebShop's default --feature_ranker (a hub id), found in the local cache with the hub off, loads and runs."""
    from eval.webshop.original import FEATURE_RANKER
    from tests.web.test_webshop_original import _GROUND, _PLAN

    commit = "0" * 40
    repo = work / "hf_home" / "hub" / f"models--{FEATURE_RANKER.replace('/', '--')}"
    shutil.copytree(models["cross"], repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    (work / "plan.json").write_text(json.dumps({"rules": _PLAN}))
    (work / "ground.json").write_text(json.dumps({"rules": _GROUND}))
    done = run(evaluation("webshop", "--prompt_style", "original", "--planner", "scripted:plan.json", "--grounder",
                          "scripted:ground.json", "--max_num_examples", "2", "--no_progress"), work,
               {"HF_HUB_OFFLINE": "1", "HF_HOME": str(work / "hf_home")})
    assert done.returncode == 0, done.stderr
    assert "error" not in done.stderr.lower() and (work / "out" / "metrics.json").is_file()
