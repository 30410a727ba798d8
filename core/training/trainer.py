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

from medzoo.core.errors import DataError, RecipeError, TrainingError
from medzoo.core.model.build import as_dict
from medzoo.core.model.multimodal import MultimodalModel
from medzoo.core.plugin_system.manager import components
from medzoo.core.training.checkpoint import (
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from medzoo.core.training.distributed import (
    backward,
    configure_deepspeed,
    configure_fsdp,
    consolidate,
)
from medzoo.core.training.loss import step_loss
from medzoo.core.training.metrics_log import MetricsLog
from medzoo.core.training.plan import StepPlan, micro_batches
from medzoo.core.training.stage_data import assemble_batch, load_stage_data

SCHEDULES = {"cosine": get_cosine_schedule_with_warmup, "constant": get_constant_schedule_with_warmup}


@dataclass
class StageResult:
    name: str
    steps: int
    first_loss: float
    last_loss: float
    seconds: float
    samples: int
    model: MultimodalModel | None = None  # the trained model whole, on the main process


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


def build_optimizer(model: torch.nn.Module, stage: Any) -> torch.optim.Optimizer:
    parameters = [p for p in model.parameters() if p.requires_grad]
    if not parameters:
        raise RecipeError(f"stage {stage.name!r}: every module is frozen; nothing to train")
    config = stage.optimizer
    if config.name != "adamw":
        raise RecipeError(f"stages.{stage.name}.optimizer.name: unknown optimizer {config.name!r}; expected 'adamw'")
    return torch.optim.AdamW(
        parameters, lr=config.lr, weight_decay=config.weight_decay, betas=tuple(config.betas), fused=bool(config.fused) or None
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
    if stage.global_batch_size % world:
        raise RecipeError(
            f"stages.{stage.name}.global_batch_size: {stage.global_batch_size} is not divisible by {world} processes"
        )
    plan = StepPlan(data.lengths(), data.sizes, data.weights, stage.global_batch_size, stage.seed, stage.group_by_length)
    if plan.per_epoch == 0:
        raise DataError(
            f"stage {stage.name!r}: {len(data.samples)} samples do not fill one global batch of {stage.global_batch_size}"
        )
    total_steps = stage.max_steps or max(1, math.floor(stage.epochs * plan.per_epoch))

    optimizer = build_optimizer(model, stage)
    schedule = SCHEDULES.get(stage.schedule.name)
    if schedule is None:
        raise RecipeError(f"stages.{stage.name}.schedule.name: unknown schedule {stage.schedule.name!r}; expected {sorted(SCHEDULES)}")
    warmup = math.ceil(stage.schedule.warmup_ratio * total_steps)
    scheduler = schedule(optimizer, warmup, total_steps) if schedule is get_cosine_schedule_with_warmup else schedule(optimizer, warmup)
    configure_fsdp(accelerator, model)
    micro_batches_per_step = len(micro_batches(plan.step_batch(0), world, 0, stage.micro_batch_size))
    configure_deepspeed(accelerator, model, stage, micro_batches_per_step)
    wrapped, optimizer = accelerator.prepare(model, optimizer)
    forward = torch.compile(wrapped, dynamic=True) if stage.compile else wrapped

    main = accelerator.is_main_process
    checkpoints = stage_dir / "checkpoints"
    start_step = 0
    found = latest_checkpoint(checkpoints) if resume else None
    if found is not None:
        info = load_checkpoint(accelerator, found, model, wrapped, optimizer, scheduler)
        start_step = info["step"]
        echo(f"  resume from {found} (step {start_step}/{total_steps})")
    log = MetricsLog(stage_dir / "metrics.jsonl", resume_after_step=start_step if found else None) if main else None
    if main:
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
        total=total_steps, initial=start_step, desc=f"stage {stage.name}", disable=not main, dynamic_ncols=True,
    )
    for step in range(start_step, total_steps):
        step_started = time.perf_counter()
        global_batch = plan.step_batch(step)
        num_targets = data.num_targets(global_batch)
        micros = micro_batches(global_batch, world, accelerator.process_index, stage.micro_batch_size)
        step_loss_value = 0.0
        for micro, indices in enumerate(micros):
            batch = assemble_batch(model, data, indices, pad_id, stage.packing, stage.max_length)
            batch = {k: v.to(accelerator.device) for k, v in batch.items()}
            with autocast:
                loss = step_loss(forward, batch, num_targets, scale=world)
            if not torch.isfinite(loss):
                ids = [data.samples[i].sample_id for i in indices]
                raise TrainingError(f"stage {stage.name!r}: non-finite loss {loss.item()} at step {step + 1}, batch ids {ids}")
            backward(accelerator, wrapped, loss, last_micro_batch=micro == len(micros) - 1)
            step_loss_value += loss.item()
        if stage.max_grad_norm:
            accelerator.clip_grad_norm_(wrapped.parameters(), stage.max_grad_norm)  # FSDP: the whole wrapped model
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        loss_value = _mean_across(accelerator, step_loss_value)
        first_loss = loss_value if step == start_step and math.isnan(first_loss) else first_loss
        last_loss = loss_value
        seconds = time.perf_counter() - step_started
        samples_seen += len(global_batch)
        record = {
            "step": step + 1,
            "epoch": round((step + 1) / plan.per_epoch, 4),
            "loss": round(loss_value, 6),
            "lr": scheduler.get_last_lr()[0],
            "samples_per_s": round(len(global_batch) / seconds, 2),
            "tokens_per_s": round(data.num_tokens(global_batch) / seconds, 1),
        }
        if log is not None:
            log.write(record)
        progress.set_postfix(loss=f"{loss_value:.4f}", lr=f"{record['lr']:.2e}", sps=record["samples_per_s"])
        progress.update(1)
        every = stage.save_every_steps
        if every and (step + 1) % every == 0 and step + 1 < total_steps:
            save_checkpoint(accelerator, checkpoints, step + 1, model, wrapped, optimizer, scheduler, {"stage": stage.name})
        accelerator.wait_for_everyone()
    progress.close()
    if log is not None:
        log.plot(stage_dir / "loss.png", f"stage {stage.name}")
    model.set_gradient_checkpointing(False)
    whole = consolidate(accelerator, wrapped, model)
    seconds = time.perf_counter() - started
    return StageResult(stage.name, total_steps, first_loss, last_loss, seconds, samples_seen, whole)


def _mean_across(accelerator, value: float) -> float:
    if accelerator.num_processes == 1:
        return value
    tensor = torch.tensor([value], device=accelerator.device)
    return accelerator.reduce(tensor, reduction="mean").item()
