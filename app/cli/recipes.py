"""``medzoo recipe show`` (the resolved YAML) and ``medzoo recipe validate`` (schema, plugins, stages, data)."""

from __future__ import annotations

from pathlib import Path

import click

OVERRIDE_HELP = "Recipe override key=value (repeatable; stages by name: stages.instruct.optimizer.lr=1e-5)."


@click.group("recipe")
def recipe_group() -> None:
    """Inspect and check recipes (a name in recipes/ or a YAML path)."""


@recipe_group.command("show")
@click.argument("recipe")
@click.option("-o", "--override", "overrides", multiple=True, help=OVERRIDE_HELP)
def show(recipe: str, overrides: tuple[str, ...]) -> None:
    """Print RECIPE with inheritance, overrides and ${...} references resolved."""
    from medzoo.core.recipes.loading import load_recipe, recipe_to_yaml

    loaded = load_recipe(recipe, list(overrides))
    chain = " <- ".join(str(path) for path in reversed(loaded.chain))
    click.echo(f"# {chain}")
    click.echo(recipe_to_yaml(loaded.config), nl=False)


@recipe_group.command("validate")
@click.argument("recipe")
@click.option("-o", "--override", "overrides", multiple=True, help=OVERRIDE_HELP)
@click.option("--check-data", is_flag=True, help="Also require every dataset and benchmark file to exist.")
def validate(recipe: str, overrides: tuple[str, ...], check_data: bool) -> None:
    """Check RECIPE: schema, plugin names, stage references and the curriculum's plan (exit code 2 if not)."""
    from medzoo.core.errors import RecipeError
    from medzoo.core.recipes.loading import load_recipe
    from medzoo.core.training.run import planned_stages

    loaded = load_recipe(recipe, list(overrides))
    config = loaded.config
    stages = planned_stages(config)
    if check_data:
        for key, path in data_files(config):
            if not Path(path).exists():
                raise RecipeError(f"{loaded.source}: {key}: {path}: no such file")
    names = ", ".join(stage.name for stage in stages)
    click.echo(f"ok: {loaded.source} ({config.name}; stages {names}; {len(config.benchmarks)} benchmark(s))")


def data_files(config) -> list[tuple[str, str]]:
    """(key path, file) of every dataset of every stage and every benchmark with a path."""
    files = []
    for index, stage in enumerate(config.stages):
        for d, dataset in enumerate(stage.datasets):
            files.append((f"stages[{index}].datasets[{d}].path", dataset.path))
    for index, benchmark in enumerate(config.benchmarks):
        if benchmark.path:
            files.append((f"benchmarks[{index}].path", benchmark.path))
    return files
