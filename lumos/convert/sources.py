"""Readers of the raw benchmark files that annotation generation starts from.

Each reader turns one raw record into a :class:`SourceTask`: the task text, the
natural-language plan that the converter (an LLM or the rules) rewrites into subgoals and
actions, and the gold answer when the benchmark has one. The plans follow what the
original Lumos pipeline fed its converter:

- GSM8K: the socratic step texts after ``" ** "`` joined by spaces; answer after ``####``
  with thousands commas removed.
- ASDiv: ``solution``; answer = first word of ``answer`` (``"9 (apples)"`` -> ``"9"``).
- PRM800K: ``question.problem`` / ``question.ground_truth_solution`` / ``ground_truth_answer``.
- StrategyQA: ``"We find relevant facts: <facts> We need to answer these questions: 1. <q>
  (Can be answered based on paragraph 'Title-3') ... Based on these evidences and decomposed
  questions, the answer is True."`` built from the first annotator whose evidence has no
  ``no_evidence`` step.
- MuSiQue: the same shape, the facts being the supporting paragraph of each hop.
- Mind2Web: ``confirmed_task``; plan = ``action_reprs`` joined by ``"; "``.

A record that cannot be used becomes an :class:`UnusableRecord` with its reason (the caller
counts and reports them), never a silent drop. Two deliberate differences from the original:
a MuSiQue hop whose supporting paragraph has index 0 is usable (the original's truthiness
test dropped it), and a StrategyQA step citing several paragraph lists keeps them together
instead of shifting the later steps' citations.

The source of a file is recognised from its records' fields, never from its file name;
``read_source(path, source=...)`` overrides the detection.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from lumos.jsonl import BadRecord, SourceRecord, read_records

SOURCE_DOMAINS = {
    "gsm8k": "maths",
    "asdiv": "maths",
    "prm800k": "maths",
    "strategyqa": "complex_qa",
    "musique": "complex_qa",
    "mind2web": "web_agent",
}
SOURCE_NAMES = tuple(SOURCE_DOMAINS)


@dataclass(frozen=True)
class SourceTask:
    """One usable benchmark record, ready for conversion."""

    id: str
    task: str
    natural_language_plan: str
    answer: str | None
    raw: dict[str, Any] = field(repr=False)
    source: str = ""

    @property
    def domain(self) -> str:
        return SOURCE_DOMAINS[self.source]


@dataclass(frozen=True)
class UnusableRecord:
    """A well-formed record that cannot be converted, and why (counted and reported by callers)."""

    id: str
    reason: str
    path: str = ""
    line_no: int = 0

    def __str__(self) -> str:
        where = f"{self.path}:{self.line_no}: " if self.path else ""
        return f"{where}record {self.id}: {self.reason}"


class SourceError(ValueError):
    """A whole input file that no reader fits (unknown source name, unrecognised schema)."""


class UnusableError(ValueError):
    """Why a record cannot be used; readers raise it, ``convert_record`` turns it into an UnusableRecord."""


# --------------------------------------------------------------------------- field access


def _field(record: dict[str, Any], *path: str, kind: type | tuple[type, ...] = str) -> Any:
    """``record[path[0]][path[1]]...`` checked for presence and type."""
    value: Any = record
    for depth, key in enumerate(path):
        if not isinstance(value, dict) or key not in value or value[key] is None:
            raise UnusableError(f"missing field {'.'.join(path[:depth + 1])!r}")
        value = value[key]
    if not isinstance(value, kind):
        raise UnusableError(f"field {'.'.join(path)!r} is a {type(value).__name__}")
    if isinstance(value, str) and not value.strip():
        raise UnusableError(f"field {'.'.join(path)!r} is empty")
    return value


def _record_id(record: dict[str, Any], key: str, source: str, line_no: int) -> str:
    value = record.get(key)
    return str(value) if value not in (None, "") else f"{source}-{line_no}"


# --------------------------------------------------------------------------- maths


def read_gsm8k(record: dict[str, Any], record_id: str) -> SourceTask:
    solution = _field(record, "answer")
    if "####" not in solution:
        raise UnusableError("field 'answer' has no '#### <answer>' line")
    steps_text, _, final = solution.partition("####")
    steps = []
    for line in steps_text.strip().split("\n"):
        # Socratic lines read "sub-question ** step"; plain GSM8K lines are the step itself.
        step = line.split(" ** ", 1)[1] if " ** " in line else line
        if step.strip():
            steps.append(step.strip())
    answer = final.strip().replace(",", "")
    if not steps or not answer:
        raise UnusableError("no solution steps or no final answer")
    return SourceTask(record_id, _field(record, "question").strip(), " ".join(steps), answer, record, "gsm8k")


def read_asdiv(record: dict[str, Any], record_id: str) -> SourceTask:
    answer = str(_field(record, "answer", kind=(str, int, float))).strip().split(" ")[0]
    return SourceTask(record_id, _field(record, "question").strip(), _field(record, "solution").strip(),
                      answer or None, record, "asdiv")


def read_prm800k(record: dict[str, Any], record_id: str) -> SourceTask:
    question = _field(record, "question", kind=dict)
    answer = question.get("ground_truth_answer", record.get("ground_truth_answer"))
    return SourceTask(record_id, _field(record, "question", "problem").strip(),
                      _field(record, "question", "ground_truth_solution").strip(),
                      None if answer is None else str(answer), record, "prm800k")


# --------------------------------------------------------------------------- complex QA


def strategyqa_evidence(record: dict[str, Any]) -> list[list[str]]:
    """Paragraph ids cited by each decomposition step, from the first annotator without a
    ``no_evidence`` step (an ``operation`` step cites nothing). Raises ``UnusableError``."""
    decomposition = _field(record, "decomposition", kind=list)
    annotators = _field(record, "evidence", kind=list)
    for annotation in annotators:
        if not isinstance(annotation, list) or any(
                not isinstance(step, list) or "no_evidence" in step for step in annotation):
            continue
        if len(annotation) != len(decomposition):
            raise UnusableError(f"evidence has {len(annotation)} steps, decomposition {len(decomposition)}")
        cited = []
        for step in annotation:
            ids: list[str] = []
            for item in step:
                if isinstance(item, list):
                    ids += [str(i) for i in item if str(i) not in ids]
            cited.append(ids)
        return cited
    raise UnusableError("every annotator's evidence has a 'no_evidence' step")


def read_strategyqa(record: dict[str, Any], record_id: str) -> SourceTask:
    question = _field(record, "question").strip()
    facts = _field(record, "facts", kind=list)
    decomposition = [str(q).strip() for q in _field(record, "decomposition", kind=list)]
    gold = _field(record, "answer", kind=bool)
    cited = strategyqa_evidence(record)
    parts = ["We find relevant facts:", *(str(f).strip() for f in facts), "We need to answer these questions:"]
    for number, (step, ids) in enumerate(zip(decomposition, cited), start=1):
        parts.append(f"{number}. {step}")
        if ids:
            parts.append("(Can be answered based on paragraph " + ", ".join(f"'{i}'" for i in ids) + ")")
    parts.append(f"Based on these evidences and decomposed questions, the answer is {gold}.")
    return SourceTask(record_id, question, " ".join(parts), "yes" if gold else "no", record, "strategyqa")


def musique_hops(record: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """``(hop, supporting paragraph)`` pairs of a MuSiQue record. Raises ``UnusableError``."""
    paragraphs = {p.get("idx"): p for p in _field(record, "paragraphs", kind=list) if isinstance(p, dict)}
    hops = _field(record, "question_decomposition", kind=list)
    if not hops:
        raise UnusableError("empty question_decomposition")
    pairs = []
    for number, hop in enumerate(hops, start=1):
        if not isinstance(hop, dict) or not str(hop.get("question") or "").strip():
            raise UnusableError(f"hop {number} has no question")
        support = hop.get("paragraph_support_idx")
        if support is None:
            raise UnusableError(f"hop {number} has no supporting paragraph")
        paragraph = paragraphs.get(support)
        if paragraph is None or not str(paragraph.get("paragraph_text") or "").strip():
            raise UnusableError(f"hop {number} cites paragraph {support!r}, which is absent or empty")
        pairs.append((hop, paragraph))
    return pairs


def read_musique(record: dict[str, Any], record_id: str) -> SourceTask:
    question = _field(record, "question").strip()
    answer = str(_field(record, "answer", kind=(str, int, float))).strip()
    hops = musique_hops(record)
    parts = ["We find relevant facts:"]
    parts += [" ".join(str(paragraph["paragraph_text"]).split()) for _, paragraph in hops]
    parts.append("We need to answer these questions:")
    for number, (hop, paragraph) in enumerate(hops, start=1):
        parts.append(f"{number}. {str(hop['question']).strip()} "
                     f"(Can be answered based on paragraph '{paragraph.get('title', '')}')")
    parts.append(f"Based on these evidences and decomposed questions, the answer is {answer}.")
    return SourceTask(record_id, question, " ".join(parts), answer, record, "musique")


# --------------------------------------------------------------------------- web agent


def read_mind2web(record: dict[str, Any], record_id: str) -> SourceTask:
    reprs = _field(record, "action_reprs", kind=list)
    if not reprs or not all(isinstance(r, str) and r.strip() for r in reprs):
        raise UnusableError("action_reprs is empty or holds a non-text step")
    return SourceTask(record_id, _field(record, "confirmed_task").strip(), "; ".join(reprs), None, record,
                      "mind2web")


# --------------------------------------------------------------------------- dispatch

_READERS: dict[str, tuple[Callable[[dict[str, Any], str], SourceTask], str]] = {
    "gsm8k": (read_gsm8k, ""),
    "asdiv": (read_asdiv, "id"),
    "prm800k": (read_prm800k, ""),
    "strategyqa": (read_strategyqa, "qid"),
    "musique": (read_musique, "id"),
    "mind2web": (read_mind2web, "annotation_id"),
}


def detect_source(record: dict[str, Any]) -> str | None:
    """The source whose schema a raw record has, or None (decided by fields, not file names)."""
    if "confirmed_task" in record and "action_reprs" in record:
        return "mind2web"
    if "question_decomposition" in record and "paragraphs" in record:
        return "musique"
    if "question" in record and ("decomposition" in record or "evidence" in record):
        return "strategyqa"
    question = record.get("question")
    if isinstance(question, dict) and "problem" in question:
        return "prm800k"
    if isinstance(question, str) and "solution" in record:
        return "asdiv"
    if isinstance(question, str) and isinstance(record.get("answer"), str) and "####" in record["answer"]:
        return "gsm8k"
    return None


def convert_record(record: SourceRecord, source: str) -> SourceTask | UnusableRecord:
    """Run one source's reader on one record; an unusable record comes back with its reason."""
    reader, id_key = _READERS[source]
    record_id = _record_id(record.data, id_key, source, record.line_no) if id_key else f"{source}-{record.line_no}"
    try:
        return reader(record.data, record_id)
    except UnusableError as problem:
        return UnusableRecord(record_id, str(problem), record.path, record.line_no)


def read_source(path: str | os.PathLike, source: str | None = None
                ) -> Iterator[SourceTask | BadRecord | UnusableRecord]:
    """Yield every record of a raw benchmark file (JSON list or JSONL) as a SourceTask,
    or as a BadRecord / UnusableRecord saying why it cannot be used.

    Without ``source`` the file's source is the schema of its first recognisable record;
    :class:`SourceError` when no record is recognisable or ``source`` is unknown.
    """
    if source is not None and source not in _READERS:
        raise SourceError(f"unknown source {source!r}; choose one of {', '.join(SOURCE_NAMES)}")
    pending: list[SourceRecord | BadRecord] = []
    records = read_records(path)
    if source is None:
        seen_keys: set[str] = set()
        for item in records:
            pending.append(item)
            if isinstance(item, SourceRecord):
                source = detect_source(item.data)
                if source is not None:
                    break
                seen_keys.update(item.data)
        if source is None:
            if not pending:
                return
            raise SourceError(f"{os.fspath(path)}: no record has the fields of a known source "
                              f"({', '.join(SOURCE_NAMES)}); fields seen: {', '.join(sorted(seen_keys)) or 'none'}; "
                              "pass source= to choose one")
    for item in _chain(pending, records):
        yield item if isinstance(item, BadRecord) else convert_record(item, source)


def _chain(first: list, rest: Iterator) -> Iterator:
    yield from first
    yield from rest


def detect_file_source(path: str | os.PathLike) -> str:
    """The source of a raw file, from the first recognisable record's fields."""
    for item in read_records(path):
        if isinstance(item, SourceRecord):
            source = detect_source(item.data)
            if source is not None:
                return source
    raise SourceError(f"{os.fspath(path)}: no record has the fields of a known source")

