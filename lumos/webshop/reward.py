"""The WebShop reward (Yao et al. 2022, ``web_agent_site/engine/goal.py``), written afresh.

    reward = r_type * (attribute matches + option matches + r_price) / (#attributes + #options + 1)

- r_type (product type): 1.0 when the purchased product shares the goal's search query, or at
  least two of its category path segments, or more than 0.2 of the goal title's nouns; 0.5 when
  none of these holds; 0.1 when the noun overlap is below 0.1; 0.0 when it is zero.
- an attribute matches when a product attribute fuzzily matches it (token-set ratio > 85), or it
  occurs in the title, the bullet points or the description;
- an option matches when a purchased option value fuzzily matches it, colours first normalised;
- r_price: the price paid is at most the goal's upper bound.

Differences from the original, kept deliberately small:
- fuzzy matching uses rapidfuzz's token-set ratio with the same preprocessing and integer rounding
  that thefuzz applies (thefuzz is a wrapper of rapidfuzz); thefuzz's ASCII folding is not applied.
- the title similarity needs nouns. The original tags them with spaCy's ``en_core_web_lg``; the
  default here is a dependency-free heuristic (content words: alphabetic, not stop words, not
  obvious adjectives/verbs/adverbs by suffix). Pass ``nouns=spacy_nouns()`` to use spaCy when it
  and a model are installed. Only ``title_score`` (hence r_type) can differ.
- goal options given as a dict (synthetic goals) are compared by their values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

from lumos.webshop.normalize import normalize_color

FUZZY_THRESHOLD = 85
NounExtractor = Callable[[str], list[str]]

_WORD = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?")
_STOP_WORDS = frozenset("""
a an the and or but if of at by for with about against between into through during before after above below
to from up down in out on off over under again further then once here there when where why how all any both
each few more most other some such no nor not only own same so than too very s t can will just don should now
is are was were be been being have has had having do does did doing i me my we our you your he him his she her
it its they them their what which who whom this that these those am would could w x set pack piece pcs inch
inches new
""".split())
# Suffixes of words that are rarely nouns in product titles (adjectives, adverbs, participles).
_NON_NOUN_SUFFIXES = ("ly", "ous", "ful", "ive", "less", "able", "ible", "ed", "ish")


def heuristic_nouns(text: str) -> list[str]:
    """Lower-cased content words of a title that are likely nouns (spaCy-free approximation)."""
    words = []
    for word in _WORD.findall(text.lower()):
        if len(word) < 2 or word in _STOP_WORDS:
            continue
        if len(word) > 4 and word.endswith(_NON_NOUN_SUFFIXES):
            continue
        words.append(word)
    return words


def spacy_nouns(model: str = "en_core_web_lg") -> NounExtractor:
    """The original's noun tagger (NOUN/PROPN tokens); spaCy and the model must be installed."""
    import spacy

    nlp = spacy.load(model)

    def extract(text: str) -> list[str]:
        return [token.text.lower() for token in nlp(text) if token.pos_ in ("PNOUN", "NOUN", "PROPN")]

    return extract


def fuzzy_ratio(left: str, right: str) -> int:
    """thefuzz's ``token_set_ratio`` (processed, rounded to an int) via rapidfuzz."""
    from rapidfuzz import fuzz, utils

    return int(round(fuzz.token_set_ratio(left, right, processor=utils.default_process)))


# --------------------------------------------------------------------------- components


@dataclass(frozen=True)
class TypeReward:
    r_type: float
    query_match: bool
    category_match: bool
    title_score: float


def _category_path(text: str) -> set[str]:
    return {segment.strip() for segment in text.split("›")}


def type_reward(purchased: Mapping[str, Any], goal: Mapping[str, Any],
                nouns: NounExtractor = heuristic_nouns) -> TypeReward:
    query_match = purchased["query"] == goal["query"]
    category_match = len(_category_path(purchased["product_category"])
                         & _category_path(goal["product_category"])) >= 2
    purchased_nouns = set(nouns(purchased["name"]))
    desired_nouns = nouns(goal["name"])
    # The denominator counts the goal's nouns with repetitions, as the original does.
    title_score = 0.2 if not desired_nouns else len(purchased_nouns & set(desired_nouns)) / len(desired_nouns)
    r_type = 1.0
    if not (query_match or category_match or title_score > 0.2):
        r_type = 0.5
    if title_score < 0.1:
        r_type = 0.1
    if title_score == 0.0:
        r_type = 0.0
    return TypeReward(r_type, query_match, category_match, title_score)


def attribute_matches(purchased: Mapping[str, Any], goal_attributes: Iterable[str]) -> int:
    product_attributes = purchased.get("Attributes", [])
    title = purchased.get("Title", "").lower()
    bullets = " ".join(purchased.get("BulletPoints", [])).lower()
    description = purchased.get("Description", "").lower()
    matches = 0
    for attribute in goal_attributes:
        if any(fuzzy_ratio(candidate, attribute) > FUZZY_THRESHOLD for candidate in product_attributes):
            matches += 1
        elif attribute in title or attribute in bullets or attribute in description:
            matches += 1
    return matches


def option_matches(purchased_options: Iterable[str], goal_options: Iterable[str]) -> int:
    purchased = [normalize_color(option) for option in purchased_options]
    matches = 0
    for goal_option in (normalize_color(option) for option in goal_options):
        if any(fuzzy_ratio(option, goal_option) > FUZZY_THRESHOLD for option in purchased):
            matches += 1
    return matches


def price_reward(price: float, price_upper: float) -> bool | None:
    """None when the goal sets no price bound (a non-positive upper bound)."""
    return price <= price_upper if price_upper > 0 else None


def combine_reward(*, r_type: float, n_attributes: int, attribute_hits: int, n_options: int,
                   option_hits: int, r_price: bool | None) -> float:
    """The aggregation: matched fraction of (attributes, options, price), scaled by r_type."""
    matched = attribute_hits + option_hits + (1 if r_price else 0)
    return r_type * matched / (n_attributes + n_options + 1)


# --------------------------------------------------------------------------- the reward


@dataclass(frozen=True)
class RewardBreakdown:
    reward: float
    r_type: float
    query_match: bool
    category_match: bool
    title_score: float
    r_att: float
    r_option: float | None
    r_price: bool | None
    n_attributes: int
    n_options: int

    def info(self) -> dict[str, Any]:
        """The components as WebShop's verbose ``reward_info`` names them."""
        denominator = self.n_attributes + self.n_options + 1
        info: dict[str, Any] = {
            "r_type": self.r_type, "r_att": self.r_att, "w_att": self.n_attributes / denominator,
            "query_match": self.query_match, "category_match": self.category_match,
            "title_score": self.title_score,
        }
        if self.r_option is not None:
            info["r_option"] = self.r_option
            info["w_option"] = self.n_options / denominator
        if self.r_price is not None:
            info["r_price"] = self.r_price
            info["w_price"] = 1 / denominator
        return info


def goal_option_values(goal_options: Any) -> list[str]:
    return list(goal_options.values()) if isinstance(goal_options, Mapping) else list(goal_options)


def get_reward(purchased: Mapping[str, Any], goal: Mapping[str, Any], price: float,
               options: Mapping[str, str], nouns: NounExtractor = heuristic_nouns) -> RewardBreakdown:
    """Score buying ``purchased`` at ``price`` with the chosen ``options`` {name: value} against ``goal``."""
    kind = type_reward(purchased, goal, nouns)
    goal_attributes = list(goal["attributes"])
    goal_options = goal_option_values(goal["goal_options"])
    attribute_hits = attribute_matches(purchased, goal_attributes)
    option_hits = option_matches(list(options.values()), goal_options)
    r_price = price_reward(price, goal["price_upper"])
    reward = combine_reward(r_type=kind.r_type, n_attributes=len(goal_attributes), attribute_hits=attribute_hits,
                            n_options=len(goal_options), option_hits=option_hits, r_price=r_price)
    return RewardBreakdown(
        reward=reward, r_type=kind.r_type, query_match=kind.query_match, category_match=kind.category_match,
        title_score=kind.title_score,
        r_att=attribute_hits / len(goal_attributes) if goal_attributes else 0.0,
        r_option=option_hits / len(goal_options) if goal_options else None,
        r_price=r_price, n_attributes=len(goal_attributes), n_options=len(goal_options),
    )


def reward_from_components(reward_info: Mapping[str, Any], n_attributes: int, n_options: int) -> float:
    """Recompute the total from a recorded ``reward_info`` (fractions back to match counts)."""
    attribute_hits = round(reward_info["r_att"] * n_attributes)
    option_hits = round(reward_info.get("r_option", 0.0) * n_options)
    return combine_reward(r_type=reward_info["r_type"], n_attributes=n_attributes, attribute_hits=attribute_hits,
                          n_options=n_options, option_hits=option_hits, r_price=reward_info.get("r_price"))
