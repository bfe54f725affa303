""" "Because you viewed …": the item of a user's history that a recommendation most plainly follows from."""

from __future__ import annotations

from collections.abc import Sequence

from longtail.serve.catalogue import CatalogueItem
from longtail.serve.schemas import ItemHit


def because_you_viewed(recommended: Sequence[ItemHit], touched: Sequence[CatalogueItem]) -> list[CatalogueItem | None]:
    """Per recommendation, the most recent touched item of the same category, else of the same brand, else none;
    `touched` is newest first."""
    reasons: list[CatalogueItem | None] = []
    for hit in recommended:
        same_category = next((item for item in touched if hit.category and item.category == hit.category and item.item_id != hit.item_id), None)
        same_brand = next((item for item in touched if hit.brand and item.brand == hit.brand and item.item_id != hit.item_id), None)
        reasons.append(same_category or same_brand)
    return reasons
