"""The embedded default model: a small LLaMA-architecture model and a tokenizer trained on the data.

When no base model is given (``MODEL=tiny``), training starts from a randomly initialised
``LlamaForCausalLM`` of a few million parameters and a byte-level BPE tokenizer trained on the
training conversations themselves. Both are saved like any Hugging Face checkpoint, so every later
step (fine-tuning, merging, inference) loads them with ``from_pretrained``.

The tokenizer follows LLaMA-2 + Tulu conventions: ``<s>`` is added in front of every encoded text,
``</s>`` ends each assistant turn, ``<unk>`` and ``<pad>`` exist, numbers are split into single
digits (as LLaMA's sentencepiece model does), and the chat markers ``<|user|>``, ``<|assistant|>``,
``<|system|>`` are single tokens that decoding keeps.

The fixed text of the module prompts (docs/FORMAT.md §3: each domain's grounding instruction block, the
planning instruction, ``". Should we stop planning?"``, ``"No, I will keep planning. "``, ...) is one
token per phrase as well (:func:`prompt_phrases`): a grounding conversation is then about half as
many tokens, so a small model trains about twice as many conversations a minute, and none of the
vocabulary is spent on text that never varies. Decoding gives the text back byte for byte.

For tests and benchmarks that need a model but no training, :func:`byte_level_tokenizer` trains a
plain byte-level BPE tokenizer on the text given and :func:`random_tiny_llama` builds a seeded
random ``LlamaForCausalLM`` for it; nothing is downloaded.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from lumos.prompts import ROLE_HEADERS

if TYPE_CHECKING:  # heavy imports stay lazy
    from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

BOS, EOS, UNK, PAD = "<s>", "</s>", "<unk>", "<pad>"
SPECIAL_TOKENS = (UNK, BOS, EOS, PAD)
CHAT_MARKERS = tuple(header.strip() for header in ROLE_HEADERS.values())


@dataclass(frozen=True)
class TinyModelConfig:
    """Size of the tiny model; the defaults train a few hundred steps on a CPU in minutes."""

    vocab_size: int = 4000
    hidden_size: int = 256
    intermediate_size: int = 688
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    num_key_value_heads: int = 4
    max_position_embeddings: int = 2048

    @classmethod
    def scaled(cls, hidden_size: int = 256, num_hidden_layers: int = 4, vocab_size: int = 4000,
               max_position_embeddings: int = 2048) -> "TinyModelConfig":
        """LLaMA proportions for a width: heads of 64 dimensions, MLP about 8/3 of the width.

        Narrow models keep at least four heads (of 32 dimensions at width 128): copying a number digit
        by digit from the task takes several attention patterns at once, which one or two heads lack.
        """
        heads = max(4 if hidden_size % 4 == 0 else 1, hidden_size // 64)
        return cls(vocab_size=vocab_size, hidden_size=hidden_size,
                   intermediate_size=max(8, hidden_size * 8 // 3 // 8 * 8), num_hidden_layers=num_hidden_layers,
                   num_attention_heads=heads, num_key_value_heads=heads,
                   max_position_embeddings=max_position_embeddings)

    def __post_init__(self) -> None:
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(f"hidden_size {self.hidden_size} must be divisible by "
                             f"num_attention_heads {self.num_attention_heads}")
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(f"num_attention_heads {self.num_attention_heads} must be a multiple of "
                             f"num_key_value_heads {self.num_key_value_heads}")
        if self.vocab_size < 300:
            raise ValueError(f"vocab_size {self.vocab_size} is below the 256 byte symbols plus specials")


def prompt_phrases() -> tuple[str, ...]:
    """The text every Lumos prompt repeats verbatim, longest first: each becomes one token."""
    from lumos import prompts
    from lumos.domains import domain_names

    marker = "\x00"  # a task text no real task has, to cut the grounding block where the task starts
    blocks = []
    for name in domain_names(training=True):  # the domains whose conversations it is trained on
        block = prompts.ground_instruction(name, marker)
        blocks.append(block[:block.index("Task: " + marker)])
    phrases = {*blocks, prompts.PLAN_INSTRUCTION + "Task: ", "; Initial Environment Description: None.",
               prompts.STOP_QUESTION, prompts.KEEP_PLANNING, prompts.STOP_PLANNING,
               "The executed result for Subgoal ", "Subgoal to be grounded: ", "Subgoals to be grounded: "}
    # without their trailing space, so that the word after a phrase is the same token as anywhere else
    phrases = {phrase.rstrip(" ") for phrase in phrases}
    return tuple(sorted(phrases, key=lambda phrase: (-len(phrase), phrase)))


def train_tokenizer(texts: Iterable[str], vocab_size: int = 4000,
                    phrases: Iterable[str] | None = None) -> "PreTrainedTokenizerFast":
    """Train a byte-level BPE tokenizer (digits split singly) on ``texts``; returns a fast tokenizer.

    ``phrases`` (default :func:`prompt_phrases`) become single tokens, and the BPE merges are learnt
    on the rest of the text.
    """
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    phrases = prompt_phrases() if phrases is None else tuple(sorted(phrases, key=len, reverse=True))
    if phrases:
        import re

        cut = re.compile("|".join(re.escape(phrase) for phrase in phrases))
        texts = (cut.sub("\n", text) for text in texts)

    tokenizer = Tokenizer(models.BPE(unk_token=UNK))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    # Chat markers and prompt phrases are whole tokens but not "special": decoding keeps them, like the
    # text they are.
    tokenizer.add_tokens([AddedToken(text, special=False, normalized=False) for text in (*CHAT_MARKERS, *phrases)])
    bos_id = tokenizer.token_to_id(BOS)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, bos_id)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token=BOS, eos_token=EOS, unk_token=UNK, pad_token=PAD,
        add_bos_token=True, add_eos_token=False, model_max_length=1 << 20)


def build_tiny_model(tokenizer: "PreTrainedTokenizerFast", config: TinyModelConfig | None = None,
                     seed: int = 0) -> "LlamaForCausalLM":
    """A randomly initialised ``LlamaForCausalLM`` whose vocabulary matches ``tokenizer``."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    size = asdict(config or TinyModelConfig())
    size["vocab_size"] = len(tokenizer)
    llama_config = LlamaConfig(
        **size,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
        rms_norm_eps=1e-5,
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(llama_config)


def build_tiny_checkpoint(texts: Iterable[str], output_dir: str | Path,
                          config: TinyModelConfig | None = None, seed: int = 0) -> Path:
    """Train a tokenizer on ``texts``, build the tiny model, save both to ``output_dir``."""
    config = config or TinyModelConfig()
    tokenizer = train_tokenizer(texts, vocab_size=config.vocab_size)
    model = build_tiny_model(tokenizer, config, seed=seed)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    tokenizer.save_pretrained(output_dir)
    model.save_pretrained(output_dir)
    return output_dir


# --------------------------------------------------------------------------- untrained, for tests and benchmarks

BYTE_LEVEL_SPECIAL_TOKENS = (BOS, EOS, PAD)


def byte_level_tokenizer(corpus: Iterable[str], vocab_size: int = 320) -> "PreTrainedTokenizerFast":
    """A plain byte-level BPE ``PreTrainedTokenizerFast`` trained on ``corpus``; encodings start with ``<s>``
    when special tokens are added. Every string (newlines included) can be encoded and generated."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(BYTE_LEVEL_SPECIAL_TOKENS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer.train_from_iterator(corpus, trainer=trainer)
    tokenizer.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                             special_tokens=[("<s>", tokenizer.token_to_id("<s>"))])
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token=BOS, eos_token=EOS, pad_token=PAD)


def random_tiny_llama(tokenizer: "PreTrainedTokenizerFast", *, hidden_size: int = 64, layers: int = 2,
                      heads: int = 4, initializer_range: float = 0.2, seed: int = 0) -> "LlamaForCausalLM":
    """A float32 ``LlamaForCausalLM`` with seeded random weights sized for ``tokenizer``."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=hidden_size * 2,
                         num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
                         max_position_embeddings=1024, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                         tie_word_embeddings=False, initializer_range=initializer_range)
    torch.manual_seed(seed)
    return LlamaForCausalLM(config).eval()
