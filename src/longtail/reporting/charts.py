"""Small matplotlib charts rendered to inline SVG, so reports open offline with no scripts."""

from __future__ import annotations

import io
import warnings

import matplotlib
import matplotlib.pyplot as plt

# Reports are drawn headless; pyplot resolves its backend lazily, so choosing it after the import still takes effect.
matplotlib.use("Agg")

# Text stays text in the SVG, so the browser draws Chinese labels with its own fonts (no CJK font ships here).
matplotlib.rcParams["svg.fonttype"] = "none"

PALETTE = ["#2f6db5", "#d9822b", "#3a9e5b", "#c23b3b", "#7d5ba6", "#8c8c8c"]


def _to_svg(figure: plt.Figure) -> str:
    buffer = io.StringIO()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Glyph .* missing from font", category=UserWarning)
        figure.tight_layout()
        figure.savefig(buffer, format="svg")
    plt.close(figure)
    svg = buffer.getvalue()
    return svg[svg.index("<svg") :]


def bar_chart(labels: list[str], values: list[float], title: str, xlabel: str = "", log: bool = False) -> str:
    """Horizontal bars, largest on top."""
    figure, axis = plt.subplots(figsize=(7, 0.35 * max(len(labels), 2) + 1.2))
    positions = range(len(labels))
    axis.barh(list(positions), values, color=PALETTE[0])
    axis.set_yticks(list(positions), labels)
    axis.invert_yaxis()
    axis.set_title(title)
    axis.set_xlabel(xlabel)
    if log:
        axis.set_xscale("log")
    for position, value in zip(positions, values, strict=True):
        axis.text(value, position, f" {value:,.4g}", va="center", fontsize=8)
    return _to_svg(figure)


def line_chart(x: list, y: list[float], title: str, ylabel: str) -> str:
    """A single series over time."""
    figure, axis = plt.subplots(figsize=(7, 2.8))
    axis.plot(x, y, color=PALETTE[0], linewidth=1)
    axis.set_title(title)
    axis.set_ylabel(ylabel)
    figure.autofmt_xdate()
    return _to_svg(figure)


def histogram(values: list[float], title: str, xlabel: str, log_y: bool = True, marks: list[float] | None = None) -> str:
    """A histogram, with optional vertical marks (e.g. values that were flagged)."""
    figure, axis = plt.subplots(figsize=(7, 2.8))
    axis.hist(values, bins=50, color=PALETTE[0])
    for mark in marks or []:
        axis.axvline(mark, color=PALETTE[3], linewidth=1)
    if log_y:
        axis.set_yscale("log")
    axis.set_title(title)
    axis.set_xlabel(xlabel)
    return _to_svg(figure)


def curve_chart(x: list[float], series: dict[str, list[float]], title: str, xlabel: str, ylabel: str) -> str:
    """Several named series over the same numeric x, with markers (e.g. a trade-off curve over a knob)."""
    figure, axis = plt.subplots(figsize=(7, 3.2))
    # The palette is longer than any curve chart's series; a colour left over is simply unused.
    for colour, (name, values) in zip(PALETTE, series.items(), strict=False):
        axis.plot(x, values, marker="o", color=colour, linewidth=1.2, label=name)
    axis.set_title(title)
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
    axis.legend(fontsize=8)
    return _to_svg(figure)


def xy_chart(series: dict[str, list[tuple[float, float]]], title: str, xlabel: str, ylabel: str) -> str:
    """Several named series, each with its own x values (e.g. NDCG@10 over training seconds per recipe)."""
    figure, axis = plt.subplots(figsize=(7, 3.2))
    for colour, (name, points) in zip(PALETTE, series.items(), strict=False):
        axis.plot([x for x, _ in points], [y for _, y in points], marker="o", markersize=3, color=colour, linewidth=1.2, label=name)
    axis.set_title(title)
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
    axis.legend(fontsize=8)
    return _to_svg(figure)
