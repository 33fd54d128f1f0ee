"""Metric functions on hand-made cases, normalisation traps included."""

import pytest

from lumos.metrics import exact_match, extract_number, f1_score, normalize_answer, numeric_accuracy, to_yes_no, \
    yes_no_accuracy


@pytest.mark.parametrize("prediction", ["18", "18.0", "$18", "18.00", " 18 ", "$18.", "The answer is 18 dollars"])
def test_numeric_equal_forms(prediction):
    assert numeric_accuracy(prediction, "18") == 1.0


@pytest.mark.parametrize("prediction,gold", [("1,200", "1200"), ("0.5", "1/2"), ("51", 51.0), ("-3", "-3")])
def test_numeric_cross_format(prediction, gold):
    assert numeric_accuracy(prediction, gold) == 1.0


@pytest.mark.parametrize("prediction", ["180", "1.8", "", None, "eighteen", "No answer", "x + 18 = 36"])
def test_numeric_rejects(prediction):
    # "x + 18 = 36": the last number is 36, not the answer
    assert numeric_accuracy(prediction, "18") == 0.0


def test_extract_number_takes_last_number_of_a_sentence():
    assert extract_number("She pays $1,200 after 3 weeks") == "3"
    assert extract_number("12.5") == "12.5"
    assert extract_number("none") is None


def test_normalisation_traps():
    assert normalize_answer("The  Beatles!") == "beatles"
    assert normalize_answer("An apple, a day") == "apple day"
    assert normalize_answer("Theatre") == "theatre"  # 'the' only as a whole word
    assert exact_match("the United States.", "United States") == 1.0
    assert exact_match("U.S.", "US") == 1.0  # punctuation removed, not replaced by spaces
    assert exact_match("United States of America", "United States") == 0.0


def test_f1_partial_and_yes_no_rule():
    assert f1_score("United States of America", "United States") == pytest.approx(2 * (2 / 4) * 1 / (2 / 4 + 1))
    assert f1_score("yes indeed", "yes") == 0.0  # yes/no must match exactly (official rule)
    assert f1_score("no", "no") == 1.0
    assert f1_score("", "Paris") == 0.0


@pytest.mark.parametrize("value,expected", [(True, True), (False, False), ("yes", True), ("Yes.", True),
                                            ("TRUE", True), ("false", False), ("No, because", False),
                                            ("maybe", None), ("No answer", None), ("", None), (None, None)])
def test_yes_no_normalisation(value, expected):
    assert to_yes_no(value) is expected


def test_yes_no_accuracy():
    assert yes_no_accuracy("Yes", True) == 1.0
    assert yes_no_accuracy("no.", False) == 1.0
    assert yes_no_accuracy("yes", False) == 0.0
    assert yes_no_accuracy("No answer", False) == 0.0  # the QA tool's refusal is not a "no"
    assert yes_no_accuracy("unclear", False) == 0.0
