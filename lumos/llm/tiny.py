"""A randomly initialised tiny LLaMA and a byte-level BPE tokenizer, for tests and benchmarks.

Nothing is downloaded: the tokenizer is trained on the text given, the weights are random
(seeded). Byte-level, so every string (newlines included) can be encoded and generated.
"""

from __future__ import annotations

from typing import Any, Iterable

SPECIAL_TOKENS = ("<s>", "</s>", "<pad>")


def byte_level_tokenizer(corpus: Iterable[str], vocab_size: int = 320) -> Any:
    """A ``PreTrainedTokenizerFast`` whose encoding starts with ``<s>`` when special tokens are added."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(corpus, trainer=trainer)
    tokenizer.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                             special_tokens=[("<s>", tokenizer.token_to_id("<s>"))])
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", pad_token="<pad>")


def random_tiny_llama(tokenizer: Any, *, hidden_size: int = 64, layers: int = 2, heads: int = 4, initializer_range: float = 0.2,
                      seed: int = 0) -> Any:
    """A float32 ``LlamaForCausalLM`` with random weights sized for ``tokenizer``."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=hidden_size * 2,
                         num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
                         max_position_embeddings=1024, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                         tie_word_embeddings=False, initializer_range=initializer_range)
    torch.manual_seed(seed)
    return LlamaForCausalLM(config).eval()
