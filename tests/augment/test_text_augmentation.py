"""EDA text augmentation on real English (Beauty keywords) and Chinese (shop reviews) text: some words change, the rest stay."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from longtail.augment.text import Synonyms, TextAugmentation, augment_words
from longtail.balance.component import run
from longtail.data.adapters import load_dataset
from longtail.data.columns import SYNTHETIC
from longtail.data.tokenize import is_word, segment


@pytest.fixture(scope="module", params=["en", "zh"])
def corpus(request, datasets_root) -> tuple[str, list[str], Synonyms]:
    if request.param == "en":
        texts = load_dataset("gram-beauty", datasets_root).items["title"].head(1500).to_list()
    else:
        texts = [t[:80] for t in load_dataset("zh-reviews", datasets_root).items["title"].head(300).to_list()]
    return request.param, texts, Synonyms.from_texts(texts, min_count=2)


def _augmentable(texts: list[str], synonyms: Synonyms) -> list[list[str]]:
    pieces = [segment(t) for t in texts]
    return [p for p in pieces if sum(is_word(w) for w in p) >= 4 and any(synonyms.of(w) for w in p)][:100]


def test_neighbours_come_from_the_corpus_vocabulary(corpus) -> None:
    _, texts, synonyms = corpus
    vocabulary = {w.lower() for t in texts for w in segment(t) if is_word(w)}
    assert len(synonyms.neighbours) > 50
    for word, close in list(synonyms.neighbours.items())[:200]:
        assert word in vocabulary and word not in close and set(close) <= vocabulary and 0 < len(close) <= 5


def test_synonym_replacement_changes_some_words_and_keeps_the_rest(corpus) -> None:
    _, texts, synonyms = corpus
    rng = np.random.default_rng(0)
    for words in _augmentable(texts, synonyms):
        changed = augment_words(words, "synonym", 0.2, synonyms, rng)
        assert len(changed) == len(words)
        differing = [i for i, (a, b) in enumerate(zip(words, changed, strict=True)) if a != b]
        assert 1 <= len(differing) <= max(1, round(0.2 * sum(is_word(w) for w in words)))
        assert all(changed[i] in synonyms.of(words[i]) for i in differing)


def test_insertion_adds_neighbour_words_and_keeps_the_order_of_the_rest(corpus) -> None:
    _, texts, synonyms = corpus
    rng = np.random.default_rng(1)
    allowed = {w for close in synonyms.neighbours.values() for w in close}
    for words in _augmentable(texts, synonyms):
        longer = augment_words(words, "insert", 0.2, synonyms, rng)
        added = len(longer) - len(words)
        assert added == max(1, round(0.2 * sum(is_word(w) for w in words)))
        remaining = iter(longer)
        assert all(any(w == x for x in remaining) for w in words)  # the originals are a subsequence
        assert set(longer) - set(words) <= allowed


def test_swap_and_deletion_only_move_or_drop_words(corpus) -> None:
    _, texts, synonyms = corpus
    rng = np.random.default_rng(2)
    for words in _augmentable(texts, synonyms):
        swapped = augment_words(words, "swap", 0.2, synonyms, rng)
        assert sorted(swapped) == sorted(words)
        assert [w for w in swapped if not is_word(w)] == [w for w in words if not is_word(w)]  # punctuation stays put
        shorter = augment_words(words, "delete", 0.2, synonyms, rng)
        remaining = iter(words)
        assert len(words) - len(shorter) >= 1 and all(any(w == x for x in remaining) for w in shorter)


def test_component_adds_synthetic_texts_for_the_same_items(corpus) -> None:
    language, texts, _ = corpus
    n = len(texts)
    table = pl.DataFrame({"item": np.arange(n), "text": texts}).with_columns(pl.lit(False).alias(SYNTHETIC), pl.lit(1.0).alias("weight"))
    augmented = run(TextAugmentation(rate=0.2, copies=2), table, seed=4)
    copies = augmented.filter(pl.col(SYNTHETIC))
    assert augmented.filter(~pl.col(SYNTHETIC)).equals(table)
    assert copies["item"].to_list() == list(range(n)) * 2
    # a copy stays as it was only when its operation had nothing to work on (no word with a neighbour, one word)
    changed = sum(a != b for a, b in zip(copies["text"].to_list(), texts * 2, strict=True))
    assert changed > 0.6 * len(copies)
    if language == "zh":
        assert all(" " not in t or " " in o for t, o in zip(copies["text"].to_list(), texts * 2, strict=True))  # Chinese is rejoined without spaces
    assert augmented.equals(run(TextAugmentation(rate=0.2, copies=2), table, seed=4))
