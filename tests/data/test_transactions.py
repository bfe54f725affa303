"""The transaction on-ramp: a line-item log becomes canonical items and typed events, with bad input named clearly."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from longtail.cli import app
from longtail.core.config import DataConfig, TransactionConfig
from longtail.core.errors import DataWarning, InputDataError
from longtail.data.loaders import read_raw
from longtail.data.transactions import convert_transactions, detect_timestamp_format

LOG = pl.DataFrame(
    {
        "InvoiceNo": ["1001", "1001", "1002", "C1003", "1004", "1004"],
        "StockCode": ["A1", "B2", "A1", "A1", "A1", "B2"],
        "Description": ["RED MUG", "BLUE CUP", "RED MUG", "RED MUG", "MUG RED", None],
        "Quantity": [2, 1, 3, -1, 1, 4],
        "InvoiceDate": ["12/1/10 8:26", "12/1/10 8:26", "12/13/10 9:00", "12/14/10 10:00", "1/5/11 11:00", "1/5/11 11:00"],
        "UnitPrice": [2.0, 5.0, 3.0, 2.0, 4.0, 5.5],
        "CustomerID": [17850.0, 17850.0, None, 17850.0, 13085.0, 13085.0],
        "Country": ["United Kingdom"] * 6,
    }
)


def _convert(frame: pl.DataFrame = LOG, data: DataConfig | None = None):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DataWarning)
        tables = convert_transactions(frame, data or DataConfig(), "log.csv")
    return tables, [str(w.message) for w in caught]


def test_lines_become_typed_events_with_their_attributes() -> None:
    tables, _ = _convert()
    events = tables.events
    assert events["event_type"].to_list() == ["purchase", "purchase", "purchase", "return", "purchase", "purchase"]
    assert tables.summary["return_rule"] == "invoice starts with 'C'"
    assert events["session_id"].to_list()[:2] == ["1001", "1001"]
    assert events["timestamp"][2] == "2010-12-13T09:00:00"
    first = json.loads(events["attributes"][0])
    assert first == {"invoice": "1001", "title": "RED MUG", "quantity": 2, "price": 2.0, "Country": "United Kingdom"}


def test_items_take_the_most_frequent_title_median_positive_price_and_first_last_seen() -> None:
    items, _ = _convert()
    mug = items.items.filter(pl.col("item_id") == "A1").row(0, named=True)
    assert mug["title"] == "RED MUG"
    assert mug["price"] == 2.5  # median of 2, 3, 2, 4
    assert mug["created_at"] == "2010-12-01T08:26:00"
    assert json.loads(mug["attributes"]) == {"last_seen": "2011-01-05T11:00:00", "lines": 4, "title_variants": 2}
    # B2's second line has no description: the item keeps the title its other line gives.
    assert items.items.filter(pl.col("item_id") == "B2")["title"].item() == "BLUE CUP"


def test_float_customer_ids_lose_their_decimal_with_a_warning() -> None:
    tables, messages = _convert()
    assert tables.events["user_id"].to_list() == ["17850", "17850", None, "17850", "13085", "13085"]
    assert any("'user_id'" in m and "17850.0" in m for m in messages)


def test_a_negative_quantity_marks_a_return_when_no_invoice_prefix_does() -> None:
    log = LOG.with_columns(pl.col("InvoiceNo").str.replace("C", ""))
    tables, _ = _convert(log)
    assert tables.summary["return_rule"] == "negative quantity"
    assert tables.events["event_type"][3] == "return"


def test_configured_prefix_constant_expression_and_column_names_are_honoured() -> None:
    log = LOG.rename({"StockCode": "Artikel", "InvoiceDate": "Datum"}).with_columns(pl.col("Datum").str.replace(r"(\d+)/(\d+)/", "$2/$1/"))
    data = DataConfig.model_validate(
        {"transactions": {"columns": {"item_id": "Artikel", "timestamp": "Datum"}, "return_invoice_prefix": "X"}, "timestamp_format": "%d/%m/%y %H:%M"}
    )
    tables, _ = _convert(log, data)
    assert tables.events["event_type"].to_list() == ["purchase"] * 6  # no invoice starts with X
    assert tables.events["timestamp"][2] == "2010-12-13T09:00:00"
    constant = DataConfig.model_validate({"expressions": {"events": {"event_type": "'purchase'"}}})
    assert set(_convert(LOG, constant)[0].events["event_type"]) == {"purchase"}


def test_month_first_dates_are_told_apart_from_day_first_by_the_data() -> None:
    assert detect_timestamp_format(pl.Series(["12/1/10 8:26", "12/13/10 9:00"])) == "%m/%d/%y %H:%M"
    assert detect_timestamp_format(pl.Series(["13/12/2010 09:00", "1/12/2010 08:26"])) == "%d/%m/%Y %H:%M"


def test_a_log_without_an_item_column_names_the_missing_role() -> None:
    with pytest.raises(InputDataError, match="no column for the item_id"):
        convert_transactions(LOG.drop("StockCode"), DataConfig(), "log.csv")


def test_latin1_file_reads_with_the_encoding_option_and_fails_clearly_without(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_bytes('InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID\n1,A1,CAFÉ MUG,1,12/1/10 8:26,"2,50",1\n'.encode("latin-1"))
    with pytest.raises(InputDataError, match="data.encoding"):
        read_raw(path)
    data = DataConfig(encoding="latin-1", decimal_separator=",", transactions=TransactionConfig())
    tables, _ = _convert(read_raw(path, encoding=data.encoding), data)
    assert tables.items.row(0, named=True)["title"] == "CAFÉ MUG"
    assert tables.items["price"].item() == 2.5


def test_convert_command_writes_items_events_and_what_it_decided(tmp_path: Path) -> None:
    LOG.write_csv(tmp_path / "log.csv")
    result = CliRunner().invoke(app, ["convert", "--transactions", str(tmp_path / "log.csv"), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert pl.read_parquet(tmp_path / "out" / "events.parquet").height == 6
    summary = json.loads((tmp_path / "out" / "conversion.json").read_text())
    assert summary["columns"]["user_id"] == "CustomerID" and summary["timestamp_format"] == "%m/%d/%y %H:%M"


def test_another_export_with_other_column_names_needs_no_configuration() -> None:
    # The later "Online Retail II" spelling: Invoice, Price, "Customer ID" as floats, four-digit years.
    log = LOG.rename({"InvoiceNo": "Invoice", "UnitPrice": "Price", "CustomerID": "Customer ID"}).with_columns(
        pl.col("InvoiceDate").str.replace(r"/(\d\d) ", "/20$1 ")
    )
    tables, messages = _convert(log)
    assert tables.summary["columns"] == {
        "invoice": "Invoice",
        "item_id": "StockCode",
        "title": "Description",
        "quantity": "Quantity",
        "price": "Price",
        "timestamp": "InvoiceDate",
        "user_id": "Customer ID",
    }
    assert tables.summary["timestamp_format"] == "%m/%d/%Y %H:%M"
    assert tables.events["user_id"][4] == "13085" and messages
    assert tables.events["event_type"][3] == "return"
