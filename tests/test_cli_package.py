"""The CLI package's plumbing: the one error handler, where the datasets and demo folders come from, command results without a terminal."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from longtail.cli import app, terminal
from longtail.cli.errors import LongtailGroup
from longtail.cli.inputs import DATASETS_ENV, resolve_datasets_root, resolve_demo_data
from longtail.cli.search import run_search
from longtail.core.errors import ConfigError, InputDataError, LongtailError

runner = CliRunner()


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    # Rich wraps at the terminal width; a wide console keeps each message on one line.
    monkeypatch.setattr(terminal.console, "width", 200)
    monkeypatch.setattr(terminal.error_console, "width", 200)


def test_error_handler_prints_the_message_and_exits_2_for_any_longtail_error() -> None:
    tool = typer.Typer(cls=LongtailGroup)
    sub = typer.Typer()
    tool.add_typer(sub, name="nested")

    @tool.command()
    def broken(row: int) -> None:
        raise InputDataError("items.csv", "not a number", row=row, column="price")

    @sub.command()
    def deeper() -> None:
        raise LongtailError("keep [brackets] as typed")

    result = runner.invoke(tool, ["broken", "7"])
    assert result.exit_code == 2
    assert "error: items.csv, row 7, column 'price': not a number" in result.output
    assert "Traceback" not in result.output
    nested = runner.invoke(tool, ["nested", "deeper"])
    assert nested.exit_code == 2 and "error: keep [brackets] as typed" in nested.output


def test_error_handler_leaves_other_exceptions_alone() -> None:
    tool = typer.Typer(cls=LongtailGroup)

    @tool.command()
    def crash() -> None:
        raise ValueError("a bug, not a user error")

    @tool.command()
    def fine() -> None:
        print("ok")

    assert runner.invoke(tool, ["fine"]).output == "ok\n"
    result = runner.invoke(tool, ["crash"])
    assert result.exit_code == 1 and isinstance(result.exception, ValueError)


def test_real_commands_report_errors_through_the_handler(tmp_path: Path) -> None:
    result = runner.invoke(app, ["search", "x", "--index", str(tmp_path), "--mode", "fuzzy"])
    assert result.exit_code == 2 and "error: unknown mode 'fuzzy'; use hybrid, lexical or dense" in result.output
    revoke = runner.invoke(app, ["keys", "revoke", "nokey", "--data", str(tmp_path)])
    assert revoke.exit_code == 2 and "no active key with id 'nokey'" in revoke.output


def test_datasets_root_order_is_option_then_environment_then_shared_above_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shared = tmp_path / "shared" / "datasets"
    shared.mkdir(parents=True)
    checkout = tmp_path / "checkout" / "src"
    checkout.mkdir(parents=True)
    monkeypatch.setenv(DATASETS_ENV, str(tmp_path / "from-env"))
    assert resolve_datasets_root(tmp_path / "given", cwd=checkout) == tmp_path / "given"
    assert resolve_datasets_root(None, cwd=checkout) == tmp_path / "from-env"
    monkeypatch.delenv(DATASETS_ENV)
    assert resolve_datasets_root(None, cwd=checkout) == shared
    assert resolve_datasets_root(None, cwd=tmp_path / "checkout") == shared


def test_missing_datasets_root_says_what_to_pass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DATASETS_ENV, raising=False)
    with pytest.raises(ConfigError, match="pass --datasets-root DIR or set LONGTAIL_DATASETS"):
        resolve_datasets_root(None, cwd=tmp_path)
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["convert", "beauty", "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "--datasets-root" in result.output
    assert not (tmp_path / "out").exists()


def test_demo_data_comes_from_the_option_or_the_checkout_around_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    demo = tmp_path / "repo" / "data" / "demo"
    demo.mkdir(parents=True)
    (demo / "config.yaml").write_text("seed: 1\n", encoding="utf-8")
    (tmp_path / "repo" / "docs").mkdir()
    assert resolve_demo_data(None, cwd=tmp_path / "repo" / "docs") == demo
    assert resolve_demo_data(demo, cwd=tmp_path) == demo
    with pytest.raises(ConfigError, match="pass --demo-data DIR"):
        resolve_demo_data(None, cwd=tmp_path)
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["demo", "--out", str(tmp_path / "out"), "--no-serve"])
    assert result.exit_code == 2 and "pass --demo-data DIR" in result.output


def test_search_result_is_computed_without_the_terminal(tmp_path: Path) -> None:
    with pytest.raises(LongtailError, match="not a search index"):
        run_search(tmp_path, "x", 5, [], None, "hybrid")
