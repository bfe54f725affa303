"""Items added to a built engine are searchable at once; a changed item's old version never comes back; users are forgotten."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import polars as pl

from longtail.core.config import LongtailConfig
from longtail.search.engine import RECENT_FILE, SearchEngine

import builders


def test_added_and_changed_items_are_searched_without_a_rebuild(catalogue: pl.DataFrame, fast_config: LongtailConfig, tmp_path: Path) -> None:
    events = builders.events([("u1", "beaker", "view"), ("u2", "drill", "view")], at=[timedelta(0)] * 2)
    SearchEngine.build(catalogue, fast_config, events=events, directory=tmp_path / "index")
    engine = SearchEngine.open(tmp_path / "index", lexical_copy=tmp_path / "work")
    added = pl.DataFrame(
        {"item_id": ["torque"], "title": ["Click torque wrench, 1/2 inch drive"], "category": ["Tools > Wrenches"], "brand": ["Zyx"], "price": [45.0]}
    )
    engine.add_items(added)
    assert [hit.item_id for hit in engine.search("torque wrench", k=1).hits] == ["torque"]
    assert engine.search("wrench", k=3, mode="lexical").total == 1
    # The beaker becomes a crucible: its old title no longer finds it, its new one does, and it appears once.
    engine.add_items(pl.DataFrame({"item_id": ["beaker"], "title": ["Quartz crucible 50 ml"], "category": ["Lab > Glassware"]}))
    assert "beaker" not in [hit.item_id for hit in engine.search("beaker", k=8, mode="lexical").hits]
    hits = [hit.item_id for hit in engine.search("quartz crucible", k=10).hits]
    assert hits[0] == "beaker" and hits.count("beaker") == 1
    rows, _ = engine.nearest(engine.dense.vectors[engine.row_of("beaker")], 20)
    assert engine.row_of("beaker") in rows.tolist() and len(set(engine.items["item_id"].gather(rows).to_list())) == len(rows)
    # The index folder is as built: its BM25 index knows neither addition.
    assert len(SearchEngine.open(tmp_path / "index").lexical) == catalogue.height
    assert engine.forget_users(["u1"]) == 1
    assert pl.read_parquet(tmp_path / "index" / RECENT_FILE)["user_id"].to_list() == ["u2"]
