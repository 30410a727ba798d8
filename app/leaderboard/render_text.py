"""Markdown and csv renderings of a leaderboard: one markdown table per protocol, a protocol column in the csv."""

from __future__ import annotations

import csv
import io

from medzoo.app.leaderboard.column_notes import column_label, column_notes
from medzoo.app.leaderboard.protocols import PROTOCOLS
from medzoo.app.leaderboard.table import Leaderboard, ModelRow

MISSING = "—"


def format_value(value: float | None) -> str:
    return MISSING if value is None else f"{value:.2f}"


def _escape_markdown(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def run_notes(row: ModelRow) -> str:
    """What a run row says about itself: how its answers were produced and why it has its protocol."""
    return "; ".join(note for note in (row.details, row.basis) if note) if row.kind == "run" else ""


def legend(protocol: str) -> str:
    """The legend of a protocol's table: its one-line description."""
    known = PROTOCOLS.get(protocol)
    return known.description if known else "a protocol medzoo does not know"


def _markdown_section(board: Leaderboard) -> list[str]:
    notes = any(run_notes(row) for row in board.rows)
    header = ["Model", "Source", *(["Notes"] if notes else []),
              *(f"{column_label(c.group)} {c.metric}" for c in board.columns)]
    lines = [
        "| " + " | ".join(_escape_markdown(cell) for cell in header) + " |",
        "|" + "|".join(["---", "---", *(["---"] if notes else []), *("---:" for _ in board.columns)]) + "|",
    ]
    best = {column: board.best(column) for column in board.columns}
    for row in board.rows:
        values = []
        for column in board.columns:
            value = board.value(row, column)
            text = format_value(value)
            values.append(f"**{text}**" if value is not None and value == best[column] else text)
        cells = [row.model, row.source, *([run_notes(row)] if notes else []), *values]
        lines.append("| " + " | ".join(_escape_markdown(cell) for cell in cells) + " |")
    if board.protocol:
        lines.append(f"\nProtocol **{board.protocol}**: {_escape_markdown(legend(board.protocol))}. Bold: the best "
                     "of a column within this table (other protocols are not comparable).")
    lines += [f"\n{_escape_markdown(note)}." for note in column_notes(board)]
    return lines


def render_markdown(board: Leaderboard) -> str:
    """One pipe table per protocol, each followed by its legend line: Model, Source, a Notes column when a run
    row says how its answers were produced (prompt template, decoding) or why it has its protocol, then
    ``<benchmark (split)> <metric>`` columns (percent, 2 decimals; bold: the best of the table's column)."""
    sections = board.sections or [board]
    return "\n\n".join("\n".join(_markdown_section(section)) for section in sections) + "\n"


def render_csv(board: Leaderboard) -> str:
    """Wide csv, rows grouped by protocol: model, kind, protocol, protocol_basis, source, details, then one
    ``benchmark:split:metric`` column each (empty if absent)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["model", "kind", "protocol", "protocol_basis", "source", "details", *(c.key for c in board.columns)])
    for section in board.sections or [board]:
        for row in section.rows:
            values = [board.value(row, c) for c in board.columns]
            writer.writerow([row.model, row.kind, row.protocol, row.basis, row.source, row.details,
                             *("" if v is None else f"{v:.2f}" for v in values)])
    return buffer.getvalue()
