from fractions import Fraction

import pytest

from lumos.tools.engines.numbers import format_number, normalize_arithmetic, parse_number, same_number


@pytest.mark.parametrize("text, expected", [
    ("18", Fraction(18)), ("18.0", Fraction(18)), ("$18", Fraction(18)), ("-$5", Fraction(-5)),
    ("$1,200", Fraction(1200)), ("1,000.50", Fraction(200100, 200)), ("25%", Fraction(1, 4)),
    ("1/2", Fraction(1, 2)), ("2 1/2", Fraction(5, 2)), ("-3/4", Fraction(-3, 4)), (".5", Fraction(1, 2)),
    ("18.", Fraction(18)), ("1e-3", Fraction(1, 1000)), ("+7", Fraction(7)), ("−4", Fraction(-4)),
    ("½", Fraction(1, 2)), ("2¾", Fraction(11, 4)),
])
def test_parse_number_reads_numbers_as_people_write_them(text, expected):
    assert parse_number(text) == expected


@pytest.mark.parametrize("text", ["", "abc", "x + 1", "1/0", "1,2,3", "5 apples", "..."])
def test_parse_number_refuses_what_is_not_one_number(text):
    assert parse_number(text) is None


def test_parse_number_is_exact_for_decimals():
    assert parse_number("0.1") + parse_number("0.2") == parse_number("0.3")


@pytest.mark.parametrize("value, text", [
    (Fraction(18), "18"), (18.0, "18"), (Fraction(1, 5), "0.2"), (Fraction(1, 3), "0.333333"),
    (Fraction(2, 3), "0.666667"), (Fraction(-2, 3), "-0.666667"), (Fraction(123, 40), "3.075"),
    (Fraction(1, 30_000_000), "0.0000000333333"), (Fraction(10**20 + 1, 2), "50000000000000000000.5"),
    (0.1 + 0.2, "0.3"), (Fraction(-1, 10**9), "-0.000000001"), (Fraction(1, 2 * 10**7), "0.00000005"),
])
def test_format_number_prints_like_a_person(value, text):
    assert format_number(value) == text


def test_format_number_rounds_half_up():
    assert format_number(Fraction(5, 10**7)) == "0.0000005"
    assert format_number(Fraction(10000005, 10**7)) == "1.000001"  # 1.0000005 -> 6 places, half up


@pytest.mark.parametrize("a, b", [("$18", "18.0"), ("18", 18), ("0.33", Fraction(1, 3)), ("33.33", "33.333333"),
                                  ("1,000", "1000"), ("0.5", "1/2"), ("25%", "0.25"), ("3.075", "123/40")])
def test_same_number_accepts_equal_and_rounded_claims(a, b):
    assert same_number(a, b)
    assert same_number(b, a)


@pytest.mark.parametrize("a, b", [("99", "100"), ("18", "18.4"), ("0.3", "0.36"), ("0.33", "0.34"),
                                  ("1", "x"), ("", "0"), ("2", "-2")])
def test_same_number_rejects_different_numbers(a, b):
    assert not same_number(a, b)


@pytest.mark.parametrize("text, expected", [
    ("$1,200 x 25%", "1200 * (25/100)"), ("3 x 4", "3 * 4"), ("3x4", "3*4"), ("6 ÷ 2 × 3", "6 / 2 * 3"),
    ("2^10", "2**10"), ("10 % 3", "10 % 3"), ("50% of 80", "(50/100)* 80"), ("1,000.50 + 1", "1000.50 + 1"),
    ("2x + 3", "2x + 3"), ("x ≥ 2", "x >= 2"), ("(½)*6", "((1/2))*6"), ("1½ + 1", "(1+1/2) + 1"),
    ("50% x 3", "(50/100) * 3"),
])
def test_normalize_arithmetic(text, expected):
    assert normalize_arithmetic(text) == expected
