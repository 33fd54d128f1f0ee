"""``--prompt_style original`` for WebShop against the reference run of the released evaluation
(lumos_reference/B_eval/webshop: the 24-product sample, 4 goals, scripted replies): the same
planner and grounder prompts byte for byte, the same environment actions (replays included), the
same action results and rewards, the original's averaging under ``--scoring original``.

The reference replaced Lucene search and the STS cross-encoder by stand-ins whose every call it
recorded; the stand-ins here answer with those recordings."""

from __future__ import annotations

import json

import pytest

from eval.webshop.original import (OriginalActionError, OriginalShopSession, OriginalWebShopRun, read_action)
from eval.webshop.original_prompts import first_ground_prompt, first_plan_prompt
from lumos.llm.scripted import ScriptedGenerator
from lumos.webshop.catalogue import load_catalogue
from lumos.webshop.env import WebShopTextEnv


@pytest.fixture(scope="module")
def reference(shared_data):
    folder = shared_data / "lumos_reference" / "B_eval" / "webshop"
    records = [json.loads(line) for line in (folder / "lumos_iterative.transcripts.jsonl").read_text().splitlines()]
    return folder, records


class RecordedSearch:
    """The reference's search stand-in: the hits it recorded per (lower-cased) query."""

    def __init__(self, records):
        self.hits = {call["query"]: [asin for asin, _ in call["hits"]]
                     for record in records for call in record["calls"]
                     if call.get("tool", "").startswith("LuceneSearcher")}

    def search(self, keywords: str, k: int = 50) -> list[str]:
        return self.hits[keywords.lower()][:k]


class RecordedRanker:
    """The reference's cross-encoder stand-in: the scores it recorded per (query, texts)."""

    def __init__(self, records):
        self.table = {(call["query"], tuple(call["texts"])): call["scores"]
                      for record in records for call in record["calls"]
                      if call.get("tool", "").startswith("CrossEncoder")}

    def scores(self, query, texts):
        return self.table[(query, tuple(texts))]


def _replay_reference(reference):
    folder, records = reference
    catalogue = load_catalogue(folder / "input")
    goals = [dict(record["goal"], product_category=catalogue.by_asin[record["goal"]["asin"]]["product_category"])
             for record in records]
    search, ranker = RecordedSearch(records), RecordedRanker(records)
    sent = {}  # every prompt the original sent to a goal still running -> the scripted reply
    for record in records:
        for call in record["calls"]:
            if call["type"] == "lm" and not call["already_stopped_before_call"]:
                sent[call["prompt"]] = call["scripted_reply"]
    planner = ScriptedGenerator(lambda prompt: sent[prompt])
    grounder = ScriptedGenerator(lambda prompt: sent[prompt])
    sessions = [OriginalShopSession(WebShopTextEnv(catalogue, goals=goals, search_engine=search,
                                                   search_anywhere=True), index, ranker)
                for index in range(len(records))]
    run = OriginalWebShopRun(planner, grounder, keep_prompts=True)
    episodes = run.run([(f"webshop_{i}", record["question"], session)
                        for i, (record, session) in enumerate(zip(records, sessions))])
    return records, run, episodes, sessions


@pytest.fixture(scope="module")
def replayed(reference):
    return _replay_reference(reference)


def test_first_prompts_are_the_released_ones(reference):
    _, records = reference
    for record in records:
        calls = [call for call in record["calls"] if call["type"] == "lm"]
        subgoal = calls[0]["reply"].split("No, I will keep planning.")[-1].strip()
        assert first_plan_prompt(record["question"]) == calls[0]["prompt"]
        assert first_ground_prompt(record["question"], subgoal) == calls[1]["prompt"]
        assert calls[1]["prompt"].endswith("\n<|assistant|>\nR1 = ") and calls[1]["add_special_tokens"] is False


def test_every_prompt_is_sent_byte_for_byte(replayed):
    records, run, episodes, _ = replayed
    for index, record in enumerate(records):
        expected = [(call["module"], call["prompt"]) for call in record["calls"]
                    if call["type"] == "lm" and not call["already_stopped_before_call"]]
        ours = [(module, prompt) for goal_id, module, prompt in run.prompts if goal_id == f"webshop_{index}"]
        assert ours == expected, index
    # the quirks the prompts carry
    grounder_late = [prompt for goal_id, module, prompt in run.prompts if module == "ground"][-1]
    assert "<|assistant|>\nR1 = R1 = Search(" in grounder_late
    planner_late = [prompt for goal_id, module, prompt in run.prompts if goal_id == "webshop_0"][-2]
    assert "The executed result for Subgoal 2 is buy now\n" in planner_late
    assert "The execution result for Subgoal 2 is short, casual, shoulder.\n" in planner_late


def test_the_same_environment_actions_results_and_rewards(replayed):
    records, _, episodes, sessions = replayed
    for record, episode, session in zip(records, episodes, sessions):
        env_calls = [call for call in record["calls"] if call["type"] == "env"]
        assert [c["action"] for c in env_calls if c["fn"] == "env.step"] == session.record()["env_actions"]
        assert sum(c["fn"] == "env.reset" for c in env_calls) == session.record()["resets"]
        executed = [e for rnd in record["rounds"] for e in rnd["executed"] if rnd["module"] == "ground"]
        ours = [call for step in episode.steps for call in step.calls]
        assert [e["action"] for e in executed] == [call.action for call in ours]
        for expected, call in zip(executed, ours):
            if expected["returned"] is not None:  # execute's own return; the loop then reads "" as "buy now"
                assert call.result == (str(expected["returned"][1]) or "buy now"), call.action
        assert session.reward == record["reward"]
        rewarded = [call["returned"] for call in record["calls"] if call.get("fn") == "get_reward"]
        if rewarded:  # WebShop's get_reward, component by component
            assert [session.reward, session.purchase["reward_info"]] == rewarded[0]
        assert session.variables == record["final_state"]["results"]  # every variable, "buy now" for empty
    assert [episode.status for episode in episodes] == ["tool_error", "finished", "parse_error", "step_limit"]
    assert "IndexError" in episodes[0].error  # Pick over a one-item search
    # --scoring original: a goal counts in the average when it ended (bought or failed), as there
    assert [float(e.status != "step_limit") for e in episodes] == [r["score"]["in_denominator"] for r in records]
    assert [session.reward or 0.0 for session in sessions] == [r["score"]["reward_added"] for r in records]
    assert sessions[1].purchase["asin"] == "SMPB000002" and sessions[1].purchase["options"] == {"color": "pink",
                                                                                                "size": "7"}


def test_observations_match_webshop_pages_until_the_purchase(reference):
    """Our text environment shows WebShop's pages: the observation of every step before buying."""
    folder, records = reference
    catalogue = load_catalogue(folder / "input")
    goals = [dict(r["goal"], product_category=catalogue.by_asin[r["goal"]["asin"]]["product_category"])
             for r in records]
    env = WebShopTextEnv(catalogue, goals=goals, search_engine=RecordedSearch(records), search_anywhere=True)
    checked = 0
    for index, record in enumerate(records):
        for call in record["calls"]:
            if call["type"] != "env":
                continue
            if call["fn"] == "env.reset":
                assert env.reset(index) == call["observation"]
            elif not call["done"]:
                assert env.step(call["action"]).observation == call["observation"], call["action"]
                checked += 1
    assert checked > 80


def test_reading_actions_as_the_original_does():
    assert read_action("R3 = FeatureRetrieve(R2, Query: a (b) c).") == ("R3", "FeatureRetrieve", "R2, Query: a (b) c")
    assert read_action("R4 = Click(< prev)") == ("R4", "Click", "< prev")
    assert read_action("Click(R7)")[1] != "Click"  # no variable: no action, as in the original
    assert read_action("")[1] == ""


def test_feature_retrieve_loses_the_last_character_and_empty_reads_buy_now():
    class Echo:
        def __init__(self):
            self.queries = []

        def scores(self, query, texts):
            self.queries.append(query)
            return [float(len(text)) for text in texts]

    catalogue = load_catalogue()
    ranker = Echo()
    session = OriginalShopSession(WebShopTextEnv(catalogue, search_anywhere=True), 0, ranker)
    session.variables["R2"] = ["back to search", "< prev", "description", "features", "reviews", "buy now",
                               "red", "navy blue", "s", "xl"]
    assert session.execute("R3 = FeatureRetrieve(R2, Query: red jacket).") == ("R3", "navy blue, red, xl")
    assert ranker.queries == ["red jacke"]
    session.variables["R4"] = session.variables["R2"][:6]
    assert session.execute("R5 = FeatureRetrieve(R4, Query: x)") == ("R5", "buy now")
    with pytest.raises(OriginalActionError):
        session.execute("R6 = Buy(now)")


# ----------------------------------------------------------------------------- through run_eval

_KEEP = "No, I will keep planning. "
_PLAN = [  # the exemplars' five subgoals, whatever the goal
    (r"executed result for Subgoal 4 is", _KEEP + "Subgoal 5: Buy this item by selecting its relevant features."),
    (r"executed result for Subgoal 3 is", _KEEP + "Subgoal 4: Pick up the most related one from the two relevant "
                                                  "items according to the product names and their features."),
    (r"executed result for Subgoal 2 is", _KEEP + "Subgoal 3: Select the most relevant features of the item."),
    (r"executed result for Subgoal 1 is", _KEEP + "Subgoal 2: Select the most relevant features of the item."),
    (r"", "Subgoal 1: Search two relevant items and the product names according to the instruction."),
]


def _ground(task_start: str, replies: list[str]) -> list[tuple[str, str]]:
    return [(rf"(?s)Task: {task_start}.*Subgoal to be grounded: Subgoal {k}: [^\n]*\n<\|assistant\|>\n(R1 = )?$", reply)
            for k, reply in enumerate(replies, start=1)]


_GROUND = (
    _ground("i need a fast charging", [  # goal 1: bought with its option, reward 1
        "Search(usb c power bank).",
        "R2 = Click(smpb000013); R3 = FeatureRetrieve(R2, Query: blue fast charging power bank).",
        "R4 = Click(< prev); R5 = Click(smpb000013); R6 = FeatureRetrieve(R5, Query: blue power bank).",
        "R7 = Pick(Item_names: R1, Item_features: [R3], Query: blue fast charging power bank).",
        "R8 = Click(< prev); R9 = Click(R7); R10 = Click(blue); R11 = Click(buy now)."])
    + _ground("i need a waterproof rain jacket", [  # goal 0: never buys: still running after 10 rounds
        "Search(kids rain jacket).", "R2 = Click(smpb000023).", "R3 = Click(< prev).", "R4 = Click(smpb000023).",
        "R5 = Click(pink)."])
    + _ground("find me a high performance laptop", ["Buy(laptop)."])  # goal 2: no such action
)


def test_run_eval_original_mode_and_original_scoring(tmp_path):
    from eval.runner import run
    from eval.webshop.benchmark import BENCHMARK

    main = lambda argv: run(BENCHMARK, argv)  # noqa: E731

    (tmp_path / "plan.json").write_text(json.dumps({"rules": _PLAN}))
    (tmp_path / "ground.json").write_text(json.dumps({"rules": _GROUND}))
    argv = ["--prompt_style", "original", "--planner", f"scripted:{tmp_path / 'plan.json'}",
            "--grounder", f"scripted:{tmp_path / 'ground.json'}", "--feature_ranker", "bm25",
            "--max_num_examples", "3", "--eval_batch_size", "2"]
    standard = main([*argv, "--save_dir", str(tmp_path / "standard")])
    lines = (tmp_path / "standard" / "predictions.jsonl").read_text().splitlines()
    records = {r["id"]: r for r in map(json.loads, lines)}
    bank, jacket, laptop = records["webshop_1"], records["webshop_0"], records["webshop_2"]
    assert bank["status"] == "finished" and bank["scores"] == {"reward": 1.0, "success": 1.0}
    assert bank["webshop"]["purchase"]["options"] == {"color": "blue"}
    assert bank["webshop"]["env_actions"][-1] == "click[buy now]" and bank["webshop"]["resets"] == 5
    assert jacket["status"] == "step_limit" and len(jacket["steps"]) == 5
    assert laptop["status"] == "parse_error" and "'Buy'" in laptop["error"]
    assert standard["average_reward"] == pytest.approx(1 / 3, abs=1e-6) and standard["scoring"] == "standard"
    original = main([*argv, "--save_dir", str(tmp_path / "original"), "--scoring", "original"])
    # the released evaluation's average: the goal still running after 10 rounds is left out
    assert original["scoring"] == "original" and original["num_ended"] == 2
    assert original["average_reward"] == 0.5 and original["success_rate"] == 0.5


def test_synthetic_goals_are_the_ones_the_released_evaluation_drew(reference):
    """WebShop's synthetic goals in WebShop's order; only the price bound (an unseeded draw there) differs."""
    folder, _ = reference
    probe = json.loads((folder / "input" / "probe.json").read_text())
    goals = load_catalogue(folder / "input", goals="synthetic").goals
    assert len(goals) == probe["num_goals_loaded"] == 106
    for ours, theirs in zip(goals, probe["goals"]):
        expected = theirs["goal"]
        for key in ("asin", "attributes", "goal_options", "query", "name"):
            assert ours[key] == expected[key], key
        assert ours["instruction_text"].rsplit(", and price lower than", 1)[0] == \
            expected["instruction_text"].rsplit(", and price lower than", 1)[0]
    with pytest.raises(ValueError):
        load_catalogue(folder / "input", goals="made up")


def test_flags_of_our_loop_are_refused_under_original(tmp_path, capsys):
    from eval.runner import main
    from eval.webshop.benchmark import BENCHMARK

    for extra in (["--feedback", "completion"], ["--max_steps", "30"]):
        assert main(BENCHMARK, ["--prompt_style", "original", "--planner", "scripted:x", "--grounder", "scripted:y",
                                "--save_dir", str(tmp_path), *extra]) == 2
        assert "do not apply under --prompt_style original" in capsys.readouterr().err


def test_a_feature_ranker_whose_library_is_missing_is_one_line(tmp_path, capsys, monkeypatch):
    import importlib.util

    from eval.runner import main
    from eval.webshop.benchmark import BENCHMARK

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "sentence_transformers" else real(name, *a))
    assert main(BENCHMARK, ["--prompt_style", "original", "--planner", "scripted:x", "--grounder", "scripted:y",
                            "--save_dir", str(tmp_path / "out")]) == 2
    assert "--feature_ranker cross-encoder/stsb-roberta-large needs sentence-transformers" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_served_checkpoints_get_the_released_request(tmp_path):
    """Through an OpenAI-compatible server (vLLM's shape): no BOS asked for, 512 new tokens, cut at a newline."""
    from eval.runner import run
    from eval.webshop.benchmark import BENCHMARK

    main = lambda argv: run(BENCHMARK, argv)  # noqa: E731
    from lumos.llm.serve import OpenAICompatibleServer

    class Recording(OpenAICompatibleServer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.bodies = []

        def generate(self, kind, body):
            self.bodies.append(body)
            return super().generate(kind, body)

    with Recording(ScriptedGenerator(_PLAN)) as planner, Recording(ScriptedGenerator(_GROUND)) as grounder:
        metrics = main(["--prompt_style", "original", "--planner", planner.url, "--grounder", grounder.url,
                        "--feature_ranker", "bm25", "--max_num_examples", "2", "--save_dir", str(tmp_path)])
    bodies = planner.bodies + grounder.bodies
    assert len(planner.bodies) == 10 and len(grounder.bodies) == 10  # two goals, five rounds each
    assert all(b["add_special_tokens"] is False and b["max_tokens"] == 512 and b["stop"] == ["\n"] for b in bodies)
    assert all(b["prompt"].startswith("<|user|>\nPlease ground") for b in grounder.bodies)
    assert metrics["num_bought"] == 1 and metrics["average_reward"] == 0.5
