"""The maths execution module: Calculator, SetEquation, SolveEquation, SolveInequality, Count, Define, Code.

Semantics follow the released Lumos evaluation (WolframAlpha there, sympy here):

- earlier results ``R<n>`` are substituted into the arguments in parentheses (``R1 * 2`` with
  ``R1 = 3 + x`` is ``(3 + x) * 2``); a result that is an equation is applied to both of its
  sides (``R1 * 2`` with ``R1 = x + 1 = 3`` gives ``2*x + 2 = 6``);
- a result can be applied as a function: ``R4(R5, R6)`` calls the function a ``Code`` action
  defined (in the sandbox), or substitutes the values into the free symbols of a symbolic result
  in name order (``x - 7*y`` at ``(-9/8, -3/5)``); ``name=value`` binds by name;
- ``SetEquation`` returns the equation, ``SolveEquation`` one value per unknown (in name order),
  ``SolveInequality`` the solution set (``x > 2``), ``Count`` the number of items (an arithmetic
  sequence written with ``...`` is counted by its step), ``Define`` its argument, ``Code`` the
  value of the code (or the function it defines).

Numbers are written in one style for the whole toolbox (``number_style``, see
``lumos.tools.engines.numbers``): ``plain`` (``0.6``, ``0.666667``) by default, ``wolfram`` as the
original's WolframAlpha calls wrote them (``3/5``, ``2/3``; ``1.5`` for ``2 - 0.5``), which
``--prompt_style original`` uses. Either way a stored result is substituted as its text, so an
exact ``3/5`` stays exact: ``75 * R1`` is ``75 * (3/5)`` = ``45``.

Plain arithmetic takes an exact, bounded in-process path (``lumos.tools.engines.arithmetic``); symbolic
work goes to a confined sympy worker with a deadline (``lumos.tools.worker``); Python code goes
to the sandbox (``lumos.tools.sandbox``). Nothing here evaluates model text in-process.
"""

from __future__ import annotations

import functools
import re
import threading
import time
from fractions import Fraction
from typing import Mapping

from lumos.format import VARIABLE, matching_paren, split_top_level
from lumos.tools.engines.arithmetic import NotArithmetic, evaluate_arithmetic
from lumos.tools.base import ToolError, Toolbox
from lumos.tools.engines.numbers import (MAX_FORMULA, NUMBER_STYLES, FormulaTooLong, format_in_style,
                                         is_approximate, normalize_arithmetic, parse_number)
from lumos.tools.sandbox import run_code
from lumos.tools.worker import SymbolicWorker
from lumos.vocabulary import MATHS

MAX_CALL_DEPTH = 50  # R<n>(...) calls nested inside each other
MAX_COUNT_ITEMS = 100_000

_VARIABLE = re.compile(rf"(?<![A-Za-z_]){VARIABLE}\b")
_SINGLE_EQUALS = re.compile(r"(?<![<>=!])=(?!=)")
_BARE_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_INTEGER = re.compile(r"-?\d{1,4000}")
_DECIMAL = re.compile(r"-?\d{0,400}\.\d{1,400}(?:[eE][+-]?\d{1,4})?|-?\d{1,400}[eE][+-]?\d{1,4}")
_RATIO = re.compile(r"-?\d{1,400}/\d{1,400}")
_FUNCTION_NAME = re.compile(r"def\s+([A-Za-z_]\w*)\s*\(")
_IF_FORM = re.compile(r"\s*if\b\s*(.*)", re.IGNORECASE | re.DOTALL)
_NUMERIC_TYPES = {"int", "float", "Fraction", "Decimal", "Integer", "Rational", "Float", "float64", "int64"}
_EXACT_TYPES = {"int", "Fraction", "Integer", "Rational", "int64"}


class _EquationInside(Exception):
    """An argument refers to a result that is an equation; the caller evaluates side by side."""


def maths_toolbox(timeout: float = 1.0, memory_mb: int = 512, number_style: str = "plain") -> Toolbox:
    """The maths domain's toolbox; every evaluation is bounded by ``timeout`` seconds and ``memory_mb``.

    ``number_style``: how results write numbers, ``"plain"`` or ``"wolfram"`` (module docstring).
    """
    engine = MathsEngine(timeout=timeout, memory_mb=memory_mb, number_style=number_style)
    tools = {"Calculator": engine.calculator, "SetEquation": engine.set_equation,
             "SolveEquation": engine.solve_equation, "Count": engine.count,
             "SolveInequality": engine.solve_inequality, "Code": engine.code, "Define": engine.define}
    return Toolbox.from_vocabulary(MATHS, {name: engine.bounded(tool) for name, tool in tools.items()},
                                   on_close=engine.close)


class MathsEngine:
    """The maths tools over one symbolic worker; each tool is ``(args, variables) -> values``."""

    def __init__(self, timeout: float = 1.0, memory_mb: int = 512, number_style: str = "plain"):
        if number_style not in NUMBER_STYLES:
            raise ValueError(f"unknown number style {number_style!r}; known: {', '.join(NUMBER_STYLES)}")
        self.timeout = timeout
        self.memory_mb = memory_mb
        self.number_style = number_style
        self.worker = SymbolicWorker(timeout=timeout, memory_mb=memory_mb)
        self._call = threading.local()  # .deadline: of the in-process work of this thread's tool call

    def close(self) -> None:
        self.worker.close()

    def bounded(self, tool):
        """``tool`` with a deadline on its in-process work (the argument's size is ``Toolbox.execute``'s check)."""
        @functools.wraps(tool)
        def run(args: str, variables: Mapping[str, str]) -> list[str]:
            self._call.deadline = time.monotonic() + self.timeout
            try:
                return tool(args, variables)
            except RecursionError:
                raise ToolError("the argument is nested too deeply") from None
            finally:
                self._call.deadline = None
        return run

    @property
    def _deadline(self) -> float | None:
        return getattr(self._call, "deadline", None)

    def format(self, value: Fraction | float, approximate: bool = False) -> str:
        """``value`` in this toolbox's number style (``approximate``: it comes from a formula with a decimal)."""
        return format_in_style(value, self.number_style, approximate)

    def _check_deadline(self) -> None:
        deadline = self._deadline
        if deadline is not None and time.monotonic() > deadline:
            raise ToolError(f"the action ran past its time limit of {self.timeout:g} s and was stopped")

    # ------------------------------------------------------------------ the tools

    def calculator(self, args: str, variables: Mapping[str, str]) -> list[str]:
        sides = _top_level_equation(args)
        if sides is not None:
            return [" = ".join(self.evaluate(self.substitute(side, variables)) for side in sides)]  # both sides
        try:
            return [self.evaluate(self.substitute(args, variables))]
        except _EquationInside:
            left, right = (self.evaluate(self.substitute(args, variables, side)) for side in (0, 1))
            return [f"{left} = {right}"]

    def set_equation(self, args: str, variables: Mapping[str, str]) -> list[str]:
        return [", ".join(self._equation_text(part, variables) for part in _split_items(args))]

    def solve_equation(self, args: str, variables: Mapping[str, str]) -> list[str]:
        parts: list[str] = []
        for part in _split_items(args):
            stored = variables.get(part.strip())
            # A stored system (``R1 = SetEquation(a = b, c = d)``) contributes each of its equations.
            parts.extend(_split_items(stored) if stored and _SINGLE_EQUALS.search(stored) else [part])
        texts = [self._equation_text(part, variables) for part in parts]
        approximate = any(is_approximate(text) for text in texts)
        equations = [normalize_arithmetic(text) for text in texts]
        if len(equations) == 1 and not _SINGLE_EQUALS.search(equations[0]):
            try:
                return [self.format(evaluate_arithmetic(equations[0]), approximate)]
            except NotArithmetic:
                pass
        values = self.worker.call("solve_equations", equations, self.number_style, approximate)
        return [str(value) for value in values]  # type: ignore[union-attr]

    def solve_inequality(self, args: str, variables: Mapping[str, str]) -> list[str]:
        texts = [self.substitute(part, variables) for part in _split_items(args)]
        approximate = any(is_approximate(text) for text in texts)
        parts = [normalize_arithmetic(text) for text in texts]
        return [str(self.worker.call("solve_inequality", parts, self.number_style, approximate))]

    def count(self, args: str, variables: Mapping[str, str]) -> list[str]:
        text = _VARIABLE.sub(lambda m: _lookup(variables, m.group(0)), args).strip()
        text = _strip_brackets(text)
        if not text:
            return ["0"]
        items = _split_items(text)
        if len(items) > MAX_COUNT_ITEMS:
            raise ToolError(f"the list has more than {MAX_COUNT_ITEMS} items")
        ellipsis = [i for i, item in enumerate(items) if item.strip() in ("...", "…")]
        if not ellipsis:
            return [str(len(items))]
        return [self._count_sequence(items, ellipsis)]

    def define(self, args: str, variables: Mapping[str, str]) -> list[str]:
        text = _strip_brackets(self.substitute(args, variables)).strip()
        if not text:
            raise ToolError("nothing to define")
        number = parse_number(text)
        return [self.format(number, is_approximate(text)) if number is not None else text]

    def code(self, args: str, variables: Mapping[str, str]) -> list[str]:
        conditional = _IF_FORM.fullmatch(args)
        if conditional:
            parts = _split_items(conditional.group(1))
            if len(parts) != 3:
                raise ToolError("'If' pseudo code needs three parts: If <condition>, <then>, <else>")
            condition, then, otherwise = (normalize_arithmetic(part) for part in parts)
            return [self._run(f"({then}) if ({condition}) else ({otherwise})", variables)]
        source = args.strip()
        function = _FUNCTION_NAME.search(source)
        if function or source.startswith("lambda"):
            name = function.group(1) if function else "_lumos_function"
            program = source if function else f"{name} = {source}"
            checked = run_code(program, expression=f"callable({name})", timeout=self.timeout, memory_mb=self.memory_mb)
            if checked.value != "True":
                raise ToolError(f"the code does not define a function {name!r}")
            return [source]
        return [self._run(source, variables)]

    # ------------------------------------------------------------------ evaluation

    def evaluate(self, text: str) -> str:
        """Value of a substituted formula: exact fast path for arithmetic, the sympy worker otherwise."""
        normalized = normalize_arithmetic(text)
        approximate = is_approximate(text)
        try:
            return self.format(evaluate_arithmetic(normalized, self._deadline), approximate)
        except NotArithmetic:
            return str(self.worker.call("calculate", normalized, self.number_style, approximate))

    def evaluate_symbolic(self, text: str) -> str:
        """Like :meth:`evaluate` but always through sympy (the baseline of ``bench/bench_tools.py``)."""
        return str(self.worker.call("calculate", normalize_arithmetic(text), self.number_style, is_approximate(text)))

    def substitute(self, text: str, variables: Mapping[str, str], side: int | None = None, depth: int = 0) -> str:
        """Replace ``R<n>`` by its value in parentheses, applying ``R<n>(...)`` calls first.

        A result that is an equation is replaced by its left (``side=0``) or right (``side=1``)
        side; with ``side=None`` meeting one raises :class:`_EquationInside`. The text is measured
        as it is built: :class:`FormulaTooLong` as soon as it would pass ``MAX_FORMULA``.
        """
        if depth > MAX_CALL_DEPTH:
            raise ToolError(f"results are called inside each other more than {MAX_CALL_DEPTH} levels deep")
        out: list[str] = []
        size = 0  # characters in ``out``
        pos = 0
        while (match := _VARIABLE.search(text, pos)) is not None:
            self._check_deadline()
            out.append(text[pos:match.start()])
            size += match.start() - pos
            name = match.group(0)
            value = _lookup(variables, name)
            if text.startswith("(", match.end()):
                close = _matching_paren(text, match.end())
                call_args = self.substitute(text[match.end() + 1:close], variables, side, depth + 1)
                out.append(f"({self.apply(name, value, call_args)})")
                size += len(out[-1])
                if size > MAX_FORMULA:
                    raise _too_long()
                pos = close + 1
                continue
            if _is_function(value):
                raise ToolError(f"{name} is a function; call it as {name}(...)")
            sides = _equation_sides(value)
            if sides is not None:
                if side is None:
                    raise _EquationInside(name)
                value = sides[side]
            if size + len(value) > MAX_FORMULA:
                raise _too_long()
            value = value.strip()
            out.append(value if _BARE_NUMBER.fullmatch(value) else f"({value})")
            size += len(out[-1])
            pos = match.end()
        out.append(text[pos:])
        return "".join(out)

    def apply(self, name: str, value: str, call_args: str) -> str:
        """``R4(3, 4)``: call a Code function, or substitute into a symbolic result's unknowns."""
        if _is_function(value):
            # The arguments are evaluated here and handed over as bound values, never as source text.
            arguments = {f"lumos_arg_{k}": _python_value(self._argument_value(arg))
                         for k, arg in enumerate(_split_items(call_args) if call_args.strip() else [])}
            result = run_code(_function_program(name, value), expression=f"{name}({', '.join(arguments)})",
                              timeout=self.timeout, memory_mb=self.memory_mb, variables=arguments)
            return self._sandbox_value(result.value, result.value_type, result.stdout)
        if _equation_sides(value) is not None:
            raise ToolError(f"{name} is an equation and cannot be called")
        if parse_number(value) is not None:
            return self.evaluate(f"({value}) * ({call_args})")  # "3(4)": a product, as written
        args = [normalize_arithmetic(arg) for arg in _split_items(call_args)]
        approximate = is_approximate(value) or is_approximate(call_args)
        return str(self.worker.call("apply", normalize_arithmetic(value), args, self.number_style, approximate))

    # ------------------------------------------------------------------ helpers

    def _equation_text(self, part: str, variables: Mapping[str, str]) -> str:
        sides = _top_level_equation(part)
        if sides is not None:
            try:
                return " = ".join(self.substitute(side, variables).strip() for side in sides)
            except _EquationInside as inside:
                raise ToolError(f"{inside} is an equation inside an equation") from None
        try:
            return self.substitute(part, variables)
        except _EquationInside:
            return " = ".join(self.substitute(part, variables, side).strip() for side in (0, 1))

    def _count_sequence(self, items: list[str], ellipsis: list[int]) -> str:
        if ellipsis != [len(items) - 2] or len(items) < 4:
            raise ToolError("a sequence with '...' needs two first terms, '...' and the last term")
        first, second, last = (parse_number(self.evaluate(items[i])) for i in (0, 1, -1))
        if first is None or second is None or last is None:
            raise ToolError("the terms of a sequence with '...' must be numbers")
        step = Fraction(second) - Fraction(first)
        if step == 0:
            raise ToolError("the sequence does not advance (its first two terms are equal)")
        count = (Fraction(last) - Fraction(first)) / step + 1
        if count.denominator != 1 or count < 1:
            raise ToolError(f"the last term {self.format(Fraction(last))} is not reached by steps of "
                            f"{self.format(step)} from {self.format(Fraction(first))}")
        return self.format(count)

    def _argument_value(self, text: str) -> str:
        try:
            return self.evaluate(text)
        except ToolError:
            return text.strip()

    def _run(self, code: str, variables: Mapping[str, str]) -> str:
        """Run ``code`` with the earlier results it names bound as data (functions defined by their code)."""
        used = sorted({match.group(0) for match in _VARIABLE.finditer(code)}, key=lambda name: int(name[1:]))
        preamble, bound = [], {}
        for name in used:
            value = _lookup(variables, name)
            if _is_function(value):
                preamble.append(_function_program(name, value))  # code a Code action wrote, never a value
            else:
                bound[name] = _python_value(value)
        result = run_code("\n".join([*preamble, code]), timeout=self.timeout, memory_mb=self.memory_mb,
                          variables=bound)
        return self._sandbox_value(result.value, result.value_type, result.stdout)

    def _sandbox_value(self, value: str | None, value_type: str | None, stdout: str) -> str:
        """The value of a ``Code`` action (its printed output when it has none); a number in this style."""
        if value is None:
            if not stdout.strip():
                raise ToolError("the code produced no value and printed nothing")
            return stdout.strip()
        if value_type in _NUMERIC_TYPES:
            number = parse_number(value)
            if number is not None:
                return self.format(number, approximate=value_type not in _EXACT_TYPES)
        return value


def _too_long() -> FormulaTooLong:
    return FormulaTooLong(f"the formula is longer than the limit {MAX_FORMULA} once the results are substituted")


def _function_program(name: str, value: str) -> str:
    """Source that defines the function a ``Code`` action wrote under the result's name ``name``."""
    function = _FUNCTION_NAME.search(value)
    if function:
        return f"{value}\n{name} = {function.group(1)}"
    return f"{name} = {value.strip()}"


def _python_value(value: str) -> object:
    """A result as the value its text names: ``18`` an int, ``0.5`` and ``3/5`` floats, else the text itself."""
    text = value.strip()
    try:
        if _INTEGER.fullmatch(text):
            return int(text)
        if _DECIMAL.fullmatch(text):
            return float(text)
        if _RATIO.fullmatch(text):  # an exact result in the ``wolfram`` style
            return float(Fraction(text))
    except (ValueError, OverflowError, ZeroDivisionError):  # more digits than int() or float() reads
        pass
    return text


def _lookup(variables: Mapping[str, str], name: str) -> str:
    try:
        return str(variables[name])
    except KeyError:
        raise ToolError(f"undefined variable {name}; defined: {', '.join(sorted(variables)) or 'none'}") from None


def _is_function(value: str) -> bool:
    stripped = value.lstrip()
    return stripped.startswith(("def ", "lambda")) or bool(_FUNCTION_NAME.match(stripped))


def _equation_sides(value: str) -> tuple[str, str] | None:
    parts = _SINGLE_EQUALS.split(value)
    return (parts[0], parts[1]) if len(parts) == 2 else None


def _top_level_equation(text: str) -> tuple[str, str] | None:
    """The two sides of ``a = b`` when ``=`` appears once outside parentheses (one pass over the text)."""
    depth = 0
    counted = 0
    positions = []
    for match in _SINGLE_EQUALS.finditer(text):
        between = text[counted:match.start()]
        depth += between.count("(") - between.count(")")
        counted = match.start()
        if depth == 0:
            positions.append(match.start())
            if len(positions) > 1:
                return None
    if len(positions) != 1:
        return None
    return text[:positions[0]], text[positions[0] + 1:]


def _matching_paren(text: str, open_pos: int) -> int:
    close = matching_paren(text, open_pos)
    if close < 0:
        raise ToolError(f"unbalanced parentheses in {text!r}")
    return close


def _split_items(text: str) -> list[str]:
    """Split on top-level ``", "``; on bare ``,`` only when no ``", "`` separates (``1,2,3``)."""
    separator = ", " if _split_top_level(text, ", ") != [text] else ","
    parts = _split_top_level(text, separator)
    if separator == "," and all(re.fullmatch(r"\d{3}\D*", part.strip()) for part in parts[1:]):
        return [text]  # "1,000": a thousands separator, not a list
    return [part.strip() for part in parts]


def _split_top_level(text: str, separator: str) -> list[str]:
    """Split outside any bracket; maths arguments have no quoted strings."""
    return split_top_level(text, separator, brackets="([{)]}", quotes="")


def _strip_brackets(text: str) -> str:
    text = text.strip()
    pairs = {"[": "]", "(": ")", "{": "}"}
    if text and text[0] in pairs and text.endswith(pairs[text[0]]):
        inner = text[1:-1]
        if _split_top_level(inner, pairs[text[0]]) == [inner] and inner.count(text[0]) == inner.count(pairs[text[0]]):
            return inner.strip()
    return text
