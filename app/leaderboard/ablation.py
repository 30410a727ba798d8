"""The image-reliance table: each headline metric with real images, with ablated images, and the drop.

A model that answers the same for noise as for the real image has learnt the question priors, not the
image (the complaint users raised against the official LLaVA-Med weights); this table makes that visible.
"""

from __future__ import annotations

import json
from pathlib import Path

from medzoo import read_text_file
from medzoo.app.leaderboard.runs import metrics_files, model_name
from medzoo.app.leaderboard.table import registered_headline_metrics


def ablation_rows(run_dir: Path) -> list[tuple[str, str, str, str, float, float, float]]:
    """(model, benchmark, kind, metric, with image, ablated, drop) for every ablated benchmark of a run."""
    rows = []
    for path in metrics_files(run_dir):
        data = json.loads(read_text_file(path, "a metrics.json file"))
        ablation = data.get("image_ablation") if isinstance(data, dict) else None
        if not isinstance(ablation, dict):
            continue
        benchmark = str(data.get("benchmark") or path.parent.name)
        headline = registered_headline_metrics(benchmark) or tuple(ablation.get("drop", {}))
        for metric in headline:
            if metric in data and metric in ablation.get("metrics", {}):
                real, ablated = float(data[metric]), float(ablation["metrics"][metric])
                rows.append((model_name(run_dir), benchmark, str(ablation.get("kind")), metric, real, ablated,
                             real - ablated))
    return rows


def render_ablation_markdown(run_dirs: list[Path]) -> str:
    """A markdown section (empty string when no run was scored with ablated images)."""
    rows = [row for run_dir in run_dirs for row in ablation_rows(Path(run_dir))]
    if not rows:
        return ""
    kinds = sorted({row[2] for row in rows})
    lines = [
        f"\nimage ablation ({', '.join(kinds)}): the headline metrics with the real images, with the images "
        "replaced, and the drop (a model that reads the image loses points)\n",
        "| Model | Benchmark | Metric | Real image | Ablated | Drop |",
        "|---|---|---|---:|---:|---:|",
    ]
    for model, benchmark, _, metric, real, ablated, drop in rows:
        lines.append(f"| {model} | {benchmark} | {metric} | {real:.2f} | {ablated:.2f} | {drop:+.2f} |")
    return "\n".join(lines) + "\n"
