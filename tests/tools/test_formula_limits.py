"""The formula limit is MAX_FORMULA characters as written, in every layer of the maths tools.

The fast arithmetic path once read at most 4,000 characters (of normalised text) and walked a sum
one recursive call per operator, so results the tools themselves produce could not be added
together, and a flat sum of 1,000 terms was "nested too deeply".
"""

import time

import pytest

from lumos.format import parse_action
from lumos.tools.base import ToolError
from lumos.tools.engines.arithmetic import MAX_BITS, evaluate_arithmetic
from lumos.tools.engines.numbers import MAX_FORMULA, normalize_arithmetic
from lumos.tools.qa import qa_toolbox


@pytest.fixture(scope="module")
def qa():
    with qa_toolbox() as toolbox:
        yield toolbox


@pytest.fixture(params=["maths", "complex_qa"])
def toolbox(request, maths, qa):
    return {"maths": maths, "complex_qa": qa}[request.param]


def run(toolbox, lines, variables=None):
    variables = {} if variables is None else variables
    return [toolbox.execute(parse_action(line), variables) for line in lines]


def test_results_the_tools_wrote_can_be_added_together(toolbox):
    first, total = run(toolbox, ["R1 = Calculator(7^3000)", "R2 = Calculator(R1 + R1)"])
    assert len(first) == 2536 and total == str(2 * 7**3000)  # 5,075 characters once substituted


@pytest.mark.parametrize("terms", [1000, 2500])
def test_a_long_flat_sum_is_not_nested(toolbox, terms):
    (total,) = run(toolbox, ["R1 = Calculator(" + "+".join(["1"] * terms) + ")"])
    assert total == str(terms)


def test_a_long_chain_keeps_precedence_and_order():
    text = "+".join(["1"] * 1500) + " - 2 * 3 + 4 * 5 - 6 / 3 - 2 ** 3 ** 2 + 7 % 4 - 10 // 3"
    assert evaluate_arithmetic(text) == 1500 - 6 + 20 - 2 - 512 + 3 - 3
    assert evaluate_arithmetic("100 - 1 - 2 - 3") == 94 and evaluate_arithmetic("64 / 4 / 2") == 8


@pytest.mark.parametrize("written, value", [
    ("+".join(["½"] * 2000), "1000"),             # 3,999 characters, 11,999 once normalised
    ("+".join(["5%"] * 2500), "125"),             # 7,499 characters, 19,999 once normalised
], ids=["halves", "percentages"])
def test_the_limit_is_on_the_formula_as_written(toolbox, written, value):
    assert len(written) <= MAX_FORMULA < len(normalize_arithmetic(written))
    assert run(toolbox, [f"R1 = Calculator({written})"]) == [value]


@pytest.mark.parametrize("text", ["1" * 3012, "2 + " + "9" * 5000, "1" * 3012 + ".5"],
                         ids=["3012 digits", "5000 digits", "3012 digits and a decimal"])
def test_integers_written_past_the_size_bound_are_refused_at_once(text):
    start = time.monotonic()
    with pytest.raises(ToolError, match=f"more than {MAX_BITS} bits"):
        evaluate_arithmetic(text)
    assert time.monotonic() - start < 0.05


def test_numbers_within_the_size_bound_are_read():
    assert evaluate_arithmetic("1" * 3011 + " - " + "1" * 3011) == 0
    assert evaluate_arithmetic("0." + "0" * 5000) == 0


def test_longer_formulas_still_end_with_a_clear_error(toolbox):
    with pytest.raises(ToolError, match="longer than the limit"):
        run(toolbox, ["R2 = Calculator(R1 + R1 + R1 + R1 + R1)"], {"R1": "1" * 2500})
    with pytest.raises(ToolError, match="nested too deeply|longer than"):
        run(toolbox, ["R1 = Calculator(" + "-" * 5000 + "1)"])
