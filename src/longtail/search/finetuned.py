"""The fine-tuned dense cosine as a learned-ranker feature: fine-tuned MiniLM encoders (one per fold of the training
queries) with their vectors of every catalogue row, saved in the index folder; a pair's feature is the mean of the
encoders' cosines, the score a query none of them trained on gets."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from longtail.core.config import EncodeConfig
from longtail.core.errors import LongtailError
from longtail.encode.encoder import TextEncoder, encode_queries
from longtail.encode.factory import build_encoder

FINETUNED_DIR = "finetuned"
FINETUNED_FEATURE = "dense_finetuned_cosine"
# Each model's files sit in `fold-<k>/`, its item vectors (catalogue row order) in `fold-<k>.npy`.
_MODEL = "fold-{}"
_VECTORS = "fold-{}.npy"


class FinetunedCosine:
    """Fine-tuned encoders and each one's L2-normalised vectors of the catalogue rows."""

    def __init__(self, directories: Sequence[Path], encoders: Sequence[TextEncoder], vectors: Sequence[np.ndarray]) -> None:
        if not encoders or not (len(directories) == len(encoders) == len(vectors)):
            raise LongtailError(f"fine-tuned cosine needs one folder and one vector matrix per encoder, got {len(directories)}/{len(encoders)}/{len(vectors)}")
        rows = {len(matrix) for matrix in vectors}
        if len(rows) != 1:
            raise LongtailError(f"fine-tuned encoders' vector matrices cover different numbers of catalogue rows: {sorted(rows)}")
        self.directories = [Path(directory) for directory in directories]
        self.encoders = list(encoders)
        self.vectors = [np.ascontiguousarray(matrix, dtype=np.float32) for matrix in vectors]

    @classmethod
    def build(cls, directories: Sequence[str | Path], texts: Sequence[str], cache_dir: str | Path | None = None) -> FinetunedCosine:
        """Load fine-tuned MiniLM folders (saved by `longtail finetune` or `train_or_load_folds`) and encode the catalogue texts with each."""
        encoders = [
            build_encoder(EncodeConfig(model_path=str(directory), cache_dir=None if cache_dir is None else str(cache_dir))) for directory in directories
        ]
        return cls([Path(d) for d in directories], encoders, [encoder.encode(texts) for encoder in encoders])

    @classmethod
    def open(cls, folder: str | Path) -> FinetunedCosine:
        """The encoders and vectors an index folder's `finetuned/` holds (written by `save`)."""
        folder = Path(folder)
        directories = sorted((path for path in folder.glob("fold-*") if path.is_dir()), key=lambda path: int(path.name.split("-")[1]))
        if not directories:
            raise LongtailError(f"{folder}: no fine-tuned encoder folders (fold-0, fold-1, ...)")
        vectors = []
        for number in range(len(directories)):
            path = folder / _VECTORS.format(number)
            if not path.is_file():
                raise LongtailError(f"{path}: missing item vectors of fine-tuned encoder {number}")
            vectors.append(np.load(path))
        encoders = [build_encoder(EncodeConfig(model_path=str(directory), cache_dir=None)) for directory in directories]
        return cls(directories, encoders, vectors)

    def save(self, folder: str | Path) -> None:
        """Copy each encoder's files and write its vectors into `folder` (an index folder's `finetuned/`)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for number, (directory, matrix) in enumerate(zip(self.directories, self.vectors, strict=True)):
            target = folder / _MODEL.format(number)
            if directory.resolve() != target.resolve():
                shutil.copytree(directory, target, dirs_exist_ok=True)
            np.save(folder / _VECTORS.format(number), matrix)

    def add(self, texts: Sequence[str]) -> None:
        """Encode items appended to the catalogue (their rows follow the existing ones)."""
        self.vectors = [np.vstack([matrix, encoder.encode(texts)]) for matrix, encoder in zip(self.vectors, self.encoders, strict=True)]

    def query_vectors(self, queries: Sequence[str]) -> list[np.ndarray]:
        """Each encoder's vectors of the queries (one matrix per encoder)."""
        return [encode_queries(encoder, queries) for encoder in self.encoders]

    def per_model(self, rows: np.ndarray, query_vectors: Sequence[np.ndarray]) -> np.ndarray:
        """A (models, len(rows)) matrix: each encoder's cosine of one query (its vector per encoder) with the rows."""
        rows = np.asarray(rows, dtype=np.int64)
        return np.vstack([matrix[rows] @ np.asarray(vector, dtype=np.float32).reshape(-1) for matrix, vector in zip(self.vectors, query_vectors, strict=True)])

    def scores(self, query: str, rows: np.ndarray) -> np.ndarray:
        """The feature of rows for a query: the mean of the encoders' cosines."""
        return self.per_model(rows, [vectors[0] for vectors in self.query_vectors([query])]).mean(axis=0)
