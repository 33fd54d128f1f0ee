"""Product search for WebShop: BM25 (bm25s) over each product's title, description, first
bullet point and options, the document WebShop indexes with pyserini."""

from __future__ import annotations

from typing import Any, Sequence


def product_document(product: dict[str, Any]) -> str:
    option_text = ", and ".join(f"{name}: {', '.join(values)}" for name, values in product["options"].items())
    first_bullet = product["BulletPoints"][0] if product["BulletPoints"] else ""
    return " ".join([product["Title"], product["Description"], first_bullet, option_text]).lower()


class ProductSearchEngine:
    """Built once per catalogue; ``search`` returns ASINs, best first (only products sharing a term)."""

    def __init__(self, products: Sequence[dict[str, Any]]):
        from lumos.tools.engines.retrieval import BM25Index

        self.asins = [product["asin"] for product in products]
        self._index = BM25Index([product_document(p) for p in products])

    def search(self, keywords: str, k: int = 50) -> list[str]:
        return [self.asins[index] for index, _ in self._index.top(keywords.lower(), k)]
