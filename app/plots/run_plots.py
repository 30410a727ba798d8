"""The plots of one run folder: listed (for the leaderboard's links) or drawn again from the stages' logs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from medzoo.app.plots.curves import PLOTS, write_stage_plots
from medzoo.core.training.run_folder import STAGE_FOLDER

KINDS = ("loss", "lr")
SWEEP_PLOT = "sweep-loss"


def stage_folders(run_dir: str | Path) -> list[tuple[str, Path]]:
    """``(stage name, folder)`` of every ``NN-<stage>`` folder, in training order."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    folders = sorted(p for p in run_dir.iterdir() if p.is_dir() and STAGE_FOLDER.fullmatch(p.name))
    return [(folder.name.split("-", 1)[1], folder) for folder in folders]


def run_plots(run_dir: str | Path) -> dict[str, Path]:
    """The PNGs under ``run_dir/plots`` by name (``<stage>-loss``, ``<stage>-lr``, in training order, then a sweep's
    ``sweep-loss``); only those that exist, nothing drawn."""
    plots = Path(run_dir) / PLOTS
    names = [f"{stage}-{kind}" for stage, _ in stage_folders(run_dir) for kind in KINDS] + [SWEEP_PLOT]
    return {name: plots / f"{name}.png" for name in names if (plots / f"{name}.png").is_file()}


def redraw_run(run_dir: str | Path) -> dict[str, Path]:
    """Draw every stage's plots again from its ``metrics.jsonl``; returns what was written."""
    written: dict[str, Path] = {}
    for stage, folder in stage_folders(run_dir):
        written.update(write_stage_plots(Path(run_dir), folder, stage))
    return written


def stage_plotter(echo: Callable[[str], None]) -> Callable[[Path, Path, str], None]:
    """What training calls once a stage is saved: draw ``plots/<stage>-{loss,lr}.png``; a figure that cannot be
    drawn is a warning through ``echo``, never the end of the run."""

    def plot_stage(run_dir: Path, stage_dir: Path, name: str) -> None:
        try:
            write_stage_plots(run_dir, stage_dir, name)
        except Exception as error:
            reason = (str(error).splitlines() or [""])[0]
            echo(f"warning: stage {name}: plots not drawn ({type(error).__name__}: {reason}); "
                 f"`medzoo plot {run_dir}` draws them again")

    return plot_stage
