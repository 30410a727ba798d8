"""Inline-SVG bar charts of the html leaderboard: one per metric column, scaled to the width of its grid cell."""

from __future__ import annotations

from html import escape

from medzoo.app.leaderboard.table import UNRANKED, Column, Leaderboard

#: the colour and legend label of each kind of row; another kind gets ``OTHER_COLOUR`` and its own name
KINDS = {"run": ("#2e6fdb", "medzoo runs"), "published": ("#98a2b3", "published results")}
OTHER_COLOUR = "#f79009"
BAR_HEIGHT, LABEL_WIDTH, BAR_WIDTH, VALUE_WIDTH = 16, 160, 190, 45
LABEL_CHARS = 22  # about 6.5 px a character at 11 px: the label fits LABEL_WIDTH - 6


def kind_colour(kind: str) -> str:
    return KINDS.get(kind, (OTHER_COLOUR, kind))[0]


def kind_label(kind: str) -> str:
    return KINDS.get(kind, (OTHER_COLOUR, kind))[1]


def _short(text: str) -> str:
    return text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 1] + "…"


def chart(board: Leaderboard, column: Column) -> str:
    """Horizontal bars of one metric for every row of the board that reports it, best first; percent on a
    0-100 scale, anything else (``seconds``, values past 100) on a scale up to the largest value."""
    entries = [(row, value) for row in board.rows if (value := board.value(row, column)) is not None]
    entries.sort(key=lambda pair: -pair[1])
    values = [value for _, value in entries]
    percent = column.metric not in UNRANKED and all(0.0 <= value <= 100.0 for value in values)
    top = 100.0 if percent else max([*values, 1e-9])
    height = BAR_HEIGHT * len(entries) + 8
    bars = []
    for index, (row, value) in enumerate(entries):
        y = 4 + index * BAR_HEIGHT
        width = max(0.0, min(value, top)) / top * BAR_WIDTH
        bars.append(
            f'<text x="{LABEL_WIDTH - 6}" y="{y + 12}" text-anchor="end" font-size="11">{escape(_short(row.model))}'
            f'</text><rect x="{LABEL_WIDTH}" y="{y + 2}" width="{width:.1f}" height="{BAR_HEIGHT - 4}" '
            f'fill="{kind_colour(row.kind)}" data-kind="{escape(row.kind)}"><title>{escape(row.model)}: '
            f'{value:.2f}</title></rect><text x="{LABEL_WIDTH + width + 4:.1f}" y="{y + 12}" font-size="11">'
            f"{value:.2f}</text>"
        )
    view_width = LABEL_WIDTH + BAR_WIDTH + VALUE_WIDTH
    label = f"{column.group.label} {column.metric}"
    return (
        f'<figure class="chart" data-col="{escape(column.key)}"><figcaption>{escape(column.group.label)} — '
        f"{escape(column.metric)}</figcaption>"
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {view_width} {height}" width="100%" role="img" '
        f'aria-label="{escape(label)}">{"".join(bars)}</svg></figure>'
    )


def charts(board: Leaderboard) -> str:
    """One chart per metric column of the board, in column order, in a grid that wraps to the window."""
    return f'<div class="charts">{"".join(chart(board, column) for column in board.columns)}</div>'
