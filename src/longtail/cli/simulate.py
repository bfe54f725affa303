"""The `simulate` command: two model folders in a simulated online experiment (A/B and interleaving) on logged sessions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from longtail.cli.terminal import console

commands = typer.Typer()


@commands.command()
def simulate(
    model: Annotated[list[str], typer.Option(help="arm A, then arm B: a model folder, or DIR#popularity for the folder's popularity")],
    out: Annotated[Path, typer.Option(help="folder for simulation.json and simulation.html")],
    users: Annotated[int | None, typer.Option(help="this many random test users of arm A's folder (its seed; default: all)")] = None,
    seed: Annotated[list[int] | None, typer.Option(help="seed of the coin flips and clicks (repeat for several runs; default: 1 and 3)")] = None,
) -> None:
    """Serve both arms to the same logged test sessions through a position-based click model, as an A/B split and as
    team-draft interleaving: CTR, CVR and the preference with 95% intervals, beside each arm's offline NDCG@10."""
    from longtail.pipeline.simulate import REPORT_FILE, simulate_folders

    with console.status("simulating"):
        result = simulate_folders(model, users, seed or [1, 3], out)
    arms = result["arms"]
    console.print(
        f"A = {arms['A']['recommender']} (offline NDCG@10 {arms['A']['offline']['NDCG@10']:.4f}), "
        f"B = {arms['B']['recommender']} (offline NDCG@10 {arms['B']['offline']['NDCG@10']:.4f}); {result['users']:,} users"
    )
    for run in result["runs"]:
        ctr, preference = run["ab"]["CTR"]["B_minus_A"], run["interleaving"]["preference_for_B"]
        console.print(
            f"seed {run['seed']}: A/B CTR B−A {ctr['difference']:+.4f} [{ctr['low']:+.4f}, {ctr['high']:+.4f}]; "
            f"interleaving preference for B {preference['difference']:+.4f} [{preference['low']:+.4f}, {preference['high']:+.4f}]"
        )
    console.print(f"Report: [bold]{out / REPORT_FILE}[/]")
