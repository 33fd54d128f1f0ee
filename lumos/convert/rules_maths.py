"""Rule-based conversion of GSM8K-format solutions into the unified subgoal/action format.

GSM8K solutions already carry the structure Lumos needs: each line is one step (in the
socratic variant ``sub-question ** step``), and each step's arithmetic is marked up as a
calculator annotation ``<<48/2=24>>``. A step becomes a subgoal (its sub-question, or its
sentence), each calculation in it an action ``R<n> = Calculator(<expr>) = <value>`` in which
numbers that are earlier results are replaced by their ``R`` variables, and the last action's
output becomes ``Output``. Steps whose arithmetic is written in plain text (``99 + 5 = $104``)
are read too. Nothing is guessed silently: a record that cannot be converted raises
:class:`ConversionError` with a short machine-readable reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

from lumos.format import OUTPUT, Action, Plan, Subgoal

_ANNOTATION = re.compile(r"<<([^<>=]*)=([^<>]*)>>")
_NUMBER = re.compile(r"(?<![\w.])(?:\d+(?:\.\d+)?|\.\d+)%?(?![\w.]*[A-Za-z_])")
# Plain-text arithmetic such as "99 + 5 = $104" or "3/5 x 100 = 60": operands may carry
# "$", thousands separators or "%", operators include x and unicode signs. The value must
# not continue as a fraction or mixed number ("= 5 and 2/3", "= 1/3").
_NUMBER_TEXT = r"\$?(?:\d[\d,]*(?:\.\d+)?|\.\d+)%?"
_OPERAND = rf"(?:{_NUMBER_TEXT}(?:\([^()]*\))?|\([^()]*\))"  # 50, $1,200, 25%, 2(40+9), (1/3)
_OPERATOR = r"\s*(?:[-+*/×÷−–]|x(?=\s)|plus|minus|times|multiplied by|divided by)\s*"
_PLAIN_CALCULATION = re.compile(
    rf"(?<![\w.$/])(?<!\d )({_OPERAND}(?:{_OPERATOR}{_OPERAND})+)\s*(?:=|equals)\s*\$?(\d[\d,]*(?:\.\d+)?|\.\d+)(%?)"
    r"(?![\d.,]*\d|\s*[-+/*x×^(]\s*\d|\s+and\s+\d|\s\d)"
)
_WORD_OPERATORS = {"plus": "+", "minus": "-", "times": "*", "multiplied by": "*", "divided by": "/"}
_QUESTION_WORDS = ("how", "what", "which", "when", "who", "where", "why", "is", "are", "does", "do", "did", "can")


class ConversionError(ValueError):
    """A record that the rules cannot convert; ``reason`` is a short category for counting."""

    def __init__(self, reason: str, detail: str = ""):
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


@dataclass(frozen=True)
class GsmStep:
    question: str | None  # the socratic sub-question, when present
    text: str              # the solution sentence, annotations included


@dataclass(frozen=True)
class GsmSolution:
    steps: tuple[GsmStep, ...]
    answer: str


def split_solution(answer: str) -> GsmSolution:
    """Split a GSM8K ``answer`` field into steps and the final answer after ``####``."""
    if "####" not in answer:
        raise ConversionError("no_final_answer", "the answer has no '#### <answer>' line")
    body, final = answer.rsplit("####", 1)
    final = final.strip().replace(",", "")
    if not final:
        raise ConversionError("no_final_answer", "nothing after '####'")
    steps = []
    for line in body.strip().split("\n"):
        line = line.strip()
        if not line:
            continue
        if " ** " in line:
            question, text = line.split(" ** ", 1)
            steps.append(GsmStep(question.strip(), text.strip()))
        else:
            steps.append(GsmStep(None, line))
    if not steps:
        raise ConversionError("no_steps", "the solution has no step before '####'")
    return GsmSolution(tuple(steps), final)


def natural_language_plan(solution: GsmSolution) -> str:
    """The step sentences joined by spaces, as the original pipeline wrote it."""
    return " ".join(step.text for step in solution.steps)


def _clean_number(text: str) -> str:
    return text.replace("$", "").replace(",", "").strip()


def _to_fraction(text: str) -> Fraction | None:
    """``"1,200"`` -> 1200, ``"25%"`` -> 1/4."""
    text = _clean_number(text)
    scale = Fraction(1, 100) if text.endswith("%") else 1
    try:
        return Fraction(text.rstrip("%")) * scale
    except (ValueError, ZeroDivisionError):
        return None


def _clean_expression(expr: str) -> str:
    """Normalise people's notation in a plain-text calculation into calculator syntax."""
    expr = expr.replace("×", "*").replace("÷", "/").replace("−", "-").replace("–", "-")
    for word, symbol in _WORD_OPERATORS.items():
        expr = re.sub(rf"\s*\b{word}\b\s*", f" {symbol} ", expr)
    expr = re.sub(r"(?<=[\d)%])\s*x\s*(?=[\d($.])", " * ", expr)
    expr = re.sub(r"(?<=[\d%)])\(", "*(", expr)  # implicit multiplication: 2(40+9)
    expr = re.sub(r"(?<=\d),(?=\d{3})", "", expr)
    return expr.replace("$", "").strip()


def find_calculations(text: str) -> list[tuple[str, str]]:
    """Calculations in a step as ``(expression, claimed value)`` pairs, in order.

    Calculator annotations win; a step without any is searched for plain-text arithmetic.
    """
    annotated = [(expr.strip(), value.strip()) for expr, value in _ANNOTATION.findall(text)]
    annotated = [(expr, value) for expr, value in annotated if expr and value]
    if annotated:
        return [(_clean_expression(expr), _clean_number(value)) for expr, value in annotated]
    calculations = []
    for expr, value, percent in _PLAIN_CALCULATION.findall(text):
        if not _balanced(expr):
            continue  # the match starts or ends inside a parenthesised group: not a whole calculation
        if percent and not re.search(r"[*/×÷(]|\sx\s|times|divided|multiplied", expr):
            expr = expr.replace("%", "")  # "100% - 20% = 80%": percentage points
        elif percent:
            value += "%"  # "30% * 20% = 6%": the value is a percentage too
        calculations.append((_clean_expression(expr), _clean_number(value)))
    return calculations


def _balanced(expr: str) -> bool:
    depth = 0
    for char in expr:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            return False
    return depth == 0


def _without_annotations(text: str) -> str:
    """A step's text as it reads: ``48/2 = <<48/2=24>>24 clips`` -> ``48/2 = 24 clips`` (GSM8K writes the
    value after the annotation; where it does not, the annotation's value takes its place)."""
    return _ANNOTATION.sub(lambda match: "" if text.startswith(match.group(2), match.end()) else match.group(2), text)


def subgoal_text(step: GsmStep) -> str:
    """A subgoal phrased as an instruction: ``Calculate how many ...`` from the sub-question."""
    source = step.question if step.question else _without_annotations(step.text)
    source = " ".join(source.split())
    if step.question:
        first = source.split(" ", 1)[0].lower()
        if first in _QUESTION_WORDS:
            source = "Calculate " + source[0].lower() + source[1:]
        source = source.rstrip("?").rstrip() + "."
    elif not source.endswith((".", "!", "?")):
        source += "."
    return source


def _substitute_results(expr: str, earlier: list[tuple[str, Fraction]]) -> str:
    """Replace numbers that equal an earlier result by that result's variable (latest first)."""

    def replace(match: re.Match) -> str:
        value = _to_fraction(match.group(0))
        for name, result in reversed(earlier):
            if value is not None and value == result:
                return name
        return match.group(0)

    return _NUMBER.sub(replace, expr)


def convert_solution(solution: GsmSolution) -> Plan:
    """Turn a split GSM8K solution into a Plan whose last action outputs ``Output``."""
    earlier: list[tuple[str, Fraction]] = []  # (variable, value) of every action so far
    subgoals: list[Subgoal] = []
    for step in solution.steps:
        actions = []
        for expr, value in find_calculations(step.text):
            claimed = _to_fraction(value)
            if claimed is None:
                raise ConversionError("bad_annotation", f"value {value!r} of {expr!r} is not a number")
            variable = f"R{len(earlier) + 1}"
            actions.append(Action(tool="Calculator", args=_substitute_results(expr, earlier),
                                  outputs=(variable,), result=value))
            earlier.append((variable, claimed))
        if actions:
            subgoals.append(Subgoal(subgoal_text(step), tuple(actions)))
    if not subgoals:
        raise ConversionError("no_calculation", "no calculator annotation or arithmetic in any step")
    last = subgoals[-1]
    final_action = last.actions[-1]
    renamed = Action(final_action.tool, final_action.args, (OUTPUT,), final_action.result)
    subgoals[-1] = Subgoal(last.text, last.actions[:-1] + (renamed,))
    return Plan(tuple(subgoals))


def convert_record(record: dict) -> tuple[Plan, GsmSolution]:
    """Convert one GSM8K-format record (``question``, ``answer``); raises ConversionError."""
    question, answer = record.get("question"), record.get("answer")
    if not isinstance(question, str) or not question.strip():
        raise ConversionError("missing_field", "record has no 'question' text")
    if not isinstance(answer, str):
        raise ConversionError("missing_field", "record has no 'answer' text")
    solution = split_solution(answer)
    return convert_solution(solution), solution
