"""The WebShop text environment on the shipped sample catalogue, driven by scripted actions."""

from __future__ import annotations

import json

import pytest

from lumos.webshop.catalogue import load_catalogue
from lumos.webshop.env import WebShopActionError, WebShopTextEnv, parse_webshop_action
from lumos.webshop.trajectory import actions_from_human_trajectory


@pytest.fixture(scope="module")
def env():
    return WebShopTextEnv(load_catalogue())


def _goal_index(env, asin):
    return next(i for i, goal in enumerate(env.goals) if goal["asin"] == asin)


def test_sample_catalogue_loads_in_webshop_shape():
    catalogue = load_catalogue()
    assert len(catalogue.products) == 24 and len(catalogue.goals) == 24
    shoes = catalogue.by_asin["SMPB000002"]
    assert shoes["Price"] == "$59.99 to $69.99" and 59.99 <= catalogue.prices["SMPB000002"] <= 69.99
    assert catalogue.by_asin["SMPB000001"]["options"]["color"] == ["navy blue", "black", "grey | white"]
    assert all("price lower than" in goal["instruction_text"] for goal in catalogue.goals)


def test_parse_webshop_action():
    assert parse_webshop_action("search[red earbuds]") == ("search", "red earbuds")
    assert parse_webshop_action(" click[Buy Now] ") == ("click", "Buy Now")
    with pytest.raises(WebShopActionError):
        parse_webshop_action("Search(red earbuds)")


def test_every_sample_goal_is_reachable_with_reward_one(env):
    for index, goal in enumerate(env.goals):
        env.reset(index)
        product = env.catalogue.by_asin[goal["asin"]]
        result = env.step(f"search[{product['name']}]")
        while goal["asin"].lower() not in env.clickables():
            assert "next >" in env.clickables(), goal["asin"]
            env.step("click[next >]")
        env.step(f"click[{goal['asin'].lower()}]")
        for option in goal["goal_options"]:
            values = [v for vs in product["options"].values() for v in vs if option in v]
            assert env.step(f"click[{values[0]}]").info["valid"]
        result = env.step("click[buy now]")
        assert result.done and result.reward == 1.0, (goal["asin"], result.info)


def test_navigation_pages_and_invalid_actions(env):
    env.reset(_goal_index(env, "SMPB000012"))
    start = env.observation
    assert start.startswith("WebShop [SEP] Instruction: [SEP] ") and start.endswith(" [SEP] Search")
    invalid = env.step("click[buy now]")
    assert not invalid.info["valid"] and env.observation == start
    env.step("search[stainless steel]")
    assert "Page 1 (Total results:" in env.observation and "search[x]" not in env.clickables()
    assert not env.step("search[again]").info["valid"]
    env.step("click[smpb000012]")
    assert {"teal", "38 | 40 | 41 mm", "description", "buy now"} <= set(env.clickables())
    env.step("click[features]")
    assert "Quick release" in env.observation
    env.step("click[< prev]")
    assert env.observation.endswith("Buy Now")
    env.step("click[< prev]")
    assert "Page 1" in env.observation
    env.step("click[back to search]")
    assert env.observation == start


def test_pagination_ten_per_page(env):
    env.reset(0)
    env.step("search[stainless steel waterproof rubber sole living room memory foam natural black]")
    total = len(env.state.results)
    assert total > 10
    first = [c for c in env.clickables() if c.startswith("smpb")]
    assert len(first) == 10 and "next >" in env.clickables() and "< prev" not in env.clickables()
    env.step("click[next >]")
    second = [c for c in env.clickables() if c.startswith("smpb")]
    assert second and not set(first) & set(second) and "< prev" in env.clickables()


HAND_MADE_TRAJECTORY = [  # the human-demonstration format, on the sample catalogue
    {"page": "index", "url": "/s1"},
    {"page": "search_results", "url": "/search_results/s1", "content": {"keywords": ["teal", "steel", "strap"], "page": 1}},
    {"page": "item_page", "url": "/item_page/s1", "content": {"asin": "SMPB000012", "page": "1", "options": {}}},
    {"page": "item_sub_page", "url": "/item_sub_page/s1/SMPB000012/x/1/Features/%7B%7D",
     "content": {"asin": "SMPB000012", "options": {}}},
    {"page": "item_page", "url": "/item_page/s1", "content": {"asin": "SMPB000012", "page": "1", "options": {}}},
    {"page": "item_page", "url": "/item_page/s1", "content": {"asin": "SMPB000012", "page": "1",
                                                           "options": {"color": "teal"}}},
    {"page": "done", "url": "/done/s1", "content": {"asin": "SMPB000012", "options": {"color": "teal"}}},
]


def test_hand_made_trajectory_replays_to_reward_one_and_unfinished_scores_nothing(env):
    actions = actions_from_human_trajectory(HAND_MADE_TRAJECTORY)
    assert actions == ["search[teal steel strap]", "click[smpb000012]", "click[features]", "click[< prev]",
                       "click[teal]", "click[buy now]"]
    env.reset(_goal_index(env, "SMPB000012"))
    results = [env.step(action) for action in actions]
    assert all(result.info["valid"] for result in results)
    assert results[-1].done and results[-1].reward == 1.0
    env.reset(_goal_index(env, "SMPB000012"))
    unfinished = [env.step(action) for action in actions[:-1]]
    assert not any(result.done for result in unfinished) and sum(r.reward for r in unfinished) == 0.0


def test_wrong_option_lowers_reward(env):
    env.reset(_goal_index(env, "SMPB000012"))
    for action in ["search[teal steel strap]", "click[smpb000012]", "click[black]"]:
        env.step(action)
    result = env.step("click[buy now]")
    assert result.reward == pytest.approx(2 / 3) and result.info["reward_info"]["r_option"] == 0.0


def test_real_human_trajectories_become_action_sequences(shared_data):
    path = shared_data / "webshop" / "human_trajs" / "20220427_1_15.jsonl"
    pages = [json.loads(line) for line in path.read_text().splitlines()]
    assert actions_from_human_trajectory(pages) == [
        "search[teen girl pink loafers size eight]", "click[b0868kf3zb]", "click[8]", "click[z2-pink]",
        "click[buy now]"]
