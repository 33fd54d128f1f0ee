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

:func:`greedy_generate` is the decoding loop that reads and fills the cache, with continuous
batching: every prompt of a call goes through one loop of at most ``slots`` rows; a row that stops
(its own stop string or EOS, as ``HFGenerator`` does with ``model.generate``) leaves the batch and
the next waiting prompt takes its slot, so a call runs about (tokens generated) / ``slots`` decoding
passes instead of, per static sub-batch, as many as its longest reply. Rows are laid out
``[pad, cached, pad, new]`` with an attention mask and explicit positions; greedy.
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
    key: int | None = None  # its key in PrefixCache.entries


def block_hashes(ids: Sequence[int], known: Sequence[int] = ()) -> list[int]:
    """The chained hash of each whole block of ``ids``; ``known``: those of its first blocks, already
    computed (``block_hashes`` of a prefix of ``ids``), continued from instead of hashed again."""
    hashes = list(known)
    previous = hashes[-1] if hashes else 0
    for start in range(len(hashes) * BLOCK, len(ids) - BLOCK + 1, BLOCK):
        previous = hash((previous, tuple(ids[start:start + BLOCK])))
        hashes.append(previous)
    return hashes


def stop_window(stop: Sequence[str]) -> int:
    """How many generated tokens to decode to find any of ``stop`` (non-empty strings) at the reply's end:
    a stop string of L characters spans at most 4L byte-level tokens, so decoding only that tail keeps
    each step's check short however long the reply grows."""
    return 4 * max((len(s) for s in stop), default=1) + 4


def tail_has_stop(tokenizer: Any, tail: Any, stop: Sequence[str]) -> bool:
    """Whether the decoded ``tail`` (token ids, at most ``stop_window(stop)`` of them) holds a stop string."""
    text = tokenizer.decode(tail, skip_special_tokens=True)
    return any(s in text for s in stop)


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
              replaces: CacheEntry | None = None, hashes: Sequence[int] = ()) -> None:
        """Keep a conversation; ``replaces``: the entry it continued (dropped, the new one holds more);
        ``hashes``: ``block_hashes`` of a prefix of ``ids`` (its prompt's), continued from."""
        if replaces is not None and replaces.prompt_length <= _common_prefix(replaces.ids, ids):
            self._drop(replaces.key)
        if not ids or len(ids) > self.max_tokens:
            return
        key = self._next
        self._next += 1
        entry = CacheEntry(ids, keys, values, prompt_length, self.calls, block_hashes(ids, hashes), key)
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


def _compact(keys: list[Any], values: list[Any], mask: Any) -> tuple[list[Any], list[Any], Any]:
    """Each row's real columns right-aligned, columns every row masks dropped (positions are explicit,
    so moving a column changes nothing): the memory of a batch stays that of its longest row."""
    import torch

    length = int(mask.sum(1).max())
    columns = torch.sort(mask, dim=1, stable=True).indices[:, mask.shape[1] - length:]
    heads, dim = keys[0].shape[1], keys[0].shape[3]
    gather = columns[:, None, :, None].expand(-1, heads, -1, dim)
    return [k.gather(2, gather) for k in keys], [v.gather(2, gather) for v in values], mask.gather(1, columns)


def _merge(keys_a: list[Any], values_a: list[Any], mask_a: Any, position_a: Any, tokens_a: Any,
           keys_b: list[Any], values_b: list[Any], mask_b: Any, position_b: Any, tokens_b: Any):
    """Two batches' caches as one (the narrower left-padded with masked columns): cache, mask, positions, tokens."""
    import torch

    width = max(mask_a.shape[1], mask_b.shape[1])

    def pad(tensor: Any, dim: int) -> Any:
        missing = width - tensor.shape[dim]
        if not missing:
            return tensor
        shape = list(tensor.shape)
        shape[dim] = missing
        return torch.cat([tensor.new_zeros(shape), tensor], dim=dim)

    keys = [torch.cat([pad(a, 2), pad(b, 2)]) for a, b in zip(keys_a, keys_b)]
    values = [torch.cat([pad(a, 2), pad(b, 2)]) for a, b in zip(values_a, values_b)]
    return (keys, values, torch.cat([pad(mask_a, 1), pad(mask_b, 1)]), torch.cat([position_a, position_b]),
            torch.cat([tokens_a, tokens_b]))


def _stop_enders(tokenizer: Any, stop: Sequence[str]):
    """A test for "can appending this token complete a stop string?", memoised per token id.

    A stop string can only newly appear in the decoded reply when the appended token's own text holds
    its last character, or when the token is one whose text alone is not its text in context (a byte
    piece of a longer character, an empty piece); only then is the reply's tail decoded and searched.
    """
    last = {s[-1] for s in stop if s}
    known: dict[int, bool] = {}
    if any(c.isspace() and c != "\n" for c in last):
        return lambda token: True  # a space can come from the next token's word-start marker: always look

    def may_end(token: int) -> bool:
        verdict = known.get(token)
        if verdict is None:
            piece = tokenizer.decode([token], skip_special_tokens=True)
            verdict = known[token] = not piece.strip() or "\ufffd" in piece or any(c in piece for c in last)
        return verdict

    return may_end


def _length_groups(lengths: Sequence[int], *, waste: float = 0.25, least: int = 16) -> list[list[int]]:
    """Positions of ``lengths`` in groups prefilled together: longest first, a new group once padding a
    row to its group's longest would waste more than ``waste`` of it and at least ``least`` tokens (a
    pass of a few short rows costs more than their padding)."""
    groups: list[list[int]] = []
    for k in sorted(range(len(lengths)), key=lambda k: -lengths[k]):
        if groups and not (lengths[k] < (1 - waste) * lengths[groups[-1][0]]
                           and lengths[groups[-1][0]] - lengths[k] >= least):
            groups[-1].append(k)
        else:
            groups.append([k])
    return groups


def greedy_generate(model: Any, tokenizer: Any, sequences: list[list[int]], stop: list[str], max_new_tokens: int, *,
                    slots: int, pad_token_id: int, eos_token_id: int | None, store: PrefixCache | None,
                    hashes: list[list[int]] | None = None, order: Sequence[int] | None = None,
                    refill_fraction: float = 0.0, combine_tokens: int = 256) -> tuple[list[str], GreedyStats]:
    """Greedy continuations of ``sequences`` with continuous batching over at most ``slots`` rows.

    Prompts wait in ``order`` (default: input order). When a row stops (its stop string, EOS or
    ``max_new_tokens``), it leaves the batch (with ``store``, its conversation is kept) and the next
    waiting prompts take the free slots in the same forward pass that decodes the other rows: they are
    looked up in ``store`` when they enter, so a prompt sharing a prefix with a row that finished before
    reuses its keys and values. A call over N prompts runs about (tokens generated) / ``slots`` decoding
    passes instead of the sum over static sub-batches of their longest reply.

    Layout: the cache holds, per row, its real columns right-aligned after padding (``[pad, real]``);
    a pass that admits rows appends ``W`` columns (``W`` the longest new suffix): the running rows feed
    ``W - 1`` masked pads and their last token, the new rows their suffix after their cached prefix.
    Positions are explicit, so padding never shifts a row. Rows are refilled once at least
    ``refill_fraction`` of the slots are free (0: as soon as one is); finished rows that cannot be
    replaced are frozen (fed masked pads) until they are a quarter of the batch, then dropped.
    """
    import torch

    device = model.device
    count = len(sequences)
    waiting = list(range(count) if order is None else order)
    keyword = _cache_keyword(model)
    stop = [s for s in stop if s]
    window = stop_window(stop)
    generated: list[list[int]] = [[] for _ in range(count)]
    done = [False] * count
    reused: list[tuple[CacheEntry | None, int]] = [(None, 0)] * count
    stats = GreedyStats()
    threshold = max(1, int(slots * refill_fraction + 0.999999))
    if max_new_tokens < 1 or not count:
        return [""] * count, stats

    may_end_stop = _stop_enders(tokenizer, stop)
    sdpa = getattr(getattr(model, "config", None), "_attn_implementation", None) == "sdpa"
    live: list[int] = []  # batch row -> input row
    cache = mask = position = tokens = None

    def layers() -> tuple[list[Any], list[Any]]:
        return _layer_tensors(cache) if cache is not None else ([], [])

    def keep(batch_rows: list[int], layer_keys: list[Any], layer_values: list[Any]) -> None:
        """Store finished rows' conversations: their real columns (prompt + reply tokens that were fed)."""
        if store is None:
            return
        for b in batch_rows:
            row = live[b]
            index = mask[b].nonzero().squeeze(1)
            fed = int(index.numel()) - len(sequences[row])
            entry, n = reused[row]
            store.store(sequences[row] + generated[row][:fed], [k[b].index_select(1, index) for k in layer_keys],
                        [v[b].index_select(1, index) for v in layer_values], len(sequences[row]),
                        replaces=entry if n else None, hashes=hashes[row] if hashes else ())

    def record(batch_rows: Sequence[int]) -> None:
        """Append each batch row's new token (``tokens``) to its reply; mark rows that stop."""
        values = tokens.tolist()
        for b in batch_rows:
            row = live[b]
            if done[row]:
                continue
            token = values[b]
            generated[row].append(token)
            if (eos_token_id is not None and token == eos_token_id) or len(generated[row]) >= max_new_tokens:
                done[row] = True
            elif stop and may_end_stop(token):
                done[row] = tail_has_stop(tokenizer, generated[row][-window:], stop)

    def prefill(admit, counts, suffixes, layer_keys, layer_values, mask, position, tokens, run=True):
        """The cache, mask, inputs and positions of a pass admitting ``admit``: the running rows (``mask``
        not None) right-aligned, each feeding its last token after masked pads, the new rows their
        suffix after their cached prefix. ``run``: do the pass (new rows only) and return
        ``(keys, values, mask, last positions, first tokens)`` instead."""
        running = 0 if mask is None else mask.shape[0]
        if running:
            layer_keys, layer_values, old_mask = _compact(layer_keys, layer_values, mask)
        length = old_mask.shape[1] if running else 0
        width_cached = max([length] + counts)
        width_new = max(len(s) for s in suffixes)
        rows = running + len(admit)
        template = next((entry for entry, n in (reused[row] for row in admit) if n), None)
        keys = values = None
        if running or template is not None:
            keys, values = [], []
            for layer in range(len(layer_keys) if running else len(template.keys)):
                r = layer_keys[layer] if running else template.keys[layer][None]
                heads, dim = r.shape[1], r.shape[3]
                k = torch.zeros(rows, heads, width_cached, dim, dtype=r.dtype, device=r.device)
                v = torch.zeros_like(k)
                if running:
                    k[:running, :, width_cached - length:] = layer_keys[layer]
                    v[:running, :, width_cached - length:] = layer_values[layer]
                for b, row in enumerate(admit, start=running):
                    entry, n = reused[row]
                    if n:
                        k[b, :, width_cached - n:] = entry.keys[layer][:, :n]
                        v[b, :, width_cached - n:] = entry.values[layer][:, :n]
                keys.append(k)
                values.append(v)
        new_cache = _new_cache(keys, values, reserve=width_new + max_new_tokens)
        new_mask = torch.zeros(rows, width_cached + width_new, dtype=torch.long, device=device)
        input_ids = torch.full((rows, width_new), pad_token_id, dtype=torch.long, device=device)
        positions = torch.zeros(rows, width_new, dtype=torch.long, device=device)
        if running:
            new_mask[:running, width_cached - length:width_cached] = old_mask
            new_mask[:running, -1] = 1
            input_ids[:running, -1] = tokens
            positions[:running, -1] = position[:, 0] + 1
        for b, (n, suffix) in enumerate(zip(counts, suffixes), start=running):
            new_mask[b, width_cached - n:width_cached] = 1
            new_mask[b, width_cached + width_new - len(suffix):] = 1
            input_ids[b, width_new - len(suffix):] = torch.tensor(suffix, dtype=torch.long)
            positions[b, width_new - len(suffix):] = torch.arange(n, n + len(suffix))
        if not run:
            return new_cache, new_mask, input_ids, positions
        output = model(input_ids=input_ids, attention_mask=new_mask, position_ids=positions, use_cache=True,
                       logits_to_keep=1, **{keyword: new_cache})
        new_keys, new_values = _layer_tensors(new_cache)
        return new_keys, new_values, new_mask, positions[:, -1:], output.logits[:, -1, :].argmax(-1)

    with torch.inference_mode():
        while True:
            finished = [b for b, row in enumerate(live) if done[row]]
            free = slots - len(live) + len(finished)
            admit: list[int] = []
            if waiting and free and (free >= threshold or len(finished) == len(live)):
                admit, waiting = waiting[:free], waiting[free:]
            if not admit and live and len(finished) == len(live):
                break
            drop = bool(finished) and (bool(admit) or len(finished) * 4 >= len(live))
            if drop or admit:  # the decoding pass alone needs no layer tensors
                layer_keys, layer_values = layers()
            if drop:
                keep(finished, layer_keys, layer_values)
                stay = torch.tensor([b for b in range(len(live)) if not done[live[b]]], dtype=torch.long, device=device)
                live = [row for row in live if not done[row]]
                mask, position, tokens = mask[stay], position[stay], tokens[stay]
                layer_keys = [k.index_select(0, stay) for k in layer_keys]
                layer_values = [v.index_select(0, stay) for v in layer_values]
                if not admit:
                    cache = _new_cache(layer_keys, layer_values, reserve=max_new_tokens)
            if admit:
                for row in admit:
                    reused[row] = store.lookup(sequences[row], hashes[row] if hashes else None) if store else (None, 0)
                counts = [reused[row][1] for row in admit]
                suffixes = [sequences[row][n:] for row, n in zip(admit, counts)]
                stats.prefilled += sum(len(s) for s in suffixes)
                stats.reused += sum(counts)
                width_new = max(len(s) for s in suffixes)
                groups = _length_groups([len(s) for s in suffixes])
                if (live and len(live) * (width_new - 1) > combine_tokens) or len(groups) > 1:
                    # Long new turns: prefilled in passes of their own rows, each of similar lengths (little
                    # padding), then merged with the running rows (which are not padded at all).
                    if live:
                        layer_keys, layer_values, mask = _compact(layer_keys, layer_values, mask)
                    for group in groups:
                        rows = [admit[i] for i in group]
                        new = prefill(rows, [counts[i] for i in group], [suffixes[i] for i in group],
                                      [], [], None, None, None)
                        if live:
                            layer_keys, layer_values, mask, position, tokens = _merge(
                                layer_keys, layer_values, mask, position, tokens, *new)
                        else:
                            layer_keys, layer_values, mask, position, tokens = new
                        live = live + rows
                        record(range(len(live) - len(rows), len(live)))
                    cache = _new_cache(layer_keys, layer_values, reserve=max_new_tokens)
                    continue
                cache, mask, input_ids, positions = prefill(admit, counts, suffixes, layer_keys, layer_values, mask,
                                                            position, tokens, run=False)
                live = live + admit
                position = positions[:, -1:]
            else:
                feed = tokens.clone()
                column = torch.ones(len(live), 1, dtype=mask.dtype, device=device)
                for b, row in enumerate(live):
                    if done[row]:
                        feed[b] = pad_token_id
                        column[b] = 0
                input_ids, mask, position = feed[:, None], torch.cat([mask, column], dim=1), position + 1
                positions = position
            # A decoding pass's mask for SDPA, given in the 4D boolean form the model would build from it
            # (each row attends to its own real columns), spares the model building it on every pass.
            attention = mask[:, None, None, :].bool() if sdpa and input_ids.shape[1] == 1 else mask
            output = model(input_ids=input_ids, attention_mask=attention, position_ids=positions, use_cache=True,
                           logits_to_keep=1, **{keyword: cache})
            tokens = output.logits[:, -1, :].argmax(-1)
            record(range(len(live)))
        layer_keys, layer_values = layers()
        keep(list(range(len(live))), layer_keys, layer_values)
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
