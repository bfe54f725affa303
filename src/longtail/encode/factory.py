"""The one place text encoders are built: the `encode` config section in, a (cached) encoder out."""

from __future__ import annotations

import hashlib
from pathlib import Path

from longtail.core.config import EncodeConfig
from longtail.core.errors import ConfigError
from longtail.encode.encoder import (
    DEFAULT_ENCODER,
    ENCODERS,
    FAST_ENCODER,
    MULTILINGUAL_ENCODER,
    EmbeddingCache,
    MultilingualE5Encoder,
    OnnxMiniLMEncoder,
    SentenceTransformerEncoder,
    TextEncoder,
)


def _path_tag(model_path: str | Path) -> str:
    """A short stable tag of a fine-tuned model's folder, so its vectors get their own cache folder."""
    return hashlib.sha1(str(Path(model_path).resolve()).encode("utf-8")).hexdigest()[:10]


def _model(settings: EncodeConfig) -> TextEncoder:
    """The bare encoder `encode.encoder` names; `encode.model_path` loads a fine-tuned MiniLM saved by Longtail."""
    name, model_path, batch_size = settings.encoder, settings.model_path, settings.batch_size
    if model_path is not None and name != DEFAULT_ENCODER:
        raise ConfigError(f"encode.encoder '{name}' cannot load a fine-tuned model; use '{DEFAULT_ENCODER}' with encode.model_path")
    if name == DEFAULT_ENCODER:
        return SentenceTransformerEncoder(model_path, name if model_path is None else f"{name}-{_path_tag(model_path)}", batch_size)
    if name == FAST_ENCODER:
        return OnnxMiniLMEncoder(name, batch_size)
    if name == MULTILINGUAL_ENCODER:
        return MultilingualE5Encoder(name, batch_size)
    raise ConfigError(f"unknown encode.encoder '{name}'; available: {', '.join(ENCODERS)}")


def build_encoder(settings: EncodeConfig) -> TextEncoder:
    """The encoder the config selects, batching by `encode.batch_size`, behind the cache in `encode.cache_dir` (unless null)."""
    model = _model(settings)
    return EmbeddingCache(settings.cache_dir, model) if settings.cache_dir is not None else model
