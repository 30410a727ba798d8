"""The training loop for one stage: the same loop for every stage and every curriculum."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from tqdm.auto import tqdm
from transformers import get_constant_schedule_with_warmup, get_cosine_schedule_with_warmup

from medzoo.core.build import as_dict
from medzoo.core.errors import RecipeError, TrainingError
from medzoo.core.model import MultimodalModel
from medzoo.core.plugin_manager import components
from medzoo.core.training.batching import length_grouped_batches, mixture_indices
from medzoo.core.training.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from medzoo.core.training.metrics_log import MetricsLog
from medzoo.core.training.stage_data import StageData, assemble_batch, load_stage_data

SCHEDULES = {"cosine": get_cosine_schedule_with_warmup, "constant": get_constant_schedule_with_warmup}


@dataclass
class StageResult:
    name: str
    steps: int
    first_loss: float
    last_loss: float
    seconds: float
    samples: int


def apply_tuning(model: MultimodalModel, tuning: Any) -> dict[str, str]:
    """Apply each module's strategy; LoRA on the language model targets the inner HF model."""
    spec = as_dict(tuning)
    options = spec.get("options") or {}
    chosen = {}
    for name in ("vision", "connector", "language"):
        strategy_name = spec.get(name, "frozen")
        strategy = components().get("tuning", strategy_name).factory(**(options.get(name) or {}))
        module = model.language.model if name == "language" else getattr(model, name)
        strategy.apply(module, name)
        chosen[name] = strategy_name
    return chosen


class EpochPlan:
    """Micro-batches of every epoch, derived from the seed alone, so a position is just an index."""

    def __init__(self, data: StageData, micro_batch_size: int, seed: int, group_by_length: bool) -> None:
        self.data = data
        self.micro_batch_size = micro_batch_size
        self.seed = seed
        self.group_by_length = group_by_length
        self._cache: dict[int, list[list[int]]] = {}
        self.offsets = [sum(data.sizes[:i]) for i in range(len(data.sizes))]
        self.per_epoch = len(self._epoch(0))

    def _epoch(self, epoch: int) -> list[list[int]]:
        if epoch not in self._cache:
            pairs = mixture_indices(self.data.sizes, self.data.weights, self.seed + epoch)
            samples = [self.offsets[d] + i for d, i in pairs]
            lengths = [len(self.data.samples[s]) for s in samples]
            batches = length_grouped_batches(lengths, self.micro_batch_size, self.seed + epoch, self.group_by_length)
            self._cache = {epoch: [[samples[i] for i in batch] for batch in batches]}
        return self._cache[epoch]

    def micro_batch(self, index: int) -> list[int]:
        return self._epoch(index // self.per_epoch)[index % self.per_epoch]


def build_optimizer(model: torch.nn.Module, stage: Any) -> torch.optim.Optimizer:
    parameters = [p for p in model.parameters() if p.requires_grad]
    if not parameters:
        raise RecipeError(f"stage {stage.name!r}: every module is frozen; nothing to train")
    config = stage.optimizer
    if config.name != "adamw":
        raise RecipeError(f"stages.{stage.name}.optimizer.name: unknown optimizer {config.name!r}; expected 'adamw'")
    fused = bool(config.fused) and torch.cuda.is_available()
    return torch.optim.AdamW(
        parameters, lr=config.lr, weight_decay=config.weight_decay, betas=tuple(config.betas), fused=fused or None
    )


def train_stage(
    model: MultimodalModel,
    stage: Any,
    stage_dir: Path,
    accelerator,
    on_bad_record: str = "skip",
    resume: bool = False,
    echo=print,
) -> StageResult:
    """Train ``model`` in place for one stage; checkpoints go to ``stage_dir/checkpoints``."""
    stage_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(stage.seed)
    tuning = apply_tuning(model, stage.tuning)
    model.trained_modules = getattr(model, "trained_modules", set()) | {n for n, s in tuning.items() if s != "frozen"}
    model.set_gradient_checkpointing(bool(stage.gradient_checkpointing))
    data = load_stage_data(model, stage, on_bad_record)
    for line in data.reports:
        echo(f"  data  {line}")
    if data.skipped or data.truncated:
        echo(f"  data  skipped while encoding: {dict(data.skipped) or 0}; truncated to max_length: {data.truncated}")

    world = accelerator.num_processes
    accumulation = max(1, stage.global_batch_size // (stage.micro_batch_size * world))
    plan = EpochPlan(data, stage.micro_batch_size, stage.seed, stage.group_by_length)
    per_step = accumulation * world
    total_steps = stage.max_steps or max(1, math.floor(stage.epochs * plan.per_epoch / per_step))

    optimizer = build_optimizer(model, stage)
    schedule = SCHEDULES.get(stage.schedule.name)
    if schedule is None:
        raise RecipeError(f"stages.{stage.name}.schedule.name: unknown schedule {stage.schedule.name!r}; expected {sorted(SCHEDULES)}")
    warmup = math.ceil(stage.schedule.warmup_ratio * total_steps)
    scheduler = schedule(optimizer, warmup, total_steps) if schedule is get_cosine_schedule_with_warmup else schedule(optimizer, warmup)
    wrapped, optimizer = accelerator.prepare(model, optimizer)

    checkpoints = stage_dir / "checkpoints"
    start_step = 0
    found = latest_checkpoint(checkpoints) if resume else None
    if found is not None:
        info = load_checkpoint(found, model, optimizer, scheduler)
        start_step = info["step"]
        echo(f"  resume from {found} (step {start_step}/{total_steps})")
    log = MetricsLog(stage_dir / "metrics.jsonl", resume_after_step=start_step if found else None)
    (stage_dir / "stage.yaml").write_text(OmegaConf.to_yaml(stage))

    pad_id = model.tokenizer.pad_token_id
    autocast = torch.autocast(
        device_type=accelerator.device.type,
        dtype=torch.bfloat16 if stage.precision == "bf16" else torch.float16,
        enabled=stage.precision in ("bf16", "fp16"),
    )
    wrapped.train()
    first_loss = last_loss = float("nan")
    started = time.perf_counter()
    samples_seen = 0
    progress = tqdm(
        total=total_steps, initial=start_step, desc=f"stage {stage.name}", disable=not accelerator.is_main_process,
        dynamic_ncols=True,
    )
    for step in range(start_step, total_steps):
        step_started = time.perf_counter()
        step_loss = 0.0
        step_samples = step_tokens = 0
        for micro in range(accumulation):
            index = (step * world + accelerator.process_index) * accumulation + micro
            indices = plan.micro_batch(index)
            batch = {k: v.to(accelerator.device) for k, v in assemble_batch(model, data, indices, pad_id).items()}
            with autocast:
                loss = wrapped(**batch).loss / accumulation
            if not torch.isfinite(loss):
                ids = [data.samples[i].sample_id for i in indices]
                raise TrainingError(f"stage {stage.name!r}: non-finite loss {loss.item()} at step {step + 1}, batch ids {ids}")
            sync = micro == accumulation - 1
            context = accelerator.no_sync(wrapped) if not sync and world > 1 else _nullcontext()
            with context:
                accelerator.backward(loss)
            step_loss += loss.item()
            step_samples += len(indices)
            step_tokens += int(batch["attention_mask"].sum())
        if stage.max_grad_norm:
            accelerator.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], stage.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        loss_value = _mean_across(accelerator, step_loss)
        first_loss = loss_value if step == start_step and math.isnan(first_loss) else first_loss
        last_loss = loss_value
        seconds = time.perf_counter() - step_started
        samples_seen += step_samples * world
        record = {
            "step": step + 1,
            "epoch": round((step + 1) * per_step / plan.per_epoch, 4),
            "loss": round(loss_value, 6),
            "lr": scheduler.get_last_lr()[0],
            "samples_per_s": round(step_samples * world / seconds, 2),
            "tokens_per_s": round(step_tokens * world / seconds, 1),
        }
        if accelerator.is_main_process:
            log.write(record)
        progress.set_postfix(loss=f"{loss_value:.4f}", lr=f"{record['lr']:.2e}", sps=record["samples_per_s"])
        progress.update(1)
        every = stage.save_every_steps
        if every and (step + 1) % every == 0 and step + 1 < total_steps and accelerator.is_main_process:
            save_checkpoint(checkpoints, step + 1, model, optimizer, scheduler, {"stage": stage.name})
        accelerator.wait_for_everyone()
    progress.close()
    if accelerator.is_main_process:
        log.plot(stage_dir / "loss.png", f"stage {stage.name}")
    model.set_gradient_checkpointing(False)
    return StageResult(stage.name, total_steps, first_loss, last_loss, time.perf_counter() - started, samples_seen)


class _nullcontext:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def _mean_across(accelerator, value: float) -> float:
    if accelerator.num_processes == 1:
        return value
    tensor = torch.tensor([value], device=accelerator.device)
    return accelerator.reduce(tensor, reduction="mean").item()
