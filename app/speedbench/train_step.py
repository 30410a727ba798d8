"""Training-step throughput: medzoo's step against transformers' ``LlavaForConditionalGeneration`` with the same
weights on the same batches, and medzoo's batching (length grouping, packing) against plain padded batches.

A step is forward + backward + gradient clipping + AdamW step + zero_grad on one micro-batch of the stage. Batches
are assembled (images read and transformed) before timing, so the figures are model compute, not image I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from medzoo.app.speedbench.timing import Timing, interleaved
from medzoo.app.speedbench.transformers_llava import transformers_llava_copy, transformers_llava_loss
from medzoo.core.errors import MedzooError
from medzoo.core.model.build import build_model
from medzoo.core.model.components import as_dict
from medzoo.core.model.multimodal import MultimodalModel
from medzoo.core.training.batching import length_grouped_batches
from medzoo.core.training.loss import count_targets, step_loss
from medzoo.core.training.plan import StepPlan
from medzoo.core.training.stage_data import StageData, assemble_batch, load_stage_data
from medzoo.core.training.trainer import apply_tuning, build_optimizer

BATCHING = ("padded", "grouped", "packed")


@dataclass
class Prepared:
    """Pre-assembled batches of one batching mode and the real (non-pad) tokens of each."""

    batches: list[dict[str, torch.Tensor]]
    tokens: list[int]
    samples: list[int]


def bench_stage(recipe: Any) -> Any:
    """The stage the training benchmark uses: the first instruct stage, else the last stage."""
    stages = list(recipe.stages)
    return next((stage for stage in stages if stage.role == "instruct"), stages[-1])


def sample_batches(data: StageData, stage: Any, count: int) -> dict[str, list[list[int]]]:
    """``count`` micro-batches per mode over the same samples: seeded random (padded, packed) or length-grouped."""
    size = stage.micro_batch_size
    plan = StepPlan(data.lengths(), data.sizes, data.weights, size, stage.seed, group_by_length=False)
    if plan.per_epoch < count:
        raise MedzooError(f"stage {stage.name!r}: {len(data.samples)} samples give fewer than {count} batches of {size}")
    random_batches = [plan.step_batch(i) for i in range(count)]
    pool = [i for batch in random_batches for i in batch]
    grouped = length_grouped_batches([len(data.samples[i]) for i in pool], size, stage.seed, True, megabatch_factor=count)
    return {"padded": random_batches, "grouped": [[pool[i] for i in b] for b in grouped], "packed": random_batches}


def prepare(model: MultimodalModel, data: StageData, stage: Any, batches: dict[str, list[list[int]]]) -> dict[str, Prepared]:
    pad_id = model.tokenizer.pad_token_id
    prepared = {}
    for mode, plan in batches.items():
        assembled = [assemble_batch(model, data, indices, pad_id, mode == "packed", stage.max_length) for indices in plan]
        prepared[mode] = Prepared(assembled, [data.num_tokens(i) for i in plan], [len(i) for i in plan])
    return prepared


def optimizer_step(
    module: torch.nn.Module,
    loss_of: Callable[[dict[str, torch.Tensor]], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    max_grad_norm: float,
) -> Callable[[dict[str, torch.Tensor]], float]:
    """One training step as the trainer takes it: backward, clip, AdamW step, zero the gradients."""
    parameters = [p for p in module.parameters() if p.requires_grad]

    def step(batch: dict[str, torch.Tensor]) -> float:
        loss = loss_of(batch)
        loss.backward()
        if max_grad_norm:
            torch.nn.utils.clip_grad_norm_(parameters, max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.item()

    return step


def medzoo_step(model: MultimodalModel, optimizer: torch.optim.Optimizer, max_grad_norm: float) -> Callable:
    return optimizer_step(model, lambda batch: step_loss(model, batch, count_targets(batch["labels"])), optimizer,
                          max_grad_norm)


def transformers_step(hf_model: torch.nn.Module, optimizer: torch.optim.Optimizer, max_grad_norm: float) -> Callable:
    return optimizer_step(hf_model, lambda batch: transformers_llava_loss(hf_model, batch), optimizer, max_grad_norm)


def throughput(timing: Timing, prepared: Prepared, warmup: int) -> dict[str, float]:
    timed = range(warmup, warmup + len(timing.seconds))
    samples = sum(prepared.samples[i] for i in timed)
    tokens = sum(prepared.tokens[i] for i in timed)
    return {
        "step_s": round(timing.total / len(timing.seconds), 5),
        "median_step_s": round(timing.median, 5),
        "samples_per_s": round(samples / timing.total, 2),
        "tokens_per_s": round(tokens / timing.total, 1),
    }


def run_training_bench(recipe: Any, steps: int = 8, warmup: int = 2, echo=print) -> dict[str, Any]:
    """Time medzoo and transformers steps on padded, grouped and packed batches of the recipe's instruct stage."""
    stage = bench_stage(recipe)
    tuning = as_dict(stage.tuning)
    if "lora" in (tuning.get("vision"), tuning.get("connector"), tuning.get("language")):
        raise MedzooError(f"stage {stage.name!r}: the transformers baseline needs frozen/full tuning, not LoRA")
    torch.manual_seed(stage.seed)
    model = build_model(recipe.model, shrink=recipe.shrink)
    apply_tuning(model, stage.tuning)
    data = load_stage_data(model, stage, recipe.data.on_bad_record)
    hf_model = transformers_llava_copy(model)
    model.train()
    hf_model.train()
    batches = sample_batches(data, stage, warmup + steps)
    prepared = prepare(model, data, stage, batches)
    ours = medzoo_step(model, build_optimizer(model, stage), stage.max_grad_norm)
    theirs = transformers_step(hf_model, build_optimizer(hf_model, stage), stage.max_grad_norm)  # the same optimizer
    contenders = {}
    for mode in BATCHING:
        contenders[f"medzoo/{mode}"] = _bind(ours, prepared[mode].batches)
        contenders[f"transformers/{mode}"] = _bind(theirs, prepared[mode].batches)
    echo(f"training step: {stage.name} stage, micro-batch {stage.micro_batch_size}, {warmup} warmup + {steps} timed rounds")
    timings = interleaved(contenders, steps, warmup)
    rows = []
    for mode in BATCHING:
        medzoo = throughput(timings[f"medzoo/{mode}"], prepared[mode], warmup)
        hf = throughput(timings[f"transformers/{mode}"], prepared[mode], warmup)
        rows.append({"batching": mode, "medzoo": medzoo, "transformers": hf,
                     "time_ratio": round(medzoo["step_s"] / hf["step_s"], 3),
                     "median_time_ratio": round(medzoo["median_step_s"] / hf["median_step_s"], 3)})
    baseline = rows[0]["medzoo"]
    batching = [
        {"batching": row["batching"], "tokens_per_s": row["medzoo"]["tokens_per_s"],
         "baseline_tokens_per_s": baseline["tokens_per_s"],
         "ratio": round(row["medzoo"]["tokens_per_s"] / baseline["tokens_per_s"], 3)}
        for row in rows[1:]
    ]
    padding = {mode: _fill(prepared[mode]) for mode in BATCHING}
    return {
        "recipe": recipe.name, "stage": stage.name, "micro_batch_size": stage.micro_batch_size,
        "max_length": stage.max_length, "precision": stage.precision, "steps": steps, "warmup": warmup,
        "samples": len(data.samples),
        "attention": {"language": model.language.model.config._attn_implementation,
                      "vision": model.vision.model.config._attn_implementation},
        "fill": padding, "rows": rows, "batching": batching,
    }


def _fill(prepared: Prepared) -> float:
    """Real tokens / tensor positions: how much of each batch is not padding."""
    positions = sum(batch["input_ids"].numel() for batch in prepared.batches)
    return round(sum(prepared.tokens) / positions, 3)


def _bind(step: Callable, batches: list[dict[str, torch.Tensor]]) -> Callable[[int], object]:
    return lambda index: step(batches[index])
