"""The iterative loop without a round barrier on OpenAI-compatible servers (scripted models served on
127.0.0.1 with a latency model): the same trajectories as the round-based loop for the same replies,
tasks moving on as soon as their own reply is back, a bounded number of requests in flight, prompts
that only grow (server-side prefix caching applies), and the released protocol kept round by round."""

from __future__ import annotations

import re

import pytest

from lumos.agent import Agent
from lumos.llm import get_generator
from lumos.llm.scripted import ScriptedGenerator
from lumos.llm.serve import OpenAICompatibleServer
from lumos.protocol import OriginalProtocol
from lumos.tools.maths import maths_toolbox

# Task "t<i>-<steps>" adds one <steps> times; "bad" gets an unreadable plan, "div" divides by zero,
# "loop" never stops (step limit), "unknown" names a tool maths lacks.
TASKS = [(f"t{i}-{1 + i % 4}", f"t{i}-{1 + i % 4}: add one {1 + i % 4} times") for i in range(16)] + [
    ("bad", "bad: nothing"), ("div", "div: divide"), ("loop", "loop: forever"), ("unknown", "unknown: look up")]


def planner_reply(prompt: str) -> str:
    name = prompt.split("Task: ")[1].split(":")[0]
    done = len(re.findall(r"Should we stop planning\?", prompt))
    if name == "bad":
        return "I would rather not"
    if name == "div":
        return "Subgoal 1: Divide." if done == 0 else "Yes, I will stop planning."
    if name == "unknown":
        return "Subgoal 1: Look up."
    steps = 10**6 if name == "loop" else int(name.split("-")[1])
    if done >= steps:
        return "Yes, I will stop planning."
    prefix = "" if done == 0 else "No, I will keep planning. "
    return f"{prefix}Subgoal {done + 1}: Add one to the running total."


def grounder_reply(prompt: str) -> str:
    subgoal = re.findall(r"Subgoal to be grounded: Subgoal (\d+): (.*)\n", prompt)[-1]
    k, text = int(subgoal[0]), subgoal[1]
    if text.startswith("Divide"):
        return "R1 = Calculator(1 / 0)"
    if text.startswith("Look up"):
        return "R1 = Search(cats)"
    return "R1 = Calculator(0 + 1)" if k == 1 else f"R{k} = Calculator(R{k - 1} + 1)"


@pytest.fixture
def served():
    """Planner and grounder servers whose waits grow with the tokens generated and vary per request."""
    planner_model, grounder_model = ScriptedGenerator(planner_reply), ScriptedGenerator(grounder_reply)
    servers = [OpenAICompatibleServer(model, model_name=name, latency_s=0.005, latency_per_token_s=0.004,
                                      latency_jitter=0.9, latency_seed=seed).start()
               for model, name, seed in ((planner_model, "planner", 1), (grounder_model, "grounder", 2))]
    clients = [get_generator(server.url, progress=False, max_attempts=1, concurrency=6) for server in servers]
    yield servers, clients
    for client in clients:
        client.close()
    for server in servers:
        server.stop()


def asked_rounds(planner_texts: list[str]) -> list[int]:
    """For each planner request in arrival order, how many subgoals its task had run."""
    return [len(re.findall("Should we stop planning", text)) for text in planner_texts]


def comparable(episode) -> dict:
    record = episode.to_record()
    record.pop("seconds", None)
    for step in record["steps"]:
        for key in [k for k in step if k.endswith("seconds")]:
            step.pop(key)
        for call in step.get("calls", []):
            call.pop("seconds", None)
    return record


def test_same_trajectories_as_the_round_based_loop(served):
    servers, (planner, grounder) = served
    with maths_toolbox() as toolbox:
        barrier = Agent(planner, grounder, toolbox, domain="maths", max_steps=5, barrier=True)
        free = Agent(planner, grounder, toolbox, domain="maths", max_steps=5)
        assert free.barrier_free and not barrier.barrier_free
        expected = barrier.run(TASKS)
        rounds_with_barrier = asked_rounds(servers[0].stats.texts)
        for server in servers:
            server.stats.texts.clear()
        episodes = free.run(TASKS)
    assert [comparable(e) for e in episodes] == [comparable(e) for e in expected]
    statuses = {e.id: e.status for e in episodes}
    assert statuses["bad"] == "parse_error" and statuses["div"] == "tool_error" and statuses["unknown"] == "parse_error"
    assert statuses["loop"] == "step_limit" and statuses["t3-4"] == "finished"
    assert {e.prediction for e in episodes if e.id.startswith("t")} == {"1", "2", "3", "4"}
    assert max(server.stats.max_in_flight for server in servers) <= 6  # the client's bound

    # prompts only grow: each planner prompt of a task starts with that task's previous one
    planner_texts = servers[0].stats.texts
    last: dict[str, str] = {}
    for text in planner_texts:
        name = text.split("Task: ")[1].split(":")[0]
        assert text.startswith(last.get(name, "")), name
        last[name] = text
    # round by round, every task's k-th planner request reaches the server before any (k+1)-th; without the
    # barrier, tasks whose replies came back sooner ran ahead
    assert rounds_with_barrier == sorted(rounds_with_barrier)
    assert asked_rounds(planner_texts) != sorted(asked_rounds(planner_texts))


def test_a_slow_reply_holds_up_only_its_own_task(served):
    servers, (planner, grounder) = served
    first_request = r"Task: t1-2: add one 2 times; Initial Environment Description: None\.\n<\|assistant\|>\n$"
    servers[0].add_fault("delay", match=first_request, delay_s=1.5)
    with maths_toolbox() as toolbox:
        episodes = Agent(planner, grounder, toolbox, domain="maths", max_steps=5).run(TASKS[:8])
    assert [e.status for e in episodes] == ["finished"] * 8, [(e.id, e.error) for e in episodes]
    order = [text.split("Task: ")[1].split(":")[0] for text in servers[0].stats.texts]
    # every other task planned all its subgoals and stopped while t1-2 waited for its first reply
    assert order[-2:] == ["t1-2", "t1-2"] and order.count("t1-2") == 3


def test_released_protocol_stays_round_based(served):
    _, (planner, grounder) = served
    with maths_toolbox() as toolbox:
        agent = Agent(planner, grounder, toolbox, domain="maths", protocol=OriginalProtocol(rounds=4))
        assert not agent.barrier_free
        with pytest.raises(ValueError, match="independent"):
            Agent(planner, grounder, toolbox, domain="maths", protocol=OriginalProtocol(rounds=4), barrier=False)
        local = ScriptedGenerator(planner_reply)
        assert not Agent(local, local, toolbox, domain="maths").barrier_free
