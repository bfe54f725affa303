"""Find exact and near-duplicate items by their text (character shingles, so Chinese works too)."""

from __future__ import annotations

import re
import unicodedata

import numpy as np
import polars as pl
from datasketch import MinHash, MinHashLSH

_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)
NUM_PERMUTATIONS = 128
# LSH only proposes candidates; a looser band threshold keeps recall high near the cut-off,
# and every candidate is then verified with its exact Jaccard similarity.
CANDIDATE_SLACK = 0.2


def normalise_text(text: str) -> str:
    """Case-folded, NFKC, punctuation-free text used to compare items."""
    return _NON_WORD.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def shingles(text: str, size: int) -> set[bytes]:
    """Character n-grams of the normalised text (spaces removed so word splits don't matter)."""
    compact = normalise_text(text).replace(" ", "")
    if len(compact) <= size:
        return {compact.encode("utf-8")} if compact else set()
    return {compact[i : i + size].encode("utf-8") for i in range(len(compact) - size + 1)}


def item_text(items: pl.DataFrame) -> pl.Expr:
    """The text an item is compared by: title, brand and description."""
    return pl.concat_str([pl.col("title"), pl.col("brand"), pl.col("description")], separator=" ", ignore_nulls=True)


def exact_duplicates(ids: list[str], texts: list[str]) -> dict[str, str]:
    """Map each later item to the first item with the same normalised text."""
    first_seen: dict[str, str] = {}
    duplicate_of: dict[str, str] = {}
    for item_id, text in zip(ids, texts, strict=True):
        key = normalise_text(text)
        if not key:
            continue
        if key in first_seen:
            duplicate_of[item_id] = first_seen[key]
        else:
            first_seen[key] = item_id
    return duplicate_of


def near_duplicates(
    ids: list[str], texts: list[str], threshold: float, shingle_size: int, seed: int = 1, chunk_size: int = 20_000
) -> dict[str, tuple[str, float]]:
    """Map each later item to an earlier one whose shingle Jaccard similarity reaches the threshold.

    Signatures are built a chunk at a time and candidates' shingles are recomputed from their text,
    so memory holds the LSH index rather than every item's shingle set.
    """
    index = MinHashLSH(threshold=max(threshold - CANDIDATE_SLACK, 0.3), num_perm=NUM_PERMUTATIONS)
    found: dict[str, tuple[str, float]] = {}
    for start in range(0, len(ids), chunk_size):
        chunk = [shingles(t, shingle_size) for t in texts[start : start + chunk_size]]
        signatures = MinHash.bulk([list(s) for s in chunk], num_perm=NUM_PERMUTATIONS, seed=seed)
        for offset, (signature, own) in enumerate(zip(signatures, chunk, strict=True)):
            if not own:
                continue
            position = start + offset
            best: tuple[str, float] | None = None
            for other_position in index.query(signature):
                other = shingles(texts[other_position], shingle_size)
                similarity = len(own & other) / len(own | other)
                if similarity >= threshold and (best is None or similarity > best[1]):
                    best = (ids[other_position], similarity)
            if best is not None:
                found[ids[position]] = (best[0], float(np.round(best[1], 3)))
            index.insert(position, signature)
    return found
