"""Adapters that turn the public datasets under shared/datasets into canonical items and events."""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from longtail.core.errors import InputDataError
from longtail.data.expressions import describe
from longtail.data.schema import EVENTS, ITEMS, TableSpec, empty_table

S3REC_SETS = {"beauty": "Beauty", "sports": "Sports_and_Outdoors", "toys": "Toys_and_Games"}
GRAM_SETS = {"beauty": "Beauty", "toys": "Toys"}
# Real product text keyed by the S3-Rec integer ids (see the datasets README); Sports has none.
S3REC_TEXT_FILES = {"beauty": "Beauty_items.csv", "toys": "Toys_items.csv"}
# The public sequence files keep order but drop time; events get one synthetic day per step, from this date.
SYNTHETIC_EPOCH = datetime(2014, 1, 1, tzinfo=UTC)


@dataclass
class Dataset:
    """A named bundle of canonical tables plus a note on where they came from."""

    name: str
    items: pl.DataFrame
    events: pl.DataFrame
    provenance: str
    extra: dict[str, pl.DataFrame] = field(default_factory=dict)


def _conform(frame: pl.DataFrame, spec: TableSpec) -> pl.DataFrame:
    """Add missing canonical columns as nulls and order them canonically."""
    return frame.select(
        [(pl.col(name).cast(dtype) if name in frame.columns else pl.lit(None, dtype=dtype)).alias(name) for name, dtype in spec.columns.items()]
    )


def sequences_to_events(sequences: dict[str, list[str]], event_type: str = "review") -> pl.DataFrame:
    """Turn ordered per-user item lists into events with synthetic, order-preserving daily timestamps."""
    users: list[str] = []
    items: list[str] = []
    positions: list[int] = []
    for user, sequence in sequences.items():
        users.extend([user] * len(sequence))
        items.extend(sequence)
        positions.extend(range(len(sequence)))
    frame = pl.DataFrame({"user_id": users, "item_id": items, "position": positions}, schema_overrides={"position": pl.Int64})
    timestamps = pl.lit(SYNTHETIC_EPOCH).dt.cast_time_unit("us") + pl.duration(days=pl.col("position"))
    return _conform(frame.with_columns(timestamps.alias("timestamp"), pl.lit(event_type).alias("event_type")), EVENTS)


def _read_sequence_file(path: Path) -> dict[str, list[str]]:
    if not path.is_file():
        raise InputDataError(path, "dataset file not found")
    sequences: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) >= 2:
            sequences[parts[0]] = parts[1:]
    return sequences


def load_s3rec(root: str | Path, name: str) -> Dataset:
    """Amazon Beauty/Sports/Toys 5-core from S3-Rec: integer ids, attribute ids rendered as item text."""
    stem = S3REC_SETS[name.lower()]
    root = Path(root)
    sequences = _read_sequence_file(root / f"{stem}.txt")
    attributes_path = root / f"{stem}_item2attributes.json"
    if not attributes_path.is_file():
        raise InputDataError(attributes_path, "dataset file not found")
    attributes: dict[str, list[int]] = json.loads(attributes_path.read_text(encoding="utf-8"))
    item_ids = sorted({item for sequence in sequences.values() for item in sequence}, key=int)
    items = pl.DataFrame(
        {
            "item_id": item_ids,
            "title": [" ".join(f"attr{a}" for a in attributes.get(i, [])) or f"item {i}" for i in item_ids],
            "attributes": [json.dumps({"attribute_ids": attributes.get(i, [])}) for i in item_ids],
            "language": ["en"] * len(item_ids),
        }
    )
    text_file = S3REC_TEXT_FILES.get(name.lower())
    if text_file is None or not (root / text_file).is_file():
        provenance = f"S3-Rec Amazon {stem} 5-core (research use); item text = attribute ids rendered as tokens; synthetic daily timestamps"
        return Dataset(name, _conform(items, ITEMS), sequences_to_events(sequences), provenance)
    items = _with_product_text(items, root / text_file)
    provenance = f"S3-Rec Amazon {stem} 5-core (research use); item text = real titles and categories from {text_file}; synthetic daily timestamps"
    return Dataset(name, _conform(items, ITEMS), sequences_to_events(sequences), provenance)


def _with_product_text(items: pl.DataFrame, path: Path) -> pl.DataFrame:
    """Items with the title and category path of `path` (item_id,asin,title,...,categories); an empty title keeps the attribute tokens.

    The file's brand column is left out: it names S3-Rec's brand attribute id, which the attributes already
    carry (and the fusion ranker's side information would count twice), and most titles start with the brand.
    """
    text = pl.read_csv(path, infer_schema=False).select(
        "item_id",
        pl.col("title").alias("product_title"),
        # the first category path; several are separated by " | "
        pl.col("categories").str.split(" | ").list.first().alias("category"),
    )
    joined = items.join(text, on="item_id", how="left")
    titled = pl.when(pl.col("product_title").str.len_chars() > 0).then(pl.col("product_title")).otherwise(pl.col("title"))
    return joined.with_columns(titled.alias("title")).drop("product_title")


def _keywords_to_text(pieces: str) -> str:
    return "".join(piece.replace("▁", " ") for piece in pieces.split("|") if piece).strip()


def load_gram(root: str | Path, name: str) -> Dataset:
    """Amazon Beauty/Toys with real ASINs and GRAM's text-derived keywords as item text."""
    folder = Path(root) / GRAM_SETS[name.lower()]
    sequences = _read_sequence_file(folder / "user_sequence.txt")
    keywords_path = folder / "item_keywords.txt"
    if not keywords_path.is_file():
        raise InputDataError(keywords_path, "dataset file not found")
    ids, titles = [], []
    for line in keywords_path.read_text(encoding="utf-8").splitlines():
        item_id, _, pieces = line.partition(" ")
        ids.append(item_id)
        titles.append(_keywords_to_text(pieces))
    items = pl.DataFrame({"item_id": ids, "title": titles, "language": ["en"] * len(ids)})
    provenance = f"GRAM Amazon {folder.name} 5-core (research use); item text = distilled keywords; synthetic daily timestamps"
    return Dataset(name, _conform(items, ITEMS), sequences_to_events(sequences), provenance)


def _read_atomic(path: Path) -> pl.DataFrame:
    if not path.is_file():
        raise InputDataError(path, "dataset file not found")
    frame = pl.read_csv(path, separator="\t", infer_schema=False, quote_char=None)
    return frame.rename({c: c.split(":")[0] for c in frame.columns})


def _split_scientific_text(text: str) -> tuple[str, str | None, str | None]:
    """'title. categories. brand. ' -> (title, categories, brand); titles may contain '. ' themselves."""
    parts = [p.strip() for p in text.strip().rstrip(".").split(". ")]
    if len(parts) >= 3:
        return ". ".join(parts[:-2]), parts[-2] or None, parts[-1] or None
    return text.strip(), None, None


def load_scientific(root: str | Path) -> Dataset:
    """Amazon 2018 Industrial & Scientific (UniSRec) with real title/category/brand text."""
    root = Path(root)
    texts = _read_atomic(root / "Scientific.text")
    index_to_item = dict(line.split("\t")[::-1] for line in (root / "Scientific.item2index").read_text(encoding="utf-8").splitlines() if line)
    index_to_user = dict(line.split("\t")[::-1] for line in (root / "Scientific.user2index").read_text(encoding="utf-8").splitlines() if line)
    split_text = [_split_scientific_text(t) for t in texts["text"].to_list()]
    items = pl.DataFrame(
        {
            "item_id": texts["item_id"].to_list(),
            "title": [s[0] for s in split_text],
            "category": [s[1] for s in split_text],
            "brand": [s[2] for s in split_text],
            "language": ["en"] * texts.height,
        }
    )
    sequences: dict[str, list[str]] = {}
    for split in ("train", "valid", "test"):
        frame = _read_atomic(root / f"Scientific.{split}.inter")
        for user, history, target in frame.iter_rows():
            full = history.split() + [target]
            if len(full) > len(sequences.get(user, [])):
                sequences[user] = full
    named = {index_to_user[u]: [index_to_item[i] for i in seq] for u, seq in sequences.items()}
    provenance = "UniSRec Amazon 2018 Industrial & Scientific 5-core (research use); synthetic daily timestamps"
    return Dataset("scientific", _conform(items, ITEMS), sequences_to_events(named), provenance)


def load_zh_reviews(root: str | Path) -> Dataset:
    """Chinese online-shopping reviews (10 categories): each review becomes a text document in `items`."""
    path = Path(root) / "online_shopping_10_cats.zip"
    if not path.is_file():
        raise InputDataError(path, "dataset file not found")
    with zipfile.ZipFile(path) as archive:
        member = next(n for n in archive.namelist() if n.endswith(".csv"))
        payload = archive.read(member).decode("utf-8-sig")
    raw = pl.read_csv(io.StringIO(payload), infer_schema=False)
    items = raw.with_row_index("row", offset=1).select(
        describe("zh", pl.col("row")).alias("item_id"),
        pl.col("review").alias("title"),
        pl.col("cat").alias("category"),
        describe('{"label": ', pl.col("label"), "}").alias("attributes"),
        pl.lit("zh").alias("language"),
    )
    provenance = "ChineseNlpCorpus online_shopping_10_cats (no licence stated; research use); reviews as text documents"
    return Dataset("zh-reviews", _conform(items, ITEMS), empty_table(EVENTS), provenance)


def load_dataset(name: str, datasets_root: str | Path) -> Dataset:
    """Load one of the bundled public datasets by short name (beauty, sports, toys, scientific, zh-reviews, gram-beauty, gram-toys)."""
    root = Path(datasets_root)
    key = name.lower()
    if key in S3REC_SETS:
        return load_s3rec(root / "amazon-s3rec", key)
    if key.startswith("gram-") and key[5:] in GRAM_SETS:
        return load_gram(root / "amazon-gram", key[5:])
    if key == "scientific":
        return load_scientific(root / "amazon-scientific")
    if key == "zh-reviews":
        return load_zh_reviews(root / "zh-online-shopping-reviews")
    known = [*S3REC_SETS, *(f"gram-{k}" for k in GRAM_SETS), "scientific", "zh-reviews"]
    raise InputDataError(root, f"unknown dataset '{name}'; known: {', '.join(known)}")
