"""Where the command line writes: the rich consoles for results and for messages, and its progress bar."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

console = Console()
error_console = Console(stderr=True)


def progress() -> Progress:
    """A progress bar with the current step's name, done/total and elapsed time."""
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def shorten_label(text: str, width: int) -> str:
    """The end of a long label (the most specific part of a category), marked as cut."""
    return text if len(text) <= width else "…" + text[-(width - 1) :]
