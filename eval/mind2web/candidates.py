"""Text representations of Mind2Web candidate elements: MindAct's ``ancestors: ...\\ntarget: ...`` form.

MindAct's candidate ranker (and the original Lumos evaluation) sees each candidate as the page's
cleaned HTML pruned around it, written in a bracket notation::

    ancestors: /html/img save up to 35% off/img previous slide/a
    target: (button id=0PLAN TRAVEL)

Pruning keeps the candidate, its ancestors, its descendants (six levels, the first 50) and up to
three element siblings on each side; a kept element whose only attribute was its node id and
that holds no text and at most one child is dissolved into its parent. Each element is then
written with the salient attribute values (lower-cased, short words only) as its ``meta``; the
candidate alone keeps an id (``id=0``). ``ancestors`` is the pruned page without the candidate,
flattened into a path (last 50 words); ``target`` is the candidate's subtree (first 100 words).
This follows OSU-NLP-Group/Mind2Web (``src/data_utils/dom_utils.py``), which the released
``osunlp/MindAct_CandidateGeneration_deberta-v3-base`` cross-encoder was trained on, with the
standard library's XML parser.

Pages that are not well-formed XML (a truncated HTML excerpt) are read by a tolerant HTML
parser that closes what is left open (:func:`parse_page`).
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from typing import Any, Iterable

from lumos.tools.web import Element

NODE_ID = "backend_node_id"
TEXT_TAG = "text"
SALIENT_ATTRIBUTES = frozenset({
    "alt", "aria_description", "aria_label", "aria_role", "input_checked", "input_value", "label", "name",
    "option_selected", "placeholder", "role", "text_value", "title", "type", "value",
})
# The order attribute values are written in, and values that say nothing.
META_ORDER = ("role", "aria_role", "type", "alt", "aria_description", "aria_label", "label", "title", "name",
              "text_value", "value", "placeholder", "input_checked", "input_value", "option_selected", "class")
EMPTY_VALUES = frozenset({"hidden", "none", "presentation", "null", "undefined"})
MAX_DEPTH, MAX_CHILDREN, MAX_SIBLINGS = 5, 50, 3
MAX_VALUE_WORDS, MAX_META_WORDS = 5, 20
MAX_TARGET_WORDS, MAX_ANCESTOR_WORDS = 100, 50
# Applied in this order to the serialised text, as MindAct does (so "&amp;nbsp;" ends up a space).
_UNESCAPES = (("&quot;", '"'), ("&amp;", "&"), ("&lt;", "<"), ("&gt;", ">"), ("&nbsp;", " "), ("&ndash;", "-"),
              ("&rsquo;", "'"), ("&lsquo;", "'"), ("&ldquo;", '"'), ("&rdquo;", '"'), ("&#39;", "'"),
              ("&#40;", "("), ("&#41;", ")"))


class PageParseError(ValueError):
    """A page's HTML that could not be read at all."""


# --------------------------------------------------------------------------- reading pages


class _TolerantBuilder(HTMLParser):
    """HTML (possibly cut off) -> an ElementTree, closing open elements at the end."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = ET.Element("html")
        self.stack = [self.root]
        self.started = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if not self.started and tag == "html":
            self.root.attrib.update(attributes)
        else:
            element = ET.SubElement(self.stack[-1], tag, attributes)
            self.stack.append(element)
        self.started = True

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if len(self.stack) > 1:
            self.stack.pop()

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self.stack) - 1, 0, -1):
            if self.stack[depth].tag == tag:
                del self.stack[depth:]
                return

    def handle_data(self, data: str) -> None:
        if not data.strip():
            return
        parent = self.stack[-1]
        if len(parent):
            parent[-1].tail = (parent[-1].tail or "") + data
        else:
            parent.text = (parent.text or "") + data


def parse_page(cleaned_html: str) -> ET.Element:
    """The page as an element tree: strict XML when it is well formed, else a tolerant HTML read."""
    try:
        return ET.fromstring(cleaned_html)
    except ET.ParseError:
        builder = _TolerantBuilder()
        builder.feed(cleaned_html or "")
        builder.close()
        return builder.root


# --------------------------------------------------------------------------- pruning


class Page:
    """A parsed page with what pruning looks up for every candidate: parents and nodes by id."""

    def __init__(self, root: ET.Element):
        self.root = root
        self.parents = {child: parent for parent in root.iter() for child in parent}
        self.by_id: dict[str, ET.Element] = {}
        for node in root.iter():
            node_id = node.get(NODE_ID)
            if node_id is not None:
                self.by_id.setdefault(node_id, node)  # the first in document order, as an XPath lookup


def _descendants(node: ET.Element, max_depth: int, depth: int = 0) -> list[ET.Element]:
    """Children, each followed by its own descendants, down to ``max_depth + 1`` levels."""
    if depth > max_depth:
        return []
    found = []
    for child in node:
        found.append(child)
        found += _descendants(child, max_depth, depth + 1)
    return found


def _neighbourhood(page: Page, node: ET.Element, candidate_id: str) -> set[str]:
    """Node ids to keep: the candidate, its ancestors, descendants and nearest element siblings."""
    keep = {candidate_id}
    ancestor = page.parents.get(node)
    while ancestor is not None:
        keep.add(ancestor.get(NODE_ID, ""))
        ancestor = page.parents.get(ancestor)
    keep.update(n.get(NODE_ID, "") for n in _descendants(node, MAX_DEPTH)[:MAX_CHILDREN])
    parent = page.parents.get(node)
    if parent is not None:
        siblings = [n for n in parent if n.tag != TEXT_TAG]
        index = siblings.index(node)
        keep.update(n.get(NODE_ID, "") for n in siblings[max(0, index - MAX_SIBLINGS):index + MAX_SIBLINGS + 1])
    return keep


def _copy_kept(node: ET.Element, keep: set[str]) -> ET.Element:
    """A copy of ``node`` with the children that survive pruning: an element survives when it and all
    its ancestors are kept; a text node when its parent survives."""
    clone = ET.Element(node.tag, dict(node.attrib))
    clone.text, clone.tail = node.text, node.tail
    for child in node:
        owner = node if child.tag == TEXT_TAG else child
        if owner.get(NODE_ID, "") in keep:
            clone.append(_copy_kept(child, keep))
    return clone


def _dissolve(node: ET.Element, parent: ET.Element) -> None:
    """Put ``node``'s children where ``node`` was (its own text and tail are dropped, as in MindAct)."""
    position = list(parent).index(node)
    parent.remove(node)
    for offset, child in enumerate(list(node)):
        parent.insert(position + offset, child)


def prune(page: Page | ET.Element, candidate_id: str) -> ET.Element:
    """A copy of ``page`` reduced to the neighbourhood of one candidate (module docstring)."""
    page = page if isinstance(page, Page) else Page(page)
    node = page.by_id.get(candidate_id)
    if node is None:
        raise PageParseError(f"candidate {candidate_id} is not on the page")
    tree = _copy_kept(page.root, _neighbourhood(page, node, candidate_id))
    parents = {child: parent for parent in tree.iter() for child in parent}
    for element in reversed(list(tree.iter())):  # children before their parents
        parent = parents.get(element)
        if element.get(NODE_ID) != candidate_id or element.tag == TEXT_TAG:
            element.attrib.pop(NODE_ID, None)
        if (not element.attrib and not any(child.tag == TEXT_TAG for child in element) and parent is not None
                and element.tag != TEXT_TAG and len(element) <= 1):
            for child in element:
                parents[child] = parent
            _dissolve(element, parent)
    return tree


# --------------------------------------------------------------------------- writing


def _meta(element: ET.Element) -> str:
    values: list[str] = []
    for name in META_ORDER:
        value = element.get(name)
        if value is None:
            continue
        value = value.lower()
        if value in EMPTY_VALUES or value.startswith("http"):
            continue
        value = " ".join([word for word in value.split() if len(word) < 15][:MAX_VALUE_WORDS])
        if value and value not in values:
            values.append(value)
    return " ".join(" ".join(values).split()[:MAX_META_WORDS])


def _escape(text: str, attribute: bool = False) -> str:
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    if attribute:
        text = text.replace('"', "&quot;").replace("\n", "&#10;").replace("\r", "&#13;").replace("\t", "&#9;")
    return text


def _serialise(element: ET.Element, ids: dict[str, int], out: list[str], with_tail: bool) -> None:
    """XML text of the element with MindAct's attributes (an id if it kept its node id, its meta)."""
    if element.tag == TEXT_TAG:
        attributes = [(name, value) for name, value in element.attrib.items()]
        text = " ".join((element.text or "").split()[:MAX_META_WORDS])
    else:
        attributes = []
        node_id = element.get(NODE_ID)
        if node_id:
            attributes.append(("id", str(ids.setdefault(node_id, len(ids)))))
        meta = _meta(element)
        if meta:
            attributes.append(("meta", meta))
        text = element.text or ""
    opening = element.tag + "".join(f' {name}="{_escape(value, True)}"' for name, value in attributes)
    if not text and len(element) == 0 and not (element.tag == TEXT_TAG and element.text is not None):
        out.append(f"<{opening}/>")
    else:
        out.append(f"<{opening}>{_escape(text)}")
        for child in element:
            _serialise(child, ids, out, True)
        out.append(f"</{element.tag}>")
    if with_tail and element.tail:
        out.append(_escape(element.tail))


def tree_text(element: ET.Element) -> str:
    """MindAct's bracket notation of a (pruned) tree: ``(tag id=0 meta words(child ...)text)``."""
    out: list[str] = []
    _serialise(element, {}, out, False)
    text = "".join(out).replace('"', " ")
    text = text.replace("meta= ", "").replace("id= ", "id=").replace(" >", ">")
    text = re.sub(r"<text>(.*?)</text>", r"\1", text)
    text = text.replace("/>", "$/$>")
    text = re.sub(r"</(.+?)>", ")", text)
    text = re.sub(r"<(.+?)>", r"(\1", text)
    text = text.replace("$/$", ")")
    for escaped, plain in _UNESCAPES:
        text = text.replace(escaped, plain)
    return re.sub(r"\s+", " ", text).strip()


def candidate_text(page: Page | ET.Element, candidate_id: str) -> str:
    """``ancestors: <path>\\ntarget: <subtree>`` for one candidate of ``page``."""
    tree = prune(page, candidate_id)
    parents = {child: parent for parent in tree.iter() for child in parent}
    node = next(n for n in tree.iter() if n.get(NODE_ID) is not None)
    parent = parents.get(node)
    ancestors = ""
    if parent is not None:
        parent.remove(node)
        ancestors = tree_text(tree)
    target = " ".join(tree_text(node).split()[:MAX_TARGET_WORDS])
    if ancestors.strip():
        ancestors = re.sub(r"\s*\(\s*", "/", ancestors)
        ancestors = re.sub(r"\s*\)\s*", "", ancestors)
        ancestors = " ".join(ancestors.split()[-MAX_ANCESTOR_WORDS:])
    return f"ancestors: {ancestors}\ntarget: {target}"


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


def candidate_elements(candidates: Iterable[dict[str, Any]], cleaned_html: str) -> list[Element]:
    """Elements for Mind2Web candidates (``{backend_node_id, tag, attributes}``), in the given order,
    each with MindAct's text. A candidate absent from the page is added at the end of the root (with
    its listed attributes), as a truncated page needs."""
    candidates = list(candidates)
    root = parse_page(cleaned_html)
    present = {n.get(NODE_ID) for n in root.iter()}
    for candidate in candidates:
        node_id = str(candidate["backend_node_id"])
        if node_id not in present:
            attributes = {**_attributes(candidate.get("attributes")), NODE_ID: node_id}
            ET.SubElement(root, candidate.get("tag") or "div", attributes)
            present.add(node_id)
    page = Page(root)
    return [Element(str(c["backend_node_id"]), candidate_text(page, str(c["backend_node_id"])), c.get("tag") or "")
            for c in candidates]
