"""lumos.prompts against conversations written by hand from docs/FORMAT.md §3, byte for byte."""

from __future__ import annotations

import pytest

from lumos.convert.annotation import TRAINING_RULES, OutputNumbering, ground_conversation, plan_conversation
from lumos.format import FormatError
from lumos.prompts import parse_planner_reply, plan_messages, render_chat, render_prompt, split_onetime_plan


def plan_conv(task: str, text: str, domain: str, form: str) -> list[dict]:
    return plan_conversation(task, text, TRAINING_RULES[domain], form, OutputNumbering())


def ground_conv(task: str, text: str, domain: str, form: str) -> list[dict]:
    return ground_conversation(domain, task, text, TRAINING_RULES[domain], form, OutputNumbering())


TASK = "Janet's ducks lay 16 eggs per day. How much does she make?"
PLAN = ("""Subgoal 1: Calculate how many eggs Janet sells each day.
Action 1-1: R1 = Calculator(16 - 3 - 4) = 9

Subgoal 2: Calculate how much she makes at the market.
Action 2-1: Output = Calculator(R1 * 2) = 18.""")

MATHS_BLOCK = (
    "Please ground the given subgoal to corresponding executable actions for solving the given task. "
    "The grounded actions must be the one in available action list.\n\n"
    "The available action list is 'Calculator', 'SetEquation', 'SolveEquation', 'Count', 'SolveInequality', "
    "'Code', and 'Define'.\n"
    "Calculator(formula): Calculate the input formula; SetEquation(equation): Set up an equation to be solved; "
    "SolveEquation(equation): Solve the previous set equation; Count(list): Count the number of elements in the "
    "given list; SolveInequality(inequality): Solve the previous set inequality; Code(pseudo_code): Generate a "
    "Python function that corresponds to the pseudo code; Define(variable/number): Define a variable or a number "
    "for latter usage.\n\n"
)
QA_BLOCK = (
    "Please ground the given subgoal to corresponding executable actions for solving the given task. "
    "The grounded actions must be the one in available action list.\n\n"
    "The available action list is 'KnowledgeQuery', 'ParagraphRetrieve', 'QA', 'Calculator', and 'Code'.\n"
    "Calculator(formula): Calculate the input formula; KnowledgeQuery(query): Capture the relevant webpages "
    "according to the query; ParagraphRetrieve(context, query): Given a query, retrieve the most relevant "
    "paragraphs from the given context; QA(context, query): Given context, answer the given query; "
    "Calculator(formula): Calculate the input formula; Code(pseudo_code): Generate a Python function that "
    "corresponds to the pseudo code.\n\n"
)
WEB_BLOCK = (
    "Please ground the given subgoal to corresponding executable actions for solving the given task. "
    "The grounded actions must be the one in available action list.\n\n"
    "The available action list is 'CLICK', 'TYPE', 'SELECT'.\n"
    "CLICK(Env, Query): Click the relevant html region in Env according to Query; TYPE(Env, Query, Text): Type "
    "Text into the relevant html region in Env according to Query; SELECT(Env, Query, Text): Select the value "
    "Text of the relevant selection box in Env according to Query.\n\n"
)
PLAN_FIRST = ("Please provide a reasonable subgoal-based plan to solve the given task.\nTask: " + TASK
              + "; Initial Environment Description: None.")


def test_plan_iterative_maths():
    assert plan_conv(TASK, PLAN, "maths", "iterative") == [
        {"role": "user", "content": PLAN_FIRST},
        {"role": "assistant", "content": "Subgoal 1: Calculate how many eggs Janet sells each day."},
        {"role": "user", "content": "The executed result for Subgoal 1 is 9. Should we stop planning?"},
        {"role": "assistant", "content": "No, I will keep planning. Subgoal 2: Calculate how much she makes at the market."},
        # trailing '.' of the result "18." is stripped
        {"role": "user", "content": "The executed result for Subgoal 2 is 18. Should we stop planning?"},
        {"role": "assistant", "content": "Yes, I will stop planning."},
    ]


def test_plan_onetime_maths():
    assert plan_conv(TASK, PLAN, "maths", "onetime") == [
        {"role": "user", "content": PLAN_FIRST},
        {"role": "assistant", "content": "Subgoal 1: Calculate how many eggs Janet sells each day.; "
                                         "Subgoal 2: Calculate how much she makes at the market."},
    ]


def test_ground_iterative_and_onetime_maths():
    assert ground_conv(TASK, PLAN, "maths", "iterative") == [
        {"role": "user", "content": MATHS_BLOCK + "Task: " + TASK + " \n"
                                    "Subgoal to be grounded: Subgoal 1: Calculate how many eggs Janet sells each day.\n"},
        {"role": "assistant", "content": "R1 = Calculator(16 - 3 - 4)"},
        {"role": "user", "content": "Subgoal to be grounded: Subgoal 2: Calculate how much she makes at the market.\n"},
        {"role": "assistant", "content": "R2 = Calculator(R1 * 2)"},
    ]
    # onetime answers keep `Output` as annotated (the released files do; renaming is iterative only)
    assert ground_conv(TASK, PLAN, "maths", "onetime") == [
        {"role": "user", "content": MATHS_BLOCK + "Task: " + TASK + " \n"
                                    "Subgoals to be grounded: Subgoal 1: Calculate how many eggs Janet sells each day.; "
                                    "Subgoal 2: Calculate how much she makes at the market.\n"},
        {"role": "assistant", "content": "R1 = Calculator(16 - 3 - 4); Output = Calculator(R1 * 2)"},
    ]


def test_ground_iterative_complex_qa_carries_earlier_results():
    plan = ("""Subgoal 1: Obtain the nationality of Scott Derrickson.
Action 1-1: R1 = KnowledgeQuery(Scott Derrickson) = WikipediaPage(Scott Derrickson)
Action 1-2: R2 = QA([R1], Question: What is the nationality of Scott Derrickson?) = American

Subgoal 2: Obtain the nationality of Ed Wood.
Action 2-1: R3 = KnowledgeQuery(Ed Wood) = WikipediaPage(Ed Wood)
Action 2-2: R4 = QA([R3], Question: What is the nationality of Ed Wood?) = American

Subgoal 3: Compare the nationalities.
Action 3-1: Output = QA([R2, R4], Question: Are they the same?) = yes""")
    task = "Were Scott Derrickson and Ed Wood of the same nationality?"
    messages = ground_conv(task, plan, "complex_qa", "iterative")
    assert messages[0]["content"] == (QA_BLOCK + "Task: " + task + " \nSubgoal to be grounded: "
                                      "Subgoal 1: Obtain the nationality of Scott Derrickson.\n")
    assert messages[1]["content"] == ("R1 = KnowledgeQuery(Scott Derrickson); "
                                      "R2 = QA([R1], Question: What is the nationality of Scott Derrickson?)")
    assert messages[2]["content"] == ("Subgoal to be grounded: Subgoal 2: Obtain the nationality of Ed Wood. "
                                      "The grounding could be based on the following results: "
                                      "The execution result for Subgoal 1 is American\n")
    assert messages[4]["content"] == ("Subgoal to be grounded: Subgoal 3: Compare the nationalities. "
                                      "The grounding could be based on the following results: "
                                      "The execution result for Subgoal 1 is American "
                                      "The execution result for Subgoal 2 is American\n")
    assert messages[5]["content"] == "R5 = QA([R2, R4], Question: Are they the same?)"


def test_web_agent_plan_and_ground():
    # web actions in the released format (docs/FORMAT.md §1): output variable, page argument, labelled query/text
    plan = ('Subgoal 1: Type New York into the From field.\nAction 1-1: R1 = TYPE(Env, QUERY: From, TEXT: New York)\n\n'
            'Subgoal 2: Click the Search button.\nAction 2-1: R2 = CLICK(R1, QUERY: Search)')
    task = "Find flights from New York"
    conv = plan_conv(task, plan, "web_agent", "iterative")
    assert conv[2]["content"] == "We have already type New York into the From field. Should we stop planning?"
    assert conv[4]["content"] == "We have already click the Search button. Should we stop planning?"
    ground = ground_conv(task, plan, "web_agent", "iterative")
    assert ground[0]["content"] == WEB_BLOCK + "Task: " + task + " \nSubgoal to be grounded: Subgoal 1: Type New York into the From field.\n"
    assert ground[1]["content"] == "R1 = TYPE(Env, QUERY: From, TEXT: New York)"
    assert ground[3]["content"] == "R2 = CLICK(R1, QUERY: Search)"


def test_missing_result_gives_the_call_as_the_executed_result():
    # the released files tell the planner the text after the action's last '=' (reference: maths edge_cases)
    conv = plan_conv("t", "Subgoal 1: Add.\nAction 1-1: R1 = Calculator(1 + 1)", "maths", "iterative")
    assert conv[2]["content"] == "The executed result for Subgoal 1 is Calculator(1 + 1). Should we stop planning?"


def test_plan_messages_assembles_given_turns():
    assert plan_messages("t", ["Subgoal 1: A.", "Subgoal 2: B."], ["f1", "f2"]) == [
        {"role": "user", "content": "Please provide a reasonable subgoal-based plan to solve the given task.\n"
                                    "Task: t; Initial Environment Description: None."},
        {"role": "assistant", "content": "Subgoal 1: A."}, {"role": "user", "content": "f1"},
        {"role": "assistant", "content": "No, I will keep planning. Subgoal 2: B."}, {"role": "user", "content": "f2"},
        {"role": "assistant", "content": "Yes, I will stop planning."}]
    with pytest.raises(ValueError, match="2 subgoals but 1 feedback"):
        plan_messages("t", ["Subgoal 1: A.", "Subgoal 2: B."], ["f1"])


def test_render_chat_is_tulu_with_assistant_spans():
    messages = [{"role": "user", "content": " Hi \n"}, {"role": "assistant", "content": "Subgoal 1: Add."},
                {"role": "user", "content": "More?"}, {"role": "assistant", "content": "Yes, I will stop planning."}]
    text, spans = render_chat(messages, "</s>")
    assert text == ("<|user|>\nHi\n<|assistant|>\nSubgoal 1: Add.</s>\n<|user|>\nMore?\n"
                    "<|assistant|>\nYes, I will stop planning.</s>")
    assert [text[a:b] for a, b in spans] == ["Subgoal 1: Add.</s>", "Yes, I will stop planning.</s>"]


def test_render_prompt_tulu_and_original_styles():
    history = [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "Subgoal 1: A."},
               {"role": "user", "content": "The executed result for Subgoal 1 is 9. Should we stop planning?"}]
    assert render_prompt(history, "</s>") == (
        "<|user|>\nQ\n<|assistant|>\nSubgoal 1: A.</s>\n<|user|>\n"
        "The executed result for Subgoal 1 is 9. Should we stop planning?\n<|assistant|>\n")
    assert render_prompt(history, "</s>", style="original") == (
        "<|user|>\nQ\n<|assistant|>\nSubgoal 1: A.\n\n<|user|>\n"
        "The executed result for Subgoal 1 is 9. Should we stop planning?\n<|assistant|>\n")
    with pytest.raises(ValueError, match="end with a user"):
        render_prompt(history[:2], "</s>")
    with pytest.raises(ValueError, match="unknown prompt style"):
        render_prompt(history, "</s>", style="chatml")  # type: ignore[arg-type]


def test_planner_replies_are_parsed_strictly():
    assert parse_planner_reply("Subgoal 1: Add the eggs.").text == "Add the eggs."
    reply = parse_planner_reply("No, I will keep planning. Subgoal 3: Sum up.")
    assert (reply.stop, reply.index, reply.subgoal_line) == (False, 3, "Subgoal 3: Sum up.")
    assert parse_planner_reply("Yes, I will stop planning.").stop
    with pytest.raises(FormatError):
        parse_planner_reply("I think we should add")
    assert split_onetime_plan("Subgoal 1: A; b.; Subgoal 2: C.") == [(1, "A; b."), (2, "C.")]
