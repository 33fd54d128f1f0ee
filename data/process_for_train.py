"""Turn converted annotations into training conversations (docs/FORMAT.md §2, §3 and §6).

    python -m data.process_for_train --domain maths --formulation lumos_iterative
    python -m data.process_for_train --domain maths --formulation lumos_onetime
    python -m data.process_for_train --domain maths --formulation cot      # from raw_data/
    python -m data.process_for_train --domain maths --formulation direct   # from raw_data/
    python -m data.process_for_train --unified maths,complex_qa,web_agent
    python -m data.process_for_train --domain maths --formulation lumos_iterative --compat exact

Reads ``<data_dir>/<domain>/converted/*.json[l]`` (``lumos_*``, and complex_qa ``cot``) or
``<data_dir>/<domain>/raw_data/*.json[l]`` (maths ``cot``/``direct``: GSM8K, ASDiv and PRM800K
records, told apart by their fields; complex_qa ``direct``: any records with ``question`` and
``answer``, e.g. MuSiQue and StrategyQA), files in sorted name order, and writes
``<data_dir>/<domain>/train_annots/lumos_<domain>_<plan|ground>_<iterative|onetime>.jsonl``,
``<domain>_cot.jsonl`` / ``<domain>_direct.jsonl``, and for ``--unified`` the concatenation of
the iterative files, ``<data_dir>/unified/train_annots/lumos_unified_<plan|ground>_iterative.jsonl``.

The text is cut from the annotations exactly as the released Lumos files were
(lumos.convert.annotation). Ids are ``<domain>_<n>``, ``n`` the record's position among the
input records (0-based, files in order), so a skipped record leaves a gap and the plan, ground,
onetime and baseline files of one record share its id. Every record that gives no
conversation is listed with its reason in a ``.skipped.jsonl`` beside the output and counted.

``--compat exact`` reproduces the original script byte for byte, including its one bug (the
``Output`` renaming counter carries over from the previous record) and its ids (positions among
the records written, so they shift past a skipped record).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from lumos.convert.annotation import (
    TRAINING_RULES, AnnotationError, OutputNumbering, ground_conversation, plan_conversation,
)
from lumos.format import FormatError, parse_plan
from lumos.jsonl import BadRecord, read_records, write_jsonl
from lumos.prompts import cot_messages, direct_messages
from lumos.domains import domain as lumos_domain, domain_names

DOMAIN_NAMES = domain_names(training=True)
FORMULATIONS = ("lumos_iterative", "lumos_onetime", "cot", "direct")
COMPAT = ("none", "exact")
PRM_LIMIT = 10000  # the original uses the first 10,000 records of each PRM800K file
COT_MARKER, ANSWER_MARKER = "We need to answer these questions:", "Based on these evidences and decomposed questions"


def training_file(data_dir: Path, domain: str, module: str, formulation: str) -> Path:
    return data_dir / domain / "train_annots" / f"lumos_{domain}_{module}_{formulation}.jsonl"


def _input_files(folder: Path, what: str, hint: str) -> list[Path]:
    files = sorted(p for p in folder.glob("*.json*") if p.is_file() and p.suffix in (".json", ".jsonl")
                   and not p.name.endswith((".run.json", ".failed.jsonl", ".skipped.jsonl"))) \
        if folder.is_dir() else []
    if not files:
        raise SystemExit(f"error: no {what} in {folder}; {hint}")
    return files


def converted_files(data_dir: Path, domain: str) -> list[Path]:
    return _input_files(data_dir / domain / "converted", "converted annotations",
                        f"run `python -m data.prompt_convertion --domain {domain} --data_fn FILE --convert_all` first")


def raw_files(data_dir: Path, domain: str, formulation: str) -> list[Path]:
    return _input_files(data_dir / domain / "raw_data", "raw data",
                        f"--formulation {formulation} reads the benchmark's own files from there")


@dataclass
class Input:
    """One input record: its position among all input records (the id in default mode), where it is from."""

    index: int
    source: str
    data: dict[str, Any] | None = None
    problem: str = ""


def read_inputs(paths: list[Path]) -> Iterator[Input]:
    """Every record of the files in order, numbered; unreadable lines come with ``problem`` set."""
    index = 0
    for path in paths:
        for item in read_records(path):
            if isinstance(item, BadRecord):
                yield Input(index, f"{item.path}:{item.line_no}", problem=item.reason)
            else:
                yield Input(index, f"{item.path}:{item.line_no}", data=item.data)
            index += 1


@dataclass
class Output:
    """The rows of one output file and the records that gave none."""

    path: Path
    exact: bool
    rows: list[dict] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)

    def add(self, domain: str, record: Input, messages: list[dict[str, str]]) -> None:
        number = len(self.rows) if self.exact else record.index
        self.rows.append({"dataset": domain, "id": f"{domain}_{number}", "messages": messages})

    def skip(self, record: Input, reason: str, detail: str, module: str | None = None) -> None:
        entry = {"source": record.source, "index": record.index}
        if module:
            entry["module"] = module
        self.skipped.append({**entry, "reason": reason, "detail": detail})


def _write(outputs: list[Output], skipped_path: Path) -> dict[str, Counter]:
    counts: dict[str, Counter] = {}
    for output in outputs:
        write_jsonl(output.path, output.rows)
        counts[str(output.path)] = Counter(written=len(output.rows))
    skipped = sorted((entry for output in outputs for entry in output.skipped), key=lambda entry: entry["index"])
    if skipped:
        write_jsonl(skipped_path, skipped)
        counts[str(skipped_path)] = Counter(entry["reason"] for entry in skipped)
    elif skipped_path.exists():
        skipped_path.unlink()
    return counts


# --------------------------------------------------------------------------- plan and ground files


def format_problem(domain: str, subgoal_plan: str) -> str | None:
    """Why an annotation is outside the documented format (docs/FORMAT.md §1), or None.

    Such records still give training text (read leniently, as the released files were made), so
    they are counted and named, not skipped.
    """
    if lumos_domain(domain).validator is None:  # verified by execution: the format is what can be checked here
        try:
            parse_plan(subgoal_plan)
        except FormatError as error:
            return str(error)
        return None
    from lumos.convert.validate import validate_annotation

    problems = validate_annotation({"subgoal_plan": subgoal_plan}, domain)
    return str(problems[0]) if problems else None


def build_lumos(data_dir: Path, domain: str, formulation: str, compat: str = "none") -> dict[str, Counter]:
    """Write the plan and ground files of ``lumos_iterative`` or ``lumos_onetime``."""
    form = formulation.split("_", 1)[1]
    exact = compat == "exact"
    rules = TRAINING_RULES[domain]
    plan = Output(training_file(data_dir, domain, "plan", form), exact)
    ground = Output(training_file(data_dir, domain, "ground", form), exact)
    plan_numbering, ground_numbering = OutputNumbering(carry_over=exact), OutputNumbering(carry_over=exact)
    builders: list[tuple[str, Output, Callable[[str, str], list[dict[str, str]]]]] = [
        ("plan", plan, lambda task, text: plan_conversation(task, text, rules, form, plan_numbering)),
        ("ground", ground, lambda task, text: ground_conversation(domain, task, text, rules, form, ground_numbering)),
    ]
    outside: list[str] = []
    for record in read_inputs(converted_files(data_dir, domain)):
        task, text = (record.data or {}).get("task"), (record.data or {}).get("subgoal_plan")
        if isinstance(task, str) and isinstance(text, str):
            problem = format_problem(domain, text)
            if problem:
                outside.append(f"{record.source}: {problem}")
        for module, output, build in builders:
            if record.problem:
                output.skip(record, "bad_input", record.problem, module)
            elif not isinstance(task, str) or not isinstance(text, str):
                output.skip(record, "missing_field", "needs string 'task' and 'subgoal_plan'", module)
            else:
                try:
                    output.add(domain, record, build(task, text))
                except AnnotationError as error:
                    output.skip(record, error.reason, error.detail, module)
    skipped_path = data_dir / domain / "train_annots" / f"lumos_{domain}_{form}.skipped.jsonl"
    counts = _write([plan, ground], skipped_path)
    if outside:
        examples = "; ".join(outside[:3])
        print(f"note: {len(outside)} of the annotations are outside the documented format and were read leniently, "
              f"as the released files were (docs/FORMAT.md §3.6); e.g. {examples}")
    return counts


# --------------------------------------------------------------------------- cot and direct baselines


def _maths_example(data: dict[str, Any], formulation: str) -> tuple[str, str]:
    """(question, target) of a GSM8K, PRM800K or ASDiv record; raises AnnotationError."""
    question, answer = data.get("question"), data.get("answer")
    if isinstance(question, dict):  # PRM800K: {"question": {"problem", "ground_truth_solution", "ground_truth_answer"}}
        if "problem" not in question or "ground_truth_answer" not in question:
            raise AnnotationError("missing_field", "PRM800K record without problem/ground_truth_answer")
        solution, final = question.get("ground_truth_solution"), question["ground_truth_answer"]
        if formulation == "direct":
            return question["problem"], str(final)
        if not solution or not final:
            raise AnnotationError("no_solution", "PRM800K record without a ground-truth solution and answer")
        return question["problem"], f"{solution} Answer is {final}."
    if not isinstance(question, str) or not isinstance(answer, str):
        raise AnnotationError("unknown_raw_shape", "needs GSM8K, ASDiv or PRM800K fields")
    if "####" in answer:  # GSM8K: the worked answer kept as written, its lines joined by spaces
        final = answer.split("####")[1].strip()
        if formulation == "direct":
            return question, final
        return question, answer.split("#### ")[0].replace("\n", " ").strip() + f" Answer is {final}."
    if isinstance(data.get("solution"), str):  # ASDiv: answer "9 (apples)"
        final = answer.split(" ")[0]
        return question, final if formulation == "direct" else f"{data['solution']}. Answer is {final}."
    raise AnnotationError("unknown_raw_shape", "needs GSM8K, ASDiv or PRM800K fields")


def _qa_direct_example(data: dict[str, Any], formulation: str) -> tuple[str, str]:
    if not isinstance(data.get("question"), str) or "answer" not in data:
        raise AnnotationError("missing_field", "needs 'question' and 'answer'")
    return data["question"], str(data["answer"])


def _qa_cot_example(data: dict[str, Any], formulation: str) -> tuple[str, str]:
    """The natural-language plan without its list of decomposed questions."""
    task, plan = data.get("task"), data.get("natural_language_plan")
    if not isinstance(task, str) or not isinstance(plan, str):
        raise AnnotationError("missing_field", "needs string 'task' and 'natural_language_plan'")
    answer_part = plan[plan.find(ANSWER_MARKER):] if ANSWER_MARKER in plan else plan[-1:]
    return task, plan.split(COT_MARKER)[0].strip() + " " + answer_part


# How a domain's raw records give a question and a target (``Domain.raw_records``).
_RAW_EXAMPLES = {"maths_solutions": _maths_example, "question_answer": _qa_direct_example}


def build_baseline(data_dir: Path, domain: str, formulation: str, compat: str = "none") -> dict[str, Counter]:
    """``cot`` / ``direct`` conversations: the bare question, then a solution or the answer."""
    spec = lumos_domain(domain)
    if formulation not in spec.baselines:
        having = domain_names(where=lambda d: formulation in d.baselines)
        raise SystemExit(f"error: --formulation {formulation} exists for {' and '.join(having)} only")
    if formulation == "cot" and spec.cot_from == "converted":
        paths, example = converted_files(data_dir, domain), _qa_cot_example
        maths_solutions = False
    else:
        paths = raw_files(data_dir, domain, formulation)
        example = _RAW_EXAMPLES[spec.raw_records]
        maths_solutions = spec.raw_records == "maths_solutions"  # (PRM800K's records among them)
    output = Output(data_dir / domain / "train_annots" / f"{domain}_{formulation}.jsonl", compat == "exact")
    prm_seen: Counter = Counter()
    for record in read_inputs(paths):
        if record.problem:
            output.skip(record, "bad_input", record.problem)
            continue
        if maths_solutions and isinstance(record.data.get("question"), dict):
            file = record.source.rsplit(":", 1)[0]
            prm_seen[file] += 1
            if prm_seen[file] > PRM_LIMIT:
                output.skip(record, "beyond_prm_limit", f"only the first {PRM_LIMIT} PRM800K records of a file are used")
                continue
        try:
            question, target = example(record.data, formulation)
        except AnnotationError as error:
            output.skip(record, error.reason, error.detail)
            continue
        output.add(domain, record, (cot_messages if formulation == "cot" else direct_messages)(question, target))
    return _write([output], output.path.with_name(output.path.stem + ".skipped.jsonl"))


# --------------------------------------------------------------------------- unified mixture


def build_unified(data_dir: Path, domains: list[str]) -> dict[str, Counter]:
    """Concatenate each domain's iterative plan/ground files into the unified ones."""
    counts = {}
    for module in ("plan", "ground"):
        rows = []
        for domain in domains:
            source = training_file(data_dir, domain, module, "iterative")
            if not source.is_file():
                raise SystemExit(f"error: {source} is missing; run `python -m data.process_for_train "
                                 f"--domain {domain} --formulation lumos_iterative` first")
            for item in read_records(source):
                if isinstance(item, BadRecord):
                    raise SystemExit(f"error: {item}")
                rows.append(item.data)
        path = training_file(data_dir, "unified", module, "iterative")
        write_jsonl(path, rows)
        counts[str(path)] = Counter(written=len(rows))
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--domain", choices=DOMAIN_NAMES, default="maths")
    parser.add_argument("--formulation", choices=FORMULATIONS, default="lumos_iterative")
    parser.add_argument("--unified", default=None, help="comma-separated domains to merge, e.g. maths,complex_qa")
    parser.add_argument("--data_dir", default="data/train")
    parser.add_argument("--compat", choices=COMPAT, default="none",
                        help="'exact': the original script's output byte for byte, its Output-numbering bug "
                             "and shifting ids included (docs/FORMAT.md, 'Differences from the original')")
    args = parser.parse_args(argv)
    data_dir = Path(args.data_dir)
    if args.unified:
        domains = [d.strip() for d in args.unified.split(",") if d.strip()]
        unknown = [d for d in domains if d not in DOMAIN_NAMES]
        if unknown:
            parser.error(f"--unified: unknown domain(s) {', '.join(unknown)}; choose from {', '.join(DOMAIN_NAMES)}")
        counts = build_unified(data_dir, domains)
    elif args.formulation.startswith("lumos_"):
        counts = build_lumos(data_dir, args.domain, args.formulation, args.compat)
    else:
        counts = build_baseline(data_dir, args.domain, args.formulation, args.compat)
    for path, counter in counts.items():
        print(f"{path}: " + ", ".join(f"{key} {value}" for key, value in counter.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
