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
