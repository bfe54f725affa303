"""BM25 over Python-side tokens: English and Chinese tokenisation, typo correction, filtering."""

from __future__ import annotations

import numpy as np

from longtail.data.tokenize import tokenize
from longtail.encode.item_text import item_texts
from longtail.search.lexical import LexicalIndex


def test_tokenizer_segments_chinese_and_splits_english():
    assert tokenize("Borosilicate Glass-Beaker, 500ml") == ["borosilicate", "glass", "beaker", "500ml"]
    tokens = tokenize("无线蓝牙耳机 Sony降噪")
    assert {"无线", "蓝牙", "耳机", "sony", "降噪"} <= set(tokens)
    assert tokenize("") == []


def test_bm25_ranks_items_matching_more_query_words_first(catalogue):
    index = LexicalIndex.build(item_texts(catalogue))
    rows, scores = index.search("borosilicate glass beaker", k=5)
    ids = catalogue["item_id"].to_numpy()[rows].tolist()
    assert ids[0] == "beaker"
    assert set(ids[1:3]) == {"flask", "pipette"}
    assert ids.index("flask") < ids.index("pipette")  # flask also says "borosilicate"
    assert np.all(np.diff(scores) <= 0)


def test_misspelt_words_are_corrected_against_the_index_vocabulary(catalogue):
    index = LexicalIndex.build(item_texts(catalogue))
    assert index.query_terms("nitrle glovse") == ["nitrile", "gloves"]  # a dropped letter, a transposition
    rows, _ = index.search("calipr", k=3)
    assert catalogue["item_id"][int(rows[0])] == "caliper"
    strict = LexicalIndex.build(item_texts(catalogue), fuzzy=False)
    assert len(strict.search("calipr", k=3)[0]) == 0


def test_filter_mask_keeps_only_allowed_rows_even_beyond_the_first_page(catalogue):
    index = LexicalIndex.build(item_texts(catalogue))
    allowed = np.zeros(catalogue.height, dtype=bool)
    allowed[6] = True  # only the flask
    rows, _ = index.search("glass", k=1, allowed=allowed)
    assert rows.tolist() == [6]


def test_index_round_trips_through_disk(catalogue, tmp_path):
    LexicalIndex.build(item_texts(catalogue), tmp_path / "bm25")
    reopened = LexicalIndex.open(tmp_path / "bm25")
    assert len(reopened) == catalogue.height
    assert catalogue["item_id"][int(reopened.search("goggles", 1)[0][0])] == "goggles"


def test_chinese_titles_are_found_from_chinese_queries():
    titles = ["无线蓝牙耳机 主动降噪", "新鲜红富士苹果 5斤装", "男士纯棉短袖T恤 夏季", "不锈钢保温杯 500毫升", "儿童保温水杯 吸管"]
    index = LexicalIndex.build(titles)
    assert index.search("蓝牙耳机", 3)[0].tolist()[0] == 0
    assert set(index.search("保温杯", 5)[0].tolist()) == {3, 4}
    assert index.search("苹果", 3)[0].tolist() == [1]
