"""``medzoo leaderboard``: compare evaluation runs (and published results) in one table.

Each RUN_DIR holds ``eval/<benchmark>/metrics.json`` files and optionally ``run.json`` with the model
name (see ``medzoo.app.leaderboard.runs`` for the contract). ``medzoo leaderboard runs/*`` works: a path
that is not a folder, or a folder without evaluations, is left out with a one-line note on stderr; the
output file is written once, atomically, when the whole table is ready.
"""

from __future__ import annotations

from pathlib import Path

import click


def evaluated_runs(run_dirs: tuple[str, ...]) -> list[Path]:
    """The RUN_DIRs that hold evaluations, in the given order; the others are named on stderr."""
    from medzoo.app.leaderboard.runs import metrics_files
    from medzoo.core.errors import DataError

    kept = []
    for run_dir in run_dirs:
        folder = Path(run_dir).expanduser()
        if not folder.exists():
            raise DataError(f"{folder}: no such run folder")
        if not folder.is_dir():
            click.echo(f"skipping {folder}: not a run folder", err=True)
        elif not metrics_files(folder):
            click.echo(f"skipping {folder}: no eval/<benchmark>/metrics.json (not evaluated yet)", err=True)
        else:
            kept.append(folder)
    return kept


@click.command("leaderboard")
@click.argument("run_dirs", nargs=-1, type=click.Path())
@click.option("--format", "fmt", type=click.Choice(["md", "csv", "html"]), default="md", show_default=True)
@click.option("--published", is_flag=True, help="Add published reference rows (with their source).")
@click.option("--output", "-O", type=click.Path(dir_okay=False), default=None,
              help="Write to a file (atomically, once the table is complete).")
def leaderboard(run_dirs: tuple[str, ...], fmt: str, published: bool, output: str | None) -> None:
    """One row per model, column groups per benchmark (headline metrics, percent)."""
    from medzoo.app.leaderboard.render import leaderboard_from_runs, render
    from medzoo.core.atomic_writes import write_atomically
    from medzoo.core.errors import DataError

    if not run_dirs and not published:
        raise DataError("leaderboard: give at least one RUN_DIR, or --published for the reference rows")
    runs = evaluated_runs(run_dirs)
    if run_dirs and not runs and not published:
        raise DataError(f"leaderboard: none of the {len(run_dirs)} RUN_DIRs holds evaluations "
                        "(medzoo eval or medzoo run writes RUN_DIR/eval/<benchmark>/metrics.json)")
    text = render(leaderboard_from_runs(runs, published=published), fmt, output)
    if fmt == "md":
        from medzoo.app.leaderboard.ablation import render_ablation_markdown
        from medzoo.app.leaderboard.subset_details import render_subsets_markdown

        text += render_ablation_markdown(runs) + render_subsets_markdown(runs)
    if output:
        write_atomically(output, text)
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text, nl=False)
