"""Full iterative and onetime loops through the real OpenAI-compatible backend, against scripted
models served on 127.0.0.1: trajectories, predictions, prompts and recorded errors."""

import pytest

from lumos.agent import Agent
from lumos.llm import get_generator
from lumos.llm.scripted import ScriptedGenerator
from lumos.llm.serve import OpenAICompatibleServer
from lumos.tools.maths import maths_toolbox
from lumos.tools.qa import qa_toolbox


@pytest.fixture
def serve():
    servers, clients = [], []

    def start(rules):
        scripted = ScriptedGenerator(rules)
        server = OpenAICompatibleServer(scripted, model_name="scripted").start()
        servers.append(server)
        client = get_generator(server.url, progress=False, max_attempts=1)
        clients.append(client)
        return scripted, client

    yield start
    for client in clients:
        client.close()
    for server in servers:
        server.stop()


@pytest.fixture
def maths_tools():
    with maths_toolbox() as toolbox:
        yield toolbox


@pytest.mark.parametrize("formulation", ["iterative", "onetime"])
def test_maths_loop_end_to_end(serve, maths_tools, scripts, formulation):
    planner_rules = scripts.MATHS_PLANNER if formulation == "iterative" else scripts.MATHS_PLANNER_ONETIME
    planner_script, planner = serve(planner_rules)
    grounder_script, grounder = serve(scripts.MATHS_GROUNDER)
    tasks = [(task_id, task) for task_id, task, _ in scripts.MATHS_TASKS]
    episodes = Agent(planner, grounder, maths_tools, domain="maths", formulation=formulation).run(tasks)

    assert [e.id for e in episodes] == ["janet", "robe"]
    assert [e.status for e in episodes] == ["finished", "finished"]
    assert [e.prediction for e in episodes] == [answer for _, _, answer in scripts.MATHS_TASKS]
    janet = episodes[0]
    calls = [call for step in janet.steps for call in step.calls]
    assert [(c.action, c.result) for c in calls] == [("R1 = Calculator(16 - 3 - 4)", "9"), ("R2 = Calculator(R1 * 2)", "18")]
    assert [s.subgoal for s in janet.steps] == ["Calculate how many eggs she sells.", "Calculate how much she makes."]
    if formulation == "iterative":
        # planning rounds: subgoal 1, subgoal 2, stop -> 3 batched calls of 2, 2, 2 prompts
        assert len(planner_script.calls) == 6 and len(grounder_script.calls) == 4
        second_round = [p for p in planner_script.calls if "Subgoal 1 is 9. Should we stop planning?" in p][0]
        assert second_round.startswith("<|user|>\nPlease provide a reasonable subgoal-based plan")
        assert "<|assistant|>\nSubgoal 1: Calculate how many eggs she sells.</s>\n<|user|>" in second_round
        assert [s.result for s in janet.steps] == ["9", "18"]
    else:
        assert len(planner_script.calls) == 2 and len(grounder_script.calls) == 2
        assert "Subgoals to be grounded: Subgoal 1: Calculate how many eggs she sells.; Subgoal 2: Calculate how much" \
            in grounder_script.calls[0]


@pytest.mark.parametrize("formulation", ["iterative", "onetime"])
def test_complex_qa_loop_end_to_end(serve, scripts, tmp_path, formulation):
    planner_rules = scripts.QA_PLANNER if formulation == "iterative" else scripts.QA_PLANNER_ONETIME
    _, planner = serve(planner_rules)
    grounder_script, grounder = serve(scripts.QA_GROUNDER)
    qa_script, qa_model = serve(scripts.QA_MODEL)
    corpus = scripts.write_corpus(tmp_path / "corpus.jsonl")
    with qa_toolbox(corpus=corpus, qa_generator=qa_model, cache_dir=str(tmp_path / "cache")) as toolbox:
        (episode,) = Agent(planner, grounder, toolbox, domain="complex_qa",
                           formulation=formulation).run([(i, t) for i, t, _ in scripts.QA_TASKS])
    assert episode.status == "finished", episode.error
    assert episode.prediction == "yes"
    calls = {call.outputs[0]: call for step in episode.steps for call in step.calls}
    assert calls["R1"].result == "WikipediaPage(Scott Derrickson)"
    assert calls["R2"].result.startswith("Scott Derrickson (born July 16, 1966) is an American director")
    assert calls["R5"].result.startswith("Edward Davis Wood Jr.")
    assert calls["R6"].result == "American"
    assert "Question: Are American and American the same nationality?" in qa_script.calls[-1]
    if formulation == "iterative":
        assert [s.result for s in episode.steps] == ["American", "American", "yes"]
        assert "The execution result for Subgoal 1 is American The execution result for Subgoal 2 is American" \
            in grounder_script.calls[-1]


def test_untrusted_output_becomes_recorded_errors(serve, maths_tools):
    planner_script, planner = serve(lambda prompt: {
        "t-parse": "I think we should add things", "t-tool": "Subgoal 1: Divide.", "t-unknown": "Subgoal 1: Look up.",
        "t-ok": "Subgoal 1: Add.", "t-loop": "Subgoal 1: Add."}.get(prompt.split("Task: ")[1].split(";")[0], "")
        if "Should we stop" not in prompt else ("No, I will keep planning. Subgoal 2: Add again."
                                               if "t-loop" in prompt else "Yes, I will stop planning."))
    _, grounder = serve([(r"Divide", "R1 = Calculator(1 / 0)"), (r"Look up", "R1 = Search(cats)"),
                         (r"Subgoal 2: Add again", "R2 = Calculator(R1 + 1)"), (r"Add", "R1 = Calculator(1 + 1)")])
    tasks = [(name, name) for name in ("t-parse", "t-tool", "t-unknown", "t-ok", "t-loop")]
    episodes = {e.id: e for e in Agent(planner, grounder, maths_tools, domain="maths", max_steps=3).run(tasks)}
    assert episodes["t-parse"].status == "parse_error" and "neither a subgoal nor a stop" in episodes["t-parse"].error
    assert episodes["t-parse"].steps[0].plan_reply == "I think we should add things"
    assert episodes["t-tool"].status == "tool_error"
    assert episodes["t-tool"].steps[0].calls[0].error == episodes["t-tool"].error
    assert episodes["t-unknown"].status == "parse_error" and "unknown tool(s) Search" in episodes["t-unknown"].error
    assert episodes["t-ok"].status == "finished" and episodes["t-ok"].prediction == "2"
    assert episodes["t-loop"].status == "step_limit" and len(episodes["t-loop"].steps) == 3
    assert episodes["t-loop"].prediction == "3"  # R2 = R1 + 1 each round, R1 = 2


def test_generation_error_is_recorded_and_others_go_on(maths_tools, scripts):
    planner = ScriptedGenerator(scripts.MATHS_PLANNER)  # no rule for the third task: a per-item GenerationError
    grounder = ScriptedGenerator(scripts.MATHS_GROUNDER)
    tasks = [(i, t) for i, t, _ in scripts.MATHS_TASKS] + [("other", "Something unforeseen.")]
    episodes = Agent(planner, grounder, maths_tools, domain="maths").run(tasks)
    assert [e.status for e in episodes] == ["finished", "finished", "generation_error"]
    assert "planner" in episodes[2].error and episodes[2].to_record()["steps"] == []
