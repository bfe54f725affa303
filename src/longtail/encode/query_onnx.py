"""MiniLM's query vectors from an fp32 ONNX copy of the served weights run by ONNX Runtime: exported once, cached by
the weights' hash, checked against torch at load; torch answers whenever the copy cannot be made or does not agree."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from longtail.encode.encoder import SentenceTransformerEncoder

if TYPE_CHECKING:
    import torch

log = logging.getLogger("longtail.encode")

# The vectors the copy must reproduce: torch's for these probes, within TOLERANCE (cosine scores differ by less).
PROBES = ["nitrile gloves", "a much longer query about borosilicate glass beakers for the lab", "x"]
TOLERANCE = 1e-5
# The exported file depends on the exporter as well as on the weights.
_EXPORTER = ("torch", "onnx")
# What the BERT transformer reads; the tokenizer's output also carries entries that are not tensors.
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def _transformer(encoder: SentenceTransformerEncoder) -> torch.nn.Module:
    """The BERT network inside the sentence-transformers model."""
    import torch

    network = getattr(encoder.model[0], "auto_model", None)
    if not isinstance(network, torch.nn.Module):
        raise ValueError(f"encoder {encoder.name}: its first module holds no transformer network (auto_model)")
    return network


def weights_key(encoder: SentenceTransformerEncoder) -> str:
    """SHA-256 of the transformer's weights (names, shapes, bytes) and the exporter's versions."""
    import torch

    digest = hashlib.sha256()
    for name, tensor in _transformer(encoder).state_dict().items():
        digest.update(f"{name}|{tuple(tensor.shape)}|{tensor.dtype}|".encode())
        digest.update(tensor.detach().to(torch.float32).contiguous().numpy().tobytes())
    for package in _EXPORTER:
        digest.update(f"|{package}={metadata.version(package)}".encode())
    return digest.hexdigest()


def _export(encoder: SentenceTransformerEncoder, target: Path) -> None:
    """Write the transformer (token ids in, last hidden states out; any batch size and length) as ONNX to `target`."""
    import torch

    class _Hidden(torch.nn.Module):
        def __init__(self, transformer: torch.nn.Module) -> None:
            super().__init__()
            self.transformer = transformer

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
            return self.transformer(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state

    features = encoder.tokenize(PROBES)
    # Written under a temporary name and renamed: a half-written file (a crash, a second server exporting) is never loaded.
    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
    torch.onnx.export(
        _Hidden(_transformer(encoder)).eval(),
        tuple(features[name] for name in _INPUTS),
        str(partial),
        input_names=list(_INPUTS),
        output_names=["hidden"],
        dynamic_axes={name: {0: "batch", 1: "tokens"} for name in (*_INPUTS, "hidden")},
        opset_version=17,
        dynamo=False,
    )
    partial.replace(target)


class OnnxQueryEncoder:
    """Wraps a MiniLM encoder: queries go through ONNX Runtime (one thread, no spinning; the whole pass releases the
    interpreter lock, so concurrent batches use several cores), item texts through the wrapped encoder. Build it with
    `onnx_query_encoder`, which verifies the copy first."""

    def __init__(self, encoder: SentenceTransformerEncoder, model_file: Path) -> None:
        import onnxruntime

        self.encoder = encoder
        self.name = encoder.name
        self.dimension = encoder.dimension
        self.model_file = model_file
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        # Busy-waiting worker threads steal the CPU from everything else on a small shared machine.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = onnxruntime.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"])

    def encode(self, texts: Sequence[str], batch_size: int | None = None, show_progress: bool = False) -> np.ndarray:
        """Item texts: the wrapped encoder's vectors."""
        return self.encoder.encode(texts, batch_size, show_progress)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised mean-pooled query vectors (the model's own pooling), padded to the batch's longest query only."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        tokens = self.encoder.tokenize(list(texts))
        features = {name: tokens[name].numpy() for name in _INPUTS}
        hidden = self.session.run(None, features)[0]
        weights = features["attention_mask"][:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        return (pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def minilm_inside(encoder: object) -> SentenceTransformerEncoder | None:
    """The sentence-transformers encoder an encoder wraps (through caches, each holding the next as `.encoder`), if any."""
    while not isinstance(encoder, SentenceTransformerEncoder):
        encoder = getattr(encoder, "encoder", None)
        if encoder is None:
            return None
    return encoder


def onnx_query_encoder(encoder: SentenceTransformerEncoder, cache_dir: str | Path) -> OnnxQueryEncoder | None:
    """The ONNX query path for `encoder`, exported into `cache_dir/<weights hash>.onnx` unless already there; None (the
    caller keeps torch) when the model is not mean-pooled and normalised, the export fails, or the vectors differ."""
    modules = [type(module).__name__ for module in encoder.model]
    pooling = getattr(encoder.model[1], "pooling_mode", None) if len(modules) > 1 else None
    if modules != ["Transformer", "Pooling", "Normalize"] or pooling != "mean":
        log.info("query encoder %s is %s (pooling %s), not mean-pooled MiniLM: queries stay on torch", encoder.name, modules, pooling)
        return None
    cache_dir = Path(cache_dir)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        model_file = cache_dir / f"{weights_key(encoder)}.onnx"
        if not model_file.is_file():
            _export(encoder, model_file)
        onnx_encoder = OnnxQueryEncoder(encoder, model_file)
        difference = float(np.abs(onnx_encoder.encode_queries(PROBES) - encoder.encode_queries(PROBES)).max())
    # ImportError: no onnx package to export with; the others: an exporter or runtime that cannot handle this model.
    except (ImportError, OSError, RuntimeError, ValueError) as error:
        log.warning("could not export query encoder %s to ONNX in %s (%s): queries stay on torch", encoder.name, cache_dir, error)
        return None
    if difference > TOLERANCE:
        log.warning("ONNX query vectors of %s differ from torch's by %.2g (> %g): queries stay on torch", model_file, difference, TOLERANCE)
        return None
    return onnx_encoder
