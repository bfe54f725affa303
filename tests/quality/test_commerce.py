"""Commerce rules of the audit on tiny hand-made logs with known answers, and a reconciliation on a slice of a real export."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import polars as pl
import pytest
from typer.testing import CliRunner

from longtail.cli import app
from longtail.core.config import LongtailConfig
from longtail.data.loaders import to_canonical
from longtail.data.schema import EVENTS, ITEMS
from longtail.data.transactions import convert_transactions
from longtail.quality.audit import audit

CONFIG = LongtailConfig.model_validate({"quality": {"reference_time": "2012-01-01T00:00:00"}})


def _line(invoice: str, code: str, title: str | None, quantity: int, price: float, user: str | None, day: int, hour: int = 10) -> dict:
    return {
        "InvoiceNo": invoice,
        "StockCode": code,
        "Description": title,
        "Quantity": quantity,
        "InvoiceDate": f"2011-03-{day:02d} {hour:02d}:00:00",
        "UnitPrice": price,
        "CustomerID": user,
    }


def _shop(extra: list[dict]) -> list[dict]:
    """Forty ordinary products (five-digit codes, upper-case titles, stable prices), each bought once by two customers."""
    rows = []
    for n in range(40):
        for user, day in (("u1", 1), ("u2", 2)):
            rows.append(_line(f"{day}{n:03d}", f"{20000 + n}", f"RED HEART MUG NUMBER {n}", 1, 2.0 + n % 5, user, day))
    return rows + extra


def _audit(rows: list[dict]):
    tables = convert_transactions(pl.DataFrame(rows), CONFIG.data, "log.csv")
    items = to_canonical(tables.items, ITEMS, "<items>")
    events = to_canonical(tables.events, EVENTS, "<events>")
    return audit(items, events, CONFIG), events.height


def _reasons(result, table: str, reason: str) -> dict[int, str]:
    quarantine = result.tables[table].quarantine
    hits = quarantine.filter(pl.col("all_reasons").str.split(";").list.contains(reason))
    return dict(zip(hits["source_row"].to_list(), hits["detail"].to_list(), strict=True))


def test_cancellations_are_matched_to_the_purchase_they_undo() -> None:
    result, _ = _audit(
        _shop([_line("C9001", "20000", "RED HEART MUG NUMBER 0", -1, 2.0, "u1", 5), _line("C9002", "20001", "RED HEART MUG NUMBER 1", -1, 3.0, "u9", 5)])
    )
    commerce = result.report["commerce"]
    assert (commerce["return_lines"], commerce["returns_matched"]) == (2, 1)
    cancellations = result.tables["events"].quarantine.filter(pl.col("reason") == "cancellation")
    assert sorted(cancellations["detail"].to_list()) == ["matches purchase row 1", "no earlier purchase of this item by this user"]


def test_negative_quantity_and_non_positive_price_lines_are_quarantined() -> None:
    # Invoices without the cancellation prefix: a stock adjustment (negative quantity) and a free line (price 0).
    rows = _shop(
        [
            _line("C9001", "20003", "RED HEART MUG NUMBER 3", -1, 5.0, "u1", 5),
            _line("9002", "20002", "RED HEART MUG NUMBER 2", -3, 4.0, "u1", 6),
            _line("9003", "20004", "RED HEART MUG NUMBER 4", 1, 0.0, "u2", 6),
        ]
    )
    result, _ = _audit(rows)
    assert list(_reasons(result, "events", "negative_quantity").values()) == ["quantity -3.0"]
    assert list(_reasons(result, "events", "non_positive_price").values()) == ["price 0.0"]
    assert result.report["commerce"]["zero_price_lines"] == 1
    assert result.report["commerce"]["negative_quantity_lines"] == 2


def test_fee_like_codes_are_found_from_the_data_not_a_list() -> None:
    # FREIGHT: an unusual code shape, a generic title and a price that follows the order, in many baskets.
    fees = [_line(f"{d}{n:03d}", "FREIGHT", "Shipping", 1, 5.0 + 7 * n, "u1" if d == 1 else "u2", d) for n in range(12) for d in (1, 2)]
    result, _ = _audit(_shop(fees))
    items = result.tables["items"].quarantine
    assert items.filter(pl.col("reason") == "non_merchandise")["item_id"].to_list() == ["FREIGHT"]
    assert result.report["commerce"]["non_merchandise_codes"] == {"FREIGHT": 24}
    assert len(_reasons(result, "events", "non_merchandise")) == 24
    # Ordinary products are never taken for fees.
    assert result.tables["items"].kept.height == 40


def test_junk_titles_and_several_titles_per_code_are_named() -> None:
    rows = _shop(
        [
            _line("9001", "20005", "?", -2, 0.0, None, 7),
            _line("9002", "30001", "damaged", -5, 0.0, None, 7),
            _line("9003", "20006", "RED HEART MUG 6 (BIG)", 1, 3.0, "u1", 7),
        ]
    )
    result, _ = _audit(rows)
    assert result.tables["items"].quarantine.filter(pl.col("reason") == "junk_title")["item_id"].to_list() == ["30001"]
    flags = result.tables["items"].flags.filter(pl.col("reason") == "multiple_titles")
    assert sorted(flags["item_id"].to_list()) == ["20005", "20006"]
    assert result.report["commerce"]["multi_title_codes"] == 2
    assert result.report["commerce"]["guest_lines"] == 2


def test_case_variants_of_a_code_merge_into_the_busier_spelling_with_the_mapping_kept() -> None:
    rows = _shop([_line("9001", "20007a", "RED HEART MUG NUMBER 7", 1, 4.0, "u3", 8)])
    rows = [{**r, "StockCode": "20007A"} if r["StockCode"] == "20007" else r for r in rows]
    result, _ = _audit(rows)
    assert result.report["item_merges"] == {"20007a": "20007A"}
    kept_events = result.tables["events"].kept
    assert kept_events.filter(pl.col("user_id") == "u3")["item_id"].to_list() == ["20007A"]
    assert "20007a" not in result.tables["items"].kept["item_id"].to_list()


def test_guest_lines_are_not_one_giant_bot() -> None:
    guests = [_line(f"G{n}", f"{20000 + n % 40}", f"RED HEART MUG NUMBER {n % 40}", 1, 2.0 + (n % 40) % 5, None, 9, 10) for n in range(400)]
    result, _ = _audit(_shop(guests))
    assert "bot_user" not in result.report["tables"]["events"]["by_reason"]
    assert result.report["commerce"]["guest_lines"] == 400


def test_shop_wide_price_outliers_without_categories() -> None:
    result, _ = _audit(_shop([_line("9001", "29999", "GOLDEN RED HEART MUG DELUXE", 1, 900.0, "u1", 9)]))
    assert result.tables["items"].flags.filter(pl.col("reason") == "price_outlier")["item_id"].to_list() == ["29999"]


def test_a_log_whose_every_line_fails_a_rule_loses_nothing() -> None:
    rows = [{**r, "UnitPrice": 0.0} for r in _shop([])]
    result, height = _audit(rows)
    events = result.tables["events"]
    assert events.kept.height == 0
    assert events.quarantine.height == height == 80
    assert set(events.quarantine["reason"]) == {"non_positive_price"}


def test_dates_in_an_unexpected_format_stop_the_audit_naming_the_column(tmp_path: Path) -> None:
    pl.DataFrame({"item_id": ["A"], "title": ["Mug"]}).write_csv(tmp_path / "items.csv")
    pl.DataFrame({"user_id": ["u"] * 3, "item_id": ["A"] * 3, "event_type": ["purchase"] * 3, "timestamp": ["12/1/2009 7:45"] * 3}).write_csv(
        tmp_path / "events.csv"
    )
    result = CliRunner().invoke(
        app, ["audit", "--items", str(tmp_path / "items.csv"), "--events", str(tmp_path / "events.csv"), "--out", str(tmp_path / "out")]
    )
    assert result.exit_code == 2
    message = " ".join(result.output.split())
    assert "column 'timestamp'" in message and "'12/1/2009 7:45'" in message and "data.timestamp_format" in message
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def retail_slice(datasets_root: Path) -> pl.DataFrame:
    """The lines of the first 1,500 invoices of the online-retail export."""
    raw = pl.read_parquet(datasets_root / "online-retail" / "online_retail.parquet")
    first = raw["InvoiceNo"].unique(maintain_order=True).head(1500)
    return raw.filter(pl.col("InvoiceNo").is_in(first.implode()))


@pytest.fixture(scope="module")
def retail_audit(retail_slice: pl.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`longtail convert --transactions` then `longtail audit` on the slice, as a user would run them; the audit folder."""
    folder = tmp_path_factory.mktemp("retail")
    retail_slice.write_parquet(folder / "log.parquet")
    runner = CliRunner()
    converted = runner.invoke(app, ["convert", "--transactions", str(folder / "log.parquet"), "--out", str(folder / "canon")])
    assert converted.exit_code == 0, converted.output
    audited = runner.invoke(
        app, ["audit", "--items", str(folder / "canon" / "items.parquet"), "--events", str(folder / "canon" / "events.parquet"), "--out", str(folder / "audit")]
    )
    assert audited.exit_code == 0, audited.output
    return folder / "audit"


def test_every_commerce_number_reconciles_with_an_independent_count(retail_slice: pl.DataFrame, retail_audit: Path) -> None:
    tmp_path = retail_audit.parent
    report = json.loads((tmp_path / "audit" / "report.json").read_text())
    commerce = report["commerce"]
    with duckdb.connect() as db:
        db.register("raw", retail_slice.to_arrow())

        def one(sql: str) -> int:
            return db.execute(sql).fetchall()[0][0]

        assert commerce["lines"] == one("SELECT count(*) FROM raw")
        assert commerce["guest_lines"] == one("SELECT count(*) FROM raw WHERE CustomerID IS NULL")
        assert commerce["return_lines"] == one("SELECT count(*) FROM raw WHERE InvoiceNo LIKE 'C%'")
        assert commerce["returns_matched"] == one(
            """SELECT count(*) FROM raw r WHERE r.InvoiceNo LIKE 'C%' AND EXISTS (SELECT 1 FROM raw p WHERE p.InvoiceNo NOT LIKE 'C%'
               AND p.CustomerID = r.CustomerID AND p.StockCode = r.StockCode
               AND strptime(p.InvoiceDate, '%m/%d/%y %H:%M') <= strptime(r.InvoiceDate, '%m/%d/%y %H:%M'))"""
        )
        assert commerce["negative_quantity_lines"] == one("SELECT count(*) FROM raw WHERE Quantity < 0")
        assert commerce["zero_price_lines"] == one("SELECT count(*) FROM raw WHERE UnitPrice = 0")
        assert commerce["exact_duplicate_lines"] == one(
            "SELECT count(*) - count(DISTINCT (InvoiceNo, StockCode, Description, Quantity, InvoiceDate, UnitPrice, CustomerID, Country)) FROM raw"
        )
        assert commerce["multi_title_codes"] == one(
            "SELECT count(*) FROM (SELECT StockCode FROM raw GROUP BY StockCode HAVING count(DISTINCT Description) > 1)"
        )
        for code, lines in commerce["non_merchandise_codes"].items():
            assert lines == one(f"SELECT count(*) FROM raw WHERE StockCode = '{code}'")
    # The fee-like codes found from the data include the postage line and no ordinary five-digit product.
    assert "POST" in commerce["non_merchandise_codes"]
    assert not [code for code in commerce["non_merchandise_codes"] if code.isdigit() and len(code) == 5]
    events = report["tables"]["events"]
    assert events["kept_rows"] + events["quarantined_rows"] == commerce["lines"]
    merges = pl.read_parquet(tmp_path / "audit" / "clean" / "item_merges.parquet")
    assert dict(merges.iter_rows()) == report["item_merges"]


def test_float_user_ids_are_audited_as_integers_with_a_warning(tmp_path: Path) -> None:
    pl.DataFrame({"item_id": ["A"], "title": ["Mug"]}).write_csv(tmp_path / "items.csv")
    pl.DataFrame(
        {"user_id": ["13085.0", "17850.0"], "item_id": ["A", "A"], "event_type": ["purchase"] * 2, "timestamp": ["2011-01-05T10:00:00", "2011-01-06T10:00:00"]}
    ).write_csv(tmp_path / "events.csv")
    result = CliRunner().invoke(
        app, ["audit", "--items", str(tmp_path / "items.csv"), "--events", str(tmp_path / "events.csv"), "--out", str(tmp_path / "out")]
    )
    assert result.exit_code == 0, result.output
    assert "warning: " in result.output and "column 'user_id'" in " ".join(result.output.split())
    assert pl.read_parquet(tmp_path / "out" / "clean" / "events.parquet")["user_id"].to_list() == ["13085", "17850"]


@pytest.mark.parametrize("protocol", ["loo", "temporal"])
def test_evaluate_runs_on_the_cleaned_export_with_and_without_repeats(retail_audit: Path, protocol: str) -> None:
    runner = CliRunner()
    hit_rates = {}
    for flag in ("--no-repeats", "--repeats"):
        out = retail_audit.parent / f"eval-{protocol}{flag}"
        result = runner.invoke(
            app,
            [
                "evaluate",
                "--items",
                str(retail_audit / "clean" / "items.parquet"),
                "--events",
                str(retail_audit / "clean" / "events.parquet"),
                "--model",
                "popularity",
                "--protocol",
                protocol,
                flag,
                "--out",
                str(out),
            ],
        )
        assert result.exit_code == 0, result.output
        run = json.loads((out / "report.json").read_text())[0]
        assert run["repeats"] is (flag == "--repeats")
        hit_rates[flag] = run["metrics"]["HR@10"]
    # Customers re-buy best sellers, so leaving history rankable can only raise popularity's hit rate.
    assert hit_rates["--repeats"] >= hit_rates["--no-repeats"]
