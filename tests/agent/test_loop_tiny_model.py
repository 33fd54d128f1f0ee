"""The loop on a real (tiny, random) LLaMA through the HF backend: whatever the model writes, every task
ends with a status, its raw replies are kept in the trajectory, and batching does not change outcomes."""

import pytest

from lumos.agent import Agent
from lumos.episode import EXIT_STATUSES, Episode
from lumos.llm.hf_backend import HFGenerator
from lumos.prompts import ground_instruction, plan_task_prompt
from lumos.tiny_model import TinyModelConfig, build_tiny_model, train_tokenizer
from lumos.tools.maths import maths_toolbox

TASKS = [(f"t{i}", f"Tom has {i + 3} apples and buys {i + 2} more. How many apples does he have?") for i in range(4)]


@pytest.fixture(scope="module")
def tiny_generator():
    import torch

    torch.set_num_threads(1)
    texts = [plan_task_prompt(t) for _, t in TASKS] + [ground_instruction("maths", t) for _, t in TASKS]
    tokenizer = train_tokenizer(texts, vocab_size=400)
    model = build_tiny_model(tokenizer, TinyModelConfig(vocab_size=400, hidden_size=32, intermediate_size=64,
                                                        num_hidden_layers=1, num_attention_heads=2,
                                                        num_key_value_heads=2))
    return HFGenerator(model, tokenizer, batch_size=4)


@pytest.mark.slow
@pytest.mark.parametrize("formulation", ["iterative", "onetime"])
def test_random_model_trajectories_are_recorded(tiny_generator, formulation):
    with maths_toolbox() as toolbox:
        agent = Agent(tiny_generator, tiny_generator, toolbox, domain="maths", formulation=formulation,
                      max_steps=2, max_new_tokens=12)
        episodes = agent.run(TASKS)
        one_by_one = [agent.run([task])[0] for task in TASKS]
    assert [e.id for e in episodes] == [i for i, _ in TASKS]
    for episode, alone in zip(episodes, one_by_one):
        assert episode.status in EXIT_STATUSES
        assert (episode.status == "finished") == (episode.error is None)
        assert episode.steps and episode.steps[0].plan_reply is not None  # the raw reply is kept
        record = episode.to_record()
        assert Episode.from_record(record).to_record() == record
        # the batch is padded on the left; each row's outcome is the same as alone
        assert (alone.status, alone.prediction, alone.steps[0].plan_reply) == \
            (episode.status, episode.prediction, episode.steps[0].plan_reply)
