"""Text representations of Mind2Web candidate elements, read from the page's cleaned HTML.

The ranker sees, per candidate: its tag, the visible text of its subtree (first 100 words) and
its salient attributes (aria label, placeholder, title, alt, value, name, type, role).
"""

from __future__ import annotations

import json
from html.parser import HTMLParser
from typing import Any

from lumos.tools.web import Element

SALIENT_ATTRIBUTES = ("aria_label", "placeholder", "title", "alt", "input_value", "value", "name", "type", "role",
                      "label")
MAX_WORDS = 100


class _NodeCollector(HTMLParser):
    """Collects, for every element carrying a backend_node_id, its tag, attributes and subtree text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.nodes: dict[str, dict[str, Any]] = {}
        self._open: list[str | None] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        node_id = attributes.get("backend_node_id")
        if node_id is not None and node_id not in self.nodes:
            self.nodes[node_id] = {"tag": tag, "attributes": attributes, "text": []}
        self._open.append(node_id)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        self._open.pop()

    def handle_endtag(self, tag: str) -> None:
        if self._open:
            self._open.pop()

    def handle_data(self, data: str) -> None:
        if not data.strip():
            return
        for node_id in self._open:
            if node_id is not None:
                self.nodes[node_id]["text"].append(data.strip())


def parse_nodes(cleaned_html: str) -> dict[str, dict[str, Any]]:
    collector = _NodeCollector()
    collector.feed(cleaned_html or "")
    collector.close()
    return collector.nodes


def _attributes(raw: Any) -> dict[str, str]:
    if isinstance(raw, dict):
        return {str(k): str(v) for k, v in raw.items()}
    if isinstance(raw, str) and raw.strip():
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            return {}
        return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}
    return {}


def element_text(tag: str, attributes: dict[str, str], text_parts: list[str]) -> str:
    words = " ".join(text_parts).split()[:MAX_WORDS]
    salient = [attributes[name] for name in SALIENT_ATTRIBUTES if attributes.get(name)]
    return " ".join([tag, *words, *salient]).strip()


def candidate_elements(candidates: list[dict[str, Any]], cleaned_html: str) -> list[Element]:
    """Elements for Mind2Web candidates ({backend_node_id, tag, attributes}); the page's HTML
    supplies the visible text where the node is present in it."""
    nodes = parse_nodes(cleaned_html)
    elements = []
    for candidate in candidates:
        node_id = str(candidate["backend_node_id"])
        node = nodes.get(node_id)
        attributes = _attributes(candidate.get("attributes"))
        tag = candidate.get("tag") or (node["tag"] if node else "")
        if node:
            attributes = {**attributes, **node["attributes"]}
        elements.append(Element(node_id, element_text(tag, attributes, node["text"] if node else []), tag))
    return elements
