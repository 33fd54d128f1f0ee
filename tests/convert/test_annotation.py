"""lumos.convert.annotation: annotation text cut as the released training files were (docs/FORMAT.md §3.6).

Expected values are those of the original's reference runs (lumos_reference/A_training edge
cases), written out here so the reading is pinned without the shared data.
"""

from __future__ import annotations

import pytest

from lumos.convert.annotation import (
    TRAINING_RULES, AnnotationError, OutputNumbering, executed_result, ground_conversation, plan_conversation,
    planner_variable, read_action, read_subgoal_plan,
)


@pytest.mark.parametrize("line, grounded, result", [
    ("Action 1-1: R1 = Calculator(2 + 3) = 5", "R1 = Calculator(2 + 3)", "5"),
    ("Action 1-1: R1 = SetEquation(x + 5 = 10) = x + 5 = 10", "R1 = SetEquation(x + 5 = 10)", "x + 5 = 10"),
    ("Action 1-1: R1, R2 = SolveEquation(x + y = 10, x - y = 2) = 6, 4",
     "R1, R2 = SolveEquation(x + y = 10, x - y = 2)", "6, 4"),
    ("Action 2-1: Output = R1 = 5", "Output = (R1)", "5"),                       # no call at all
    ("Action 1-1: R1 = Calculator(2 + 3)", "R1 = Calculator(2 + 3)", "2 + 3"),  # no result: the arguments
    ("Action 1-1: R1 = Calculator((2 + 3) * 4 = 20", "R1 = Calculator((2 + 3)", "(2 + 3"),  # unbalanced
    ("Action 1-1:  R1 = Calculator( 2 + 3 )  =  5 ", " R1 = Calculator( 2 + 3 ))", "5"),    # doubled spaces
    ("Action 2-1: Output = Calculator(R1(-9/8, -3/5)) = 123/40 ", "Output = Calculator(R1(-9/8, -3/5))", "123/40"),
])
def test_actions_are_cut_as_the_released_files_cut_them(line, grounded, result):
    action = read_action(line)
    assert (action.grounded, action.result) == (grounded, result)


def test_web_actions_run_to_the_last_parenthesis():
    action = read_action("Action 1-1: R1 = TYPE(Env, QUERY: Type the city (departure), TEXT: Boston (MA)). ",
                         with_result=False)
    assert action.grounded == "R1 = TYPE(Env, QUERY: Type the city (departure), TEXT: Boston (MA))"
    assert action.result == ""
    # quoted actions without an output are cut at the wrong places, as they were in the original
    assert read_action('Action 1-1: CLICK(Env, "Go")', with_result=False).grounded == \
        'CLICK(Env, "Go" = tion 1-1: CLICK(Env, "Go")'


@pytest.mark.parametrize("line, value", [
    ("Action 1-1: R1 = SetEquation(x + 5 = 10) = x + 5 = 10", "10"),
    ("Action 1-1: R1 = Calculator(7 / 2) = 3.5.", "3.5"),
    ("Action 2-1: R2 = Calculator(1 / 2) = .5", "5"),
    ("Action 1-1: R1 = Calculator(2 + 3)", "Calculator(2 + 3)"),
])
def test_executed_result_is_the_text_after_the_last_equals_sign(line, value):
    assert executed_result(line) == value


def test_blocks_split_on_every_blank_line():
    blocks = read_subgoal_plan("  Here is the plan.\nSubgoal 1: A.\nAction 1-1: R1 = Calculator(1) = 1\n\n\n"
                               "Subgoal 2: B.\nAction 2-1: R2 = Calculator(2) = 2\n\n")
    assert [(b.line, b.action_lines) for b in blocks] == [
        ("Subgoal 1: A.", ("Action 1-1: R1 = Calculator(1) = 1",)),
        ("", ("Subgoal 2: B.", "Action 2-1: R2 = Calculator(2) = 2")),
        ("", ())]
    assert planner_variable("Action 2-1: R2 = Calculator(2) = 2") == "R2"
    with pytest.raises(AnnotationError, match="no_output_variable"):
        planner_variable("R2 = Calculator(2) = 2")


def test_output_numbering_per_record_or_carried_over():
    fresh, carried = OutputNumbering(), OutputNumbering(carry_over=True)
    with pytest.raises(AnnotationError, match="output_before_any_variable"):
        carried.rename("Output", "Output = Calculator(2 + 3)")
    for numbering in (fresh, carried):
        numbering.start_record()
        assert numbering.rename("R1", "R1 = Calculator(1)") == "R1 = Calculator(1)"
        assert numbering.rename("Output", "Output = Calculator(R1)") == "R2 = Calculator(R1)"
        numbering.start_record()
    assert fresh.rename("Output", "Output = Calculator(5)") == "R1 = Calculator(5)"
    assert carried.rename("Output", "Output = Calculator(5)") == "R2 = Calculator(5)"
    with pytest.raises(AnnotationError, match="bad_output_variable"):
        fresh.rename("R1)", "")


MATHS = TRAINING_RULES["maths"]
REPEATED = ("Subgoal 1: Set up the equation.\nAction 1-1: R1 = SetEquation(x + 5 = 10) = x + 5 = 10\n\n"
            "Subgoal 2: Solve it and double.\nAction 2-1: R2 = SolveEquation(R1) = 5\n"
            "Action 2-2: Output = Calculator(R2 * 2) = 10")


def test_iterative_output_counts_subgoal_ends_and_onetime_keeps_output():
    iterative = ground_conversation("maths", "t", REPEATED, MATHS, "iterative", OutputNumbering())
    assert iterative[3]["content"] == "R2 = SolveEquation(R1); R2 = Calculator(R2 * 2)"
    onetime = ground_conversation("maths", "t", REPEATED, MATHS, "onetime", OutputNumbering())
    assert onetime[1]["content"] == "R1 = SetEquation(x + 5 = 10); R2 = SolveEquation(R1); Output = Calculator(R2 * 2)"
    plan = plan_conversation("t", REPEATED, MATHS, "iterative", OutputNumbering())
    assert plan[2]["content"] == "The executed result for Subgoal 1 is 10. Should we stop planning?"


def test_complex_qa_lists_earlier_results_in_sorted_label_order():
    text = "\n\n".join(f"Subgoal {k}: Step {k}.\nAction {k}-1: R{k} = QA([R0], Question: q{k}?) = a{k}"
                       for k in range(1, 12))
    conv = ground_conversation("complex_qa", "t", text, TRAINING_RULES["complex_qa"], "iterative", OutputNumbering())
    last_user = conv[-2]["content"]
    assert last_user.startswith("Subgoal to be grounded: Subgoal 11: Step 11. The grounding could be based on the "
                                "following results: The execution result for Subgoal 1 is a1 The execution result "
                                "for Subgoal 10 is a10 The execution result for Subgoal 2 is a2")
    assert last_user.endswith("The execution result for Subgoal 9 is a9\n")


def test_iterative_needs_an_action_in_every_block():
    with pytest.raises(AnnotationError, match="subgoal_without_action"):
        plan_conversation("t", "Subgoal 1: Think.\n\nSubgoal 2: Count.\nAction 2-1: R1 = Count(1, 2) = 2",
                          MATHS, "iterative", OutputNumbering())
    with pytest.raises(AnnotationError, match="empty_subgoal"):
        plan_conversation("t", "Subgoal 1: A.\nAction 1-1: R1 = CLICK(Env, QUERY: a)\n\n\nSubgoal 2: B.\n"
                          "Action 2-1: R2 = CLICK(R1, QUERY: b)", TRAINING_RULES["web_agent"], "iterative",
                          OutputNumbering())
