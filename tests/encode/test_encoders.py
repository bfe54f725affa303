"""The encoders: the int8 ONNX fast path agrees with stock MiniLM, e5 handles Chinese, the cache never re-encodes,
and the factory builds whatever the `encode` config section says."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl
import pytest

from longtail.core.config import EncodeConfig, LongtailConfig
from longtail.core.errors import ConfigError
from longtail.encode import encoder as encoder_module
from longtail.encode.encoder import EmbeddingCache, OnnxMiniLMEncoder, encode_queries
from longtail.encode.factory import build_encoder
from longtail.encode.item_text import item_texts, texts_for

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

    def encode(self, texts: Sequence[str], batch_size: int | None = None, show_progress: bool = False) -> np.ndarray:
        self.seen.extend(texts)
        vectors = np.array([[len(t), t.count("a"), t.count("e"), 1.0] for t in texts], dtype=np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def stock():
    return build_encoder(EncodeConfig(encoder="minilm", cache_dir=None))


@pytest.fixture(scope="module")
def fast():
    return build_encoder(EncodeConfig(encoder="minilm-int8", cache_dir=None))


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


def test_a_stopped_encode_keeps_the_chunks_it_finished(tmp_path, monkeypatch):
    monkeypatch.setattr(encoder_module, "CACHE_CHUNK", 2)
    texts = [f"title {number} {'a' * number}" for number in range(5)]

    class Interrupted(CountingEncoder):
        def encode(self, texts: Sequence[str], batch_size: int | None = None, show_progress: bool = False) -> np.ndarray:
            if len(self.seen) >= 4:
                raise KeyboardInterrupt
            return super().encode(texts, batch_size, show_progress)

    with pytest.raises(KeyboardInterrupt):
        EmbeddingCache(tmp_path, Interrupted()).encode(texts)
    resumed = CountingEncoder()
    vectors = EmbeddingCache(tmp_path, resumed).encode(texts)
    assert resumed.seen == texts[4:]  # two chunks of two were saved before the stop
    np.testing.assert_allclose(vectors, CountingEncoder().encode(texts))


def test_fast_path_vectors_agree_with_stock_minilm(stock, fast):
    reference, quick = stock.encode(TITLES), fast.encode(TITLES)
    assert quick.shape == (4, 384) and quick.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(quick, axis=1), 1.0, atol=1e-5)
    assert (reference * quick).sum(axis=1).min() > 0.99


def test_fast_path_keeps_input_order_when_sorting_batches_by_length(fast):
    together = fast.encode(TITLES, batch_size=2)
    one_by_one = np.vstack([fast.encode([t]) for t in TITLES])
    np.testing.assert_allclose(together, one_by_one, atol=1e-4)


def test_stock_length_sorted_batches_give_the_vectors_of_unpadded_one_by_one_encoding(stock):
    # Batches padded only to their longest text: a text's vector must not depend on its batch-mates.
    texts = [*TITLES, "Drill", "Stainless steel caliper with digital display, 150 mm, in a case with spare battery"]
    together = stock.encode(texts, batch_size=3)
    one_by_one = np.vstack([stock.encode([t]) for t in texts])
    np.testing.assert_allclose(together, one_by_one, atol=1e-5)


def test_fast_path_finds_the_matching_title(fast):
    items, query = fast.encode(TITLES), encode_queries(fast, ["latex gloves"])
    assert int(np.argmax(items @ query[0])) == 1


def test_multilingual_encoder_matches_chinese_query_to_chinese_title():
    encoder = build_encoder(EncodeConfig(encoder="e5-multilingual", cache_dir=None))
    titles = ["无线蓝牙耳机 降噪 长续航", "新鲜红富士苹果 5斤装", "男士纯棉短袖T恤", "不锈钢保温杯 500毫升"]
    scores = encoder.encode(titles) @ encode_queries(encoder, ["保温水杯"])[0]
    assert int(np.argmax(scores)) == 3
    scores = encoder.encode(titles) @ encode_queries(encoder, ["蓝牙耳机"])[0]
    assert int(np.argmax(scores)) == 0


def test_config_rejects_unknown_encoder_and_factory_rejects_model_path_for_onnx(tmp_path):
    with pytest.raises(ValueError, match="minilm-int8"):
        EncodeConfig(encoder="bert-huge")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="cannot load a fine-tuned model"):
        build_encoder(EncodeConfig(encoder="minilm-int8", model_path=str(tmp_path)))


def test_cache_folder_default_lives_in_the_config():
    assert LongtailConfig().encode.cache_dir == ".cache/embeddings"


def test_factory_honours_encoder_batch_size_and_cache_dir(tmp_path):
    built = build_encoder(EncodeConfig(encoder="minilm-int8", batch_size=3, cache_dir=str(tmp_path / "cache")))
    assert isinstance(built, EmbeddingCache) and isinstance(built.encoder, OnnxMiniLMEncoder)
    assert built.encoder.batch_size == 3 and built.directory == tmp_path / "cache" / "minilm-int8"
    first = built.encode(TITLES)
    assert built.encoded_last_call == 4 and (tmp_path / "cache" / "minilm-int8" / "vectors.npy").is_file()
    # a second build (another process) reads the same folder: no text is encoded again
    again = build_encoder(EncodeConfig(encoder="minilm-int8", cache_dir=str(tmp_path / "cache")))
    np.testing.assert_array_equal(again.encode(TITLES[::-1]), first[::-1])
    assert again.encoded_last_call == 0


def test_factory_without_cache_dir_returns_the_bare_encoder():
    assert isinstance(build_encoder(EncodeConfig(encoder="minilm-int8", cache_dir=None)), OnnxMiniLMEncoder)


def test_item_text_joins_present_fields_in_one_order_and_skips_missing():
    items = pl.DataFrame(
        {
            "item_id": ["a", "b", "c"],
            "category": ["Lab > Glass", "Lab", ""],
            "title": ["Beaker", "Gloves", "Caliper"],
            "brand": ["Pyrex", None, "Mitutoyo"],
            "attributes": ['{"size": "500 ml", "attribute_ids": [3, 4]}', None, '{"attribute_ids": [1]}'],
        }
    )
    # title, brand, category, description, attributes, whatever order the columns come in; S3-Rec ids are skipped
    assert item_texts(items) == ["Beaker. Pyrex. Lab > Glass. size: 500 ml", "Gloves. Lab", "Caliper. Mitutoyo"]
    assert texts_for(["c", "zz", "a"], items) == ["Caliper. Mitutoyo", "item zz", "Beaker. Pyrex. Lab > Glass. size: 500 ml"]
