"""The fast, bounded path for plain arithmetic: Python ``ast`` over numbers, exact Fractions.

Most Calculator calls are arithmetic on numbers (``16 - 3 - 4``, ``R1 * 2``). They are evaluated
here without sympy or a subprocess: the text is parsed (never evaluated) by ``ast`` and walked
over a closed set of nodes. Anything else (names, implicit multiplication, equations) raises
:class:`NotArithmetic` so the caller can hand it to the sympy worker; arithmetic that would be
too large (``9**9**9**9``) raises :class:`ToolError` at once instead of being attempted.
"""

from __future__ import annotations

import ast
import math
import operator
import re
import time
from fractions import Fraction

from lumos.tools.base import ToolError
from lumos.tools.engines.numbers import MAX_FORMULA

Number = Fraction | float

# Characters of normalised formula the fast path reads: the formula limit (MAX_FORMULA) applies to
# the text as written, and normalising writes at most five characters for one ("½" -> "(1/2)").
MAX_TEXT = 5 * MAX_FORMULA
MAX_BITS = 10_000        # size bound of a numerator/denominator (about 3,000 digits)
MAX_EXPONENT = 10_000    # largest |integer exponent| attempted
MAX_ROOT_DEGREE = 64     # largest q of a fractional exponent p/q tried exactly

# An integer written with more digits than 2**MAX_BITS has: too large before it is read.
_TOO_MANY_DIGITS = re.compile(rf"(?<![\d.])[1-9]\d{{{len(str(1 << MAX_BITS))}}}")


class NotArithmetic(ValueError):
    """The formula is not plain arithmetic on numbers (it needs the symbolic path)."""


def evaluate_arithmetic(text: str, deadline: float | None = None) -> Number:
    """Value of a normalised arithmetic formula (see ``numbers.normalize_arithmetic``).

    ``deadline`` (a ``time.monotonic()`` value) stops the walk with a :class:`ToolError` once passed.
    """
    if len(text) > MAX_TEXT:
        raise ToolError(f"formula of {len(text)} characters is longer than the limit {MAX_TEXT}")
    if _TOO_MANY_DIGITS.search(text):
        raise ToolError(f"a number has more than {MAX_BITS} bits (about {MAX_BITS * 3 // 10} digits)")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as error:
        raise NotArithmetic(f"not Python arithmetic: {error}") from None
    try:
        return _Evaluator(text, deadline).visit(tree.body)
    except RecursionError:
        raise ToolError("formula is nested too deeply") from None


_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod}


class _Evaluator:
    def __init__(self, source: str, deadline: float | None = None):
        self.source = source
        self.deadline = deadline

    def visit(self, node: ast.AST) -> Number:
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise ToolError("arithmetic ran past its time limit and was stopped")
        if isinstance(node, ast.Constant):
            return self._constant(node)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            value = self.visit(node.operand)
            return -value if isinstance(node.op, ast.USub) else value
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
            return _checked(_power(self.visit(node.left), self.visit(node.right)))
        if isinstance(node, ast.BinOp):
            # A flat chain (1 + 2 - 3 * 4 ...) leans left: walk its left spine in a loop, not one
            # call per operator, so a long sum is not "nested too deeply". Same order: left to right.
            chain = []
            while isinstance(node, ast.BinOp) and not isinstance(node.op, ast.Pow):
                chain.append(node)
                node = node.left
            value = self.visit(node)
            for link in reversed(chain):
                value = _binary(link.op, value, self.visit(link.right))
            return value
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.keywords:
            function = _FUNCTIONS.get(node.func.id)
            if function is not None:
                return _checked(function(*[self.visit(arg) for arg in node.args]))
        raise NotArithmetic(f"{type(node).__name__} is not plain arithmetic")

    def _constant(self, node: ast.Constant) -> Number:
        value = node.value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise NotArithmetic(f"constant {value!r} is not a number")
        if isinstance(value, int):
            return _checked(Fraction(value))
        # Read the digits as written, so 0.1 is exactly 1/10.
        written = ast.get_source_segment(self.source, node) or repr(value)
        try:
            exact = Fraction(written.replace("_", ""))
        except ValueError:
            exact = Fraction(value) if math.isfinite(value) else None
        if exact is None:
            raise ToolError(f"number {written} is out of range")
        return _checked(exact)


def _binary(op_node: ast.operator, left: Number, right: Number) -> Number:
    op = _BINARY.get(type(op_node))
    if op is None:
        raise NotArithmetic(f"operator {type(op_node).__name__} is not arithmetic")
    if right == 0 and op is not operator.add and op is not operator.sub and op is not operator.mul:
        raise ToolError("division by zero")
    try:
        return _checked(op(left, right))
    except OverflowError:
        raise ToolError("result is too large") from None


def _checked(value: Number) -> Number:
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ToolError("result is not a finite number")
        return value
    if value.numerator.bit_length() > MAX_BITS or value.denominator.bit_length() > MAX_BITS:
        raise ToolError(f"result has more than {MAX_BITS} bits (about {MAX_BITS * 3 // 10} digits)")
    return value


def _power(base: Number, exponent: Number) -> Number:
    if isinstance(exponent, Fraction) and exponent.denominator == 1:
        power = exponent.numerator
        if abs(power) > MAX_EXPONENT:
            raise ToolError(f"exponent {power} exceeds the limit {MAX_EXPONENT}")
        if isinstance(base, Fraction):
            size = max(base.numerator.bit_length(), base.denominator.bit_length())
            if size * abs(power) > MAX_BITS and abs(base) != 1:
                raise ToolError(f"power would have more than {MAX_BITS} bits")
            if base == 0 and power < 0:
                raise ToolError("division by zero (0 to a negative power)")
            return base ** power
        return _float_power(base, float(power))
    if base < 0:
        raise NotArithmetic("a fractional power of a negative number is not real")
    if isinstance(base, Fraction) and isinstance(exponent, Fraction) and exponent.denominator <= MAX_ROOT_DEGREE:
        root = _exact_root(base, exponent.denominator)
        if root is not None:
            return _power(root, Fraction(exponent.numerator))
    return _float_power(float(base), float(exponent))


def _float_power(base: float, exponent: float) -> float:
    try:
        return float(base) ** exponent
    except (OverflowError, ZeroDivisionError) as error:
        raise ToolError(f"power is out of range: {error}") from None


def _exact_root(value: Fraction, degree: int) -> Fraction | None:
    roots = [_integer_root(part, degree) for part in (value.numerator, value.denominator)]
    return None if None in roots else Fraction(roots[0], roots[1])


def _integer_root(n: int, degree: int) -> int | None:
    if n.bit_length() > 1000:
        return None
    guess = round(n ** (1.0 / degree)) if n.bit_length() < 1000 else 0
    for candidate in (guess - 1, guess, guess + 1):
        if candidate >= 0 and candidate ** degree == n:
            return candidate
    return None


def _round_half_up(value: Number, places: Number = Fraction(0)) -> Number:
    if not (isinstance(places, Fraction) and places.denominator == 1 and abs(places) <= 100):
        raise ToolError("round() needs a whole number of places up to 100")
    scale = Fraction(10) ** int(places)
    scaled = Fraction(value) * scale
    rounded = math.floor(abs(scaled) + Fraction(1, 2))
    return Fraction(rounded if scaled >= 0 else -rounded) / scale


def _sqrt(value: Number) -> Number:
    if value < 0:
        raise NotArithmetic("square root of a negative number")
    return _power(value, Fraction(1, 2))


def _min(*values: Number) -> Number:
    if not values:
        raise ToolError("min() of nothing")
    return min(values)


def _max(*values: Number) -> Number:
    if not values:
        raise ToolError("max() of nothing")
    return max(values)


_FUNCTIONS = {
    "abs": abs, "min": _min, "max": _max, "round": _round_half_up, "sqrt": _sqrt,
    "floor": lambda v: Fraction(math.floor(v)), "ceil": lambda v: Fraction(math.ceil(v)),
}
