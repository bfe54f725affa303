"""Audit rules for shop transaction lines: returns, quantities, prices, fee-like codes, junk titles, case variants of item codes.

They read the line attributes `longtail convert --transactions` keeps on each event (quantity, price, invoice,
title); events without them get none of these findings. Nothing here is a list of known codes: every rule
learns what is usual from the shop's own data.
"""

from __future__ import annotations

import polars as pl

from longtail.core.config import QualityConfig
from longtail.data.expressions import describe
from longtail.data.schema import SOURCE_ROW
from longtail.quality.checks import FLAG, QUARANTINE, blank, findings_where, no_findings

LINE_FIELDS = {"quantity": pl.Float64, "price": pl.Float64, "invoice": pl.String, "title": pl.String}
# A title casing (UPPER / lower / Mixed) used by fewer titles than this share is not the shop's own style.
MINORITY_STYLE_SHARE = 0.05
# Basket share above this quantile of all codes counts as "in unusually many baskets" (postage, fees).
BASKET_SHARE_QUANTILE = 0.99
MIN_PRICED_LINES = 3


def has_lines(events: pl.DataFrame) -> bool:
    """Whether events carry transaction-line attributes (a quantity or a price)."""
    if "attributes" not in events.columns:
        return False
    sample = events["attributes"].drop_nulls().head(1000)
    return bool(sample.len()) and bool(sample.str.contains('"(quantity|price)"').any())


def line_table(events: pl.DataFrame) -> pl.DataFrame:
    """Per event: source_row, user, item, type, time and the line's quantity, price, invoice and title."""
    fields = [pl.col("attributes").str.json_path_match(f"$.{name}").cast(dtype, strict=False).alias(name) for name, dtype in LINE_FIELDS.items()]
    return events.select(SOURCE_ROW, "user_id", "item_id", "event_type", "timestamp", *fields)


def title_style(column: str) -> pl.Expr:
    """upper, lower or mixed: how a title is cased (titles without letters count as none)."""
    text = pl.col(column)
    has_letters = text.str.contains(r"[^\W\d_]")
    return (
        pl.when(~has_letters | text.is_null())
        .then(pl.lit("none"))
        .when(text == text.str.to_uppercase())
        .then(pl.lit("upper"))
        .when(text == text.str.to_lowercase())
        .then(pl.lit("lower"))
        .otherwise(pl.lit("mixed"))
    )


def minority_styles(titles: pl.Series) -> list[str]:
    """Casing styles held by fewer than MINORITY_STYLE_SHARE of the titles (empty when no style dominates)."""
    styles = pl.DataFrame({"title": titles}).drop_nulls().select(title_style("title").alias("style"))
    if styles.height == 0:
        return []
    shares = styles.group_by("style").len().with_columns(pl.col("len") / styles.height)
    return shares.filter(pl.col("len") < MINORITY_STYLE_SHARE, pl.col("style") != "none")["style"].to_list()


def junk_title(column: str, minority: list[str], unpriced: pl.Expr) -> pl.Expr:
    """Placeholder titles: fewer than three letters, a question mark, or an unusual casing on a line or item without a price."""
    letters = pl.col(column).str.count_matches(r"[^\W\d_]")
    unusual = title_style(column).is_in(minority) & unpriced
    return pl.col(column).is_not_null() & ((letters < 3) | pl.col(column).str.contains("?", literal=True) | unusual)


def code_shape(column: str) -> pl.Expr:
    """An item code's shape: digits as 9, letters as A (85123A -> 99999A), so unusual code formats stand out."""
    return pl.col(column).str.replace_all(r"\d", "9").str.replace_all(r"[^\W\d_]", "A")


def code_profile(items: pl.DataFrame, lines: pl.DataFrame, config: QualityConfig) -> pl.DataFrame:
    """Per item code the signals of a fee-like line: unusual code shape, unstable price, generic title, unusual casing, many baskets."""
    ids = items.filter(~blank("item_id")).unique("item_id", maintain_order=True).select(SOURCE_ROW, "item_id", "title")
    shapes = ids.select("item_id", code_shape("item_id").alias("shape"))
    shape_share = shapes.group_by("shape").agg((pl.len() / shapes.height).alias("shape_share"))
    positive = pl.col("price").filter(pl.col("price") > 0)
    baskets = max(lines["invoice"].n_unique(), 1)
    per_code = (
        lines.filter(pl.col("item_id").is_not_null())
        .group_by("item_id")
        .agg(
            ((positive - positive.median()).abs().median() / positive.median()).alias("price_dispersion"),
            (pl.col("price") > 0).sum().alias("priced_lines"),
            (pl.col("invoice").n_unique() / baskets).alias("basket_share"),
        )
    )
    many = per_code["basket_share"].quantile(BASKET_SHARE_QUANTILE) if per_code.height else 1.0
    minority = minority_styles(ids["title"])
    profile = ids.join(shapes, on="item_id").join(shape_share, on="shape").join(per_code, on="item_id", how="left")
    return profile.with_columns(
        (pl.col("shape_share") < config.rare_code_shape_share).alias("rare_code"),
        ((pl.col("price_dispersion") > config.fee_price_dispersion) & (pl.col("priced_lines") >= MIN_PRICED_LINES)).fill_null(False).alias("unstable_price"),
        (pl.col("title").str.split(" ").list.len() <= config.generic_title_words).fill_null(False).alias("generic_title"),
        title_style("title").is_in(minority).alias("unusual_casing"),
        (pl.col("basket_share") > many).fill_null(False).alias("many_baskets"),
    )


def non_merchandise_codes(items: pl.DataFrame, lines: pl.DataFrame, config: QualityConfig) -> pl.DataFrame:
    """Codes that behave like fees rather than products: an unusual code shape with one more fee signal, or three fee signals."""
    profile = code_profile(items, lines, config)
    others = ["unstable_price", "generic_title", "unusual_casing", "many_baskets"]
    count = pl.sum_horizontal([pl.col(name).cast(pl.Int32) for name in others])
    fee_like = (pl.col("rare_code") & (count >= 1)) | (count >= 3)
    signals = pl.concat_list([pl.when(pl.col(name)).then(pl.lit(name)) for name in ["rare_code", *others]]).list.drop_nulls().list.join(", ")
    return profile.filter(fee_like).select("item_id", describe("behaves like a fee: ", signals).alias("detail"))


def case_variant_ids(items: pl.DataFrame) -> pl.DataFrame:
    """Item rows (source_row, item_id) whose code equals another's but for letter case (85123A / 85123a)."""
    ids = items.filter(~blank("item_id")).unique("item_id", maintain_order=True).select(SOURCE_ROW, "item_id")
    return ids.filter(pl.col("item_id").str.to_lowercase().is_duplicated())


def case_variant_merges(items: pl.DataFrame, counts: pl.DataFrame) -> pl.DataFrame:
    """Each case variant -> the spelling with the most events; `counts` holds events per item (item_id, events)."""
    ids = case_variant_ids(items)
    ranked = ids.join(counts, on="item_id", how="left").with_columns(pl.col("events").fill_null(0), pl.col("item_id").str.to_lowercase().alias("folded"))
    groups = ranked.filter(pl.col("folded").is_duplicated()).sort(["folded", "events", SOURCE_ROW], descending=[False, True, False])
    canonical = groups.group_by("folded", maintain_order=True).agg(pl.col("item_id").first().alias("merged_into"))
    return groups.join(canonical, on="folded").filter(pl.col("item_id") != pl.col("merged_into")).select("item_id", "merged_into")


def item_findings(items: pl.DataFrame, lines: pl.DataFrame | None, merges: pl.DataFrame, config: QualityConfig) -> pl.DataFrame:
    """Item rows to quarantine as fee-like codes, junk titles or merged case variants, and codes sold under several titles (flag)."""
    parts = [
        findings_where(items.join(merges, on="item_id"), pl.lit(True), "merged_variant", QUARANTINE, describe("merged into item ", pl.col("merged_into"))),
    ]
    if lines is None:
        return pl.concat(parts)
    minority = minority_styles(items["title"])
    first = items.filter(pl.col("item_id").is_first_distinct())
    parts.append(findings_where(first, junk_title("title", minority, pl.col("price").is_null()), "junk_title", QUARANTINE, describe("title ", pl.col("title"))))
    fees = non_merchandise_codes(items, lines, config)
    parts.append(findings_where(first.join(fees, on="item_id"), pl.lit(True), "non_merchandise", QUARANTINE, pl.col("detail")))
    titles = lines.filter(pl.col("title").is_not_null()).group_by("item_id").agg(pl.col("title").n_unique().alias("titles"))
    parts.append(
        findings_where(
            first.join(titles.filter(pl.col("titles") > 1), on="item_id"),
            pl.lit(True),
            "multiple_titles",
            FLAG,
            describe(pl.col("titles"), " titles on its lines"),
        )
    )
    return pl.concat(parts)


def matched_returns(lines: pl.DataFrame) -> pl.DataFrame:
    """Each return line with the latest earlier purchase line of the same user and item (`purchase_row`, null when none)."""
    returns = lines.filter(pl.col("event_type") == "return").select(SOURCE_ROW, "user_id", "item_id", "timestamp")
    purchases = lines.filter(pl.col("event_type") == "purchase", pl.col("user_id").is_not_null()).select(
        pl.col(SOURCE_ROW).alias("purchase_row"), "user_id", "item_id", pl.col("timestamp").alias("bought_at")
    )
    candidates = returns.join(purchases, on=["user_id", "item_id"], how="inner").filter(pl.col("bought_at") <= pl.col("timestamp"))
    best = candidates.sort(["bought_at", "purchase_row"]).group_by(SOURCE_ROW).agg(pl.col("purchase_row").last())
    return returns.join(best, on=SOURCE_ROW, how="left")


def event_findings(lines: pl.DataFrame, fee_codes: pl.Series, items: pl.DataFrame) -> pl.DataFrame:
    """Line rules: returns (matched to purchases where possible), negative quantities, non-positive prices, fee lines, junk line titles."""
    if lines.height == 0:
        return no_findings()
    returns = matched_returns(lines)
    minority = minority_styles(items["title"])
    return pl.concat(
        [
            findings_where(
                returns,
                pl.lit(True),
                "cancellation",
                QUARANTINE,
                pl.when(pl.col("purchase_row").is_not_null())
                .then(describe("matches purchase row ", pl.col("purchase_row").cast(pl.String)))
                .otherwise(pl.lit("no earlier purchase of this item by this user")),
            ),
            findings_where(
                lines,
                (pl.col("event_type") != "return") & (pl.col("quantity") < 0),
                "negative_quantity",
                QUARANTINE,
                describe("quantity ", pl.col("quantity").cast(pl.String)),
            ),
            findings_where(lines, pl.col("price") <= 0, "non_positive_price", QUARANTINE, describe("price ", pl.col("price").cast(pl.String))),
            findings_where(lines, pl.col("item_id").is_in(fee_codes.implode()), "non_merchandise", QUARANTINE, describe("item_id ", pl.col("item_id"))),
            findings_where(
                lines, junk_title("title", minority, (pl.col("price") <= 0).fill_null(True)), "junk_title", FLAG, describe("title ", pl.col("title"))
            ),
        ]
    )


def commerce_report(lines: pl.DataFrame, events: pl.DataFrame, items: pl.DataFrame, item_rules: pl.DataFrame, merges: pl.DataFrame) -> dict[str, object]:
    """Counts over the input lines (each rule counted on its own, before quarantine priorities) for the report's `commerce` section."""
    returns = matched_returns(lines)
    key = [c for c in events.columns if c != SOURCE_ROW and not c.startswith("_")]
    flagged = item_rules.join(items.select(SOURCE_ROW, "item_id"), on=SOURCE_ROW)

    def codes(reason: str) -> pl.Series:
        return flagged.filter(pl.col("reason") == reason)["item_id"].unique()

    fee_lines = lines.filter(pl.col("item_id").is_in(codes("non_merchandise").implode()))
    return {
        "lines": lines.height,
        "guest_lines": lines.filter(blank("user_id")).height,
        "return_lines": returns.height,
        "returns_matched": returns.filter(pl.col("purchase_row").is_not_null()).height,
        "negative_quantity_lines": lines.filter(pl.col("quantity") < 0).height,
        "zero_price_lines": lines.filter(pl.col("price") == 0).height,
        "negative_price_lines": lines.filter(pl.col("price") < 0).height,
        "exact_duplicate_lines": events.filter(pl.struct(key).is_duplicated() & ~pl.struct(key).is_first_distinct()).height,
        "non_merchandise_codes": dict(fee_lines.group_by("item_id").len().sort(["len", "item_id"], descending=[True, False]).iter_rows()),
        "multi_title_codes": codes("multiple_titles").len(),
        "junk_title_codes": codes("junk_title").len(),
        "merged_variants": dict(merges.iter_rows()),
    }
