"""Read CSV, Parquet and JSON Lines files into canonical tables, with errors that name file, row and column."""

from __future__ import annotations

import codecs
import csv
import io
import json
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from longtail.core.errors import DataWarning, InputDataError
from longtail.data.expressions import apply_expressions, describe
from longtail.data.schema import SOURCE_ROW, UTC_DATETIME, TableSpec

if TYPE_CHECKING:
    from longtail.core.config import DataConfig

INVALID_FIELDS = "_invalid_fields"
INVALID_VALUES = "_invalid_values"
CSV_SUFFIXES = {".csv", ".tsv", ".txt"}
JSONL_SUFFIXES = {".jsonl", ".ndjson", ".json"}
PARQUET_SUFFIXES = {".parquet", ".pq"}
# A folder of part files numbers rows file by file: row r of the i-th part (sorted by name) is i * stride + r,
# so a quarantine reference names its file and row, and a single file keeps its plain row numbers.
PART_ROW_STRIDE = 1_000_000_000
_DATETIME_FORMATS = ("%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%d %H:%M:%S%.f%z", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d")


def _as_utf8(path: Path, payload: bytes, encoding: str) -> bytes:
    """The payload as UTF-8, decoded from the configured encoding; a byte that does not decode names its line."""
    try:
        codec = codecs.lookup(encoding).name
    except LookupError:
        raise InputDataError(path, f"unknown text encoding {encoding!r} (data.encoding); use e.g. utf-8, latin-1 or cp1252") from None
    try:
        text = payload.decode(codec)
    except UnicodeDecodeError as error:
        line = payload[: error.start].count(b"\n") + 1
        hint = "re-save the file as UTF-8, or set data.encoding (e.g. latin-1) to the encoding it was written in"
        label = "UTF-8" if codec == "utf-8" else codec
        raise InputDataError(path, f"not {label} text (byte 0x{payload[error.start]:02x} at offset {error.start}); {hint}", row=line) from None
    return payload if codec == "utf-8" else text.encode("utf-8")


def _strip_bom(payload: bytes) -> bytes:
    return payload[3:] if payload.startswith(b"\xef\xbb\xbf") else payload


def _locate_csv_problem(path: Path, text: str, separator: str) -> InputDataError:
    reader = csv.reader(io.StringIO(text), delimiter=separator)
    header = next(reader, [])
    for line_number, fields in enumerate(reader, start=2):
        if fields and len(fields) != len(header):
            return InputDataError(path, f"expected {len(header)} fields as in the header, found {len(fields)}", row=line_number)
    return InputDataError(path, "not a readable CSV file")


def _read_csv(path: Path, payload: bytes, separator: str) -> pl.DataFrame:
    if path.suffix == ".tsv":
        separator = "\t"
    try:
        return pl.read_csv(io.BytesIO(payload), separator=separator, infer_schema=False, quote_char='"')
    except (pl.exceptions.ComputeError, pl.exceptions.NoDataError, pl.exceptions.ShapeError):
        raise _locate_csv_problem(path, payload.decode("utf-8"), separator) from None


def _read_jsonl(path: Path, payload: bytes) -> pl.DataFrame:
    records = []
    for line_number, line in enumerate(payload.decode("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise InputDataError(path, f"malformed JSON ({error.msg} at character {error.colno})", row=line_number) from None
        if not isinstance(record, dict):
            raise InputDataError(path, "each line must be a JSON object", row=line_number)
        records.append({key: _jsonl_scalar(value) for key, value in record.items()})
    if not records:
        raise InputDataError(path, "the file has no records")
    return pl.DataFrame(records, schema_overrides=None, infer_schema_length=None, strict=False)


def _jsonl_scalar(value: object) -> object:
    """Nested values (e.g. an attributes object) are kept as JSON text; scalars as they are."""
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return value if value is None else str(value)


def read_raw(path: str | Path, separator: str = ",", encoding: str = "utf-8") -> pl.DataFrame:
    """Read a file as it is, choosing the format by suffix; fail with file/row detail."""
    path = Path(path)
    if not path.exists():
        raise InputDataError(path, "file not found")
    if path.is_dir():
        raise InputDataError(path, "is a directory, expected a file")
    suffix = path.suffix.lower()
    if suffix in PARQUET_SUFFIXES:
        if path.stat().st_size == 0:
            raise InputDataError(path, "the file is empty")
        try:
            frame = pl.read_parquet(path)
        except Exception as error:  # polars raises several unrelated types for corrupt files
            raise InputDataError(path, f"not a readable Parquet file: {error}") from None
    elif suffix in CSV_SUFFIXES | JSONL_SUFFIXES:
        payload = path.read_bytes()
        if not payload.strip():
            raise InputDataError(path, "the file is empty")
        payload = _strip_bom(_as_utf8(path, payload, encoding))
        frame = _read_jsonl(path, payload) if suffix in JSONL_SUFFIXES else _read_csv(path, payload, separator)
    else:
        raise InputDataError(path, f"unknown file type '{suffix}'; use .csv, .tsv, .parquet or .jsonl")
    if frame.height == 0:
        raise InputDataError(path, "the file has a header but no data rows")
    return frame


def _parse_datetime(column: str, timestamp_format: str | None = None) -> pl.Expr:
    """Parse the configured format, ISO-8601 text (any offset, or naive = UTC) or epoch seconds/milliseconds into UTC."""
    text = pl.col(column).cast(pl.String).str.strip_chars()
    digits = text.str.contains(r"^-?\d+(\.\d+)?$")
    number = text.cast(pl.Float64, strict=False)
    epoch_us = pl.when(number.abs() > 1e11).then(number * 1_000).otherwise(number * 1_000_000).cast(pl.Int64, strict=False)
    from_epoch = pl.when(digits).then(epoch_us.cast(pl.Datetime("us")).dt.replace_time_zone("UTC"))
    attempts = []
    for fmt in ((timestamp_format,) if timestamp_format else ()) + _DATETIME_FORMATS:
        parsed = text.str.replace(r"Z$", "+00:00").str.to_datetime(fmt, strict=False, time_unit="us")
        if "%z" in fmt:
            attempts.append(parsed.dt.convert_time_zone("UTC"))
        else:
            attempts.append(parsed.dt.replace_time_zone("UTC"))
    return pl.coalesce([from_epoch, *attempts])


def _cast_column(frame: pl.DataFrame, column: str, dtype: pl.DataType, timestamp_format: str | None = None, decimal_separator: str = ".") -> pl.Expr:
    source = frame.schema[column]
    if dtype == UTC_DATETIME:
        if isinstance(source, pl.Datetime):
            expr = pl.col(column).dt.replace_time_zone("UTC") if source.time_zone is None else pl.col(column).dt.convert_time_zone("UTC")
            return expr.dt.cast_time_unit("us")
        if isinstance(source, pl.Date):
            return pl.col(column).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
        return _parse_datetime(column, timestamp_format)
    if dtype == pl.String() and source != pl.String():
        return pl.col(column).cast(pl.String)
    if source == pl.String() and dtype.is_numeric():
        text = pl.col(column).str.strip_chars()
        if decimal_separator == ",":
            text = text.str.replace_all(".", "", literal=True).str.replace(",", ".", literal=True)
        return text.cast(dtype, strict=False)
    return pl.col(column).cast(dtype, strict=False)


def _fold_extra_columns(frame: pl.DataFrame, spec: TableSpec) -> pl.DataFrame:
    """Columns outside the items schema are kept inside `attributes` as JSON rather than lost."""
    extra = [c for c in frame.columns if c not in spec.columns and c != SOURCE_ROW]
    if not extra or spec.free_attributes or "attributes" not in spec.columns:
        return frame
    folded = pl.struct([pl.col(c).cast(pl.String) for c in extra]).struct.json_encode()
    merged = pl.when(pl.col("attributes").is_null()).then(folded).otherwise(pl.col("attributes")) if "attributes" in frame.columns else folded
    return frame.with_columns(merged.alias("attributes")).drop(extra)


_INTEGRAL_TEXT = r"^\s*-?\d+\.0+\s*$"


def normalise_float_ids(frame: pl.DataFrame, path: str | Path) -> pl.DataFrame:
    """Id columns (`*_id`) stored as floats (`13085.0`) become integer text (`13085`), with a DataWarning naming the column."""
    for column in [c for c in frame.columns if c.endswith("_id")]:
        dtype = frame.schema[column]
        values = frame[column].drop_nulls()
        if values.len() == 0:
            continue
        if dtype.is_float():
            finite = values.filter(values.is_finite())
            if finite.len() != values.len() or (finite != finite.round(0)).any():
                continue
            frame = frame.with_columns(pl.col(column).cast(pl.Int64).cast(pl.String))
        elif dtype == pl.String() and values.str.contains(_INTEGRAL_TEXT).all():
            frame = frame.with_columns(pl.col(column).str.strip_chars().str.replace(r"\.0+$", ""))
        else:
            continue
        warnings.warn(
            DataWarning(f"{path}: column '{column}' holds whole numbers written as decimals (e.g. {values[0]!r}); read as ids without '.0'"),
            stacklevel=2,
        )
    return frame


def to_canonical(frame: pl.DataFrame, spec: TableSpec, path: str | Path, mapping: dict[str, str] | None = None, data: DataConfig | None = None) -> pl.DataFrame:
    """Compute configured columns, rename, check required columns, normalise float ids, cast to canonical types.

    Unparseable cells become null and are named in `_invalid_fields` (`;`-joined column names; flat text
    so batches cross process and engine boundaries unchanged) with their raw text in `_invalid_values`.
    """
    mapping = mapping or {}
    unknown = [source for source in mapping if source not in frame.columns]
    if unknown:
        raise InputDataError(path, f"column mapping names columns that are not in the file: {unknown} (found: {frame.columns})")
    if data is not None:
        frame = apply_expressions(frame, getattr(data.expressions, spec.name, {}), path)
    frame = normalise_float_ids(frame.rename(mapping), path)
    for column in spec.required:
        if column not in frame.columns:
            raise InputDataError(path, f"missing required column '{column}' for the {spec.name} table (found: {frame.columns})", column=column)
    if SOURCE_ROW not in frame.columns:
        frame = frame.with_row_index(SOURCE_ROW, offset=1).with_columns(pl.col(SOURCE_ROW).cast(pl.Int64))
    frame = _fold_extra_columns(frame, spec)
    casts = []
    invalid_flags = []
    invalid_texts = []
    for column, dtype in spec.columns.items():
        if column not in frame.columns:
            casts.append(pl.lit(None, dtype=dtype).alias(column))
            continue
        cast = _cast_column(frame, column, dtype, data.timestamp_format if data else None, data.decimal_separator if data else ".")
        casts.append(cast.alias(column))
        if frame.schema[column] != dtype:
            raw_text = pl.col(column).cast(pl.String)
            unparseable = cast.is_null() & (raw_text.str.strip_chars().fill_null("") != "")
            invalid_flags.append(pl.when(unparseable).then(pl.lit(column)))
            invalid_texts.append(pl.when(unparseable).then(describe(pl.lit(column), "=", raw_text)))
    if invalid_flags:
        invalid = pl.concat_list(invalid_flags).list.drop_nulls().list.join(";")
        invalid_text = pl.concat_list(invalid_texts).list.drop_nulls().list.join("; ")
    else:
        invalid = pl.lit("")
        invalid_text = pl.lit("")
    extras = [c for c in frame.columns if c not in spec.columns and c != SOURCE_ROW] if spec.free_attributes else []
    return frame.select([pl.col(SOURCE_ROW), *casts, *extras, invalid.alias(INVALID_FIELDS), invalid_text.alias(INVALID_VALUES)])


def part_files(path: str | Path) -> list[Path]:
    """The input's files: the file itself, or a folder's data files (sorted by name; hidden and marker files skipped)."""
    path = Path(path)
    if not path.is_dir():
        return [path]
    suffixes = CSV_SUFFIXES | JSONL_SUFFIXES | PARQUET_SUFFIXES
    parts = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in suffixes and not p.name.startswith((".", "_")))
    if not parts:
        raise InputDataError(path, f"the folder holds no data files ({', '.join(sorted(suffixes))})")
    return parts


_ROW_SAMPLE_BYTES = 1 << 20


def estimated_rows(path: str | Path) -> int:
    """Rows of a file or folder of parts without loading it: exact from Parquet footers, else from the line length of each text file's first MiB."""
    total = 0
    for part in part_files(path):
        if part.suffix.lower() in PARQUET_SUFFIXES:
            total += int(pl.scan_parquet(part).select(pl.len()).collect().item())
            continue
        with part.open("rb") as handle:
            sample = handle.read(_ROW_SAMPLE_BYTES)
        total += round(sample.count(b"\n") * part.stat().st_size / max(len(sample), 1))
    return total


def load_part(
    path: str | Path, index: int, spec: TableSpec, mapping: dict[str, str] | None = None, separator: str = ",", data: DataConfig | None = None
) -> pl.DataFrame:
    """One part file as a canonical table whose `source_row` is `index * PART_ROW_STRIDE + row`."""
    raw = read_raw(path, separator, data.encoding if data else "utf-8")
    if raw.height >= PART_ROW_STRIDE:
        raise InputDataError(path, f"{raw.height:,} rows in one part file; split it into parts of under {PART_ROW_STRIDE:,} rows")
    # polars numbers rows as UInt32, so the part's offset is added in Int64.
    numbered = raw.with_row_index(SOURCE_ROW, offset=1).with_columns(pl.col(SOURCE_ROW).cast(pl.Int64) + index * PART_ROW_STRIDE)
    return to_canonical(numbered, spec, path, mapping, data)


def load_table(path: str | Path, spec: TableSpec, mapping: dict[str, str] | None = None, separator: str = ",", data: DataConfig | None = None) -> pl.DataFrame:
    """Read a file (or a folder of part files) and return its canonical table with `source_row` and `_invalid_fields` columns."""
    parts = part_files(path)
    if len(parts) == 1 and parts[0] == Path(path):
        return to_canonical(read_raw(path, separator, data.encoding if data else "utf-8"), spec, path, mapping, data)
    return pl.concat([load_part(part, index, spec, mapping, separator, data) for index, part in enumerate(parts)], how="diagonal_relaxed")


def _expected_format(dtype: pl.DataType) -> str:
    if dtype == UTC_DATETIME:
        return "an ISO-8601 time (2024-01-05T10:30:00), epoch seconds, or the strftime format set in data.timestamp_format"
    if dtype.is_numeric():
        return "a number such as 12.5 (set data.decimal_separator: ',' for 12,5)"
    return f"a {dtype} value"


def check_parse_rates(table: pl.DataFrame, spec: TableSpec, path: str | Path, max_share: float) -> None:
    """Stop with an InputDataError when a column's non-empty cells fail to parse above `max_share`: a format problem, not dirt."""
    if INVALID_FIELDS not in table.columns or table.height == 0:
        return
    invalid = pl.col(INVALID_FIELDS).str.split(";")
    for column, dtype in spec.columns.items():
        failed = table.filter(invalid.list.contains(column))
        if failed.height == 0:
            continue
        filled = table[column].is_not_null().sum() + failed.height
        if failed.height / filled > max_share:
            example = failed[INVALID_VALUES][0].split("; ")[0].removeprefix(f"{column}=")
            raise InputDataError(
                path,
                f"{failed.height:,} of {filled:,} values ({failed.height / filled:.0%}) could not be read; expected "
                f"{_expected_format(dtype)}, found e.g. {example!r} (threshold: quality.max_unparseable_share = {max_share:g})",
                column=column,
            )
