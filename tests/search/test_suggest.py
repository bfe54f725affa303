"""Autocomplete over catalogue phrases and past queries: ranking, recency, zero-result filtering, typos, Chinese."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np

from longtail.search.suggest import FEATURES, LoggedQuery, Suggester, catalogue_phrases, learn_phrase_weights, normalise, query_evidence

TITLES = [
    "Cordless power drill 18V",
    "Cordless impact driver 18V",
    "Power drill bit set",
    "Nitrile examination gloves, large",
    "Safety goggles with anti-fog lens",
    "Safety gloves cut resistant",
]
NOW = datetime(2026, 1, 10, tzinfo=UTC)


def texts(suggester: Suggester, typed: str, k: int = 5) -> list[str]:
    return [s.text for s in suggester.suggest(typed, k)]


def test_catalogue_phrases_complete_a_prefix_most_common_first() -> None:
    # By default a phrase must occur in two titles: "cordless" does, "cordless power" does not.
    assert texts(Suggester.build(TITLES), "cord") == ["cordless"]
    found = texts(Suggester.build(TITLES, min_items=1), "cord", 10)
    assert found[0] == "cordless" and {"cordless power drill", "cordless impact driver"} <= set(found)
    assert all(text.startswith("cord") for text in found)


def test_popular_recent_queries_rank_first_and_zero_result_queries_are_left_out() -> None:
    log = [LoggedQuery("safety gloves", NOW)] * 3 + [LoggedQuery("safety goggles", NOW - timedelta(days=300))] * 3
    log += [LoggedQuery("safety zorbs", NOW)] * 10  # no catalogue word but "safety": still has results
    log += [LoggedQuery("quux frobnicator", NOW)] * 50  # no catalogue word at all: a zero-result query
    suggester = Suggester.build(TITLES, log=log)
    found = suggester.suggest("saf", 8)
    ranked = [s.text for s in found]
    # Same count, but the goggles searches are ten half-lives old.
    assert ranked.index("safety gloves") < ranked.index("safety goggles")
    assert next(s for s in found if s.text == "safety gloves").source == "query"
    assert texts(suggester, "quux") == []


def test_sub_phrases_of_past_queries_complete_a_query_never_searched_whole() -> None:
    log = [LoggedQuery("cordless power drill kit", NOW), LoggedQuery("safety gloves large", NOW)]
    evidence = query_evidence(log, {"cordless", "power", "drill", "safety", "gloves"})
    # Every 1-3-word run of a past query counts once per search; the whole query too.
    assert evidence.phrases["power drill"] == 1.0 and evidence.phrases["cordless power drill kit"] == 1.0
    assert "cordless power drill kit" in texts(Suggester.build(TITLES, log=log), "cordless p", 10)
    assert next(s for s in Suggester.build(TITLES, log=log).suggest("power d", 5) if s.text == "power drill").source == "query"


def test_the_log_teaches_which_words_end_a_query() -> None:
    titles = ["Lamp with shade", "Lamp with shade", "Lamp base"]
    # Shoppers put "with" inside queries but never last; "base" ends every query it is in.
    log = [LoggedQuery(query, NOW) for query in ("floor lamp with shade", "desk lamp with usb port", "lamp base", "wood base")]
    evidence = query_evidence(log, {"lamp", "with", "shade", "base"})
    assert evidence.end_rate("base") > evidence.end_rate("with") and evidence.start_rate("lamp") > evidence.start_rate("with")
    catalogue = catalogue_phrases(titles, min_items=1)
    without_log = [s.text for s in Suggester(catalogue).suggest("lamp ", 5)]
    # Catalogue counts and the boundary evidence only (no weight for the log's own phrases): counts favour "lamp with".
    boundary_only = np.array([1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0])
    with_log = [s.text for s in Suggester(catalogue, evidence, weights=boundary_only).suggest("lamp ", 5)]
    assert without_log.index("lamp with") < without_log.index("lamp base")
    assert with_log.index("lamp base") < with_log.index("lamp with")


def test_the_weights_are_learnt_from_the_log_when_it_is_large_enough() -> None:
    nouns = ["lamp", "drill", "hose", "mower", "faucet", "shelf", "ladder", "heater", "fan", "sander"]
    colours = ["white", "black", "red", "blue", "green", "grey", "brass", "steel", "oak", "pine"]
    titles = [f"{colour} {noun} with {extra}" for noun in nouns for colour in colours for extra in ("remote", "stand")]
    # Shoppers type "<colour> <noun>": a colour starts a query and a noun ends one; "with" does neither.
    log = [LoggedQuery(f"{colour} {noun}", NOW) for noun in nouns for colour in colours]
    catalogue = catalogue_phrases(titles)
    vocabulary = {word for title in titles for word in title.split()}
    assert learn_phrase_weights(log[:10], catalogue, vocabulary) is None  # too few queries to learn from
    weights = learn_phrase_weights(log, catalogue, vocabulary)
    assert weights is not None and weights[FEATURES.index("log P(last word ends a query)")] > 0
    suggester = Suggester.build(titles, log=log[::2])
    # A pair never searched whole still comes first: it is what shoppers type; "... with" is not.
    assert [s.text for s in suggester.suggest("black f", 1)] == ["black fan"]
    assert all(not s.text.endswith(" with") for s in suggester.suggest("black ", 5))


def test_a_typo_in_the_prefix_still_finds_completions() -> None:
    suggester = Suggester.build(TITLES)
    found = suggester.suggest("cordels", 3)
    assert found and found[0].text.startswith("cordless") and found[0].corrected


def test_chinese_prefixes_complete() -> None:
    suggester = Suggester.build(["无线蓝牙鼠标 静音", "无线蓝牙耳机", "机械键盘 青轴"], log=[LoggedQuery("无线鼠标", NOW)])
    assert "无线鼠标" in texts(suggester, "无线")
    assert any(text.startswith("蓝牙") for text in texts(suggester, "蓝牙"))


def test_typed_text_and_phrases_normalise_alike() -> None:
    assert normalise("  Cordless,  DRILL ") == "cordless drill"
    assert normalise("无线 鼠标") == "无线鼠标"
