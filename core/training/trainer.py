"""The training loop for one stage: the same loop for every stage and every curriculum.

``train_stage`` runs named steps: prepare the model (tuning), set up data (the step plan), set up optimisation
(optimizer, schedule, distributed wrapping), resume from the latest checkpoint, then one step per optimizer
step (logged to ``metrics.jsonl`` and the run's trackers, checkpointed every ``save_every_steps``), and finish
(consolidate).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from tqdm.auto import tqdm

from medzoo.core.atomic_writes import write_file
from medzoo.core.cpu_threads import adjust_threads
from medzoo.core.dtypes import precision_autocast
from medzoo.core.errors import DataError, RecipeError, TrainingError
from medzoo.core.interfaces.objective import ObjectiveLoss
from medzoo.core.model.components import as_dict
from medzoo.core.model.multimodal import MultimodalModel
from medzoo.core.model.processor import SampleTooLong
from medzoo.core.plugin_system.manager import components
from medzoo.core.training.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from medzoo.core.training.distributed import backward, configure_deepspeed, configure_fsdp, consolidate
from medzoo.core.training.metrics_log import MetricsLog
from medzoo.core.training.optimisation import build_optimizer, build_schedule
from medzoo.core.training.plan import StepPlan, micro_batches
from medzoo.core.training.reference import StageReference, form_reference
from medzoo.core.training.rollout_step import Rollouts, rollout_step
from medzoo.core.training.stage_data import StageData, assemble_batch, image_paths, load_stage_data
from medzoo.core.training.tracking import RunTracking

__all__ = ["StageResult", "apply_tuning", "build_optimizer", "train_stage"]


@dataclass
class StageResult:
    name: str
    steps: int
    first_loss: float
    last_loss: float
    seconds: float
    samples: int
    model: MultimodalModel | None = None  # the trained model whole, on the main process


@dataclass
class StageRun:
    """What every step of a stage needs, set up before the first one."""

    stage: Any
    model: MultimodalModel
    accelerator: Any
    data: StageData
    plan: StepPlan
    wrapped: Any
    forward: Any
    optimizer: Any
    scheduler: Any
    total_steps: int
    checkpoints: Path
    #: the stage's starting model as the objective's reference (``None``: the objective needs none)
    reference: StageReference | None = None
    #: where the objective's rollouts come from (``None``: the objective generates none)
    rollouts: Rollouts | None = None

    @property
    def objective(self) -> Any:
        return self.data.objective


@dataclass
class Totals:
    """Losses and samples over the steps this run trained."""

    started: float = field(default_factory=time.perf_counter)
    first_loss: float = float("nan")
    last_loss: float = float("nan")
    samples: int = 0

    def add(self, loss: float, samples: int) -> None:
        self.first_loss = loss if math.isnan(self.first_loss) else self.first_loss
        self.last_loss = loss
        self.samples += samples


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


def train_stage(
    model: MultimodalModel,
    stage: Any,
    stage_dir: Path,
    accelerator,
    on_bad_record: str = "skip",
    resume: bool = False,
    echo=print,
    tracking: RunTracking | None = None,
) -> StageResult:
    """Train ``model`` in place for one stage; checkpoints go to ``stage_dir/checkpoints``, each step's record to
    ``metrics.jsonl`` and ``tracking``."""
    stage_dir.mkdir(parents=True, exist_ok=True)
    prepare_model(model, stage)
    data, plan = set_up_data(model, stage, accelerator.num_processes, on_bad_record, echo)
    run = set_up_optimisation(model, stage, accelerator, data, plan, stage_dir / "checkpoints")
    run.reference = form_reference(run, stage_dir, echo)  # before resuming: from the stage's starting weights
    if run.objective.generates_rollouts:
        run.rollouts = Rollouts(run, stage_dir)
    resumed = resume_step(run, echo) if resume else None
    log = open_metrics_log(run, stage_dir, resumed)
    totals = train_steps(run, resumed or 0, log, tracking)
    return finish(run, totals)


def max_length_warnings(data: StageData, max_length: int) -> list[str]:
    """One line per kind of sample that ``max_length`` made unusable (each also counted in ``data.skipped``)."""
    lines = []
    prompts = data.skipped.get(SampleTooLong.PROMPT, 0)
    if prompts:
        lines.append(f"{prompts} record(s) skipped: the prompt alone is not shorter than max_length {max_length} "
                     f"(the longest {data.longest_prompt} tokens), so no answer token is left to learn; raise "
                     "max_length or shorten those prompts")
    if data.image_tokens_cut:
        lines.append(f"{data.image_tokens_cut} record(s) skipped: truncation to max_length {max_length} would cut "
                     "their image tokens")
    return lines


def prepare_model(model: MultimodalModel, stage: Any) -> None:
    """Seed, apply the stage's tuning strategies, and set gradient checkpointing."""
    torch.manual_seed(stage.seed)
    tuning = apply_tuning(model, stage.tuning)
    model.trained_modules = getattr(model, "trained_modules", set()) | {n for n, s in tuning.items() if s != "frozen"}
    model.set_gradient_checkpointing(bool(stage.gradient_checkpointing))


def set_up_data(
    model: MultimodalModel, stage: Any, world: int, on_bad_record: str, echo
) -> tuple[StageData, StepPlan]:
    """Encode the stage's datasets and plan its global batches (one per optimizer step)."""
    data = load_stage_data(model, stage, on_bad_record)
    for line in data.reports:
        echo(f"  data  {line}")
    if data.skipped or data.truncated:
        echo(f"  data  skipped while encoding: {dict(data.skipped) or 0}; truncated to max_length: {data.truncated}")
    for line in max_length_warnings(data, stage.max_length):
        echo(f"warning: stage {stage.name}: {line}")
    if stage.global_batch_size % world:
        raise RecipeError(
            f"stages.{stage.name}.global_batch_size: {stage.global_batch_size} is not divisible by {world} processes"
        )
    plan = StepPlan(data.lengths(), data.sizes, data.weights, stage.global_batch_size, stage.seed, stage.group_by_length)
    if plan.per_epoch == 0:
        raise DataError(
            f"stage {stage.name!r}: {len(data.samples)} samples do not fill one global batch of {stage.global_batch_size}"
        )
    return data, plan


def set_up_optimisation(
    model: MultimodalModel, stage: Any, accelerator, data: StageData, plan: StepPlan, checkpoints: Path
) -> StageRun:
    """Build the optimizer and schedule, then let the accelerator wrap model and optimizer (DDP, FSDP, DeepSpeed)."""
    total_steps = stage.max_steps or max(1, math.floor(stage.epochs * plan.per_epoch))
    optimizer = build_optimizer(model, stage)
    scheduler = build_schedule(optimizer, stage, total_steps)
    configure_fsdp(accelerator, model)
    micro_batches_per_step = len(micro_batches(plan.step_batch(0), accelerator.num_processes, 0, stage.micro_batch_size))
    configure_deepspeed(accelerator, model, stage, micro_batches_per_step)
    wrapped, optimizer = accelerator.prepare(model, optimizer)
    forward = torch.compile(wrapped, dynamic=True) if stage.compile else wrapped
    return StageRun(stage, model, accelerator, data, plan, wrapped, forward, optimizer, scheduler, total_steps, checkpoints)


def resume_step(run: StageRun, echo) -> int | None:
    """Restore the latest checkpoint (weights, optimizer, schedule, RNG); its step, or ``None`` without one."""
    found = latest_checkpoint(run.checkpoints)
    if found is None:
        return None
    info = load_checkpoint(run.accelerator, found, run.model, run.wrapped, run.optimizer, run.scheduler)
    echo(f"  resume from {found} (step {info['step']}/{run.total_steps})")
    return info["step"]


def open_metrics_log(run: StageRun, stage_dir: Path, resumed: int | None) -> MetricsLog | None:
    """On the main process: ``metrics.jsonl`` (cut after the resumed step) and ``stage.yaml``."""
    if not run.accelerator.is_main_process:
        return None
    log = MetricsLog(stage_dir / "metrics.jsonl", resume_after_step=resumed)
    write_file(stage_dir / "stage.yaml", OmegaConf.to_yaml(run.stage))
    return log


def train_steps(run: StageRun, start_step: int, log: MetricsLog | None, tracking: RunTracking | None = None) -> Totals:
    """Every optimizer step from ``start_step``: train, log, checkpoint."""
    stage = run.stage
    autocast = precision_autocast(stage.precision, run.accelerator.device.type)
    run.wrapped.train()
    totals = Totals()
    main = run.accelerator.is_main_process
    progress = tqdm(total=run.total_steps, initial=start_step, desc=f"stage {stage.name}", disable=not main,
                    dynamic_ncols=True)
    on_cpu = run.accelerator.device.type == "cpu"
    for step in range(start_step, run.total_steps):
        if on_cpu:
            adjust_threads()  # follow the cores other processes leave free
        started = time.perf_counter()
        global_batch = run.plan.step_batch(step)
        if run.rollouts is not None:
            loss, grad_norm, metrics = rollout_step(run, step, autocast, apply_optimizer_step, _mean_across)
        else:
            loss, grad_norm, metrics = one_step(run, step, global_batch, autocast)
        record = step_record(run, step, global_batch, loss, grad_norm, time.perf_counter() - started, metrics)
        totals.add(loss, len(global_batch))
        if log is not None:
            log.write(record)
            if tracking is not None:
                tracking.log_step(record, last=step + 1 == run.total_steps)
        progress.set_postfix(loss=f"{loss:.4f}", lr=f"{record['lr']:.2e}", sps=record["samples_per_s"])
        progress.update(1)
        save_due_checkpoint(run, step + 1)
        run.accelerator.wait_for_everyone()
    progress.close()
    return totals


def one_step(
    run: StageRun, step: int, global_batch: list[int], autocast
) -> tuple[float, float | None, dict[str, float]]:
    """Forward and backward over this process's micro-batches, clip, step optimizer and schedule; the step's loss
    and the objective's metrics averaged over processes, and the gradient norm before clipping (``None`` where the
    engine keeps none)."""
    accelerator, stage = run.accelerator, run.stage
    normaliser = run.data.normaliser(global_batch)
    micros = micro_batches(global_batch, accelerator.num_processes, accelerator.process_index, stage.micro_batch_size)
    total = 0.0
    metrics: dict[str, float] = {}
    for micro, indices in enumerate(micros):
        result = micro_batch_loss(run, step, indices, normaliser, autocast)
        backward(accelerator, run.wrapped, result.loss, last_micro_batch=micro == len(micros) - 1)
        total += result.loss.item()
        for name, value in result.metrics.items():
            metrics[name] = metrics.get(name, 0.0) + float(value)
    norm = apply_optimizer_step(run)
    metrics = {name: _mean_across(accelerator, value) for name, value in metrics.items()}
    return _mean_across(accelerator, total), norm, metrics


def apply_optimizer_step(run: StageRun) -> float | None:
    """Clip, step the optimizer and the schedule, zero the gradients; the norm before clipping (``None`` where
    the engine keeps none)."""
    # FSDP: the whole wrapped model; without clipping (0) an infinite bound only measures (the factor is 1.0)
    norm = run.accelerator.clip_grad_norm_(run.wrapped.parameters(), run.stage.max_grad_norm or math.inf)
    run.optimizer.step()
    run.scheduler.step()
    run.optimizer.zero_grad(set_to_none=True)
    return None if norm is None else float(norm)


def micro_batch_loss(run: StageRun, step: int, indices: list[int], normaliser: Any, autocast) -> ObjectiveLoss:
    """One micro-batch's share of the step loss (the stage objective's); a non-finite loss stops the run naming the
    step and sample ids."""
    accelerator = run.accelerator
    batch = assemble_batch(run.model, run.data, indices, run.model.tokenizer.pad_token_id, run.stage.packing,
                           run.stage.max_length)
    batch = {k: v.to(accelerator.device) for k, v in batch.items()}
    with autocast:
        reference = None if run.reference is None else run.reference.values(indices, batch)
        result = run.objective.loss(run.forward, batch, normaliser, scale=accelerator.num_processes,
                                    reference=reference)
    loss = result.loss
    if not torch.isfinite(loss):
        ids = [run.data.samples[i].sample_id for i in indices]
        raise TrainingError(f"stage {run.stage.name!r}: non-finite loss {loss.item()} at step {step + 1}, batch ids {ids}")
    return result


def step_record(
    run: StageRun, step: int, global_batch: list[int], loss: float, grad_norm: float | None, seconds: float,
    metrics: dict[str, float] | None = None,
) -> dict[str, Any]:
    """The ``metrics.jsonl`` line of one step: ``lr`` is the first parameter group's, ``lr/<module>`` each
    ``optimizer.module_lr`` group's; the objective's metrics follow ``loss`` under their own names."""
    rates = run.scheduler.get_last_lr()
    images = sum(len(image_paths(run.data.images[index])) for index in global_batch)
    return {
        "step": step + 1,
        "epoch": round((step + 1) / run.plan.per_epoch, 4),
        "loss": round(loss, 6),
        **{name: round(value, 6) for name, value in (metrics or {}).items()},
        "lr": rates[0],
        **{f"lr/{name}": rate for name, rate in zip(module_groups(run, len(rates)), rates, strict=False) if name},
        "grad_norm": None if grad_norm is None else round(grad_norm, 6),
        "samples_per_s": round(len(global_batch) / seconds, 2),
        "tokens_per_s": round(run.data.num_tokens(global_batch) / seconds, 1),
        "image_tokens": images * run.model.num_image_tokens if run.model.tiling is None else sum(
            run.data.samples[index].input_ids.count(run.model.markup.fill_id) for index in global_batch),
    }


def module_groups(run: StageRun, count: int) -> list[str | None]:
    """The module of each of the ``count`` parameter groups (``None``: the stage's own rate), in the order
    :func:`~medzoo.core.training.optimisation.parameter_groups` builds them: the rest first, then each
    ``optimizer.module_lr`` module that trains."""
    names = [name for name in (run.stage.optimizer.get("module_lr", None) or {})
             if any(p.requires_grad for p in getattr(run.model, name).parameters())]
    return ([None] * (count - len(names)) + names)[:count]


def save_due_checkpoint(run: StageRun, done: int) -> None:
    """A resumable checkpoint after every ``save_every_steps`` steps (not after the last: the stage saves its model)."""
    every = run.stage.save_every_steps
    if every and done % every == 0 and done < run.total_steps:
        save_checkpoint(run.accelerator, run.checkpoints, done, run.model, run.wrapped, run.optimizer, run.scheduler,
                        {"stage": run.stage.name})


def finish(run: StageRun, totals: Totals) -> StageResult:
    """Gather the trained model whole on the main process."""
    run.model.set_gradient_checkpointing(False)
    whole = consolidate(run.accelerator, run.wrapped, run.model)
    seconds = time.perf_counter() - totals.started
    return StageResult(run.stage.name, run.total_steps, totals.first_loss, totals.last_loss, seconds, totals.samples,
                       whole)


def _mean_across(accelerator, value: float) -> float:
    if accelerator.num_processes == 1:
        return value
    tensor = torch.tensor([value], device=accelerator.device)
    return accelerator.reduce(tensor, reduction="mean").item()
