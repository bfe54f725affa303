"""The near-duplicate detector: vectorised MinHash + LSH candidates, verified by exact shingle Jaccard."""

from __future__ import annotations

import numpy as np

from longtail.quality import duplicates

TITLES = [
    "Stainless steel vacuum flask 500 ml keeps drinks hot",
    "Wireless noise cancelling headphones with carry case",
    "Organic cotton bath towel set of four, grey",
    "LED desk lamp with USB charging port and dimmer",
    "保温杯 不锈钢 大容量 500ml 男女通用",
]


def _swap_letters(title: str) -> str:
    middle = len(title) // 2
    return title[:middle] + title[middle + 1] + title[middle] + title[middle + 2 :]


def test_a_relisted_item_points_to_the_earlier_one_with_its_exact_jaccard() -> None:
    ids = ["a", "b", "c", "d", "e", "f"]
    texts = [*TITLES, TITLES[0].upper().replace("HOT", "HOT!")]
    found = duplicates.near_duplicates(ids, texts, threshold=0.8, shingle_size=3)
    own = duplicates.shingles(texts[5], 3)
    other = duplicates.shingles(texts[0], 3)
    assert found == {"f": ("a", round(len(own & other) / len(own | other), 3))}
    assert found["f"][1] == 1.0  # case and punctuation are normalised away


def test_unrelated_and_empty_texts_are_never_matched() -> None:
    found = duplicates.near_duplicates(["a", "b", "c", "d"], ["", "!!!", TITLES[1], TITLES[2]], threshold=0.8, shingle_size=3)
    assert found == {}


def test_the_best_earlier_match_wins_and_chunking_does_not_change_results() -> None:
    typo = _swap_letters(TITLES[3])
    ids = ["lamp", "other", "lamp-typo", "lamp-again", "zh", "zh-typo"]
    texts = [TITLES[3], TITLES[1], typo, TITLES[3] + " x", TITLES[4], TITLES[4].replace("500ml", "500 ml")]
    whole = duplicates.near_duplicates(ids, texts, threshold=0.8, shingle_size=3)
    chunked = duplicates.near_duplicates(ids, texts, threshold=0.8, shingle_size=3, chunk_size=2)
    assert whole == chunked
    assert whole["lamp-typo"][0] == "lamp"
    assert whole["lamp-again"] == ("lamp", whole["lamp-again"][1])  # ties with 'lamp-typo' are broken towards the earliest
    assert whole["zh-typo"] == ("zh", 1.0)  # characters, not words: the space is ignored


def test_planted_typos_are_recalled_among_many_distinct_items() -> None:
    rng = np.random.default_rng(3)
    vocabulary = ["".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), size=int(rng.integers(3, 9)))) for _ in range(3000)]
    texts = [" ".join(rng.choice(vocabulary, size=8)) for _ in range(3000)]
    planted = {f"copy{i}": f"item{i}" for i in range(0, 3000, 30)}
    ids = [f"item{i}" for i in range(3000)] + list(planted)
    texts += [_swap_letters(texts[int(original.removeprefix("item"))]) for original in planted.values()]
    found = duplicates.near_duplicates(ids, texts, threshold=0.8, shingle_size=3)
    by_id = dict(zip(ids, texts, strict=True))

    def jaccard(left: str, right: str) -> float:
        a, b = duplicates.shingles(by_id[left], 3), duplicates.shingles(by_id[right], 3)
        return len(a & b) / len(a | b)

    reachable = {later: earlier for later, earlier in planted.items() if jaccard(later, earlier) >= 0.8}
    assert len(reachable) > 80  # most swaps keep the similarity above the threshold; the rest must not be reported
    assert {later: earlier for later, (earlier, _) in found.items()} == reachable


def test_signatures_agree_with_the_jaccard_they_estimate() -> None:
    compact = [duplicates.compact_text(t) for t in (TITLES[0], TITLES[0] + " and cold", TITLES[2])]
    hashes, counts = duplicates.shingle_hashes(compact, 3)
    assert counts.tolist() == [len(c) - 2 for c in compact]
    signatures = duplicates.minhash_signatures(hashes, counts, seed=1)
    estimates = duplicates.estimated_similarity(signatures, np.array([[1, 0], [2, 0]]))
    first, second, third = (duplicates.shingles(t, 3) for t in (TITLES[0], TITLES[0] + " and cold", TITLES[2]))
    assert abs(estimates[0] - len(first & second) / len(first | second)) < 0.15
    assert estimates[1] < 0.1
