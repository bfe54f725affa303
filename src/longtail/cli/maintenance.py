"""Maintenance commands: `check` a served directory without serving it, `backup` and `restore` its event store."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from longtail.cli.errors import ERROR_EXIT_CODE
from longtail.cli.options import ConfigOption, DataOption
from longtail.cli.terminal import console
from longtail.core.config import load_config

if TYPE_CHECKING:
    from longtail.serve.maintenance import Finding

commands = typer.Typer()


def print_findings(findings: list[Finding]) -> None:
    """One line per checked part: ok or FAILED, then what was found."""
    for finding in findings:
        mark = "[green]ok[/]" if finding.ok else "[bold red]FAILED[/]"
        console.print(f"{mark} {finding.part}: {finding.detail}", highlight=False)


@commands.command()
def check(
    data: DataOption,
    index_dir: Annotated[Path | None, typer.Option("--index", help="the search index to verify (default: DATA/index when built there)")] = None,
    config: ConfigOption = None,
) -> None:
    """Verify what `serve` would open, without serving: the items table, the event store and the index's manifest (exit 2 on any problem)."""
    from longtail.serve.maintenance import check_served

    findings = check_served(data, load_config(config), index_dir)
    print_findings(findings)
    if not all(finding.ok for finding in findings):
        raise typer.Exit(code=ERROR_EXIT_CODE)


@commands.command()
def backup(
    data: DataOption,
    out: Annotated[Path, typer.Option(help="backup file, or a folder for a time-stamped one")],
    config: ConfigOption = None,
) -> None:
    """Copy the SQLite event store with SQLite's online backup, safe while serving (PostgreSQL: see the message)."""
    from longtail.serve.maintenance import backup_store

    written = backup_store(data, load_config(config), out)
    console.print(f"backed up to {written}")


@commands.command()
def restore(
    data: DataOption,
    backup_file: Annotated[Path, typer.Option("--from", help="a file written by `longtail backup`")],
    replace: Annotated[bool, typer.Option(help="replace the store already there (it is kept beside it); stop the server first")] = False,
    config: ConfigOption = None,
) -> None:
    """Put a backup in place of the served SQLite event store; the server must be stopped."""
    from longtail.serve.maintenance import restore_store

    moved = restore_store(data, load_config(config), backup_file, replace)
    console.print(f"restored from {backup_file}" + (f"; the replaced store is kept at {moved}" if moved else ""))
