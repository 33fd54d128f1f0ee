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


def test_prompt_phrases_are_single_tokens_and_decode_byte_for_byte(tmp_path):
    from transformers import AutoTokenizer

    from lumos import prompts
    from lumos.tiny_model import prompt_phrases, train_tokenizer
    from train.data import encode_conversation

    task = "Nora has 175 buttons. She gives 19 away. How many are left?"
    plan = [{"role": "user", "content": prompts.plan_task_prompt(task)},
            {"role": "assistant", "content": "Subgoal 1: Calculate how many buttons Nora has left."},
            {"role": "user", "content": prompts.plan_feedback(1, "156")},
            {"role": "assistant", "content": prompts.STOP_PLANNING}]
    ground = prompts.ground_messages("maths", task, ["Subgoal 1: Calculate how many buttons Nora has left."],
                                     ["R1 = Calculator(175-19)"])
    texts = [render_chat(messages, EOS)[0] for messages in (plan, ground)]
    train_tokenizer(texts * 10, vocab_size=400).save_pretrained(tmp_path)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    for text in texts:
        ids = tokenizer(text)["input_ids"]
        assert tokenizer.decode(ids[1:]) == text
        pieces = tokenizer.convert_ids_to_tokens(ids)
        # the grounding block of every domain, the planning instruction, the stop question: one token each
        assert sum(piece in prompt_phrases() for piece in pieces) >= 2
    ground_pieces = tokenizer.convert_ids_to_tokens(tokenizer(texts[1])["input_ids"])
    assert ground_pieces[3] == prompts.ground_instruction("maths", "X").split("Task: X")[0]
    assert ground_pieces[4:6] == ["Task", ":"]
    # the word after a phrase is the same token as elsewhere ("Nora" in the task and in the subgoal)
    plan_pieces = tokenizer.convert_ids_to_tokens(tokenizer(texts[0])["input_ids"])
    assert plan_pieces[3] == prompts.PLAN_INSTRUCTION + "Task:"
    nora = tokenizer.convert_ids_to_tokens(tokenizer(" Nora")["input_ids"][1:])
    assert plan_pieces[4:4 + len(nora)] == nora
    # assistant phrases are labelled like any assistant text
    example = encode_conversation(plan, tokenizer, 1024)
    labelled = [piece for piece, label in zip(tokenizer.convert_ids_to_tokens(example["input_ids"]), example["labels"])
                if label != -100]
    assert prompts.STOP_PLANNING in labelled and labelled[-1] in (EOS, "Ċ")
