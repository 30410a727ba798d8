"""A sweep's figure: each run's loss over its whole curriculum (every stage's steps after the previous ones')."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from medzoo.app.plots.curves import PLOTS, Curve, curve_figure, png_bytes, read_records
from medzoo.app.plots.run_plots import SWEEP_PLOT, stage_folders
from medzoo.core.atomic_writes import write_atomically


def curriculum_curve(run_dir: Path, label: str | None = None) -> Curve:
    """A run's loss against its global step: each stage's steps follow the previous stage's last."""
    steps: list[float] = []
    values: list[float] = []
    offset = 0.0
    for _, folder in stage_folders(run_dir):
        records = [r for r in read_records(folder / "metrics.jsonl") if isinstance(r.get("loss"), int | float)]
        steps += [offset + r["step"] for r in records]
        values += [float(r["loss"]) for r in records]
        offset = steps[-1] if steps else offset
    return Curve(label or run_dir.name, steps, values)


def sweep_curves(run_dirs: Sequence[Path]) -> list[Curve]:
    return [curve for curve in (curriculum_curve(Path(run)) for run in run_dirs) if curve.steps]


def write_sweep_plot(sweep_dir: str | Path, run_dirs: Sequence[str | Path]) -> Path | None:
    """``sweep_dir/plots/sweep-loss.png``, one line per run; ``None`` when no run logged a step."""
    curves = sweep_curves([Path(run) for run in run_dirs])
    if not curves:
        return None
    figure = curve_figure(curves, f"sweep {Path(sweep_dir).name}: loss over the curriculum", "loss",
                          xlabel="step (stages in order)")
    return write_atomically(Path(sweep_dir) / PLOTS / f"{SWEEP_PLOT}.png", png_bytes(figure))
