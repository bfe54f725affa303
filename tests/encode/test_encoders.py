"""The encoders: the int8 ONNX fast path agrees with stock MiniLM, e5 handles Chinese, the cache never re-encodes."""

from __future__ import annotations

import numpy as np
import pytest

from longtail.encode.encoder import EmbeddingCache, encode_queries, item_texts, load_encoder
from longtail.core.errors import LongtailError

TITLES = [
    "Borosilicate glass beaker 500 ml with spout",
    "Nitrile examination gloves, large, box of 100",
    "Digital caliper 150 mm stainless steel",
    "Cordless drill 18V with two batteries",
]


class CountingEncoder:
    """A stand-in encoder that records every text it is asked to encode."""

    name = "counting"
    dimension = 4

    def __init__(self) -> None:
        self.seen: list[str] = []

    def encode(self, texts, batch_size=64, show_progress=False):  # noqa: ANN001, ANN201
        self.seen.extend(texts)
        vectors = np.array([[len(t), t.count("a"), t.count("e"), 1.0] for t in texts], dtype=np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def stock():
    return load_encoder("minilm")


@pytest.fixture(scope="module")
def fast():
    return load_encoder("minilm-int8")


def test_cache_does_not_reencode_unchanged_items(tmp_path):
    encoder = CountingEncoder()
    first = EmbeddingCache(tmp_path, encoder).encode(TITLES[:3])
    assert len(encoder.seen) == 3
    reopened = EmbeddingCache(tmp_path, encoder)  # a new process would reopen the cache from disk
    again = reopened.encode([TITLES[0], TITLES[3], TITLES[1]])
    assert encoder.seen[3:] == [TITLES[3]]
    assert reopened.encoded_last_call == 1
    np.testing.assert_array_equal(again[0], first[0])
    np.testing.assert_array_equal(again[2], first[1])


def test_fast_path_vectors_agree_with_stock_minilm(stock, fast):
    reference, quick = stock.encode(TITLES), fast.encode(TITLES)
    assert quick.shape == (4, 384) and quick.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(quick, axis=1), 1.0, atol=1e-5)
    assert (reference * quick).sum(axis=1).min() > 0.99


def test_fast_path_keeps_input_order_when_sorting_batches_by_length(fast):
    together = fast.encode(TITLES, batch_size=2)
    one_by_one = np.vstack([fast.encode([t]) for t in TITLES])
    np.testing.assert_allclose(together, one_by_one, atol=1e-4)


def test_fast_path_finds_the_matching_title(fast):
    items, query = fast.encode(TITLES), encode_queries(fast, ["latex gloves"])
    assert int(np.argmax(items @ query[0])) == 1


def test_multilingual_encoder_matches_chinese_query_to_chinese_title():
    encoder = load_encoder("e5-multilingual")
    titles = ["无线蓝牙耳机 降噪 长续航", "新鲜红富士苹果 5斤装", "男士纯棉短袖T恤", "不锈钢保温杯 500毫升"]
    scores = encoder.encode(titles) @ encode_queries(encoder, ["保温水杯"])[0]
    assert int(np.argmax(scores)) == 3
    scores = encoder.encode(titles) @ encode_queries(encoder, ["蓝牙耳机"])[0]
    assert int(np.argmax(scores)) == 0


def test_unknown_encoder_and_model_path_for_onnx_are_rejected(tmp_path):
    with pytest.raises(LongtailError, match="unknown encoder"):
        load_encoder("bert-huge")
    with pytest.raises(LongtailError, match="cannot load a fine-tuned model"):
        load_encoder("minilm-int8", model_path=tmp_path)


def test_item_text_joins_present_fields_and_skips_missing():
    import polars as pl

    items = pl.DataFrame({"title": ["Beaker", "Gloves"], "brand": ["Pyrex", None], "category": ["Lab > Glass", "Lab"]})
    assert item_texts(items) == ["Beaker. Pyrex. Lab > Glass", "Gloves. Lab"]
