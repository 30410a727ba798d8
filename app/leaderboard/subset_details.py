"""The leaderboard's details: accuracy per subset (OmniMedVQA's modality, GMAI-MMBench's task and department...).

A multiple-choice benchmark's ``metrics.json`` carries ``subsets``: kind -> subset name -> ``{"n", "accuracy"}``
(``scoring.score_choices``). The details show one table per benchmark, split and kind of subset: a row per subset,
a column per run (accuracy in percent and the number of questions), so a model's weak modality is visible.
Published sources give no per-subset figures here, so only runs appear.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from html import escape
from pathlib import Path

from medzoo import read_text_file
from medzoo.app.leaderboard.runs import metrics_files, model_name, read_metrics_file
from medzoo.app.leaderboard.table import ColumnGroup, group_sort_key


@dataclass(frozen=True)
class SubsetScore:
    n: int
    accuracy: float


@dataclass
class SubsetTable:
    """One benchmark split's subsets of one kind; ``scores``: run label -> subset name -> score."""

    group: ColumnGroup
    kind: str
    scores: dict[str, dict[str, SubsetScore]] = field(default_factory=dict)

    @property
    def models(self) -> list[str]:
        return list(self.scores)

    @property
    def subsets(self) -> list[str]:
        return sorted({name for by_name in self.scores.values() for name in by_name})


def read_subsets(path: Path) -> dict[str, dict[str, SubsetScore]]:
    """The ``subsets`` of one ``metrics.json`` (top level, or inside ``metrics``); entries that are not
    ``{"n": int, "accuracy": number}`` are left out."""
    data = json.loads(read_text_file(path, "a metrics.json file"))
    if not isinstance(data, dict):
        return {}
    found = data.get("subsets")
    if found is None and isinstance(data.get("metrics"), dict):
        found = data["metrics"].get("subsets")
    if not isinstance(found, dict):
        return {}
    subsets: dict[str, dict[str, SubsetScore]] = {}
    for kind, names in found.items():
        if not isinstance(names, dict):
            continue
        for name, score in names.items():
            if isinstance(score, dict) and _number(score.get("accuracy")) and _number(score.get("n")):
                subsets.setdefault(str(kind), {})[str(name)] = SubsetScore(int(score["n"]), float(score["accuracy"]))
    return subsets


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def subset_tables(run_dirs: list[Path]) -> list[SubsetTable]:
    """The details of these runs: tables in the leaderboard's benchmark order, kinds by name, runs in order
    (a run folder's label is its model name, followed by the folder where two runs share a name)."""
    tables: dict[tuple[ColumnGroup, str], SubsetTable] = {}
    labels: list[str] = []
    for run_dir in dict.fromkeys(Path(folder) for folder in run_dirs):
        label = model_name(run_dir)
        if label in labels:
            label = f"{label} ({run_dir})"
        labels.append(label)
        for path in metrics_files(run_dir):
            subsets = read_subsets(path)
            if not subsets:
                continue
            group, _ = read_metrics_file(path, path.parent.name)
            for kind, by_name in subsets.items():
                table = tables.setdefault((group, kind), SubsetTable(group, kind))
                table.scores[label] = by_name
    return [tables[key] for key in sorted(tables, key=lambda key: (group_sort_key(key[0]), key[1]))]


def _cell(score: SubsetScore | None) -> str:
    return "—" if score is None else f"{score.accuracy:.2f} ({score.n})"


def render_subsets_markdown(run_dirs: list[Path]) -> str:
    """A markdown section of per-subset accuracy tables (empty string when no run reports subsets)."""
    tables = subset_tables(run_dirs)
    if not tables:
        return ""
    lines = ["\ndetails: accuracy per subset (percent, number of questions in brackets)"]
    for table in tables:
        models = table.models
        lines += [
            f"\n{table.group.label}, per {table.kind}\n",
            "| " + " | ".join([table.kind, *models]).replace("\n", " ") + " |",
            "|" + "|".join(["---", *("---:" for _ in models)]) + "|",
        ]
        for name in table.subsets:
            cells = [name, *(_cell(table.scores[model].get(name)) for model in models)]
            lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def render_subsets_html(run_dirs: list[Path]) -> str:
    """The html details section (one table per benchmark split and kind of subset), or ``""``."""
    tables = subset_tables(run_dirs)
    if not tables:
        return ""
    parts = []
    for table in tables:
        head = "".join(f"<th>{escape(text)}</th>" for text in (table.kind, *table.models))
        body = "".join(
            f'<tr><td data-col="subset">{escape(name)}</td>'
            + "".join(f'<td class="num">{escape(_cell(table.scores[m].get(name)))}</td>' for m in table.models)
            + "</tr>"
            for name in table.subsets
        )
        parts.append(
            f'<h3>{escape(table.group.label)}, per {escape(table.kind)}</h3><div class="table-wrap">'
            f'<table class="subsets" data-benchmark="{escape(table.group.key)}" data-kind="{escape(table.kind)}">'
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"
        )
    return (
        '<section class="details" id="subset-details"><h2>details: accuracy per subset</h2>'
        '<p class="ablation-legend">Percent, with the number of questions in brackets; runs only (the published '
        f"sources give no per-subset figures here).</p>{''.join(parts)}</section>"
    )
