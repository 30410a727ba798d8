"""``medzoo plot``: draw a run's training plots again, or a sweep's loss comparison."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("plot")
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
def plot_command(run_dir: str) -> None:
    """Draw RUN_DIR/plots/<stage>-loss.png and <stage>-lr.png again from its stages' metrics.jsonl; for a sweep
    folder (runs in its sub-folders) every run's and the sweep's plots/sweep-loss.png."""
    from medzoo.app.plots import redraw_run, write_sweep_plot
    from medzoo.core.errors import MedzooError
    from medzoo.core.training.run_folder import RUN_MARKER, is_run_folder

    folder = Path(run_dir)
    if is_run_folder(folder):
        runs, sweep = [folder], False
    else:
        runs, sweep = sorted(p for p in folder.iterdir() if p.is_dir() and is_run_folder(p)), True
    if not runs:
        raise MedzooError(f"{folder}: not a run folder (no {RUN_MARKER}) and no run folders in it; "
                          "expected a --output-dir of medzoo train, run or sweep")
    written = [path for run in runs for path in redraw_run(run).values()]
    if sweep:
        figure = write_sweep_plot(folder, runs)
        written += [figure] if figure is not None else []
    if not written:
        raise MedzooError(f"{folder}: no stage has logged a step yet (no metrics.jsonl records); nothing to draw")
    for path in written:
        click.echo(str(path))
