"""Key/value caches kept across calls (lumos.llm.kv_cache) on a tiny random LLaMA built in the test:
the same greedy outputs as whole-prompt generation, less prefill, bounded memory."""

from __future__ import annotations

import pytest

from lumos.synthetic import generate_problems
from lumos.llm.hf_backend import HFGenerator
from lumos.llm.kv_cache import BLOCK, PrefixCache

STOP = ["\n"]


def conversations(n: int, rounds: int, generator: HFGenerator, max_new_tokens: int = 8) -> list[list[str]]:
    """Agent-shaped calls: per round one planner call and one grounder call (one generator serves both, as
    when one checkpoint is both modules), each conversation growing by the reply and a new user turn."""
    problems = [p["question"] for p in generate_problems(n, seed=0, split="test")]
    plan = [f"<|user|>\nPlease plan.\nTask: {q}\n<|assistant|>\n" for q in problems]
    ground = [f"<|user|>\nPlease ground the subgoals.\nTask: {q}\n" for q in problems]
    calls = []
    for k in range(1, rounds + 1):
        subgoals = generator.generate(plan, stop=STOP, max_new_tokens=max_new_tokens)
        ground = [g + f"Subgoal {k}: {s}\n<|assistant|>\n" for g, s in zip(ground, subgoals)]
        actions = generator.generate(ground, stop=STOP, max_new_tokens=max_new_tokens)
        calls += [subgoals, actions]
        ground = [g + f"{a}</s>\n<|user|>\n" for g, a in zip(ground, actions)]
        # the planner's turn is re-rendered (stripped), so its ids may part from the generated ones
        plan = [p + f"{s.strip()}</s>\n<|user|>\nSubgoal {k} is {a[:6]}. Should we stop planning?\n<|assistant|>\n"
                for p, s, a in zip(plan, subgoals, actions)]
    return calls


@pytest.mark.slow
def test_greedy_outputs_identical_on_64_tasks_and_prefill_shrinks(tiny_model):
    model, tokenizer = tiny_model
    whole = HFGenerator(model, tokenizer, batch_size=32, kv_cache_tokens=0)
    assert whole.kv_cache is None
    cached = HFGenerator(model, tokenizer, batch_size=32)
    expected = conversations(64, 3, whole)
    assert conversations(64, 3, cached) == expected
    assert len({text for call in expected for text in call}) > 100, "the random model should vary its answers"
    assert cached.usage.prompt_tokens == whole.usage.prompt_tokens
    prefilled = cached.usage.prompt_tokens - cached.usage.cached_prompt_tokens
    assert cached.usage.cached_prompt_tokens > 0.5 * cached.usage.prompt_tokens, cached.usage
    assert prefilled < 0.5 * whole.usage.prompt_tokens


def test_a_small_cap_keeps_outputs_and_bounds_the_cached_tokens(tiny_model):
    model, tokenizer = tiny_model
    whole = HFGenerator(model, tokenizer, batch_size=8, kv_cache_tokens=0)
    capped = HFGenerator(model, tokenizer, batch_size=8, kv_cache_tokens=1500)
    seen = []
    original = capped.kv_cache.end_call

    def end_call():
        seen.append(capped.kv_cache.tokens)
        original()

    capped.kv_cache.end_call = end_call
    assert conversations(12, 3, capped) == conversations(12, 3, whole)
    assert max(seen) <= 1500
    assert 0 < capped.usage.cached_prompt_tokens < 0.6 * capped.usage.prompt_tokens  # some recomputed past the cap


def test_finished_conversations_are_evicted(tiny_model):
    model, tokenizer = tiny_model
    generator = HFGenerator(model, tokenizer, batch_size=8)
    prompts = [f"<|user|>\nTask: the quick brown fox number {i} jumps over the lazy dog\n<|assistant|>\n" for i in range(4)]
    replies = generator.generate(prompts, stop=STOP, max_new_tokens=6)
    assert len(generator.kv_cache.entries) == 4
    continued = [p + r + "</s>\n<|user|>\nGo on.\n<|assistant|>\n" for p, r in zip(prompts, replies)]
    generator.generate(continued[:2], stop=STOP, max_new_tokens=6)  # tasks 2 and 3 have finished
    assert len(generator.kv_cache.entries) == 4  # replaced 2, kept 2 (idle one call)
    generator.generate(["<|user|>\nsomething else entirely\n<|assistant|>\n"], stop=STOP, max_new_tokens=6)
    kept = [entry.ids for entry in generator.kv_cache.entries.values()]
    assert len(kept) == 3  # tasks 2 and 3 idle two calls: gone
    assert not any(ids[:len(generator.encode([prompts[2]])[0])] == generator.encode([prompts[2]])[0] for ids in kept)


def test_prefix_cache_finds_the_longest_shared_prefix():
    cache = PrefixCache(10_000)
    header = list(range(1000, 1000 + 2 * BLOCK))
    a = header + list(range(5 * BLOCK))
    b = header + [7] * (3 * BLOCK)
    cache.store(a, ["ka"], ["va"], prompt_length=len(a))
    cache.store(b, ["kb"], ["vb"], prompt_length=len(b))
    entry, n = cache.lookup(a + [1, 2, 3])
    assert entry.ids == a and n == len(a)
    entry, n = cache.lookup(a)
    assert entry.ids == a and n == len(a) - 1  # the last prompt token is always computed
    entry, n = cache.lookup(header + list(range(3)) + [99] * 40)
    assert entry.ids[:len(header)] == header and n >= len(header)  # within a block of the best
    entry, n = cache.lookup(header[:BLOCK - 1] + [5] * 40)
    assert entry is None and n == 0  # less than one whole block shared: not worth a lookup
    # a conversation continued past its prompt replaces its entry; one that only shared the header does not
    cache.store(a + [1, 2, 3, 4], ["k"], ["v"], prompt_length=len(a) + 3, replaces=cache.lookup(a + [1, 2, 3])[0])
    cache.store(header + [8] * 20, ["k"], ["v"], prompt_length=len(header) + 20, replaces=cache.lookup(header + [8] * 20)[0])
    assert sorted(len(e.ids) for e in cache.entries.values()) == sorted([len(a) + 4, len(b), len(header) + 20])
    assert cache.tokens == sum(len(e.ids) for e in cache.entries.values())


def test_prefix_cache_cap_drops_least_recently_used_first():
    cache = PrefixCache(100)
    for k in range(3):
        cache.store([k] * 40, [None], [None], prompt_length=40)
    assert cache.tokens == 80 and sorted(e.ids[0] for e in cache.entries.values()) == [1, 2]
    cache.end_call()
    cache.lookup([1] * 41)  # entry 1 used: entry 2 is now the least recently used
    cache.store([3] * 40, [None], [None], prompt_length=40)
    assert sorted(e.ids[0] for e in cache.entries.values()) == [1, 3]
    cache.store([4] * 101, [None], [None], prompt_length=101)  # larger than the cap: not kept
    assert cache.tokens <= 100
    with pytest.raises(ValueError):
        PrefixCache(-1)


def test_run_eval_flag_reaches_the_local_model(tiny_model, tmp_path):
    from eval.gsm.benchmark import BENCHMARK
    from eval.runner import load_generator, parse_config

    model, tokenizer = tiny_model
    model.save_pretrained(tmp_path / "tiny")
    tokenizer.save_pretrained(tmp_path / "tiny")
    base = ["--data_dir", str(tmp_path), "--model_name_or_path", str(tmp_path)]
    assert load_generator(str(tmp_path / "tiny"), parse_config(BENCHMARK, base)).kv_cache.max_tokens > 100_000
    capped = load_generator(str(tmp_path / "tiny"), parse_config(BENCHMARK, base + ["--kv_cache_tokens", "5000"]))
    assert capped.kv_cache.max_tokens == 5000
    assert load_generator(str(tmp_path / "tiny"), parse_config(BENCHMARK, base + ["--kv_cache_tokens", "0"])).kv_cache is None
    with pytest.raises(SystemExit):
        parse_config(BENCHMARK, base + ["--kv_cache_tokens", "-1"])


def test_sliding_window_models_are_not_cached():
    from transformers import LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM

    from lumos.llm.kv_cache import supports_prefix_cache

    small = dict(vocab_size=100, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                 num_key_value_heads=2)
    assert supports_prefix_cache(LlamaForCausalLM(LlamaConfig(**small)))
    assert not supports_prefix_cache(MistralForCausalLM(MistralConfig(**small, sliding_window=64)))
    assert supports_prefix_cache(MistralForCausalLM(MistralConfig(**small, sliding_window=None)))


def test_a_stopped_row_hands_its_slot_to_the_next_prompt(tiny_model):
    """Continuous batching: with 3 slots, 10 prompts whose replies stop at different lengths run in fewer
    forward passes than static batches of 3 (each running until its longest row stops), never more than 3
    rows a pass, with the same greedy outputs; a prompt entering later reuses the header of one that finished."""
    model, tokenizer = tiny_model
    header = "<|user|>\nPlease answer briefly; the quick brown fox jumps over the lazy dog.\n"
    prompts = [f"{header}Task {i}: fox number {i * 7} jumps over {i} lazy dogs\n<|assistant|>\n" for i in range(10)]
    rows_per_pass: list[int] = []
    hook = model.register_forward_pre_hook(lambda _m, _a, kwargs: rows_per_pass.append(kwargs["input_ids"].shape[0]),
                                           with_kwargs=True)
    try:
        expected = HFGenerator(model, tokenizer, batch_size=1, kv_cache_tokens=0).generate(
            prompts, stop=["e"], max_new_tokens=24)
        rows_per_pass.clear()
        static = HFGenerator(model, tokenizer, batch_size=3, max_padding=1.0, kv_cache_tokens=0)
        assert static.generate(prompts, stop=["e"], max_new_tokens=24) == expected
        static_passes = len(rows_per_pass)
        rows_per_pass.clear()
        continuous = HFGenerator(model, tokenizer, batch_size=3)
        assert continuous.generate(prompts, stop=["e"], max_new_tokens=24) == expected
    finally:
        hook.remove()
    lengths = sorted(len(text) for text in expected)
    assert lengths[0] < lengths[-1] / 2, "replies should stop at different lengths"
    assert max(rows_per_pass) <= 3
    assert len(rows_per_pass) < static_passes, (len(rows_per_pass), static_passes)
    assert continuous.usage.cached_prompt_tokens >= 7 * BLOCK  # later prompts reused the shared header
    assert continuous.usage.prompt_tokens == static.usage.prompt_tokens


def test_greedy_generate_refills_slots_within_one_call(tiny_model):
    """The decoding loop alone, without a cache: rows enter as others stop; outputs as one at a time."""
    from lumos.llm.kv_cache import greedy_generate

    model, tokenizer = tiny_model
    prompts = [f"<|user|>\nTask {i}: the quick brown fox number {i * 7} jumps over {i} lazy dogs\n<|assistant|>\n"
               for i in range(8)]
    expected = HFGenerator(model, tokenizer, batch_size=1, kv_cache_tokens=0).generate(prompts, stop=["e"],
                                                                                      max_new_tokens=16)
    encoded = [tokenizer(p)["input_ids"] for p in prompts]
    for slots, combine_tokens in ((2, 256), (2, 0), (8, 256)):
        texts, stats = greedy_generate(model, tokenizer, encoded, ["e"], 16, slots=slots,
                                       pad_token_id=tokenizer.pad_token_id or 0, eos_token_id=tokenizer.eos_token_id,
                                       store=None, order=list(reversed(range(8))), combine_tokens=combine_tokens)
        assert texts == expected, (slots, combine_tokens)
        assert stats.prefilled == sum(len(ids) for ids in encoded) and stats.reused == 0
