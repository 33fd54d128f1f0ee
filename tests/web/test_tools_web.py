"""The web execution module: argument parsing, the BM25 ranker, CLICK/TYPE/SELECT."""

from __future__ import annotations

import pytest

from lumos.format import parse_action
from lumos.tools.web import (BM25Ranker, Element, WebActionError, WebPage, execute_web_action, make_ranker,
                             parse_web_call, rank, top_k)

PAGE = WebPage([
    Element("1", "img Flatware", "img"),
    Element("2", "button Submit search", "button"),
    Element("3", "input search by zip code or city, state", "input"),
    Element("4", "select Reservation type Dine-in Pickup Delivery", "select"),
    Element("5", "a Track order", "a"),
])


@pytest.mark.parametrize("text, expected", [
    ('CLICK(Env, "submit button")', ("CLICK", "Env", "submit button", None)),
    ('TYPE(Env, "zip code box", "san diego")', ("TYPE", "Env", "zip code box", "san diego")),
    ('SELECT(R2, "reservation type", "Dine-in")', ("SELECT", "R2", "reservation type", "Dine-in")),
    ('CLICK(Env, "smile :), ok")', ("CLICK", "Env", "smile :), ok", None)),
    ("CLICK(Env, QUERY: submit button)", ("CLICK", "Env", "submit button", None)),
    ("TYPE(Env, QUERY: zip code, TEXT: san diego)", ("TYPE", "Env", "zip code", "san diego")),
    ("TYPE(Env, zip code box, 43202)", ("TYPE", "Env", "zip code box", "43202")),
])
def test_parse_web_call_forms(text, expected):
    call = parse_web_call(parse_action(text))
    assert (call.tool, call.env_name, call.query, call.text) == expected


@pytest.mark.parametrize("text", [
    'CLICK(Env)', 'CLICK(Page, "x")', 'TYPE(Env, "zip")', 'CLICK(Env, "a", "b")', 'CLICK(Env, "")',
    'Calculator(Env, "x")',
])
def test_parse_web_call_rejects(text):
    with pytest.raises(WebActionError):
        parse_web_call(parse_action(text))


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
    click = execute_web_action(parse_action('CLICK(Env, "submit search button")'), PAGE)
    assert (click.op, click.element.id, click.value) == ("CLICK", "2", "")
    typed = execute_web_action(parse_action('TYPE(Env, "zip code", "san diego")'), PAGE)
    assert (typed.op, typed.element.id, typed.value) == ("TYPE", "3", "san diego")
    selected = execute_web_action(parse_action('SELECT(Env, "reservation", "Pickup")'), PAGE)
    assert (selected.op, selected.element.id, selected.value) == ("SELECT", "4", "Pickup")
    assert selected.render() == "[select] select Reservation type Dine-in Pickup Delivery -> SELECT: Pickup"


def test_empty_page_and_unknown_ranker_kind_are_errors():
    with pytest.raises(WebActionError):
        WebPage([])
    with pytest.raises(ValueError):
        make_ranker("some/model", kind="nope")
    assert isinstance(make_ranker(None), BM25Ranker)


def test_doubled_quotes_read_back_as_written_by_the_converter():
    from lumos.convert.rules_web import quote_web_argument

    query, text = quote_web_argument('27" monitor, 4K'), quote_web_argument('say "hi"')
    action = parse_action(f"TYPE(Env, {query}, {text})")
    call = parse_web_call(action)
    assert (call.query, call.text) == ('27" monitor, 4K', 'say "hi"')


def test_web_toolbox_acts_on_its_environment_and_refuses_without_one():
    from lumos.tools import ToolError, toolbox
    from lumos.tools.web import StaticPage, web_toolbox

    page = StaticPage(PAGE)
    box = web_toolbox(page)
    variables: dict[str, str] = {}
    assert box.execute(parse_action('CLICK(Env, "submit search button")'), variables) == \
        "[button] button Submit search -> CLICK"
    assert box.execute(parse_action('SELECT(Env, "reservation", "Pickup")'), variables).endswith("-> SELECT: Pickup")
    assert [r.element.id for r in page.history] == ["2", "4"] and box.episode_end is None
    with pytest.raises(ToolError, match="bad arguments"):
        box.execute(parse_action('TYPE(Env)'), variables)
    with toolbox("web_agent") as bare, pytest.raises(ToolError, match="without an environment"):
        bare.execute(parse_action('CLICK(Env, "submit")'), {})
