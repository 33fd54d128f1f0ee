"""bench/bench_agent.py --widen: the widened LLaMA computes what the small one computes, at the bigger size."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[2]
PROMPTS = ["Subgoal 1: add 2 and 3.", "The executed result for Subgoal 1 is 5.\nSubgoal 2:", "x"]


def bench_agent():
    spec = importlib.util.spec_from_file_location("bench_agent_under_test", ROOT / "bench" / "bench_agent.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def small_checkpoint(directory: Path, *, hidden_size: int, heads: int, kv_heads: int | None = None,
                     tied: bool = False) -> str:
    from transformers import LlamaConfig, LlamaForCausalLM

    from lumos.tiny_model import byte_level_tokenizer

    tokenizer = byte_level_tokenizer(PROMPTS * 20, vocab_size=300)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=hidden_size * 2,
                         num_hidden_layers=2, num_attention_heads=heads, num_key_value_heads=kv_heads or heads,
                         max_position_embeddings=512, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                         tie_word_embeddings=tied, initializer_range=0.2, rms_norm_eps=1e-5)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return str(directory)


@pytest.mark.parametrize("hidden_size, heads, tied", [(64, 4, False), (128, 4, True), (64, 1, True)])
def test_widened_model_gives_the_same_logits_and_replies(tmp_path, hidden_size, heads, tied):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lumos.llm.hf_backend import HFGenerator

    source = small_checkpoint(tmp_path / "small", hidden_size=hidden_size, heads=heads, tied=tied)
    wide = bench_agent().widen_checkpoint(source, tmp_path / "wide", 256, 3)
    small_model = AutoModelForCausalLM.from_pretrained(source).eval()
    wide_model = AutoModelForCausalLM.from_pretrained(wide).eval()
    assert wide_model.config.hidden_size == 256 and wide_model.config.num_hidden_layers == 3
    assert wide_model.config.head_dim == 64 and wide_model.config.num_attention_heads == 4
    assert sum(p.numel() for p in wide_model.parameters()) > 4 * sum(p.numel() for p in small_model.parameters())
    tokenizer = AutoTokenizer.from_pretrained(source)
    batch = tokenizer(PROMPTS, return_tensors="pt", padding=True)
    with torch.no_grad():
        small_logits, wide_logits = small_model(**batch).logits, wide_model(**batch).logits
    real = batch["attention_mask"].bool()
    assert torch.allclose(small_logits[real], wide_logits[real], atol=1e-4, rtol=1e-4)
    # the same greedy replies through the benchmark's generator, with and without its key/value cache
    for kv_cache_tokens in (None, 0):
        replies = [HFGenerator.from_pretrained(path, device="cpu", dtype="float32", kv_cache_tokens=kv_cache_tokens)
                   .generate(PROMPTS, stop=[], max_new_tokens=12) for path in (source, wide)]
        assert replies[0] == replies[1]


def test_widen_refuses_what_it_cannot_embed(tmp_path):
    widen = bench_agent().widen_checkpoint
    grouped = small_checkpoint(tmp_path / "grouped", hidden_size=64, heads=4, kv_heads=2)
    with pytest.raises(ValueError, match="key/value heads"):
        widen(grouped, tmp_path / "out", 256, 3)
    source = small_checkpoint(tmp_path / "small", hidden_size=64, heads=4)
    with pytest.raises(ValueError, match="at least 2 layers"):
        widen(source, tmp_path / "out", 256, 1)
    with pytest.raises(ValueError, match="width at least"):
        widen(source, tmp_path / "out", 32, 3, head_dim=16)
