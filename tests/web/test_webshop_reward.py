"""The WebShop reward: each component on hand-made goals/products, and the recorded human rewards."""

from __future__ import annotations

import json

import pytest

from lumos.webshop.normalize import normalize_color
from lumos.webshop.reward import (attribute_matches, combine_reward, fuzzy_ratio, get_reward, heuristic_nouns,
                                  option_matches, price_reward, reward_from_components, type_reward)

PRODUCT = {
    "asin": "S000000001", "query": "running shoes", "name": "Trailblaze Men's Running Shoes Lightweight Mesh Sneaker",
    "Title": "Trailblaze Men's Running Shoes Lightweight Mesh Sneaker",
    "product_category": "Clothing, Shoes & Jewelry › Men › Shoes › Athletic › Running",
    "Attributes": ["rubber sole", "lace up"], "BulletPoints": ["Breathable mesh upper", "Memory foam insole"],
    "Description": "A cushioned trail runner with non slip grip.",
}
GOAL = {
    "asin": "S000000001", "query": "running shoes", "name": PRODUCT["name"],
    "product_category": PRODUCT["product_category"], "attributes": ["rubber sole", "memory foam", "non slip"],
    "goal_options": ["navy blue", "10.5"], "price_upper": 60.0,
}


def test_type_reward_levels():
    assert type_reward(PRODUCT, GOAL).r_type == 1.0
    assert type_reward(PRODUCT, GOAL).title_score == 1.0
    other = dict(PRODUCT, query="sofas", product_category="Home › Furniture", name="Deep Seat Sofa Couch")
    none = type_reward(other, GOAL)
    assert (none.query_match, none.category_match, none.title_score, none.r_type) == (False, False, 0.0, 0.0)
    # one noun of the goal's title in common: under 0.2 -> no match -> 0.5, and >= 0.1 keeps 0.5
    goal = dict(GOAL, name="Trailblaze Sofa Couch Cushion Blanket Pillow", query="x", product_category="A › B")
    weak = type_reward(PRODUCT, goal)
    assert weak.title_score == pytest.approx(1 / 6) and weak.r_type == 0.5
    # the same overlap counts when the query matches
    assert type_reward(PRODUCT, dict(goal, query="running shoes")).r_type == 1.0
    # two shared category segments are a category match
    boots = dict(PRODUCT, product_category="Men › Shoes › Boots")
    assert type_reward(boots, GOAL).category_match
    assert not type_reward(boots, dict(GOAL, product_category="Women › Shoes")).category_match


def test_heuristic_nouns_keep_nouns_and_drop_function_words():
    assert heuristic_nouns("Modern Upholstered Sofa for the Living Room, Grey") == [
        "modern", "sofa", "living", "room", "grey"]


def test_attribute_matches_fuzzy_then_text():
    assert attribute_matches(PRODUCT, ["rubber sole"]) == 1          # attribute list
    assert attribute_matches(PRODUCT, ["rubber soles"]) == 1         # fuzzy > 85
    assert attribute_matches(PRODUCT, ["memory foam"]) == 1          # bullet points
    assert attribute_matches(PRODUCT, ["non slip"]) == 1             # description
    assert attribute_matches(PRODUCT, ["lightweight"]) == 1          # title (lower-cased)
    assert attribute_matches(PRODUCT, ["wood frame", "long lasting"]) == 0


def test_option_matches_normalise_colours():
    assert normalize_color("z2-pink") == "pink"
    assert option_matches(["blue", "10.5"], ["navy blue", "10.5"]) == 2   # "navy blue" normalises to blue
    assert option_matches(["navy", "10.5"], ["navy blue", "10.5"]) == 1   # ... so plain "navy" misses
    assert option_matches(["z2-pink", "8"], ["pink", "8"]) == 2
    assert option_matches(["3t280"], ["rl56 | 60 silver mist"]) == 0
    assert option_matches([], ["grey"]) == 0
    assert fuzzy_ratio("Rubber Sole!", "rubber sole") == 100


def test_price_reward():
    assert price_reward(59.99, 60.0) is True
    assert price_reward(60.01, 60.0) is False
    assert price_reward(5.0, 0) is None


def test_get_reward_aggregates_components():
    full = get_reward(PRODUCT, GOAL, price=49.0, options={"color": "dark navy blue", "size": "10.5"})
    assert full.reward == 1.0 and full.r_option == 1.0 and full.r_att == 1.0
    partial = get_reward(PRODUCT, dict(GOAL, attributes=["rubber sole", "wood frame"]), price=70.0,
                         options={"color": "black"})
    # 1 attribute + 0 options + no price, over 2 + 2 + 1
    assert partial.reward == pytest.approx(1 / 5)
    assert partial.info() == {"r_type": 1.0, "r_att": 0.5, "w_att": 0.4, "query_match": True,
                              "category_match": True, "title_score": 1.0, "r_option": 0.0, "w_option": 0.4,
                              "r_price": False, "w_price": 0.2}
    assert combine_reward(r_type=0.5, n_attributes=1, attribute_hits=1, n_options=0, option_hits=0,
                          r_price=True) == 0.5


def _done_pages(shared_data):
    pages = []
    for path in sorted((shared_data / "webshop" / "human_trajs").glob("*.jsonl")):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            if record["page"] == "done":
                pages.append((path.name, record))
    return pages


def test_aggregation_reproduces_recorded_human_rewards(shared_data):
    pages = _done_pages(shared_data)
    assert len(pages) == 9
    for name, page in pages:
        goal, info = page["goal"], page["reward_info"]
        total = reward_from_components(info, len(goal["attributes"]), len(goal["goal_options"]))
        assert total == pytest.approx(page["reward"]), name
        # the option and price components recomputed from the raw purchase agree with the record
        bought = page["content"]
        assert price_reward(bought["price"], goal["price_upper"]) == info["r_price"], name
        if goal["goal_options"]:
            hits = option_matches(list(bought["options"].values()), goal["goal_options"])
            assert hits / len(goal["goal_options"]) == pytest.approx(info["r_option"]), name
        else:
            assert "r_option" not in info
