"""One model folder, one scorer: what `longtail train` writes and what `serve`, `evaluate --model` and `replay` load.

The folder holds every part as safetensors (tensors) or JSON/YAML/Parquet/text (metadata): the sequential model at
the top (`model.safetensors`, `sequential.json`, `recommender.json`; what `longtail update` warm-starts), the fusion
ranker with every candidate source it was fitted with (`fusion/`), the popularity the cold-user fallback ranks by
(`popularity/`), the items' text vectors (`item_vectors.safetensors`), the catalogue (`items.json`), the events seen
(`history.parquet`), the config, the evaluation it was accepted with (`evaluation.json`), optionally a search index
(`index/`) and the behaviour-intent model (`intent.json`), and `folder.json` (its version). Loading refuses any file that
is a pickle or of an unexpected type, so a folder from elsewhere cannot run code. `ModelFolder.score` is the one scorer: the evaluation and the API call it.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from longtail.core.artifacts import atomic_folder, load_json, save_json
from longtail.core.config import CONFIG_FILENAME, LongtailConfig, load_config, save_config
from longtail.core.errors import LongtailError
from longtail.data.splits import Split, leave_one_out
from longtail.evaluate.harness import Evaluation, evaluate_split
from longtail.models.base import Recommender, TrainData, mask_history, top_k
from longtail.models.fusion import FusionRanker
from longtail.models.intent import IntentModel
from longtail.models.popularity import Popularity
from longtail.models.sequential import SASRec
from longtail.recommend.longtail import LongTailReranker

FOLDER_FILE = "folder.json"
ITEMS_FILE = "items.json"
HISTORY_FILE = "history.parquet"
VECTORS_FILE = "item_vectors.safetensors"
EVALUATION_FILE = "evaluation.json"
INTENT_FILE = "intent.json"
FUSION_DIR = "fusion"
POPULARITY_DIR = "popularity"
INDEX_DIR = "index"
# Metadata, tensors, tables, LightGBM's text booster; and in a search index, tantivy segments, numpy arrays (read
# without pickle) and the faiss index. Anything else (.pt, .pkl, .joblib, .bin ...) is refused.
ALLOWED_SUFFIXES = frozenset(
    {
        ".json",
        ".jsonl",
        ".yaml",
        ".safetensors",
        ".parquet",
        ".txt",
        ".npy",
        ".faiss",
        ".idx",
        ".pos",
        ".term",
        ".store",
        ".fast",
        ".fieldnorm",
        ".del",
        ".lock",
    }
)
_PICKLE_PROTOCOLS = {bytes([0x80, protocol]) for protocol in range(2, 6)}
_ZIP_MAGIC = b"PK\x03\x04"  # torch.save writes a zip of pickles


class ModelFolderError(LongtailError):
    """A model folder is missing a part, or holds a file that loading would not trust."""


def verify_folder(directory: str | Path) -> None:
    """Refuse a folder holding a pickle (by name or by its first bytes), a zip, a link or a file of an unexpected type."""
    directory = Path(directory)
    if not (directory / FOLDER_FILE).is_file():
        raise ModelFolderError(f"{directory}: not a model folder (no {FOLDER_FILE}); write one with `longtail train`")
    for path in sorted(directory.rglob("*")):
        if path.is_symlink():
            raise ModelFolderError(f"{path}: a link in a model folder is refused; copy the file in instead")
        if path.is_dir():
            continue
        with path.open("rb") as handle:
            head = handle.read(4)
        if head[:2] in _PICKLE_PROTOCOLS or head == _ZIP_MAGIC:
            raise ModelFolderError(
                f"{path}: a pickle or zip archive (e.g. torch.save) could run code when loaded; "
                "models are saved as safetensors + JSON; retrain or re-save the folder"
            )
        if path.suffix.lower() not in ALLOWED_SUFFIXES and not path.name.startswith("."):
            raise ModelFolderError(
                f"{path}: unexpected file type '{path.suffix or path.name}' in a model folder; allowed: {', '.join(sorted(ALLOWED_SUFFIXES))}"
            )


def write_model_folder(
    directory: str | Path,
    sequential: SASRec,
    item_ids: list[str],
    history: pl.DataFrame,
    config: LongtailConfig,
    popularity: Popularity,
    ranker: FusionRanker | None = None,
    vectors: np.ndarray | None = None,
    evaluation: dict[str, Any] | None = None,
    index: str | Path | None = None,
    intent: str | Path | None = None,
    carry: Sequence[str] = (),
) -> str:
    """Write every part into a staging folder and swap it in whole (a reader never sees half); the new version id."""
    from safetensors.numpy import save_file

    version = f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
    with atomic_folder(directory, carry=carry) as staging:
        sequential.save(staging)
        popularity.save(staging / POPULARITY_DIR)
        if ranker is not None:
            ranker.save_booster(staging)  # the booster alone, for `longtail update`'s warm start
            ranker.save(staging / FUSION_DIR)
        if vectors is not None:
            save_file({"text": np.ascontiguousarray(vectors, dtype=np.float32)}, staging / VECTORS_FILE)
        if index is not None:
            shutil.copytree(index, staging / INDEX_DIR)
        if intent is not None:
            shutil.copyfile(intent, staging / INTENT_FILE)
        save_json(staging / ITEMS_FILE, item_ids, indent=None)
        history.write_parquet(staging / HISTORY_FILE)
        save_config(config, staging)
        if evaluation is not None:
            save_json(staging / EVALUATION_FILE, evaluation)
        save_json(
            staging / FOLDER_FILE,
            {
                "version": version,
                "recommender": "fusion" if ranker is not None else "sasrec",
                "items": len(item_ids),
                "written_at": datetime.now(UTC).isoformat(timespec="seconds"),
            },
        )
    return version


@dataclass
class ModelFolder:
    """A loaded model folder: the recommender it serves (fusion, else the sequential model) behind the long-tail knob,
    the cold-user fallback, and the catalogue mapping item ids to the models' indices."""

    directory: Path
    version: str
    config: LongtailConfig
    item_ids: list[str]
    recommender: Recommender
    sequential: SASRec
    popularity: Popularity
    evaluation: dict[str, Any] | None
    intent: IntentModel | None = None

    def __post_init__(self) -> None:
        self.index_of = {item_id: index for index, item_id in enumerate(self.item_ids)}
        self.counts_by_id = dict(zip(self.item_ids, self.popularity.counts_.astype(int).tolist(), strict=True))
        settings = self.config.recommend
        self.weight = settings.longtail_weight
        self._reranker = LongTailReranker(self.recommender.score, self.popularity.counts_, self.weight, settings.longtail_candidates)

    @property
    def name(self) -> str:
        """What answers: the recommender's name and the knob when it is on."""
        return self.recommender.name + (f"+longtail({self.weight:g})" if self.weight > 0 else "")

    def score(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        """The served scores: the recommender's, re-ranked by the long-tail knob when `recommend.longtail_weight` > 0."""
        return self._reranker.score(histories) if self.weight > 0 else self.recommender.score(histories)

    def recommend(self, histories: Sequence[np.ndarray], k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k item indices per user (never a history item) and their scores."""
        scores = mask_history(self.score(histories), histories)
        top = top_k(scores, k)
        return top, np.take_along_axis(scores, top, axis=1)

    def popular(self, k: int, exclude: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The cold-user fallback: the k most popular items (training interactions), none of `exclude`."""
        scores = mask_history(self.popularity.score([exclude]), [exclude])
        top = top_k(scores, k)
        return top[0], scores[0, top[0]]

    def similar_items(self, item: int, k: int) -> np.ndarray:
        """Items whose learned vectors are closest to `item`'s (the sequential model's item table)."""
        return self.sequential.similar_items(item, k)

    def sequence(self, item_ids: Sequence[str]) -> np.ndarray:
        """A time-ordered list of item ids as the models' indices; items the model does not know are left out."""
        return np.array([self.index_of[i] for i in item_ids if i in self.index_of], dtype=np.int64)


def load_model_folder(directory: str | Path) -> ModelFolder:
    """Verify the folder (no pickle, no unexpected file) and load the recommender it serves."""
    directory = Path(directory)
    verify_folder(directory)
    manifest = load_json(directory / FOLDER_FILE)
    recommender = Recommender.load(directory / FUSION_DIR) if (directory / FUSION_DIR).is_dir() else SASRec.load(directory)
    # The fusion ranker's sequential source is the folder's sequential model: use that copy rather than load it twice.
    source = recommender.sources.get("sasrec") if isinstance(recommender, FusionRanker) else recommender
    sequential = source if isinstance(source, SASRec) else SASRec.load(directory)
    popularity = Recommender.load(directory / POPULARITY_DIR)
    if not isinstance(popularity, Popularity):
        raise ModelFolderError(f"{directory / POPULARITY_DIR}: holds a '{popularity.name}' model, not popularity")
    evaluation = load_json(directory / EVALUATION_FILE) if (directory / EVALUATION_FILE).is_file() else None
    intent = IntentModel.load(directory / INTENT_FILE) if (directory / INTENT_FILE).is_file() else None
    return ModelFolder(
        directory,
        manifest["version"],
        load_config(directory / CONFIG_FILENAME),
        load_json(directory / ITEMS_FILE),
        recommender,
        sequential,
        popularity,
        evaluation,
        intent,
    )


def folder_split(directory: str | Path) -> Split:
    """The leave-one-out split of the folder's history over its catalogue: the split the folder was trained on."""
    directory = Path(directory)
    item_ids: list[str] = load_json(directory / ITEMS_FILE)
    return leave_one_out(pl.DataFrame({"item_id": item_ids}), pl.read_parquet(directory / HISTORY_FILE))


def sample_test_users(split: Split, users: int | None, seed: int) -> np.ndarray:
    """Indices of `users` random users that have a test item (all of them when None), in order."""
    evaluated = np.array([u for u, target in enumerate(split.test) if len(target)], dtype=np.int64)
    if users is None or users >= len(evaluated):
        return evaluated
    return np.sort(np.random.default_rng(seed).choice(evaluated, size=users, replace=False))


def evaluate_folder(folder: ModelFolder, split: Split, users: np.ndarray | None = None) -> Evaluation:
    """Full-ranking test metrics of the folder's served scorer on its split (optionally only some users)."""
    return evaluate_split(folder.score, split if users is None else split.subset(users), "test", folder.config.recommend)


def evaluation_record(evaluation: Evaluation, folder_name: str, users: int) -> dict[str, Any]:
    """The JSON record of an evaluation: model, users and overall and per-segment metrics."""
    return {"model": folder_name, "protocol": "loo", "users": users, **evaluation.summary()}


def fit_popularity(data: TrainData) -> Popularity:
    """The one popularity: training interactions per item, the cold-user fallback and the long-tail knob's counts."""
    return Popularity().fit(data)
