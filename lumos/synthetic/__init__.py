"""Generated GSM8K-style maths word problems: the default data of a fresh clone.

    python -m lumos.synthetic --n 2000 --seed 0 --split train \\
        --out data/train/maths/raw_data/synthetic_gsm_train.jsonl

Records have the shape of GSM8K's *socratic* files, plus an ``id``::

    {"id": "...", "question": "...", "answer": "Sub-question? ** Sentence 16 - 3 = <<16-3=13>>13 ...\\n#### 13"}

Each problem chains 1 to 4 steps from the template language of
:mod:`lumos.synthetic.templates`; every step is one exact integer calculation.

After an evaluation, the failures on such problems can be sorted by kind (the quickstart does)::

    python -m lumos.synthetic --diagnose results/synthetic/predictions.jsonl \\
        --problems data/eval/synthetic_gsm/test.jsonl

Splits cannot leak: :func:`assign_split` decides, from the question text alone plus the
names and template chain it uses, which split a problem belongs to, and the generator of a
split keeps only its own problems. About one name in ten and one template chain in ten are
held out of training entirely, so the evaluation splits also hold new names and new
combinations of steps, drawn from the same template language.
"""

from __future__ import annotations

import argparse
import random
import re
import zlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

from lumos.synthetic.templates import (
    ALL_PEOPLE,
    ALL_TEMPLATES,
    CONTINUE,
    START,
    Draft,
    NoFit,
    Person,
    WEIGHTS,
    Step,
)
from lumos.jsonl import write_jsonl

SPLITS = ("train", "validation", "test")
MAX_STEPS = 4
_HOLD_OUT_MODULUS = 10  # one name / one template chain in this many never appears in training
_EVAL_BUCKETS = {0: "test", 1: "validation"}  # question-hash buckets of the evaluation splits
_MAX_ATTEMPTS_PER_PROBLEM = 10_000


class SyntheticError(ValueError):
    """Bad arguments to the generator (unknown split, negative count)."""


def _stable_hash(text: str) -> int:
    return zlib.crc32(text.encode("utf-8"))


def is_held_out_name(name: str) -> bool:
    """Names that only evaluation splits use."""
    return _stable_hash("name:" + name) % _HOLD_OUT_MODULUS == 0


def is_held_out_chain(templates: Sequence[str]) -> bool:
    """Chains of two or more templates that only evaluation splits use (every template alone is trained)."""
    return len(templates) >= 2 and _stable_hash("chain:" + "|".join(templates)) % _HOLD_OUT_MODULUS == 0


def assign_split(question: str, templates: Sequence[str], names: Sequence[str]) -> str | None:
    """The one split a problem belongs to (``None``: held out from all of them).

    A problem with a held-out name or template chain is never "train"; others go to an
    evaluation split when the hash of their question text says so. Each split's generator
    keeps only its own problems, so no question can appear in two splits.
    """
    bucket = _stable_hash("question:" + question)
    if any(is_held_out_name(name) for name in names) or is_held_out_chain(templates):
        return _EVAL_BUCKETS.get(bucket % 4)  # the other half is left unused
    return _EVAL_BUCKETS.get(bucket % 10, "train")


@dataclass(frozen=True)
class Problem:
    id: str
    question: str
    answer: str
    steps: tuple[Step, ...]
    names: tuple[str, ...]  # first names of the people in the question

    @property
    def templates(self) -> tuple[str, ...]:
        return tuple(step.template for step in self.steps)

    @property
    def final_answer(self) -> int:
        return self.steps[-1].value

    def to_record(self) -> dict[str, str]:
        return {"id": self.id, "question": self.question, "answer": self.answer}


_START_NAMES = tuple(START)
_CONTINUATIONS = {kind: tuple(templates.items()) for kind, templates in CONTINUE.items()}


def _chain(rng: random.Random, people: tuple[Person, ...], n_steps: int) -> tuple[list[Step], Draft] | None:
    """One attempt at a chain of ``n_steps`` steps; ``None`` when the random walk gets stuck."""
    draft = Draft(rng, people)
    try:
        step, state = START[rng.choice(_START_NAMES)](draft, None)
    except NoFit:
        return None
    steps = [step]
    while len(steps) < n_steps:
        # the same template twice in a row reads badly ("On the last day ... On the last day ...")
        options = [option for option in _CONTINUATIONS[state.kind] if option[0] != steps[-1].template]
        # a weighted random order (Efraimidis-Spirakis keys): heavier templates tend to come first
        options.sort(key=lambda option: rng.random() ** (1.0 / WEIGHTS.get(option[0], 1.0)), reverse=True)
        for _, template in options:
            saved = (set(draft.taken), list(draft.used_people), draft.last_subject)
            try:
                next_step, next_state = template(draft, state)
            except NoFit:
                next_state = None
            if next_state is not None and (_CONTINUATIONS[next_state.kind] or len(steps) + 1 == n_steps):
                step, state = next_step, next_state
                break
            # no fit, or a dead end (a result nothing can follow) before the last step
            draft.taken, draft.used_people, draft.last_subject = saved[0], saved[1], saved[2]
        else:
            return None
        steps.append(step)
    return steps, draft


def _render(steps: list[Step]) -> tuple[str, str]:
    facts = [step.fact for step in steps if step.fact]
    question = " ".join(facts + [steps[-1].ask])
    answer = "\n".join(step.answer_line() for step in steps) + f"\n#### {steps[-1].value}"
    return question, answer


def iter_problems(n: int, seed: int, split: str = "train") -> Iterator[Problem]:
    """``n`` distinct problems of ``split``, the same ones for the same arguments."""
    if split not in SPLITS:
        raise SyntheticError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    if n < 0:
        raise SyntheticError(f"the number of problems must be >= 0, got {n}")
    rng = random.Random(f"lumos-synthetic-gsm:{seed}:{split}")
    people = ALL_PEOPLE if split != "train" else tuple(p for p in ALL_PEOPLE if not is_held_out_name(p.name))
    seen: set[str] = set()
    for index in range(n):
        n_steps = rng.randint(1, MAX_STEPS)
        for _ in range(_MAX_ATTEMPTS_PER_PROBLEM):
            built = _chain(rng, people, n_steps)
            if built is None:
                continue
            steps, draft = built
            question, answer = _render(steps)
            names = tuple(p.name for p in draft.used_people)
            templates = tuple(step.template for step in steps)
            if question in seen or assign_split(question, templates, names) != split:
                continue
            seen.add(question)
            yield Problem(f"synthetic_gsm_{split}_{seed}_{index}", question, answer, tuple(steps), names)
            break
        else:  # pragma: no cover - the template language always admits chains of every length
            raise RuntimeError(f"no {n_steps}-step problem found for split {split!r} after "
                               f"{_MAX_ATTEMPTS_PER_PROBLEM} attempts")


def generate_problems(n: int, seed: int, split: str = "train") -> list[dict]:
    """GSM8K-socratic-style records ``{"id", "question", "answer"}`` for ``split``."""
    return [problem.to_record() for problem in iter_problems(n, seed, split)]


# --------------------------------------------------------------------------- diagnosing evaluation failures

_ANNOTATION = re.compile(r"<<([^=<>]+)=[^<>]+>>")
_NUMBER = re.compile(r"(?<![R\w.])\d+(?:\.\d+)?")  # a literal number (not the 1 of R1)
WORD_CONSTANTS = frozenset({"2", "3", "4"})  # "twice", "half", "a third", "a quarter": no digits in the question
FAILURE_KINDS = ("number copied wrongly", "planner stopped early", "planner went on",
                 "wrong operation or operand")


def gold_expressions(answer: str) -> list[str]:
    """The calculator expression of each step of a socratic answer (``"16-3"``, ...)."""
    return [match.group(1) for match in _ANNOTATION.finditer(answer)]


def failure_kind(record: dict, problem: dict) -> str | None:
    """Why a prediction record of ``problem`` is wrong (``None`` when it is right).

    An episode that did not finish fails by its exit status. A finished one: a number in a tool
    call that is neither in the question, nor a word constant, nor an earlier result was copied
    wrongly; otherwise a plan
    with fewer or more subgoals than the solution has steps stopped early or went on; anything
    else picked a wrong operation or operand.
    """
    scores = record.get("scores") or {}
    if scores.get("accuracy", 0.0) >= 1.0:
        return None
    if record.get("status") != "finished":
        return str(record.get("status"))
    known = set(_NUMBER.findall(problem["question"].replace(",", ""))) | WORD_CONSTANTS
    steps = record.get("steps") or []
    for step in steps:
        for call in step.get("calls") or []:
            if any(number not in known for number in _NUMBER.findall(str(call.get("args", "")))):
                return FAILURE_KINDS[0]
            known.add(str(call.get("result")))  # an earlier result written out instead of its R variable
    gold = len(gold_expressions(problem["answer"]))
    planned = sum(1 for step in steps if step.get("subgoal"))
    if planned != gold:
        return FAILURE_KINDS[1] if planned < gold else FAILURE_KINDS[2]
    return FAILURE_KINDS[3]


def diagnosis(predictions: Sequence[dict], problems: Sequence[dict]) -> str:
    """Two tables: accuracy by the number of steps of the gold solution, and failures by kind."""
    by_id = {problem["id"]: problem for problem in problems}
    total: Counter[int] = Counter()
    right: Counter[int] = Counter()
    kinds: Counter[str] = Counter()
    for record in predictions:
        problem = by_id.get(record.get("id"))
        if problem is None:
            continue
        steps = len(gold_expressions(problem["answer"]))
        kind = failure_kind(record, problem)
        total[steps] += 1
        right[steps] += kind is None
        if kind is not None:
            kinds[kind] += 1
    lines = ["accuracy by number of steps (subgoals) of the solution:",
             f"  {'steps':>5}  {'problems':>8}  {'right':>5}  {'accuracy':>8}"]
    for steps in sorted(total):
        lines.append(f"  {steps:>5}  {total[steps]:>8}  {right[steps]:>5}  {right[steps] / total[steps]:>8.3f}")
    count = sum(total.values())
    if count:
        lines.append(f"  {'all':>5}  {count:>8}  {sum(right.values()):>5}  {sum(right.values()) / count:>8.3f}")
    failures = sum(kinds.values())
    lines.append(f"failures by kind ({failures}):")
    for kind, n in kinds.most_common():
        lines.append(f"  {kind:<28} {n:>5}  {n / failures:>6.1%}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lumos.synthetic", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000, help="number of problems")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--split", choices=SPLITS, default="train")
    parser.add_argument("--out", type=Path, help="output JSONL file (parents are created)")
    parser.add_argument("--diagnose", type=Path, metavar="PREDICTIONS",
                        help="instead of generating: sort the failures of an evaluation's predictions.jsonl "
                             "on generated problems (--problems) by kind")
    parser.add_argument("--problems", type=Path, help="with --diagnose: the generated problems evaluated")
    args = parser.parse_args(argv)
    if args.diagnose is not None:
        return _diagnose(parser, args.diagnose, args.problems)
    if args.out is None:
        parser.error("--out is required: the JSONL file to write")
    if args.n < 0:
        parser.error(f"--n must be >= 0, got {args.n}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    count = write_jsonl(args.out, generate_problems(args.n, args.seed, args.split))
    print(f"wrote {count} {args.split} problems to {args.out}")
    return 0


def _diagnose(parser: argparse.ArgumentParser, predictions: Path, problems: Path | None) -> int:
    from lumos.jsonl import BadRecord, read_records

    if problems is None:
        parser.error("--diagnose needs --problems: the generated problems that were evaluated")
    for path in (predictions, problems):
        if not path.is_file():
            parser.error(f"{path}: no such file")
    records = [[item.data for item in read_records(path) if not isinstance(item, BadRecord)]
               for path in (predictions, problems)]
    print(diagnosis(*records))
    return 0


__all__ = [
    "ALL_TEMPLATES", "FAILURE_KINDS", "SPLITS", "Problem", "SyntheticError", "assign_split", "diagnosis",
    "failure_kind", "generate_problems", "gold_expressions", "is_held_out_chain", "is_held_out_name", "iter_problems",
    "main",
]
