"""The iterative loop without a round barrier on OpenAI-compatible servers (scripted models served on
127.0.0.1 with a latency model): the same trajectories as the round-based loop for the same replies,
tasks moving on as soon as their own reply is back, a bounded number of requests in flight, prompts
that only grow (server-side prefix caching applies), and the released protocol kept round by round."""

from __future__ import annotations

import re

import pytest

from lumos.agent import Agent
from lumos.llm.scripted import ScriptedGenerator
from lumos.protocol import OriginalProtocol
from lumos.tools.maths import maths_toolbox

from tests.agent.counting import TASKS, comparable, planner_reply


def asked_rounds(planner_texts: list[str]) -> list[int]:
    """For each planner request in arrival order, how many subgoals its task had run."""
    return [len(re.findall("Should we stop planning", text)) for text in planner_texts]


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
