"""Numbers as people write them: reading ``$1,200``, ``25%``, ``3 x 4``; printing ``18``, ``0.2``.

``parse_number`` reads one number, ``same_number`` compares two (allowing for the rounding a
written claim carries: ``0.33`` stands for 1/3), ``format_number`` prints a result the way a
person writes it (``format_wolfram`` as WolframAlpha writes it, ``format_in_style`` either, by
name: :data:`NUMBER_STYLES`), and ``normalize_arithmetic`` rewrites human notation inside a
formula into Python/sympy operators. Standard library only (and ``ToolError``). Every input is
bounded in length before any regular expression reads it, and no pattern rescans a run of digits.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

from lumos.tools.base import ToolError

# Decimal places kept when printing a non-integer (significant places below 1).
DISPLAY_PLACES = 6
# Significant digits of an approximate value in the ``wolfram`` style.
WOLFRAM_DIGITS = 6
# How results are written: ``plain`` (``format_number``) or ``wolfram`` (``format_wolfram``).
NUMBER_STYLES = ("plain", "wolfram")
# Beyond this decimal exponent a written number is read as a float, not an exact Fraction.
_MAX_EXACT_EXPONENT = 400

_UNICODE_OPERATORS = str.maketrans({"×": "*", "✕": "*", "·": "*", "⋅": "*", "∙": "*", "÷": "/",
                                     "−": "-", "–": "-", "—": "-", "＋": "+", "﹣": "-",
                                     "≤": "<=", "≥": ">=", "≠": "!="})
_CURRENCY = re.compile(r"[$€£¥]")
_VULGAR = {"½": "1/2", "⅓": "1/3", "⅔": "2/3", "¼": "1/4", "¾": "3/4", "⅕": "1/5", "⅖": "2/5", "⅗": "3/5",
           "⅘": "4/5", "⅙": "1/6", "⅚": "5/6", "⅛": "1/8", "⅜": "3/8", "⅝": "5/8", "⅞": "7/8"}
_VULGAR_FRACTION = re.compile(rf"(?<!\d)(\d*)\s*([{''.join(_VULGAR)}])")
_THOUSANDS = re.compile(r"(?<![\d.,])(\d{1,3})((?:,\d{3})+)(?!\d|,\d)")
_NUMBER = r"\d+(?:\.\d*)?|\.\d+"
# Each pattern that starts at a number starts only where a number starts (a lookbehind), so a
# long run of digits is scanned once, not once per digit.
_PERCENT_OF = re.compile(rf"(?<![\d.])({_NUMBER})\s*%\s*of\b")
_PERCENT = re.compile(rf"(?<![\d.])({_NUMBER})\s*%(?!\s*[\w(.$])")
_TIMES_SPACED = re.compile(r"(?<=[\d)%])\s+[xX]\s+(?=[\d(.$])")
_TIMES_TIGHT = re.compile(r"(?<=\d)[xX](?=\d)")
_OF = re.compile(r"(?<=[\d)])\s+of\s+(?=[\d(.$])")

_PLAIN = re.compile(r"[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d*)?(?:[eE][+-]?\d+)?")
_RATIO = re.compile(r"([+-]?(?:\d+(?:\.\d*)?|\.\d+))\s*/\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+))")
_MIXED = re.compile(r"([+-]?)(\d+)\s+(\d+)\s*/\s*(\d+)")


# Characters of formula read at all; longer text is refused before any pattern runs. A formula is
# an action's argument with earlier results substituted in (or a stored result), so it can be far
# longer than the action's text that Toolbox.execute bounds: this is its own bound.
MAX_FORMULA = 10_000


class FormulaTooLong(ToolError, ValueError):
    """A formula longer than :data:`MAX_FORMULA`; refused before any regular expression reads it."""


def normalize_arithmetic(text: str) -> str:
    """Rewrite human notation into operators: ``$1,200 x 25%`` -> ``1200 * (25/100)``."""
    if len(text) > MAX_FORMULA:
        raise FormulaTooLong(f"formula of {len(text)} characters is longer than the limit {MAX_FORMULA}")
    text = text.translate(_UNICODE_OPERATORS).replace("^", "**")
    text = _CURRENCY.sub("", text)
    text = _VULGAR_FRACTION.sub(_vulgar_fraction, text)
    text = _THOUSANDS.sub(lambda m: m.group(1) + m.group(2).replace(",", ""), text)
    text = _TIMES_SPACED.sub(" * ", text)  # first, so "50% x 3" reads as a percentage
    text = _PERCENT_OF.sub(r"(\1/100)*", text)
    text = _PERCENT.sub(r"(\1/100)", text)
    text = _TIMES_TIGHT.sub("*", text)
    text = _OF.sub(" * ", text)
    return text.strip()


def _vulgar_fraction(match: re.Match[str]) -> str:
    """``1½`` -> ``(1+1/2)``; ``½`` -> ``(1/2)``."""
    whole, fraction = match.group(1), _VULGAR[match.group(2)]
    return f"({whole}+{fraction})" if whole else f"({fraction})"


def parse_number(text: object) -> Fraction | float | None:
    """One number as written (``18``, ``$1,200.50``, ``25%``, ``1/2``, ``2 1/2``, ``1e-3``), else None.

    Exact values come back as :class:`Fraction`; only numbers beyond the exact range come back as
    floats. Numbers (int, float, Fraction) pass through.
    """
    if isinstance(text, bool):
        return None
    if isinstance(text, (int, Fraction)):
        return Fraction(text)
    if isinstance(text, float):
        return Fraction(text) if math.isfinite(text) else None
    if not isinstance(text, str) or len(text) > 1000:
        return None
    s = _CURRENCY.sub("", text.strip().translate(_UNICODE_OPERATORS)).replace("\u00a0", " ").strip()
    vulgar = _VULGAR_FRACTION.fullmatch(s)
    if vulgar:
        s = f"{vulgar.group(1)} {_VULGAR[vulgar.group(2)]}".strip()
    if s.startswith("+"):
        s = s[1:]
    if s.endswith(".") and s[:-1].replace(",", "").replace("-", "").isdigit():
        s = s[:-1]  # "18." at the end of a sentence
    percent = s.endswith("%")
    if percent:
        s = s[:-1].rstrip()
    value = _parse_unsigned_forms(s)
    if value is None:
        return None
    if percent:
        value = value / 100
    return value


def _parse_unsigned_forms(s: str) -> Fraction | float | None:
    if not s or len(s) > 400:
        return None
    if _PLAIN.fullmatch(s) and any(c.isdigit() for c in s):
        plain = s.replace(",", "")
        mantissa, _, exponent = plain.lower().partition("e")
        if exponent and abs(int(exponent)) > _MAX_EXACT_EXPONENT:
            number = float(plain)
            return number if math.isfinite(number) and number != 0 else None
        if mantissa.endswith("."):
            plain = mantissa[:-1] + ("e" + exponent if exponent else "")
        return Fraction(plain)
    ratio = _RATIO.fullmatch(s)
    if ratio:
        denominator = Fraction(ratio.group(2))
        return Fraction(ratio.group(1)) / denominator if denominator else None
    mixed = _MIXED.fullmatch(s)
    if mixed and int(mixed.group(4)):
        value = int(mixed.group(2)) + Fraction(int(mixed.group(3)), int(mixed.group(4)))
        return -value if mixed.group(1) == "-" else value
    return None


def format_number(value: Fraction | int | float) -> str:
    """``18`` not ``18.0``; ``0.2``; ``1/3`` -> ``0.333333`` (6 places, 6 significant ones below 1)."""
    value = _exact(value)
    if value.denominator == 1:
        return str(value.numerator)
    places = DISPLAY_PLACES
    if abs(value) < 1:
        places += _zeros_after_point(value)  # so tiny values keep significant digits
    return _decimal(value, places)


def format_wolfram(value: Fraction | int | float, approximate: bool = False) -> str:
    """A result as WolframAlpha writes it: ``18``; exact ``3/5``, ``-7/2``; approximate ``0.75``, ``14.3571``.

    An integer is its digits. An exact non-integer is a reduced fraction with the sign in front
    (``1 - 2/5`` -> ``3/5``), as the results of the original's in-context maths examples show
    (``3/5``, ``2/3``, ``123/40``, ``-9/8``). An ``approximate`` value (from a formula with a
    decimal point or a percentage: ``2 - 0.5`` -> ``1.5``, ``1 - 25%`` -> ``0.75``), or a float,
    is a decimal with :data:`WOLFRAM_DIGITS` significant digits, trailing zeros dropped
    (``0.833333``, ``14.3571``). The number of digits is inferred from WolframAlpha's display, not
    read from a reference file; integer digits are never dropped (no ``×10^n`` notation), so
    ``1234567.5`` is ``1234568``.
    """
    exact = isinstance(value, (int, Fraction)) and not approximate
    value = _exact(value)
    if value.denominator == 1:
        return str(value.numerator)
    if exact:
        return f"{'-' if value < 0 else ''}{abs(value.numerator)}/{value.denominator}"
    if abs(value) < 1:
        places = WOLFRAM_DIGITS + _zeros_after_point(value)
    else:
        whole_digits = len(str(abs(value.numerator) // value.denominator))
        places = max(WOLFRAM_DIGITS - whole_digits, 0)
    return _decimal(value, places)


def format_in_style(value: Fraction | int | float, style: str = "plain", approximate: bool = False) -> str:
    """``value`` written in the number style ``style`` (:data:`NUMBER_STYLES`); ``approximate``: see
    :func:`format_wolfram` (the ``plain`` style writes every non-integer as a decimal anyway)."""
    if style == "plain":
        return format_number(value)
    if style == "wolfram":
        return format_wolfram(value, approximate)
    raise ValueError(f"unknown number style {style!r}; known: {', '.join(NUMBER_STYLES)}")


_APPROXIMATE = re.compile(r"\d\.|\.\d|%")


def is_approximate(formula: str) -> bool:
    """Whether a formula (earlier results substituted in) has a decimal point or a percentage:
    WolframAlpha answers such a formula with a decimal (``2 - 0.5`` -> ``1.5``, not ``3/2``)."""
    return bool(_APPROXIMATE.search(formula))


def _exact(value: Fraction | int | float) -> Fraction:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"not a finite number: {value}")
    return Fraction(value)


def _zeros_after_point(value: Fraction) -> int:
    """Zeros between the point and the first significant digit of ``0 < |value| < 1`` (0.003 -> 2)."""
    numerator, denominator = abs(value.numerator), value.denominator
    zeros = len(str(denominator)) - len(str(numerator))
    if numerator * 10 ** zeros >= denominator:
        zeros -= 1
    return max(zeros, 0)


def _decimal(value: Fraction, places: int) -> str:
    """``value`` rounded half up to ``places`` decimal places, trailing zeros (and a bare point) dropped."""
    sign = "-" if value < 0 else ""
    numerator, denominator = abs(value.numerator), value.denominator
    scaled, remainder = divmod(numerator * 10 ** places, denominator)
    if 2 * remainder >= denominator:  # round half up, as people do
        scaled += 1
    if places == 0:
        return "0" if scaled == 0 else sign + str(scaled)
    digits = str(scaled).rjust(places + 1, "0")
    whole, fraction = digits[:-places], digits[-places:].rstrip("0")
    text = f"{whole}.{fraction}" if fraction else whole
    return "0" if text == "0" else sign + text


def _written_places(text: object) -> int | None:
    """Decimal places a written number shows (``0.33`` -> 2), None when it is not a plain decimal."""
    if not isinstance(text, str) or len(text) > 1000:
        return None
    s = _CURRENCY.sub("", text.strip()).rstrip(".")
    match = re.fullmatch(r"[+-]?[\d,]*\.(\d+)", s)
    return len(match.group(1)) if match else None


def same_number(a: object, b: object, rel_tol: float = 1e-6) -> bool:
    """Whether ``a`` and ``b`` name the same number (``$18`` = ``18.0`` = ``18``).

    Close within ``rel_tol``, or equal up to the rounding a written decimal shows: a claim of
    ``0.33`` matches 1/3 because it is 1/3 rounded to two places (half a unit in the last place).
    """
    x, y = parse_number(a), parse_number(b)
    if x is None or y is None:
        return False
    if x == y:
        return True
    difference = abs(Fraction(x) - Fraction(y))
    if difference <= Fraction(rel_tol) * max(abs(Fraction(x)), abs(Fraction(y))):
        return True
    places = [p for p in (_written_places(a), _written_places(b)) if p is not None]
    return bool(places) and difference <= Fraction(1, 2 * 10 ** min(places))
