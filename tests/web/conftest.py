"""Scripted planning/grounding models that follow given plans, served on 127.0.0.1 through the
OpenAI-compatible server, as the web benchmarks' end-to-end tests use them."""

from __future__ import annotations

import re

import pytest

from lumos.format import Plan, render_actions
from lumos.llm.scripted import ScriptedGenerator
from lumos.llm.serve import OpenAICompatibleServer

_TASK = re.compile(r"Task: (.*?); Initial Environment Description: None\.")
_GROUND_TASK = re.compile(r"^Task: (.*?) $", re.MULTILINE)
_SUBGOAL_TO_GROUND = re.compile(r"Subgoal to be grounded: Subgoal (\d+): ")


def _planner_following(plans: dict[str, Plan]):
    """Proposes the plan of the prompt's task one subgoal per turn, then stops."""

    def reply(prompt: str) -> str:
        task = _TASK.search(prompt).group(1)
        if task not in plans:
            return "I cannot plan this task."  # not the planner's format: the episode ends as a parse error
        done = prompt.count("Should we stop planning?")
        subgoals = plans[task].subgoals
        if done == 0:
            return f"Subgoal 1: {subgoals[0].text}"
        if done < len(subgoals):
            return f"No, I will keep planning. Subgoal {done + 1}: {subgoals[done].text}"
        return "Yes, I will stop planning."

    return reply


def _grounder_following(plans: dict[str, Plan]):
    """Answers the newest subgoal of the prompt with that subgoal's actions in the plan."""

    def reply(prompt: str) -> str:
        task = _GROUND_TASK.search(prompt).group(1)
        index = int(_SUBGOAL_TO_GROUND.findall(prompt)[-1])
        return render_actions(plans[task].subgoals[index - 1].actions)

    return reply


@pytest.fixture
def serve():
    """``serve(function) -> (scripted model, URL)``; the servers stop when the test ends."""
    servers = []

    def start(function):
        scripted = ScriptedGenerator(function)
        server = OpenAICompatibleServer(scripted, model_name="scripted").start()
        servers.append(server)
        return scripted, server.url

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def following():
    """``following.planner(plans)`` / ``following.grounder(plans)``: reply functions that follow plans."""
    from types import SimpleNamespace

    return SimpleNamespace(planner=_planner_following, grounder=_grounder_following)
