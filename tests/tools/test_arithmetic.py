from fractions import Fraction

import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

from lumos.tools.engines.arithmetic import NotArithmetic, evaluate_arithmetic
from lumos.tools.base import ToolError


@pytest.mark.parametrize("text, expected", [
    ("16 - 3 - 4", 9), ("0.2*50", 10), ("28 * 1/7", 4), ("2 - .5", Fraction(3, 2)), ("7 // 2", 3), ("7 % 3", 1),
    ("2**10", 1024), ("2**-2", Fraction(1, 4)), ("16**0.5", 4), ("(8/27)**(1/3)", Fraction(2, 3)), ("-(3)", -3),
    ("0.1 + 0.2", Fraction(3, 10)), ("round(2.5)", 3), ("round(3.14159, 2)", Fraction(314, 100)),
    ("max(3, 7, 5)", 7), ("abs(-4)", 4), ("sqrt(144)", 12), ("floor(2.7)", 2), ("ceil(2.1)", 3),
])
def test_exact_arithmetic(text, expected):
    assert evaluate_arithmetic(text) == expected


def test_irrational_results_are_floats():
    assert evaluate_arithmetic("2**0.5") == pytest.approx(2 ** 0.5)


@pytest.mark.parametrize("text", ["2x + 3", "x + 1", "3(4)", "sin(1)", "a == b", "[1, 2]", "'s' * 3",
                                  "(-8)**(1/3)", "__import__('os')", "f(1)"])
def test_what_is_not_plain_arithmetic_goes_elsewhere(text):
    with pytest.raises(NotArithmetic):
        evaluate_arithmetic(text)


@pytest.mark.parametrize("text", ["9**9**9**9", "10**10**10", "2**100000", "(10**3000)*(10**3000)*(10**3000)",
                                  "1/0", "5 % 0", "0**-1", "1e4000", "10.0**4000", "1" * 5000])
def test_too_large_or_undefined_is_refused_at_once(text):
    with pytest.raises(ToolError):
        evaluate_arithmetic(text)


# -------------------------------------------------------------------- agreement with sympy

_OPERATORS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": lambda a, b: a / b}


@st.composite
def formulas(draw, depth=3):
    """A random small formula as text, with its value computed by sympy objects (not by parsing)."""
    if depth == 0 or draw(st.booleans()):
        if draw(st.booleans()):
            number = draw(st.integers(min_value=0, max_value=10_000))
            return str(number), sympy.Integer(number)
        whole, cents = draw(st.integers(0, 999)), draw(st.integers(0, 99))
        return f"{whole}.{cents:02d}", sympy.Rational(whole * 100 + cents, 100)
    op = draw(st.sampled_from([*_OPERATORS, "**"]))
    left_text, left = draw(formulas(depth=depth - 1))
    if op == "**":
        exponent = draw(st.integers(min_value=0, max_value=4))
        return f"({left_text})**{exponent}", left ** exponent
    right_text, right = draw(formulas(depth=depth - 1))
    if op == "/" and right == 0:
        right_text, right = f"({right_text} + 1)", right + 1
    return f"({left_text}) {op} ({right_text})", _OPERATORS[op](left, right)


@settings(max_examples=300, deadline=None)
@given(formulas())
def test_fast_path_agrees_with_sympy(formula):
    text, expected = formula
    value = evaluate_arithmetic(text)
    assert isinstance(value, Fraction)
    assert sympy.Rational(value.numerator, value.denominator) == expected
