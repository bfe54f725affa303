"""The Spark executor: a real standalone cluster on loopback gives the same audit and vectors as in-process runs."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from longtail.balance.component import as_training_table, build, build_chain, run
from longtail.balance.rows import in_row_order
from longtail.balance.sequences import ITEMS as SEQUENCE_ITEMS
from longtail.balance.sequences import USER, item_counts, sequence_table
from longtail.cli import app
from longtail.core.config import ComponentSpec, DataConfig, LongtailConfig, PipelineConfig, QualityConfig
from longtail.core.errors import ExecutorError, NotMappableError
from longtail.data.columns import SYNTHETIC
from longtail.data.loaders import PART_ROW_STRIDE, load_table, to_canonical
from longtail.data.schema import EVENTS, ITEMS, SOURCE_ROW
from longtail.data.splits import leave_one_out
from longtail.data.transactions import convert_transactions
from longtail.pipeline.audit_step import run_audit
from longtail.pipeline.encode_step import run_encode
from longtail.pipeline.executors import table_mapper
from longtail.pipeline.spark import SparkTableMapper, StandaloneCluster, check_master_reachable, start_session
from longtail.pipeline.spark_files import balance_files, sequence_parts
from longtail.pipeline.spark_items import near_duplicates_on_spark, price_outliers_on_spark
from longtail.quality import checks, duplicates
from longtail.quality.audit import audit

pytest.importorskip("pyspark")

BALANCING = [
    ComponentSpec(name="head-undersampling", params={"max_share": 0.2}),
    ComponentSpec(name="tail-oversampling", params={"ratio": 0.5}),
    ComponentSpec(name="random-sample", params={"fraction": 0.7}),
    ComponentSpec(name="inverse-popularity-weights"),
]
AUGMENTING = [ComponentSpec(name="crop", params={"copies": 2}), ComponentSpec(name="mask")]


@pytest.fixture(scope="module")
def cluster() -> Iterator[StandaloneCluster]:
    with StandaloneCluster(worker_cores=2, worker_memory="1g") as running:
        yield running


@pytest.fixture(scope="module")
def dirty_files(demo_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundled real data plus a few defects of each kind the event checks look for, and a bot, as files."""
    items = pl.read_csv(demo_data / "items.csv", infer_schema=False)
    events = pl.read_parquet(demo_data / "events.parquet").with_columns(pl.col(c).cast(pl.String) for c in ("timestamp", "rating"))
    sample = events.head(20)
    bot = pl.DataFrame(
        {
            "user_id": ["BOT"] * 400,
            "item_id": items["item_id"][:400],
            "event_type": ["view"] * 400,
            "timestamp": [f"2015-01-01T00:{i // 60:02d}:{i % 60:02d}Z" for i in range(400)],
        }
    )
    planted = pl.concat(
        [
            events,
            sample.with_columns(pl.lit("GHOST").alias("item_id")),
            sample.with_columns(pl.lit("7").alias("rating")),
            sample.with_columns(pl.lit("not a time").alias("timestamp")),
            sample,
            bot.with_columns(pl.lit(None, pl.String).alias(c) for c in ("session_id", "query", "rating", "text")).select(events.columns),
        ]
    )
    title = items["title"][10]
    middle = len(title) // 2
    swapped = title[:middle] + title[middle + 1] + title[middle] + title[middle + 2 :]  # a re-listing with a typo: a near-duplicate
    relisted = items.slice(10, 1).with_columns(pl.lit("RELISTED").alias("item_id"), pl.lit(swapped).alias("title"))
    planted_items = pl.concat([items, items.head(5).with_columns(pl.lit("-3").alias("price")), relisted])
    folder = tmp_path_factory.mktemp("dirty")
    planted_items.write_csv(folder / "items.csv")
    planted.write_csv(folder / "events.csv")
    # The part files hold a slice of the real events plus every planted defect: enough to compare, quick to run.
    small = pl.concat([events.head(3000), planted.slice(events.height)])
    (folder / "parts").mkdir()
    third = small.height // 3 + 1
    for index in range(3):
        small.slice(index * third, third).write_csv(folder / "parts" / f"part-{index}.csv")
    return folder


@pytest.fixture(scope="module")
def dirty_demo(dirty_files: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The planted data as loaded tables."""
    return load_table(dirty_files / "items.csv", ITEMS), load_table(dirty_files / "events.csv", EVENTS)


@pytest.mark.slow
def test_cluster_audit_and_encoding_match_the_local_run(cluster: StandaloneCluster, dirty_demo: tuple[pl.DataFrame, pl.DataFrame]) -> None:
    items, events = dirty_demo
    local_config = LongtailConfig()
    spark_config = LongtailConfig.model_validate({"pipeline": {"executor": "spark", "spark_master": cluster.master_url, "spark_partitions": 4}})
    local = audit(items, events, local_config)
    with table_mapper(spark_config.pipeline) as mapper:
        remote = audit(items, events, spark_config, map_table=mapper)
        sample = items.head(64)
        remote_ids, remote_vectors = run_encode(sample, mapper)
    local_ids, local_vectors = run_encode(sample)

    for name in ("items", "events"):
        assert remote.tables[name].kept.equals(local.tables[name].kept), name
        assert remote.tables[name].quarantine.equals(local.tables[name].quarantine), name
        assert remote.tables[name].flags.equals(local.tables[name].flags), name
    reasons = remote.report["tables"]["events"]["by_reason"]
    assert reasons == {"bot_user": 400, "unknown_item": 20, "rating_out_of_range": 20, "unparseable_timestamp": 20, "duplicate_event": 20}
    assert remote.report == local.report | {"generated_at": remote.report["generated_at"]}
    assert remote_ids == local_ids
    np.testing.assert_allclose(remote_vectors, local_vectors, atol=1e-5)


@pytest.mark.slow
def test_executors_read_part_files_and_write_the_same_outcome_as_the_local_run(cluster: StandaloneCluster, dirty_files: Path, tmp_path: Path) -> None:
    config = {"quality": {"reference_time": "2026-04-01T00:00:00+00:00"}}
    local_config = LongtailConfig.model_validate(config)
    spark_config = LongtailConfig.model_validate(config | {"pipeline": {"executor": "spark", "spark_master": cluster.master_url, "spark_partitions": 3}})
    local = run_audit(dirty_files / "items.csv", dirty_files / "parts", tmp_path / "local", local_config)
    remote = run_audit(dirty_files / "items.csv", dirty_files / "parts", tmp_path / "remote", spark_config)

    parts = {folder: pl.read_parquet(tmp_path / "remote" / folder / "events") for folder in ("clean", "quarantine", "flags")}
    assert len(list((tmp_path / "remote" / "clean" / "events").glob("part-*.parquet"))) == 3
    assert parts["clean"].sort(SOURCE_ROW).drop(SOURCE_ROW).equals(pl.read_parquet(tmp_path / "local" / "clean" / "events.parquet"))
    assert parts["quarantine"].sort(SOURCE_ROW).equals(pl.read_parquet(tmp_path / "local" / "quarantine" / "events.parquet"))
    assert parts["flags"].sort([SOURCE_ROW, "reason"]).equals(pl.read_parquet(tmp_path / "local" / "flags" / "events.parquet"))
    # Row ids name the part file and the row in it: the planted bot's events all sit in the last of three parts.
    assert parts["quarantine"].filter(pl.col("reason") == "bot_user")[SOURCE_ROW].min() > 2 * PART_ROW_STRIDE
    expected = {key: value for key, value in local.report.items() if key not in ("generated_at", "imbalance")}
    assert {key: value for key, value in remote.report.items() if key != "generated_at"} == expected
    assert remote.report["tables"]["events"]["by_reason"]["bot_user"] == 400
    # The item checks ran on the cluster (near-duplicates by banding, price outliers by window functions): the same outcome, details included.
    for folder in ("flags", "quarantine", "clean"):
        assert pl.read_parquet(tmp_path / "remote" / folder / "items.parquet").equals(pl.read_parquet(tmp_path / "local" / folder / "items.parquet")), folder
    item_flags = pl.read_parquet(tmp_path / "remote" / "flags" / "items.parquet")
    near = item_flags.filter(pl.col("reason") == "near_duplicate_item")
    assert remote.report["uniqueness"]["items"]["near_duplicate_item"] == near.height  # the demo catalogue has its own
    assert "RELISTED" in near["item_id"].to_list()


@pytest.fixture(scope="module")
def priced_catalogues(datasets_root: Path, dirty_demo: tuple[pl.DataFrame, pl.DataFrame]) -> list[pl.DataFrame]:
    """Catalogues with prices: the online-retail export's (real, uncategorised) and the demo's 777 categories with seeded log-normal prices."""
    raw = pl.read_parquet(datasets_root / "online-retail" / "online_retail.parquet")
    retail = to_canonical(convert_transactions(raw, DataConfig(), "online_retail.parquet").items, ITEMS, "online_retail.parquet")
    demo = dirty_demo[0]
    prices = np.round(np.random.default_rng(7).lognormal(3.0, 0.8, demo.height), 2)
    return [retail, demo.with_columns(pl.Series("price", prices))]


@pytest.mark.slow
def test_item_checks_training_table_and_balancing_on_the_cluster_equal_in_process(
    cluster: StandaloneCluster, dirty_demo: tuple[pl.DataFrame, pl.DataFrame], priced_catalogues: list[pl.DataFrame], tmp_path: Path
) -> None:
    items, events = dirty_demo
    candidates = items.filter(pl.col("item_id").is_first_distinct())
    ids, texts = candidates["item_id"].to_list(), candidates.select(duplicates.item_text(candidates))["title"].to_list()
    quality = QualityConfig(price_outlier_ratio=3.0)
    demo_events = events.filter(pl.col("item_id").is_not_null(), pl.col("timestamp").is_not_null())
    texts_table = as_training_table(items.head(400).select("item_id", pl.col("title").alias("text")))
    config = PipelineConfig(executor="spark", spark_master=cluster.master_url)
    session = start_session(config)
    try:
        remote = near_duplicates_on_spark(session, ids, texts, 0.8, 3, partitions=3)
        remote_outliers = [price_outliers_on_spark(session, catalogue, quality, partitions=3) for catalogue in priced_catalogues]
        mapper = SparkTableMapper(session, 3, tmp_path)
        remote_split = leave_one_out(items, demo_events, mapper)
        table = sequence_table(remote_split.train)
        remote_counts = item_counts(table, mapper)
        remote_balanced = run(build_chain(BALANCING), table, seed=5, map_table=mapper)
        remote_augmented = run(build_chain(AUGMENTING), table, seed=6, map_table=mapper)
        remote_texts = run(build("text-eda", copies=2), texts_table, seed=7, map_table=mapper)
        with pytest.raises(NotMappableError, match="component 'smote' cannot run per partition"):
            run(build("smote", label="item_id"), texts_table, seed=1, map_table=mapper)
    finally:
        session.stop()
    local = duplicates.near_duplicates(ids, texts, 0.8, 3)
    assert len(local) > 200  # the demo catalogue lists many variants of one product
    assert remote == local
    assert "RELISTED" in remote
    local_outliers = [checks.price_outliers(catalogue, quality) for catalogue in priced_catalogues]
    assert [table.height > 10 for table in local_outliers] == [True, True]  # real outliers (postage, manual fees) and seeded ones
    assert all(remote_table.equals(local_table) for remote_table, local_table in zip(remote_outliers, local_outliers, strict=True))
    local_split = leave_one_out(items, demo_events)
    assert remote_split.user_ids == local_split.user_ids
    assert all(np.array_equal(a, b) for a, b in zip(remote_split.train, local_split.train, strict=True))
    np.testing.assert_array_equal(remote_counts, item_counts(sequence_table(local_split.train)))
    # row sampling and augmentation decided per row on the executors: the same rows, in the same order, as in-process
    local_balanced = run(build_chain(BALANCING), table, seed=5)
    assert remote_balanced.equals(local_balanced)
    assert local_balanced[SYNTHETIC].any() and local_balanced.filter(~pl.col(SYNTHETIC)).height < table.height  # copies made, rows dropped
    assert remote_augmented.equals(run(build_chain(AUGMENTING), table, seed=6))
    assert remote_texts.equals(run(build("text-eda", copies=2), texts_table, seed=7))
    assert remote_texts.height == 3 * texts_table.height


def test_sequences_balancing_and_augmentation_from_files_on_the_cluster_write_the_in_process_rows(
    cluster: StandaloneCluster, dirty_demo: tuple[pl.DataFrame, pl.DataFrame], tmp_path: Path
) -> None:
    items, events = dirty_demo
    valid = events.filter(pl.col("item_id").is_not_null(), pl.col("timestamp").is_not_null())  # the planted unknown item stays
    event_parts = tmp_path / "events"
    event_parts.mkdir()
    raw = valid.select("user_id", "item_id", "event_type", pl.col("timestamp").cast(pl.String))
    for number, start in enumerate(range(0, raw.height, 5000)):
        raw.slice(start, 5000).write_csv(event_parts / f"part-{number:02d}.csv")
    pipeline = PipelineConfig(executor="spark", spark_master=cluster.master_url, spark_partitions=3)
    built = sequence_parts(items, event_parts, tmp_path / "built", LongtailConfig(pipeline=pipeline))
    reference = leave_one_out(items, load_table(event_parts, EVENTS))
    rows = pl.read_parquet(tmp_path / "built" / "rows" / "*.parquet").sort("user_id")
    assert rows["user_id"].to_list() == reference.user_ids and built["users"] == len(reference.user_ids)
    assert all(np.array_equal(a, b) for a, b in zip(rows[SEQUENCE_ITEMS].to_list(), reference.train, strict=True))
    assert pl.read_parquet(tmp_path / "built" / "catalogue.parquet")["item_id"].to_list() == reference.item_ids
    assert built["unknown_items"] >= 1  # GHOST: indexed after the catalogue, as in-process
    sequences = sequence_table(reference.train)
    table = pl.concat([sequences, sequences.head(30)])  # identical rows: their keys differ only by rank in input order
    parts = tmp_path / "sequences"
    parts.mkdir()
    for number, start in enumerate(range(0, table.height, 700)):
        table.slice(start, 700).write_parquet(parts / f"part-{number:02d}.parquet")
    assert len(list(parts.iterdir())) >= 3
    figures = balance_files(build_chain(BALANCING).components, parts, tmp_path / "balanced", 5, pipeline)
    # the augmentation chain through the command line, from a config's ablation arm
    config = tmp_path / "config.yaml"
    arm = "{name: augment, sequences: [{name: crop, params: {copies: 2}}, {name: mask}]}"
    config.write_text(f"seed: 6\nablation:\n  variants: [{arm}]\n")
    command = ["balance-files", str(parts), "--out", str(tmp_path / "augmented"), "--arm", "augment", "--config", str(config), "--master", cluster.master_url]
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 0, result.output
    assert "input order: sort by __order2, __order1, __order0" in " ".join(result.output.split())
    local_balanced = run(build_chain(BALANCING), table, seed=5)
    written = in_row_order(pl.read_parquet(tmp_path / "balanced" / "rows" / "*.parquet"))
    assert written.equals(local_balanced)
    assert local_balanced[SYNTHETIC].any() and local_balanced.filter(~pl.col(SYNTHETIC)).height < table.height  # copies made, rows dropped
    assert in_row_order(pl.read_parquet(tmp_path / "augmented" / "rows" / "*.parquet")).equals(run(build_chain(AUGMENTING), table, seed=6))
    assert figures["input_rows"] == table.height and figures["output_rows"] == local_balanced.height
    assert figures["synthetic_rows"] == int(local_balanced[SYNTHETIC].sum())
    # the driver got the components' statistics only (per-partition counts of items, rows), never a row's content
    returned = figures["returned_to_driver"]
    assert returned["frames"] > 0 and not {USER, SEQUENCE_ITEMS} & set(returned["columns"])
    assert set(returned["columns"]) <= {"item", "count", "rows"}


def test_unreachable_master_fails_fast_with_a_clear_message() -> None:
    config = PipelineConfig(executor="spark", spark_master="spark://127.0.0.1:9", spark_connect_timeout_seconds=2)
    started = time.monotonic()
    with pytest.raises(ExecutorError, match=r"spark://127.0.0.1:9 is not reachable .* set pipeline.executor: local"):
        start_session(config)
    assert time.monotonic() - started < 10


def test_master_check_accepts_local_masters() -> None:
    check_master_reachable("local[2]", 1.0)
