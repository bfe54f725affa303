"""The one place a deliberate Longtail error becomes a red message and exit status 2, for every command."""

from __future__ import annotations

from typing import Any

import typer
from rich.markup import escape
from typer._click import Context as ClickContext  # typer vendors click; TyperGroup.invoke takes this Context
from typer.core import TyperGroup

from longtail.cli.terminal import error_console
from longtail.core.errors import LongtailError

ERROR_EXIT_CODE = 2


def report_error(error: LongtailError) -> None:
    """Print the error in red on stderr and exit with status 2; a traceback would only hide what to fix."""
    error_console.print(f"[bold red]error:[/] {escape(str(error))}", highlight=False, markup=True)
    raise typer.Exit(code=ERROR_EXIT_CODE)


class LongtailGroup(TyperGroup):
    """The `longtail` command group: runs the chosen command and reports any LongtailError it raises."""

    def invoke(self, ctx: ClickContext) -> Any:
        """Run the subcommand; a LongtailError from it (or from a nested group) ends in report_error."""
        try:
            return super().invoke(ctx)
        except LongtailError as error:
            report_error(error)
