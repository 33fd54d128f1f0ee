"""Rule-based web plans from Mind2Web traces: the real samples and hand-made edge cases."""

from __future__ import annotations

import json
import re

import pytest

from lumos.convert.rules_web import WebReprError, action_step, parse_action_repr, step_action, web_plan
from lumos.convert.validate import validate_web
from lumos.format import parse_plan, render_plan


def test_plan_text_and_actions_in_the_released_format():
    plan = web_plan(["[textbox]  From -> TYPE: New York", "[button]  Search -> CLICK",
                     "[combobox]  Reservation type -> SELECT: Dine-in", "[svg]   -> CLICK"])
    assert render_plan(plan) == (
        "Subgoal 1: Type New York into the From field.\n"
        "Action 1-1: R1 = TYPE(Env, QUERY: Type New York into the From field, TEXT: New York)\n\n"
        "Subgoal 2: Click the Search button.\n"
        "Action 2-1: R2 = CLICK(R1, QUERY: Click the Search button)\n\n"
        "Subgoal 3: Select Dine-in in the Reservation type dropdown.\n"
        "Action 3-1: R3 = SELECT(R2, QUERY: Select Dine-in in the Reservation type dropdown, TEXT: Dine-in)\n\n"
        "Subgoal 4: Click the svg icon.\n"
        "Action 4-1: R4 = CLICK(R3, QUERY: Click the svg icon)")
    assert all(a.result is None for a in plan.actions)


def test_typing_then_picking_the_suggestion_is_one_subgoal():
    plan = web_plan(["[searchbox]  Find a location -> TYPE: Boston, NY", "[span]  Boston, NY -> CLICK",
                     "[span]  Boston -> CLICK"])
    assert [len(s.actions) for s in plan.subgoals] == [2, 1]
    assert plan.subgoals[0].text == ("Type Boston, NY into the Find a location search box "
                                     "and choose the Boston, NY suggestion.")
    assert [a.render() for a in plan.subgoals[0].actions] == [
        "R1 = TYPE(Env, QUERY: Type Boston, NY into the Find a location search box, TEXT: Boston, NY)",
        "R2 = CLICK(R1, QUERY: Choose the Boston, NY suggestion)"]


def test_quotes_parentheses_and_hover():
    step = parse_action_repr('[textbox]  Search "deals" (... -> TYPE: 27 inch (4K)')
    action = step_action(step, 3)
    # the query sentence drops the unmatched '(' and writes '"' as "'"; the value is kept as it is
    assert action.render() == ("R3 = TYPE(R2, QUERY: Type 27 inch (4K) into the Search 'deals' ... field, "
                               "TEXT: 27 inch (4K))")
    reparsed = parse_plan("Subgoal 1: Type.\nAction 1-1: " + action.render()).actions[0]
    assert action_step(reparsed) == ("TYPE", "Type 27 inch (4K) into the Search 'deals' ... field", "27 inch (4K)")
    assert parse_action_repr("[link]  MMA -> HOVER").operation == "CLICK"
    with pytest.raises(WebReprError, match="does not fit the action format"):
        web_plan(['[textbox]  Size -> TYPE: 27" monitor'])


@pytest.mark.parametrize("text", ["Search -> CLICK", "[button] Go -> SCROLL", "[textbox] From -> TYPE",
                                  "[button] Go -> CLICK: now"])
def test_malformed_reprs_raise(text):
    with pytest.raises(WebReprError):
        parse_action_repr(text)
    with pytest.raises(WebReprError):
        web_plan(["[button]  Search -> CLICK", text])


def _check(reprs):
    plan = web_plan(reprs)
    text = render_plan(plan)
    assert parse_plan(text) == plan
    assert validate_web(text, reprs) == []
    assert [action_step(a)[0] for a in plan.actions] == [parse_action_repr(r).operation for r in reprs]


@pytest.mark.shared_data
def test_mind2web_train_sample(shared_data):
    records = json.loads((shared_data / "mind2web" / "mind2web_train_sample5.openbrowser.json").read_text())
    for record in records:
        _check(record["action_reprs"])
    first = web_plan(records[0]["action_reprs"])
    assert first.actions[0].render() == ("R1 = SELECT(Env, QUERY: Select Dine-in in the Reservation type dropdown, "
                                         "TEXT: Dine-in)")


@pytest.mark.shared_data
def test_mind2web_action_level_histories(shared_data):
    """The action-level file embeds each task's earlier action_reprs in its prompt text."""
    data = json.loads((shared_data / "mind2web" / "mind2web_train_n100_actionlevel.skillgen.json").read_text())
    histories = 0
    for instance in data["instances"]:
        block = re.search(r"Previous actions \(already executed\):\n(.*?)\n\n", instance["input"], re.S).group(1)
        reprs = [re.sub(r"^\s*\d+\. ", "", line) for line in block.split("\n")]
        if reprs == ["  (first step)"]:
            continue
        _check(reprs)
        histories += 1
    assert histories == 85
