"""``medzoo leaderboard``: compare evaluation runs (and published results) in one table.

Each RUN_DIR holds ``eval/<benchmark>/metrics.json`` files and optionally ``run.json`` with the model
name (see ``medzoo.plugins.leaderboard.runs`` for the contract).
"""

from __future__ import annotations

from pathlib import Path

import click


@click.command("leaderboard")
@click.argument("run_dirs", nargs=-1, type=click.Path(file_okay=False))
@click.option("--format", "fmt", type=click.Choice(["md", "csv", "html"]), default="md", show_default=True)
@click.option("--published", is_flag=True, help="Add published reference rows (with their source).")
@click.option("--output", "-O", type=click.Path(dir_okay=False), default=None, help="Write to a file.")
def leaderboard(run_dirs: tuple[str, ...], fmt: str, published: bool, output: str | None) -> None:
    """One row per model, column groups per benchmark (headline metrics, percent)."""
    from medzoo.core.errors import DataError
    from medzoo.plugins.leaderboard.render import leaderboard_from_runs, render

    if not run_dirs and not published:
        raise DataError("leaderboard: give at least one RUN_DIR, or --published for the reference rows")
    text = render(leaderboard_from_runs(run_dirs, published=published), fmt)
    if fmt == "md":
        from medzoo.plugins.leaderboard.ablation import render_ablation_markdown

        text += render_ablation_markdown([Path(run_dir) for run_dir in run_dirs])
    if output:
        Path(output).write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text, nl=False)
