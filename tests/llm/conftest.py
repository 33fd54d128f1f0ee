"""Fixtures: a scripted model behind the OpenAI-compatible server on loopback, and a tiny random LLaMA."""

from __future__ import annotations

import pytest

from lumos.llm.scripted import ScriptedGenerator
from lumos.llm.serve import OpenAICompatibleServer

REPLIES = {
    r"capital of France": "Paris",
    r"2 \+ 3": "5",
    r"^Subgoal": "R1 = Calculator(2 + 3)\nextra line the stop string must cut",
}


@pytest.fixture
def scripted() -> ScriptedGenerator:
    return ScriptedGenerator(REPLIES, default="I do not know")


@pytest.fixture
def server(scripted):
    with OpenAICompatibleServer(scripted, model_name="scripted-model") as running:
        yield running


@pytest.fixture
def make_client(server, tmp_path):
    """Build OpenAIGenerator clients against ``server`` with fast retry settings; all closed at the end."""
    from lumos.llm.openai_backend import OpenAIGenerator

    clients = []

    def build(**options):
        options.setdefault("base_url", server.url)
        options.setdefault("model", None)
        options.setdefault("progress", False)
        options.setdefault("backoff_base_s", 0.01)
        options.setdefault("timeout_s", 5.0)
        client = OpenAIGenerator(**options)
        clients.append(client)
        return client

    yield build
    for client in clients:
        client.close()



@pytest.fixture(scope="module")
def tiny_model():
    """(model, tokenizer): a 2-layer random LLaMA with a byte-level BPE trained on a few lines."""
    from lumos.tiny_model import byte_level_tokenizer, random_tiny_llama

    corpus = ["Subgoal 1: Calculate the total number of apples.\nAction 1: R1 = Calculator(3 + 4)\n",
              "the quick brown fox jumps over the lazy dog\n"] * 10
    tokenizer = byte_level_tokenizer(corpus)
    return random_tiny_llama(tokenizer), tokenizer


@pytest.fixture(scope="module")
def llama2_tokenizer(shared_data):
    """The real LLaMA-2 tokenizer (SentencePiece with byte fallback) from ../shared/data."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(shared_data / "llama2_tokenizer")
