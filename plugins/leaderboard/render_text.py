"""Markdown and csv renderings of a leaderboard."""

from __future__ import annotations

import csv
import io

from medzoo.plugins.leaderboard.table import Leaderboard

MISSING = "—"


def format_value(value: float | None) -> str:
    return MISSING if value is None else f"{value:.2f}"


def _escape_markdown(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(board: Leaderboard) -> str:
    """A pipe table: Model, Source, then ``<benchmark (split)> <metric>`` columns (percent, 2 decimals); a
    Protocol column (prompt template and decoding) when a run recorded how its answers were produced."""
    protocol = any(row.kind == "run" and row.details for row in board.rows)
    header = ["Model", "Source", *(["Protocol"] if protocol else []), *(f"{c.group.label} {c.metric}" for c in board.columns)]
    lines = [
        "| " + " | ".join(_escape_markdown(cell) for cell in header) + " |",
        "|" + "|".join(["---", "---", *(["---"] if protocol else []), *("---:" for _ in board.columns)]) + "|",
    ]
    for row in board.rows:
        extra = [row.details if row.kind == "run" else ""] if protocol else []
        cells = [row.model, row.source, *extra, *(format_value(board.value(row, c)) for c in board.columns)]
        lines.append("| " + " | ".join(_escape_markdown(cell) for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def render_csv(board: Leaderboard) -> str:
    """Wide csv: model, kind, source, details, then one ``benchmark:split:metric`` column each (empty if absent)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["model", "kind", "source", "details", *(c.key for c in board.columns)])
    for row in board.rows:
        values = [board.value(row, c) for c in board.columns]
        writer.writerow(
            [row.model, row.kind, row.source, row.details, *("" if v is None else f"{v:.2f}" for v in values)]
        )
    return buffer.getvalue()
