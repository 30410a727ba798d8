"""``medzoo train``, ``medzoo merge-lora`` and ``medzoo model summary``."""

from __future__ import annotations

import json

import click

from medzoo.core.errors import MedzooError


def _load(recipe: str, overrides: tuple[str, ...]):
    from medzoo.core.recipes.loading import load_recipe

    return load_recipe(recipe, list(overrides)).config


@click.command("train")
@click.argument("recipe")
@click.option("--output-dir", "-d", required=True, type=click.Path(file_okay=False), help="Run directory.")
@click.option("-o", "--override", "overrides", multiple=True, help="Recipe override key=value (repeatable).")
@click.option("--resume", is_flag=True, help="Continue from the last checkpoint in the run directory.")
@click.option("--allow-recipe-change", is_flag=True,
              help="With --resume: continue although the recipe now trains differently from the one the run started with.")
def train(recipe: str, output_dir: str, overrides: tuple[str, ...], resume: bool, allow_recipe_change: bool) -> None:
    """Train every stage of RECIPE (a recipe name or YAML path); a run directory that already holds a run needs
    --resume."""
    from accelerate import PartialState

    from medzoo.app.training import train_run

    config = _load(recipe, overrides)
    final = train_run(config, output_dir, resume=resume, echo=click.echo, allow_recipe_change=allow_recipe_change)
    if PartialState().is_main_process:  # under `accelerate launch` every process returns here
        click.echo(f"final model: {final}")


@click.command("merge-lora")
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--output", "-O", "output", required=True, type=click.Path(file_okay=False))
def merge_lora_command(model_dir: str, output: str) -> None:
    """Fold the LoRA adapters of MODEL_DIR into the base weights and save a plain model (OUTPUT must not hold
    MODEL_DIR, and a folder there that is not a medzoo model is refused)."""
    from medzoo.app.model_cards.writing import write_model_card
    from medzoo.core.atomic_writes import refuse_overlap, refuse_unless_ours
    from medzoo.core.model.adapters import merge_adapters
    from medzoo.core.model.multimodal import MultimodalModel
    from medzoo.core.model.persistence import MANIFEST

    refuse_overlap(output, model_dir, "--output")
    refuse_unless_ours(output, MANIFEST, "a merged model")
    model = MultimodalModel.from_pretrained(model_dir)
    merged = merge_adapters(model)
    if not merged:
        raise MedzooError(f"{model_dir}: the model has no LoRA adapters to merge")
    model.save_pretrained(output, folder_files=write_model_card)
    click.echo(f"merged LoRA adapters of {', '.join(merged)} into {output}")


@click.group("model")
def model_group() -> None:
    """Inspect models built from recipes."""


@model_group.command("summary")
@click.argument("recipe")
@click.option("-o", "--override", "overrides", multiple=True, help="Recipe override key=value (repeatable).")
@click.option("--json", "as_json", is_flag=True)
def summary(recipe: str, overrides: tuple[str, ...], as_json: bool) -> None:
    """Parameters per module, trainable parameters per stage, image tokens per image."""
    import copy

    from medzoo.core.model.build import build_model
    from medzoo.core.training.run import planned_stages
    from medzoo.core.training.trainer import apply_tuning

    config = _load(recipe, overrides)
    model = build_model(config.model, shrink=config.shrink)
    report = {
        "recipe": config.name,
        "modules": {
            name: {"plugin": config.model[name].name, "parameters": counts["total"]}
            for name, counts in model.parameter_counts().items()
        },
        "image_tokens_per_image": model.num_image_tokens,
        "vision_tokens_per_image": model.vision.num_tokens,
        "stages": {},
    }
    working = copy.deepcopy(model)
    for stage in planned_stages(config):
        apply_tuning(working, stage.tuning)
        counts = working.parameter_counts()
        report["stages"][stage.name] = {name: c["trainable"] for name, c in counts.items()}
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    if model.tiling is None:
        click.echo(f"recipe {config.name}: {model.num_image_tokens} image tokens per image")
    else:
        click.echo(f"recipe {config.name}: tiled images, {model.num_image_tokens} image tokens per crop and thumbnail "
                   f"(an image's total follows its size; grids {[list(p) for p in model.tiling.pinpoints]})")
    for name, info in report["modules"].items():
        click.echo(f"  {name:<10} {info['plugin']:<14} {info['parameters']:>14,} parameters")
    for stage, trainable in report["stages"].items():
        parts = ", ".join(f"{name} {count:,}" for name, count in trainable.items())
        click.echo(f"  stage {stage}: trainable {sum(trainable.values()):,} ({parts})")
