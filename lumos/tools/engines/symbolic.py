"""Symbolic maths on sympy: what the worker process runs for Calculator, SolveEquation, SolveInequality.

These functions take formula text (already normalised by ``numbers.normalize_arithmetic``) and
return result text, numbers written in the style the caller names (``numbers.NUMBER_STYLES``;
``approximate``: the formula had a decimal point or a percentage, see ``numbers.format_wolfram``).
They are run only inside the confined worker (``lumos.tools.worker``), because
``sympy.parse_expr`` evaluates its input: the text is first checked against a closed alphabet and
parsed with a namespace of a few maths functions and no builtins.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Callable

import sympy
from sympy.parsing.sympy_parser import (TokenError, _token_splittable, convert_xor, function_exponentiation,
                                        implicit_application, implicit_multiplication, parse_expr, rationalize,
                                        split_symbols_custom, standard_transformations)

from lumos.tools.engines.numbers import format_in_style

# rationalize: decimals are read exactly (0.1 is 1/10), as the fast path reads them.
# Implicit multiplication as sympy's implicit_multiplication_application does it, except that a name
# with digits (``x1``) stays one symbol instead of being split into ``x*1``.
_split_letters = split_symbols_custom(lambda name: not any(c.isdigit() for c in name) and _token_splittable(name))
_TRANSFORMATIONS = standard_transformations + (_split_letters, implicit_multiplication, implicit_application,
                                               function_exponentiation, convert_xor, rationalize)
_NOT_FINITE = (sympy.zoo, sympy.nan, sympy.oo, -sympy.oo)
_ALLOWED_TEXT = re.compile(r"[\w\s+\-*/^().,=<>%!]*")
_MAX_TEXT = 2000
_FUNCTIONS = {
    "sqrt": sympy.sqrt, "Abs": sympy.Abs, "abs": sympy.Abs, "exp": sympy.exp, "log": sympy.log, "ln": sympy.log,
    "sin": sympy.sin, "cos": sympy.cos, "tan": sympy.tan, "asin": sympy.asin, "acos": sympy.acos,
    "atan": sympy.atan, "floor": sympy.floor, "ceil": sympy.ceiling, "ceiling": sympy.ceiling,
    "factorial": sympy.factorial, "binomial": sympy.binomial, "gcd": sympy.gcd, "lcm": sympy.lcm,
    "min": sympy.Min, "max": sympy.Max, "Min": sympy.Min, "Max": sympy.Max, "pi": sympy.pi, "oo": sympy.oo,
    "round": lambda value, places=0: _round_half_up(value, places),
}
_NAMESPACE = {"__builtins__": {}, "Symbol": sympy.Symbol, "Integer": sympy.Integer, "Float": sympy.Float,
              "Rational": sympy.Rational, "Function": sympy.Function, **_FUNCTIONS}


def _round_half_up(value: sympy.Expr, places: sympy.Expr = sympy.Integer(0)) -> sympy.Expr:
    scale = sympy.Integer(10) ** int(places)
    return sympy.floor(value * scale + sympy.Rational(1, 2)) / scale


class SymbolicError(ValueError):
    """Formula text that cannot be parsed or solved; the message says why."""


def parse(text: str) -> sympy.Expr:
    """Parse one formula (no ``=``); refuses text outside a closed alphabet."""
    text = text.strip()
    if not text:
        raise SymbolicError("empty formula")
    if len(text) > _MAX_TEXT:
        raise SymbolicError(f"formula longer than {_MAX_TEXT} characters")
    if not _ALLOWED_TEXT.fullmatch(text) or "__" in text or re.search(r"\.\s*[A-Za-z_]", text):
        raise SymbolicError(f"formula {text!r} has characters a formula cannot have")
    try:
        expr = parse_expr(text, local_dict={}, global_dict=dict(_NAMESPACE), transformations=_TRANSFORMATIONS)
    except (SyntaxError, TypeError, ValueError, AttributeError, NameError, TokenError) as error:
        raise SymbolicError(f"cannot read {text!r} as a formula ({type(error).__name__}: {error})") from None
    if not isinstance(expr, sympy.Basic):
        expr = sympy.sympify(expr)
    _check_finite(expr, text)
    return expr


def _check_finite(expr: sympy.Basic, text: str) -> None:
    """Refuse ``x/0`` (``zoo*x``), ``log(0)``, ``oo - oo``: values that are not finite numbers."""
    if expr.has(sympy.zoo):
        raise SymbolicError(f"the value of {text!r} is not finite (complex infinity: a division by zero or a pole)")
    if expr.has(*_NOT_FINITE):
        raise SymbolicError(f"the value of {text!r} is not finite")


def render(expr: sympy.Basic, style: str = "plain", approximate: bool = False) -> str:
    """A value as a person writes it: ``18``, ``0.2``, ``1.414214``; symbolic ones as sympy prints them.

    In the ``wolfram`` style a rational value is ``3/5`` unless ``approximate``; an irrational one is
    always a decimal.
    """
    _check_finite(expr, str(expr))
    if isinstance(expr, sympy.Rational):
        return format_in_style(Fraction(int(expr.p), int(expr.q)), style, approximate)
    if expr.is_number:
        if expr.is_real is False or (expr.is_real is None and sympy.im(expr.evalf()) != 0):
            real, imaginary = (sympy.nsimplify(part.evalf(15)) for part in expr.as_real_imag())
            real_text = render(real, style, approximate)
            return f"{real_text} + {render(imaginary, style, approximate)}*I" if imaginary else real_text
        value = expr.evalf(30)
        if value.is_infinite or value is sympy.nan:
            raise SymbolicError(f"the value {expr} is not finite")
        return format_in_style(Fraction(str(sympy.Float(value, 30))), style, approximate=True)
    return str(expr)


def calculate(text: str, style: str = "plain", approximate: bool = False) -> str:
    return calculate_expr(parse(text), style, approximate)


def apply(function_text: str, args: list[str], style: str = "plain", approximate: bool = False) -> str:
    """Use a result as a function: its free symbols, in name order, take the arguments.

    ``apply("x - 7*y", ["-9/8", "-3/5"])`` -> ``3.075``; ``name=value`` arguments bind by name.
    """
    expr = parse(function_text)
    symbols = sorted(expr.free_symbols, key=lambda s: s.name)
    by_name = {s.name: s for s in symbols}
    positional, keyword = [], {}
    for arg in args:
        name, equals, value = arg.partition("=")
        if equals and name.strip().isidentifier():
            if name.strip() not in by_name:
                raise SymbolicError(f"{function_text!r} has no variable {name.strip()!r}")
            keyword[by_name[name.strip()]] = parse(value)
        else:
            positional.append(parse(arg))
    free = [s for s in symbols if s not in keyword]
    if len(positional) > len(free):
        raise SymbolicError(f"{function_text!r} takes {len(free)} value(s) "
                            f"({', '.join(s.name for s in free)}), got {len(positional)}")
    keyword.update(zip(free, positional))
    return calculate_expr(expr.subs(keyword), style, approximate)


def calculate_expr(expr: sympy.Basic, style: str = "plain", approximate: bool = False) -> str:
    # Numbers are already evaluated by sympy's arithmetic; render() takes care of irrational ones.
    return render(sympy.expand(expr) if expr.free_symbols else expr, style, approximate)


def _equation(text: str) -> sympy.Basic:
    sides = re.split(r"(?<![<>=!])=(?!=)", text)
    if len(sides) > 2:
        raise SymbolicError(f"{text!r} has more than one '='")
    if len(sides) == 2:
        return sympy.Eq(parse(sides[0]), parse(sides[1]), evaluate=False)
    return sympy.Eq(parse(sides[0]), 0, evaluate=False)


def solve_equations(equations: list[str], style: str = "plain", approximate: bool = False) -> list[str]:
    """Solve for every unknown (in name order); an equation without '=' means ``expr = 0``.

    Text without unknowns is just calculated (``SolveEquation(R2 + R4)``). One unknown with
    several real roots gives the only positive root if there is one (quantities in word
    problems), else all roots; of several solutions of a system the one with all values real
    and positive wins when it is unique, else the first.
    """
    if len(equations) == 1 and "=" not in equations[0]:
        expr = parse(equations[0])
        if not expr.free_symbols:
            return [calculate_expr(expr, style, approximate)]
    system = [_equation(text) for text in equations]
    symbols = sorted(set().union(*(eq.free_symbols for eq in system)), key=lambda s: s.name)
    if not symbols:
        raise SymbolicError("the equation has no unknown to solve for")
    solutions = sympy.solve(system, symbols, dict=True)
    if not solutions:
        raise SymbolicError(f"no solution for {', '.join(s.name for s in symbols)}")
    real = [s for s in solutions if all(v.is_real is not False for v in s.values())] or solutions
    if len(symbols) == 1:
        roots = [s[symbols[0]] for s in real if symbols[0] in s]
        positive = [r for r in roots if r.is_positive]
        chosen = positive if len(positive) == 1 else roots
        return [render(r, style, approximate) for r in chosen]
    positive_sets = [s for s in real if all(v.is_positive for v in s.values())]
    solution = positive_sets[0] if len(positive_sets) == 1 else real[0]
    missing = [s.name for s in symbols if s not in solution]
    if missing:
        raise SymbolicError(f"the equations do not determine {', '.join(missing)}")
    return [render(solution[s], style, approximate) for s in symbols]


def solve_inequality(inequalities: list[str], style: str = "plain", approximate: bool = False) -> str:
    """``2x + 3 > 7`` -> ``x > 2``; several inequalities are solved together."""
    relations = []
    for text in inequalities:
        relation = parse(text)
        if not isinstance(relation, sympy.core.relational.Relational):
            raise SymbolicError(f"{text!r} is not an inequality")
        relations.append(relation)
    symbols = sorted(set().union(*(r.free_symbols for r in relations)), key=lambda s: s.name)
    if len(symbols) != 1:
        raise SymbolicError(f"an inequality in one unknown is needed, found {len(symbols)}")
    x = symbols[0]
    solution = sympy.reduce_inequalities(relations, [x])
    if solution is sympy.true:
        return "all real numbers"
    if solution is sympy.false:
        raise SymbolicError("the inequality has no solution")
    return _render_condition(solution, x, lambda value: render(value, style, approximate))


def _render_condition(condition: sympy.Basic, x: sympy.Symbol, write: Callable[[sympy.Basic], str]) -> str:
    if isinstance(condition, sympy.Or):
        return " or ".join(_render_condition(arg, x, write) for arg in condition.args)
    if isinstance(condition, sympy.And):
        parts = [arg for arg in condition.args if not _is_infinite_bound(arg)]
        lows = [p for p in parts if isinstance(p, sympy.core.relational.Relational) and p.rhs == x]
        highs = [p for p in parts if isinstance(p, sympy.core.relational.Relational) and p.lhs == x]
        if len(parts) == 2 and len(lows) == 1 and len(highs) == 1:
            low, high = lows[0], highs[0]
            return f"{write(low.lhs)} {low.rel_op} {x} {high.rel_op} {write(high.rhs)}"
        return " and ".join(_render_condition(p, x, write) for p in parts)
    if isinstance(condition, sympy.core.relational.Relational):
        if condition.rhs == x and condition.lhs != x:
            condition = condition.reversed
        bound = write(condition.rhs) if condition.rhs.is_number else condition.rhs
        return f"{condition.lhs} {condition.rel_op} {bound}"
    return str(condition)


def _is_infinite_bound(relation: sympy.Basic) -> bool:
    return isinstance(relation, sympy.core.relational.Relational) and any(
        side in (sympy.oo, -sympy.oo) for side in (relation.lhs, relation.rhs))


OPERATIONS = {"calculate": calculate, "apply": apply, "solve_equations": solve_equations,
              "solve_inequality": solve_inequality}
