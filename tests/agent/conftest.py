"""Fixtures of the agent loop tests."""

import pytest

from lumos.llm import get_generator
from lumos.llm.scripted import ScriptedGenerator
from lumos.llm.serve import OpenAICompatibleServer
from tests.agent.counting import grounder_reply, planner_reply


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
