"""Find exact and near-duplicate items by their text (character shingles, so Chinese works too)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl

_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)
# 18 bands of 7 rows (datasketch's choice for a 0.6 band threshold): a pair at Jaccard 0.85 shares a band
# with probability 0.999, at 0.8 with 0.985, at 0.3 with 4e-3; unrelated items rarely become candidates.
# LSH only proposes candidates; each is then verified with its exact Jaccard similarity.
BANDS, ROWS = 18, 7
NUM_PERMUTATIONS = BANDS * ROWS
# Candidates whose signatures agree on fewer permutations than this below the threshold skip the exact check
# (about four standard deviations of the estimate at 126 permutations).
ESTIMATE_MARGIN = 0.15
_U64 = np.uint64
# (ids, texts, threshold, shingle size, seed) -> {later id: (earlier id, similarity)}: near_duplicates or its cluster twin.
NearDuplicateFinder = Callable[[list[str], list[str], float, int, int], dict[str, tuple[str, float]]]


def normalise_text(text: str) -> str:
    """Case-folded, NFKC, punctuation-free text used to compare items."""
    return _NON_WORD.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def compact_text(text: str) -> str:
    """The normalised text without spaces, so word splits don't matter."""
    return normalise_text(text).replace(" ", "")


def shingles(text: str, size: int) -> set[str]:
    """Character n-grams of the compact normalised text; a text shorter than `size` is one shingle."""
    return _compact_shingles(compact_text(text), size)


def _compact_shingles(compact: str, size: int) -> set[str]:
    if len(compact) <= size:
        return {compact} if compact else set()
    return {compact[i : i + size] for i in range(len(compact) - size + 1)}


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


def _mix(values: np.ndarray) -> np.ndarray:
    """A 64-bit finaliser (splitmix64) so nearby shingle codes land far apart."""
    with np.errstate(over="ignore"):
        values = (values ^ (values >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
        values = (values ^ (values >> _U64(27))) * _U64(0x94D049BB133111EB)
    return values ^ (values >> _U64(31))


def shingle_hashes(compact: list[str], size: int) -> tuple[np.ndarray, np.ndarray]:
    """64-bit hashes of every text's shingles, concatenated, and each text's number of shingles (0 for an empty text)."""
    lengths = np.fromiter((len(t) for t in compact), dtype=np.int64, count=len(compact))
    codes = np.frombuffer("".join(compact).encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    ends = np.repeat(np.cumsum(lengths), lengths)  # each character's text end, so no shingle crosses into the next text
    position = np.arange(codes.size, dtype=np.int64)
    combined = np.zeros(codes.size, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for offset in range(size):
            shifted = np.zeros(codes.size, dtype=np.uint64)
            shifted[: codes.size - offset] = codes[offset:]
            shifted[position + offset >= ends] = 0  # a text shorter than `size` is one shingle of all its characters
            combined = combined * _U64(1_000_003) + shifted
    counts = np.where(lengths > 0, np.maximum(lengths - size + 1, 1), 0)
    starts = np.repeat(np.cumsum(lengths) - lengths, counts)
    within = np.arange(counts.sum(), dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
    return _mix(combined[starts + within]), counts


def minhash_signatures(hashes: np.ndarray, counts: np.ndarray, seed: int) -> np.ndarray:
    """MinHash signatures (texts x NUM_PERMUTATIONS, uint32); every text needs at least one shingle.

    Each permutation is x -> a*x + b mod 2**32 (a odd, so a bijection) over well-mixed 32-bit shingle
    hashes: 32-bit lanes keep the multiply vectorised, which 64-bit products are not on common CPUs.
    """
    rng = np.random.default_rng(seed)
    multipliers = rng.integers(0, 2**31, NUM_PERMUTATIONS, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    offsets = rng.integers(0, 2**32, NUM_PERMUTATIONS, dtype=np.uint32)
    starts = np.cumsum(counts) - counts
    short = (hashes >> _U64(32)).astype(np.uint32)
    signatures = np.empty((NUM_PERMUTATIONS, counts.size), dtype=np.uint32)
    permuted = np.empty_like(short)
    for row in range(NUM_PERMUTATIONS):
        np.multiply(short, multipliers[row], out=permuted)
        permuted += offsets[row]
        signatures[row] = np.minimum.reduceat(permuted, starts)
    return signatures.T


def band_keys(signatures: np.ndarray) -> np.ndarray:
    """One 64-bit bucket key per (text, band): texts sharing a key in any band are candidates."""
    keys = np.zeros((signatures.shape[0], BANDS), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for band in range(BANDS):
            rows = signatures[:, band * ROWS : (band + 1) * ROWS].astype(np.uint64)
            key = np.full(signatures.shape[0], band + 1, dtype=np.uint64)
            for column in range(ROWS):
                key = _mix(key * _U64(0x9E3779B97F4A7C15) + rows[:, column])
            keys[:, band] = key
    return keys


def candidate_pairs(keys: np.ndarray) -> np.ndarray:
    """(later, earlier) position pairs that share a bucket in some band, each pair once."""
    flat = keys.ravel()
    positions = np.repeat(np.arange(keys.shape[0], dtype=np.int64), keys.shape[1])
    order = np.lexsort((positions, flat))
    flat, positions = flat[order], positions[order]
    boundary = np.flatnonzero(np.diff(flat) != 0) + 1
    sizes = np.diff(np.concatenate(([0], boundary, [flat.size])))
    group_start = np.repeat(np.concatenate(([0], boundary)), sizes)
    rank = np.arange(flat.size) - group_start  # how many earlier members share this bucket
    later = np.repeat(positions, rank)
    # Pair every member with each earlier member of its bucket: offsets 0..rank-1 from the bucket's first member.
    offsets = np.arange(later.size) - np.repeat(np.cumsum(rank) - rank, rank)
    earlier = positions[np.repeat(group_start, rank) + offsets]
    return np.unique(np.column_stack((later, earlier)), axis=0)


def estimated_similarity(signatures: np.ndarray, pairs: np.ndarray, chunk: int = 200_000) -> np.ndarray:
    """The MinHash estimate of each pair's Jaccard similarity: the share of permutations whose minima agree."""
    estimates = np.empty(len(pairs), dtype=np.float64)
    for start in range(0, len(pairs), chunk):
        block = pairs[start : start + chunk]
        estimates[start : start + chunk] = (signatures[block[:, 0]] == signatures[block[:, 1]]).mean(axis=1)
    return estimates


@dataclass(frozen=True)
class _Match:
    earlier: int
    similarity: float


def _verify(pairs: np.ndarray, compact: list[str], size: int, threshold: float) -> dict[int, _Match]:
    """The best earlier match of each later text among its candidates, by exact shingle Jaccard (ties: the earliest)."""
    cache: dict[int, set[str]] = {}

    def shingle_set(position: int) -> set[str]:
        if position not in cache:
            cache[position] = _compact_shingles(compact[position], size)
        return cache[position]

    best: dict[int, _Match] = {}
    for later, earlier in pairs.tolist():
        own, other = shingle_set(later), shingle_set(earlier)
        similarity = len(own & other) / len(own | other)
        current = best.get(later)
        if similarity >= threshold and (current is None or (similarity, -earlier) > (current.similarity, -current.earlier)):
            best[later] = _Match(earlier, similarity)
    return best


def near_duplicates(
    ids: list[str], texts: list[str], threshold: float, shingle_size: int, seed: int = 1, chunk_size: int = 100_000
) -> dict[str, tuple[str, float]]:
    """Map each later item to the earlier one with the highest shingle Jaccard similarity, when that reaches the threshold.

    MinHash signatures are built with numpy a chunk of texts at a time (memory holds the signatures,
    not every item's shingles), LSH banding proposes candidate pairs, and each candidate is verified
    with its exact Jaccard similarity.
    """
    compact = [compact_text(text) for text in texts]
    signatures = np.empty((len(compact), NUM_PERMUTATIONS), dtype=np.uint32)
    has_text = np.zeros(len(compact), dtype=bool)
    for start in range(0, len(compact), chunk_size):
        hashes, counts = shingle_hashes(compact[start : start + chunk_size], shingle_size)
        present = counts > 0
        has_text[start : start + counts.size] = present
        if present.any():
            signatures[start : start + counts.size][present] = minhash_signatures(hashes, counts[present], seed)
    # Texts with no shingles are never matched, nor matched against.
    kept = np.flatnonzero(has_text)
    signatures = signatures[kept]
    pairs = candidate_pairs(band_keys(signatures))
    pairs = kept[pairs[estimated_similarity(signatures, pairs) >= threshold - ESTIMATE_MARGIN]]
    found = _verify(pairs, compact, shingle_size, threshold)
    return {ids[later]: (ids[match.earlier], float(np.round(match.similarity, 3))) for later, match in found.items()}
