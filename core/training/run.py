"""Running a recipe's curriculum: stage after stage, each from the previous stage's weights, resumable."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from medzoo.core.atomic_writes import write_atomically
from medzoo.core.checked_reads import read_json
from medzoo.core.cpu_threads import adjust_threads
from medzoo.core.errors import RecipeError, TrainingError
from medzoo.core.model.build import build_model
from medzoo.core.model.components import as_dict
from medzoo.core.model.multimodal import MultimodalModel
from medzoo.core.model.persistence import FolderFiles
from medzoo.core.plugin_system.manager import components
from medzoo.core.training.distributed import cpu_accelerator, is_sharded, whole_model_construction
from medzoo.core.training.objectives import stage_objective
from medzoo.core.training.provenance import reproducibility_record
from medzoo.core.training.run_folder import (
    RECIPE_FILE,
    check_recipe_unchanged,
    recipe_yaml,
    refuse_existing_run,
    refuse_foreign_run_folder,
    write_run_marker,
)
from medzoo.core.training.run_lock import run_lock
from medzoo.core.training.tracking import RunTracking
from medzoo.core.training.trainer import StageResult, train_stage
from medzoo.core.training.tuning_checks import check_before_weights, check_stage_tuning

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
#: called on the main process once a stage is saved: ``(run folder, stage folder, stage name)``
AfterStage = Callable[[Path, Path, str], None]


@dataclass
class RecipeRun:
    """A recipe's run in progress: its stages, where it writes, and the model carried from stage to stage."""

    recipe: Any
    output_dir: Path
    stages: list[Any]
    accelerator: Any
    resume: bool
    echo: Callable[..., None]
    tracking: RunTracking
    results: list[dict[str, Any]] = field(default_factory=list)
    model: MultimodalModel | None = None  # the model in memory, to continue with
    trained: MultimodalModel | None = None  # the last stage's model whole, on the main process
    previous: Path | None = None  # the last stage's saved model
    after_stage: AfterStage | None = None  # the application's work once a stage is saved (its plots)
    folder_files: FolderFiles | None = None  # files the application adds to every saved model folder (its card)

    @property
    def main(self) -> bool:
        return self.accelerator.is_main_process


def train_recipe(
    recipe: Any,
    output_dir: str | Path,
    resume: bool = False,
    echo=print,
    prepare_data: PrepareData | None = None,
    allow_recipe_change: bool = False,
    tracking: RunTracking | None = None,
    after_stage: AfterStage | None = None,
    folder_files: FolderFiles | None = None,
) -> Path:
    """Train every stage of ``recipe``; returns the final model directory (``output_dir/final``).

    Each step goes to the recipe's experiment trackers (``logging``), started once the run folder is checked and
    finished at the end; a caller that logs more into the same trackers (``medzoo run``: the evaluation) passes
    its own ``tracking`` and finishes it.

    The application adds its own work through callbacks, all run on the main process: ``prepare_data(recipe,
    echo)`` once before any stage reads data (it synthesises the built-in set when the recipe asks for it),
    ``after_stage(run folder, stage folder, stage name)`` once a stage is saved (it draws the stage's plots) and
    ``folder_files`` into every model folder saved (the model card, see :data:`persistence.FolderFiles`).

    The run folder is medzoo's alone while the run lasts (``run.lock``, see :mod:`run_lock`). Without
    ``resume`` a folder that already holds a run (a stage folder, ``final/``, ``run.json``) is refused; with it
    the recipe must train what the saved ``recipe.yaml`` trained (names, notes and benchmarks may differ, see
    :data:`run_folder.UNTRAINED_KEYS`) unless ``allow_recipe_change``. A folder holding entries of a run's names
    that medzoo did not write (no ``medzoo_run.json``) is refused either way.
    """
    owned = tracking is None
    tracking = RunTracking.for_recipe(recipe, echo) if tracking is None else tracking
    try:
        with start_run(recipe, Path(output_dir), resume, echo, prepare_data, allow_recipe_change, tracking) as run:
            run.after_stage, run.folder_files = after_stage, folder_files
            for index, stage in enumerate(run.stages):
                run_stage(run, index, stage)
            return finish_run(run)
    finally:
        if owned:
            tracking.finish()


@contextmanager
def start_run(
    recipe: Any,
    output_dir: Path,
    resume: bool,
    echo,
    prepare_data: PrepareData | None,
    allow_recipe_change: bool = False,
    tracking: RunTracking | None = None,
) -> Iterator[RecipeRun]:
    """Plan the stages, start the accelerator, check and lock the run folder (main process), prepare the data,
    write the resolved ``recipe.yaml`` and start the trackers; the lock is held until the block ends."""
    stages = planned_stages(recipe)
    adjust_threads()  # the intra-op thread count is fixed before any computation (unless MEDZOO_THREADS=auto)
    stage_folders = [stage_directory(output_dir, index, stage).name for index, stage in enumerate(stages)]
    accelerator = make_accelerator()
    for stage in stages:  # before any weights load: options the run's device cannot honour (QLoRA without 4-bit)
        check_stage_tuning(stage, accelerator.device)
    check_before_weights(recipe, stages)  # the model's shapes and the modules' tuning, on a weightless model
    main = accelerator.is_main_process
    if main:
        refuse_foreign_run_folder(output_dir, stage_folders)
        write_run_marker(output_dir, str(recipe.name))
    else:  # one process speaks for the run
        echo = _silent

    def check() -> None:  # once the lock is held: what the folder holds can no longer change under us
        if resume:
            check_recipe_unchanged(output_dir, recipe, allow_recipe_change, echo)
        else:
            refuse_existing_run(output_dir, stage_folders)

    with run_lock(output_dir, enabled=main, check=check if main else None):
        if main and prepare_data is not None:
            prepare_data(recipe, echo)
        accelerator.wait_for_everyone()
        tracking = tracking or RunTracking()
        if main:
            write_atomically(output_dir / RECIPE_FILE, recipe_yaml(recipe))
            tracking.start(output_dir, recipe)
        yield RecipeRun(recipe, output_dir, stages, accelerator, resume, echo, tracking)


def run_stage(run: RecipeRun, index: int, stage: Any) -> None:
    """Train one stage (or, resuming, skip it when it is complete) and save its model and summary."""
    stage_dir = stage_directory(run.output_dir, index, stage)
    done = stage_dir / DONE
    if run.resume and done.is_file():
        run.echo(f"stage {stage.name}: already complete, skipped")
        run.results.append(read_json(done, TrainingError, "the stage's summary"))
        run.tracking.end_stage(run.results[-1], send=False)
        run.previous, run.model, run.trained = stage_dir / "model", None, None
        return
    model = stage_model(run, stage)
    run.echo(f"stage {index + 1}/{len(run.stages)}: {stage.name} ({stage.role})")
    accelerator = run.accelerator
    result = train_stage(model, stage, stage_dir, accelerator, run.recipe.data.on_bad_record, run.resume, run.echo,
                         run.tracking)
    accelerator.wait_for_everyone()
    run.trained = result.model
    summary = save_stage(run, stage, stage_dir, result)
    accelerator.free_memory()
    # the sharded model was consumed: the next stage loads the saved one
    run.model = None if is_sharded(accelerator) else model
    accelerator.wait_for_everyone()
    run.echo(
        f"stage {stage.name}: {result.steps} steps, loss {result.first_loss:.4f} -> {result.last_loss:.4f}, "
        f"{result.seconds:.1f}s"
    )
    run.results.append(summary)
    run.tracking.end_stage(summary)
    if run.main and run.after_stage is not None:
        run.after_stage(run.output_dir, stage_dir, stage.name)
    run.previous = stage_dir / "model"


def stage_model(run: RecipeRun, stage: Any) -> MultimodalModel:
    """The model a stage starts from: the one in memory when it continues the previous stage, else built (the
    first stage) or loaded (``init_from``, or after a skipped or sharded stage)."""
    init_dir = run.previous
    if stage.init_from is not None:
        source_index = [s.name for s in run.stages].index(stage.init_from)
        init_dir = stage_directory(run.output_dir, source_index, run.stages[source_index]) / "model"
    if run.model is not None and init_dir == run.previous:
        return run.model
    with whole_model_construction(run.accelerator):
        if init_dir is None:
            torch.manual_seed(stage.seed)
            return build_model(run.recipe.model, shrink=run.recipe.shrink)
        return MultimodalModel.from_pretrained(str(init_dir))


def save_stage(run: RecipeRun, stage: Any, stage_dir: Path, result: StageResult) -> dict[str, Any]:
    """On the main process: the stage's model, its ``DONE.json`` summary; its checkpoints go. Returns the summary."""
    # every option with its default filled in (a GRPO stage: each reward with its weight, the rollout backend)
    summary = {
        "stage": stage.name, "role": stage.role, "objective": stage_objective(stage).describe(), "steps": result.steps,
        "first_loss": result.first_loss,
        "last_loss": result.last_loss, "seconds": round(result.seconds, 2), "samples": result.samples,
        "processes": run.accelerator.num_processes,
    }
    if run.main:
        result.model.save_pretrained(str(stage_dir / "model"), extra={"stage": stage.name, "recipe": run.recipe.name},
                                     folder_files=run.folder_files)
        write_atomically(stage_dir / DONE, json.dumps(summary, indent=2))
        shutil.rmtree(stage_dir / "checkpoints", ignore_errors=True)
    return summary


def finish_run(run: RecipeRun) -> Path:
    """Save ``final/`` and ``run.json``; a multi-process run leaves its process group."""
    final = run.output_dir / FINAL
    if run.main:
        model = run.trained if run.trained is not None else MultimodalModel.from_pretrained(str(run.previous))
        model.save_pretrained(str(final), extra={"stage": run.stages[-1].name, "recipe": run.recipe.name},
                              folder_files=run.folder_files)
        # what each stage optimised, so that no DPO (or later RL) model passes for a supervised one
        objectives = [{"stage": summary["stage"], **summary.get("objective", {"name": "sft"})} for summary in run.results]
        results = {"recipe": run.recipe.name, "objectives": objectives, "stages": run.results,
                   "reproducibility": reproducibility_record(run.stages, run.accelerator.num_processes,
                                                             run.accelerator.device.type)}
        write_atomically(run.output_dir / "run.json", json.dumps(results, indent=2))
    run.accelerator.wait_for_everyone()
    if run.accelerator.num_processes > 1:
        run.accelerator.end_training()  # leave the process group before the interpreter shuts down
    return final


def _silent(*_: Any, **__: Any) -> None:
    return None
