"""The query-vector cache: the vectors it hands out are the encoder's, repeats are not re-encoded, and queries asked
at the same time by several threads share forward passes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from concurrent_calls import call_at_once
from longtail.encode.encoder import OnnxMiniLMEncoder, TextEncoder, encode_queries
from longtail.encode.query_cache import QueryVectorCache, query_key

QUERIES = ["nitrile gloves", "glass beaker", "digital caliper", "cordless drill", "safety goggles", "lab coat", "ph meter", "tape measure"]


class CountedEncoder:
    """The real int8 MiniLM, recording each forward pass it is asked for (and failing on demand)."""

    def __init__(self, encoder: TextEncoder) -> None:
        self.encoder = encoder
        self.name, self.dimension = encoder.name, encoder.dimension
        self.passes: list[list[str]] = []
        self.fail = False

    def encode(self, texts: Sequence[str], batch_size: int | None = None, show_progress: bool = False) -> np.ndarray:
        if self.fail:
            raise RuntimeError("encoder down")
        self.passes.append(list(texts))
        return self.encoder.encode(texts, batch_size, show_progress)


@pytest.fixture(scope="module")
def minilm() -> OnnxMiniLMEncoder:
    return OnnxMiniLMEncoder()


def test_cached_vectors_are_the_encoders_and_repeats_are_not_encoded_again(minilm: OnnxMiniLMEncoder) -> None:
    counted = CountedEncoder(minilm)
    cache = QueryVectorCache(counted, capacity=16, window_seconds=0)
    first = cache.encode_queries(["nitrile gloves", "glass beaker"])
    np.testing.assert_array_equal(first[0], encode_queries(minilm, ["nitrile gloves"])[0])
    again = cache.encode_queries(["  nitrile   gloves ", "nitrile gloves"])  # same words, other spacing: one key
    np.testing.assert_array_equal(again, np.stack([first[0], first[0]]))
    assert counted.passes == [["nitrile gloves", "glass beaker"]]
    stats = cache.stats()
    assert (stats.hits, stats.misses, stats.size) == (1, 2, 2)
    assert query_key(" a\tb ") == "a b"


def test_capacity_bounds_the_cache_and_clear_empties_it(minilm: OnnxMiniLMEncoder) -> None:
    counted = CountedEncoder(minilm)
    cache = QueryVectorCache(counted, capacity=2, window_seconds=0)
    for query in QUERIES[:3]:
        cache.encode_queries([query])
    assert cache.stats().size == 2
    cache.encode_queries([QUERIES[0]])  # evicted first: encoded again
    cache.clear()
    cache.encode_queries([QUERIES[2]])
    assert [texts for texts in counted.passes] == [[QUERIES[0]], [QUERIES[1]], [QUERIES[2]], [QUERIES[0]], [QUERIES[2]]]


def test_concurrent_queries_share_forward_passes_and_match_one_by_one_vectors(minilm: OnnxMiniLMEncoder) -> None:
    counted = CountedEncoder(minilm)
    cache = QueryVectorCache(counted, window_seconds=0.05)
    got = call_at_once(lambda query: cache.encode_queries([query])[0], QUERIES)
    assert sorted(text for batch in counted.passes for text in batch) == sorted(QUERIES)  # each encoded exactly once
    assert len(counted.passes) < len(QUERIES)
    for query in QUERIES:
        # Padding a short query in a batch changes its vector only by float rounding.
        np.testing.assert_allclose(got[query], encode_queries(minilm, [query])[0], atol=1e-5)


def test_an_encoder_error_reaches_the_caller_and_the_cache_recovers(minilm: OnnxMiniLMEncoder) -> None:
    counted = CountedEncoder(minilm)
    cache = QueryVectorCache(counted, window_seconds=0)
    counted.fail = True
    with pytest.raises(RuntimeError, match="encoder down"):
        cache.encode_queries(["glass beaker"])
    counted.fail = False
    assert cache.encode_queries(["glass beaker"]).shape == (1, minilm.dimension)
    assert cache.stats().size == 1


def test_minilm_query_path_gives_the_vectors_encode_gives() -> None:
    from longtail.encode.encoder import SentenceTransformerEncoder

    encoder = SentenceTransformerEncoder()
    for query in QUERIES[:3]:
        np.testing.assert_array_equal(encoder.encode_queries([query]), encoder.encode([query]))
    np.testing.assert_allclose(encoder.encode_queries(QUERIES), encoder.encode(QUERIES), atol=1e-6)
    assert encoder.encode_queries([]).shape == (0, encoder.dimension)


def test_minilm_batches_running_at_once_give_the_one_at_a_time_vectors() -> None:
    from longtail.encode.encoder import SentenceTransformerEncoder

    encoder = SentenceTransformerEncoder()
    cache = QueryVectorCache(encoder, window_seconds=0, max_batch=2, concurrency=2)
    got = call_at_once(lambda query: cache.encode_queries([query])[0], QUERIES)
    assert 1 <= cache.batcher.most_running <= 2
    for query in QUERIES:
        # Two threads tokenizing and running forward passes together: the same vectors as one query at a time.
        np.testing.assert_allclose(got[query], encoder.encode_queries([query])[0], atol=1e-6)
