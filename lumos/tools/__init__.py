"""The execution module: per-domain toolboxes that run grounded actions.

``toolbox(domain)`` builds the toolbox of a domain from ``TOOLBOX_FACTORIES``; each factory's
toolbox implements exactly the action names of ``lumos.vocabulary`` for its domain (a contract
test checks every registered domain). Importing this package is cheap: sympy and the sandboxes
start on first use.
"""

from __future__ import annotations

from typing import Callable

from lumos.tools.base import Tool, ToolError, Toolbox
from lumos.tools.maths import maths_toolbox
from lumos.tools.numbers import format_number, parse_number, same_number
from lumos.tools.qa import qa_toolbox
from lumos.tools.web import web_toolbox

TOOLBOX_FACTORIES: dict[str, Callable[..., Toolbox]] = {"maths": maths_toolbox, "complex_qa": qa_toolbox,
                                                      "web_agent": web_toolbox}


def toolbox(domain: str, **options: object) -> Toolbox:
    """The toolbox of ``domain`` (options go to its factory, e.g. ``timeout``)."""
    try:
        factory = TOOLBOX_FACTORIES[domain]
    except KeyError:
        raise ValueError(f"no toolbox for domain {domain!r}; available: {', '.join(TOOLBOX_FACTORIES)}") from None
    return factory(**options)


__all__ = ["TOOLBOX_FACTORIES", "Tool", "ToolError", "Toolbox", "format_number", "maths_toolbox", "parse_number",
           "same_number", "toolbox", "web_toolbox"]
