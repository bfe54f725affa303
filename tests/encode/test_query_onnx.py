"""The ONNX query path: MiniLM's query vectors within 1e-5 of torch's, exported once per weights, torch kept when the
copy cannot be made."""

from __future__ import annotations

import numpy as np
import pytest

from concurrent_calls import call_at_once
from longtail.encode.encoder import EmbeddingCache, SentenceTransformerEncoder
from longtail.encode.query_cache import QueryVectorCache
from longtail.encode.query_onnx import OnnxQueryEncoder, minilm_inside, onnx_query_encoder, weights_key

QUERIES = ["nitrile gloves", "glass beaker 500 ml", "digital caliper", "cordless drill 18v", "safety goggles", "lab coat", "ph", "tape measure"]


@pytest.fixture(scope="module")
def minilm() -> SentenceTransformerEncoder:
    return SentenceTransformerEncoder()


def test_onnx_query_vectors_match_torch_and_the_export_is_reused(minilm: SentenceTransformerEncoder, tmp_path) -> None:
    onnx = onnx_query_encoder(minilm, tmp_path)
    assert isinstance(onnx, OnnxQueryEncoder)
    assert onnx.model_file == tmp_path / f"{weights_key(minilm)}.onnx" and [path.name for path in tmp_path.iterdir()] == [onnx.model_file.name]
    np.testing.assert_allclose(onnx.encode_queries(QUERIES), minilm.encode_queries(QUERIES), atol=1e-5)
    for query in QUERIES[:3]:
        np.testing.assert_allclose(onnx.encode_queries([query]), minilm.encode_queries([query]), atol=1e-5)
    assert onnx.encode_queries([]).shape == (0, minilm.dimension)
    np.testing.assert_array_equal(onnx.encode(QUERIES[:2]), minilm.encode(QUERIES[:2]))  # item texts stay on torch
    exported_at = onnx.model_file.stat().st_mtime_ns
    again = onnx_query_encoder(minilm, tmp_path)
    assert again is not None and again.model_file.stat().st_mtime_ns == exported_at  # loaded from the cache, not exported again


def test_concurrent_onnx_batches_give_the_one_at_a_time_vectors(minilm: SentenceTransformerEncoder, tmp_path) -> None:
    onnx = onnx_query_encoder(minilm, tmp_path)
    assert onnx is not None
    cache = QueryVectorCache(minilm, window_seconds=0, max_batch=2, concurrency=2, query_encoder=onnx)
    got = call_at_once(lambda query: cache.encode_queries([query])[0], QUERIES)
    for query in QUERIES:
        np.testing.assert_allclose(got[query], minilm.encode_queries([query])[0], atol=1e-5)


def test_torch_is_kept_when_the_copy_cannot_be_written(minilm: SentenceTransformerEncoder, tmp_path) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache folder should be", encoding="utf-8")
    assert onnx_query_encoder(minilm, blocked) is None


def test_the_minilm_inside_an_embedding_cache_is_found(minilm: SentenceTransformerEncoder, tmp_path) -> None:
    assert minilm_inside(EmbeddingCache(tmp_path, minilm)) is minilm
    assert minilm_inside(object()) is None
