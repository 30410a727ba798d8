"""Running a recipe's curriculum: stage after stage, each from the previous stage's weights, resumable."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from medzoo.core.errors import RecipeError
from medzoo.core.model.build import as_dict, build_model
from medzoo.core.model.multimodal import MultimodalModel
from medzoo.core.plugin_system.manager import components
from medzoo.core.training.checkpoint import write_atomically
from medzoo.core.training.distributed import cpu_accelerator, is_sharded, whole_model_construction
from medzoo.core.training.trainer import train_stage

DONE = "DONE.json"
FINAL = "final"


def planned_stages(recipe: Any) -> list[Any]:
    curriculum = components().get("curriculum", recipe.curriculum.name).factory(**as_dict(recipe.curriculum.options))
    stages = curriculum.plan([stage.copy() for stage in recipe.stages])
    if not stages:
        raise RecipeError(f"recipe {recipe.name!r}: curriculum {recipe.curriculum.name!r} leaves no stage to train")
    names = [stage.name for stage in stages]
    for index, stage in enumerate(stages):
        if stage.init_from is not None and stage.init_from not in names[:index]:
            raise RecipeError(
                f"stages.{stage.name}.init_from: {stage.init_from!r} is not an earlier stage; expected one of {names[:index]}"
            )
    return stages


def stage_directory(output_dir: Path, index: int, stage: Any) -> Path:
    return output_dir / f"{index + 1:02d}-{stage.name}"


def make_accelerator():
    if torch.cuda.is_available():
        from accelerate import Accelerator

        return Accelerator()
    return cpu_accelerator()


PrepareData = Callable[[Any, Callable[[str], None]], None]


def train_recipe(
    recipe: Any,
    output_dir: str | Path,
    resume: bool = False,
    echo=print,
    prepare_data: PrepareData | None = None,
) -> Path:
    """Train every stage of ``recipe``; returns the final model directory (``output_dir/final``).

    ``prepare_data(recipe, echo)``, when given, runs once on the main process before any stage reads data
    (the application passes one that synthesises the built-in set when the recipe asks for it).
    """
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    stages = planned_stages(recipe)
    accelerator = make_accelerator()
    main = accelerator.is_main_process
    if not main:  # one process speaks for the run
        echo = _silent
    if main and prepare_data is not None:
        prepare_data(recipe, echo)
    accelerator.wait_for_everyone()
    if main:
        write_atomically(output_dir / "recipe.yaml", OmegaConf.to_yaml(recipe, resolve=True))
    results: list[dict[str, Any]] = []
    model: MultimodalModel | None = None
    trained: MultimodalModel | None = None  # the last stage's model whole, on the main process
    previous: Path | None = None
    for index, stage in enumerate(stages):
        stage_dir = stage_directory(output_dir, index, stage)
        init_dir = previous
        if stage.init_from is not None:
            source_index = [s.name for s in stages].index(stage.init_from)
            init_dir = stage_directory(output_dir, source_index, stages[source_index]) / "model"
        done = stage_dir / DONE
        if resume and done.is_file():
            echo(f"stage {stage.name}: already complete, skipped")
            results.append(json.loads(done.read_text()))
            previous, model, trained = stage_dir / "model", None, None
            continue
        if model is None or init_dir != previous:
            with whole_model_construction(accelerator):
                if init_dir is None:
                    torch.manual_seed(stage.seed)
                    model = build_model(recipe.model, shrink=recipe.shrink)
                else:
                    model = MultimodalModel.from_pretrained(str(init_dir))
        echo(f"stage {index + 1}/{len(stages)}: {stage.name} ({stage.role})")
        result = train_stage(model, stage, stage_dir, accelerator, recipe.data.on_bad_record, resume, echo)
        accelerator.wait_for_everyone()
        trained = result.model
        summary = {
            "stage": stage.name, "role": stage.role, "steps": result.steps, "first_loss": result.first_loss,
            "last_loss": result.last_loss, "seconds": round(result.seconds, 2), "samples": result.samples,
            "processes": accelerator.num_processes,
        }
        if main:
            trained.save_pretrained(str(stage_dir / "model"), extra={"stage": stage.name, "recipe": recipe.name})
            write_atomically(done, json.dumps(summary, indent=2))
            shutil.rmtree(stage_dir / "checkpoints", ignore_errors=True)
        accelerator.free_memory()
        if is_sharded(accelerator):  # the sharded model was consumed: the next stage loads the saved one
            model = None
        accelerator.wait_for_everyone()
        echo(
            f"stage {stage.name}: {result.steps} steps, loss {result.first_loss:.4f} -> {result.last_loss:.4f}, "
            f"{result.seconds:.1f}s"
        )
        results.append(summary)
        previous = stage_dir / "model"
    final = output_dir / FINAL
    if main:
        final_model = trained if trained is not None else MultimodalModel.from_pretrained(str(previous))
        final_model.save_pretrained(str(final), extra={"stage": stages[-1].name, "recipe": recipe.name})
        write_atomically(output_dir / "run.json", json.dumps({"recipe": recipe.name, "stages": results}, indent=2))
    accelerator.wait_for_everyone()
    if accelerator.num_processes > 1:
        accelerator.end_training()  # leave the process group before the interpreter shuts down
    return final


def _silent(*_: Any, **__: Any) -> None:
    return None
