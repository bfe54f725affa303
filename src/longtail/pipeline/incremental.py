"""The incremental job: warm-start the sequential model (and fusion ranker) on new events, keep them only if the newest events say they are not worse.

A model folder (see `pipeline/model_folder.py`) holds the sequential model, `items.json` (the catalogue in index
order), `history.parquet` (the events the model has seen, the context for the next update), `config.yaml`,
optionally the fusion ranker (`ranker.txt`, `ranker.json`: its closed-form sources are refit on `history.parquet`
when it is warm-started), and after each update `update.json` (the latest decision) and `updates.jsonl` (every
decision). An update that is rolled back changes only the two decision files.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl

from longtail.core.artifacts import load_json, save_json
from longtail.core.config import IncrementalConfig, LongtailConfig
from longtail.core.errors import LongtailError
from longtail.data.splits import leave_one_out, user_sequences
from longtail.encode.item_text import ItemEncoder, catalogue_encoder
from longtail.evaluate.harness import Evaluation, evaluate_scorer, make_validator
from longtail.evaluate.significance import paired_bootstrap
from longtail.models.base import Recommender, TrainData, make_recommender
from longtail.models.fusion import BOOSTER_FILE, DEFAULT_SOURCES, FusionRanker
from longtail.models.sequential import SASRec
from longtail.models.sequential.model import WEIGHTS_FILE
from longtail.pipeline.model_folder import (
    HISTORY_FILE,
    INDEX_DIR,
    INTENT_FILE,
    ITEMS_FILE,
    ModelFolder,
    evaluate_folder,
    evaluation_record,
    fit_popularity,
    sample_test_users,
    write_model_folder,
)

log = logging.getLogger(__name__)
MODEL_FILE = WEIGHTS_FILE  # the sequential model's weights: their presence marks a trained folder
DECISION_FILE = "update.json"
DECISION_LOG = "updates.jsonl"
HISTORY_COLUMNS = ("user_id", "item_id", "event_type", "timestamp")


def _interactions(events: pl.DataFrame) -> pl.DataFrame:
    """Events with an item, in the columns a model folder keeps."""
    return events.filter(pl.col("item_id").is_not_null()).select(HISTORY_COLUMNS)


def _part(aged: pl.DataFrame, keep: pl.Expr) -> pl.DataFrame:
    """The rows of an aged event table that `keep` selects, back in their original order and columns."""
    return aged.filter(keep).sort("order").drop("order", "age")


def _with_age(events: pl.DataFrame) -> pl.DataFrame:
    """Interactions with `order` (input row) and `age` (1 = the user's newest; equal times: the later row is newer)."""
    return (
        _interactions(events)
        .with_row_index("order")
        .sort(["user_id", "timestamp", "order"])
        .with_columns((pl.len().over("user_id") - pl.int_range(pl.len()).over("user_id")).alias("age"))
    )


def hold_back(events: pl.DataFrame, newest: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(past, new): each user's `newest` latest interactions split off, e.g. to replay later as new events."""
    aged = _with_age(events)
    return _part(aged, pl.col("age") > newest), _part(aged, pl.col("age") <= newest)


def recent_slice(new_events: pl.DataFrame, config: IncrementalConfig) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(to_train, recent): the newest new events are held out to judge the update and never trained on.

    holdout `last`: each user's newest new event; `time`: every new event at or after a global time cut that
    leaves `holdout_share` of the new events after it.
    """
    aged = _with_age(new_events)
    if config.holdout == "last":
        recent = pl.col("age") == 1
    else:
        recent = pl.col("timestamp") >= aged["timestamp"].quantile(1 - config.holdout_share, interpolation="higher")
    return _part(aged, ~recent), _part(aged, recent)


def _vectors(encode: ItemEncoder, item_ids: list[str], text_init: bool, fusion: bool) -> np.ndarray | None:
    """Text vectors of the items when a model reads them; the fusion ranker always does."""
    return encode(item_ids) if text_init or fusion else None


def train_model_folder(
    items: pl.DataFrame,
    events: pl.DataFrame,
    config: LongtailConfig,
    out_dir: str | Path,
    encode: ItemEncoder | None = None,
    fusion: bool = False,
    evaluation_users: int | None = None,
    index: str | Path | None = None,
    intent: str | Path | None = None,
) -> SASRec:
    """Fit SASRec on the events (each user's last two interactions pick the epoch), evaluate it, and write a model folder.

    Item text vectors come from `encode`, else from the encoder `config.encode` selects.

    With `fusion`, the fusion ranker is trained too, as the recommendation benchmark does: its closed-form sources
    on the same training part, its LambdaRank booster on each user's validation item with SASRec as one source; it is
    then the folder's served recommender. What is served (behind the long-tail knob) is scored on each user's test
    item (`evaluation_users` random users; all when None) and the result saved with it as the evaluation it was
    accepted with. `index` (a search index folder) and `intent` (an `intent_model.json` from `longtail intent`) are
    copied in, so the folder serves search and the profile's intent prediction too.
    """
    split = leave_one_out(items, events)
    vectors = _vectors(encode or catalogue_encoder(items, config.encode), split.item_ids, config.recommend.sequential.text_init != "none", fusion)
    model = SASRec(config.recommend.sequential)
    train = TrainData(split.n_items, split.train, split.valid, vectors, config.seed)
    model.fit(train, make_validator(split, config.recommend))
    ranker = None
    if fusion:
        sources = _sources(model, train, config)
        ranker = FusionRanker(sources, config.recommend, items, split.item_ids, config.seed, sources_fitted=True).fit(train)
    popularity = fit_popularity(train)
    served = ModelFolder(Path(out_dir), "", config, split.item_ids, ranker or model, model, popularity, None)
    users = sample_test_users(split, evaluation_users, config.seed)
    evaluation = evaluation_record(evaluate_folder(served, split, users), served.name, len(users))
    write_model_folder(out_dir, model, split.item_ids, _interactions(events), config, popularity, ranker, vectors, evaluation, index, intent)
    return model


def _sources(model: SASRec, data: TrainData, config: LongtailConfig) -> dict[str, Recommender]:
    """The fusion ranker's default sources: the given SASRec, the closed-form ones fitted on `data`."""
    return {name: model if name == "sasrec" else make_recommender(name, config.recommend).fit(data) for name in DEFAULT_SOURCES}


def _folder_ranker(
    directory: Path, model: SASRec, item_ids: list[str], events: pl.DataFrame, items: pl.DataFrame, vectors: np.ndarray, config: LongtailConfig
) -> FusionRanker:
    """The folder's booster around `model`, its closed-form sources refit on `events` over the catalogue `item_ids`."""
    data = TrainData(len(item_ids), user_sequences(item_ids, events)[1], None, vectors, config.seed)
    return FusionRanker.restore(directory, data, config.recommend, items, item_ids, {"sasrec": model})


def load_ranker(directory: str | Path, items: pl.DataFrame, config: LongtailConfig, encode: ItemEncoder) -> FusionRanker:
    """The fusion ranker a model folder holds, ready to score: its SASRec, booster, and sources refit on its history."""
    directory = Path(directory)
    if not (directory / BOOSTER_FILE).is_file():
        raise LongtailError(f"{directory}: no fusion ranker; train the folder with fusion (longtail train --fusion)")
    item_ids: list[str] = load_json(directory / ITEMS_FILE)
    history = pl.read_parquet(directory / HISTORY_FILE)
    return _folder_ranker(directory, SASRec.load(directory), item_ids, history, items, encode(item_ids), config)


def _old_model_scorer(model: SASRec | FusionRanker, known: int, n_items: int) -> Callable[[Sequence[np.ndarray]], np.ndarray]:
    """The fitted model's scores over a grown catalogue: it reads only the `known` items and never ranks a new one."""

    def score(histories: Sequence[np.ndarray]) -> np.ndarray:
        scores = np.full((len(histories), n_items), -np.inf, dtype=np.float32)
        scores[:, :known] = model.score([h[h < known] for h in histories])
        return scores

    return score


def _judge(scorer: Callable[[Sequence[np.ndarray]], np.ndarray], histories: list[np.ndarray], targets: list[np.ndarray], config: LongtailConfig) -> Evaluation:
    """Full-ranking metrics of one scorer on the held-out newest events (no segments: only the guard metric matters)."""
    counts = np.bincount(np.concatenate(histories), minlength=1) if histories else np.zeros(1, np.int64)
    return evaluate_scorer(scorer, histories, targets, counts, config.recommend, segments=False)


def _verdict(before: Evaluation, after: Evaluation, config: LongtailConfig) -> dict:
    """The guard: old and new metric, their difference with a paired-bootstrap interval, and whether new passes."""
    settings = config.incremental
    old_value, new_value = before.metrics[settings.metric], after.metrics[settings.metric]
    return {
        "metric": settings.metric,
        "old": old_value,
        "new": new_value,
        "difference": new_value - old_value,
        "tolerance": settings.tolerance,
        "new_minus_old_ci": paired_bootstrap(
            after.per_user["all"][settings.metric], before.per_user["all"][settings.metric], config.recommend.bootstrap_samples, config.seed
        ),
        "passed": bool(new_value >= old_value - settings.tolerance),
    }


def _update_ranker(
    directory: Path,
    old: SASRec,
    candidate: SASRec,
    item_ids: list[str],
    history: pl.DataFrame,
    context: pl.DataFrame,
    lists: list[np.ndarray],
    histories: list[np.ndarray],
    targets: list[np.ndarray],
    items: pl.DataFrame,
    vectors: np.ndarray,
    config: LongtailConfig,
) -> tuple[FusionRanker, dict]:
    """Warm-start the folder's fusion ranker and judge it against the old one on the same held-out events.

    Old: the saved booster over the old SASRec, its closed-form sources fit on the folder's history. New: the same
    booster over the warm-started SASRec and sources refit on the history plus the trained-on new events, boosted
    `incremental.ranker_trees` more trees on `lists` (each trained user's sequence; its last item is the label).
    """
    started = time.perf_counter()
    known = old.n_items_
    previous = _folder_ranker(directory, old, item_ids[:known], history, items, vectors[:known], config)
    before = _judge(_old_model_scorer(previous, known, len(item_ids)), histories, targets, config)
    ranker = _folder_ranker(directory, candidate, item_ids, context, items, vectors, config)
    ranker.warm_start(TrainData(len(item_ids), [s[:-1] for s in lists], [s[-1:] for s in lists], vectors, config.seed), config.incremental.ranker_trees)
    after = _judge(ranker.score, histories, targets, config)
    part = {
        **_verdict(before, after, config),
        "trees": ranker.booster_.num_trees(),
        "training_lists": ranker.training_groups_,
        "candidate_recall": round(ranker.candidate_recall_, 4),
        "seconds": round(time.perf_counter() - started, 2),
    }
    return ranker, part


def update_model_folder(
    directory: str | Path, new_events: pl.DataFrame, items: pl.DataFrame, config: LongtailConfig, encode: ItemEncoder | None = None
) -> dict:
    """Warm-start the folder's model (and fusion ranker) on `new_events`; replace them only if not worse on the newest events.

    The newest new events (see `recent_slice`) are held out; the rest train a copy of the model, starting from its
    saved weights, for `incremental.epochs` passes. Both models then rank the whole grown catalogue for each
    held-out event, reading the same histories (every earlier event). A model passes when its metric is at least
    the old one's minus `incremental.tolerance`. A folder with a fusion ranker also warm-starts the ranker (see
    `_update_ranker`) and judges it the same way; as its features come from SASRec, the two are replaced together,
    only when both pass, else the folder keeps both old ones. Either way the decision (the sequential verdict, and
    the ranker's under `ranker`) is written to `update.json` (and appended to `updates.jsonl`) and returned.
    Item text vectors come from `encode`, else from the encoder `config.encode` selects.
    """
    directory = Path(directory)
    settings = config.incremental
    started = time.perf_counter()
    if not (directory / MODEL_FILE).is_file():
        raise LongtailError(f"{directory}: no {MODEL_FILE}; train a model folder first (longtail train)")
    fusion = (directory / BOOSTER_FILE).is_file()
    old_ids: list[str] = load_json(directory / ITEMS_FILE)
    history = pl.read_parquet(directory / HISTORY_FILE)
    to_train, recent = recent_slice(new_events, settings)
    if recent.is_empty():
        raise LongtailError("the new events hold no interaction to judge the update on")
    known = set(old_ids)
    added = [i for i in dict.fromkeys([*to_train["item_id"].to_list(), *recent["item_id"].to_list(), *items["item_id"].to_list()]) if i not in known]
    item_ids = old_ids + added
    context = pl.concat([history, to_train])
    context_users, context_sequences = user_sequences(item_ids, context)
    by_user = dict(zip(context_users, context_sequences, strict=True))
    recent_users, recent_targets = user_sequences(item_ids, recent)
    empty = np.zeros(0, dtype=np.int64)
    histories = [by_user.get(user, empty) for user in recent_users]
    targets = [np.unique(t) for t in recent_targets]

    old = SASRec.load(directory)
    before = _judge(_old_model_scorer(old, old.n_items_, len(item_ids)), histories, targets, config)
    if settings.metric not in before.metrics:
        raise LongtailError(f"incremental.metric '{settings.metric}' is not measured; choose one of {', '.join(before.metrics)}")
    candidate = SASRec.load(directory)
    candidate.config = candidate.config.model_copy(update={"epochs": settings.epochs, "lr": settings.lr})
    new_per_user = dict(to_train["user_id"].value_counts().iter_rows())
    trained_users = [user for user in context_users if user in new_per_user]
    training = [by_user[user] for user in trained_users]
    learn_from = [len(by_user[user]) - new_per_user[user] for user in trained_users]  # older events are context only
    encode = encode or catalogue_encoder(items, config.encode)
    vectors = _vectors(encode, item_ids, candidate.config.text_init != "none", fusion)
    candidate.partial_fit(TrainData(len(item_ids), training, None, vectors, config.seed), learn_from=learn_from)
    after = _judge(candidate.score, histories, targets, config)
    sequential = _verdict(before, after, config)
    ranker, ranker_part = None, None
    if fusion:
        ranker, ranker_part = _update_ranker(directory, old, candidate, item_ids, history, context, training, histories, targets, items, vectors, config)  # type: ignore[arg-type]

    keep = sequential["passed"] and (ranker_part is None or ranker_part["passed"])
    decision = {
        "decision": "replaced" if keep else "rolled_back",
        **sequential,
        "evaluated_users": len(recent_users),
        "new_events": new_events.height,
        "trained_events": to_train.height,
        "held_out_events": recent.height,
        "trained_users": len(training),
        "items_before": len(old_ids),
        "items_added": len(added),
        "seconds": round(time.perf_counter() - started, 2),
        "decided_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": {"incremental": settings.model_dump(), "sequential": candidate.config.model_dump(), "seed": config.seed},
    }
    if ranker_part is not None:
        decision["ranker"] = ranker_part
    log.info(
        "incremental update %s: %s old %.4f new %.4f (tolerance %.4f)%s",
        decision["decision"],
        settings.metric,
        sequential["old"],
        sequential["new"],
        settings.tolerance,
        "" if ranker_part is None else f"; ranker old {ranker_part['old']:.4f} new {ranker_part['new']:.4f}",
    )
    if keep:
        seen = pl.concat([history, _interactions(new_events)])
        popularity = fit_popularity(TrainData(len(item_ids), user_sequences(item_ids, seen)[1]))
        index = directory / INDEX_DIR if (directory / INDEX_DIR).is_dir() else None
        intent = directory / INTENT_FILE if (directory / INTENT_FILE).is_file() else None
        # The guard's decision is the evaluation the updated models were accepted with.
        write_model_folder(
            directory, candidate, item_ids, seen, config, popularity, ranker, vectors, decision, index, intent, carry=(DECISION_FILE, DECISION_LOG)
        )
    save_json(directory / DECISION_FILE, decision)
    with (directory / DECISION_LOG).open("a", encoding="utf-8") as journal:
        journal.write(json.dumps(decision) + "\n")
    return decision
