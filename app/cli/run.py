"""``medzoo run`` (the main job) and ``medzoo sweep`` (a grid of recipe overrides, trained and evaluated in turn)."""

from __future__ import annotations

import itertools
from pathlib import Path

import click

DEFAULT_RECIPE = "tiny"


def _leaderboard(run_dirs: list[Path], output: Path) -> str:
    from medzoo.app.leaderboard.ablation import render_ablation_markdown
    from medzoo.app.leaderboard.render import render_run_dirs
    from medzoo.app.leaderboard.subset_details import render_subsets_markdown
    from medzoo.core.atomic_writes import write_atomically

    text = (render_run_dirs([str(p) for p in run_dirs], fmt="md") + render_ablation_markdown(run_dirs)
            + render_subsets_markdown(run_dirs))
    write_atomically(output, text)
    return text


ALLOW_RECIPE_CHANGE = click.option(
    "--allow-recipe-change", is_flag=True,
    help="Continue a run whose recipe (or -o overrides) now trains differently from the one it started with.")


@click.command("run")
@click.argument("recipe", required=False, default=DEFAULT_RECIPE)
@click.option("--output-dir", "-d", default=None, type=click.Path(file_okay=False),
              help="Run directory (default: runs/<recipe>).")
@click.option("-o", "--override", "overrides", multiple=True, help="Recipe override key=value (repeatable).")
@click.option("--fresh", is_flag=True,
              help="Start over: remove the stages, final model and answers medzoo wrote into the run directory "
                   "(a folder medzoo did not write is refused).")
@ALLOW_RECIPE_CHANGE
@click.option("--image-ablation", type=click.Choice(["noise", "blank"]), default="noise", show_default=True)
@click.option("--batch-size", default=16, show_default=True, type=click.IntRange(min=1),
              help="Questions answered per batch.")
def run_command(recipe, output_dir, overrides, fresh, allow_recipe_change, image_ablation, batch_size) -> None:
    """Data -> every stage -> every benchmark -> leaderboard.md (default recipe: tiny); runs again resume."""
    from medzoo.app.pipeline import run_recipe
    from medzoo.core.recipes.loading import load_recipe
    from medzoo.core.training.run_folder import RecipeChangedError

    config = load_recipe(recipe, list(overrides)).config
    output = Path(output_dir or f"runs/{config.name}")
    try:
        run_recipe(config, output, resume=True, batch_size=batch_size, image_ablation=image_ablation,
                   echo=click.echo, allow_recipe_change=allow_recipe_change, fresh=fresh)
    except RecipeChangedError as error:
        raise RecipeChangedError(f"{error}, or --fresh to start the run over") from None
    click.echo(_leaderboard([output], output / "leaderboard.md"))


@click.command("sweep")
@click.argument("recipe")
@click.option("-g", "--grid", "grids", multiple=True, required=True,
              help="key=v1,v2,... (repeatable); every combination is trained and evaluated.")
@click.option("-o", "--override", "overrides", multiple=True, help="Override applied to every combination.")
@click.option("--output-dir", "-d", required=True, type=click.Path(file_okay=False))
@click.option("--image-ablation", type=click.Choice(["noise", "blank"]), default=None)
@ALLOW_RECIPE_CHANGE
def sweep_command(recipe, grids, overrides, output_dir, image_ablation, allow_recipe_change) -> None:
    """Train and evaluate RECIPE once per combination of the grid, then write the sweep's leaderboard."""
    from medzoo.app.pipeline import run_recipe
    from medzoo.core.errors import RecipeError
    from medzoo.core.recipes.loading import load_recipe

    axes = []
    for grid in grids:
        if "=" not in grid:
            raise RecipeError(f"--grid {grid!r}: expected key=v1,v2,...")
        key, values = grid.split("=", 1)
        axes.append([(key, value) for value in values.split(",")])
    output = Path(output_dir)
    run_dirs = []
    for combination in itertools.product(*axes):
        label = "__".join(f"{key.split('.')[-1]}={value}" for key, value in combination).replace("/", "_")
        settings = [*overrides, *(f"{key}={value}" for key, value in combination)]
        config = load_recipe(recipe, settings).config
        config.name = f"{config.name}[{label}]"
        click.echo(f"== {label}")
        run_recipe(config, output / label, resume=True, image_ablation=image_ablation, echo=click.echo,
                   allow_recipe_change=allow_recipe_change)
        run_dirs.append(output / label)
    from medzoo.app.plots import write_sweep_plot

    figure = write_sweep_plot(output, run_dirs)  # every combination's loss over its curriculum
    if figure is not None:
        click.echo(f"sweep loss curves: {figure}")
    click.echo(_leaderboard(run_dirs, output / "leaderboard.md"))
