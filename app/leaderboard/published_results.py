"""Published reference results shipped with medzoo (``published_results.csv``), as leaderboard rows.

The csv keeps the facts, how they were measured and their source: ``benchmark, split, metric, model, variant,
protocol, value, source`` (``protocol``: one of ``protocols.PUBLISHED_PROTOCOLS``). Benchmark and metric names
are mapped onto medzoo's (``VQA-RAD`` -> ``vqa-rad``, ColonINST ``iou`` -> ``mean_iou``); a source that gives
one figure per benchmark without saying open or closed is recorded as ``overall_accuracy``.
"""

from __future__ import annotations

import csv
from pathlib import Path

from medzoo.app.leaderboard.protocols import PUBLISHED_PROTOCOLS, protocol_named
from medzoo.app.leaderboard.table import ColumnGroup, ModelRow
from medzoo.core.errors import DataError

PUBLISHED_CSV = Path(__file__).resolve().parent / "published_results.csv"
BENCHMARK_NAMES = {
    "VQA-RAD": "vqa-rad",
    "SLAKE": "slake",
    "PathVQA": "pathvqa",
    "ColonINST-CLS": "coloninst-cls",
    "ColonINST-REG": "coloninst-reg",
    "ColonINST-REC": "coloninst-rec",
    "PMC-VQA": "pmc-vqa",
    "OmniMedVQA": "omnimedvqa",
    "GMAI-MMBench": "gmai-mmbench",
    "MMMU-Med": "mmmu-med",
    "MedXpertQA-MM": "medxpertqa-mm",
}
METRIC_NAMES = {"iou": "mean_iou"}
COLUMNS = ("benchmark", "split", "metric", "model", "variant", "protocol", "value", "source")


def read_published(path: Path = PUBLISHED_CSV) -> list[dict[str, str]]:
    """The csv rows, checked for the expected columns, numeric values and known protocols."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or not set(COLUMNS) <= set(reader.fieldnames):
            raise DataError(f"{path}: expected the columns {', '.join(COLUMNS)}")
        rows = list(reader)
    for number, row in enumerate(rows, start=2):
        try:
            float(row["value"])
        except ValueError:
            raise DataError(f"{path}: line {number}: value {row['value']!r} is not a number") from None
        protocol_named(row["protocol"], f"{path}: line {number}", PUBLISHED_PROTOCOLS)
    return rows


def published_rows(path: Path = PUBLISHED_CSV) -> list[ModelRow]:
    """One row per (model, variant, protocol); the label adds the variant only where a model name comes with
    several variants (the same model and variant under two protocols keeps its plain name)."""
    raw = read_published(path)
    by_model: dict[tuple[str, str, str], ModelRow] = {}
    for entry in raw:
        key = (entry["model"], entry["variant"], entry["protocol"])
        row = by_model.setdefault(
            key, ModelRow(model=entry["model"], source="", kind="published", details=key[1], protocol=key[2])
        )
        sources = [s for s in row.source.split("; ") if s]
        if entry["source"] not in sources:
            row.source = "; ".join([*sources, entry["source"]])
        group = ColumnGroup(BENCHMARK_NAMES.get(entry["benchmark"], entry["benchmark"].lower()), entry["split"])
        metric = METRIC_NAMES.get(entry["metric"], entry["metric"])
        row.scores.setdefault(group, {})[metric] = float(entry["value"])
    variants: dict[str, set[str]] = {}
    for model, variant, _ in by_model:
        variants.setdefault(model, set()).add(variant)
    for (model, variant, _), row in by_model.items():
        if len(variants[model]) > 1 and variant:
            row.model = f"{model} ({variant})"
    return list(by_model.values())
