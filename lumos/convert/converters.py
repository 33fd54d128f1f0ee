"""Which converter and verifier serve a (domain, backend) pair.

Rule functions map one :class:`~lumos.convert.sources.SourceTask` to a
:class:`~lumos.convert.pipeline.Converted` or raise :class:`~lumos.convert.pipeline.RecordFailure`;
the LLM backend (``lumos.convert.llm_convert``) converts whole batches through an
OpenAI-compatible endpoint. Verifiers return ``None`` for a passing annotation or ``(reason, detail)``.
"""

from __future__ import annotations

import re

from lumos.convert.pipeline import (ConversionConfig, Converted, Converter, RecordFailure, RulesConverter,
                                    Verifier)
from lumos.convert.rules_maths import ConversionError, convert_record, natural_language_plan
from lumos.convert.sources import SourceTask
from lumos.domains import domain as lumos_domain
from lumos.format import OUTPUT, Action, Plan, Subgoal


class NoConverterError(ValueError):
    """No converter exists for the requested (source, backend) pair."""


# --------------------------------------------------------------------------- maths


def maths_rules(task: SourceTask) -> Converted:
    """GSM8K record (``question``, ``answer`` with ``<<expr=value>>``) -> annotation."""
    data = task.raw
    try:
        plan, solution = convert_record(data)
    except ConversionError as error:
        raise RecordFailure(error.reason, error.detail) from None
    return Converted(task=data["question"].strip(), natural_language_plan=natural_language_plan(solution),
                     plan=plan, answer=solution.answer)


# ASDiv writes units in parentheses after numbers: "2 (dime)*10 (cent/dime)".
_ASDIV_UNIT = re.compile(r"\s*\((?=[^()]*[A-Za-z])[^()0-9]*\)")
_ASDIV_STEP = re.compile(r"^\s*([0-9.+\-*/() ]*[0-9)])\s*=\s*(-?[0-9]+(?:\.[0-9]+)?)\s*([A-Za-z ]*)$")


def asdiv_rules(task: SourceTask) -> Converted:
    """An ASDiv formula (``7+2=9``, or steps joined by ``;``) as one Calculator action per step.

    Formulas that are not plain arithmetic (comparisons ``a > b``, remainders ``7 r5``, clock
    times) raise RecordFailure ``asdiv_formula_unsupported``.
    """
    steps = []
    for part in task.natural_language_plan.split(";"):
        match = _ASDIV_STEP.match(_ASDIV_UNIT.sub("", part))
        if match is None:
            raise RecordFailure("asdiv_formula_unsupported", f"step {part.strip()!r} is not 'expression = number'")
        steps.append((match.group(1).strip(), match.group(2)))
    question = str(task.raw.get("question_only") or task.task).strip()
    subgoals = []
    for number, (expression, value) in enumerate(steps, start=1):
        last = number == len(steps)
        output = (OUTPUT,) if last else (f"R{number}",)
        text = f"Answer the question: {question}" if last else f"Calculate {expression}."
        subgoals.append(Subgoal(text, (Action("Calculator", expression, output, value),)))
    return Converted(task=task.task, natural_language_plan=task.natural_language_plan, plan=Plan(tuple(subgoals)),
                     answer=task.answer)


def maths_verifier(timeout: float = 1.0) -> Verifier:
    """Execution-based verification with one maths toolbox shared by every record."""
    from lumos.convert.verify import verify_plan
    from lumos.tools.maths import maths_toolbox

    toolbox = maths_toolbox(timeout=timeout)

    def verify(converted: Converted, task: SourceTask):
        verdict = verify_plan(converted.plan, converted.answer, toolbox)
        return None if verdict.ok else (verdict.reason, verdict.detail)

    return verify


# --------------------------------------------------------------------------- complex QA and web


def complex_qa_rules(task: SourceTask) -> Converted:
    """StrategyQA / MuSiQue decomposition -> KnowledgeQuery / ParagraphRetrieve / QA plan."""
    from lumos.convert.rules_qa import RuleConversionError, complex_qa_plan

    try:
        plan = complex_qa_plan(task)
    except RuleConversionError as error:
        raise RecordFailure("rules_qa_failed", error.reason) from None
    return Converted(task.task, task.natural_language_plan, plan, task.answer)


def web_rules(task: SourceTask) -> Converted:
    """Mind2Web ``action_reprs`` -> CLICK / TYPE / SELECT plan."""
    from lumos.convert.rules_web import WebReprError, mind2web_plan

    try:
        plan = mind2web_plan(task)
    except WebReprError as error:
        raise RecordFailure("bad_action_repr", str(error)) from None
    return Converted(task.task, task.natural_language_plan, plan, task.answer)


def structural_verifier(domain: str) -> Verifier:
    """Format, vocabulary and variable checks; web plans must also match the gold ``action_reprs``."""
    from lumos.convert.validate import validate_annotation

    spec = lumos_domain(domain)

    def verify(converted: Converted, task: SourceTask):
        gold = task.raw.get(spec.gold_field) if spec.gold_field else None
        problems = validate_annotation({"subgoal_plan": converted.plan.render()}, domain, gold)
        if not problems:
            return None
        return problems[0].kind, "; ".join(str(p) for p in problems)

    return verify


# --------------------------------------------------------------------------- choice

_RULES = {"gsm8k": maths_rules, "asdiv": asdiv_rules, "strategyqa": complex_qa_rules,
          "musique": complex_qa_rules, "mind2web": web_rules}


def converter_for(config: ConversionConfig) -> Converter:
    """The converter of ``config``; ``NoConverterError`` when none fits, LLM client errors for a bad setup."""
    if config.backend == "rules":
        rules = _RULES.get(str(config.source))
        if rules is None:
            raise NoConverterError(f"no rules converter for {config.source}, use --backend openai")
        return RulesConverter(rules)
    from lumos.convert.llm_convert import LLMConverter, openai_generator

    return LLMConverter(openai_generator(config), config.domain, max_tokens=config.max_tokens,
                        parse_retries=config.parse_retries,
                        batch_size=config.batch_size or max(256, 16 * config.concurrency))


def verifier_for(config: ConversionConfig) -> Verifier | None:
    if not config.verify:
        return None
    if lumos_domain(config.domain).validator is None:  # verified by executing its actions
        return maths_verifier()
    return structural_verifier(config.domain)
