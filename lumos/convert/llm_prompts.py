"""Prompts that ask an LLM to rewrite a benchmark's natural-language plan as a subgoal plan.

Per domain: a system message, an instruction naming the action vocabulary (rendered from
``lumos.vocabulary``, so prompts and tools cannot drift) and the argument conventions that the
execution module and the validators accept, and in-context examples in the unified format of
docs/FORMAT.md §1. A conversation is::

    system:    SYSTEM_MESSAGE
    user:      instruction + first example's "Task: ...\\nNatural language plan: ..."
    assistant: first example's subgoal plan
    user:      "Task: ...\\nNatural language plan: ..."      (further examples, then the record)

Every example is checked by the tests: it parses, uses only the domain's tools, and passes the
domain's verification (execution for maths, ``lumos.convert.validate`` for the others).
"""

from __future__ import annotations

from dataclasses import dataclass

from lumos.vocabulary import vocabulary

SYSTEM_MESSAGE = ("You rewrite worked solutions of tasks as subgoal-based plans whose actions call a fixed set "
                  "of tools. You answer with the plan only, in exactly the format of the examples.")


@dataclass(frozen=True)
class Example:
    task: str
    natural_language_plan: str
    subgoal_plan: str
    answer: str | None = None
    gold_action_reprs: tuple[str, ...] | None = None  # web examples: the trace the plan must follow


@dataclass(frozen=True)
class ConversionPrompt:
    """A domain's part of the conversion prompt, named by its ``Domain.conversion_prompt``."""

    rules: str  # the action and argument conventions the execution module and the validators accept
    examples: tuple[Example, ...]  # in-context examples in the unified format


def conversion_prompt(domain: str) -> ConversionPrompt:
    """``domain``'s conversion prompt, read through the registry (``KeyError`` for a domain without one)."""
    from lumos.domains import DOMAINS, load_object

    entry = DOMAINS.get(domain)
    if entry is None or entry.conversion_prompt is None:
        raise KeyError(domain)
    return load_object(entry.conversion_prompt)


_FORMAT_RULES = """\
Write the plan as subgoal blocks separated by one blank line. A block is one line "Subgoal k: <what to do>" \
followed by its action lines "Action k-j: <action>" (k counts subgoals from 1, j counts the actions of subgoal k \
from 1). Write nothing before "Subgoal 1:" and nothing after the last action."""

_MATHS_RULES = """\
An action is "<outputs> = <Tool>(<arguments>) = <result>". Outputs are variables R1, R2, ... numbered in order \
through the whole plan; the last action of the plan writes its result to "Output" instead. Arguments may use \
earlier variables (R1 * 2). The result is the value the action computes. The final result must be the answer of \
the task."""

_COMPLEX_QA_RULES = """\
An action is "R<n> = <Tool>(<arguments>) = <result>", with R1, R2, ... numbered in order through the whole plan \
and every variable defined before it is used. Argument conventions: KnowledgeQuery(<title of one Wikipedia page>) \
= WikipediaPage(<title>); ParagraphRetrieve(<page variable>, Query: <query>) = <retrieved paragraph>; \
QA([<context variables>], Question: <question>) = <answer>. Write titles, queries and questions as plain text \
without double quotes or unbalanced parentheses; every result is one line. The last action's result is the \
answer of the task."""

_WEB_RULES = """\
An action is "R<n> = CLICK(<page>, QUERY: <query>)", "R<n> = TYPE(<page>, QUERY: <query>, TEXT: <text>)" or \
"R<n> = SELECT(<page>, QUERY: <query>, TEXT: <value>)", with no result. R1, R2, ... are numbered in order through \
the whole plan; each names the page its action leads to, and each action acts on the page the previous one left \
(Env for the first). The query is a short sentence describing the step; the text is the typed text or the \
selected option exactly as in the plan. Keep exactly one action per step of the natural-language plan, in its \
order; a HOVER or ENTER step is a CLICK. Typing into a field and then clicking the suggestion that repeats the \
typed text may share one subgoal."""


def instruction(domain: str) -> str:
    """The conversion instruction of ``domain`` (``KeyError`` for an unknown domain)."""
    vocab = vocabulary(domain)
    return (f"Convert the natural language plan of a task into a subgoal-based plan. {_FORMAT_RULES}\n\n"
            f"The available action list is {vocab.action_list_text()}.\n{vocab.descriptions_text()}\n\n"
            f"{conversion_prompt(domain).rules}\n\nExamples follow; then convert the last task in the same way.")


def user_turn(task: str, natural_language_plan: str) -> str:
    return f"Task: {task}\nNatural language plan: {natural_language_plan}"


def conversion_messages(domain: str, task: str, natural_language_plan: str) -> list[dict[str, str]]:
    """The whole conversation that asks for one record's subgoal plan."""
    messages = [{"role": "system", "content": SYSTEM_MESSAGE}]
    for number, example in enumerate(conversion_prompt(domain).examples):
        prompt = user_turn(example.task, example.natural_language_plan)
        if number == 0:
            prompt = f"{instruction(domain)}\n\n{prompt}"
        messages += [{"role": "user", "content": prompt}, {"role": "assistant", "content": example.subgoal_plan}]
    messages.append({"role": "user", "content": user_turn(task, natural_language_plan)})
    return messages


CORRECTION = ("Your plan could not be read: {error}. Write the whole plan again in exactly the format of the "
              "examples, starting with \"Subgoal 1:\" and with nothing else.")


def correction_turn(error: str) -> str:
    """The user turn that asks again after an unreadable reply."""
    return CORRECTION.format(error=error)


MATHS_CONVERSION = ConversionPrompt(_MATHS_RULES, (
    Example(
        task="Janet's ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes muffins "
             "for her friends every day with four. She sells the remainder at the farmers' market daily for $2 "
             "per fresh duck egg. How much in dollars does she make every day at the farmers' market?",
        natural_language_plan="Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 duck eggs a day. She makes 9 * 2 = "
                              "$<<9*2=18>>18 every day at the farmer's market.",
        subgoal_plan="Subgoal 1: Calculate how many eggs Janet sells each day.\n"
                     "Action 1-1: R1 = Calculator(16 - 3 - 4) = 9\n\n"
                     "Subgoal 2: Calculate how much she makes at the market every day.\n"
                     "Action 2-1: Output = Calculator(R1 * 2) = 18",
        answer="18"),
    Example(
        task="A bakery sells 4 boxes of 12 cookies and 3 bags of 8 cookies. It gives away a quarter of all "
             "the cookies. How many cookies are left?",
        natural_language_plan="The boxes hold 4 * 12 = 48 cookies and the bags hold 3 * 8 = 24 cookies, "
                              "72 in total. A quarter is 72 / 4 = 18 cookies, so 72 - 18 = 54 are left.",
        subgoal_plan="Subgoal 1: Calculate the number of cookies in the boxes and in the bags.\n"
                     "Action 1-1: R1 = Calculator(4 * 12) = 48\n"
                     "Action 1-2: R2 = Calculator(3 * 8) = 24\n\n"
                     "Subgoal 2: Calculate the total number of cookies.\n"
                     "Action 2-1: R3 = Calculator(R1 + R2) = 72\n\n"
                     "Subgoal 3: Calculate how many cookies are left after giving a quarter away.\n"
                     "Action 3-1: Output = Calculator(R3 - R3 / 4) = 54",
        answer="54"),
))

COMPLEX_QA_CONVERSION = ConversionPrompt(_COMPLEX_QA_RULES, (
    Example(
        task="Who was the first president of the organisation that publishes the Journal of Psychotherapy "
             "Integration?",
        natural_language_plan="We find relevant facts: The Journal of Psychotherapy Integration is published "
                              "by the American Psychological Association. G. Stanley Hall was the first "
                              "president of the American Psychological Association. We need to answer these "
                              "questions: 1. What company published Journal of Psychotherapy Integration? (Can "
                              "be answered based on paragraph 'Journal of Psychotherapy Integration') 2. Who "
                              "was the first president of American Psychological Association? (Can be answered "
                              "based on paragraph 'American Psychological Association') Based on these "
                              "evidences and decomposed questions, the answer is G. Stanley Hall.",
        subgoal_plan="Subgoal 1: Find the organisation that publishes the Journal of Psychotherapy Integration.\n"
                     "Action 1-1: R1 = KnowledgeQuery(Journal of Psychotherapy Integration) = "
                     "WikipediaPage(Journal of Psychotherapy Integration)\n"
                     "Action 1-2: R2 = ParagraphRetrieve(R1, Query: What company published Journal of "
                     "Psychotherapy Integration?) = The Journal of Psychotherapy Integration is published by "
                     "the American Psychological Association.\n"
                     "Action 1-3: R3 = QA([R2], Question: What company published Journal of Psychotherapy "
                     "Integration?) = American Psychological Association\n\n"
                     "Subgoal 2: Find the first president of that organisation.\n"
                     "Action 2-1: R4 = KnowledgeQuery(American Psychological Association) = "
                     "WikipediaPage(American Psychological Association)\n"
                     "Action 2-2: R5 = ParagraphRetrieve(R4, Query: Who was the first president of American "
                     "Psychological Association?) = G. Stanley Hall was the first president of the American "
                     "Psychological Association.\n"
                     "Action 2-3: R6 = QA([R5], Question: Who was the first president of American "
                     "Psychological Association?) = G. Stanley Hall",
        answer="G. Stanley Hall"),
    Example(
        task="Could a llama birth twice during the War in Vietnam (1945-46)?",
        natural_language_plan="We find relevant facts: The War in Vietnam (1945-46) lasted around 6 months. "
                              "The gestation period for a llama is 11 months. We need to answer these "
                              "questions: 1. How long did the Vietnam war (1945-46) last? (Can be answered "
                              "based on paragraph 'War in Vietnam (1945-46)-1') 2. How long is the gestation "
                              "period of a llama? (Can be answered based on paragraph 'Llama-12') 3. Is #2 "
                              "times two less than #1? Based on these evidences and decomposed questions, the "
                              "answer is False.",
        subgoal_plan="Subgoal 1: Find how long the War in Vietnam (1945-46) lasted.\n"
                     "Action 1-1: R1 = KnowledgeQuery(War in Vietnam 1945-46) = "
                     "WikipediaPage(War in Vietnam 1945-46)\n"
                     "Action 1-2: R2 = ParagraphRetrieve(R1, Query: How long did the Vietnam war 1945-46 "
                     "last?) = The War in Vietnam (1945-46) lasted around 6 months.\n"
                     "Action 1-3: R3 = QA([R2], Question: How long did the Vietnam war 1945-46 last?) = "
                     "6 months\n\n"
                     "Subgoal 2: Find how long the gestation period of a llama is.\n"
                     "Action 2-1: R4 = KnowledgeQuery(Llama) = WikipediaPage(Llama)\n"
                     "Action 2-2: R5 = ParagraphRetrieve(R4, Query: How long is the gestation period of a "
                     "llama?) = The gestation period for a llama is 11 months.\n"
                     "Action 2-3: R6 = QA([R5], Question: How long is the gestation period of a llama?) = "
                     "11 months\n\n"
                     "Subgoal 3: Decide whether two gestation periods fit into the war.\n"
                     "Action 3-1: R7 = Calculator(11 * 2) = 22\n"
                     "Action 3-2: R8 = QA([R7, R3], Question: Is R7 months less than R3?) = no",
        answer="no"),
))

WEB_CONVERSION = ConversionPrompt(_WEB_RULES, (
    Example(
        task="Find a one-way flight from New York to Boston on April 12 for one adult.",
        natural_language_plan="[button]  One-way -> CLICK; [textbox]  From -> TYPE: New York; "
                              "[span]  New York, NY -> CLICK; [textbox]  To -> TYPE: Boston; "
                              "[combobox]  Date -> SELECT: April 12; [button]  Search -> CLICK",
        subgoal_plan="Subgoal 1: Choose a one-way trip.\n"
                     "Action 1-1: R1 = CLICK(Env, QUERY: Click the One-way button)\n\n"
                     "Subgoal 2: Enter New York as the departure city.\n"
                     "Action 2-1: R2 = TYPE(R1, QUERY: Type New York into the From field, TEXT: New York)\n"
                     "Action 2-2: R3 = CLICK(R2, QUERY: Choose the New York, NY suggestion)\n\n"
                     "Subgoal 3: Enter Boston as the destination.\n"
                     "Action 3-1: R4 = TYPE(R3, QUERY: Type Boston into the To field, TEXT: Boston)\n\n"
                     "Subgoal 4: Pick April 12 as the travel date.\n"
                     "Action 4-1: R5 = SELECT(R4, QUERY: Select April 12 in the Date dropdown, TEXT: April 12)\n\n"
                     "Subgoal 5: Search for flights.\n"
                     "Action 5-1: R6 = CLICK(R5, QUERY: Click the Search button)",
        gold_action_reprs=("[button]  One-way -> CLICK", "[textbox]  From -> TYPE: New York",
                           "[span]  New York, NY -> CLICK", "[textbox]  To -> TYPE: Boston",
                           "[combobox]  Date -> SELECT: April 12", "[button]  Search -> CLICK")),
))


def conversion_examples() -> dict[str, tuple[Example, ...]]:
    """Every domain's in-context examples, by name (the domains whose registry entry has a conversion prompt)."""
    from lumos.domains import domain_names

    return {name: conversion_prompt(name).examples
            for name in domain_names(where=lambda entry: entry.conversion_prompt is not None)}

