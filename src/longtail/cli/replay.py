"""The `replay` command: what a running API gives a model folder's test users, scored against the folder's offline evaluation."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from longtail.cli.terminal import console, progress
from longtail.core.errors import LongtailError

commands = typer.Typer()
KEY_ENV = "LONGTAIL_API_KEY"


def replay_and_compare(model: Path, dataset: str, users: int | None, url: str, key: str) -> dict[str, Any]:
    """Replay the sampled test users through the API at `url` and evaluate the folder offline on the same users."""
    import httpx

    from longtail.pipeline.model_folder import evaluate_folder, folder_split, load_model_folder, sample_test_users
    from longtail.pipeline.replay import replay

    folder = load_model_folder(model)
    split = folder_split(model)
    chosen = sample_test_users(split, users, folder.config.seed)
    with console.status(f"offline: scoring {len(chosen):,} users with {folder.name}"):
        offline = evaluate_folder(folder, split, chosen).metrics
    with httpx.Client(base_url=url, timeout=120, headers={"Authorization": f"Bearer {key}"}) as client:
        health = client.get("/health").json()
        if health.get("model") != folder.version:
            raise LongtailError(
                f"{url} serves model {health.get('model')!r}, not {folder.version!r} from {model}; start it with `longtail serve --model {model}`"
            )
        with progress() as bar:
            task = bar.add_task("replay", total=len(chosen))
            online = replay(client, model, users, folder.config.seed, advance=lambda: bar.update(task, advance=1))
    return {
        "dataset": dataset,
        "model": f"{folder.name} ({folder.version})",
        "users": online["users"],
        "offline": {name: offline[name] for name in ("NDCG@10", "HR@10")},
        "replay": online["metrics"],
        "sources": online["sources"],
    }


@commands.command()
def replay(
    model: Annotated[Path, typer.Option(help="the model folder the API serves (`longtail serve --model DIR`)")],
    dataset: Annotated[str, typer.Option(help="the name of the data the folder was trained on, recorded in the result")],
    users: Annotated[int | None, typer.Option(help="replay this many random test users (the folder's seed; default: all)")] = None,
    url: Annotated[str, typer.Option(help="the running API")] = "http://127.0.0.1:8000",
    key: Annotated[str | None, typer.Option(help=f"an API key with the read and write_events scopes (default: ${KEY_ENV})")] = None,
    out: Annotated[Path | None, typer.Option(help="write the comparison as JSON here")] = None,
) -> None:
    """Post each test user's history to a running API, ask it for 10 recommendations, and score them with the offline
    metrics beside `longtail evaluate --model` on the same users."""
    from longtail.core.artifacts import save_json

    api_key = key or os.environ.get(KEY_ENV)
    if not api_key:
        raise LongtailError(f"give --key or set {KEY_ENV}: the replay posts events and reads recommendations")
    result = replay_and_compare(model, dataset, users, url, api_key)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        save_json(out, result)
    console.print(
        f"{result['users']:,} users, {result['model']}: offline NDCG@10 {result['offline']['NDCG@10']:.4f} HR@10 "
        f"{result['offline']['HR@10']:.4f}; through the API NDCG@10 {result['replay']['NDCG@10']:.4f} HR@10 {result['replay']['HR@10']:.4f}"
    )
