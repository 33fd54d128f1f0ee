"""Training examples for fine-tuning: load conversations, tokenise with loss masks, pack or pad.

Each conversation (docs/FORMAT.md §3) is rendered by ``lumos.prompts.render_chat``, which also returns
the character spans of the assistant answers with their EOS (headers excluded). As open-instruct's
``encode_with_messages_format`` does with a current tokenizer, the loss also covers the newline
after each EOS (LLaMA tokenises it as ``▁`` + ``<0x0A>``): it masks each user turn from the token
count of the text before it, and that text ends with the newline. The fast tokenizer's offset
mapping turns the spans into labels in one pass over the tokens; ``prefix_masks=True`` (or a
tokenizer without offsets) counts tokens of text prefixes instead, open-instruct's own procedure.

``strip_after_eos=True`` reproduces how the released checkpoints were most likely trained: the
original ran open-instruct with a 2023 transformers whose slow LLaMA tokenizer, once ``</s>`` is
re-registered as a plain string, strips the whitespace around it; the ids then read
``</s>`` ``▁<`` ``|user|>`` (no newline) and the loss covers each answer and its EOS only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from lumos.prompts import render_chat

if TYPE_CHECKING:
    import datasets
    from transformers import PreTrainedTokenizerBase

IGNORE_INDEX = -100


class TrainingDataError(ValueError):
    """A training file or record that cannot be used, with where and why."""


def load_conversations(train_file: str | None, dataset_name: str | None = None,
                       dataset_config_name: str | None = None) -> "datasets.Dataset":
    """A local JSONL file or a Hugging Face dataset name (e.g. ``ai2lumos/lumos_maths_plan_iterative``)
    as ``train_file``; or, as the original's ``--dataset_name``, anything ``datasets.load_dataset`` takes
    (a hub name or a local folder of JSON/JSONL files), with ``dataset_config_name``."""
    import datasets

    if dataset_name is not None:
        dataset = datasets.load_dataset(dataset_name, dataset_config_name, split="train")
        source = dataset_name
    else:
        path = Path(train_file)
        if path.suffix in {".json", ".jsonl"} or path.exists():
            if not path.is_file():
                raise TrainingDataError(f"train file {train_file} does not exist; make it with "
                                        f"`python -m data.process_for_train` or pass a hub dataset name")
            dataset = datasets.load_dataset("json", data_files=str(path), split="train")
        else:
            dataset = datasets.load_dataset(train_file, split="train")
        source = train_file
    if "messages" not in dataset.column_names:
        raise TrainingDataError(f"{source}: records need a 'messages' list (docs/FORMAT.md §2), "
                                f"found columns {dataset.column_names}")
    return dataset


def labels_from_offsets(input_ids: Sequence[int], offsets: Sequence[tuple[int, int]],
                        spans: Sequence[tuple[int, int]]) -> list[int]:
    """Labels equal to ``input_ids`` on tokens overlapping a loss span, ``IGNORE_INDEX`` elsewhere.

    One pass: tokens and spans are both in text order, so a single pointer walks the spans.
    Special tokens added by the tokenizer (BOS) have empty offsets and are never labelled.
    """
    labels = [IGNORE_INDEX] * len(input_ids)
    span_index = 0
    for position, (start, end) in enumerate(offsets):
        if end <= start:
            continue
        while span_index < len(spans) and spans[span_index][1] <= start:
            span_index += 1
        if span_index == len(spans):
            break
        span_start, span_end = spans[span_index]
        if start < span_end and end > span_start:
            labels[position] = input_ids[position]
    return labels


def loss_spans(text: str, answer_spans: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Each answer span (answer + EOS) extended over the newline that follows it, as the original trains."""
    return [(start, end + 1) if text[end:end + 1] == "\n" else (start, end) for start, end in answer_spans]


def labels_from_prefixes(input_ids: Sequence[int], text: str, spans: Sequence[tuple[int, int]],
                         tokenizer: "PreTrainedTokenizerBase", max_seq_length: int) -> list[int]:
    """Labels on the tokens from ``len(tokenize(text[:start]))`` to ``len(tokenize(text[:end]))`` of each span.

    open-instruct's procedure (BOS counted, each prefix truncated like the whole text); any
    tokenizer will do, offsets are not needed.
    """
    def count(end: int) -> int:
        if end >= len(text):
            return len(input_ids)
        return len(tokenizer(text[:end], add_special_tokens=True, truncation=True,
                             max_length=max_seq_length)["input_ids"])

    labels = [IGNORE_INDEX] * len(input_ids)
    for start, end in spans:
        first, last = count(start), count(end)
        labels[first:last] = input_ids[first:last]
    return labels


def strip_newlines_after(text: str, answer_spans: Sequence[tuple[int, int]]) -> tuple[str, list[tuple[int, int]]]:
    """``text`` without the newline that follows each answer's EOS, and the spans moved to match."""
    pieces, spans, cut, removed = [], [], 0, 0
    for start, end in answer_spans:
        spans.append((start - removed, end - removed))
        if text[end:end + 1] == "\n":
            pieces.append(text[cut:end])
            cut, removed = end + 1, removed + 1
    pieces.append(text[cut:])
    return "".join(pieces), spans


def encode_conversation(messages: Sequence[dict[str, str]], tokenizer: "PreTrainedTokenizerBase",
                        max_seq_length: int, prefix_masks: bool = False,
                        strip_after_eos: bool = False) -> dict[str, list[int]]:
    """``input_ids`` (BOS first, truncated to ``max_seq_length``) and assistant-only ``labels``.

    Labels cover each answer, its EOS and the newline after the EOS (see the module docstring);
    from offsets by default, from prefix token counts with ``prefix_masks`` or a tokenizer
    that gives no offsets. ``strip_after_eos``: no newline after an EOS, answers and EOS labelled.
    """
    text, answer_spans = render_chat(messages, tokenizer.eos_token)
    if strip_after_eos:
        text, answer_spans = strip_newlines_after(text, answer_spans)
    spans = loss_spans(text, answer_spans)
    if prefix_masks or not getattr(tokenizer, "is_fast", False):
        input_ids = tokenizer(text, add_special_tokens=True, truncation=True, max_length=max_seq_length)["input_ids"]
        return {"input_ids": input_ids,
                "labels": labels_from_prefixes(input_ids, text, spans, tokenizer, max_seq_length)}
    encoding = tokenizer(text, return_offsets_mapping=True, add_special_tokens=True,
                         truncation=True, max_length=max_seq_length)
    input_ids = encoding["input_ids"]
    return {"input_ids": input_ids, "labels": labels_from_offsets(input_ids, encoding["offset_mapping"], spans)}


class SentencePieceChatTokenizer:
    """The slow LLaMA tokenizer as the original trained with it: SentencePiece over ``tokenizer.model``,
    with transformers' 2023 handling of special tokens that open-instruct had re-registered as plain
    strings (``<s>``, ``</s>``, ``<unk>``, ``<pad>``): the text is split at them and the whitespace on
    both sides of each is dropped; every other piece is encoded on its own (SentencePiece adds its
    ``▁`` prefix to each). BOS first with ``add_special_tokens``; truncation keeps the first
    ``max_length`` ids. Gives no offsets, so labels come from prefix token counts.
    """

    is_fast = False

    def __init__(self, model_file: str | Path, special_tokens: dict[str, int], eos_token: str, bos_token_id: int):
        self.model_proto = Path(model_file).read_bytes()
        self.special_tokens = dict(special_tokens)
        self.eos_token = eos_token
        self.bos_token_id = bos_token_id
        self._processor = None
        # the split at the special tokens, longest first; captured, so re.split keeps them (at odd indices)
        self._special_split = re.compile(
            "(" + "|".join(re.escape(token) for token in sorted(self.special_tokens, key=len, reverse=True)) + ")"
        ) if self.special_tokens else None

    @classmethod
    def beside(cls, tokenizer: "PreTrainedTokenizerBase", name_or_path: str) -> "SentencePieceChatTokenizer | None":
        """From the ``tokenizer.model`` of a local folder or a cached hub repo; None when there is none."""
        folder = Path(name_or_path)
        model_file = folder / "tokenizer.model" if folder.is_dir() else None
        if model_file is None or not model_file.is_file():
            try:
                from transformers.utils import cached_file

                found = cached_file(name_or_path, "tokenizer.model", _raise_exceptions_for_missing_entries=False)
            except OSError:
                found = None
            if found is None:
                return None
            model_file = Path(found)
        specials = {token: tokenizer.convert_tokens_to_ids(token) for token in tokenizer.all_special_tokens}
        return cls(model_file, specials, tokenizer.eos_token, tokenizer.bos_token_id)

    def __getstate__(self) -> dict[str, Any]:  # the processor is rebuilt from the proto in each worker
        return {**self.__dict__, "_processor": None}

    @property
    def processor(self):
        if self._processor is None:
            import sentencepiece

            self._processor = sentencepiece.SentencePieceProcessor(model_proto=self.model_proto)
        return self._processor

    def __call__(self, text: str, add_special_tokens: bool = True, truncation: bool = False,
                 max_length: int | None = None, **_: Any) -> dict[str, list[int]]:
        ids = [self.bos_token_id] if add_special_tokens else []
        pieces = self._special_split.split(text) if self._special_split is not None else [text]
        for index, piece in enumerate(pieces):
            if index % 2:  # a special token (re.split puts the captured separators at odd indices)
                ids.append(self.special_tokens[piece])
                continue
            if index > 0:
                piece = piece.lstrip()
            if index + 1 < len(pieces):
                piece = piece.rstrip()
            if piece:
                ids.extend(self.processor.encode(piece))
        if truncation and max_length is not None:
            ids = ids[:max_length]
        return {"input_ids": ids}


def tokenize_dataset(dataset: "datasets.Dataset", tokenizer: "PreTrainedTokenizerBase",
                     max_seq_length: int, num_workers: int | None = None, *, prefix_masks: bool = False,
                     strip_after_eos: bool = False, overwrite_cache: bool = False) -> "datasets.Dataset":
    """Tokenise every conversation; drop (and count) those truncated down to no label at all.

    ``overwrite_cache`` recomputes instead of reusing the ``datasets`` cache of an earlier run.
    """
    tokenized = dataset.map(
        lambda record: encode_conversation(record["messages"], tokenizer, max_seq_length, prefix_masks,
                                           strip_after_eos),
        remove_columns=dataset.column_names, num_proc=num_workers, desc="tokenising",
        load_from_cache_file=not overwrite_cache)
    tokenized = tokenized.filter(lambda record: any(label != IGNORE_INDEX for label in record["labels"]),
                                 num_proc=num_workers, desc="dropping examples without labels",
                                 load_from_cache_file=not overwrite_cache)
    if len(tokenized) == 0:
        raise TrainingDataError(f"no example keeps an assistant token within max_seq_length={max_seq_length}")
    return tokenized


# --------------------------------------------------------------------------- packing


def pack_by_length(lengths: Sequence[int], max_seq_length: int) -> list[list[int]]:
    """Group example indices, in order, into rows of at most ``max_seq_length`` tokens."""
    rows: list[list[int]] = []
    current: list[int] = []
    used = 0
    for index, length in enumerate(lengths):
        if current and used + length > max_seq_length:
            rows.append(current)
            current, used = [], 0
        current.append(index)
        used += length
    if current:
        rows.append(current)
    return rows


class PackedRows:
    """A map-style dataset whose items are packed rows: lists of tokenised examples."""

    def __init__(self, examples: "datasets.Dataset", max_seq_length: int):
        self.examples = examples
        self.rows = pack_by_length([len(ids) for ids in examples["input_ids"]], max_seq_length)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> list[dict[str, list[int]]]:
        return [self.examples[i] for i in self.rows[index]]


@dataclass
class PackedRowsCollator:
    """Collates packed rows; position ids restart at 0 for each example so none attends to another.

    With SDPA (default) every packed row stays a row of the batch, padded at its tail to the
    longest row: transformers turns the restarting position ids into a block-diagonal causal mask
    per row. With flash-attention 2 the whole batch is flattened into one ``[1, tokens]`` row and
    handed to its variable-length kernels. Both use transformers' ``DataCollatorWithFlattening``.
    The count of real (non-padding) tokens travels as ``num_tokens`` (see :func:`pop_token_count`).
    """

    pad_token_id: int
    flatten_batch: bool = False

    def __post_init__(self) -> None:
        from transformers import DataCollatorWithFlattening

        self._flatten = DataCollatorWithFlattening(return_position_ids=True, separator_id=IGNORE_INDEX,
                                                   return_flash_attn_kwargs=self.flatten_batch)

    def __call__(self, rows: list[list[dict[str, list[int]]]]) -> dict[str, Any]:
        import torch

        if self.flatten_batch:
            batch = self._flatten([example for row in rows for example in row], return_tensors="pt")
            batch["num_tokens"] = torch.tensor(batch["input_ids"].numel())
            return batch
        flat = [self._flatten(row, return_tensors="pt") for row in rows]
        width = max(item["input_ids"].shape[1] for item in flat)
        batch = {"input_ids": torch.full((len(rows), width), self.pad_token_id, dtype=torch.long),
                 "labels": torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long),
                 # the padded tail counts from 0 too: a sequence of its own that nothing attends to
                 "position_ids": torch.arange(width).repeat(len(rows), 1)}
        for index, item in enumerate(flat):
            length = item["input_ids"].shape[1]
            for key in ("input_ids", "labels", "position_ids"):
                batch[key][index, :length] = item[key][0]
            batch["position_ids"][index, length:] = torch.arange(width - length)
        batch["num_tokens"] = torch.tensor(sum(item["input_ids"].shape[1] for item in flat))
        return batch


def padding_collator(tokenizer: "PreTrainedTokenizerBase"):
    """Pads each batch to its longest row (labels padded with ``IGNORE_INDEX``)."""
    from transformers import DataCollatorForSeq2Seq

    return DataCollatorForSeq2Seq(tokenizer=tokenizer, padding="longest", label_pad_token_id=IGNORE_INDEX)


def pop_token_count(batch: dict[str, Any]) -> int:
    """Non-padding tokens in a collated batch (removing the packed collator's ``num_tokens``)."""
    if "num_tokens" in batch:
        return int(batch.pop("num_tokens"))
    if "attention_mask" in batch:
        return int(batch["attention_mask"].sum())
    return int(batch["input_ids"].numel())
