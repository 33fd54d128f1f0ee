"""WebShop human demonstrations (one JSON line per page visit) turned into text-env actions."""

from __future__ import annotations

from typing import Any, Iterable
from urllib.parse import unquote

from lumos.webshop.env import ITEM_SECTIONS


def _sub_page_name(url: str) -> str:
    for segment in reversed(unquote(url).lower().split("/")):
        if segment in ITEM_SECTIONS:
            return segment
    raise ValueError(f"no item section named in sub-page url {url!r}")


def actions_from_human_trajectory(pages: Iterable[dict[str, Any]]) -> list[str]:
    """The ``search[...]`` / ``click[...]`` actions that move between the recorded pages."""
    actions: list[str] = []
    previous: dict[str, Any] | None = None
    for page in pages:
        kind, content = page["page"], page.get("content", {})
        before = previous["page"] if previous else None
        if kind == "index":
            if before not in (None, "index"):
                actions.append("click[back to search]")
        elif kind == "search_results":
            number = int(content["page"])
            if before == "index":
                actions.append(f"search[{' '.join(content['keywords'])}]")
            elif before == "search_results":
                step = number - int(previous["content"]["page"])
                actions.append("click[next >]" if step > 0 else "click[< prev]")
            elif before in ("item_page", "item_sub_page"):
                actions.append("click[< prev]")
        elif kind == "item_page":
            if before == "search_results":
                actions.append(f"click[{content['asin'].lower()}]")
            elif before == "item_sub_page":
                actions.append("click[< prev]")
            if before in ("item_page", "search_results", "item_sub_page"):
                earlier = previous["content"].get("options", {}) if before != "search_results" else {}
                actions += [f"click[{value}]" for name, value in content.get("options", {}).items()
                            if earlier.get(name) != value]
        elif kind == "item_sub_page":
            actions.append(f"click[{_sub_page_name(page['url'])}]")
        elif kind == "done":
            actions.append("click[buy now]")
        else:
            raise ValueError(f"unknown page kind {kind!r} in a human trajectory")
        previous = page
    return actions
