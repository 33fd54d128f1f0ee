"""Complex QA's Calculator and Code are the maths toolbox's: the same limits, the same errors, the same values.

Each hostile input runs through both toolboxes and must end there with the same kind of
:class:`ToolError`, in about two seconds (a 1 s deadline, plus starting or stopping a process) and
without the calling process building a large string.
"""

import time
import tracemalloc

import pytest

from lumos.format import parse_action
from lumos.tools.base import ToolError
from lumos.tools.engines.numbers import MAX_FORMULA
from lumos.tools.qa import qa_toolbox

SECONDS = 2.5
CALLER_MB = 16  # CHAIN once built 148 MB (a long number) or 297 MB (a long text) in complex QA
CHAIN = "R2 = Calculator(" + "+".join(["R1"] * 1500) + ")"  # 4,499 characters of argument
LONG_NUMBER = {"R1": "1" * 99_000}
LONG_TEXT = {"R1": "y" * 99_000}  # e.g. a retrieved paragraph

KINDS = {  # words of the message that say which limit stopped the action
    "time": ("time limit",),
    "size": ("longer than the limit", "formula longer than"),
    "nesting": ("nested too deeply", "levels deep"),
    "memory": ("memory limit",),
    "magnitude": ("exceeds the limit", "bits", "too large"),
}

HOSTILE = {
    # name: (action, earlier results, kinds it may end with)
    "substitution chain of a long number": (CHAIN, LONG_NUMBER, {"size"}),
    "substitution chain of a long text": (CHAIN, LONG_TEXT, {"size"}),
    "results called inside each other": ("R1 = Calculator(" + "R2(" * 200 + "1" + ")" * 200 + ")",
                                         {"R2": "def f(v): return v"}, {"nesting"}),
    "deeply nested parentheses": ("R1 = Calculator(" + "(" * 1900 + "1" + ")" * 1900 + ")", {}, {"size"}),
    "deeply nested sums": ("R1 = Calculator(" + "1+(" * 600 + "1" + ")" * 600 + ")", {}, {"size", "nesting"}),
    "deeply nested signs": ("R1 = Calculator(" + "-" * 3000 + "1)", {}, {"size"}),
    "a tower of powers": ("R1 = Calculator(" + "^".join(["9"] * 1000) + ")", {}, {"size", "nesting", "magnitude"}),
    "a short tower of powers": ("R1 = Calculator(9^9^9)", {}, {"magnitude"}),
    "code that never ends": ("R1 = Code(while True: pass)", {}, {"time"}),
    "an expression that never ends": ("R1 = Code(sum(1 for _ in iter(int, 1)))", {}, {"time"}),
    "code that allocates 10 GB": ("R1 = Code(len(bytearray(10**10)))", {}, {"memory"}),
    "code that builds a 4 GB string": ("R1 = Code(len('a' * 4 * 10**9))", {}, {"memory"}),
}


@pytest.fixture(scope="module")
def qa():
    with qa_toolbox() as toolbox:
        toolbox.execute(parse_action("R9 = Calculator(x + 1)"), {})  # a warm symbolic worker
        yield toolbox


@pytest.fixture(scope="module")
def both(qa, maths):
    maths.execute(parse_action("R9 = Calculator(x + 1)"), {})
    return {"complex_qa": qa, "maths": maths}


def refusal(toolbox, line, variables):
    """``(message, seconds, peak MB of the caller's allocations)`` of an action that must fail."""
    action = parse_action(line)
    tracemalloc.start()
    start = time.monotonic()
    try:
        with pytest.raises(ToolError) as caught:
            toolbox.execute(action, dict(variables))
        seconds = time.monotonic() - start
        peak = tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()
    return str(caught.value), seconds, peak


def kind(message):
    kinds = [name for name, words in KINDS.items() if any(word in message for word in words)]
    assert len(kinds) == 1, message
    return kinds[0]


@pytest.mark.parametrize("case", list(HOSTILE), ids=list(HOSTILE))
def test_hostile_inputs_end_alike_in_complex_qa_and_maths(both, case):
    line, variables, expected = HOSTILE[case]
    kinds = {}
    for domain, toolbox in both.items():
        message, seconds, peak = refusal(toolbox, line, variables)
        assert message.startswith(f"{parse_action(line).tool}(")
        assert seconds < SECONDS, f"{domain}: {seconds:.2f} s: {message[-200:]}"
        assert peak < CALLER_MB, f"{domain}: {peak:.0f} MB: {message[-200:]}"
        kinds[domain] = kind(message)
    assert set(kinds.values()) <= expected, kinds
    if len(expected) == 1:
        assert kinds["complex_qa"] == kinds["maths"]


@pytest.mark.parametrize("variables", [LONG_NUMBER, LONG_TEXT], ids=["number", "text"])
def test_substitution_stops_at_the_formula_limit(both, variables):
    for domain, toolbox in both.items():
        message, seconds, peak = refusal(toolbox, CHAIN, variables)
        assert kind(message) == "size", f"{domain}: {message[-200:]}"
        assert seconds < 0.5 and peak < 4 * MAX_FORMULA / 2**20 + 1, f"{domain}: {seconds:.2f} s, {peak:.1f} MB"


def test_a_refused_call_leaves_the_next_one_alone(qa):
    """Each call has its own deadline and the sandbox and worker come back after a stopped call."""
    for line, variables, _ in (HOSTILE["code that never ends"], HOSTILE["substitution chain of a long text"]):
        refusal(qa, line, variables)
        assert qa.execute(parse_action("R2 = Calculator(R1 * 2)"), {"R1": "21"}) == "42"
        assert qa.execute(parse_action("R2 = Code(R1 * 2)"), {"R1": "21"}) == "42"
        assert qa.execute(parse_action("R2 = Calculator(R1 * 2)"), {"R1": "x"}) == "2*x"


ORDINARY = [
    ("R4 = Calculator(R2 - R3)", {"R2": "1961", "R3": "1939"}, "22"),
    ("R4 = Calculator(R1 + R2)", {"R1": "4,500", "R2": "1,200"}, "5700"),
    ("R4 = Calculator(R1 > 6)", {"R1": "7"}, "True"),
    ("R9 = Calculator(R7 < R8)", {"R7": "1887", "R8": "1879"}, "False"),
    ("R5 = Calculator(R4/20 * 100%)", {"R4": "5"}, "0.25"),
    ("R1 = Calculator(200*40*.01)", {}, "80"),
    ("R1 = Calculator(60/100*5)", {}, "3"),
    ("R1 = Calculator(80000*1.5)", {}, "120000"),
    ("R1 = Calculator(1 / 3)", {}, "0.333333"),
    ("R2 = Calculator(R1 / 1000)", {"R1": "$1,200"}, "1.2"),
    ("R2 = Calculator(R1 * 2)", {"R1": "x + 1"}, "2*x + 2"),
    ("R2 = Calculator(R1 * 2)", {"R1": "x + 1 = 3"}, "2*x + 2 = 6"),
    ("R2 = Calculator(R1(2))", {"R1": "def f(v): return v + 1"}, "3"),
    ("R1 = Calculator(1 / 0)", {}, "Calculator(1 / 0): division by zero"),
    ("R9 = Code(If R8 > 0, R8, -R8)", {"R8": "-64"}, "64"),
    ("R2 = Code(len(R1))", {"R1": "Paris is a city"}, "15"),
    ("R2 = Code(R1.upper())", {"R1": "Paris"}, "PARIS"),
    ("R1 = Code(def f(v): return v + 1)", {}, "def f(v): return v + 1"),
    ("R2 = Code(sum([1.5, 2.25]))", {}, "3.75"),
    ("R2 = Code(import os)", {}, "Code(import os): the code produced no value and printed nothing"),
]


@pytest.mark.parametrize("line, variables, expected", ORDINARY, ids=[line for line, _, _ in ORDINARY])
def test_ordinary_calls_give_what_they_gave_and_what_maths_gives(both, line, variables, expected):
    answers = {}
    for domain, toolbox in both.items():
        stored = dict(variables)
        try:
            answers[domain] = toolbox.execute(parse_action(line), stored)
            assert stored[parse_action(line).outputs[0]] == answers[domain]
        except ToolError as error:
            answers[domain] = str(error)
    assert answers == {"complex_qa": expected, "maths": expected}
