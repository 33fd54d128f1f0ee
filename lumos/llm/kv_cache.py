"""Key/value caches kept across calls, so a conversation that grew by one turn is prefilled by that turn only.

The agent loop sends every module its whole conversation each round: the planner's and the
grounder's conversations only grow, so all but the newest turn was computed in the last round.
:class:`PrefixCache` keeps, per conversation, the token ids it was generated from (the prompt and
the reply tokens that were fed back) with their keys and values; a new prompt reuses the longest
common prefix of token ids it shares with any kept entry. Matching on token ids needs nothing from
the caller: no session key, no knowledge of which prompt continues which conversation, and it
stays exact when a reply is re-rendered differently from how it was generated (the reuse simply
ends where the ids differ). Prompts sharing an instruction header reuse its keys and values too.

Memory is bounded: an entry that no prompt continued for ``max_idle_calls`` calls (a finished
task) is evicted, and past ``max_tokens`` cached tokens the least recently used entries go; an
evicted conversation is prefilled again in full, with the same outputs.

:func:`greedy_generate` is the decoding loop that reads and fills the cache: a batch whose rows
have different cached lengths is laid out ``[pad, cached, pad, new]`` with an attention mask and
explicit positions, greedy, each row stopping at its own stop string or EOS (as ``HFGenerator``
does with ``model.generate``), finished rows dropped from the batch as they accumulate.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Sequence

from lumos.llm.base import truncate_at_stop

BLOCK = 16  # tokens per hashed block of the prefix index


@dataclass
class CacheEntry:
    """One conversation's token ids and, per layer, their keys and values (``[heads, len(ids), head_dim]``)."""

    ids: list[int]
    keys: list[Any]
    values: list[Any]
    prompt_length: int  # ids[:prompt_length] was the prompt; the rest are reply tokens fed back
    last_used: int = 0
    hashes: list[int] = field(default_factory=list)  # chained hash of each whole block of ids


def block_hashes(ids: Sequence[int], limit: int | None = None) -> list[int]:
    hashes, previous = [], 0
    end = len(ids) if limit is None else min(limit, len(ids))
    for start in range(0, end - BLOCK + 1, BLOCK):
        previous = hash((previous, tuple(ids[start:start + BLOCK])))
        hashes.append(previous)
    return hashes


def _common_prefix(a: Sequence[int], b: Sequence[int], start: int = 0) -> int:
    n = min(len(a), len(b))
    k = start
    while k < n and a[k] == b[k]:
        k += 1
    return k


class PrefixCache:
    """Kept conversations, found by the longest common prefix of token ids; at most ``max_tokens`` tokens."""

    def __init__(self, max_tokens: int, *, max_idle_calls: int = 2):
        if max_tokens < 0:
            raise ValueError(f"max_tokens must be at least 0, got {max_tokens}")
        if max_idle_calls < 1:
            raise ValueError(f"max_idle_calls must be at least 1, got {max_idle_calls}")
        self.max_tokens = max_tokens
        self.max_idle_calls = max_idle_calls
        self.entries: dict[int, CacheEntry] = {}
        self._index: dict[int, set[int]] = {}  # block hash -> entries whose ids start with that chain
        self._next = 0
        self.calls = 0
        self.tokens = 0  # sum of len(entry.ids)

    def lookup(self, ids: Sequence[int], hashes: Sequence[int] | None = None) -> tuple[CacheEntry | None, int]:
        """The entry sharing the longest prefix with ``ids`` and how many of its tokens to reuse
        (at most ``len(ids) - 1``: the last prompt token is always fed, for the next token's logits).
        ``hashes``: ``block_hashes(ids)``, when the caller looks the same ids up more than once."""
        best: CacheEntry | None = None
        depth = 0
        for k, value in enumerate(block_hashes(ids) if hashes is None else hashes):
            holders = self._index.get(value)
            if not holders:
                break
            best, depth = self.entries[max(holders)], (k + 1) * BLOCK  # the newest sharing this block chain
        if best is None:
            return None, 0
        if best.ids[:depth] != list(ids[:depth]):
            depth = 0  # a hash collision: compare from the start
        shared = _common_prefix(best.ids, ids, depth)
        best.last_used = self.calls
        return best, min(shared, len(ids) - 1)

    def store(self, ids: list[int], keys: list[Any], values: list[Any], prompt_length: int,
              replaces: CacheEntry | None = None) -> None:
        """Keep a conversation; ``replaces``: the entry it continued (dropped, the new one holds more)."""
        if replaces is not None and replaces.prompt_length <= _common_prefix(replaces.ids, ids):
            self._drop(self._key(replaces))
        if not ids or len(ids) > self.max_tokens:
            return
        key = self._next
        self._next += 1
        entry = CacheEntry(ids, keys, values, prompt_length, self.calls, block_hashes(ids))
        self.entries[key] = entry
        for value in entry.hashes:
            self._index.setdefault(value, set()).add(key)
        self.tokens += len(ids)
        while self.tokens > self.max_tokens:
            self._drop(min(self.entries, key=lambda k: (self.entries[k].last_used, k)))

    def end_call(self) -> None:
        """One generation call is over: entries idle for ``max_idle_calls`` calls are evicted."""
        for key in [k for k, e in self.entries.items() if self.calls - e.last_used >= self.max_idle_calls]:
            self._drop(key)
        self.calls += 1

    def clear(self) -> None:
        for key in list(self.entries):
            self._drop(key)

    def _key(self, entry: CacheEntry) -> int | None:
        return next((k for k, e in self.entries.items() if e is entry), None)

    def _drop(self, key: int | None) -> None:
        entry = self.entries.pop(key, None) if key is not None else None
        if entry is None:
            return
        self.tokens -= len(entry.ids)
        for value in entry.hashes:
            holders = self._index.get(value)
            if holders is not None:
                holders.discard(key)
                if not holders:
                    del self._index[value]


def supports_prefix_cache(model: Any) -> bool:
    """A decoder whose every layer attends to the whole past (no sliding window) and takes explicit positions."""
    config = getattr(model, "config", None)
    if config is None or (getattr(config, "sliding_window", None) and getattr(config, "use_sliding_window", True)):
        return False
    if any("sliding" in str(kind) or "chunk" in str(kind) for kind in getattr(config, "layer_types", None) or ()):
        return False
    if getattr(config, "is_encoder_decoder", False):
        return False
    return "position_ids" in inspect.signature(model.forward).parameters


@dataclass
class GreedyStats:
    """What one batch cost: prompt tokens computed (prefill) and prompt tokens read from the cache."""

    prefilled: int = 0
    reused: int = 0
    generated: int = 0


def _cache_keyword(model: Any) -> str:
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


_BUFFER_LAYER: Any = None


def _buffer_layer_class() -> Any:
    """A ``DynamicLayer`` whose keys and values are views of a buffer with room for ``reserve`` more tokens:
    appending a decoded token writes one column instead of copying the whole cache (``torch.cat``)."""
    global _BUFFER_LAYER
    if _BUFFER_LAYER is not None:
        return _BUFFER_LAYER
    from transformers.cache_utils import DynamicLayer

    class BufferLayer(DynamicLayer):
        def __init__(self, reserve: int):
            super().__init__()
            self.reserve = reserve
            self.length = 0

        def update(self, key_states, value_states, *args, **kwargs):
            need = self.length + key_states.shape[-2]
            if not self.is_initialized or need > self.buffer_keys.shape[-2]:
                shape = (*key_states.shape[:2], need + self.reserve, key_states.shape[-1])
                keys, values = key_states.new_empty(shape), value_states.new_empty(shape)
                if self.is_initialized:
                    keys[:, :, :self.length] = self.keys
                    values[:, :, :self.length] = self.values
                self.buffer_keys, self.buffer_values = keys, values
                self.device, self.is_initialized = key_states.device, True
            self.buffer_keys[:, :, self.length:need] = key_states
            self.buffer_values[:, :, self.length:need] = value_states
            self.length = need
            self.keys, self.values = self.buffer_keys[:, :, :need], self.buffer_values[:, :, :need]
            return self.keys, self.values

    _BUFFER_LAYER = BufferLayer
    return BufferLayer


def _new_cache(keys: list[Any] | None, values: list[Any] | None, reserve: int = 0):
    import functools

    from transformers import DynamicCache

    cache = DynamicCache()
    try:
        cache.layer_class_to_replicate = functools.partial(_buffer_layer_class(), reserve)
    except ImportError:  # a transformers without cache layers: the plain growing cache
        pass
    if keys is not None:
        for layer, (k, v) in enumerate(zip(keys, values)):
            cache.update(k, v, layer)
    return cache


def _layer_tensors(cache: Any) -> tuple[list[Any], list[Any]]:
    layers = getattr(cache, "layers", None)
    if layers is not None:
        return [layer.keys for layer in layers], [layer.values for layer in layers]
    return [k for k, _ in cache], [v for _, v in cache]  # older transformers: a tuple per layer


def greedy_generate(model: Any, tokenizer: Any, sequences: list[list[int]], reused: list[tuple[CacheEntry | None, int]],
                    stop: list[str], max_new_tokens: int, *, pad_token_id: int, eos_token_id: int | None,
                    store: PrefixCache | None) -> tuple[list[str], GreedyStats]:
    """Greedy continuations of ``sequences``; row ``b`` reads ``reused[b][1]`` tokens' keys and values from
    ``reused[b][0]`` and computes only the rest. With ``store``, each row's conversation is kept afterwards."""
    import torch

    device = model.device
    rows = len(sequences)
    counts = [n for _, n in reused]
    width_cached = max(counts)
    suffixes = [ids[n:] for ids, n in zip(sequences, counts)]
    width_new = max(len(s) for s in suffixes)
    stats = GreedyStats(prefilled=sum(len(s) for s in suffixes), reused=sum(counts))

    keys = values = None
    if width_cached:
        template = next(entry for entry, n in reused if n)
        keys, values = [], []
        for layer in range(len(template.keys)):
            k0 = template.keys[layer]
            heads, dim = k0.shape[0], k0.shape[2]
            k = torch.zeros(rows, heads, width_cached, dim, dtype=k0.dtype, device=k0.device)
            v = torch.zeros_like(k)
            for b, (entry, n) in enumerate(reused):
                if n:
                    k[b, :, width_cached - n:] = entry.keys[layer][:, :n]
                    v[b, :, width_cached - n:] = entry.values[layer][:, :n]
            keys.append(k)
            values.append(v)
    cache = _new_cache(keys, values, reserve=width_new + max_new_tokens)
    mask = torch.zeros(rows, width_cached + width_new, dtype=torch.long)
    input_ids = torch.full((rows, width_new), pad_token_id, dtype=torch.long)
    for b, (n, suffix) in enumerate(zip(counts, suffixes)):
        mask[b, width_cached - n:width_cached] = 1
        mask[b, width_cached + width_new - len(suffix):] = 1
        input_ids[b, width_new - len(suffix):] = torch.tensor(suffix, dtype=torch.long)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    mask, input_ids, positions = mask.to(device), input_ids.to(device), positions.to(device)
    keyword = _cache_keyword(model)

    stop = [s for s in stop if s]
    window = 4 * max((len(s) for s in stop), default=1) + 4
    generated: list[list[int]] = [[] for _ in range(rows)]
    done = [False] * rows
    live = list(range(rows))  # batch row -> input row
    kept: list[tuple[int, list[int], list[Any], list[Any]]] = []  # (row, ids, keys, values)

    def keep(batch_rows: list[int], layer_keys: list[Any], layer_values: list[Any], length: int) -> None:
        """Copy out the real (unpadded) columns of finished rows: cached, new, then fed reply tokens."""
        if store is None:
            return
        for position in batch_rows:
            row = live[position]
            n, s = counts[row], len(suffixes[row])
            fed = len(generated[row]) - 1  # the last generated token was never fed
            columns = (list(range(width_cached - n, width_cached)) + list(range(width_cached + width_new - s,
                                                                               width_cached + width_new))
                       + list(range(width_cached + width_new, min(length, width_cached + width_new + fed))))
            index = torch.tensor(columns, device=device)
            kept.append((row, sequences[row] + generated[row][:len(columns) - n - s],
                         [k[position].index_select(1, index) for k in layer_keys],
                         [v[position].index_select(1, index) for v in layer_values]))

    with torch.inference_mode():
        output = model(input_ids=input_ids, attention_mask=mask, position_ids=positions[:, width_cached:],
                       use_cache=True, logits_to_keep=1, **{keyword: cache})
        position = positions[:, -1:]
        for step in range(max_new_tokens):
            tokens = output.logits[:, -1, :].argmax(-1)
            tokens_list = tokens.tolist()
            for b, row in enumerate(live):
                if done[row]:
                    continue
                generated[row].append(tokens_list[b])
                if eos_token_id is not None and tokens_list[b] == eos_token_id:
                    done[row] = True
                elif stop:
                    text = tokenizer.decode(generated[row][-window:], skip_special_tokens=True)
                    done[row] = any(s in text for s in stop)
            finished = [b for b, row in enumerate(live) if done[row]]
            if step == max_new_tokens - 1 or len(finished) == len(live):
                break
            if finished and len(finished) * 4 >= len(live):  # drop finished rows once they are a quarter
                layer_keys, layer_values = _layer_tensors(cache)
                keep(finished, layer_keys, layer_values, mask.shape[1])
                stay = [b for b in range(len(live)) if not done[live[b]]]
                index = torch.tensor(stay, device=device)
                cache = _new_cache([k.index_select(0, index) for k in layer_keys],
                                   [v.index_select(0, index) for v in layer_values], reserve=max_new_tokens - step)
                live = [live[b] for b in stay]
                mask, position, tokens = mask[index], position[index], tokens[index]
            feed = tokens.clone()
            column = torch.ones(len(live), 1, dtype=mask.dtype, device=device)
            for b, row in enumerate(live):
                if done[row]:
                    feed[b] = pad_token_id
                    column[b] = 0
            mask = torch.cat([mask, column], dim=1)
            position = position + 1
            output = model(input_ids=feed[:, None], attention_mask=mask, position_ids=position, use_cache=True,
                           logits_to_keep=1, **{keyword: cache})
        if store is not None:
            layer_keys, layer_values = _layer_tensors(cache)
            keep(list(range(len(live))), layer_keys, layer_values, layer_keys[0].shape[2])
    for row, ids, layer_keys, layer_values in kept:
        entry, n = reused[row]
        store.store(ids, layer_keys, layer_values, len(sequences[row]), replaces=entry if n else None)
    texts = [truncate_at_stop(tokenizer.decode(row, skip_special_tokens=True), stop) for row in generated]
    stats.generated = sum(sum(1 for t in row if t != pad_token_id) for row in generated)
    return texts, stats


def default_max_tokens(model: Any, budget_bytes: int = 2 << 30) -> int:
    """How many tokens' keys and values of ``model`` fit in ``budget_bytes`` (2 GiB: about a million tokens
    of a tiny model, 4,096 of a 7B LLaMA in bf16)."""
    config = model.config
    layers = config.num_hidden_layers
    heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
    dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    size = next(model.parameters()).element_size()
    return budget_bytes // (2 * layers * heads * dim * size)
