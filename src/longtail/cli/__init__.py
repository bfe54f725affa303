"""The `longtail` command line: one typer app that every command module registers its commands on."""

from __future__ import annotations

import typer

from longtail.cli import data, demo, maintenance, recommend, replay, search, search_eval, serve, simulate
from longtail.cli.errors import LongtailGroup

app = typer.Typer(cls=LongtailGroup, help="Longtail: e-commerce search and recommendation that serves the long tail.", no_args_is_help=True)
# One line per command module: its commands join the top level, and LongtailGroup reports their errors.
app.add_typer(data.commands)
app.add_typer(search.commands)
app.add_typer(search_eval.commands)
app.add_typer(recommend.commands)
app.add_typer(serve.commands)
app.add_typer(maintenance.commands)
app.add_typer(demo.commands)
app.add_typer(replay.commands)
app.add_typer(simulate.commands)

__all__ = ["app"]
