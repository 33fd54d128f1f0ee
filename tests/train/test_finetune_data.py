"""Label masks from offset mappings, and packing without attention across examples."""

from __future__ import annotations

import json

import pytest
import torch

from lumos.prompts import render_chat
from lumos.tiny_model import EOS, TinyModelConfig, build_tiny_model, train_tokenizer
from train.data import (IGNORE_INDEX, PackedRowsCollator, encode_conversation, labels_from_offsets, loss_spans,
                        pack_by_length, padding_collator, pop_token_count)

SMALL = TinyModelConfig(vocab_size=600, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                        num_attention_heads=4, num_key_value_heads=2)


def _conversations(path, limit=60):
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line)["messages"] for _, line in zip(range(limit), handle)]


@pytest.fixture(scope="module")
def real_conversations(gsm8k_train_files):
    return _conversations(gsm8k_train_files["plan"]) + _conversations(gsm8k_train_files["ground"])


@pytest.fixture(scope="module")
def tokenizer(real_conversations):
    return train_tokenizer((render_chat(m, EOS)[0] for m in real_conversations), vocab_size=SMALL.vocab_size)


def test_label_mask_matches_renderer_token_by_token(real_conversations, tokenizer):
    for messages in real_conversations:
        text, answer_spans = render_chat(messages, tokenizer.eos_token)
        spans = loss_spans(text, answer_spans)
        encoded = encode_conversation(messages, tokenizer, max_seq_length=100_000)
        offsets = tokenizer(text, return_offsets_mapping=True)["offset_mapping"]
        assert encoded["input_ids"][0] == tokenizer.bos_token_id and encoded["labels"][0] == IGNORE_INDEX
        for token_id, label, (start, end) in zip(encoded["input_ids"], encoded["labels"], offsets):
            inside = any(s <= start and end <= e for s, e in spans)
            outside = all(end <= s or start >= e for s, e in spans)
            assert inside or outside, f"token {text[start:end]!r} straddles a loss span"
            assert label == (token_id if inside and end > start else IGNORE_INDEX), text[start:end]
        # The labelled tokens cover exactly the assistant answers with their EOS and the newline
        # after it, as open-instruct trains (byte-level tokens of one multi-byte character share
        # its offsets, hence sets of characters).
        covered = {i for (s, e), label in zip(offsets, encoded["labels"]) if label != IGNORE_INDEX
                   for i in range(s, e)}
        assert covered == {i for s, e in spans for i in range(s, e)}
        answers = [m["content"].strip() + EOS for m in messages if m["role"] == "assistant"]
        assert [text[s:e] for s, e in answer_spans] == answers
        assert [text[s:e] for s, e in spans] == [answer + "\n" for answer in answers[:-1]] + answers[-1:]
        eos_labels = [label for label in encoded["labels"] if label == tokenizer.eos_token_id]
        assert len(eos_labels) == len(answers)


def test_headers_and_user_turns_are_never_labelled(real_conversations, tokenizer):
    messages = real_conversations[0]
    encoded = encode_conversation(messages, tokenizer, max_seq_length=100_000)
    labelled_text = tokenizer.decode([t for t in encoded["labels"] if t != IGNORE_INDEX])
    assert "<|assistant|>" not in labelled_text and "<|user|>" not in labelled_text
    assert messages[0]["content"][:40] not in labelled_text


def test_truncation_keeps_the_mask_aligned(real_conversations, tokenizer):
    messages = real_conversations[0]
    full = encode_conversation(messages, tokenizer, max_seq_length=100_000)
    short = encode_conversation(messages, tokenizer, max_seq_length=len(full["input_ids"]) - 5)
    assert short["input_ids"] == full["input_ids"][:-5] and short["labels"] == full["labels"][:-5]


def test_prefix_masks_equal_offset_masks(real_conversations, tokenizer):
    for messages in real_conversations:
        for max_seq_length in (100_000, 64):
            assert encode_conversation(messages, tokenizer, max_seq_length, prefix_masks=True) == \
                encode_conversation(messages, tokenizer, max_seq_length)


def test_labels_from_offsets_handles_tokens_across_span_edges():
    # tokens: [0,3) [3,6) [6,9) ; span [4,7) overlaps the last two tokens
    assert labels_from_offsets([10, 11, 12], [(0, 3), (3, 6), (6, 9)], [(4, 7)]) == [IGNORE_INDEX, 11, 12]
    assert labels_from_offsets([1, 10], [(0, 0), (0, 2)], [(0, 2)]) == [IGNORE_INDEX, 10]


def test_pack_by_length_keeps_order_and_budget():
    rows = pack_by_length([5, 4, 3, 9, 1, 10], max_seq_length=10)
    assert rows == [[0, 1], [2], [3, 4], [5]]
    assert [i for row in rows for i in row] == list(range(6))


@pytest.mark.parametrize("flatten_batch", [False, True])
def test_packed_batch_has_no_attention_across_examples(real_conversations, tokenizer, flatten_batch):
    """Each example's logits in a packed batch equal its logits in a padded batch."""
    torch.manual_seed(0)
    model = build_tiny_model(tokenizer, SMALL).eval()
    examples = [encode_conversation(m, tokenizer, 256) for m in real_conversations[:5]]
    rows = [examples[:2], examples[2:]]
    packed = PackedRowsCollator(tokenizer.pad_token_id, flatten_batch=flatten_batch)(rows)
    assert pop_token_count(packed) == sum(len(e["input_ids"]) for e in examples)
    assert "attention_mask" not in packed
    padded = padding_collator(tokenizer)([dict(e) for e in examples])
    with torch.no_grad():
        # use_cache=False as in training: with a cache transformers does not look for packed rows.
        packed_logits = model(input_ids=packed["input_ids"], position_ids=packed["position_ids"],
                              use_cache=False).logits
        padded_logits = model(input_ids=padded["input_ids"], attention_mask=padded["attention_mask"]).logits
    lengths = [len(e["input_ids"]) for e in examples]
    if flatten_batch:  # one row: every example after the previous ones
        starts = [(0, sum(lengths[:i])) for i in range(len(examples))]
    else:  # one row per packed row
        starts = [(0, 0), (0, lengths[0]), (1, 0), (1, lengths[2]), (1, lengths[2] + lengths[3])]
    for index, (example, (row, offset)) in enumerate(zip(examples, starts)):
        n = len(example["input_ids"])
        assert packed["position_ids"][row, offset] == 0
        torch.testing.assert_close(packed_logits[row, offset:offset + n], padded_logits[index, :n],
                                   atol=1e-4, rtol=1e-4)
        assert packed["labels"][row, offset + 1:offset + n].tolist() == example["labels"][1:]
