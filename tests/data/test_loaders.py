"""Loaders: every format into the canonical schema, column mapping, and errors that name file, row and column."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from longtail.core.errors import InputDataError
from longtail.data.loaders import INVALID_FIELDS, PART_ROW_STRIDE, load_part, load_table, part_files
from longtail.data.schema import EVENTS, ITEMS, JUDGMENTS, SOURCE_ROW

ITEM_ROWS = [
    {"item_id": "A1", "title": "无线蓝牙耳机 降噪", "category": "电子 > 耳机", "price": "199.0", "created_at": "2024-01-05T10:00:00+08:00"},
    {"item_id": "B2", "title": "Trail running shoe", "category": "Sport > Shoes", "price": "79.5", "created_at": "2024-01-05"},
]


def _write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    pl.DataFrame(rows).write_csv(path)
    return path


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"])
def test_every_format_loads_to_the_same_canonical_table(tmp_path: Path, suffix: str) -> None:
    frame = pl.DataFrame(ITEM_ROWS)
    path = tmp_path / f"items{suffix}"
    {".csv": frame.write_csv, ".parquet": frame.write_parquet, ".jsonl": frame.write_ndjson}[suffix](path)
    table = load_table(path, ITEMS)
    assert table.columns[0] == SOURCE_ROW
    assert table["title"].to_list() == ["无线蓝牙耳机 降噪", "Trail running shoe"]
    assert table["price"].to_list() == [199.0, 79.5]
    assert table.schema["created_at"] == pl.Datetime("us", "UTC")
    assert table["created_at"][0].hour == 2  # 10:00 at +08:00 is 02:00 UTC
    assert table[INVALID_FIELDS].to_list() == ["", ""]


def test_column_mapping_renames_users_own_columns(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "e.csv", [{"customer": "u1", "sku": "A1", "action": "view", "ts": "1700000000"}])
    table = load_table(path, EVENTS, {"customer": "user_id", "sku": "item_id", "action": "event_type", "ts": "timestamp"})
    assert table["user_id"].to_list() == ["u1"]
    assert table["timestamp"][0].year == 2023


def test_extra_item_columns_are_kept_inside_attributes(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "i.csv", [{"item_id": "A1", "title": "Mug", "colour": "red", "size": "L"}])
    table = load_table(path, ITEMS)
    assert json.loads(table["attributes"][0]) == {"colour": "red", "size": "L"}


def test_unparseable_cells_are_marked_not_dropped(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "i.csv", [{"item_id": "A1", "title": "Mug", "price": "abc"}, {"item_id": "A2", "title": "Cup", "price": ""}])
    table = load_table(path, ITEMS)
    assert table.height == 2
    assert table[INVALID_FIELDS].to_list() == ["price", ""]


def test_judgments_load_with_numeric_grades(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "j.csv", [{"query_id": "q1", "query": "耳机", "item_id": "A1", "grade": "3"}])
    assert load_table(path, JUDGMENTS)["grade"].to_list() == [3.0]


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(InputDataError, match="absent.csv: file not found"):
        load_table(tmp_path / "absent.csv", ITEMS)


def test_missing_required_column_names_file_and_column(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "i.csv", [{"item_id": "A1", "name": "Mug"}])
    with pytest.raises(InputDataError) as caught:
        load_table(path, ITEMS)
    assert caught.value.column == "title"
    assert "i.csv" in str(caught.value) and "missing required column 'title'" in str(caught.value)


def test_malformed_json_line_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    path.write_text('{"user_id": "u1", "item_id": "A1", "event_type": "view", "timestamp": "2024-01-01"}\n{"user_id": "u2", \n', encoding="utf-8")
    with pytest.raises(InputDataError) as caught:
        load_table(path, EVENTS)
    assert caught.value.row == 2
    assert "e.jsonl, row 2: malformed JSON" in str(caught.value)


def test_non_utf8_file_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "i.csv"
    path.write_bytes(b"item_id,title\nA1,Mug\nA2," + "Café".encode("latin-1") + b"\n")
    with pytest.raises(InputDataError) as caught:
        load_table(path, ITEMS)
    assert caught.value.row == 3
    assert "not UTF-8" in str(caught.value)


@pytest.mark.parametrize("content", [b"", b"   \n", b"item_id,title\n"])
def test_empty_file_is_an_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "i.csv"
    path.write_bytes(content)
    with pytest.raises(InputDataError, match="i.csv: the file (is empty|has a header but no data rows)"):
        load_table(path, ITEMS)


def test_ragged_csv_row_is_located(tmp_path: Path) -> None:
    path = tmp_path / "i.csv"
    path.write_text("item_id,title\nA1,Mug\nA2,Cup,extra,fields\n", encoding="utf-8")
    with pytest.raises(InputDataError) as caught:
        load_table(path, ITEMS)
    assert caught.value.row == 3


def test_bom_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "i.csv"
    path.write_bytes(b"\xef\xbb\xbfitem_id,title\nA1,Mug\n")
    assert load_table(path, ITEMS)["item_id"].to_list() == ["A1"]


def test_a_folder_of_parts_numbers_rows_by_part_and_row(tmp_path: Path) -> None:
    parts = tmp_path / "events"
    parts.mkdir()
    (parts / "part-0.csv").write_text("user_id,item_id,event_type,timestamp\nu1,i1,view,2024-01-01T00:00:00\nu2,i2,view,2024-01-02T00:00:00\n")
    (parts / "part-1.jsonl").write_text('{"user_id": "u3", "item_id": "i3", "event_type": "view", "timestamp": "soon"}\n')
    (parts / "_SUCCESS").write_text("")
    table = load_table(parts, EVENTS)
    assert table[SOURCE_ROW].to_list() == [1, 2, PART_ROW_STRIDE + 1]
    assert table["user_id"].to_list() == ["u1", "u2", "u3"]
    assert table[INVALID_FIELDS].to_list() == ["", "", "timestamp"]
    assert part_files(parts) == [parts / "part-0.csv", parts / "part-1.jsonl"]
    assert load_part(parts / "part-0.csv", 12, EVENTS)[SOURCE_ROW].to_list() == [12 * PART_ROW_STRIDE + 1, 12 * PART_ROW_STRIDE + 2]


def test_a_folder_without_data_files_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "notes.md").write_text("nothing here")
    with pytest.raises(InputDataError, match="no data files"):
        load_table(tmp_path, EVENTS)
