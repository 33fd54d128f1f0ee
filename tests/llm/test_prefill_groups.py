"""Rows entering the decoding loop together are prefilled in groups of similar lengths: the same greedy
outputs as one prompt at a time, with far fewer padded token rows than one pass padded to the longest."""

from lumos.llm.hf_backend import HFGenerator
from lumos.llm.kv_cache import _length_groups, greedy_generate


def test_groups_split_only_where_padding_would_waste_much():
    assert _length_groups([300, 290, 280]) == [[0, 1, 2]]
    assert _length_groups([20, 300, 100, 290]) == [[1, 3], [2], [0]]
    # a short row is not worth a pass of its own: 8 tokens of padding are fewer than ``least``
    assert _length_groups([12, 4]) == [[0, 1]]
    assert sorted(k for group in _length_groups(list(range(1, 200, 7))) for k in group) == list(range(29))


def test_mixed_lengths_give_the_same_outputs_with_less_padding(tiny_model):
    model, tokenizer = tiny_model
    prompts = [f"<|user|>\nTask {i}: " + "the quick brown fox jumps over the lazy dog " * (1 + 12 * (i % 3))
               + "\n<|assistant|>\n" for i in range(9)]
    expected = HFGenerator(model, tokenizer, batch_size=1, kv_cache_tokens=0).generate(prompts, stop=["\n"],
                                                                                      max_new_tokens=12)
    encoded = [tokenizer(p)["input_ids"] for p in prompts]
    rows = []
    hook = model.register_forward_pre_hook(lambda _m, _a, kw: rows.append(kw["input_ids"].numel()),
                                           with_kwargs=True)
    try:
        texts, _ = greedy_generate(model, tokenizer, encoded, ["\n"], 12, slots=9,
                                   pad_token_id=tokenizer.pad_token_id or 0, eos_token_id=tokenizer.eos_token_id,
                                   store=None)
    finally:
        hook.remove()
    assert texts == expected
    prefill_passes = [n for n in rows[:3]]
    assert len(_length_groups([len(ids) for ids in encoded])) == 3
    # three prefill passes, each padded only within its own group
    assert sum(prefill_passes) < 0.6 * len(encoded) * max(len(ids) for ids in encoded)
    assert sum(prefill_passes) >= sum(len(ids) for ids in encoded)


def test_decoding_passes_give_the_same_outputs_under_sdpa_and_eager_attention(tiny_model):
    """Under SDPA a decoding pass gets its mask in 4D boolean form (built once by the loop); eager attention
    adds its mask to the scores and gets the 2D one: both give the outputs of one prompt at a time."""
    import copy

    model, tokenizer = tiny_model
    prompts = [f"<|user|>\nTask {i}: " + "the lazy dog " * (1 + 5 * (i % 4)) + "\n<|assistant|>\n" for i in range(6)]
    encoded = [tokenizer(p)["input_ids"] for p in prompts]
    for implementation in ("sdpa", "eager"):
        variant = copy.deepcopy(model)
        variant.set_attn_implementation(implementation)
        assert variant.config._attn_implementation == implementation
        expected = HFGenerator(variant, tokenizer, batch_size=1, kv_cache_tokens=0).generate(
            prompts, stop=["\n"], max_new_tokens=10)
        texts, _ = greedy_generate(variant, tokenizer, encoded, ["\n"], 10, slots=3,
                                   pad_token_id=tokenizer.pad_token_id or 0, eos_token_id=tokenizer.eos_token_id,
                                   store=None)
        assert texts == expected, implementation
