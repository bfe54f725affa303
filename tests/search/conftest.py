"""A tiny hand-made catalogue shared by the search tests."""

from __future__ import annotations

import polars as pl
import pytest

from longtail.core.config import LongtailConfig


@pytest.fixture(scope="session")
def catalogue() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "item_id": ["beaker", "pipette", "gloves", "caliper", "drill", "goggles", "flask", "tape"],
            "title": [
                "Borosilicate glass beaker 500 ml",
                "Graduated glass pipette 10 ml",
                "Nitrile examination gloves, large",
                "Digital caliper, stainless steel, 150 mm",
                "Cordless power drill 18V",
                "Safety goggles with anti-fog lens",
                "Erlenmeyer flask, borosilicate glass, 250 ml",
                "Measuring tape 5 m",
            ],
            "category": [
                "Lab > Glassware",
                "Lab > Glassware",
                "Lab > Safety",
                "Tools > Measuring",
                "Tools > Power tools",
                "Lab > Safety",
                "Lab > Glassware",
                "Tools > Measuring",
            ],
            "brand": ["Pyrex", "Kimble", "Ansell", "Mitutoyo", "Makita", "3M", "Pyrex", "Stanley"],
            "price": [12.0, 3.5, 9.0, 40.0, 120.0, 15.0, 8.0, 6.0],
        }
    )


@pytest.fixture(scope="session")
def fast_config() -> LongtailConfig:
    return LongtailConfig.model_validate({"encode": {"encoder": "minilm-int8", "cache_dir": None}})


# (query, best item, other items judged partly relevant, items judged irrelevant): grades 2, 1 and 0.
JUDGED = [
    ("glass beaker", "beaker", ["flask", "pipette"], ["drill"]),
    ("borosilcate flask", "flask", ["beaker"], ["tape", "gloves"]),
    ("0.5 l beaker", "beaker", ["flask"], ["caliper"]),
    ("safety goggles", "goggles", ["gloves"], ["drill", "tape"]),
    ("nitrile gloves", "gloves", ["goggles"], ["beaker"]),
    ("cordless drill", "drill", [], ["pipette", "goggles"]),
    ("18V drill", "drill", ["caliper"], ["flask"]),
    ("measuring tape", "tape", ["caliper"], ["gloves"]),
    ("5 m tape", "tape", [], ["beaker", "goggles"]),
    ("digital caliper", "caliper", ["tape"], ["gloves"]),
    ("150 mm caliper", "caliper", ["tape"], ["pipette"]),
    ("graduated pipette", "pipette", ["beaker", "flask"], ["drill"]),
    ("10 ml pipette", "pipette", ["flask"], ["tape"]),
    ("erlenmeyer flask", "flask", ["beaker"], ["caliper"]),
]


@pytest.fixture(scope="session")
def hand_judgments() -> pl.DataFrame:
    """The hand-made judgments above as a canonical judgments table (relevance = grade + 1, as raters' means)."""
    rows = []
    for number, (query, best, partial, irrelevant) in enumerate(JUDGED):
        rows += [(f"q{number}", query, best, 2.0)] + [(f"q{number}", query, item, 1.0) for item in partial]
        rows += [(f"q{number}", query, item, 0.0) for item in irrelevant]
    table = pl.DataFrame(rows, schema=["query_id", "query", "item_id", "grade"], orient="row")
    return table.with_columns((pl.col("grade") + 1.0).alias("relevance"))
