"""The optimizer step of an objective that generates its own rows (GRPO): rollouts, then the usual accumulation.

A rollout batch is generated every ``updates_per_rollout`` steps (a *cycle*), from the prompts of the cycle's
first step, by the objective's backend (medzoo's engine unless the recipe says vLLM). Each process generates for
its own share of the prompts; completion ``k`` of a prompt is seeded from the stage seed, the cycle and the
prompt's id, so a rollout does not depend on the process count, the batch composition or an interruption: after
``kill -9`` and ``--resume`` the restored weights generate the same completions. A cycle of several steps keeps
its rows on disk (``rollouts/``), so a run resumed mid-cycle trains on the rows it was generated with.
"""

from __future__ import annotations

import hashlib
import io
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from medzoo.core.atomic_writes import write_atomically
from medzoo.core.dtypes import precision_autocast
from medzoo.core.errors import TrainingError
from medzoo.core.training.checkpoint import latest_checkpoint
from medzoo.core.training.distributed import backward
from medzoo.core.training.engine_rollouts import EngineRollouts
from medzoo.core.training.plan import micro_batches
from medzoo.core.training.stage_data import load_pixels

ROLLOUT_FOLDER = "rollouts"
CYCLE_FILE = re.compile(r"^cycle-(\d+)-rank(\d+)\.pt$")


@dataclass
class RolloutBatch:
    """This process's rows of one cycle, with their images, and what every process's rollouts measured."""

    cycle: int
    rows: list[Any]
    pixels: list[torch.Tensor | None]
    metrics: dict[str, float] = field(default_factory=dict)
    #: every process's completion lengths (the normaliser of each step of the cycle)
    lengths: list[int] = field(default_factory=list)


def rollout_seed(stage_seed: int, cycle: int, sample_id: str) -> int:
    """The seed of a prompt's first completion in a cycle (completion k: this + k)."""
    digest = hashlib.sha256(f"{stage_seed}:{cycle}:{sample_id}".encode()).digest()
    return int.from_bytes(digest[:7], "big")


class Rollouts:
    """The stage's rollout backend and the cycle being trained on."""

    def __init__(self, run: Any, stage_dir: Path) -> None:
        self.run = run
        objective = run.objective
        self.backend = objective.rollout_backend(run.stage) or EngineRollouts(getattr(run.stage, "template", None))
        self.per_cycle = objective.updates_per_rollout
        self.folder = stage_dir / ROLLOUT_FOLDER
        self.current: RolloutBatch | None = None

    def batch_for(self, step: int) -> RolloutBatch:
        """The rows step ``step`` trains on: the cycle's, generated at its first step or read back on resume."""
        cycle = step - step % self.per_cycle
        if self.current is not None and self.current.cycle == cycle:
            return self.current
        stored = self._read(cycle) if self.per_cycle > 1 else None
        self.current = stored or self._generate(cycle)
        return self.current

    def _share(self, cycle: int) -> list[int]:
        run = self.run
        prompts = run.plan.step_batch(cycle)
        world, rank = run.accelerator.num_processes, run.accelerator.process_index
        return [index for part in micro_batches(prompts, world, rank, len(prompts)) for index in part]

    def _generate(self, cycle: int) -> RolloutBatch:
        run, objective = self.run, self.run.objective
        share = self._share(cycle)
        samples = [run.data.samples[i] for i in share]
        seeds = [rollout_seed(run.stage.seed, cycle, sample.sample_id) for sample in samples]
        requests = objective.rollout_requests(samples, seeds, run.stage.max_length)
        pixels = load_pixels(run.model, run.data, share)
        for request, image in zip(requests, pixels, strict=True):
            if request.prompt is not None:
                request.prompt.pixel_values = image
        run.model.set_gradient_checkpointing(False)
        try:
            completions = self.backend.generate(run.model, requests)
        finally:
            run.model.set_gradient_checkpointing(bool(run.stage.gradient_checkpointing))
            run.wrapped.train()
            for request in requests:  # the prompts stay in the stage data: do not keep their pixels with them
                if request.prompt is not None:
                    request.prompt.pixel_values = None
        rows, metrics = objective.rollout_rows(samples, completions, self._gather)
        lengths = self._gather(torch.tensor([row.completion_tokens for row in rows], dtype=torch.long)).tolist()
        batch = RolloutBatch(cycle, rows, [pixels[row.prompt_index] for row in rows], metrics, lengths)
        if self.per_cycle > 1:
            self._keep_behaviour_log_probs(batch)
            self._write(batch)
        return batch

    def _gather(self, tensor: torch.Tensor) -> torch.Tensor:
        accelerator = self.run.accelerator
        if accelerator.num_processes == 1:
            return tensor
        return accelerator.gather(tensor.to(accelerator.device)).cpu()

    def _keep_behaviour_log_probs(self, batch: RolloutBatch) -> None:
        """Each row's completion log-probabilities under the policy that generated them (the ratio's
        denominator for every step of the cycle)."""
        run, objective = self.run, self.run.objective
        with torch.no_grad(), precision_autocast(run.stage.precision, run.accelerator.device.type):
            for indices in row_micro_batches(len(batch.rows), run.stage.micro_batch_size):
                tensors = objective.collate([batch.rows[i] for i in indices], [batch.pixels[i] for i in indices],
                                            run.model.tokenizer.pad_token_id)
                tensors = {k: v.to(run.accelerator.device) for k, v in tensors.items()}
                log_probs, rows = objective.behaviour_log_probs(run.forward, tensors)
                for position, index in enumerate(indices):
                    batch.rows[index].old_logps = log_probs[rows == position].float().cpu()

    def _path(self, cycle: int) -> Path:
        return self.folder / f"cycle-{cycle:06d}-rank{self.run.accelerator.process_index}.pt"

    def _write(self, batch: RolloutBatch) -> None:
        """Keep the cycle's rows (and drop cycles older than the latest checkpoint's, which resume never needs)."""
        buffer = io.BytesIO()
        torch.save({"cycle": batch.cycle, "objective": self.run.objective.describe(), "rows": batch.rows,
                    "metrics": batch.metrics, "lengths": batch.lengths}, buffer)
        write_atomically(self._path(batch.cycle), buffer.getvalue())
        found = latest_checkpoint(self.run.checkpoints)
        if found is None:
            return
        resumable = int(re.sub(r"\D", "", found.name) or 0)
        oldest_needed = resumable - resumable % self.per_cycle
        for path in self.folder.glob("cycle-*.pt"):
            match = CYCLE_FILE.match(path.name)
            if match and int(match.group(1)) < oldest_needed and int(match.group(2)) == \
                    self.run.accelerator.process_index:
                path.unlink(missing_ok=True)

    def _read(self, cycle: int) -> RolloutBatch | None:
        path = self._path(cycle)
        if not path.is_file():
            return None
        stored = torch.load(path, map_location="cpu", weights_only=False)
        if stored.get("cycle") != cycle or stored.get("objective") != self.run.objective.describe():
            return None
        share = self._share(cycle)
        pixels = load_pixels(self.run.model, self.run.data, share)
        rows = stored["rows"]
        return RolloutBatch(cycle, rows, [pixels[row.prompt_index] for row in rows], stored["metrics"],
                            stored["lengths"])


def row_micro_batches(count: int, micro_batch_size: int) -> list[list[int]]:
    """``range(count)`` cut into near-equal micro-batches of at most ``micro_batch_size`` rows."""
    return micro_batches(list(range(count)), 1, 0, micro_batch_size)


def rollout_step(
    run: Any, step: int, autocast: Any, apply_step: Callable[[Any], float | None], mean_across: Callable
) -> tuple[float, float | None, dict[str, float]]:
    """One optimizer step on the cycle's rows: forward and backward per micro-batch of rows, then ``apply_step``
    (clip, optimizer, schedule); the loss, gradient norm and metrics (rollout and loss metrics, averaged over
    processes). The backend is given the new weights afterwards."""
    accelerator, stage, objective = run.accelerator, run.stage, run.objective
    batch = run.rollouts.batch_for(step)
    normaliser = objective.rollout_normaliser(batch.lengths)
    total = 0.0
    metrics: dict[str, float] = {}
    parts = row_micro_batches(len(batch.rows), stage.micro_batch_size)
    for micro, indices in enumerate(parts):
        tensors = objective.collate([batch.rows[i] for i in indices], [batch.pixels[i] for i in indices],
                                    run.model.tokenizer.pad_token_id)
        tensors = {k: v.to(accelerator.device) for k, v in tensors.items()}
        with autocast:
            reference = None if run.reference is None else run.reference.values(indices, tensors)
            result = objective.loss(run.forward, tensors, normaliser, scale=accelerator.num_processes,
                                    reference=reference)
        if not torch.isfinite(result.loss):
            ids = [batch.rows[i].sample_id for i in indices]
            raise TrainingError(f"stage {stage.name!r}: non-finite loss {result.loss.item()} at step {step + 1}, "
                                f"rollout ids {ids}")
        backward(accelerator, run.wrapped, result.loss, last_micro_batch=micro == len(parts) - 1)
        total += result.loss.item()
        for name, value in result.metrics.items():
            metrics[name] = metrics.get(name, 0.0) + float(value)
    norm = apply_step(run)
    run.rollouts.backend.sync_weights(run.model)
    merged = {**{name: value for name, value in batch.metrics.items() if math.isfinite(value)}, **metrics}
    return (mean_across(accelerator, total), norm,
            {name: mean_across(accelerator, value) for name, value in merged.items()})
