"""The web execution module: the released web-action grammar, the BM25 ranker, CLICK/TYPE/SELECT."""

from __future__ import annotations

import re

import pytest

from lumos.tools.web import (BM25Ranker, Element, WebActionError, WebArgumentError, WebCall, WebPage,
                             execute_web_action, make_ranker, parse_web_action, parse_web_actions, parse_web_args,
                             parse_web_call, rank, render_web_action, top_k)

PAGE = WebPage([
    Element("1", "img Flatware", "img"),
    Element("2", "button Submit search", "button"),
    Element("3", "input search by zip code or city, state", "input"),
    Element("4", "select Reservation type Dine-in Pickup Delivery", "select"),
    Element("5", "a Track order", "a"),
])


@pytest.mark.parametrize("text, expected", [
    ("R1 = CLICK(Env, QUERY: Click the submit button)", ("CLICK", "Env", "Click the submit button", None, "R1")),
    ("R3 = TYPE(R2, QUERY: Type the zip code, TEXT: san diego)",
     ("TYPE", "R2", "Type the zip code", "san diego", "R3")),
    ("SELECT(R6, QUERY:Set the nights,TEXT:  6 nights )", ("SELECT", "R6", "Set the nights", "6 nights", None)),
    # free text: quotes, unbalanced parentheses, commas, '; ' and R-words are data
    ('R2 = CLICK(R1, QUERY: Click the 27" (4K monitor, see R9; then go)',
     ("CLICK", "R1", 'Click the 27" (4K monitor, see R9; then go', None, "R2")),
    ("R4 = TYPE(R3, QUERY: Type it, TEXT: a, TEXT: b)", ("TYPE", "R3", "Type it", "a, TEXT: b", "R4")),
])
def test_parse_web_call_reads_the_released_format(text, expected):
    call = parse_web_call(parse_web_action(text))
    assert (call.tool, call.env_name, call.query, call.text, call.output) == expected


@pytest.mark.parametrize("tool, page, query, text, output", [
    ("CLICK", "Env", "Enter the site for flight + cruise", None, "R1"),
    ("TYPE", "R2", "Type Atlanta as the departure location", "Atlanta", "R3"),
    ("SELECT", "R6", "Click 6 nights as the living period for the hotel", "6 nights", "R7"),
    ("CLICK", "R1", 'Open the "deals" page (R9 and more', None, "R2"),
])
def test_writer_and_reader_round_trip(tool, page, query, text, output):
    rendered = render_web_action(tool, page, query, text, output)
    assert rendered.startswith(f"{output} = {tool}({page}, QUERY: {query}")
    assert parse_web_call(parse_web_action(rendered)) == WebCall(tool, page, query, text, output)
    assert parse_web_args(tool, WebCall(tool, page, query, text).args()) == WebCall(tool, page, query, text)


@pytest.mark.parametrize("text, reason", [
    ('R1 = CLICK(Env, "submit button")', "lack ', QUERY:'"),           # the old quoted form
    ('R1 = TYPE(Env, "zip", "san diego")', "lack ', QUERY:'"),
    ("R1 = CLICK(Env)", "lack ', QUERY:'"),
    ("R1 = CLICK(Page, QUERY: x)", "not Env or R<n>"),
    ("R1 = CLICK(R0, QUERY: x)", "not Env or R<n>"),
    ("R1 = CLICK(Env, QUERY:  )", "query is empty"),
    ("R1 = TYPE(Env, QUERY: zip code)", "TYPE needs a TEXT"),
    ("R1 = SELECT(Env, QUERY: size, TEXT: )", "text is empty"),
    ("R1 = CLICK(Env, QUERY: go, TEXT: now)", "CLICK takes no TEXT"),
    ("R1 = Calculator(Env, QUERY: x)", "not a web action"),
    ("R1, R2 = CLICK(Env, QUERY: x)", "not a web action"),
    ("R1 = CLICK(Env, QUERY: x", "not a web action"),
])
def test_malformed_web_actions_raise_typed_errors_naming_the_shape(text, reason):
    with pytest.raises(WebArgumentError, match=re.escape(reason)) as caught:
        parse_web_call(parse_web_action(text))
    assert isinstance(caught.value, WebActionError) and "expected" in str(caught.value)


def test_writer_refuses_what_would_not_read_back():
    with pytest.raises(WebArgumentError, match="contains ', TEXT:'"):
        render_web_action("TYPE", "Env", "Type a, TEXT: b", "c", "R1")
    with pytest.raises(WebArgumentError, match="surrounding whitespace"):
        render_web_action("CLICK", "Env", " padded", None, "R1")
    with pytest.raises(WebArgumentError, match="output is not R<n>"):
        render_web_action("CLICK", "Env", "Go", None, "Env")


def test_a_reply_splits_only_where_the_next_action_starts():
    actions = parse_web_actions("R3 = TYPE(R2, QUERY: Type a; b, TEXT: x; y); R4 = CLICK(R3, QUERY: Pick it)")
    assert [(a.outputs, a.tool, a.args) for a in actions] == [
        (("R3",), "TYPE", "R2, QUERY: Type a; b, TEXT: x; y"), (("R4",), "CLICK", "R3, QUERY: Pick it")]
    with pytest.raises(WebArgumentError):
        parse_web_actions("  ")


def test_bm25_ranks_matching_element_first_and_keeps_page_order_on_ties():
    ranked = rank(BM25Ranker(), "track my order", PAGE.elements)
    assert ranked[0][0].id == "5"
    tied = rank(BM25Ranker(), "zzz unknown words", PAGE.elements)
    assert [element.id for element, _ in tied] == ["1", "2", "3", "4", "5"]


def test_top_k_pool_can_miss():
    pool = top_k(BM25Ranker(), "zip code city", PAGE.elements, k=2)
    assert pool[0].id == "3" and len(pool) == 2
    with pytest.raises(ValueError):
        top_k(BM25Ranker(), "x", PAGE.elements, k=0)


def test_execute_web_actions_return_chosen_element():
    click = execute_web_action(parse_web_action("R1 = CLICK(Env, QUERY: submit search button)"), PAGE)
    assert (click.op, click.element.id, click.value) == ("CLICK", "2", "")
    typed = execute_web_action(parse_web_action("R2 = TYPE(R1, QUERY: zip code, TEXT: san diego)"), PAGE)
    assert (typed.op, typed.element.id, typed.value) == ("TYPE", "3", "san diego")
    selected = execute_web_action(parse_web_action("R3 = SELECT(R2, QUERY: reservation, TEXT: Pickup)"), PAGE)
    assert (selected.op, selected.element.id, selected.value) == ("SELECT", "4", "Pickup")
    assert selected.render() == "[select] select Reservation type Dine-in Pickup Delivery -> SELECT: Pickup"


def test_empty_page_and_unknown_ranker_kind_are_errors():
    with pytest.raises(WebActionError):
        WebPage([])
    with pytest.raises(ValueError):
        make_ranker("some/model", kind="nope")
    assert isinstance(make_ranker(None), BM25Ranker)


def test_web_toolbox_acts_on_its_environment_and_refuses_without_one():
    from lumos.tools import ToolError, toolbox
    from lumos.tools.web import StaticPage, web_toolbox

    page = StaticPage(PAGE)
    box = web_toolbox(page)
    variables: dict[str, str] = {}
    assert box.execute(parse_web_action("R1 = CLICK(Env, QUERY: submit search button)"), variables) == \
        "[button] button Submit search -> CLICK"
    # R9 in the query is a word; only the page argument names a variable
    assert box.execute(parse_web_action("R2 = SELECT(R1, QUERY: reservation R9, TEXT: Pickup)"),
                       variables).endswith("-> SELECT: Pickup")
    assert [r.element.id for r in page.history] == ["2", "4"] and box.episode_end is None
    with pytest.raises(ToolError, match="undefined variable"):
        box.execute(parse_web_action("R3 = CLICK(R7, QUERY: go)"), variables)
    with pytest.raises(ToolError, match="TYPE needs a TEXT"):
        box.execute(parse_web_action("R3 = TYPE(R2, QUERY: zip)"), variables)
    with toolbox("web_agent") as bare, pytest.raises(ToolError, match="without an environment"):
        bare.execute(parse_web_action("R1 = CLICK(Env, QUERY: submit)"), {})
