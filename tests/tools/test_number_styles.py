"""Number styles of the maths tools: ``plain`` (the default) and ``wolfram`` (``--prompt_style original``).

The ``wolfram`` forms are those of the original's in-context maths examples (its WolframAlpha results:
``1 - 2/5`` = ``3/5``, ``2 - 0.5`` = ``1.5``, ``1 - 25%`` = ``0.75``, ``R4(R5, R6)`` = ``123/40``).
"""

from fractions import Fraction

import pytest

from lumos.format import parse_action
from lumos.tools.engines.numbers import (NUMBER_STYLES, format_in_style, format_number, format_wolfram,
                                         is_approximate)
from lumos.tools.maths import maths_toolbox


@pytest.mark.parametrize("value, text", [
    (Fraction(3, 5), "3/5"), (Fraction(2, 3), "2/3"), (Fraction(123, 40), "123/40"), (Fraction(6, 10), "3/5"),
    (Fraction(-7, 2), "-7/2"), (Fraction(-9, 8), "-9/8"), (Fraction(7, -2), "-7/2"),
    (Fraction(18), "18"), (18, "18"), (Fraction(-4), "-4"), (0, "0"), (Fraction(10) ** 30, "1" + "0" * 30),
    (Fraction(10 ** 30 + 1, 3), "1" + "0" * 29 + "1/3"),
])
def test_exact_values_are_integers_or_reduced_fractions(value, text):
    assert format_wolfram(value) == text


@pytest.mark.parametrize("value, text", [
    (Fraction(3, 2), "1.5"), (Fraction(3, 4), "0.75"), (Fraction(5, 6), "0.833333"), (Fraction(201, 14), "14.3571"),
    (Fraction(-1, 3), "-0.333333"), (Fraction(1, 30_000_000), "0.0000000333333"), (Fraction(45), "45"),
    (Fraction(1234565, 10**7), "0.123457"),  # half up
    (Fraction(9999995, 100), "100000"), (Fraction(2469135, 2), "1234568"),  # integer digits are kept
    (Fraction(10**20 + 1, 2), "50000000000000000001"),  # .5 half up
])
def test_approximate_values_have_six_significant_digits(value, text):
    assert format_wolfram(value, approximate=True) == text


def test_floats_are_approximate():
    assert format_wolfram(2 ** 0.5) == "1.41421"
    assert format_wolfram(45.0) == "45"
    with pytest.raises(ValueError):
        format_wolfram(float("inf"))


@pytest.mark.parametrize("value", [Fraction(3, 5), Fraction(2, 3), Fraction(-7, 2), Fraction(18), 0.1 + 0.2,
                                   Fraction(1, 30_000_000), Fraction(10**20 + 1, 2)])
@pytest.mark.parametrize("approximate", [False, True])
def test_plain_style_is_format_number(value, approximate):
    assert format_in_style(value, "plain", approximate) == format_number(value)
    assert format_in_style(value, "wolfram", approximate) == format_wolfram(value, approximate)


def test_unknown_style_is_refused():
    assert NUMBER_STYLES == ("plain", "wolfram")
    with pytest.raises(ValueError, match="unknown number style"):
        format_in_style(Fraction(1, 2), "latex")
    with pytest.raises(ValueError, match="unknown number style"):
        maths_toolbox(number_style="latex")


@pytest.mark.parametrize("formula, approximate", [
    ("2 - 0.5", True), ("1 - 25%", True), ("(60) * (0.75)", True), (".5 * 4", True), ("3. + 1", True),
    ("1 - 2/5", False), ("75 * (2/3)", False), ("x + 1 = 3", False), ("R1 . R2", False),
])
def test_a_decimal_point_or_a_percentage_makes_a_formula_approximate(formula, approximate):
    assert is_approximate(formula) is approximate


@pytest.fixture(scope="module")
def wolfram():
    with maths_toolbox(timeout=1.0, number_style="wolfram") as toolbox:
        yield toolbox


def run(toolbox, lines):
    variables: dict[str, str] = {}
    return [toolbox.execute(parse_action(line), variables) for line in lines], variables


def test_the_originals_fraction_example(wolfram):
    results, _ = run(wolfram, ["R1 = Calculator(1 - 2/5)", "R2 = Calculator(100 * R1)", "R3 = Calculator(1 - 1/3)",
                               "R4 = Calculator(75 * R3)", "R5 = SolveEquation(R2 + R4)"])
    assert results == ["3/5", "60", "2/3", "50", "110"]


def test_the_originals_decimal_examples(wolfram):
    assert run(wolfram, ["R1 = Calculator(2 - 0.5)", "R2 = Calculator(R1 / 0.25)"])[0] == ["1.5", "6"]
    assert run(wolfram, ["R1 = Calculator(15 / 25%)", "R2 = Calculator(1 - 25%)",
                         "R3 = Calculator(R1 * R2)"])[0] == ["60", "0.75", "45"]


def test_the_originals_symbolic_example_gives_its_fractions(wolfram):
    results, variables = run(wolfram, [
        "R1 = Calculator((x-y) - (x+y))", "R2 = Calculator((x+y) + 2*R1)", "R3 = Calculator((x+y) + 3*R1)",
        "R4 = Calculator((x+y) + 4*R1)", "R5, R6 = SolveEquation(R2=xy, R3=x/y)", "R7 = Calculator(R4(R5, R6))"])
    assert (variables["R5"], variables["R6"]) == ("-9/8", "-3/5")
    assert results[-1] == "123/40"


@pytest.mark.parametrize("lines, expected", [
    (["R1 = Calculator(1/3)", "R2 = Calculator(R1 * 3)"], "1"),  # not 0.999999
    (["R1 = Calculator(2/7)", "R2 = Calculator(R1 * R1 * 49)"], "4"),
    (["R1 = Calculator(-7/2)", "R2 = Calculator(R1^2 * 4)"], "49"),
    (["R1 = SolveEquation(3*x = 1)", "R2 = Calculator(R1 * 6)"], "2"),
    (["R1 = Define(1/3)", "R2 = Calculator(R1 + 2/3)"], "1"),
    (["R1 = Calculator(2/3)", "R2 = Code(R1 * 3)"], "2"),  # the sandbox gets a float, 2.0 is written 2
    (["R1 = Calculator(2/3)", "R2 = Calculator(R1 * 1.5)"], "1"),
    (["R1 = Calculator(1/3)", "R2 = Calculator(R1 * 0.5)"], "0.166667"),  # a decimal: approximate from here
])
def test_exact_values_stay_exact_through_results(wolfram, lines, expected):
    assert run(wolfram, lines)[0][-1] == expected


@pytest.mark.parametrize("line, expected", [
    ("R1 = Calculator(-7/2)", "-7/2"), ("R1 = Calculator(2^100 / 3)", f"{2 ** 100}/3"),
    ("R1 = Calculator(2^100)", str(2 ** 100)), ("R1 = SolveEquation(2*x = 5)", "5/2"),
    ("R1 = SolveEquation(x/3 = 0.5)", "1.5"), ("R1 = Define(2/4)", "1/2"), ("R1 = Define(0.5)", "0.5"),
    ("R1 = Calculator(sqrt(2))", "1.41421"), ("R1 = Calculator(2**0.5)", "1.41421"),
    ("R1 = Calculator(10/7 * 10.05)", "14.3571"), ("R1 = Calculator(x/3 + x/6)", "x/2"),
    ("R1 = SolveInequality(2*x > 5)", "x > 5/2"), ("R1 = Calculator(1/3 * 1.0)", "0.333333"),
    ("R1 = Count(1, 2, ..., 9)", "9"),
])
def test_wolfram_style_of_each_tool(wolfram, line, expected):
    assert wolfram.execute(parse_action(line), {}) == expected


def test_plain_style_is_the_default_and_unchanged(maths):
    results, _ = run(maths, ["R1 = Calculator(1 - 2/5)", "R2 = Calculator(1 - 1/3)", "R3 = Calculator(75 * R2)",
                             "R4 = SolveEquation(2*x = 5)", "R5 = Calculator(-7/2)", "R6 = Calculator(sqrt(2))",
                             "R7 = SolveInequality(2*x > 5)"])
    assert results == ["0.6", "0.666667", "50.000025", "2.5", "-3.5", "1.414214", "x > 2.5"]
