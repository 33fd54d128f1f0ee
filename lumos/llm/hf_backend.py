"""A local transformers causal LM behind the batched interface.

Loaded once per run. Prompts are sorted by token length and generated in left-padded batches
(outputs come back in input order); decoding is greedy; each row stops at its own first stop
string (the first newline of the answer by default) or EOS: a finished row is frozen (it only
receives padding) and the batch ends as soon as every row is done.

Key/value caches across calls (``kv_cache_tokens``, ``lumos.llm.kv_cache``): the agent's conversations
only grow, so each prompt reuses the keys and values of the longest token-id prefix it shares with a
conversation generated before, and only the rest is prefilled; the same greedy outputs. A
conversation idle for two calls (a finished task) is evicted, and at most ``kv_cache_tokens`` tokens
are kept (least recently used go first; an evicted conversation is prefilled in full again).
``None``: as many as 2 GiB hold; 0: off (``model.generate`` on whole prompts, as before).
With the cache, a call is one decoding loop with continuous batching: ``batch_size`` slots; rows that
stop hand their slots to the next waiting prompts once half the slots are free (``greedy_generate``).

Special tokens: ``add_special_tokens=True`` (default) prepends BOS as training did (tulu
style); ``False`` tokenises the text exactly as given, as the original evaluation scripts did.

Quantised loading, the original run_eval's ``--load_in_8bit`` and ``--gptq``: ``load_in_8bit`` /
``load_in_4bit`` quantise the weights with bitsandbytes while loading (its CPU kernels work too,
slowly; it says so in one line); ``gptq`` loads a GPTQ checkpoint that transformers reads (a
``quantization_config`` in config.json, as optimum/GPTQModel write it), which needs the optimum
and gptqmodel packages. What cannot work is one line (:class:`QuantizedLoadError`) before any
weight is read.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path
from typing import Any, Sequence

from lumos import hub
from lumos.llm.base import DEFAULT_STOP, GenerationError, Generator, Usage, truncate_at_stop
from lumos.llm.kv_cache import (PrefixCache, block_hashes, default_max_tokens, greedy_generate, stop_window,
                                supports_prefix_cache, tail_has_stop)

MODEL_LAYOUT = ("a folder holding config.json, the tokenizer files (tokenizer.json or tokenizer.model, "
                "tokenizer_config.json) and the weights (*.safetensors or pytorch_model*.bin)")


logger = logging.getLogger("lumos.llm.hf")


class QuantizedLoadError(ValueError):
    """A quantised load that cannot work here (a missing package, a checkpoint of another kind); one line."""


def check_quantized_load(name_or_path: str | Path, *, load_in_8bit: bool = False, load_in_4bit: bool = False,
                         gptq: bool = False) -> None:
    """Refuse, in one line and before the heavy imports, a quantised load that cannot work."""
    if sum((load_in_8bit, load_in_4bit, gptq)) > 1:
        raise QuantizedLoadError("choose one of load_in_8bit, load_in_4bit and gptq")
    if (load_in_8bit or load_in_4bit) and importlib.util.find_spec("bitsandbytes") is None:
        flag = "--load_in_8bit" if load_in_8bit else "load_in_4bit"
        raise QuantizedLoadError(f"{flag} needs the bitsandbytes package: pip install bitsandbytes")
    if not gptq:
        return
    folder = Path(str(name_or_path)).expanduser()
    if folder.is_dir():
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        method = (config.get("quantization_config") or {}).get("quant_method")
        if method != "gptq":
            auto_gptq = " (its quantize_config.json is AutoGPTQ's own layout, which transformers does not " \
                        "read: re-save it with optimum or GPTQModel)" if (folder / "quantize_config.json").is_file() \
                else ""
            raise QuantizedLoadError(f"--gptq: {folder} is not a GPTQ checkpoint transformers can load: its "
                                     f"config.json has no GPTQ quantization_config{auto_gptq}")
    missing = [name for name in ("optimum", "gptqmodel") if importlib.util.find_spec(name) is None]
    if missing:
        raise QuantizedLoadError(f"--gptq: loading GPTQ weights through transformers needs {' and '.join(missing)}: "
                                 f"pip install {' '.join(missing)}")


class ModelNotFoundError(FileNotFoundError):
    """A model that is neither a usable local folder nor reachable on the hub; the message is one line."""


def check_model_source(name_or_path: str | Path) -> None:
    """Fail fast, in one line, on a model that cannot load: a missing folder, a folder without a model,
    or a hub id that is not cached while the hub is off (``HF_HUB_OFFLINE``) or unreachable."""
    text = str(name_or_path)
    path = Path(text).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(f"model folder {path} holds no config.json: expected {MODEL_LAYOUT}")
        return
    if path.exists():
        raise ModelNotFoundError(f"model {path} is a file: expected {MODEL_LAYOUT}")
    if not hub.HUB_ID.fullmatch(text):  # (a path: "./x", "/x", "~/x" is no hub id)
        raise ModelNotFoundError(f"model folder {path} does not exist: expected {MODEL_LAYOUT}")
    if hub.cached_file(text, "config.json") is not None:
        return  # in the local hub cache: loads offline too
    where = f"no folder {path} here and {text!r} is not in the Hugging Face cache"
    if hub.offline():
        raise ModelNotFoundError(f"model {text!r}: {where}, and HF_HUB_OFFLINE=1 keeps the hub off: "
                                 f"give {MODEL_LAYOUT}")
    if not hub.reachable():
        raise ModelNotFoundError(f"model {text!r}: {where}, and the hub cannot be reached (offline?): give "
                                 f"{MODEL_LAYOUT}, or set HF_HUB_OFFLINE=1 to use cached models only")


def _stopping_criteria_class():
    from transformers import StoppingCriteria

    class StopStringsPerRow(StoppingCriteria):
        """Marks a row done once its generated text contains a stop string (checked on decoded text,
        so a stop string split across tokens is still found)."""

        def __init__(self, tokenizer, stop: Sequence[str], prompt_length: int, batch_size: int):
            self.tokenizer = tokenizer
            self.stop = [s for s in stop if s]
            self.prompt_length = prompt_length
            self.done = [False] * batch_size
            self.window = stop_window(self.stop)

        def __call__(self, input_ids, scores, **kwargs):
            import torch

            start = max(self.prompt_length, input_ids.shape[1] - self.window)
            for row in range(input_ids.shape[0]):
                if not self.done[row]:
                    self.done[row] = tail_has_stop(self.tokenizer, input_ids[row, start:], self.stop)
            return torch.tensor(self.done, dtype=torch.bool, device=input_ids.device)

    return StopStringsPerRow


class HFGenerator(Generator):
    """Greedy batched generation with a loaded ``model`` and ``tokenizer`` (see ``from_pretrained``).

    Without the KV cache, prompts are sorted by length and cut into sub-batches of at most ``batch_size``
    rows whose prompts are padded by at most ``max_padding`` of the longest one (1.0: no limit). With it,
    ``batch_size`` is the number of rows decoded together (slots, refilled as rows stop).
    """

    thread_safe = False
    # With the cache (see greedy_generate): stopped rows' slots are refilled once half of them are free, and
    # new rows are prefilled in a pass of their own (not padded into the running rows' decoding pass): on
    # a CPU each admission's copies and padding cost more than the passes they save.
    refill_fraction = 0.5
    combine_tokens = 0

    def __init__(self, model: Any, tokenizer: Any, *, batch_size: int = 16, add_special_tokens: bool = True,
                 max_padding: float = 0.2, kv_cache_tokens: int | None = None):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if not 0.0 <= max_padding <= 1.0:
            raise ValueError(f"max_padding must be between 0 and 1, got {max_padding}")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        # A prompt shorter than (1 - max_padding) of its sub-batch's longest starts a new sub-batch:
        # prefill dominates short answers, and left padding would be computed like real tokens.
        self.max_padding = max_padding
        self.add_special_tokens = add_special_tokens
        self.usage = Usage()
        self.pad_token_id = next((t for t in (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id)
                                  if t is not None), None)
        if self.pad_token_id is None:
            raise ValueError("the tokenizer has no pad, eos or unk token to pad batches with")
        if kv_cache_tokens is not None and kv_cache_tokens < 0:
            raise ValueError(f"kv_cache_tokens must be at least 0, got {kv_cache_tokens}")
        self.kv_cache: PrefixCache | None = None
        if kv_cache_tokens != 0 and supports_prefix_cache(self.model):
            self.kv_cache = PrefixCache(default_max_tokens(self.model) if kv_cache_tokens is None else kv_cache_tokens)

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, *, device: str | None = None, dtype: str | None = None,
                        batch_size: int = 16, add_special_tokens: bool = True, max_padding: float = 0.2,
                        load_in_8bit: bool = False, load_in_4bit: bool = False, gptq: bool = False,
                        kv_cache_tokens: int | None = None) -> "HFGenerator":
        """Load once: bf16 on GPU, float32 on CPU unless ``dtype`` ("bfloat16", "float16", "float32") says otherwise.

        ``load_in_8bit`` / ``load_in_4bit`` (bitsandbytes; NF4 for 4-bit) and ``gptq`` as in the module
        docstring; a quantised model is placed on ``device`` while loading.
        """
        if dtype not in (None, "bfloat16", "float16", "float32"):
            raise ValueError(f"dtype must be bfloat16, float16 or float32, got {dtype!r}")
        check_model_source(name_or_path)  # before the heavy imports: a wrong path fails in a second
        check_quantized_load(name_or_path, load_in_8bit=load_in_8bit, load_in_4bit=load_in_4bit, gptq=gptq)
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if dtype is None:
            torch_dtype = torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32
        elif dtype in ("bfloat16", "float16", "float32"):
            torch_dtype = getattr(torch, dtype)
        else:
            raise ValueError(f"dtype must be bfloat16, float16 or float32, got {dtype!r}")
        tokenizer = AutoTokenizer.from_pretrained(str(name_or_path))
        if load_in_8bit or load_in_4bit or gptq:
            options: dict[str, Any] = {"dtype": torch_dtype, "device_map": {"": device}}
            if load_in_8bit or load_in_4bit:
                from transformers import BitsAndBytesConfig

                options["quantization_config"] = BitsAndBytesConfig(load_in_8bit=True) if load_in_8bit else \
                    BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch_dtype)
                if torch.device(device).type == "cpu":
                    logger.warning("%s-bit weights on the CPU: bitsandbytes' CPU kernels work but are slow; they "
                                   "are meant for a CUDA GPU", 8 if load_in_8bit else 4)
            model = AutoModelForCausalLM.from_pretrained(str(name_or_path), **options)
        else:
            model = AutoModelForCausalLM.from_pretrained(str(name_or_path), dtype=torch_dtype).to(device)
        return cls(model, tokenizer, batch_size=batch_size, add_special_tokens=add_special_tokens,
                   max_padding=max_padding, kv_cache_tokens=kv_cache_tokens)

    @property
    def eos(self) -> str:
        """The EOS text, as ``lumos.prompts.render_prompt`` needs it."""
        return self.tokenizer.eos_token or ""

    def try_generate(self, prompts: Sequence[str], *, stop: list[str] | None = None,
                     max_new_tokens: int = 256) -> list[str | GenerationError]:
        """Greedy continuations; ``stop=None`` stops each row at its first newline, ``[]`` only at EOS."""
        stop = list(DEFAULT_STOP) if stop is None else list(stop)
        encoded = self.encode(prompts)
        if self.kv_cache is not None:
            return self._generate_reusing(encoded, stop, max_new_tokens)
        results: list[str | GenerationError] = [""] * len(prompts)
        for rows in self._sub_batches([len(ids) for ids in encoded]):
            texts = self._generate_batch([encoded[i] for i in rows], stop, max_new_tokens)
            for i, text in zip(rows, texts):
                results[i] = text
        return results

    def encode(self, prompts: Sequence[str]) -> list[list[int]]:
        """The token ids each prompt is generated from (BOS first only with ``add_special_tokens``)."""
        return self.tokenizer(list(prompts), add_special_tokens=self.add_special_tokens)["input_ids"]

    def _sub_batches(self, lengths: Sequence[int]) -> list[list[int]]:
        """Prompt indices, longest first, in sub-batches of at most ``batch_size`` similar lengths
        (within ``max_padding`` of the longest)."""
        batches: list[list[int]] = []
        for index in sorted(range(len(lengths)), key=lambda i: lengths[i], reverse=True):
            current = batches[-1] if batches else None
            if (current is None or len(current) >= self.batch_size
                    or lengths[index] < (1.0 - self.max_padding) * lengths[current[0]]):
                batches.append([index])
            else:
                current.append(index)
        return batches

    def _generate_reusing(self, encoded: list[list[int]], stop: list[str], max_new_tokens: int) -> list[str]:
        """``try_generate`` with the prefix cache and continuous batching: one decoding loop over every
        prompt of the call with ``batch_size`` slots; a row that stops hands its slot to the next prompt.

        Prompts enter longest-to-prefill first (so rows entering together have new turns of similar
        lengths) and are looked up again when they enter, so prompts sharing a header with one generated
        earlier in the same call (the first round's instructions) reuse its keys and values.
        """
        cache = self.kv_cache
        hashes = [block_hashes(ids) for ids in encoded]
        to_prefill = [len(ids) - cache.lookup(ids, h)[1] for ids, h in zip(encoded, hashes)]
        order = sorted(range(len(encoded)), key=lambda i: to_prefill[i], reverse=True)
        try:
            texts, stats = greedy_generate(self.model, self.tokenizer, encoded, stop, max_new_tokens,
                                           slots=self.batch_size, pad_token_id=self.pad_token_id,
                                           eos_token_id=self.tokenizer.eos_token_id, store=cache, hashes=hashes,
                                           order=order, refill_fraction=self.refill_fraction,
                                           combine_tokens=self.combine_tokens)
        finally:
            cache.end_call()
        self.usage.requests += len(encoded)
        self.usage.prompt_tokens += stats.prefilled + stats.reused
        self.usage.cached_prompt_tokens += stats.reused
        self.usage.completion_tokens += stats.generated
        return texts

    def _generate_batch(self, sequences: list[list[int]], stop: list[str], max_new_tokens: int) -> list[str]:
        import torch
        from transformers import GenerationConfig, StoppingCriteriaList

        width = max(len(s) for s in sequences)
        input_ids = torch.tensor([[self.pad_token_id] * (width - len(s)) + s for s in sequences])
        attention_mask = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in sequences])
        device = self.model.device
        config = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                                  pad_token_id=self.pad_token_id, eos_token_id=self.tokenizer.eos_token_id,
                                  bos_token_id=self.tokenizer.bos_token_id)
        criteria = StoppingCriteriaList()
        if stop:
            criteria.append(_stopping_criteria_class()(self.tokenizer, stop, width, len(sequences)))
        output = self.model.generate(input_ids=input_ids.to(device), attention_mask=attention_mask.to(device),
                                     generation_config=config, stopping_criteria=criteria)
        generated = output[:, width:]
        texts = [truncate_at_stop(self.tokenizer.decode(row, skip_special_tokens=True), stop) for row in generated]
        self.usage.requests += len(sequences)
        self.usage.prompt_tokens += sum(len(s) for s in sequences)
        self.usage.completion_tokens += int((generated != self.pad_token_id).sum())
        return texts
