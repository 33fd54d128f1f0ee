"""lumos.format: strict parsing, exact round trip, typed errors that name the line."""

from __future__ import annotations

import random
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lumos.format import (
    Action, FormatError, Plan, Subgoal, number_outputs, parse_action, parse_actions, parse_plan,
    render_actions, render_plan, variables_used,
)

JANET = """Subgoal 1: Calculate how many eggs Janet sells each day.
Action 1-1: R1 = Calculator(16 - 3 - 4) = 9

Subgoal 2: Calculate how much she makes at the market.
Action 2-1: Output = Calculator(R1 * 2) = 18"""


def test_parse_janet_example():
    plan = parse_plan(JANET)
    assert [s.text for s in plan.subgoals] == ["Calculate how many eggs Janet sells each day.",
                                               "Calculate how much she makes at the market."]
    assert plan.subgoals[0].actions[0] == Action("Calculator", "16 - 3 - 4", ("R1",), "9")
    assert plan.subgoals[1].actions[0] == Action("Calculator", "R1 * 2", ("Output",), "18")
    assert render_plan(plan) == JANET


@pytest.mark.parametrize("text, expected", [
    ("R5, R6 = SolveEquation(R2=xy, R3=x/y) = 3, 4", Action("SolveEquation", "R2=xy, R3=x/y", ("R5", "R6"), "3, 4")),
    ("R7 = Calculator(R4(R5, R6)) = 12", Action("Calculator", "R4(R5, R6)", ("R7",), "12")),
    ("R3 = SetEquation(x + 2 = 5) = x + 2 = 5", Action("SetEquation", "x + 2 = 5", ("R3",), "x + 2 = 5")),
    ('Code(print("search button"))', Action("Code", 'print("search button")')),
    ('QA("from", "New York")', Action("QA", '"from", "New York"')),
    ('Code(print("smile :)"))', Action("Code", 'print("smile :)")')),
    ("Output = Calculator((1 + 2) * (3 + 4))", Action("Calculator", "(1 + 2) * (3 + 4)", ("Output",))),
    ("R1 = QA([R2], Question: Who wrote 'It'?) = Stephen King",
     Action("QA", "[R2], Question: Who wrote 'It'?", ("R1",), "Stephen King")),
])
def test_parse_action_shapes(text, expected):
    action = parse_action(text)
    assert action == expected
    assert action.render() == text


@pytest.mark.parametrize("text, fragment", [
    ("R1 = Calculator(1 + (2)", "unbalanced"),
    ("R1 = (1 + 2)", "tool call"),
    ("R1 = Calculator(1) extra", "after the tool call"),
    ("x = Calculator(1)", "tool call"),
    ("R1 = Calculator(1) =x", "after the tool call"),
    ("R1 = Calculator(1) = ", "whitespace"),
    ("", "empty"),
])
def test_parse_action_errors_are_typed_and_quote_the_text(text, fragment):
    with pytest.raises(FormatError) as info:
        parse_action(text)
    assert fragment in str(info.value)


def test_plan_errors_name_the_line():
    bad = "Subgoal 1: Add.\nAction 1-1: R1 = Calculator(1 + 1) = 2\n\nSubgoal 3: Skip.\nAction 3-1: R2 = Calculator(2) = 2"
    with pytest.raises(FormatError) as info:
        parse_plan(bad)
    assert info.value.line_no == 4 and "expected 2" in str(info.value)

    with pytest.raises(FormatError) as info:
        parse_plan("Subgoal 1: Add.\nAction 1-1: R1 = Calculator(1 + 1) = 2\nSome chatter")
    assert info.value.line_no == 3 and "neither a subgoal nor an action" in str(info.value)

    with pytest.raises(FormatError, match="no action"):
        parse_plan("Subgoal 1: Think.\n\nSubgoal 2: Add.\nAction 2-1: R1 = Calculator(1) = 1")
    with pytest.raises(FormatError, match="action numbered 1-2"):
        parse_plan("Subgoal 1: Add.\nAction 1-2: R1 = Calculator(1) = 1")
    with pytest.raises(FormatError, match="no subgoal"):
        parse_plan("   \n")


def test_grounding_answer_split_respects_parentheses_and_quotes():
    text = 'R1 = Calculator(16 - 3 - 4); R2 = Code(def f(a, b): return a; b); R3 = Code(print("q; x", "a; b"))'
    actions = parse_actions(text)
    assert [a.tool for a in actions] == ["Calculator", "Code", "Code"]
    assert actions[1].args == "def f(a, b): return a; b"
    assert render_actions(actions) == text


def test_number_outputs_turns_output_into_next_variable():
    plan = number_outputs(parse_plan(JANET))
    assert plan.subgoals[1].actions[0].outputs == ("R2",)
    multi = parse_plan("Subgoal 1: Solve.\nAction 1-1: R5, R6 = SolveEquation(R2) = 3, 4\n"
                       "Action 1-2: Output = Calculator(R5 + R6) = 7")
    assert number_outputs(multi).subgoals[0].actions[1].outputs == ("R7",)
    assert variables_used("R12 + R3 * (R12)") == [12, 3, 12]


# --------------------------------------------------------------------------- property-based

_plain = st.text(alphabet=string.ascii_letters + string.digits + " +-*/.,'?$%", min_size=1, max_size=30)
_args = st.recursive(_plain, lambda inner: st.tuples(inner, inner).map(lambda p: f"{p[0]}({p[1]})"), max_leaves=4)
_tool = st.sampled_from(["Calculator", "SetEquation", "SolveEquation", "KnowledgeQuery", "QA", "Code", "CLICK"])
_result = st.text(alphabet=string.ascii_letters + string.digits + " =.,-", min_size=1, max_size=20).map(str.strip).filter(bool)


@st.composite
def plans(draw) -> Plan:
    counter = 0
    subgoals = []
    for _ in range(draw(st.integers(1, 5))):
        actions = []
        for _ in range(draw(st.integers(1, 3))):
            width = draw(st.integers(0, 2))
            outputs = []
            for _ in range(width):
                counter += 1
                outputs.append(f"R{counter}")
            if outputs and draw(st.booleans()) and width == 1:
                outputs = ["Output"]
            args = draw(_args).strip() or "0"
            result = draw(st.one_of(st.none(), _result)) if outputs else None
            actions.append(Action(draw(_tool), args, tuple(outputs), result))
        text = draw(st.text(alphabet=string.ascii_letters + " ,.'", min_size=1, max_size=40)).strip() or "Go."
        subgoals.append(Subgoal(text, tuple(actions)))
    return Plan(tuple(subgoals))


@settings(max_examples=300, deadline=None)
@given(plans())
def test_generated_plans_round_trip_exactly(plan):
    text = render_plan(plan)
    assert parse_plan(text) == plan
    assert render_plan(parse_plan(text)) == text


@settings(max_examples=300, deadline=None)
@given(plans())
def test_generated_grounding_answers_round_trip(plan):
    actions = [a.without_result() for a in plan.actions]
    text = render_actions(actions)
    assert parse_actions(text) == actions


def _mangle(text: str, rng: random.Random) -> str:
    chars = list(text)
    for _ in range(rng.randint(1, 6)):
        op = rng.random()
        pos = rng.randrange(len(chars) + 1)
        if op < 0.4 and chars:
            del chars[min(pos, len(chars) - 1)]
        elif op < 0.8:
            chars.insert(pos, rng.choice("()\"=;:,\n R1-Subgoal Action" + string.printable))
        else:
            chars[pos:pos] = list(rng.choice(["Subgoal 2: ", "Action 1-1: ", " = ", "((", "))", "\n\n", '"']))
    return "".join(chars)


def test_fuzz_ten_thousand_strings_raise_only_format_error():
    rng = random.Random(1234)
    seeds = [JANET, 'Subgoal 1: Go.\nAction 1-1: R1 = Code(print("a (b)"))', "R1 = Calculator(R4(R5, R6)); R2 = QA(x)"]
    parsed = 0
    for i in range(10_000):
        if i % 3 == 0:
            text = "".join(rng.choice(string.printable) for _ in range(rng.randint(0, 80)))
        else:
            text = _mangle(rng.choice(seeds), rng)
        for parse in (parse_plan, parse_actions):
            try:
                result = parse(text)
            except FormatError:
                continue
            parsed += 1
            rendered = render_plan(result) if isinstance(result, Plan) else render_actions(result, with_result=True)
            assert parse(rendered) == result  # whatever parses renders back to the same structure
    assert parsed > 100  # the fuzzer also produced valid inputs, not only garbage
