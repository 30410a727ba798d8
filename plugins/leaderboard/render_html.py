"""A self-contained html leaderboard: one section per protocol, each with its legend, a sortable table (click a
metric header; the best of each column marked) and inline-SVG bar charts ranking only that section's rows.

No external scripts, styles or fonts: the page works offline and can be attached to a report.
"""

from __future__ import annotations

from html import escape

from medzoo.plugins.leaderboard.render_text import format_value, legend, run_notes
from medzoo.plugins.leaderboard.table import Column, Leaderboard

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #1d2330; }
table { border-collapse: collapse; font-size: 0.9rem; }
th, td { border: 1px solid #d0d5dd; padding: 0.3rem 0.55rem; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
th.sortable { cursor: pointer; background: #f2f4f7; }
th.sortable:after { content: " \\2195"; color: #98a2b3; }
th.asc:after { content: " \\2191"; color: #1d2330; } th.desc:after { content: " \\2193"; color: #1d2330; }
tr.run td { background: #eef4ff; font-weight: 600; }
td.best { font-weight: 700; text-decoration: underline; }
section.protocol { margin-top: 2rem; }
section.protocol h2 { font-size: 1.1rem; margin-bottom: 0.2rem; }
p.protocol-legend { margin: 0 0 0.6rem; color: #475467; max-width: 60rem; }
.charts { display: flex; flex-wrap: wrap; gap: 1.5rem; margin-top: 1.5rem; }
.chart h3 { font-size: 0.95rem; margin: 0 0 0.3rem; }
.legend span { display: inline-block; margin-right: 1rem; }
"""

_SCRIPT = """
document.querySelectorAll("th.sortable").forEach(function (header) {
  header.addEventListener("click", function () {
    var table = header.closest("table"), body = table.tBodies[0];
    var column = header.getAttribute("data-col");
    var descending = !header.classList.contains("desc");
    table.querySelectorAll("th.sortable").forEach(function (h) { h.classList.remove("asc", "desc"); });
    header.classList.add(descending ? "desc" : "asc");
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = a.querySelector('[data-col="' + column + '"]').getAttribute("data-value");
      var y = b.querySelector('[data-col="' + column + '"]').getAttribute("data-value");
      if (x === "" && y === "") return 0;
      if (x === "") return 1;
      if (y === "") return -1;
      var nx = parseFloat(x), ny = parseFloat(y);
      var order = (isNaN(nx) || isNaN(ny)) ? x.localeCompare(y) : nx - ny;
      return descending ? -order : order;
    });
    rows.forEach(function (row) { body.appendChild(row); });
  });
});
"""

RUN_COLOUR, PUBLISHED_COLOUR = "#2e6fdb", "#98a2b3"
BAR_HEIGHT, LABEL_WIDTH, BAR_WIDTH = 16, 230, 260


def _cell(column_key: str, text: str, sort_value: str, numeric: bool, best: bool = False) -> str:
    classes = " ".join(name for name, wanted in (("num", numeric), ("best", best)) if wanted)
    css = f' class="{classes}"' if classes else ""
    return f'<td{css} data-col="{escape(column_key)}" data-value="{escape(sort_value)}">{escape(text)}</td>'


def _table(board: Leaderboard) -> str:
    """One protocol's rows; the best of each column (two rows or more) is marked ``best``."""
    group_headers = "".join(
        f'<th colspan="{sum(1 for c in board.columns if c.group == g)}">{escape(g.label)}</th>' for g in board.groups
    )
    metric_headers = "".join(
        f'<th class="sortable" data-col="{escape(c.key)}">{escape(c.metric)}</th>' for c in board.columns
    )
    head = (
        '<tr><th rowspan="2" class="sortable" data-col="model">Model</th>'
        '<th rowspan="2" class="sortable" data-col="source">Source</th>'
        f"{group_headers}</tr><tr>{metric_headers}</tr>"
    )
    best = {column: board.best(column) for column in board.columns}
    body = []
    for row in board.rows:
        cells = [_cell("model", row.model, row.model, False), _cell("source", row.source, row.source, False)]
        for column in board.columns:
            value = board.value(row, column)
            sort_value = "" if value is None else f"{value:.4f}"
            marked = value is not None and value == best[column]
            cells.append(_cell(column.key, format_value(value), sort_value, True, marked))
        notes = run_notes(row) or row.details
        title = f' title="{escape(notes)}"' if notes else ""
        body.append(f'<tr class="{escape(row.kind)}"{title}>{"".join(cells)}</tr>')
    return (
        f'<table class="leaderboard" data-protocol="{escape(board.protocol)}"><thead>{head}</thead>'
        f'<tbody>{"".join(body)}</tbody></table>'
    )


def _chart(board: Leaderboard, column: Column) -> str:
    """Horizontal bars (0-100) of one metric for every row of the section that reports it, best first."""
    entries = [(row, board.value(row, column)) for row in board.rows]
    entries = sorted(((r, v) for r, v in entries if v is not None), key=lambda pair: -pair[1])
    height = BAR_HEIGHT * len(entries) + 8
    bars = []
    for index, (row, value) in enumerate(entries):
        y = 4 + index * BAR_HEIGHT
        width = max(0.0, min(value, 100.0)) / 100.0 * BAR_WIDTH
        colour = RUN_COLOUR if row.kind == "run" else PUBLISHED_COLOUR
        label = row.model if len(row.model) <= 34 else row.model[:33] + "…"
        bars.append(
            f'<text x="{LABEL_WIDTH - 6}" y="{y + 12}" text-anchor="end" font-size="11">{escape(label)}</text>'
            f'<rect x="{LABEL_WIDTH}" y="{y + 2}" width="{width:.1f}" height="{BAR_HEIGHT - 4}" fill="{colour}">'
            f"<title>{escape(row.model)}: {value:.2f}</title></rect>"
            f'<text x="{LABEL_WIDTH + width + 4:.1f}" y="{y + 12}" font-size="11">{value:.2f}</text>'
        )
    svg_width = LABEL_WIDTH + BAR_WIDTH + 50
    return (
        f'<div class="chart"><h3>{escape(column.group.label)} — {escape(column.metric)}</h3>'
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{svg_width}" height="{height}" role="img" '
        f'aria-label="{escape(column.group.label)} {escape(column.metric)}">{"".join(bars)}</svg></div>'
    )


def _section(board: Leaderboard) -> str:
    """A protocol's heading, legend, table and charts (one per column group: its first headline metric)."""
    first_columns: dict = {}
    for column in board.columns:
        first_columns.setdefault(column.group, column)
    charts = "".join(_chart(board, column) for column in first_columns.values())
    name = board.protocol or "protocol not recorded"
    return (
        f'<section class="protocol" id="protocol-{escape(board.protocol)}"><h2>{escape(name)}</h2>'
        f'<p class="protocol-legend">{escape(legend(board.protocol))}</p>'
        f'{_table(board)}<div class="charts">{charts}</div></section>'
    )


def render_html(board: Leaderboard, title: str = "medzoo leaderboard") -> str:
    """The whole page: one section per protocol; nothing is ranked across sections."""
    legend_line = (
        f'<p class="legend"><span style="color:{RUN_COLOUR}">■ medzoo runs</span>'
        f'<span style="color:{PUBLISHED_COLOUR}">■ published results</span> (percent; one table per protocol, '
        "ranked within it only: rows measured differently are not comparable; click a header to sort; "
        "underlined: the best of a column)</p>"
    )
    sections = "".join(_section(section) for section in board.sections or [board])
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{_STYLE}</style></head><body><h1>{escape(title)}</h1>{legend_line}"
        f"{sections}<script>{_SCRIPT}</script></body></html>\n"
    )
