"""The embedded tiny model and its tokenizer save and load like any Hugging Face checkpoint."""

from __future__ import annotations

import pytest

from lumos.prompts import render_chat
from lumos.tiny_model import CHAT_MARKERS, EOS, TinyModelConfig, build_tiny_checkpoint

CONVERSATION = [{"role": "user", "content": "Task: Janet has 16 eggs and eats 3. How many are left?"},
                {"role": "assistant", "content": "R1 = Calculator(16 - 3)"}]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    text, _ = render_chat(CONVERSATION, EOS)
    size = TinyModelConfig.scaled(hidden_size=64, num_hidden_layers=1, vocab_size=320)
    return build_tiny_checkpoint([text] * 20, tmp_path_factory.mktemp("tiny"), size)


def test_tokenizer_follows_llama2_tulu_conventions(checkpoint):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    assert tokenizer.is_fast
    assert (tokenizer.bos_token, tokenizer.eos_token, tokenizer.unk_token) == ("<s>", "</s>", "<unk>")
    assert tokenizer.pad_token is not None and tokenizer.pad_token_id != tokenizer.eos_token_id
    text, _ = render_chat(CONVERSATION, tokenizer.eos_token)
    ids = tokenizer(text)["input_ids"]
    assert ids[0] == tokenizer.bos_token_id and ids.count(tokenizer.bos_token_id) == 1
    assert ids[-1] == tokenizer.eos_token_id
    pieces = [tokenizer.decode([i]) for i in ids]
    for marker in CHAT_MARKERS[1:]:  # user and assistant occur in the text, each as one token
        assert marker in pieces
    assert [p.strip() for p in pieces if p.strip().isdigit()] == ["1", "6", "3", "1", "1", "6", "3"]  # R1 too
    assert tokenizer.decode(ids, skip_special_tokens=True) == text.replace(EOS, "")
    assert tokenizer.decode(tokenizer("12345 apples")["input_ids"][1:]) == "12345 apples"


def test_model_loads_with_auto_classes_and_matches_the_vocabulary(checkpoint):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    model = AutoModelForCausalLM.from_pretrained(checkpoint)
    assert model.config.model_type == "llama" and model.config.vocab_size == len(tokenizer)
    assert model.config.eos_token_id == tokenizer.eos_token_id
    with torch.no_grad():
        out = model.generate(torch.tensor([tokenizer("<|user|>\nhi")["input_ids"]]), max_new_tokens=3,
                             do_sample=False, pad_token_id=tokenizer.pad_token_id)
    assert out.shape[1] >= 4


def test_bad_sizes_are_rejected():
    with pytest.raises(ValueError, match="divisible"):
        TinyModelConfig(hidden_size=100, num_attention_heads=3)
