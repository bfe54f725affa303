"""Recommendation commands: `evaluate` recommenders, `ablate` balancing choices (`balance-files` on Spark), `train` and `update` a model folder, `intent`."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from longtail.cli.inputs import load_catalogue, read_canonical, resolve_datasets_root
from longtail.cli.options import BundledDatasetOption, ConfigOption, DatasetsRootOption, EventsFileOption, ItemsFileOption
from longtail.cli.terminal import console, progress
from longtail.core.config import LongtailConfig, load_config
from longtail.core.errors import LongtailError
from longtail.data.schema import EVENTS

commands = typer.Typer()
DEFAULT_MODELS = ["popularity", "ease"]


def evaluate_recommenders(
    out: Path,
    models: list[str],
    dataset: str | None,
    items: Path | None,
    events: Path | None,
    protocol: str,
    max_users: int | None,
    config: Path | None,
    datasets_root: Path | None,
    repeats: bool | None = None,
) -> list[dict[str, Any]]:
    """Fit and evaluate recommenders on a dataset or on items+events files; one run record per model, written to out.

    `repeats` overrides `recommend.repeats`: history stays rankable, so re-buying an item counts as a hit.
    """
    from longtail.pipeline.evaluate_step import evaluate_models

    settings = load_config(config)
    if repeats is not None:
        settings.recommend.repeats = repeats
    if dataset is None and (items is None or events is None):
        raise LongtailError("give --dataset, or both --items and --events")
    item_table, event_table = load_catalogue(items, events, dataset, datasets_root, settings)
    if event_table is None:
        raise LongtailError(f"dataset {dataset!r} has no events to evaluate on")
    with progress() as bar:
        task = bar.add_task("evaluate", total=2 * len(models))
        return evaluate_models(
            item_table, event_table, models, settings, out, protocol, max_users, advance=lambda step: bar.update(task, advance=1, description=step)
        )


def evaluate_model_folder(directory: Path, users: int | None, out: Path) -> dict[str, Any]:
    """Score a model folder's served recommender on its own split's test items (`users` random users; the seed is the
    folder's), as `longtail replay` does offline; the record, also written to out/evaluation.json."""
    from longtail.core.artifacts import save_json
    from longtail.pipeline.model_folder import evaluate_folder, evaluation_record, folder_split, load_model_folder, sample_test_users

    folder = load_model_folder(directory)
    split = folder_split(directory)
    chosen = sample_test_users(split, users, folder.config.seed)
    with console.status(f"scoring {len(chosen):,} users with {folder.name} ({folder.version})"):
        record = {**evaluation_record(evaluate_folder(folder, split, chosen), folder.name, len(chosen)), "version": folder.version, "folder": str(directory)}
    out.mkdir(parents=True, exist_ok=True)
    save_json(out / "evaluation.json", record)
    return record


def evaluation_table(runs: list[dict[str, Any]]) -> Table:
    """Overall and tail metrics per model, with coverage and training time."""
    table = Table(title=f"Test metrics ({runs[0]['protocol']}, full ranking{', repeats count' if runs[0]['repeats'] else ''})")
    for column in ("model", "HR@10", "NDCG@10", "MRR", "tail HR@10", "tail NDCG@10", "coverage@10", "train s"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for run in runs:
        tail = run["segments"]["tail"]
        metrics = run["metrics"]
        table.add_row(
            run["model"],
            f"{metrics['HR@10']:.4f}",
            f"{metrics['NDCG@10']:.4f}",
            f"{metrics['MRR']:.4f}",
            f"{tail['HR@10']:.4f}",
            f"{tail['NDCG@10']:.4f}",
            f"{metrics['coverage@10']:.3f}",
            f"{run['train_seconds']:.1f}" if "train_seconds" in run else "-",
        )
    return table


def print_evaluation(runs: list[dict[str, Any]], out: Path) -> None:
    """The metrics table and where the reports are."""
    console.print(evaluation_table(runs))
    console.print(f"Report: [bold]{out / 'report.html'}[/]  JSON: {out / 'report.json'}")


@commands.command()
def evaluate(
    out: Annotated[Path, typer.Option(help="output directory for report.html, report.json and config.yaml")],
    model: Annotated[
        list[str],
        typer.Option(
            help="recommender to evaluate (repeat the option): popularity, itemknn, als, ease, content, sasrec; "
            "or a model folder from `longtail train`, re-scored as it is served"
        ),
    ] = DEFAULT_MODELS,
    dataset: BundledDatasetOption = None,
    items: ItemsFileOption = None,
    events: EventsFileOption = None,
    protocol: Annotated[str, typer.Option(help="loo (last item per user) or temporal (one global time cut)")] = "loo",
    max_users: Annotated[int | None, typer.Option(help="evaluate a random sample of this many users")] = None,
    repeats: Annotated[
        bool | None,
        typer.Option("--repeats/--no-repeats", help="repeat consumption: history is not masked, re-buying counts as a hit (default: recommend.repeats)"),
    ] = None,
    config: ConfigOption = None,
    datasets_root: DatasetsRootOption = None,
) -> None:
    """Fit recommenders and evaluate them with full-ranking metrics, segments and bootstrap intervals (or re-score a model folder)."""
    folders = [Path(name) for name in model if Path(name).is_dir()]
    if folders:
        if len(folders) != len(model) or len(folders) > 1:
            raise LongtailError("give one model folder to re-score, or recommender names to fit; not both")
        record = evaluate_model_folder(folders[0], max_users, out)
        console.print(evaluation_table([{**record, "repeats": False}]))
        console.print(f"{record['users']:,} users, model version {record['version']}. JSON: {out / 'evaluation.json'}")
        return
    print_evaluation(evaluate_recommenders(out, model, dataset, items, events, protocol, max_users, config, datasets_root, repeats), out)


def train_intent(
    out: Path, dataset: str | None, items: Path | None, events: Path | None, max_users: int | None, config: Path | None, datasets_root: Path | None
) -> dict[str, Any]:
    """Train and evaluate the behaviour-intent model; its result record (also written to out)."""
    from longtail.pipeline.intent_step import run_intent

    settings = load_config(config)
    item_table, event_table = load_catalogue(items, events, dataset, datasets_root, settings)
    if event_table is None:
        raise LongtailError("the intent model learns from events: give --events with --items")
    with progress() as bar:
        task = bar.add_task("intent", total=3)
        return run_intent(
            item_table, event_table, settings, out, dataset or str(events), max_users, advance=lambda step: bar.update(task, advance=1, description=step)
        )


def print_intent(result: dict[str, Any], out: Path) -> None:
    """Per prediction head: each model's accuracy, macro-F1/AUC, per-class F1 and its macro-F1 difference to the model."""
    from longtail.pipeline.intent_step import REPORT_FILE, RESULT_FILE

    for head, outcome in result["heads"].items():
        table = Table(title=f"{head} on {result['users']['test']:,} held-out users ({result['rows']['test']:,} positions)")
        for column in ("model", "accuracy", "macro-F1", "macro AUC", *(f"{name} F1" for name in outcome["classes"]), "macro-F1 vs model"):
            table.add_column(column, justify="left" if column == "model" else "right")
        for name, metrics in outcome["models"].items():
            compared = outcome["comparisons"].get(name)
            interval = f"{compared['difference']:+.4f} [{compared['low']:+.4f}, {compared['high']:+.4f}]" if compared else "-"
            per_class = [f"{metrics['per_class'][c]['f1']:.3f}" for c in outcome["classes"]]
            table.add_row(name, f"{metrics['accuracy']:.4f}", f"{metrics['macro_f1']:.4f}", f"{metrics['macro_auc']:.4f}", *per_class, interval)
        console.print(table)
    for note in result["notes"]:
        console.print(note, highlight=False)
    console.print(f"Report: [bold]{out / REPORT_FILE}[/]  JSON: {out / RESULT_FILE}")


@commands.command()
def intent(
    out: Annotated[Path, typer.Option(help="output directory for intent.json, intent.html, the model and config.yaml")],
    dataset: BundledDatasetOption = None,
    items: ItemsFileOption = None,
    events: EventsFileOption = None,
    max_users: Annotated[int | None, typer.Option(help="use a random sample of this many users")] = None,
    config: Annotated[Path | None, typer.Option(help="YAML config (section intent); defaults when omitted")] = None,
    datasets_root: DatasetsRootOption = None,
) -> None:
    """Train the behaviour-intent model (next action, browse/compare/buy) on some users; evaluate it on the others against baselines."""
    print_intent(train_intent(out, dataset, items, events, max_users, config, datasets_root), out)


@dataclass(frozen=True)
class TrainSummary:
    """What `train` wrote: the folder, the model's size and training curve, and any held-back events."""

    out: Path
    items: int
    epochs: int
    best_valid_ndcg: float
    fusion: bool
    held_back_events: int


def train_folder(
    out: Path,
    dataset: str | None,
    items: Path | None,
    events: Path | None,
    hold_back: int,
    held_back_out: Path | None,
    fusion: bool,
    config: Path | None,
    datasets_root: Path | None,
    evaluation_users: int | None = None,
    index: Path | None = None,
    intent: Path | None = None,
) -> TrainSummary:
    """Train the sequential model (and the fusion ranker) into a model folder, first holding back each user's newest events;
    the folder also holds the evaluation of what it serves (and a copy of `index`, for search)."""
    from longtail.pipeline.incremental import hold_back as split_newest
    from longtail.pipeline.incremental import train_model_folder

    settings = load_config(config)
    item_table, event_table = load_catalogue(items, events, dataset, datasets_root, settings)
    if event_table is None:
        raise LongtailError("training needs events: give --events with --items")
    if hold_back and held_back_out is None:
        raise LongtailError("--hold-back needs --held-back-out FILE for the held-back events")
    held_rows = 0
    if hold_back:
        event_table, held = split_newest(event_table, hold_back)
        assert held_back_out is not None  # required with --hold-back, checked above
        held.write_parquet(held_back_out)
        held_rows = held.height
        console.print(f"held back {held_rows:,} events -> {held_back_out}")
    with console.status("training the sequential model" + (" and the fusion ranker" if fusion else "")):
        model = train_model_folder(item_table, event_table, settings, out, fusion=fusion, evaluation_users=evaluation_users, index=index, intent=intent)
    return TrainSummary(out, model.n_items_, len(model.history_), model.best_valid_, fusion, held_rows)


@commands.command()
def train(
    out: Annotated[Path, typer.Option(help="model folder to write (models, items, history, config, evaluation; see docs/serving.md)")],
    dataset: BundledDatasetOption = None,
    items: ItemsFileOption = None,
    events: EventsFileOption = None,
    hold_back: Annotated[int, typer.Option(help="keep each user's newest N interactions out of training, to replay with `update`")] = 0,
    held_back_out: Annotated[Path | None, typer.Option(help="where --hold-back writes those events (parquet)")] = None,
    fusion: Annotated[bool, typer.Option(help="also train the fusion ranker over SASRec, EASE, item kNN, content and popularity")] = False,
    evaluation_users: Annotated[int | None, typer.Option(help="evaluate what the folder serves on this many random users' test items (default: all)")] = None,
    index: Annotated[Path | None, typer.Option(help="a search index from `longtail index`, copied into the folder so it serves search too")] = None,
    intent_model: Annotated[
        Path | None, typer.Option(help="an intent_model.json from `longtail intent`, copied in: served profiles show its prediction")
    ] = None,
    config: Annotated[Path | None, typer.Option(help="YAML config (recommend.sequential); defaults when omitted")] = None,
    datasets_root: DatasetsRootOption = None,
) -> None:
    """Train the sequential (SASRec) model, and with --fusion the fusion ranker, into the folder `longtail serve --model` serves
    and `longtail update` warm-starts; what it serves is evaluated on each user's last item and the result kept with it."""
    summary = train_folder(out, dataset, items, events, hold_back, held_back_out, fusion, config, datasets_root, evaluation_users, index, intent_model)
    console.print(
        f"model folder: [bold]{summary.out}[/]  ({summary.items:,} items, {summary.epochs} epochs, validation NDCG@10 {summary.best_valid_ndcg:.4f}"
        + (", with the fusion ranker)" if summary.fusion else ")")
    )


def update_folder(model: Path, events: Path, dataset: str | None, items: Path | None, config: Path | None, datasets_root: Path | None) -> dict[str, Any]:
    """Warm-start a model folder on new events and keep the update only if it is not worse; the decision record."""
    from longtail.pipeline.incremental import update_model_folder

    settings = load_config(config)
    item_table, _ = load_catalogue(items, None, dataset, datasets_root, settings)
    new_events = read_canonical(events, EVENTS, settings)
    with console.status("warm-starting and judging the update"):
        return update_model_folder(model, new_events, item_table, settings)


def print_update(decision: dict[str, Any], model: Path) -> None:
    """Old vs new on the held-out newest events per model, with the interval, tolerance and the decision."""
    from longtail.pipeline.incremental import DECISION_FILE

    table = Table(title=f"Update on {decision['held_out_events']:,} held-out newest events ({decision['evaluated_users']:,} users)")
    for column in ("model", "metric", "old", "new", "new - old (95% CI)", "tolerance", "passed"):
        table.add_column(column, justify="left" if column in ("model", "metric", "passed") else "right")
    for name, part in (("sequential", decision), ("fusion ranker", decision.get("ranker"))):
        if part is not None:
            ci = part["new_minus_old_ci"]
            table.add_row(
                name,
                part["metric"],
                f"{part['old']:.4f}",
                f"{part['new']:.4f}",
                f"{part['difference']:+.4f} [{ci['low']:+.4f}, {ci['high']:+.4f}]",
                f"{part['tolerance']:.4f}",
                "[green]yes[/]" if part["passed"] else "[yellow]no[/]",
            )
    console.print(table)
    colour = "green" if decision["decision"] == "replaced" else "yellow"
    console.print(f"decision: [{colour}]{decision['decision']}[/]")
    console.print(f"trained on {decision['trained_events']:,} new events; {decision['items_added']:,} new items. Decision: {model / DECISION_FILE}")


@commands.command()
def update(
    model: Annotated[Path, typer.Option(help="a model folder written by `longtail train` (replaced only if the update passes)")],
    events: Annotated[Path, typer.Option(help="the new events file")],
    dataset: Annotated[str | None, typer.Option(help="the catalogue: a bundled public dataset")] = None,
    items: Annotated[Path | None, typer.Option(help="the catalogue: your items file (new items get rows from their text)")] = None,
    config: Annotated[Path | None, typer.Option(help="YAML config (section incremental); defaults when omitted")] = None,
    datasets_root: DatasetsRootOption = None,
) -> None:
    """Warm-start the model (and its fusion ranker, if the folder holds one) on new events; keep them only if not worse on the newest events."""
    print_update(update_folder(model, events, dataset, items, config, datasets_root), model)


def run_recommendation_ablation(settings: LongtailConfig, datasets_root: Path, out: Path) -> dict[str, Any]:
    """Train the baseline and every variant, write ablation.json/.html and config.yaml; the result record."""
    from longtail.core.config import save_config
    from longtail.evaluate.ablation import run_ablation, write_results
    from longtail.pipeline.executors import table_mapper

    # pipeline.executor decides where the split and the arms' components run (a Spark session lives for the whole run)
    with table_mapper(settings.pipeline) as mapper, progress() as bar:
        arms = 2 + len(settings.ablation.variants) + (settings.ablation.combine_best > 1)
        task = bar.add_task("ablate", total=arms)
        result, evaluations = run_ablation(settings, datasets_root, on_step=lambda step: bar.update(task, advance=1, description=step), map_table=mapper)
    write_results(result, evaluations, settings, out / "ablation.json", out / "ablation.html")
    save_config(settings, out)
    return result


@commands.command("balance-files")
def balance_files(
    input_path: Annotated[Path, typer.Argument(help="a training table: a folder of Parquet parts (or one file), e.g. one row per user's sequence")],
    out: Annotated[Path, typer.Option(help="output folder: the executors write rows/ as Parquet parts")],
    arm: Annotated[str, typer.Option(help="the ablation arm (config ablation.variants) whose sequences components to apply, in order")],
    config: ConfigOption = None,
    master: Annotated[str | None, typer.Option(help="Spark master (spark://host:port or local[N]); default: pipeline.spark_master")] = None,
) -> None:
    """Balance/augment a training table in Parquet parts on Spark, the driver holding no rows; sort rows/ by the printed ORDER columns for input order."""
    from longtail.balance.component import build_chain
    from longtail.pipeline.spark_files import balance_files as run_on_files

    settings = load_config(config)
    variants = {variant.name: variant for variant in settings.ablation.variants}
    if arm not in variants:
        raise LongtailError(f"arm {arm!r} is not among the config's ablation.variants ({', '.join(variants) or 'none'})")
    pipeline = settings.pipeline.model_copy(update={"spark_master": master}) if master else settings.pipeline
    figures = run_on_files(build_chain(variants[arm].sequences).components, input_path, out, settings.seed, pipeline)
    console.print(
        f"{figures['input_rows']:,} rows in, {figures['output_rows']:,} out ({figures['synthetic_rows']:,} synthetic) -> {out / 'rows'}; "
        f"input order: sort by {', '.join(figures['order_columns'])}"
    )


def print_recommendation_ablation(result: dict[str, Any], out: Path) -> None:
    """NDCG@10 per variant and segment with the change vs baseline, training time and whether the goal was met."""
    from longtail.evaluate.ablation import SEGMENTS

    table = Table(title=f"Ablation on {result['dataset']} ({result['protocol']}, NDCG@10; change vs baseline)")
    for column in ("variant", *SEGMENTS, "train s", "goal"):
        table.add_column(column, justify="left" if column == "variant" else "right")
    goals = result["goal"]["variants"]
    for run in result["runs"]:
        name = run["model"]
        rows = result["vs_baseline"].get(name, {})
        cells = []
        for segment in SEGMENTS:
            value = run["metrics"]["NDCG@10"] if segment == "all" else run["segments"][segment]["NDCG@10"]
            change = rows.get(f"{segment}/NDCG@10")
            cells.append(f"{value:.4f}" + (f" ({change['relative']:+.0%})" if change else ""))
        goal = "-" if name not in goals else ("met" if goals[name]["meets_goal"] else "no")
        table.add_row(name, *cells, f"{run['train_seconds']:.0f}", goal)
    console.print(table)
    console.print(f"Report: [bold]{out / 'ablation.html'}[/]  JSON: {out / 'ablation.json'}")


def run_classification_ablation(settings: LongtailConfig, datasets_root: Path, out: Path) -> dict[str, Any]:
    """Every configured balancing strategy on the imbalanced classifier, written to out; the experiment record."""
    from longtail.pipeline.balance_step import run_classification_ablation as run_experiment

    with progress() as bar:
        task = bar.add_task("ablate", total=len(settings.balance.tabular.strategies))
        return run_experiment(settings, datasets_root, out, on_step=lambda step: bar.update(task, advance=1, description=step))


def _with_change(value: float, change: dict[str, float] | None) -> str:
    """A metric with its change vs baseline and the interval, when there is one."""
    return f"{value:.3f}" + (f" ({change['difference']:+.3f} [{change['low']:+.3f}, {change['high']:+.3f}])" if change else "")


def print_classification_ablation(experiment: dict[str, Any], out: Path) -> None:
    """Macro-F1, minority-class recall and F1 per strategy, each with its change vs baseline and interval."""
    rows = experiment["rows"]
    minority = rows[0]["minority_class"]
    table = Table(title=f"{experiment['task']}, {experiment['classifier']}: change vs baseline [95% CI]; every class in the HTML report")
    for column in ("strategy", "train rows", "macro-F1", f"recall {minority}", f"F1 {minority}"):
        table.add_column(column, justify="left" if column == "strategy" else "right")
    for row in rows:
        compared = row.get("vs_baseline", {})
        table.add_row(
            row["strategy"],
            f"{row['train_rows']:,}",
            _with_change(row["macro_f1"], compared.get("macro_f1")),
            _with_change(row["minority_recall"], compared.get("minority_recall")),
            f"{row['per_class'][minority]['f1']:.3f}",
        )
    console.print(table)
    console.print(f"Report: [bold]{out / 'ablation.html'}[/]  JSON: {out / 'ablation.json'}")


@commands.command()
def ablate(
    config: Annotated[Path, typer.Argument(help="YAML config: the recommend section is the baseline, the ablation section lists dataset and variants")],
    out: Annotated[Path, typer.Option(help="output directory for ablation.json, ablation.html and config.yaml")] = Path("out/ablation"),
    datasets_root: DatasetsRootOption = None,
) -> None:
    """Train the baseline and every variant alike and compare them overall, per item segment and for cold users
    (or, with `ablation.task: classification`, every balancing strategy per class on an imbalanced classifier)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    settings = load_config(config)
    root = resolve_datasets_root(datasets_root)
    if settings.ablation.task == "classification":
        print_classification_ablation(run_classification_ablation(settings, root, out), out)
    else:
        print_recommendation_ablation(run_recommendation_ablation(settings, root, out), out)
