"""Training curves as PNG: ``<run>/plots/<stage>-loss.png`` and ``<stage>-lr.png`` from a stage's
``metrics.jsonl`` (matplotlib's Agg canvas, imported when drawing; no pyplot state, no global backend)."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medzoo.core.atomic_writes import write_atomically
from medzoo.core.file_io.text_files import read_text_file

PLOTS = "plots"
#: every figure is this many inches at ``DPI``: 600 x 350 pixels
FIGURE_INCHES = (6.0, 3.5)
DPI = 100


@dataclass(frozen=True)
class Curve:
    """One line of a figure: its legend label and its points."""

    label: str
    steps: list[float]
    values: list[float]


def read_records(metrics: Path) -> list[dict[str, Any]]:
    """The records of a ``metrics.jsonl`` (none when it is missing; a torn last line is left out)."""
    if not metrics.is_file():
        return []
    records = []
    for line in read_text_file(metrics, "the stage's training log (JSON lines)").splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records


def loss_curves(records: Sequence[dict[str, Any]]) -> list[Curve]:
    return [_curve("loss", records, "loss")]


def lr_curves(records: Sequence[dict[str, Any]]) -> list[Curve]:
    """The stage's rate, and one curve per ``optimizer.module_lr`` group (``lr/<module>``)."""
    groups = sorted({key for record in records for key in record if key.startswith("lr/")})
    base = "lr" if not groups else "lr (other parameters)"
    return [_curve(base, records, "lr"), *(_curve(key.removeprefix("lr/"), records, key) for key in groups)]


def _curve(label: str, records: Sequence[dict[str, Any]], key: str) -> Curve:
    points = [(record["step"], record[key]) for record in records if isinstance(record.get(key), int | float)]
    return Curve(label, [float(step) for step, _ in points], [float(value) for _, value in points])


def curve_figure(curves: Sequence[Curve], title: str, ylabel: str, xlabel: str = "step") -> Any:
    """A matplotlib Figure of ``curves`` on one axis (a legend when there are several)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=FIGURE_INCHES, dpi=DPI)
    FigureCanvasAgg(figure)
    axis = figure.add_subplot()
    for curve in curves:
        axis.plot(curve.steps, curve.values, linewidth=1.2, label=curve.label)
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
    axis.set_title(title)
    axis.grid(alpha=0.3)
    if len(curves) > 1:
        axis.legend(fontsize="small")
    figure.tight_layout()
    return figure


def png_bytes(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def stage_figures(records: Sequence[dict[str, Any]], stage: str) -> dict[str, Any]:
    """``{"loss": Figure, "lr": Figure}`` of one stage's records."""
    return {
        "loss": curve_figure(loss_curves(records), f"stage {stage}: loss", "loss"),
        "lr": curve_figure(lr_curves(records), f"stage {stage}: learning rate", "learning rate"),
    }


def write_stage_plots(run_dir: Path, stage_dir: Path, stage: str) -> dict[str, Path]:
    """Draw ``run_dir/plots/<stage>-{loss,lr}.png`` (and the stage folder's ``loss.png``) from
    ``stage_dir/metrics.jsonl``, each written atomically; nothing without records. Returns what was written."""
    records = read_records(stage_dir / "metrics.jsonl")
    if not records:
        return {}
    written = {}
    for kind, figure in stage_figures(records, stage).items():
        data = png_bytes(figure)
        written[f"{stage}-{kind}"] = write_atomically(run_dir / PLOTS / f"{stage}-{kind}.png", data)
        if kind == "loss":
            write_atomically(stage_dir / "loss.png", data)
    return written
