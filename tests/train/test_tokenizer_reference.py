"""Training examples with the real LLaMA-2 tokenizer equal open-instruct's, on the reference training files.

The released checkpoints were trained by open-instruct's ``encode_with_messages_format``: the
conversation is joined as ``<|role|>\\n`` + content (+ EOS after an answer) + ``\\n``, stripped, and
tokenised once; then every non-assistant turn is masked from the token count of the text before it
to the token count of the text up to it (plus the next ``<|assistant|>\\n`` header). ``reference_encode``
below is that procedure written out; our ``encode_conversation`` must give the same ids and labels,
on every conversation of ``lumos_reference/A_training`` (files written by the original code).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from train.data import IGNORE_INDEX, encode_conversation

HEADERS = {"system": "<|system|>\n", "user": "<|user|>\n", "assistant": "<|assistant|>\n"}


def reference_encode(messages, tokenizer, max_seq_length):
    """open-instruct's messages encoding: whole-text ids, labels masked by prefix token counts."""
    def joined(turns):
        text = ""
        for turn in turns:
            text += HEADERS[turn["role"]] + turn["content"].strip()
            text += (tokenizer.eos_token + "\n") if turn["role"] == "assistant" else "\n"
        return text

    def count(text):
        return len(tokenizer(text, truncation=True, max_length=max_seq_length)["input_ids"])

    input_ids = tokenizer(joined(messages).strip(), truncation=True, max_length=max_seq_length)["input_ids"]
    labels = list(input_ids)
    for index, turn in enumerate(messages):
        if turn["role"] == "assistant":
            continue
        start = 0 if index == 0 else count(joined(messages[:index]))
        so_far = joined(messages[:index + 1])
        if index + 1 < len(messages) and messages[index + 1]["role"] == "assistant":
            so_far += HEADERS["assistant"]
        end = count(so_far)
        labels[start:end] = [IGNORE_INDEX] * len(labels[start:end])
        if end >= max_seq_length:
            break
    return input_ids, labels


@pytest.fixture(scope="module")
def reference_conversations(shared_data: Path) -> list[tuple[str, list[dict]]]:
    """(file:line, messages) of every training file the original wrote in lumos_reference/A_training."""
    found = []
    for path in sorted((shared_data / "lumos_reference" / "A_training").glob("*/*/output/*.jsonl")):
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                found.append((f"{path.parent.parent.name}/{path.name}:{number}", json.loads(line)["messages"]))
    return found


def test_the_reference_files_are_many_and_multi_turn(reference_conversations):
    assert len(reference_conversations) > 4000
    assert sum(len(messages) > 2 for _, messages in reference_conversations) > 1500


@pytest.fixture(scope="module")
def references(reference_conversations, llama2_tokenizer):
    """max_seq_length -> open-instruct's (ids, labels) of every reference conversation."""
    cache: dict[int, list] = {}

    def get(max_seq_length: int) -> list:
        if max_seq_length not in cache:
            cache[max_seq_length] = [reference_encode(messages, llama2_tokenizer, max_seq_length)
                                     for _, messages in reference_conversations]
        return cache[max_seq_length]
    return get


@pytest.mark.parametrize("max_seq_length", [1024, 256])
@pytest.mark.parametrize("prefix_masks", [False, True], ids=["offsets", "prefixes"])
def test_ids_and_labels_equal_open_instructs(reference_conversations, references, llama2_tokenizer,
                                             max_seq_length, prefix_masks):
    """1024 is the original's setting; 256 truncates many conversations mid-way. The offsets path
    (the default) is checked on every conversation, the slower prefix path on every third."""
    step = 3 if prefix_masks else 1
    pairs = list(zip(reference_conversations, references(max_seq_length)))[::step]
    differing, truncated = [], 0
    for (where, messages), (ids, labels) in pairs:
        ours = encode_conversation(messages, llama2_tokenizer, max_seq_length, prefix_masks=prefix_masks)
        truncated += len(ids) == max_seq_length
        if ours["input_ids"] != ids or ours["labels"] != labels:
            differing.append(where)
    assert not differing, f"{len(differing)} of {len(pairs)} differ, e.g. {differing[:5]}"
    if max_seq_length == 256:
        assert truncated > 100 // step, "the short length should truncate many conversations"


def test_the_newline_after_each_eos_is_trained_on(reference_conversations, llama2_tokenizer):
    """After every EOS but the last come ``▁`` and ``<0x0A>``: labelled, as the original labels them."""
    tokenizer = llama2_tokenizer
    checked = 0
    multi_turn = [(where, messages) for where, messages in reference_conversations if len(messages) > 2]
    for where, messages in multi_turn[::4]:
        encoded = encode_conversation(messages, tokenizer, max_seq_length=100_000)
        ids, labels = encoded["input_ids"], encoded["labels"]
        eos_positions = [i for i, token in enumerate(ids) if token == tokenizer.eos_token_id]
        assert len(eos_positions) == sum(m["role"] == "assistant" for m in messages), where
        assert eos_positions[-1] == len(ids) - 1 and labels[-1] == tokenizer.eos_token_id, where
        for position in eos_positions[:-1]:
            pieces = tokenizer.convert_ids_to_tokens(ids[position + 1:position + 4])
            assert pieces[:2] == ["▁", "<0x0A>"] and pieces[2] in ("<", "▁<"), (where, pieces)
            assert labels[position:position + 3] == ids[position:position + 3], where
            assert labels[position + 3] == IGNORE_INDEX, where  # the next header is not trained on
            checked += 1
        assert labels[0] == IGNORE_INDEX
    assert checked > 1000, checked


def test_answers_are_labelled_and_nothing_else(reference_conversations, llama2_tokenizer):
    """Decoding each run of labelled tokens gives back an answer + EOS + newline, in order."""
    tokenizer = llama2_tokenizer
    for where, messages in reference_conversations[::25]:
        encoded = encode_conversation(messages, tokenizer, max_seq_length=100_000)
        runs, current = [], []
        for token, label in zip(encoded["input_ids"], encoded["labels"]):
            if label == IGNORE_INDEX:
                if current:
                    runs.append(current)
                current = []
            else:
                assert label == token
                current.append(token)
        if current:
            runs.append(current)
        answers = [m["content"].strip() for m in messages if m["role"] == "assistant"]
        decoded = [tokenizer.decode(run) for run in runs]
        # the ``▁`` after an EOS decodes as a space
        expected = [answer + tokenizer.eos_token + " \n" for answer in answers[:-1]] + [answers[-1] + tokenizer.eos_token]
        assert decoded == expected, where


def test_our_own_training_files_encode_as_open_instruct_does(gsm8k_train_files, llama2_tokenizer):
    """The 200 GSM8K records our data CLIs turn into plan and grounding conversations."""
    checked = 0
    for path in gsm8k_train_files.values():
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                messages = json.loads(line)["messages"]
                ids, labels = reference_encode(messages, llama2_tokenizer, 1024)
                assert encode_conversation(messages, llama2_tokenizer, 1024) == \
                    {"input_ids": ids, "labels": labels}, f"{path.name}:{number}"
                checked += 1
    assert checked >= 300


@pytest.mark.parametrize("prefix_masks", [False, True], ids=["offsets", "prefixes"])
def test_strip_after_eos_gives_the_2023_slow_tokenizer_ids(reference_conversations, llama2_tokenizer, prefix_masks):
    """The original ran open-instruct with a 2023 transformers whose slow LLaMA tokenizer strips the
    whitespace around a ``</s>`` registered as a plain string: ``</s>`` is followed by ``▁<`` of the next
    header, and only answers and EOS are labelled. (Measured once against transformers 4.30.2's slow
    tokenizer over a SentencePiece model rebuilt from this tokenizer: equal on every reference
    conversation without a double space; see README, Training.)"""
    tokenizer = llama2_tokenizer
    multi_turn = [(where, m) for where, m in reference_conversations if len(m) > 2][::7]
    for where, messages in multi_turn:
        encoded = encode_conversation(messages, tokenizer, 100_000, prefix_masks=prefix_masks, strip_after_eos=True)
        ids, labels = encoded["input_ids"], encoded["labels"]
        eos_positions = [i for i, token in enumerate(ids) if token == tokenizer.eos_token_id]
        assert len(eos_positions) == sum(m["role"] == "assistant" for m in messages), where
        for position in eos_positions[:-1]:
            assert tokenizer.convert_ids_to_tokens(ids[position + 1]) == "▁<", where
            assert labels[position] == ids[position] and labels[position + 1] == IGNORE_INDEX, where
        answers = [m["content"].strip() for m in messages if m["role"] == "assistant"]
        labelled = [tokenizer.decode([t for t in labels if t != IGNORE_INDEX])]
        assert labelled == ["".join(answer + tokenizer.eos_token for answer in answers)], where


def _has_double_space(messages) -> bool:
    return any("  " in message["content"].strip() for message in messages)


def test_sentencepiece_encoder_handles_special_tokens_as_the_2023_slow_tokenizer(llama2_tokenizer,
                                                                                 llama2_tokenizer_folder):
    from train.data import SentencePieceChatTokenizer

    tokenizer = llama2_tokenizer
    slow = SentencePieceChatTokenizer.beside(tokenizer, str(llama2_tokenizer_folder))
    text = "<|user|>\nTask: 12 apples\n<|assistant|>\nSubgoal 1: add.</s>\n<|user|>\nok\n<|assistant|>\nNo</s>"
    pieces = tokenizer.convert_ids_to_tokens(slow(text)["input_ids"])
    assert pieces[0] == "<s>" and pieces[-1] == "</s>"
    assert pieces[pieces.index("</s>") + 1] == "▁<"  # the newline after </s> is dropped, "▁" prefixes the rest
    assert slow(text, add_special_tokens=False)["input_ids"] == slow(text)["input_ids"][1:]
    assert slow(text, truncation=True, max_length=5)["input_ids"] == slow(text)["input_ids"][:5]
    plain = "Janet has 16 eggs.\nShe eats 3."
    assert slow(plain)["input_ids"] == tokenizer(plain)["input_ids"]
    # two spaces: SentencePiece merges "▁▁" first, the fast tokenizer "▁How"
    assert tokenizer.convert_ids_to_tokens(slow("eggs.  How many")["input_ids"][1:]) == \
        ["▁eggs", ".", "▁▁", "How", "▁many"]
    assert tokenizer.convert_ids_to_tokens(tokenizer("eggs.  How many")["input_ids"][1:]) == \
        ["▁eggs", ".", "▁", "▁How", "▁many"]


def test_sentencepiece_encoder_equals_strip_after_eos(reference_conversations, llama2_tokenizer,
                                                      llama2_tokenizer_folder):
    """--use_slow_tokenizer (SentencePiece) and --strip_after_eos (fast) give the same examples wherever the
    two tokenizers agree, i.e. on conversations without a double space. (Both were measured once against
    transformers 4.30.2's slow LlamaTokenizer running open-instruct's procedure over the same rebuilt
    SentencePiece model: the SentencePiece encoder matched on all 4,148 reference conversations.)"""
    from train.data import SentencePieceChatTokenizer

    slow = SentencePieceChatTokenizer.beside(llama2_tokenizer, str(llama2_tokenizer_folder))
    compared = 0
    for where, messages in reference_conversations[::3]:
        if _has_double_space(messages):
            continue
        assert encode_conversation(messages, slow, 1024) == \
            encode_conversation(messages, llama2_tokenizer, 1024, strip_after_eos=True), where
        compared += 1
    assert compared > 1000
