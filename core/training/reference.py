"""The stage's starting model as an objective's reference, without a second copy of the weights in memory.

Two ways, chosen by the objective's ``reference`` option (``auto`` picks the first that can be formed):

- ``adapters_off``: when every trained parameter of the stage is a freshly initialised LoRA adapter, the starting
  model is the same weights with the adapters switched off (peft's adapter layers ``enable_adapters(False)``,
  what ``PeftModel.disable_adapter`` does); the reference is computed per micro-batch.
- ``precomputed``: the objective's reference values of every sample, computed once before the stage's first step
  (from the starting weights, in eval mode, without gradients) and stored in the stage folder
  (``reference.pt``), so a resumed stage reads them back instead of recomputing them from changed weights.

- ``copy``: a frozen copy of the starting model (eval mode, no gradients), for objectives whose samples are
  generated during the stage (GRPO), so that nothing can be computed before it, when the stage trains more than
  fresh LoRA adapters. It costs a second copy of the weights in memory.

A reference that cannot be formed is a one-line ``RecipeError`` naming the stage's key before training starts.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from medzoo.core.atomic_writes import write_atomically
from medzoo.core.errors import RecipeError
from medzoo.core.training.plan import micro_batches

REFERENCE_MODES = ("auto", "adapters_off", "precomputed", "copy")
REFERENCE_FILE = "reference.pt"


class StageReference:
    """Reference values for a micro-batch's samples (rows in the order of ``indices``)."""

    mode = ""

    def values(self, indices: list[int], batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError


class AdaptersOff(StageReference):
    mode = "adapters_off"

    def __init__(self, run: Any) -> None:
        self.run = run

    def values(self, indices: list[int], batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        with torch.no_grad(), adapters_disabled(self.run.model):
            return self.run.data.objective.reference_values(self.run.forward, batch).detach()


class Precomputed(StageReference):
    mode = "precomputed"

    def __init__(self, table: torch.Tensor) -> None:
        self.table = table

    def values(self, indices: list[int], batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        device = batch["input_ids"].device
        return self.table[torch.tensor(indices, dtype=torch.long)].to(device)


class FrozenCopy(StageReference):
    mode = "copy"

    def __init__(self, run: Any) -> None:
        import copy

        self.run = run
        self.model = copy.deepcopy(run.model).eval()
        for parameter in self.model.parameters():
            parameter.requires_grad_(False)

    def values(self, indices: list[int], batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        with torch.no_grad():
            return self.run.data.objective.reference_values(self.model, batch).detach()


@contextmanager
def adapters_disabled(model: torch.nn.Module) -> Iterator[None]:
    """Every adapter layer of ``model`` (peft's ``BaseTunerLayer``: ``enable_adapters``) switched off inside."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    layers = [module for module in model.modules() if isinstance(module, BaseTunerLayer)]
    for layer in layers:
        layer.enable_adapters(False)
    try:
        yield
    finally:
        for layer in layers:
            layer.enable_adapters(True)


def adapters_off_problem(model: torch.nn.Module) -> str | None:
    """Why switching the adapters off would not give the starting model (``None``: it would)."""
    trained = [name for name, parameter in model.named_parameters() if parameter.requires_grad]
    adapters = [name for name in trained if "lora_" in name]
    if not adapters:
        return "the stage trains no LoRA adapters"
    others = [name for name in trained if "lora_" not in name]
    if others:
        return f"parameters outside the LoRA adapters train too (e.g. {others[0]})"
    for name, parameter in model.named_parameters():
        if "lora_B" in name and bool(parameter.detach().abs().sum() > 0):
            return f"the LoRA adapters already hold trained weights ({name} is not zero)"
    return None


def form_reference(run: Any, stage_dir: Path, echo) -> StageReference | None:
    """The reference the stage's objective asks for, or ``None`` when it needs none."""
    objective = run.data.objective
    if not objective.needs_reference:
        return None
    key = f"stages.{run.stage.name}.objective.reference"
    mode = getattr(objective, "reference_mode", "auto")
    if mode not in REFERENCE_MODES:
        raise RecipeError(f"{key}: {mode!r} is not allowed; expected one of {', '.join(REFERENCE_MODES)}")
    problem = adapters_off_problem(run.model)
    if mode == "adapters_off" and problem is not None:
        raise RecipeError(f"{key}: 'adapters_off' cannot form the reference: {problem}; expected the stage to train "
                          "only fresh LoRA adapters (tuning: lora, the other modules frozen), or reference: precomputed")
    if mode == "adapters_off" or (mode == "auto" and problem is None):
        echo("  reference: the starting model, as the same weights with the LoRA adapters switched off")
        return AdaptersOff(run)
    if mode == "precomputed" and objective.generates_rollouts:
        raise RecipeError(f"{key}: 'precomputed' cannot form the reference of objective {objective.name!r}, whose "
                          "samples are generated during the stage; expected adapters_off, copy or auto")
    if mode == "copy" or objective.generates_rollouts:
        echo("  reference: a frozen copy of the starting model")
        return FrozenCopy(run)
    return Precomputed(precomputed_table(run, stage_dir / REFERENCE_FILE, echo))


def precomputed_table(run: Any, path: Path, echo) -> torch.Tensor:
    """Reference values of every sample: read from ``path`` when it holds this stage's (same samples, same
    objective), else computed from the current (starting) weights and written there (main process)."""
    objective = run.data.objective
    ids = [sample.sample_id for sample in run.data.samples]
    identity = {"sample_ids": ids, "objective": objective.describe()}
    if path.is_file():
        stored = torch.load(path, map_location="cpu", weights_only=True)
        if stored.get("identity") == identity:
            echo(f"  reference: {len(ids)} samples' values read from {path}")
            return stored["values"]
        echo(f"  reference: {path} was computed for other samples or settings; computing again")
    table = compute_table(run)
    if run.accelerator.is_main_process:
        buffer = io.BytesIO()
        torch.save({"identity": identity, "values": table}, buffer)
        write_atomically(path, buffer.getvalue())
    echo(f"  reference: {len(ids)} samples' values computed once from the starting model, stored in {path}")
    return table


def compute_table(run: Any) -> torch.Tensor:
    """The objective's reference values of every sample, in micro-batches, eval mode, no gradients."""
    from medzoo.core.dtypes import precision_autocast
    from medzoo.core.training.stage_data import assemble_batch

    stage, objective = run.stage, run.data.objective
    autocast = precision_autocast(stage.precision, run.accelerator.device.type)
    everything = list(range(len(run.data.samples)))
    rows: list[torch.Tensor] = []
    run.wrapped.eval()
    try:
        with torch.no_grad(), autocast:
            for indices in micro_batches(everything, 1, 0, stage.micro_batch_size):
                batch = assemble_batch(run.model, run.data, indices, run.model.tokenizer.pad_token_id)
                batch = {k: v.to(run.accelerator.device) for k, v in batch.items()}
                rows.append(objective.reference_values(run.forward, batch).detach().float().cpu())
    finally:
        run.wrapped.train()
    return torch.cat(rows)
