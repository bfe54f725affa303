"""Where the command line writes: the rich consoles for results and for messages, and its progress bar."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from longtail.core.errors import DataWarning

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


def warn(message: str) -> None:
    """A yellow warning line on stderr: the input was used, but something in it was skipped or changed."""
    error_console.print(f"[bold yellow]warning:[/] {message}", highlight=False)


@contextmanager
def data_warnings() -> Iterator[None]:
    """Print each DataWarning raised while reading input as one readable line, after the block."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DataWarning)
        try:
            yield
        finally:
            for warning in caught:
                if issubclass(warning.category, DataWarning):
                    warn(str(warning.message))
