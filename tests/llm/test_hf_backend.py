"""The transformers backend on a tiny randomly initialised LLaMA built in the test."""

from __future__ import annotations

import copy

import pytest
import torch

from lumos.llm import get_generator
from lumos.llm.hf_backend import HFGenerator

WORDS = "apples pears dogs fox lazy total number calculate".split()
PROMPTS = [f"<|user|>\nTask: how many {WORDS[i % 8]} and {WORDS[(i * 3) % 8]}?" * (i % 3 + 1) + "\n<|assistant|>\n"
           for i in range(7)]


def count_forward_calls(model) -> list[int]:
    calls = [0]
    model.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


def greedy_ids(model, tokenizer, prompt: str, max_new_tokens: int) -> list[int]:
    """The token ids plain ``model.generate`` picks for one unpadded prompt."""
    prompt_ids = torch.tensor([tokenizer(prompt)["input_ids"]])
    output = model.generate(prompt_ids, attention_mask=torch.ones_like(prompt_ids), max_new_tokens=max_new_tokens,
                            do_sample=False, pad_token_id=tokenizer.pad_token_id)
    return output[0, prompt_ids.shape[1]:].tolist()


def test_batched_equals_one_at_a_time_in_input_order(tiny_model):
    model, tokenizer = tiny_model
    generator = HFGenerator(model, tokenizer, batch_size=3)  # 3 batches, sorted by length: order must be restored
    batched = generator.generate(PROMPTS, stop=[], max_new_tokens=16)
    one_by_one = [generator.generate([p], stop=[], max_new_tokens=16)[0] for p in PROMPTS]
    assert batched == one_by_one
    assert len(set(batched)) > 3, "the random model should answer different prompts differently"


def test_each_row_stops_at_its_own_first_newline(tiny_model):
    model, tokenizer = tiny_model
    free = HFGenerator(model, tokenizer, batch_size=8).generate(PROMPTS[:2], stop=[], max_new_tokens=12)
    assert not any("\n" in text for text in free)
    ids = [greedy_ids(model, tokenizer, prompt, 12) for prompt in PROMPTS[:2]]
    assert [tokenizer.decode(row) for row in ids] == free
    newline = tokenizer.convert_tokens_to_ids("Ċ")
    # Give the newline token the output weights of a token that row 0 generates and row 1 never does:
    # argmax takes the first of equal logits and newline's id is smaller, so row 0 now writes a newline
    # exactly where it wrote that token, and row 1 is unaffected.
    position, token = next((k, t) for k, t in enumerate(ids[0]) if k > 0 and t > newline and t not in ids[1])
    patched = copy.deepcopy(model)
    with torch.no_grad():
        patched.lm_head.weight[newline] = patched.lm_head.weight[token]
    calls = count_forward_calls(patched)
    stopped = HFGenerator(patched, tokenizer, batch_size=8, max_padding=1.0).generate(PROMPTS[:2], max_new_tokens=12)
    assert stopped[0] == tokenizer.decode(ids[0][:position]) and stopped[0] != free[0]
    assert stopped[1] == free[1]
    assert calls[0] == 12  # row 1 ran to the token limit

    calls[0] = 0
    assert HFGenerator(patched, tokenizer).generate(PROMPTS[:1], max_new_tokens=12) == [stopped[0]]
    assert calls[0] == position + 1, "generation went on after the only row had stopped"


def test_batch_ends_when_every_row_has_stopped(tiny_model):
    model, tokenizer = tiny_model
    generator = HFGenerator(model, tokenizer, batch_size=8)
    free = generator.generate(PROMPTS[:4], stop=[], max_new_tokens=20)
    stops = [text[3:5] for text in free]  # each row hits its own stop string after a few tokens
    patched_generator = HFGenerator(copy.deepcopy(model), tokenizer, batch_size=8, max_padding=1.0)
    calls = count_forward_calls(patched_generator.model)
    stopped = patched_generator.generate(PROMPTS[:4], stop=stops, max_new_tokens=20)
    for text, full, stop in zip(stopped, free, stops):
        assert full.startswith(text) and stop not in text and len(text) <= 3
    assert calls[0] < 20


def test_special_token_policy(tiny_model):
    model, tokenizer = tiny_model
    with_bos = HFGenerator(model, tokenizer, add_special_tokens=True)
    without = HFGenerator(model, tokenizer, add_special_tokens=False)
    with_bos.generate(PROMPTS[:3], max_new_tokens=2)
    without.generate(PROMPTS[:3], max_new_tokens=2)
    assert with_bos.usage.prompt_tokens - without.usage.prompt_tokens == 3  # one BOS per prompt


def test_get_generator_loads_a_saved_checkpoint(tiny_model, tmp_path):
    model, tokenizer = tiny_model
    model.save_pretrained(tmp_path / "tiny")
    tokenizer.save_pretrained(tmp_path / "tiny")
    loaded = get_generator(str(tmp_path / "tiny"), batch_size=4)
    assert isinstance(loaded, HFGenerator) and loaded.model.dtype == torch.float32
    assert loaded.generate(PROMPTS, stop=[], max_new_tokens=8) == \
        HFGenerator(model, tokenizer).generate(PROMPTS, stop=[], max_new_tokens=8)


def test_bad_options_are_rejected(tiny_model):
    model, tokenizer = tiny_model
    with pytest.raises(ValueError, match="batch_size"):
        HFGenerator(model, tokenizer, batch_size=0)
    with pytest.raises(ValueError, match="max_padding"):
        HFGenerator(model, tokenizer, max_padding=1.5)
    with pytest.raises(ValueError, match="dtype"):
        HFGenerator.from_pretrained("unused", dtype="int8")


def test_prompts_of_very_different_lengths_go_to_separate_sub_batches(tiny_model):
    model, tokenizer = tiny_model
    lengths = [100, 30, 95, 90, 29, 80, 10, 28]
    generator = HFGenerator(model, tokenizer, batch_size=3, max_padding=0.2)
    assert generator._sub_batches(lengths) == [[0, 2, 3], [5], [1, 4, 7], [6]]
    # max_padding=1 only caps the rows: plain length-sorted chunks of batch_size
    assert HFGenerator(model, tokenizer, batch_size=3, max_padding=1.0)._sub_batches(lengths) == [
        [0, 2, 3], [5, 1, 4], [7, 6]]
    split = HFGenerator(model, tokenizer, batch_size=8, max_padding=0.0)
    together = HFGenerator(model, tokenizer, batch_size=8, max_padding=1.0)
    assert split.generate(PROMPTS, stop=[], max_new_tokens=8) == together.generate(PROMPTS, stop=[], max_new_tokens=8)
