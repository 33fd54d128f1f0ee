"""The annotation-conversion job: read a benchmark file, convert, verify, append, resume.

Output follows the original layout: ``data/train/<domain>/converted/<name>_converted.json``
(JSONL despite the suffix), or ``<name>_converted_<st>_<ed>.json`` for a shard, with failures
beside it in ``<name>_converted[_<st>_<ed>].failed.jsonl``, each with its reason. ``<name>``
is the source (``strategyqa``, ``musique``, ``mind2web``) except for maths, which keeps the
input file's name (``gsm8k_train``, ``asdiv``...). Both files are append-only and keyed by the
source position, so a killed run started again converts only what is missing, and a finished
run costs nothing to repeat.

Records flow through a :class:`Converter` (as a stream when it offers ``convert_stream``, else
in batches), which hands back each record as soon as it is done (an LLM converter answers out
of order). Finished records are appended in small groups (one write and flush each, in source
order within the group), once the oldest waiting record is ``FLUSH_INTERVAL_S`` old as the next
one finishes, and at the end: a killed run loses at most the group not yet written (their LLM
answers are cached).
"""

from __future__ import annotations

import os
import re
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

from lumos.convert.sources import SOURCE_DOMAINS, SourceTask, UnusableRecord, convert_record, detect_file_source
from lumos.domains import domain as lumos_domain, domain_names
from lumos.format import Plan
from lumos.jsonl import BadRecord, JsonlStore, SourceRecord, read_records, write_run_info

DOMAINS = domain_names(training=True)
BACKENDS = ("rules", "openai")
KEEP = ("verified", "all")
SOURCES = tuple(SOURCE_DOMAINS)
FLUSH_INTERVAL_S = 0.1  # how long a finished record may wait in memory for others to be written with
FLUSH_RECORDS = 512  # ... or this many of them


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
    strict: bool = False  # the CLI's exit status: 1 when any record could not be converted
    source: str | None = None  # detected from the file's fields when None
    # LLM backend settings (used when backend == "openai")
    model: str = "gpt-4"
    base_url: str | None = None
    concurrency: int = 8
    rpm: float | None = None
    max_tokens: int = 800
    request_timeout: float = 60.0
    max_attempts: int = 5
    parse_retries: int = 1
    batch_size: int | None = None
    cache_path: str | None = None  # default: llm_cache.sqlite beside the output
    use_cache: bool = True
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
        for name in ("concurrency", "max_tokens", "max_attempts"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} must be at least 1")
        if self.parse_retries < 0:
            raise ValueError("--parse_retries must be 0 or more")
        if self.rpm is not None and self.rpm <= 0:
            raise ValueError("--rpm must be positive")
        if self.source is None:
            self.source = detect_file_source(self.data_fn)  # SourceError is a ValueError
        elif self.source not in SOURCE_DOMAINS:
            raise ValueError(f"--source must be one of {', '.join(SOURCES)}, got {self.source!r}")
        if SOURCE_DOMAINS[self.source] != self.domain:
            raise ValueError(f"{self.data_fn} holds {self.source} records, which belong to domain "
                             f"{SOURCE_DOMAINS[self.source]!r}, not {self.domain!r}")

    @property
    def source_name(self) -> str:
        """Maths: the input file name up to its first dot (as the original named outputs); else the source."""
        if lumos_domain(self.domain).outputs_named_by_file:
            return Path(self.data_fn).name.split(".", 1)[0]
        return str(self.source)

    @property
    def output_path(self) -> Path:
        directory = Path(self.output_dir or os.path.join("data", "train", self.domain, "converted"))
        suffix = "" if self.convert_all else f"_{self.st_idx}_{self.ed_idx}"
        return directory / f"{self.source_name}_converted{suffix}.json"

    @property
    def failed_path(self) -> Path:
        return self.output_path.with_name(self.output_path.name[: -len(".json")] + ".failed.jsonl")

    @property
    def llm_cache_path(self) -> Path | None:
        if not self.use_cache:
            return None
        return Path(self.cache_path) if self.cache_path else self.output_path.parent / "llm_cache.sqlite"


@dataclass
class Converted:
    """One source record turned into a converted annotation (docs/FORMAT.md §1)."""

    task: str
    natural_language_plan: str
    plan: Plan
    answer: str | None = None
    stripped_preamble: str | None = None  # text an LLM wrote before "Subgoal 1:", removed


class RecordFailure(Exception):
    """A source record that could not be converted; ``reason`` is a short category."""

    def __init__(self, reason: str, detail: str = "", reply: str | None = None):
        self.reason = reason
        self.detail = detail
        self.reply = reply  # the model's reply, when an LLM answered something unusable
        super().__init__(f"{reason}: {detail}" if detail else reason)


class Converter(Protocol):
    """Converts batches of tasks, yielding ``(index in batch, Converted | RecordFailure)`` as each is done."""

    batch_size: int

    def convert_batch(self, tasks: list[SourceTask]) -> Iterator[tuple[int, "Converted | RecordFailure"]]: ...

    def close(self) -> None: ...


class RulesConverter:
    """A per-record rule function as a :class:`Converter` (records come back in order)."""

    def __init__(self, convert: Callable[[SourceTask], Converted], batch_size: int = 256):
        self.convert = convert
        self.batch_size = batch_size
        self.usage = None

    def convert_batch(self, tasks: list[SourceTask]) -> Iterator[tuple[int, Converted | RecordFailure]]:
        for index, task in enumerate(tasks):
            try:
                yield index, self.convert(task)
            except RecordFailure as failure:
                yield index, failure

    def close(self) -> None:
        pass


# A verifier returns None when the annotation passes, else (reason, detail).
Verifier = Callable[[Converted, SourceTask], "tuple[str, str] | None"]

# Reader reasons (free text from lumos.convert.sources) grouped into categories for counting.
_UNUSABLE_CATEGORIES = (
    (re.compile(r"^missing field"), "missing_field"),
    (re.compile(r"^field '[^']*' is a "), "wrong_type"),
    (re.compile(r"^field '[^']*' is empty"), "empty_field"),
    (re.compile(r"no_evidence"), "no_evidence"),
    (re.compile(r"^evidence has"), "evidence_mismatch"),
    (re.compile(r"no supporting paragraph"), "no_supporting_paragraph"),
    (re.compile(r"cites paragraph"), "missing_paragraph"),
    (re.compile(r"no question"), "no_question"),
    (re.compile(r"####"), "no_final_answer"),
    (re.compile(r"no solution steps"), "no_steps"),
    (re.compile(r"action_reprs"), "empty_trace"),
)


def unusable_category(reason: str) -> str:
    for pattern, category in _UNUSABLE_CATEGORIES:
        if pattern.search(reason):
            return category
    return "unusable"


@dataclass
class Summary:
    total: int = 0
    skipped_done: int = 0
    deferred: int = 0  # left for a later run by --limit
    written: int = 0
    output_records: int = 0  # in the output file after the run (earlier runs' included)
    verified: int = 0
    preambles_stripped: int = 0
    failures: Counter = field(default_factory=Counter)  # could not be converted (exit status 1)
    unusable: Counter = field(default_factory=Counter)  # the reader says the record has nothing to convert
    rejected: Counter = field(default_factory=Counter)  # converted but failed verification
    usage: Any = None  # lumos.llm.Usage of an LLM backend
    seconds: float = 0.0

    @property
    def conversion_failures(self) -> int:
        return sum(self.failures.values())

    def lines(self) -> list[str]:
        processed = self.total - self.skipped_done - self.deferred
        rate = processed / self.seconds if self.seconds else 0.0
        out = [f"records: {self.total} (already done before this run: {self.skipped_done}); "
               f"processed {processed} in {self.seconds:.1f}s ({rate:.0f}/s)",
               f"written to output: {self.written}"]
        if self.deferred:
            out.append(f"left for a later run (--limit): {self.deferred}")
        if self.verified or self.rejected:
            checked = self.verified + sum(self.rejected.values())
            share = self.verified / checked if checked else 0.0
            out.append(f"verified: {self.verified}/{checked} ({share:.1%})")
            out += [f"  rejected, {reason}: {count}" for reason, count in self.rejected.most_common()]
        out += [f"  unusable, {reason}: {count}" for reason, count in self.unusable.most_common()]
        out += [f"  failed, {reason}: {count}" for reason, count in self.failures.most_common()]
        if self.preambles_stripped:
            out.append(f"replies with text before 'Subgoal 1:' (stripped): {self.preambles_stripped}")
        if self.usage is not None:
            out.append(f"llm: {self.usage.summary()}")
        return out


def _selected(config: ConversionConfig) -> Iterator[SourceRecord | BadRecord]:
    for index, item in enumerate(read_records(config.data_fn)):
        if not config.convert_all and not (config.st_idx <= index < config.ed_idx):
            continue
        yield item


def record_id(config: ConversionConfig, item: SourceRecord | BadRecord) -> str:
    return f"{config.source_name}:{item.line_no}"


def _source_position(record: dict[str, Any]) -> int:
    """The line (or element) number that ``record_id`` puts after the last colon."""
    return int(record["id"].rsplit(":", 1)[1])


class _Job:
    """One run's bookkeeping: where results go and what was counted."""

    def __init__(self, config: ConversionConfig, output: JsonlStore, failed: JsonlStore, verify: Verifier | None):
        self.config, self.output, self.failed, self.verify = config, output, failed, verify
        self.summary = Summary()

        self._pending_output: list[dict[str, Any]] = []
        self._pending_failed: list[dict[str, Any]] = []
        self._oldest_pending = 0.0  # time.monotonic() when the oldest unwritten record finished

    def fail(self, counter: Counter, record: dict[str, Any]) -> None:
        counter[record["reason"]] += 1
        self._pending_failed.append(record)
        self._maybe_flush()

    def keep(self, record: dict[str, Any]) -> None:
        self._pending_output.append(record)
        self.summary.written += 1
        self._maybe_flush()

    def is_done(self, rid: str) -> bool:
        return rid in self.output or rid in self.failed

    def _maybe_flush(self) -> None:
        pending = len(self._pending_output) + len(self._pending_failed)
        now = time.monotonic()
        if pending == 1:
            self._oldest_pending = now
        if pending >= FLUSH_RECORDS or now - self._oldest_pending >= FLUSH_INTERVAL_S:
            self.flush()

    def flush(self) -> None:
        """Writes what is pending, in source order: each file in one write, then flushed."""
        if self._pending_output:
            self.output.append_many(sorted(self._pending_output, key=_source_position))
            self._pending_output = []
        if self._pending_failed:
            self.failed.append_many(sorted(self._pending_failed, key=_source_position))
            self._pending_failed = []

    def finish(self, rid: str, task: SourceTask, result: Converted | RecordFailure) -> None:
        if isinstance(result, RecordFailure):
            record = {"id": rid, "reason": result.reason, "detail": result.detail, "source_id": task.id,
                      "task": task.task}
            if result.reply is not None:
                record["reply"] = result.reply
            return self.fail(self.summary.failures, record)
        record = {"id": rid, "task": result.task, "natural_language_plan": result.natural_language_plan,
                  "subgoal_plan": result.plan.render()}
        if result.answer is not None:
            record["ans"] = result.answer
        if result.stripped_preamble is not None:
            record["stripped_preamble"] = result.stripped_preamble
            self.summary.preambles_stripped += 1
        verdict = None
        if self.verify is not None:
            verdict = self.verify(result, task)
            if verdict is None:
                self.summary.verified += 1
            else:
                self.fail(self.summary.rejected, {**record, "reason": verdict[0], "detail": verdict[1]})
        if verdict is None or self.config.keep == "all":
            self.keep(record)


def _tasks_to_convert(config: ConversionConfig, job: _Job, bar: Any
                      ) -> Iterator[tuple[tuple[str, SourceTask], SourceTask]]:
    """``((record id, task), task)`` for each selected record not yet done; the rest counted and recorded."""
    summary = job.summary
    taken = 0
    for item in _selected(config):
        summary.total += 1
        rid = record_id(config, item)
        if job.is_done(rid):
            summary.skipped_done += 1
            continue
        if config.limit is not None and taken >= config.limit:
            summary.deferred += 1
            continue
        taken += 1
        if isinstance(item, BadRecord):
            job.fail(summary.failures, {"id": rid, "reason": "bad_input", "detail": str(item)})
            bar.update(1)
            continue
        task = convert_record(item, str(config.source))
        if isinstance(task, UnusableRecord):
            job.fail(summary.unusable, {"id": rid, "reason": unusable_category(task.reason),
                                        "detail": task.reason, "source_id": task.id})
            bar.update(1)
            continue
        yield (rid, task), task


def _in_batches(converter: Converter, tasks: Iterator[tuple[Any, SourceTask]]) -> Iterator[tuple[Any, Any]]:
    """``(key, result)`` through ``convert_batch``, ``batch_size`` tasks at a time."""
    batch: list[tuple[Any, SourceTask]] = []
    for item in tasks:
        batch.append(item)
        if len(batch) >= converter.batch_size:
            for index, result in converter.convert_batch([task for _, task in batch]):
                yield batch[index][0], result
            batch = []
    if batch:
        for index, result in converter.convert_batch([task for _, task in batch]):
            yield batch[index][0], result


def run_conversion(config: ConversionConfig, converter: Converter, verify: Verifier | None = None) -> Summary:
    """Convert every selected record not already done; append results and failures as they come."""
    from lumos.progress import progress_bar

    started = time.perf_counter()
    if config.retry_failed and config.failed_path.exists():
        config.failed_path.unlink()
    write_run_info(config.output_path.with_name(config.output_path.stem + ".run.json"), asdict(config))
    with JsonlStore(config.output_path) as output, JsonlStore(config.failed_path) as failed:
        job = _Job(config, output, failed, verify)
        bar = progress_bar(disable=not config.progress, desc=f"converting {config.source_name}", unit="rec")
        try:
            tasks = _tasks_to_convert(config, job, bar)
            if hasattr(converter, "convert_stream"):
                results = converter.convert_stream(tasks)
            else:
                results = _in_batches(converter, tasks)
            for (rid, task), result in results:
                job.finish(rid, task, result)
                bar.update(1)
        finally:
            job.flush()  # what finished is kept, even when the run stops on an error
            bar.close()
        summary = job.summary
        summary.output_records = len(output.done)
    summary.usage = getattr(converter, "usage", None)
    summary.seconds = time.perf_counter() - started
    return summary
