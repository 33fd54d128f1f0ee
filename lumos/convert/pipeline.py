"""The annotation-conversion job: read a benchmark file, convert, verify, append, resume.

Output follows the original layout: ``data/train/<domain>/converted/<name>_converted.json``
(JSONL despite the suffix), or ``<name>_converted_<st>_<ed>.json`` for a shard, with failures
beside it in ``<name>_converted[_<st>_<ed>].failed.jsonl``, each with its reason. Both files are
append-only and keyed by the source position, so a killed run started again converts only
what is missing, and a finished run costs nothing to repeat.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from lumos.format import Plan
from lumos.jsonl import BadRecord, JsonlStore, SourceRecord, read_records, write_run_info

DOMAINS = ("maths", "complex_qa", "web_agent")
BACKENDS = ("rules", "openai")
KEEP = ("verified", "all")


@dataclass
class ConversionConfig:
    domain: str
    data_fn: str
    convert_all: bool = False
    st_idx: int = 0
    ed_idx: int = 0
    backend: str = "rules"
    verify: bool = False
    keep: str = "all"
    output_dir: str | None = None
    limit: int | None = None
    retry_failed: bool = False
    # LLM backend settings (used when backend == "openai")
    model: str = "gpt-4"
    base_url: str | None = None
    concurrency: int = 8
    progress: bool = True

    def __post_init__(self) -> None:
        if self.domain not in DOMAINS:
            raise ValueError(f"--domain must be one of {', '.join(DOMAINS)}, got {self.domain!r}")
        if self.backend not in BACKENDS:
            raise ValueError(f"--backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if self.keep not in KEEP:
            raise ValueError(f"--keep must be one of {', '.join(KEEP)}, got {self.keep!r}")
        if self.keep == "verified" and not self.verify:
            raise ValueError("--keep verified needs --verify (nothing is verified otherwise)")
        if not self.convert_all and self.ed_idx <= self.st_idx:
            raise ValueError("give --convert_all, or a shard with --st_idx < --ed_idx")
        if not Path(self.data_fn).is_file():
            raise ValueError(f"--data_fn {self.data_fn!r} is not a file")
        if self.limit is not None and self.limit < 1:
            raise ValueError("--limit must be at least 1")

    @property
    def source_name(self) -> str:
        """The file name up to its first dot, as the original pipeline named outputs."""
        return Path(self.data_fn).name.split(".", 1)[0]

    @property
    def output_path(self) -> Path:
        directory = Path(self.output_dir or os.path.join("data", "train", self.domain, "converted"))
        suffix = "" if self.convert_all else f"_{self.st_idx}_{self.ed_idx}"
        return directory / f"{self.source_name}_converted{suffix}.json"

    @property
    def failed_path(self) -> Path:
        return self.output_path.with_name(self.output_path.name[: -len(".json")] + ".failed.jsonl")


@dataclass
class Converted:
    """One source record turned into a converted annotation (FORMAT.md §1)."""

    task: str
    natural_language_plan: str
    plan: Plan
    answer: str | None = None


class RecordFailure(Exception):
    """A source record that could not be converted; ``reason`` is a short category."""

    def __init__(self, reason: str, detail: str = ""):
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


@dataclass
class Summary:
    total: int = 0
    skipped_done: int = 0
    written: int = 0
    verified: int = 0
    failures: Counter = field(default_factory=Counter)
    rejected: Counter = field(default_factory=Counter)  # converted but failed verification
    seconds: float = 0.0

    @property
    def conversion_failures(self) -> int:
        return sum(self.failures.values())

    def lines(self) -> list[str]:
        processed = self.total - self.skipped_done
        rate = processed / self.seconds if self.seconds else 0.0
        out = [f"records: {self.total} (already done before this run: {self.skipped_done}); "
               f"processed {processed} in {self.seconds:.1f}s ({rate:.0f}/s)",
               f"written to output: {self.written}"]
        if self.verified or self.rejected:
            checked = self.verified + sum(self.rejected.values())
            share = self.verified / checked if checked else 0.0
            out.append(f"verified by execution: {self.verified}/{checked} converted ({share:.1%})")
            if processed:
                out.append(f"converted and verified: {self.verified}/{processed} records ({self.verified / processed:.1%})")
            out += [f"  rejected, {reason}: {count}" for reason, count in self.rejected.most_common()]
        out += [f"  failed, {reason}: {count}" for reason, count in self.failures.most_common()]
        return out


# A converter turns one source record's data into a Converted, or raises RecordFailure.
RecordConverter = Callable[[dict], Converted]
# A verifier returns None when the annotation passes, else (reason, detail).
Verifier = Callable[[Converted], "tuple[str, str] | None"]


def _selected(config: ConversionConfig) -> Iterator[tuple[int, SourceRecord | BadRecord]]:
    for index, item in enumerate(read_records(config.data_fn)):
        if not config.convert_all and not (config.st_idx <= index < config.ed_idx):
            continue
        yield index, item


def record_id(config: ConversionConfig, item: SourceRecord | BadRecord) -> str:
    return f"{config.source_name}:{item.line_no}"


def run_conversion(config: ConversionConfig, convert: RecordConverter, verify: Verifier | None = None) -> Summary:
    """Convert every selected record not already done; append results and failures."""
    from tqdm import tqdm

    summary = Summary()
    started = time.perf_counter()
    if config.retry_failed and config.failed_path.exists():
        config.failed_path.unlink()
    write_run_info(config.output_path.with_name(config.output_path.stem + ".run.json"), asdict(config))
    with JsonlStore(config.output_path) as output, JsonlStore(config.failed_path) as failed:
        items = list(_selected(config))
        todo = 0
        for _, item in tqdm(items, disable=not config.progress, desc=f"converting {config.source_name}",
                            unit="rec"):
            summary.total += 1
            rid = record_id(config, item)
            if rid in output or rid in failed:
                summary.skipped_done += 1
                continue
            if config.limit is not None and todo >= config.limit:
                summary.skipped_done += 1
                continue
            todo += 1
            if isinstance(item, BadRecord):
                summary.failures["bad_input"] += 1
                failed.append({"id": rid, "reason": "bad_input", "detail": str(item)})
                continue
            try:
                converted = convert(item.data)
            except RecordFailure as failure:
                summary.failures[failure.reason] += 1
                failed.append({"id": rid, "reason": failure.reason, "detail": failure.detail,
                               "source": item.data})
                continue
            record = {"id": rid, "task": converted.task, "natural_language_plan": converted.natural_language_plan,
                      "subgoal_plan": converted.plan.render()}
            if converted.answer is not None:
                record["ans"] = converted.answer
            verdict = verify(converted) if verify else None
            if verify:
                if verdict is None:
                    summary.verified += 1
                else:
                    summary.rejected[verdict[0]] += 1
                    failed.append({**record, "reason": verdict[0], "detail": verdict[1]})
            if verdict is None or config.keep == "all":
                output.append(record)
                summary.written += 1
    summary.seconds = time.perf_counter() - started
    return summary
