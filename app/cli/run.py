"""``medzoo run`` (the main job) and ``medzoo sweep`` (a grid of recipe overrides, trained and evaluated in turn)."""

from __future__ import annotations

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
@click.option("-g", "--grid", "grids", multiple=True,
              help="key=v1,v2,... (repeatable); every combination is trained and evaluated.")
@click.option("-o", "--override", "overrides", multiple=True, help="Override applied to every combination.")
@click.option("--output-dir", "-d", required=True, type=click.Path(file_okay=False))
@click.option("--image-ablation", type=click.Choice(["noise", "blank"]), default=None)
@ALLOW_RECIPE_CHANGE
def sweep_command(recipe, grids, overrides, output_dir, image_ablation, allow_recipe_change) -> None:
    """Train and evaluate RECIPE once per combination of the grid, then write the sweep's leaderboard. RECIPE may
    be a sweep file (recipes/sweeps/NAME.yaml or a path) naming several recipes: each is a combination (crossed
    with its grid and -g), and stages that combinations share train once."""
    from medzoo.app.pipeline import run_recipe
    from medzoo.app.sweep_plan import (
        Sweep,
        combinations,
        grid_axes,
        load_sweep,
        seed_from_earlier,
        sweep_file,
        training_prefix,
    )
    from medzoo.core.errors import RecipeError
    from medzoo.core.recipes.loading import load_recipe

    found = sweep_file(recipe)
    sweep = load_sweep(found) if found is not None else Sweep((recipe,))
    sweep = Sweep(sweep.recipes, (*sweep.axes, *grid_axes(grids)), (*sweep.overrides, *overrides), sweep.name,
                  sweep.description, sweep.source)
    if found is None and not grids:
        raise RecipeError(f"sweep {recipe}: no --grid given; expected -g key=v1,v2,... or a sweep file")
    output = Path(output_dir)
    run_dirs, finished = [], []
    for combination in combinations(sweep):
        config = load_recipe(combination.recipe, list(combination.overrides)).config
        if combination.grid_label:
            config.name = f"{config.name}[{combination.grid_label}]"
        click.echo(f"== {combination.label}")
        run_dir = output / combination.label
        prefix = training_prefix(config)
        copied = seed_from_earlier(run_dir, prefix, finished)
        if copied:
            click.echo(f"shared with an earlier combination, copied: {', '.join(copied)}")
        run_recipe(config, run_dir, resume=True, image_ablation=image_ablation, echo=click.echo,
                   allow_recipe_change=allow_recipe_change)
        run_dirs.append(run_dir)
        finished.append((run_dir, prefix))
    from medzoo.app.plots import write_sweep_plot

    figure = write_sweep_plot(output, run_dirs)  # every combination's loss over its curriculum
    if figure is not None:
        click.echo(f"sweep loss curves: {figure}")
    click.echo(_leaderboard(run_dirs, output / "leaderboard.md"))
