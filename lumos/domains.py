"""The domains, declared once: everything that differs between maths, complex QA, web and the next task.

A :class:`Domain` names its action vocabulary (``lumos.vocabulary``), its toolbox factory, how the
planner is told a subgoal's outcome, what later grounding turns carry, how its converted
annotations are verified, which baseline formulations it has training data for, and the
released evaluation's protocol where there is one. The agent, the prompts, the runner, the
converters, validation and ``process_for_train`` read this object; CLI choices come from
:data:`DOMAINS`. Nothing compares domain names as strings.

Import-light on purpose: factories, validators and protocols are named as ``"module:function"``
and imported on first use, so reading the registry loads no tool, model or corpus.

    from lumos.domains import domain
    box = domain("maths").make_toolbox()
    turn = domain("web_agent").plan_feedback(1, "Open the menu", "[button] Menu -> CLICK")
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable, Literal

from lumos.vocabulary import COMPLEX_QA, MATHS, SQL, WEB_AGENT, DomainVocabulary

Feedback = Literal["result", "completion"]


def load_object(path: str) -> Any:
    """The object a ``"package.module:name"`` path names (imported now)."""
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class Domain:
    """One domain of the unified format: its actions and every behaviour that depends on the domain.

    ``feedback``: ``"result"`` tells the planner the subgoal's last result (``The executed result
    for Subgoal k is ...``); ``"completion"`` tells it which subgoal was done (``We have already
    ...``, web). ``grounding_sees_results``: later iterative grounding turns list earlier
    results (complex QA, as training did). ``actions_have_results``: converted annotations claim
    each action's result (web actions do not). ``validator``: the structural check of converted
    annotations (``validator(subgoal_plan, gold) -> problems``), None where annotations are
    verified by execution (maths); ``gold_field`` names the raw field it compares against.
    ``needs_knowledge``: the toolbox needs a knowledge source (``--corpus``/``--wikipedia``) and
    a QA model. ``baselines``: the ``cot``/``direct`` formulations with training data, and
    ``cot_from`` where ``cot`` is read, ``raw_records`` the shape of the raw records (GSM8K/ASDiv/PRM800K
    solutions, or question/answer pairs). ``training``: the domain has training
    data (conversion sources, training files, ``TASK=`` of ``./train.sh``); an unseen evaluation
    task has none. ``outputs_named_by_file``: conversion outputs are named after the input file.
    ``conversion_prompt``: the rules and in-context examples of the prompt that asks an LLM to convert
    a natural-language plan (a ``lumos.convert.llm_prompts.ConversionPrompt``), None where there is none.
    ``original_toolbox_options``: options the toolbox factory gets under ``--prompt_style original``
    so that tool results take the released evaluation's forms (maths: WolframAlpha's numbers).
    """

    name: str
    vocabulary: DomainVocabulary
    toolbox_factory: str
    feedback: Feedback = "result"
    grounding_sees_results: bool = False
    actions_have_results: bool = True
    validator: str | None = None
    gold_field: str | None = None
    needs_knowledge: bool = False
    baselines: tuple[str, ...] = ()
    cot_from: Literal["raw", "converted"] = "raw"
    raw_records: Literal["maths_solutions", "question_answer"] = "question_answer"
    original_protocol: str | None = None
    training: bool = True
    outputs_named_by_file: bool = False
    conversion_prompt: str | None = None
    original_toolbox_options: tuple[tuple[str, Any], ...] = ()

    def make_toolbox(self, **options: object):
        """The domain's toolbox (``options`` go to its factory: a corpus, a QA model, an environment, ...)."""
        return load_object(self.toolbox_factory)(**options)

    def plan_feedback(self, index: int, subgoal_text: str, result: str) -> str:
        """The planner's user turn after subgoal ``index`` was executed (docs/FORMAT.md §3.1)."""
        from lumos import prompts

        if self.feedback == "completion":
            return prompts.web_plan_feedback(subgoal_text)
        return prompts.plan_feedback(index, result)

    def validate(self, subgoal_plan: str, gold: Any = None) -> list:
        """Structural problems of a converted annotation (``lumos.convert.validate.Problem`` list)."""
        if self.validator is None:
            raise ValueError(f"no structural validation for domain {self.name!r}; its annotations are "
                             "verified by execution")
        check = load_object(self.validator)
        return check(subgoal_plan, gold) if self.gold_field else check(subgoal_plan)

    def make_original_protocol(self, rounds: int | None, formulation: str):
        """The released evaluation's protocol for this domain (the generic one when it has none of its own)."""
        from lumos.protocol import OriginalProtocol

        if self.original_protocol is None:
            return OriginalProtocol(rounds)
        return load_object(self.original_protocol)(rounds, formulation)


MATHS_DOMAIN = Domain(
    name="maths", vocabulary=MATHS, toolbox_factory="lumos.tools.maths:maths_toolbox",
    baselines=("cot", "direct"), raw_records="maths_solutions",
    original_protocol="lumos.protocol:original_maths_protocol",
    original_toolbox_options=(("number_style", "wolfram"),),
    outputs_named_by_file=True, conversion_prompt="lumos.convert.llm_prompts:MATHS_CONVERSION")
COMPLEX_QA_DOMAIN = Domain(
    name="complex_qa", vocabulary=COMPLEX_QA, toolbox_factory="lumos.tools.qa:qa_toolbox",
    grounding_sees_results=True, validator="lumos.convert.validate:validate_complex_qa",
    needs_knowledge=True, baselines=("cot", "direct"), cot_from="converted",
    conversion_prompt="lumos.convert.llm_prompts:COMPLEX_QA_CONVERSION")
WEB_DOMAIN = Domain(
    name="web_agent", vocabulary=WEB_AGENT, toolbox_factory="lumos.tools.web:web_toolbox",
    feedback="completion", actions_have_results=False, validator="lumos.convert.validate:validate_web",
    gold_field="action_reprs", conversion_prompt="lumos.convert.llm_prompts:WEB_CONVERSION")
# InterCode-SQL (an unseen task: no training data); its tools are in lumos/tools/sql.py.
SQL_DOMAIN = Domain(
    name="sql", vocabulary=SQL, toolbox_factory="lumos.tools.sql:sql_toolbox", training=False)

DOMAINS: dict[str, Domain] = {d.name: d for d in (MATHS_DOMAIN, COMPLEX_QA_DOMAIN, WEB_DOMAIN, SQL_DOMAIN)}


def domain(name: str) -> Domain:
    """The registered domain ``name``; ``ValueError`` naming the choices otherwise."""
    try:
        return DOMAINS[name]
    except KeyError:
        raise ValueError(f"unknown domain {name!r}; choose one of {', '.join(DOMAINS)}") from None


def domain_names(*, training: bool | None = None, where: Callable[[Domain], bool] | None = None) -> tuple[str, ...]:
    """Registered domain names, in declaration order (``training=True``: those with training data)."""
    return tuple(d.name for d in DOMAINS.values()
                 if (training is None or d.training == training) and (where is None or where(d)))


def main() -> None:
    """``python -m lumos.domains [--training]``: the domain names, space-separated (for shell scripts)."""
    import sys

    print(" ".join(domain_names(training=True if "--training" in sys.argv[1:] else None)))


if __name__ == "__main__":
    main()
