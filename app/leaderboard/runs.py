"""Reading evaluation runs into leaderboard rows.

Run-directory contract (what ``medzoo eval`` / ``medzoo run`` leave behind):

    RUN_DIR/run.json                        optional; the model name from "model_name", "model" (a string, or
                                            an object with "name"), "name" or "recipe"
    RUN_DIR/eval/<benchmark>/metrics.json   one per benchmark (RUN_DIR/<benchmark>/metrics.json is accepted
                                            when there is no eval/ folder)

A row is named by ``run.json`` first (``medzoo run``: the recipe's name), else by the ``model_id`` its
``metrics.json`` files record (``medzoo eval``, a contender: ``row_names``; a local path shortened to its folder,
the full id in the row's details; benchmarks that disagree give ``mixed: a, b``), else by the folder's name.

``metrics.json`` is either ``{"benchmark": ..., "split": ..., "metrics": {name: percent, ...}}`` or a flat
``{name: percent, ..., "benchmark": ..., "split": ...}`` (non-numeric entries are ignored); without a split
the benchmark's default split is assumed (test; unseen for ColonINST). A row trained beyond supervised tuning
says so first in its details (``objective_notes``: ``+DPO``, ``+GRPO (box-iou)``). Each benchmark's scores get a protocol
(``training.benchmark_protocol``: from the stages ``run.json`` records and their ``recipe.yaml`` datasets; a
multiple-choice benchmark not trained on takes its answer parser's, ``answer_protocol``); a run whose benchmarks
differ in protocol gives one row per protocol.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from medzoo import read_text_file
from medzoo.app.leaderboard.objective_notes import objective_note
from medzoo.app.leaderboard.protocols import (
    ANSWER_PROTOCOL_ROWS,
    BENCHMARK_PROTOCOL_ROWS,
    SYNTHETIC,
    ZERO_SHOT,
)
from medzoo.app.leaderboard.row_names import name_from_model_ids
from medzoo.app.leaderboard.table import ColumnGroup, ModelRow
from medzoo.app.leaderboard.training import CONTENDER_TEMPLATE, benchmark_protocol, recorded_stages
from medzoo.core.errors import DataError
from medzoo.core.interfaces.benchmark import benchmark_class


def default_split(benchmark: str) -> str:
    """The split a registered benchmark evaluates by default (``test`` when unknown)."""
    from medzoo.core.errors import PluginError
    from medzoo.core.plugin_system.manager import components

    try:
        declared_by = benchmark_class(components().get("benchmark", benchmark).factory)
    except PluginError:
        return "test"
    split = declared_by.split if declared_by is not None else None
    return split if isinstance(split, str) else "test"


def _read_json(path: Path) -> Any:
    text = read_text_file(path, "a JSON file medzoo wrote")
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise DataError(f"{path}: not a readable json file ({error})") from None


def run_info(run_dir: Path) -> Any:
    """``run.json`` of a run directory, or None."""
    run_file = run_dir / "run.json"
    return _read_json(run_file) if run_file.is_file() else None


def recorded_name(run_dir: Path) -> str | None:
    """The model name ``run.json`` gives, or None."""
    info = run_info(run_dir)
    if isinstance(info, dict):
        for key in ("model_name", "model", "name", "recipe"):
            value = info.get(key)
            if isinstance(value, dict):
                value = value.get("name")
            if isinstance(value, str) and value:
                return value
    return None


def recorded_model_id(path: Path) -> str:
    """The ``model_id`` a ``metrics.json`` records (top level, or beside its ``metrics``), or ``""``."""
    data = _read_json(path)
    model_id = data.get("model_id") if isinstance(data, dict) else None
    if model_id is None and isinstance(data, dict) and isinstance(data.get("metrics"), dict):
        model_id = data["metrics"].get("model_id")
    return model_id if isinstance(model_id, str) else ""


def row_name(run_dir: Path, files: list[Path]) -> tuple[str, str]:
    """(name, details) of the row these ``metrics.json`` files of ``run_dir`` make (see the module docstring)."""
    recorded = recorded_name(run_dir)
    if recorded is not None:
        return recorded, ""
    name, details = name_from_model_ids([(path.parent.name, recorded_model_id(path)) for path in files])
    return name or run_dir.resolve().name, details


def model_name(run_dir: Path) -> str:
    """The name of a run directory's model, over all its benchmarks."""
    return row_name(run_dir, metrics_files(run_dir))[0]


def read_metrics_file(path: Path, benchmark: str) -> tuple[ColumnGroup, dict[str, float]]:
    """The column group and numeric metrics of one ``metrics.json``."""
    data = _read_json(path)
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a json object of metrics")
    metrics = data.get("metrics") if isinstance(data.get("metrics"), dict) else data
    values = {
        key: float(value)
        for key, value in metrics.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool)
    }
    if not values:
        raise DataError(f"{path}: no numeric metrics found")
    name = str(data.get("benchmark") or benchmark)
    split = str(data.get("split") or default_split(name))
    return ColumnGroup(name, split), values


def metrics_files(run_dir: Path) -> list[Path]:
    base = run_dir / "eval" if (run_dir / "eval").is_dir() else run_dir
    return sorted(base.glob("*/metrics.json"))


def run_rows(run_dir: str | Path) -> list[ModelRow]:
    """The leaderboard rows of one run directory: one per protocol its benchmarks were measured under."""
    folder = Path(run_dir).expanduser()
    if not folder.is_dir():
        raise DataError(f"{folder}: not a run directory")
    files = metrics_files(folder)
    if not files:
        raise DataError(f"{folder}: no eval/<benchmark>/metrics.json found")
    stages = recorded_stages(folder, run_info(folder))
    rows: dict[str, ModelRow] = {}
    answering: dict[str, list[str]] = {}
    bases: dict[str, dict[str, str]] = {}
    row_files: dict[str, list[Path]] = {}
    for path in files:
        group, values = read_metrics_file(path, path.parent.name)
        answered = answering_of(path)
        protocol, basis = benchmark_protocol(group.benchmark, values, stages, CONTENDER_TEMPLATE in answered)
        protocol = answer_protocol_row(path, protocol)
        row = rows.setdefault(protocol, ModelRow(model="", source=str(folder), kind="run", protocol=protocol))
        row.scores.setdefault(group, {}).update(values)
        row_files.setdefault(protocol, []).append(path)
        kept = answering.setdefault(protocol, [])
        if answered and answered not in kept:
            kept.append(answered)
        if basis:
            bases.setdefault(protocol, {})[group.benchmark] = basis
    for protocol, row in rows.items():
        row.model, named = row_name(folder, row_files[protocol])
        trained = objective_note(run_info(folder), [recorded_model_id(path) for path in row_files[protocol]])
        row.details = "; ".join(note for note in (trained, *answering[protocol], named) if note)
        row.basis = _basis(bases.get(protocol, {}))
    return list(rows.values())


def answer_protocol_row(path: Path, protocol: str) -> str:
    """A zero-shot or synthetic multiple-choice row's protocol is its answer parser's (``answer_protocol``)."""
    data = _read_json(path)
    parser = data.get("answer_protocol") if isinstance(data, dict) else None
    if protocol in (ZERO_SHOT, SYNTHETIC) and isinstance(parser, str):
        special = BENCHMARK_PROTOCOL_ROWS.get((path.parent.name, parser))
        if special is not None:
            return special
        if parser in ANSWER_PROTOCOL_ROWS:
            return ANSWER_PROTOCOL_ROWS[parser]
    return protocol


def _basis(by_benchmark: dict[str, str]) -> str:
    """One basis when every benchmark of a row shares it, else each benchmark's own."""
    if len(set(by_benchmark.values())) <= 1:
        return next(iter(by_benchmark.values()), "")
    return "; ".join(f"{benchmark}: {basis}" for benchmark, basis in by_benchmark.items())


def answering_of(path: Path) -> str:
    """How a ``metrics.json``'s answers were produced (its ``protocol``: prompt template, decoding, seed), or
    ``""``."""
    data = _read_json(path)
    protocol = data.get("protocol") if isinstance(data, dict) else None
    if not isinstance(protocol, dict):
        return ""
    template = protocol.get("prompt_template")
    parts = [f"prompt {template}" if template else "", str(protocol.get("decoding") or "")]
    if protocol.get("seed") is not None and str(protocol.get("decoding", "")).startswith("sampled"):
        parts.append(f"seed {protocol['seed']}")
    return ", ".join(part for part in parts if part)
