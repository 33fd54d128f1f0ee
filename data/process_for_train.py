"""Turn converted annotations into training conversations (FORMAT.md §3).

    python -m data.process_for_train --domain maths --formulation lumos_iterative
    python -m data.process_for_train --domain maths --formulation lumos_onetime
    python -m data.process_for_train --domain maths --formulation cot      # from raw_data/
    python -m data.process_for_train --domain maths --formulation direct   # from raw_data/
    python -m data.process_for_train --unified maths,complex_qa,web_agent

Reads ``<data_dir>/<domain>/converted/*.json`` and writes
``<data_dir>/<domain>/train_annots/lumos_<domain>_<plan|ground>_<iterative|onetime>.jsonl``
(``<domain>_cot.jsonl`` / ``<domain>_direct.jsonl`` for the baselines, and
``<data_dir>/unified/train_annots/lumos_unified_<plan|ground>_iterative.jsonl``). Annotations
that do not parse are counted per reason and kept, with the reason, in a ``.skipped.jsonl``
file beside the output; nothing is dropped without a word.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path
from typing import Iterator

from lumos.format import FormatError, parse_plan
from lumos.jsonl import BadRecord, read_records, write_jsonl
from lumos.prompts import cot_messages, direct_messages, ground_messages, plan_messages
from lumos.vocabulary import DOMAIN_NAMES

FORMULATIONS = ("lumos_iterative", "lumos_onetime", "cot", "direct")


def training_file(data_dir: Path, domain: str, module: str, formulation: str) -> Path:
    return data_dir / domain / "train_annots" / f"lumos_{domain}_{module}_{formulation}.jsonl"


def converted_files(data_dir: Path, domain: str) -> list[Path]:
    folder = data_dir / domain / "converted"
    files = sorted(p for p in folder.glob("*.json") if p.is_file() and not p.name.endswith(".run.json")) \
        if folder.is_dir() else []
    if not files:
        raise SystemExit(f"error: no converted annotations in {folder}; run `python -m data.prompt_convertion "
                         f"--domain {domain} --data_fn FILE --convert_all` first")
    return files


def _records(paths: list[Path], skipped: list[dict]) -> Iterator[dict]:
    for path in paths:
        for item in read_records(path):
            if isinstance(item, BadRecord):
                skipped.append({"source": f"{item.path}:{item.line_no}", "reason": "bad_input", "detail": item.reason})
                continue
            yield {"_source": f"{item.path}:{item.line_no}", **item.data}


def build_lumos(data_dir: Path, domain: str, formulation: str) -> dict[str, Counter]:
    """Write plan and ground files for ``lumos_iterative`` or ``lumos_onetime``."""
    form = formulation.split("_", 1)[1]
    skipped: list[dict] = []
    plan_rows, ground_rows = [], []
    for record in _records(converted_files(data_dir, domain), skipped):
        try:
            task, plan_text = record["task"], record["subgoal_plan"]
            if not isinstance(task, str) or not isinstance(plan_text, str):
                raise KeyError("task/subgoal_plan are not strings")
            plan = parse_plan(plan_text)
            plan_conv = plan_messages(task.strip(), plan, domain, form)
            ground_conv = ground_messages(task.strip(), plan, domain, form)
        except KeyError as error:
            skipped.append({"source": record["_source"], "reason": "missing_field", "detail": str(error)})
            continue
        except FormatError as error:
            skipped.append({"source": record["_source"], "reason": "format_error", "detail": str(error)})
            continue
        index = len(plan_rows)
        plan_rows.append({"dataset": domain, "id": f"{domain}_{index}", "messages": plan_conv})
        ground_rows.append({"dataset": domain, "id": f"{domain}_{index}", "messages": ground_conv})
    counts = {}
    for module, rows in (("plan", plan_rows), ("ground", ground_rows)):
        path = training_file(data_dir, domain, module, form)
        write_jsonl(path, rows)
        counts[str(path)] = Counter(written=len(rows))
    _write_skipped(training_file(data_dir, domain, "plan", form), skipped, counts)
    return counts


def _write_skipped(beside: Path, skipped: list[dict], counts: dict[str, Counter]) -> None:
    skipped_path = beside.with_name(beside.name.replace("_plan_", "_").replace(".jsonl", ".skipped.jsonl"))
    if skipped:
        write_jsonl(skipped_path, skipped)
        counts[str(skipped_path)] = Counter(r["reason"] for r in skipped)
    elif skipped_path.exists():
        skipped_path.unlink()


def _gsm_solution_text(answer: str) -> tuple[str, str]:
    """GSM8K ``answer`` -> (solution prose without calculator markup, final answer)."""
    import re

    body, final = answer.rsplit("####", 1)
    steps = [line.split(" ** ", 1)[-1].strip() for line in body.strip().split("\n") if line.strip()]
    prose = re.sub(r"<<[^<>]*>>", "", " ".join(steps))
    return prose, final.strip().replace(",", "")


def build_baseline(data_dir: Path, domain: str, formulation: str) -> dict[str, Counter]:
    """``cot`` / ``direct`` conversations: the bare question, then a solution or the answer."""
    skipped: list[dict] = []
    rows = []
    if domain == "maths":
        raw = sorted((data_dir / domain / "raw_data").glob("*.json*"))
        if not raw:
            raise SystemExit(f"error: no raw data in {data_dir / domain / 'raw_data'} for --formulation {formulation}")
        for record in _records(raw, skipped):
            question, answer = record.get("question"), record.get("answer")
            if not isinstance(question, str) or not isinstance(answer, str) or "####" not in answer:
                skipped.append({"source": record["_source"], "reason": "not_gsm8k_format",
                                "detail": "needs 'question' and an 'answer' with '#### <answer>'"})
                continue
            prose, final = _gsm_solution_text(answer)
            messages = (cot_messages(question, f"{prose} Answer is {final}.") if formulation == "cot"
                        else direct_messages(question, final))
            rows.append({"dataset": domain, "id": f"{domain}_{len(rows)}", "messages": messages})
    else:
        for record in _records(converted_files(data_dir, domain), skipped):
            task, nl_plan, answer = record.get("task"), record.get("natural_language_plan"), record.get("ans")
            if not isinstance(task, str) or (formulation == "direct" and answer is None) or (
                    formulation == "cot" and not isinstance(nl_plan, str)):
                skipped.append({"source": record["_source"], "reason": "missing_field",
                                "detail": "needs 'task' and 'ans' (direct) or 'natural_language_plan' (cot)"})
                continue
            messages = cot_messages(task, nl_plan) if formulation == "cot" else direct_messages(task, str(answer))
            rows.append({"dataset": domain, "id": f"{domain}_{len(rows)}", "messages": messages})
    path = data_dir / domain / "train_annots" / f"{domain}_{formulation}.jsonl"
    write_jsonl(path, rows)
    counts = {str(path): Counter(written=len(rows))}
    if skipped:
        skipped_path = path.with_name(path.stem + ".skipped.jsonl")
        write_jsonl(skipped_path, skipped)
        counts[str(skipped_path)] = Counter(r["reason"] for r in skipped)
    return counts


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
            rows += [item.data for item in read_records(source) if not isinstance(item, BadRecord)]
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
    args = parser.parse_args(argv)
    data_dir = Path(args.data_dir)
    if args.unified:
        domains = [d.strip() for d in args.unified.split(",") if d.strip()]
        unknown = [d for d in domains if d not in DOMAIN_NAMES]
        if unknown:
            parser.error(f"--unified: unknown domain(s) {', '.join(unknown)}; choose from {', '.join(DOMAIN_NAMES)}")
        counts = build_unified(data_dir, domains)
    elif args.formulation.startswith("lumos_"):
        counts = build_lumos(data_dir, args.domain, args.formulation)
    else:
        counts = build_baseline(data_dir, args.domain, args.formulation)
    for path, counter in counts.items():
        print(f"{path}: " + ", ".join(f"{key} {value}" for key, value in counter.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
