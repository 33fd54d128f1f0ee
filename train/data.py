"""Training examples for fine-tuning: load conversations, tokenise with loss masks, pack or pad.

Each conversation (FORMAT.md §3) is rendered by ``lumos.prompts.render_chat``, which also returns
the character spans the loss covers (assistant answers with their EOS, headers excluded). The
fast tokenizer's offset mapping turns those spans into labels in one pass over the tokens.
"""

from __future__ import annotations

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


def load_conversations(train_file: str) -> "datasets.Dataset":
    """A local JSONL file, or a Hugging Face dataset name (e.g. ``ai2lumos/lumos_maths_plan_iterative``)."""
    import datasets

    path = Path(train_file)
    if path.suffix in {".json", ".jsonl"} or path.exists():
        if not path.is_file():
            raise TrainingDataError(f"train file {train_file} does not exist; make it with "
                                    f"`python -m data.process_for_train` or pass a hub dataset name")
        dataset = datasets.load_dataset("json", data_files=str(path), split="train")
    else:
        dataset = datasets.load_dataset(train_file, split="train")
    if "messages" not in dataset.column_names:
        raise TrainingDataError(f"{train_file}: records need a 'messages' list (FORMAT.md §3), "
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


def encode_conversation(messages: Sequence[dict[str, str]], tokenizer: "PreTrainedTokenizerBase",
                        max_seq_length: int) -> dict[str, list[int]]:
    """``input_ids`` (BOS first, truncated to ``max_seq_length``) and assistant-only ``labels``."""
    if not getattr(tokenizer, "is_fast", False):
        raise TrainingDataError("label masks come from offset mappings, which only fast tokenizers give")
    text, spans = render_chat(messages, tokenizer.eos_token)
    encoding = tokenizer(text, return_offsets_mapping=True, add_special_tokens=True,
                         truncation=True, max_length=max_seq_length)
    input_ids = encoding["input_ids"]
    return {"input_ids": input_ids, "labels": labels_from_offsets(input_ids, encoding["offset_mapping"], spans)}


def tokenize_dataset(dataset: "datasets.Dataset", tokenizer: "PreTrainedTokenizerBase",
                     max_seq_length: int, num_workers: int | None = None) -> "datasets.Dataset":
    """Tokenise every conversation; drop (and count) those truncated down to no label at all."""
    tokenized = dataset.map(
        lambda record: encode_conversation(record["messages"], tokenizer, max_seq_length),
        remove_columns=dataset.column_names, num_proc=num_workers, desc="tokenising")
    tokenized = tokenized.filter(lambda record: any(label != IGNORE_INDEX for label in record["labels"]),
                                 num_proc=num_workers, desc="dropping examples without labels")
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
