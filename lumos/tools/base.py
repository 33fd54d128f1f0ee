"""Tools and toolboxes: the execution module's contract with the agent loop.

A :class:`Tool` is a name, the one-line description of ``lumos.vocabulary`` and one callable
``(args, variables) -> values``. A :class:`Toolbox` holds the tools of one domain and runs a parsed
:class:`lumos.format.Action` against the ``R<n>`` results of earlier actions, storing what the tool
returns under the action's output names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Mapping

from lumos.format import Action, parse_actions, variables_used
from lumos.vocabulary import DomainVocabulary

ToolFunction = Callable[[str, Mapping[str, str]], list[str]]
# Characters of one action's argument text: the one bound on it, checked in Toolbox.execute before
# any tool or pattern reads the text (the maths tools' patterns included).
MAX_ACTION_ARGS = 10_000
_SHOWN = 200  # characters of an argument quoted in an error message


class ToolError(Exception):
    """An action that could not be executed; the message says what failed and why."""


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    run: ToolFunction

    def __call__(self, args: str, variables: Mapping[str, str]) -> list[str]:
        return self.run(args, variables)


class Toolbox:
    """The tools of one domain, executed against the results of earlier actions.

    The environment protocol: a task that acts on a world of its own (a web page, a shop, a database)
    gets its own toolbox (``Benchmark.task_toolbox``), which owns that world, reads the grounder's
    actions in its grammar (:meth:`read_actions`), says when the world has ended the episode
    (:attr:`episode_end`, read by the loop after every action) and releases it (:meth:`close`).
    The defaults are a static domain's: ``lumos.format``'s grammar, no end, nothing to release.
    """

    def __init__(self, domain: str, tools: Iterable[Tool], *, on_close: Callable[[], None] | None = None):
        self.domain = domain
        self.tools: dict[str, Tool] = {}
        for tool in tools:
            if tool.name in self.tools:
                raise ValueError(f"tool {tool.name!r} is registered twice in domain {domain!r}")
            self.tools[tool.name] = tool
        self._on_close = on_close

    @classmethod
    def from_vocabulary(cls, vocabulary: DomainVocabulary, functions: Mapping[str, ToolFunction],
                        *, on_close: Callable[[], None] | None = None) -> "Toolbox":
        """Build the toolbox of ``vocabulary``; every action needs a function and nothing else may come."""
        missing = [name for name in vocabulary.tool_names if name not in functions]
        extra = [name for name in functions if name not in vocabulary.tool_names]
        if missing or extra:
            raise ValueError(f"domain {vocabulary.name!r}: tools missing {missing}, not in the vocabulary {extra}")
        tools = [Tool(spec.name, spec.description, functions[spec.name]) for spec in vocabulary.actions]
        return cls(vocabulary.name, tools, on_close=on_close)

    @property
    def tool_names(self) -> tuple[str, ...]:
        return tuple(self.tools)

    @property
    def episode_end(self) -> str | None:
        """An exit status (``lumos.episode.ExitStatus``) once the environment has ended the task; None until then."""
        return None

    def read_actions(self, reply: str) -> list[Action]:
        """A grounding reply's actions in this domain's grammar (``FormatError`` when it does not parse)."""
        return parse_actions(reply)

    def variables_in(self, action: Action) -> list[int]:
        """The ``R<n>`` an action refers to (all in its arguments; a domain may narrow this)."""
        return variables_used(action.args)

    def execute(self, action: Action, variables: dict[str, str]) -> str:
        """Run ``action``, store its values under ``action.outputs`` in ``variables``, return the result text."""
        tool = self.tools.get(action.tool)
        if tool is None:
            raise ToolError(f"unknown tool {action.tool!r} in domain {self.domain!r}; "
                            f"available: {', '.join(self.tools)}")
        if len(action.args) > MAX_ACTION_ARGS:
            raise ToolError(f"{action.tool}(...): the argument has {len(action.args)} characters, "
                            f"more than the limit of {MAX_ACTION_ARGS} for an action's argument")
        try:
            used = self.variables_in(action)
        except ValueError as error:  # e.g. R<5000 digits>: more digits than int() reads
            raise ToolError(f"{action.tool}({_shown(action.args)}): {error}") from None
        undefined = sorted({f"R{n}" for n in used} - set(variables), key=lambda v: int(v[1:]))
        if undefined:
            raise ToolError(f"{action.tool}({_shown(action.args)}): undefined variable(s) "
                            f"{_shown(', '.join(undefined))}; defined: {', '.join(variables) or 'none'}")
        try:
            values = [str(value).strip() for value in tool(action.args, variables)]
        except ToolError as error:
            raise ToolError(f"{action.tool}({_shown(action.args)}): {error}") from error
        expected = max(1, len(action.outputs))
        if len(values) != expected:
            raise ToolError(f"{action.tool}({_shown(action.args)}) gave {len(values)} value(s) "
                            f"({', '.join(values)}) for {expected} output(s) {', '.join(action.outputs)}")
        if any(not value for value in values):
            raise ToolError(f"{action.tool}({_shown(action.args)}) gave an empty value")
        for name, value in zip(action.outputs, values):
            variables[name] = value
        return ", ".join(values)

    def close(self) -> None:
        """Release what the tools hold (worker processes); the toolbox restarts them if used again."""
        if self._on_close is not None:
            self._on_close()

    def __enter__(self) -> "Toolbox":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _shown(text: str) -> str:
    return text if len(text) <= _SHOWN else f"{text[:_SHOWN]}... ({len(text)} characters)"
