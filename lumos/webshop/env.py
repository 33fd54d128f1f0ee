"""The WebShop text environment: search page, result pages, item pages, purchase.

Actions are WebShop's text actions, ``search[keywords]`` and ``click[button text]``; the
observation is the page's visible text joined by `` [SEP] `` (WebShop's ``text`` mode). An
action that does not apply on the current page leaves the state unchanged (reward 0,
``valid`` False in the info), as in WebShop. Buying ends the episode with the WebShop reward.

The pages follow WebShop's templates: a results page always offers ``Next >`` (WebShop shows it
even on the last page, which then lists nothing), an item page lists its buttons before its
option values (``back to search, < prev, description, features, reviews, buy now, <values>``,
duplicates once, as WebShop's clickable dictionary keeps them) and offers ``attributes`` only
with ``show_attrs``. WebShop's text environment also runs ``search[...]`` from any page; here
that takes ``search_anywhere=True`` (the released Lumos evaluation relies on it, replaying its
actions from a search on every click); by default a search needs the search page.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from lumos.webshop.catalogue import Catalogue
from lumos.webshop.reward import NounExtractor, RewardBreakdown, get_reward, heuristic_nouns
from lumos.webshop.search import ProductSearchEngine

SEP = " [SEP] "
RESULTS_PER_PAGE = 10
MAX_RESULTS = 50
ITEM_SECTIONS = ("description", "features", "reviews", "attributes")
ITEM_BUTTONS = ("description", "features", "reviews")
_ACTION = re.compile(r"(search|click)\[(.*)\]", re.DOTALL)


class WebShopActionError(ValueError):
    """Text that is not a WebShop action (``search[...]`` or ``click[...]``)."""


def parse_webshop_action(text: str) -> tuple[str, str]:
    match = _ACTION.fullmatch(text.strip())
    if not match:
        raise WebShopActionError(f"not a WebShop action: {text!r} (expected 'search[...]' or 'click[...]')")
    return match.group(1), match.group(2).strip()


@dataclass
class StepResult:
    observation: str
    reward: float
    done: bool
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class _State:
    page: str = "search"  # search | results | item | section | done
    keywords: str = ""
    results: list[str] = field(default_factory=list)
    page_number: int = 1
    asin: str | None = None
    options: dict[str, str] = field(default_factory=dict)
    section: str | None = None
    reward: RewardBreakdown | None = None


class WebShopTextEnv:
    """One shopping session at a time over a catalogue and its goals."""

    def __init__(self, catalogue: Catalogue, goals: list[dict[str, Any]] | None = None,
                 nouns: NounExtractor = heuristic_nouns, search_engine: ProductSearchEngine | None = None,
                 search_anywhere: bool = False, show_attrs: bool = False):
        self.catalogue = catalogue
        self.search_anywhere = search_anywhere
        self.show_attrs = show_attrs
        self.goals = goals if goals is not None else catalogue.goals
        self.nouns = nouns
        # sessions over one catalogue share its index (building it is the costly part)
        self.search_engine = search_engine or ProductSearchEngine(catalogue.products)
        self.goal: dict[str, Any] | None = None
        self.state = _State()

    # ------------------------------------------------------------------ episode control

    def reset(self, goal_index: int = 0) -> str:
        if not 0 <= goal_index < len(self.goals):
            raise IndexError(f"goal index {goal_index} out of range (0..{len(self.goals) - 1})")
        self.goal = self.goals[goal_index]
        self.state = _State()
        return self.observation

    @property
    def instruction(self) -> str:
        if self.goal is None:
            raise RuntimeError("call reset() before using the environment")
        return self.goal["instruction_text"]

    def step(self, action: str) -> StepResult:
        if self.goal is None:
            raise RuntimeError("call reset() before step()")
        if self.state.page == "done":
            return StepResult(self.observation, 0.0, True, {"valid": False, "reason": "episode is over"})
        name, argument = parse_webshop_action(action)
        state = self.state
        if name == "search":
            if (state.page != "search" and not self.search_anywhere) or not argument:
                return self._invalid(f"no search bar on this page or empty keywords: {action!r}")
            self.state = _State(page="results", keywords=argument,
                                results=self.search_engine.search(argument, k=MAX_RESULTS))
            return self._valid()
        target = argument.lower()
        if target not in self.clickables():
            return self._invalid(f"{argument!r} is not clickable on this page")
        return self._click(target)

    def _click(self, target: str) -> StepResult:
        state = self.state
        if target == "back to search":
            self.state = _State()
        elif target == "next >":
            state.page_number += 1
        elif target == "< prev":
            if state.page == "results":
                state.page_number -= 1
            elif state.page == "item":
                state.page, state.asin, state.options = "results", None, {}
            else:
                state.page, state.section = "item", None
        elif state.page == "results":
            state.asin = target.upper()
            state.page, state.options = "item", {}
        elif state.page == "item" and target in ITEM_SECTIONS:
            state.page, state.section = "section", target
        elif target == "buy now":
            return self._buy()
        else:  # an option value of the current item
            for option_name, values in self._product()["options"].items():
                if target in values:
                    state.options[option_name] = target
                    break
        return self._valid()

    def _buy(self) -> StepResult:
        product = self._product()
        breakdown = get_reward(product, self.goal, self.catalogue.prices[product["asin"]], self.state.options,
                               nouns=self.nouns)
        self.state.page, self.state.reward = "done", breakdown
        return StepResult(self.observation, breakdown.reward, True,
                          {"valid": True, "reward_info": breakdown.info(), "asin": product["asin"],
                           "options": dict(self.state.options)})

    def _valid(self) -> StepResult:
        return StepResult(self.observation, 0.0, False, {"valid": True})

    def _invalid(self, reason: str) -> StepResult:
        return StepResult(self.observation, 0.0, False, {"valid": False, "reason": reason})

    def _product(self) -> dict[str, Any]:
        return self.catalogue.by_asin[self.state.asin]

    def _page_asins(self) -> list[str]:
        start = (self.state.page_number - 1) * RESULTS_PER_PAGE
        return self.state.results[start:start + RESULTS_PER_PAGE]

    # ------------------------------------------------------------------ what the agent sees

    def clickables(self) -> list[str]:
        """The lower-cased button texts ``click[...]`` accepts on the current page."""
        state = self.state
        if state.page == "results":
            buttons = ["back to search"]
            if state.page_number > 1:
                buttons.append("< prev")
            buttons.append("next >")
            return _unique(buttons + [asin.lower() for asin in self._page_asins()])
        if state.page == "item":
            values = [value for values in self._product()["options"].values() for value in values]
            sections = [*ITEM_BUTTONS, *(("attributes",) if self.show_attrs else ())]
            return _unique(["back to search", "< prev", *sections, "buy now", *values])
        if state.page == "section":
            return ["back to search", "< prev"]
        return []

    def available_actions(self) -> dict[str, Any]:
        """WebShop's ``get_available_actions``: its clickables also list the search page's ``search``
        button, which ``click[...]`` refuses."""
        on_search_page = self.state.page == "search"
        return {"has_search_bar": on_search_page, "clickables": ["search"] if on_search_page else self.clickables()}

    @property
    def observation(self) -> str:
        state = self.state
        header = ["Instruction:", self.instruction]
        if state.page == "search":
            return SEP.join(["WebShop", *header, "Search"])
        if state.page == "results":
            parts = [*header, "Back to Search", f"Page {state.page_number} (Total results: {len(state.results)})"]
            if state.page_number > 1:
                parts.append("< Prev")
            parts.append("Next >")
            for asin in self._page_asins():
                product = self.catalogue.by_asin[asin]
                parts += [asin, product["Title"], product["Price"]]
            return SEP.join(parts)
        if state.page in ("item", "section"):
            product = self._product()
            parts = [*header, "Back to Search", "< Prev"]
            if state.page == "section":
                return SEP.join(parts + [self._section_text(product, state.section)])
            for option_name, values in product["options"].items():
                parts += [option_name, *values]
            parts += [product["Title"], f"Price: {product['Price']}", f"Rating: {product['Rating']}",
                      "Description", "Features", "Reviews", "Buy Now"]
            return SEP.join(parts)
        product = self._product()
        chosen = ", ".join(f"{name}: {value}" for name, value in state.options.items()) or "none"
        return SEP.join(["Thank you for shopping with us!", "Purchased", product["asin"], product["Title"],
                         f"Options: {chosen}", "Your score (min 0.0, max 1.0)", f"{state.reward.reward}"])

    @staticmethod
    def _section_text(product: dict[str, Any], section: str | None) -> str:
        if section == "description":
            return product["Description"]
        if section == "features":
            return SEP.join(product["BulletPoints"])
        if section == "attributes":
            return SEP.join(product["Attributes"])
        return SEP.join(str(review) for review in product["Reviews"]) or "No reviews"


def _unique(texts: list[str]) -> list[str]:
    """Each text once, first position kept (WebShop keys its clickables by text)."""
    return list(dict.fromkeys(texts))
