"""Plant known defects into real data and check the audit catches them with the right reason and spares the rest."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from longtail.core.config import LongtailConfig
from longtail.data.adapters import load_dataset
from longtail.data.expressions import describe
from longtail.pipeline.audit_step import run_audit

PER_KIND = 12
REFERENCE_TIME = "2020-01-01T00:00:00+00:00"


def _with_prices(items: pl.DataFrame, rng: np.random.Generator) -> pl.DataFrame:
    """The real catalogue has no prices: give each category a typical price and items a spread around it."""
    categories = items["category"].fill_null("?").unique().sort().to_list()
    base = dict(zip(categories, rng.uniform(5, 200, len(categories)), strict=True))
    typical = np.array([base[c] for c in items["category"].fill_null("?").to_list()])
    return items.with_columns(
        pl.Series("price", np.round(typical * rng.lognormal(0, 0.25, items.height), 2)),
        pl.lit("USD").alias("currency"),
        pl.lit(datetime(2013, 1, 1, tzinfo=UTC)).dt.cast_time_unit("us").alias("created_at"),
    )


def _typo(title: str) -> str:
    """A near-duplicate as shops produce them: re-listed upper-cased with a swapped letter pair."""
    middle = next(
        i for i in range(len(title) // 2, len(title) - 1) if title[i].isalpha() and title[i + 1].isalpha() and title[i].lower() != title[i + 1].lower()
    )
    return (title[:middle] + title[middle + 1] + title[middle] + title[middle + 2 :]).upper()


def _as_text(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.with_columns(pl.col(c).cast(pl.String) for c in frame.columns)


@pytest.fixture(scope="module")
def planted(datasets_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    rng = np.random.default_rng(7)
    data = load_dataset("scientific", datasets_root)
    items = _as_text(_with_prices(data.items, rng))
    events = _as_text(data.events.with_columns(pl.Series("rating", rng.integers(1, 6, data.events.height).astype(float))))
    long_titles = items.filter(pl.col("title").str.len_chars() > 60)
    counts = items.group_by("category").len()
    big_categories = counts.filter(pl.col("len") >= 20)["category"]
    picks = rng.permutation(long_titles.height)
    sample = long_titles[picks[: 8 * PER_KIND]]
    # `origin` remembers which real item a planted copy was made from.
    chunks = [sample[i * PER_KIND : (i + 1) * PER_KIND].with_columns(pl.col("item_id").alias("origin")) for i in range(8)]
    new_id = pl.lit("NEW-") + pl.int_range(pl.len()).cast(pl.String)

    added_items = {
        "invalid_price": chunks[0].with_columns((new_id + "p").alias("item_id"), pl.Series("price", ["0", "-5"] * (PER_KIND // 2))),
        "missing_title": chunks[1].with_columns((new_id + "t").alias("item_id"), pl.Series("title", [None, "  "] * (PER_KIND // 2), dtype=pl.String)),
        "unparseable_price": chunks[2].with_columns((new_id + "u").alias("item_id"), pl.lit("12,99 EUR").alias("price")),
        "duplicate_item_id": chunks[3],
        "duplicate_item": chunks[4].with_columns((new_id + "d").alias("item_id")),
        "near_duplicate_item": chunks[5].with_columns((new_id + "n").alias("item_id"), pl.col("title").map_elements(_typo, return_dtype=pl.String)),
    }
    html_ids = chunks[6]["item_id"].to_list()
    mojibake_ids = chunks[7]["item_id"].to_list()
    outlier_rows = items.filter(pl.col("category").is_in(big_categories.implode()), ~pl.col("item_id").is_in(sample["item_id"].implode()))
    outlier_ids = outlier_rows["item_id"].sample(PER_KIND, seed=3).to_list()
    items = items.with_columns(
        pl.when(pl.col("item_id").is_in(html_ids)).then(describe("<b>", pl.col("title"), "</b> &amp; more<br/>")).otherwise(pl.col("title")).alias("title"),
        pl.when(pl.col("item_id").is_in(outlier_ids)).then((pl.col("price").cast(pl.Float64) * 100).cast(pl.String)).otherwise(pl.col("price")).alias("price"),
    )

    def garble(text: str) -> str:
        return (text + " — 5°C café").encode("utf-8").decode("cp1252", errors="ignore")

    items = items.with_columns(
        pl.when(pl.col("item_id").is_in(mojibake_ids))
        .then(pl.col("title").map_elements(garble, return_dtype=pl.String))
        .otherwise(pl.col("title"))
        .alias("title")
    )
    all_items = pl.concat(
        [
            items.with_columns(pl.lit(None, pl.String).alias("planted"), pl.lit(None, pl.String).alias("origin")),
            *[f.with_columns(pl.lit(k).alias("planted")).select(*items.columns, "planted", "origin") for k, f in added_items.items()],
        ]
    )

    real_events = events.sample(5 * PER_KIND, seed=5)
    e_chunks = [real_events[i * PER_KIND : (i + 1) * PER_KIND] for i in range(5)]
    added_events = {
        "rating_out_of_range": e_chunks[0].with_columns(pl.Series("rating", ["0", "6", "-1", "10"] * (PER_KIND // 4))),
        "future_timestamp": e_chunks[1].with_columns(pl.lit("2031-06-01T12:00:00Z").alias("timestamp")),
        "unknown_item": e_chunks[2].with_columns((pl.lit("GHOST-") + pl.int_range(pl.len()).cast(pl.String)).alias("item_id")),
        "invalid_event_type": e_chunks[3].with_columns(pl.lit("purchased!").alias("event_type")),
        "unparseable_timestamp": e_chunks[4].with_columns(pl.lit("yesterday").alias("timestamp")),
    }
    start = datetime(2015, 3, 1, tzinfo=UTC)
    item_pool = items["item_id"].to_list()
    bot_rows = []
    for bot in range(PER_KIND):
        for step in range(1000):
            bot_rows.append(
                {
                    "user_id": f"BOT-{bot}",
                    "item_id": item_pool[(bot * 1000 + step) % len(item_pool)],
                    "event_type": "view",
                    "timestamp": (start + timedelta(seconds=0.3 * step + bot * 3600)).isoformat(),
                }
            )
    bots = _as_text(pl.DataFrame(bot_rows).with_columns(pl.lit(None).alias(c) for c in ("session_id", "query", "rating", "text", "attributes")))
    all_events = pl.concat(
        [
            events.with_columns(pl.lit(None, pl.String).alias("planted")),
            *[f.with_columns(pl.lit(k).alias("planted")) for k, f in added_events.items()],
            bots.select(events.columns).with_columns(pl.lit("bot_user").alias("planted")),
        ],
    )
    # Shuffle so planted rows are not all at the end.
    all_items = all_items.sample(fraction=1.0, shuffle=True, seed=11).with_row_index("source_row", offset=1)
    all_events = all_events.sample(fraction=1.0, shuffle=True, seed=12).with_row_index("source_row", offset=1)

    folder = tmp_path_factory.mktemp("planted")
    all_items.drop("planted", "origin", "source_row").write_csv(folder / "items.csv")
    all_events.drop("planted", "source_row").write_ndjson(folder / "events.jsonl")
    config = LongtailConfig.model_validate({"quality": {"reference_time": REFERENCE_TIME}})
    run_audit(folder / "items.csv", folder / "events.jsonl", folder / "out", config)
    return {
        "out": folder / "out",
        "items": all_items.with_columns(pl.col("source_row").cast(pl.Int64)),
        "events": all_events.with_columns(pl.col("source_row").cast(pl.Int64)),
        "in_place": {"html_in_text": html_ids, "mojibake_text": mojibake_ids, "price_outlier": outlier_ids},
    }


def _findings(out: Path, table: str) -> pl.DataFrame:
    quarantine = pl.read_parquet(out / "quarantine" / f"{table}.parquet").select("source_row", "reason", pl.lit("quarantine").alias("where"))
    flags = pl.read_parquet(out / "flags" / f"{table}.parquet").select("source_row", "reason", pl.lit("flag").alias("where"))
    return pl.concat([quarantine, flags])


def _caught_share(findings: pl.DataFrame, rows: pl.Series, reason: str) -> float:
    hits = findings.filter(pl.col("source_row").is_in(rows.implode()), pl.col("reason") == reason)["source_row"].n_unique()
    return hits / rows.len()


@pytest.mark.parametrize("reason", ["invalid_price", "missing_title", "unparseable_price"])
def test_planted_item_rows_are_caught_with_their_reason(planted: dict, reason: str) -> None:
    rows = planted["items"].filter(pl.col("planted") == reason)["source_row"]
    assert rows.len() == PER_KIND
    assert _caught_share(_findings(planted["out"], "items"), rows, reason) >= 0.95


@pytest.mark.parametrize("reason", ["duplicate_item_id", "duplicate_item", "near_duplicate_item"])
def test_one_row_of_each_planted_duplicate_pair_is_caught(planted: dict, reason: str) -> None:
    """Rows are shuffled, so either the copy or its original may come second; the second one is the duplicate."""
    items = planted["items"]
    copies = items.filter(pl.col("planted") == reason)
    findings = _findings(planted["out"], "items").filter(pl.col("reason") == reason)
    caught = 0
    for copy_row, origin in copies.select("source_row", "origin").iter_rows():
        original_row = items.filter(pl.col("item_id") == origin, pl.col("planted").is_null())["source_row"]
        pair = {copy_row, *original_row.to_list()}
        hits = set(findings["source_row"]) & pair
        caught += len(hits) == 1 and max(pair) in hits
    assert caught / copies.height >= 0.95


@pytest.mark.parametrize("reason", ["html_in_text", "mojibake_text", "price_outlier"])
def test_in_place_item_defects_are_flagged(planted: dict, reason: str) -> None:
    ids = planted["in_place"][reason]
    assert len(ids) >= 10
    rows = planted["items"].filter(pl.col("item_id").is_in(ids), pl.col("planted").is_null())["source_row"]
    assert _caught_share(_findings(planted["out"], "items"), rows, reason) >= 0.95


@pytest.mark.parametrize("reason", ["rating_out_of_range", "future_timestamp", "unknown_item", "invalid_event_type", "unparseable_timestamp"])
def test_planted_event_rows_are_quarantined_with_their_reason(planted: dict, reason: str) -> None:
    rows = planted["events"].filter(pl.col("planted") == reason)["source_row"]
    quarantine = pl.read_parquet(planted["out"] / "quarantine" / "events.parquet")
    assert _caught_share(quarantine, rows, reason) >= 0.95


def test_every_bot_is_caught(planted: dict) -> None:
    quarantine = pl.read_parquet(planted["out"] / "quarantine" / "events.parquet")
    per_bot = quarantine.filter(pl.col("reason") == "bot_user").group_by("user_id").len()
    assert per_bot.height == PER_KIND
    assert per_bot["len"].min() >= 950
    assert set(per_bot["user_id"]) == {f"BOT-{i}" for i in range(PER_KIND)}


def test_untouched_rows_are_almost_never_quarantined(planted: dict) -> None:
    for table in ("items", "events"):
        untouched = planted[table].filter(pl.col("planted").is_null())["source_row"]
        quarantine = pl.read_parquet(planted["out"] / "quarantine" / f"{table}.parquet")
        wrongly = quarantine.filter(pl.col("source_row").is_in(untouched.implode())).height
        assert wrongly / untouched.len() < 0.01, (table, wrongly)


def test_repaired_text_is_clean_in_the_kept_table(planted: dict) -> None:
    clean = pl.read_parquet(planted["out"] / "clean" / "items.parquet")
    repaired = clean.filter(pl.col("item_id").is_in(planted["in_place"]["html_in_text"]))
    assert repaired.height == PER_KIND
    assert not repaired["title"].str.contains("<|&amp;").any()
    fixed = clean.filter(pl.col("item_id").is_in(planted["in_place"]["mojibake_text"]))["title"]
    assert fixed.str.contains("5°C café").all()


def test_report_counts_reconcile(planted: dict) -> None:
    report = json.loads((planted["out"] / "report.json").read_text(encoding="utf-8"))
    for table in ("items", "events"):
        summary = report["tables"][table]
        assert summary["input_rows"] == planted[table].height
        assert summary["kept_rows"] + summary["quarantined_rows"] == summary["input_rows"]
        assert sum(summary["by_reason"].values()) == summary["quarantined_rows"]
    assert report["tables"]["events"]["by_reason"]["bot_user"] >= 11_400
    assert report["outliers"]["events"]["bot_user"] == 12_000
