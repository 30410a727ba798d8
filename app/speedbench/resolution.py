"""What tiling costs: a tiled recipe's training step against the same recipe reading fixed-size images.

Both models are built from the recipe (the fixed-size one with the tiling options nulled), with the same seed,
tuning and stage data; the same micro-batches of the same records are assembled before timing, and the two
steps are timed interleaved in this process (app/speedbench/timing.py), so the ratio compares like with like.
The report gives the mean image tokens per image and the pictures the tower reads per image of each, the step
times, and the tiled / fixed ratios.
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from medzoo.app.speedbench.timing import interleaved
from medzoo.app.speedbench.train_step import Prepared, _bind, bench_stage, medzoo_step, throughput
from medzoo.core.errors import MedzooError
from medzoo.core.model.build import build_model
from medzoo.core.model.components import as_dict
from medzoo.core.model.image_processing import TILING_OPTION_DEFAULTS
from medzoo.core.training.plan import StepPlan
from medzoo.core.training.stage_data import StageData, assemble_batch, load_stage_data
from medzoo.core.training.trainer import apply_tuning, build_optimizer


def tiles(model_config: Any) -> bool:
    """Whether a recipe's model section tiles its images."""
    options = (as_dict(model_config).get("vision") or {}).get("options") or {}
    return options.get("image_grid_pinpoints") is not None


def fixed_size_spec(model_config: Any) -> dict[str, Any]:
    """The model section with the tiling options back at their defaults (one fixed-size picture per image)."""
    spec = copy.deepcopy(as_dict(model_config))
    options = dict(spec["vision"].get("options") or {})
    for key in TILING_OPTION_DEFAULTS:
        options.pop(key, None)
    spec["vision"]["options"] = options
    return spec


def image_tokens_per_image(data: StageData, fill_id: int) -> float:
    """Mean image positions per image over the stage's samples (a truncated sample keeps all its image)."""
    counts = [data.samples[i].input_ids.count(fill_id) for i, image in enumerate(data.images) if image is not None]
    return round(sum(counts) / len(counts), 1) if counts else 0.0


def run_resolution_bench(recipe: Any, steps: int = 8, warmup: int = 2, echo=print) -> dict[str, Any]:
    """Time the tiled recipe's step against the fixed-size twin's on the same micro-batches."""
    if not tiles(recipe.model):
        raise MedzooError(f"recipe {recipe.name!r}: model.vision.options.image_grid_pinpoints is not set; the "
                          "resolution section compares a tiled recipe with its fixed-size twin")
    stage = bench_stage(recipe)
    runs: dict[str, dict[str, Any]] = {}
    for name, spec in (("tiled", as_dict(recipe.model)), ("fixed", fixed_size_spec(recipe.model))):
        torch.manual_seed(stage.seed)
        model = build_model(spec, shrink=recipe.shrink)
        apply_tuning(model, stage.tuning)
        data = load_stage_data(model, stage, recipe.data.on_bad_record)
        runs[name] = {"model": model.train(), "data": data}
    tiled, fixed = runs["tiled"]["data"], runs["fixed"]["data"]
    if [s.sample_id for s in tiled.samples] != [s.sample_id for s in fixed.samples]:
        raise MedzooError(f"stage {stage.name!r}: the tiled model keeps {len(tiled.samples)} samples and the "
                          f"fixed-size one {len(fixed.samples)} (max_length {stage.max_length} cuts some tiled "
                          "images); raise the stage's max_length to compare the same records")
    plan = StepPlan(tiled.lengths(), tiled.sizes, tiled.weights, stage.micro_batch_size, stage.seed,
                    group_by_length=False)
    if plan.per_epoch < warmup + steps:
        raise MedzooError(f"stage {stage.name!r}: {len(tiled.samples)} samples give fewer than {warmup + steps} "
                          f"batches of {stage.micro_batch_size}")
    indices = [plan.step_batch(i) for i in range(warmup + steps)]
    contenders, prepared = {}, {}
    for name, run in runs.items():
        model, data = run["model"], run["data"]
        batches = [assemble_batch(model, data, batch, model.tokenizer.pad_token_id) for batch in indices]
        prepared[name] = Prepared(batches, [data.num_tokens(b) for b in indices], [len(b) for b in indices])
        step = medzoo_step(model, build_optimizer(model, stage), stage.max_grad_norm)
        contenders[name] = _bind(step, batches)
    echo(f"resolution: {stage.name} stage, tiled vs fixed-size, micro-batch {stage.micro_batch_size}, "
         f"{warmup} warmup + {steps} timed rounds")
    timings = interleaved(contenders, steps, warmup)
    figures = {name: throughput(timings[name], prepared[name], warmup) for name in runs}
    tokens = {name: image_tokens_per_image(run["data"], run["model"].markup.fill_id) for name, run in runs.items()}
    pictures = {name: pictures_per_image(run["model"], prepared[name].batches) for name, run in runs.items()}
    return {
        "recipe": recipe.name, "stage": stage.name, "micro_batch_size": stage.micro_batch_size, "steps": steps,
        "warmup": warmup, "samples": len(tiled.samples),
        "grid_pinpoints": [list(pair) for pair in runs["tiled"]["model"].tiling.pinpoints],
        "image_tokens_per_image": {**tokens, "ratio": round(tokens["tiled"] / max(tokens["fixed"], 1e-9), 3)},
        "pictures_per_image": pictures,
        "step_s": {name: figures[name]["step_s"] for name in runs},
        "median_step_s": {name: figures[name]["median_step_s"] for name in runs},
        "step_time_ratio": round(figures["tiled"]["step_s"] / figures["fixed"]["step_s"], 3),
        "median_step_time_ratio": round(figures["tiled"]["median_step_s"] / figures["fixed"]["median_step_s"], 3),
    }


def pictures_per_image(model: Any, batches: list[dict[str, torch.Tensor]]) -> float:
    """Tower inputs (thumbnail and crops, or the one picture) per image over the prepared batches."""
    pictures = sum(batch["pixel_values"].shape[0] for batch in batches if "pixel_values" in batch)
    images = sum((batch["image_sizes"].shape[0] if "image_sizes" in batch else batch["pixel_values"].shape[0])
                 for batch in batches if "pixel_values" in batch)
    return round(pictures / images, 2) if images else 0.0


def render_resolution(section: dict[str, Any]) -> list[str]:
    tokens = section["image_tokens_per_image"]
    lines = [f"### Resolution ({section['recipe']} recipe tiled vs fixed-size, {section['stage']} stage, micro-batch "
             f"{section['micro_batch_size']}, {section['warmup']} warmup + {section['steps']} timed rounds; grid "
             f"{section['grid_pinpoints']})", ""]
    header = ["images", "image tokens / image", "pictures / image", "s/step", "median s/step"]
    rows = [[name, tokens[name], section["pictures_per_image"][name], section["step_s"][name],
             section["median_step_s"][name]] for name in ("tiled", "fixed")]
    rows.append(["ratio tiled / fixed", tokens["ratio"], "", section["step_time_ratio"],
                 section["median_step_time_ratio"]])
    from medzoo.app.speedbench.markdown_table import markdown_table

    lines += markdown_table(header, rows)
    return [*lines, ""]
