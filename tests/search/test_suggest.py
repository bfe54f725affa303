"""Autocomplete over catalogue phrases and past queries: ranking, recency, zero-result filtering, typos, Chinese."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from longtail.search.suggest import LoggedQuery, Suggester, normalise

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
