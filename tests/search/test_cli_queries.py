"""`longtail search` with several queries: the index (and its encoder) is opened once, every query is answered."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from longtail.cli import app
from longtail.search.engine import SearchEngine


@pytest.fixture(scope="module")
def index_dir(catalogue, fast_config, tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli-queries") / "index"
    SearchEngine.build(catalogue, fast_config, directory=folder)
    return folder


@pytest.fixture()
def opened(monkeypatch):
    """Count how often an index is opened."""
    calls: list[object] = []
    original = SearchEngine.open.__func__

    def counting(cls, *args, **kwargs):
        calls.append(args[0])
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(SearchEngine, "open", classmethod(counting))
    return calls


def test_a_queries_file_is_searched_with_one_loaded_index(index_dir, tmp_path, opened) -> None:
    queries = tmp_path / "queries.txt"
    queries.write_text("safety goggles\n\ncordless drill\nglass flask\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["search", "--index", str(index_dir), "--queries-file", str(queries), "--k", "1"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert len(opened) == 1
    for query, item in (("safety goggles", "goggles"), ("cordless drill", "drill"), ("glass flask", "flask")):
        assert f"Results for '{query}'" in result.output
        assert f"│ {item} " in result.output


def test_queries_typed_at_the_prompt_share_one_index_until_an_empty_line(index_dir, opened) -> None:
    result = CliRunner().invoke(
        app, ["search", "--index", str(index_dir), "--k", "1"], input="measuring tape\nnitrile gloves\n\nnever asked\n", terminal_width=200
    )
    assert result.exit_code == 0, result.output
    assert len(opened) == 1
    assert "Results for 'measuring tape'" in result.output and "Results for 'nitrile gloves'" in result.output
    assert "never asked" not in result.output


def test_a_query_and_a_queries_file_together_are_refused(index_dir, tmp_path) -> None:
    queries = tmp_path / "queries.txt"
    queries.write_text("x\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["search", "goggles", "--index", str(index_dir), "--queries-file", str(queries)])
    assert result.exit_code == 2 and "not both" in result.output
