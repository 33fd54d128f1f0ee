"""Loading a WebShop product catalogue and its goals (WebShop's JSON formats).

Files (WebShop names; a data directory holds the real ones, the package ships a small sample):
- products: ``items_shuffle_1000.json`` (or ``items_shuffle.json``) — a list of scraped products
  with asin, name, category, query, product_category, small/full_description, pricing,
  customization_options, ...;
- attributes: ``items_ins_v2_1000.json`` (or ``items_ins_v2.json``) — asin -> {attributes,
  instruction, instruction_attributes};
- human instructions: ``items_human_ins.json`` — asin -> [{instruction, instruction_attributes,
  instruction_options}], the source of the human goals used in evaluation.

Goals are WebShop's human goals by default; ``goals="synthetic"`` builds WebShop's synthetic
goals instead (one per product with an ``instruction`` in the attributes file and per
combination of its option values, ``<instruction> with <option>: <value>, and ...``), which is
what the released Lumos evaluation ran on. Both lists are shuffled with WebShop's seed, so goal
``i`` is WebShop's goal ``i``; the price bounds are drawn from a seeded generator here, from
WebShop's unseeded global one there (they differ run to run in WebShop).

Products are cleaned as WebShop's engine does (Title, Description, BulletPoints, Price tag,
lower-cased option values with '/' shown as ' | ', Attributes); the price paid for a product
with a price range is drawn once with a fixed seed, as WebShop does.
"""

from __future__ import annotations

import itertools
import json
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

SAMPLE_DIR = Path(__file__).resolve().parent / "sample"
PRODUCT_FILES = ("items_shuffle_1000.json", "items_shuffle.json", "sample_catalogue.json")
ATTRIBUTE_FILES = ("items_ins_v2_1000.json", "items_ins_v2.json", "sample_attributes.json")
HUMAN_INSTRUCTION_FILES = ("items_human_ins.json", "sample_human_ins.json")
PRICE_RANGE = [10.0 * i for i in range(1, 100)]
SEED = 233


class CatalogueError(ValueError):
    """A catalogue file that is missing or does not have WebShop's shape."""


@dataclass
class Catalogue:
    products: list[dict[str, Any]]
    prices: dict[str, float]
    goals: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.by_asin = {product["asin"]: product for product in self.products}


def _first_existing(directory: Path, names: tuple[str, ...]) -> Path | None:
    for name in names:
        if (directory / name).is_file():
            return directory / name
    return None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise CatalogueError(f"{path}: invalid JSON at line {error.lineno}: {error.msg}") from None


def _parse_pricing(pricing: Any) -> tuple[list[float], str]:
    if not pricing:
        return [100.0], "$100.0"
    values = [float(Decimal(re.sub(r"[^\d.]", "", part))) for part in str(pricing).split("$")[1:]
              if re.sub(r"[^\d.]", "", part)]
    if not values:
        return [100.0], "$100.0"
    if len(values) == 1:
        return values, f"${values[0]}"
    return values[:2], f"${values[0]} to ${values[1]}"


def clean_product(raw: dict[str, Any], attributes: dict[str, Any]) -> dict[str, Any]:
    """One scraped product in the shape the environment and the reward read."""
    product = dict(raw)
    asin = product["asin"]
    product["Title"] = product["name"]
    product["Description"] = product.get("full_description") or ""
    bullets = product.get("small_description") or []
    if isinstance(bullets, str):
        bullets = bullets.split("\n")
    product["BulletPoints"] = [bullet.strip() for bullet in bullets if bullet.strip()]
    product["pricing"], product["Price"] = _parse_pricing(product.get("pricing"))
    options: dict[str, list[str]] = {}
    for option_name, contents in (product.get("customization_options") or {}).items():
        if contents is None:
            continue
        options[option_name.lower()] = [item["value"].strip().replace("/", " | ").lower() for item in contents]
    product["options"] = options
    product["Attributes"] = attributes.get(asin, {}).get("attributes") or ["DUMMY_ATTR"]
    product["query"] = product.get("query", "").lower().strip()
    product.setdefault("Rating", "N.A.")
    product.setdefault("Reviews", [])
    return product


def product_prices(products: list[dict[str, Any]], seed: int = SEED) -> dict[str, float]:
    """The price paid per product: the single price, or a seeded draw inside a price range."""
    rng = random.Random(seed)
    prices = {}
    for product in products:
        pricing = product["pricing"]
        prices[product["asin"]] = pricing[0] if len(pricing) == 1 else rng.uniform(*pricing[:2])
    return prices


def human_goals(products: list[dict[str, Any]], prices: dict[str, float],
                human_instructions: dict[str, list[dict[str, Any]]], seed: int = SEED) -> list[dict[str, Any]]:
    """WebShop's human goals: each human instruction with attributes, plus a sampled price bound."""
    rng = random.Random(seed)
    goals = []
    for product in products:
        for instruction in human_instructions.get(product["asin"], []):
            if not instruction.get("instruction_attributes"):
                continue
            bounds = [bound for bound in PRICE_RANGE if bound > prices[product["asin"]]][:4]
            if len(bounds) >= 2:
                price_upper = sorted(rng.sample(bounds, 2))[1]
                price_text = f", and price lower than {price_upper:.2f} dollars"
            else:
                price_upper, price_text = 1000000.0, ""
            goals.append({
                "asin": product["asin"], "category": product.get("category", ""), "query": product["query"],
                "name": product["name"], "product_category": product.get("product_category", ""),
                "instruction_text": instruction["instruction"].strip(".") + price_text,
                "attributes": instruction["instruction_attributes"], "price_upper": price_upper,
                "goal_options": instruction.get("instruction_options", []), "weight": 1,
            })
    random.Random(seed).shuffle(goals)
    return goals


def _price_bound(rng: random.Random, price: float) -> tuple[float, str]:
    bounds = [bound for bound in PRICE_RANGE if bound > price][:4]
    if len(bounds) < 2:
        return 1000000.0, ""
    price_upper = sorted(rng.sample(bounds, 2))[1]
    return price_upper, f", and price lower than {price_upper:.2f} dollars"


def synthetic_goals(products: list[dict[str, Any]], prices: dict[str, float], attributes: dict[str, Any],
                    seed: int = SEED) -> list[dict[str, Any]]:
    """WebShop's synthetic goals: a product's instruction with each combination of its option values."""
    rng = random.Random(seed)
    goals, attribute_counts = [], Counter()
    for product in products:
        annotation = attributes.get(product["asin"]) or {}
        instruction = annotation.get("instruction")
        if instruction is None:
            continue
        goal_attributes = annotation.get("instruction_attributes") or []
        if not goal_attributes:
            raise CatalogueError(f"{product['asin']}: an instruction without instruction_attributes")
        price_upper, price_text = _price_bound(rng, prices[product["asin"]])
        names = sorted(product["options"])
        for values in itertools.product(*(product["options"][name] for name in names)):
            goal_options = dict(zip(names, values))
            option_text = ", and ".join(f"{name}: {value}" for name, value in goal_options.items())
            goals.append({
                "asin": product["asin"], "category": product.get("category", ""), "query": product["query"],
                "name": product["Title"], "product_category": product.get("product_category", ""),
                "instruction_text": instruction + (f" with {option_text}" if option_text else "") + price_text,
                "attributes": goal_attributes, "price_upper": price_upper, "goal_options": goal_options,
            })
            attribute_counts.update(goal_attributes)
    for goal in goals:
        goal["weight"] = sum(1.0 / attribute_counts[a] for a in goal["attributes"]) / len(goal["attributes"])
    random.Random(seed).shuffle(goals)
    return goals


GOAL_KINDS = ("human", "synthetic")


def load_catalogue(data_dir: str | Path | None = None, num_products: int | None = None,
                   goals: str = "human") -> Catalogue:
    """Products, prices and goals (``human`` or ``synthetic``) from ``data_dir`` (the shipped sample when None)."""
    if goals not in GOAL_KINDS:
        raise ValueError(f"goals must be one of {', '.join(GOAL_KINDS)}, got {goals!r}")
    directory = Path(data_dir) if data_dir is not None else SAMPLE_DIR
    products_path = _first_existing(directory, PRODUCT_FILES)
    if products_path is None:
        raise CatalogueError(f"{directory}: no product file (expected one of {', '.join(PRODUCT_FILES)})")
    raw_products = _read_json(products_path)
    if not isinstance(raw_products, list):
        raise CatalogueError(f"{products_path}: expected a JSON list of products")
    attributes_path = _first_existing(directory, ATTRIBUTE_FILES)
    attributes = _read_json(attributes_path) if attributes_path else {}
    if num_products is not None:
        raw_products = raw_products[:num_products]
    seen: set[str] = set()
    products = []
    for index, raw in enumerate(raw_products):
        if not isinstance(raw, dict) or "asin" not in raw or "name" not in raw:
            raise CatalogueError(f"{products_path}: product #{index} lacks 'asin' or 'name'")
        asin = raw["asin"]
        if asin == "nan" or len(asin) > 10 or asin in seen:
            continue
        seen.add(asin)
        products.append(clean_product(raw, attributes))
    prices = product_prices(products)
    if goals == "synthetic":
        return Catalogue(products, prices, synthetic_goals(products, prices, attributes))
    instructions_path = _first_existing(directory, HUMAN_INSTRUCTION_FILES)
    found = human_goals(products, prices, _read_json(instructions_path)) if instructions_path else []
    return Catalogue(products, prices, found)
