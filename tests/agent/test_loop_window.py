"""``Agent.run(active=N)``: at most N tasks in progress, a finished task's place taken by the next one, and
each episode handed to ``on_done`` as soon as it ends — with the same trajectories as all tasks at once,
round by round and without round barriers alike."""

from __future__ import annotations

import pytest

from lumos.agent import Agent
from lumos.llm.base import Generator, Usage
from lumos.llm.scripted import ScriptedGenerator
from lumos.protocol import OriginalProtocol
from lumos.tools.maths import maths_toolbox

from tests.agent.counting import TASKS, comparable, grounder_reply, planner_reply


class Batches(Generator):
    """A scripted model that records how many prompts each call carried."""

    def __init__(self, reply):
        self.inner = ScriptedGenerator(reply)
        self.usage = Usage()
        self.sizes: list[int] = []

    def try_generate(self, prompts, *, stop=None, max_new_tokens=256):
        self.sizes.append(len(prompts))
        return self.inner.try_generate(prompts, stop=stop, max_new_tokens=max_new_tokens)


class Tracker:
    """A per-task toolbox factory and an ``on_done`` that together count the tasks in progress."""

    def __init__(self, toolbox):
        self.toolbox = toolbox
        self.started: list[str] = []
        self.done: list[str] = []
        self.most_in_progress = 0
        self.started_when_done: dict[str, int] = {}

    def factory(self, task_id: str, task: str):
        self.started.append(task_id)
        self.most_in_progress = max(self.most_in_progress, len(self.started) - len(self.done))
        return self.toolbox

    def on_done(self, episode) -> None:
        assert episode.done and episode.id not in self.done, episode.id
        self.done.append(episode.id)
        self.started_when_done[episode.id] = len(self.started)


def run(planner, grounder, toolbox, tracker=None, **options):
    agent = Agent(planner, grounder, None if tracker else toolbox, domain="maths", max_steps=5,
                  task_toolbox=tracker.factory if tracker else None, **options.pop("agent", {}))
    return agent.run(TASKS, on_done=tracker.on_done if tracker else None, **options)


def test_a_window_of_tasks_gives_the_same_trajectories_with_full_rounds():
    with maths_toolbox() as toolbox:
        everyone = run(ScriptedGenerator(planner_reply), ScriptedGenerator(grounder_reply), toolbox)
        planner, grounder = Batches(planner_reply), Batches(grounder_reply)
        tracker = Tracker(toolbox)
        windowed = run(planner, grounder, toolbox, tracker, active=4)
    assert [comparable(e) for e in windowed] == [comparable(e) for e in everyone]
    assert [e.id for e in windowed] == [task_id for task_id, _ in TASKS]  # input order
    assert sorted(tracker.done) == sorted(task_id for task_id, _ in TASKS)  # every episode reported, once
    assert tracker.most_in_progress == 4
    # every planner call is full while tasks are still waiting: a finished task's place is taken at once
    waiting_calls = planner.sizes[:next(k for k, n in enumerate(planner.sizes) if n < 4)]
    assert len(waiting_calls) >= 4 and set(waiting_calls) == {4}
    assert max(planner.sizes + grounder.sizes) == 4
    # episodes are handed over as they end, long before the last task started
    assert tracker.started_when_done["t0-1"] <= 8 and tracker.started_when_done["t4-1"] < len(TASKS)


def test_all_at_once_reports_every_episode_in_input_order_of_ending():
    with maths_toolbox() as toolbox:
        tracker = Tracker(toolbox)
        episodes = run(ScriptedGenerator(planner_reply), ScriptedGenerator(grounder_reply), toolbox, tracker)
    assert tracker.most_in_progress == len(TASKS)
    assert sorted(tracker.done) == sorted(e.id for e in episodes)
    # one-step tasks end in the second round, before the four-step ones
    assert tracker.done.index("t0-1") < tracker.done.index("t3-4")


def test_without_round_barriers_a_window_gives_the_same_trajectories(served):
    _, (planner, grounder) = served
    with maths_toolbox() as toolbox:
        expected = run(planner, grounder, toolbox, agent={"barrier": True})
        tracker = Tracker(toolbox)
        agent = Agent(planner, grounder, None, domain="maths", max_steps=5, task_toolbox=tracker.factory)
        assert agent.barrier_free
        episodes = agent.run(TASKS, active=3, on_done=tracker.on_done)
    assert [comparable(e) for e in episodes] == [comparable(e) for e in expected]
    assert tracker.most_in_progress == 3 and sorted(tracker.done) == sorted(e.id for e in episodes)


def test_onetime_runs_window_by_window():
    from tests.agent.scripts import MATHS_GROUNDER, MATHS_PLANNER_ONETIME, MATHS_TASKS

    tasks = [(task_id, task) for task_id, task, _ in MATHS_TASKS] * 3
    with maths_toolbox() as toolbox:
        planner = Batches(MATHS_PLANNER_ONETIME)
        agent = Agent(planner, ScriptedGenerator(MATHS_GROUNDER), toolbox, domain="maths", formulation="onetime")
        done = []
        episodes = agent.run(tasks, active=4, on_done=done.append)
    assert planner.sizes == [4, 2]
    assert [e.prediction for e in episodes] == ["18", "3"] * 3 and done == episodes


def test_the_released_protocol_keeps_every_task_from_the_start():
    with maths_toolbox() as toolbox:
        planner = Batches(planner_reply)
        agent = Agent(planner, ScriptedGenerator(grounder_reply), toolbox, domain="maths",
                      protocol=OriginalProtocol(rounds=4))
        agent.run(TASKS, active=2)
    assert planner.sizes[0] == len(TASKS)  # its QA protocol carries one task's result into the next


def test_a_window_below_one_is_refused():
    with maths_toolbox() as toolbox:
        agent = Agent(ScriptedGenerator(planner_reply), ScriptedGenerator(grounder_reply), toolbox, domain="maths")
        with pytest.raises(ValueError, match="active must be at least 1"):
            agent.run(TASKS, active=0)
