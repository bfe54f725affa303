"""A LightGBM text model compiled to native code with lleaves, cached by the model file's hash, for fast scoring."""

from __future__ import annotations

import hashlib
import logging
import os
import platform
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import numpy as np

log = logging.getLogger("longtail.models")

# Everything the compiled library depends on besides the model text: lleaves emits code for this CPU with this LLVM.
_TOOLCHAIN = ("lleaves", "llvmlite")

TreePredictor = Callable[[np.ndarray], np.ndarray]


def _cache_key(model_text: str) -> str:
    """The model text's SHA-256 with the compiler versions and the machine, so no library outlives what it was built from."""
    digest = hashlib.sha256(model_text.encode())
    for package in _TOOLCHAIN:
        digest.update(f"|{package}={metadata.version(package)}".encode())
    digest.update(f"|{platform.machine()}|{platform.processor()}".encode())
    return digest.hexdigest()


def compile_trees(model_text: str, cache_dir: str | Path) -> TreePredictor | None:
    """A one-thread predictor for a LightGBM text model (the scores of LightGBM's `predict`, to ~1e-15), compiled once
    into `cache_dir/<hash>.so` beside the model text it was built from; None when lleaves is not installed or fails."""
    try:
        import lleaves
    except ImportError:
        log.info("lleaves is not installed: the fusion ranker scores with LightGBM")
        return None
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    key = _cache_key(model_text)
    model_file, library = cache_dir / f"{key}.txt", cache_dir / f"{key}.so"
    if not model_file.is_file():
        staged = cache_dir / f"{key}.txt.{os.getpid()}.partial"
        staged.write_text(model_text, encoding="utf-8")
        staged.replace(model_file)
    model = lleaves.Model(model_file=str(model_file))
    try:
        if library.is_file():
            model.compile(cache=str(library))
        else:
            # Written under a temporary name and renamed: a half-written library (a crash, a second server compiling)
            # is never loaded.
            partial = cache_dir / f"{key}.so.{os.getpid()}.partial"
            model.compile(cache=str(partial))
            partial.replace(library)
    # AttributeError: lleaves 1.3 on an llvmlite newer than 0.44, whose legacy pass manager it calls is gone.
    except (OSError, RuntimeError, ValueError, AttributeError) as error:
        log.warning("could not compile %s with lleaves (%s): scoring with LightGBM", model_file, error)
        return None

    def predict(features: np.ndarray) -> np.ndarray:
        # One thread: a server's concurrent requests already fill the cores (see serve.compute_threads).
        return model.predict(np.ascontiguousarray(features, dtype=np.float64), n_jobs=1)

    return predict
