"""Rule-based conversion of StrategyQA and MuSiQue decompositions into subgoal plans.

Every decomposition step becomes one subgoal, grounded with the complex-QA tools in these
argument conventions (the QA tools execute exactly these shapes)::

    R1 = KnowledgeQuery(Journal of Psychotherapy Integration) = WikipediaPage(Journal of Psychotherapy Integration)
    R2 = ParagraphRetrieve(R1, Query: What company published Journal of Psychotherapy Integration?) = The Journal ...
    R3 = QA([R2], Question: What company published Journal of Psychotherapy Integration?) = American Psychological Association

- ``KnowledgeQuery(<title>)``: the bare title of one Wikipedia page; its result names the page
  as ``WikipediaPage(<title>)``.
- ``ParagraphRetrieve(<page variable>, Query: <text>)``: one page variable, then the query.
- ``QA([<variables>], Question: <text>)``: a bracketed, comma-separated list of context
  variables (retrieved paragraphs and/or earlier answers; ``[]`` when there is none), then the
  question. A question may name earlier variables (``Is R3 more than R6?``); the QA tool
  substitutes their values before answering.
- Titles and questions are plain text, never quoted: whitespace is collapsed, double quotes
  become single quotes and unmatched parentheses are dropped, so that the format's scanner
  always finds the end of the call. Results are single-line text.
- Variables run ``R1, R2, ...`` through the whole plan; there is no ``Output`` variable.

MuSiQue: one subgoal per hop; ``#k`` in a hop's question is replaced by hop k's gold answer
and Wikidata-style hops (``Hello Love >> performer``) become questions; the page is the
title of the hop's supporting paragraph, the retrieved paragraph its text, the answer the
hop's gold answer.

StrategyQA: one subgoal per decomposition step, citing the paragraphs of the first annotator
whose evidence has no ``no_evidence`` step (one KnowledgeQuery + ParagraphRetrieve per cited
page; an ``operation`` step is a QA over the earlier answers it refers to). ``#k`` becomes the
variable holding step k's answer. The last step's answer is the gold ``yes``/``no``. StrategyQA
does not record intermediate answers, so an intermediate step's answer (and a retrieved
paragraph, unless the paragraph texts are given) is the record's fact that best matches the
step by word overlap.
"""

from __future__ import annotations

import re
from typing import Mapping

from lumos.convert.sources import SourceTask, musique_hops, strategyqa_evidence, UnusableError
from lumos.format import Action, Plan, Subgoal


class RuleConversionError(ValueError):
    """A record the rules cannot turn into a plan, with the reason."""

    def __init__(self, record_id: str, reason: str):
        self.record_id = record_id
        self.reason = reason
        super().__init__(f"record {record_id}: {reason}")


_HASH_REFERENCE = re.compile(r"#(\d+)")
_WORD = re.compile(r"[a-z0-9]+")
_STOPWORDS = frozenset(
    "a an the of in on at to for from by with and or is are was were be been do does did what which who whom "
    "whose when where why how many much it its this that these those as than there their they he she his her "
    "have has had can could would will not no yes".split())

# Wikidata relations of MuSiQue's ``entity >> relation`` hops that do not read as "the <relation> of".
_RELATION_QUESTIONS = {
    "located in the administrative territorial entity": "In which administrative territorial entity is {e} located?",
    "located in or next to body of water": "Which body of water is {e} located in or next to?",
    "shares border with": "What shares a border with {e}?",
    "educated at": "Where was {e} educated?",
    "instance of": "What is {e} an instance of?",
    "applies to jurisdiction": "To which jurisdiction does {e} apply?",
    "part of": "What is {e} part of?",
    "member of": "What is {e} a member of?",
    "subclass of": "What is {e} a subclass of?",
    "follows": "What does {e} follow?",
    "followed by": "What is {e} followed by?",
    "replaces": "What does {e} replace?",
    "replaced by": "What is {e} replaced by?",
    "conflict": "In which conflict did {e} take part?",
    "headquarters location": "Where is the headquarters of {e}?",
    "employer": "Who employed {e}?",
    "owned by": "Who owns {e}?",
    "creator": "Who created {e}?",
}


# --------------------------------------------------------------------------- text helpers


def plain_argument(text: str) -> str:
    """Free text made safe inside an unquoted action argument (see the module docstring)."""
    text = " ".join(str(text).replace('"', "'").split())
    kept: list[str] = []
    open_positions: list[int] = []
    for char in text:
        if char == "(":
            open_positions.append(len(kept))
        elif char == ")":
            if not open_positions:
                continue  # unmatched closing parenthesis
            open_positions.pop()
        kept.append(char)
    for position in reversed(open_positions):  # unmatched opening parentheses
        del kept[position]
    return " ".join("".join(kept).split())


def single_line(text: str) -> str:
    return " ".join(str(text).split())


def _tidy_question(text: str) -> str:
    text = re.sub(r"\s+([?,.!])", r"\1", single_line(text))
    text = text[:1].upper() + text[1:]
    return text if text.endswith("?") else text + "?"


def relation_question(question: str) -> str:
    """``"Hello Love >> performer"`` -> ``"What is the performer of Hello Love?"``; others unchanged."""
    if ">>" not in question:
        return question
    entity, _, relation = question.rpartition(">>")
    entity, relation = single_line(entity), single_line(relation)
    template = _RELATION_QUESTIONS.get(relation.lower(), "What is the {r} of {e}?")
    return template.format(e=entity, r=relation)


def hash_references(text: str) -> list[int]:
    """The ``#k`` step references of a decomposition question (1-based), in order of appearance."""
    return [int(k) for k in _HASH_REFERENCE.findall(text)]


def _substitute(text: str, replacements: Mapping[int, str], record_id: str) -> str:
    def replace(match: re.Match) -> str:
        step = int(match.group(1))
        if step not in replacements:
            raise RuleConversionError(record_id, f"question {text!r} refers to #{step}, not an earlier step")
        return replacements[step]
    return _HASH_REFERENCE.sub(replace, text)


def _words(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _STOPWORDS}


def best_fact(facts: list[str], query: str) -> str:
    """The fact sharing most content words with ``query`` (the first one on a tie)."""
    wanted = _words(query)
    return max(facts, key=lambda fact: len(wanted & _words(fact)))


def page_title(paragraph_id: str) -> str:
    """StrategyQA paragraph id ``"Julia (daughter of Caesar)-1"`` -> ``"Julia (daughter of Caesar)"``."""
    title, dash, number = paragraph_id.rpartition("-")
    return title if dash and number.isdigit() and title else paragraph_id


class _PlanBuilder:
    """Collects subgoals and hands out R variables in order."""

    def __init__(self) -> None:
        self.count = 0
        self.subgoals: list[Subgoal] = []
        self.actions: list[Action] = []

    def add(self, tool: str, args: str, result: str) -> str:
        self.count += 1
        variable = f"R{self.count}"
        self.actions.append(Action(tool=tool, args=args, outputs=(variable,), result=single_line(result)))
        return variable

    def retrieve(self, title: str, query: str, paragraph: str) -> str:
        page = self.add("KnowledgeQuery", plain_argument(title), f"WikipediaPage({plain_argument(title)})")
        return self.add("ParagraphRetrieve", f"{page}, Query: {query}", paragraph)

    def qa(self, context: list[str], question: str, answer: str) -> str:
        return self.add("QA", f"[{', '.join(context)}], Question: {question}", answer)

    def close_subgoal(self, text: str) -> None:
        self.subgoals.append(Subgoal(single_line(text), tuple(self.actions)))
        self.actions = []

    def plan(self) -> Plan:
        return Plan(tuple(self.subgoals))


def _check_result(record_id: str, what: str, text: str) -> str:
    if not single_line(text):
        raise RuleConversionError(record_id, f"{what} is empty")
    return text


# --------------------------------------------------------------------------- MuSiQue


def musique_plan(task: SourceTask) -> Plan:
    """One subgoal per MuSiQue hop: KnowledgeQuery, ParagraphRetrieve and QA on its supporting paragraph."""
    try:
        hops = musique_hops(task.raw)
    except UnusableError as problem:
        raise RuleConversionError(task.id, str(problem)) from None
    builder = _PlanBuilder()
    answers: dict[int, str] = {}
    for number, (hop, paragraph) in enumerate(hops, start=1):
        answer = _check_result(task.id, f"hop {number}'s answer", str(hop.get("answer") or ""))
        question = relation_question(_substitute(str(hop["question"]), answers, task.id))
        question = plain_argument(_tidy_question(question))
        title = _check_result(task.id, f"hop {number}'s paragraph title", str(paragraph.get("title") or ""))
        passage = builder.retrieve(title, question, str(paragraph["paragraph_text"]))
        builder.qa([passage], question, answer)
        builder.close_subgoal(f"Answer the question: {question}")
        answers[number] = single_line(answer)
    return builder.plan()


# --------------------------------------------------------------------------- StrategyQA


def strategyqa_plan(task: SourceTask, paragraphs: Mapping[str, str] | None = None) -> Plan:
    """One subgoal per StrategyQA decomposition step (see the module docstring).

    ``paragraphs`` maps StrategyQA paragraph ids (``"Title-3"``) to their text, as in
    ``strategyqa_train_paragraphs.json``; without it retrieved paragraphs are the matching facts.
    """
    try:
        cited = strategyqa_evidence(task.raw)
    except UnusableError as problem:
        raise RuleConversionError(task.id, str(problem)) from None
    facts = [single_line(f) for f in task.raw.get("facts") or [] if single_line(f)]
    steps = [single_line(q) for q in task.raw["decomposition"]]
    if not steps or not all(steps):
        raise RuleConversionError(task.id, "decomposition is empty or has an empty step")
    if task.answer not in ("yes", "no"):
        raise RuleConversionError(task.id, f"gold answer {task.answer!r} is not yes/no")
    builder = _PlanBuilder()
    answer_variables: dict[int, str] = {}
    for number, (step, ids) in enumerate(zip(steps, cited), start=1):
        last = number == len(steps)
        question = plain_argument(_tidy_question(_substitute(step, answer_variables, task.id)))
        references = [answer_variables[k] for k in dict.fromkeys(hash_references(step))]
        if not last and not facts:
            raise RuleConversionError(task.id, "no facts to state an intermediate answer")
        context: list[str] = []
        for title in dict.fromkeys(page_title(i) for i in ids):
            known = [paragraphs[i] for i in ids if paragraphs and page_title(i) == title and i in paragraphs]
            if known:
                passage = " ".join(known)
            elif facts:
                passage = best_fact(facts, f"{step} {title}")
            else:
                raise RuleConversionError(task.id, f"no paragraph text or fact for page {title!r}")
            context.append(builder.retrieve(title, question, passage))
        if not context:
            context = references or list(answer_variables.values())
        answer = task.answer if last else best_fact(facts, step)
        answer_variables[number] = builder.qa(context, question, answer)
        subgoal = re.sub(r"#(\d+)", r"the answer to Subgoal \1", step)
        builder.close_subgoal(f"Answer the question: {_tidy_question(subgoal)}")
    return builder.plan()


def complex_qa_plan(task: SourceTask, paragraphs: Mapping[str, str] | None = None) -> Plan:
    """The rule-based plan of a StrategyQA or MuSiQue task; RuleConversionError otherwise."""
    if task.source == "strategyqa":
        return strategyqa_plan(task, paragraphs)
    if task.source == "musique":
        return musique_plan(task)
    raise RuleConversionError(task.id, f"no complex-QA rules for source {task.source!r}")
