"""The execution module: per-domain toolboxes that run grounded actions.

``toolbox(domain)`` builds the toolbox of a domain with its factory in ``lumos.domains``; each
factory's toolbox implements exactly the action names of ``lumos.vocabulary`` for its domain (a
contract test checks every registered domain). Importing this package is cheap: sympy and the sandboxes
start on first use.
"""

from __future__ import annotations

from lumos.domains import domain as lumos_domain
from lumos.tools.base import Tool, ToolError, Toolbox
from lumos.tools.maths import maths_toolbox
from lumos.tools.engines.numbers import format_number, parse_number, same_number
from lumos.tools.web import web_toolbox


def toolbox(domain: str, **options: object) -> Toolbox:
    """The toolbox of ``domain`` (options go to its factory, e.g. ``timeout``)."""
    return lumos_domain(domain).make_toolbox(**options)


__all__ = ["Tool", "ToolError", "Toolbox", "format_number", "maths_toolbox", "parse_number",
           "same_number", "toolbox", "web_toolbox"]
