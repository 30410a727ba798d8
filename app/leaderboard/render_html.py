"""A self-contained html leaderboard that fits a 1280 px window: one section per protocol, each with its legend,
a sortable table (click a header; the best of each column marked; wide tables scroll inside their own box),
each run's training-curve links and thumbnail, and one inline-SVG bar chart per metric column ranking only that
section's rows; then the image-ablation table of the markdown render and the details (accuracy per subset).

No external scripts, styles or fonts: the page works offline and can be attached to a report (the curve links
point at the runs' PNGs, relative to the folder the page is written to; thumbnails are inline).
"""

from __future__ import annotations

import os
from html import escape
from pathlib import Path

from medzoo.app.leaderboard.ablation import ablation_rows
from medzoo.app.leaderboard.column_notes import column_label, column_notes
from medzoo.app.leaderboard.html_charts import KINDS, charts, kind_colour, kind_label
from medzoo.app.leaderboard.html_curves import curves_cell
from medzoo.app.leaderboard.render_text import format_value, legend, run_notes
from medzoo.app.leaderboard.subset_details import render_subsets_html
from medzoo.app.leaderboard.table import Leaderboard, ModelRow

_STYLE = """
*, *:before, *:after { box-sizing: border-box; }
body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #1d2330; }
h1 { font-size: 1.5rem; margin: 0 0 0.4rem; }
.table-wrap { width: fit-content; max-width: 100%; overflow-x: auto; }
table { border-collapse: collapse; font-size: 0.85rem; }
th, td { border: 1px solid #d0d5dd; padding: 0.3rem 0.55rem; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
th { background: #f2f4f7; }
th.sortable { cursor: pointer; white-space: nowrap; }
th.sortable:after { content: " \\2195"; color: #98a2b3; }
th.asc:after { content: " \\2191"; color: #1d2330; } th.desc:after { content: " \\2193"; color: #1d2330; }
tr.run td { background: #eef4ff; font-weight: 600; }
td.best { font-weight: 700; text-decoration: underline; }
td[data-col="model"] { white-space: nowrap; }
td[data-col="source"] { max-width: 24rem; overflow-wrap: anywhere; }
td.curves { font-weight: 400; font-size: 0.8rem; white-space: nowrap; }
td.curves img { display: block; border: 1px solid #d0d5dd; margin-bottom: 0.2rem; }
td.curves .stage { display: block; }
section { margin-top: 2rem; }
section h2 { font-size: 1.1rem; margin-bottom: 0.2rem; }
p.protocol-legend, p.ablation-legend, p.column-note { margin: 0 0 0.6rem; color: #475467; max-width: 60rem; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(min(100%, 360px), 1fr));
          gap: 1rem 1.5rem; margin-top: 1.2rem; }
.chart { margin: 0; min-width: 0; }
.chart figcaption { font-size: 0.9rem; font-weight: 600; margin-bottom: 0.2rem; }
.chart svg { display: block; max-width: 100%; height: auto; }
.legend span.entry { display: inline-block; margin-right: 1rem; }
.legend .swatch { display: inline-block; width: 0.8em; height: 0.8em; margin-right: 0.3em; vertical-align: -0.05em; }
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

ABLATION_COLUMNS = ("Model", "Benchmark", "Metric", "Real image", "Ablated", "Drop")


def _cell(column_key: str, text: str, sort_value: str, numeric: bool, best: bool = False, title: str = "") -> str:
    classes = " ".join(name for name, wanted in (("num", numeric), ("best", best)) if wanted)
    css = f' class="{classes}"' if classes else ""
    tip = f' title="{escape(title)}"' if title else ""
    return f'<td{css}{tip} data-col="{escape(column_key)}" data-value="{escape(sort_value)}">{escape(text)}</td>'


def _sortable(key: str, label: str, rowspan: int = 1) -> str:
    span = f' rowspan="{rowspan}"' if rowspan > 1 else ""
    return f'<th{span} class="sortable" data-col="{escape(key)}">{escape(label)}</th>'


def _source_cell(row: ModelRow, page_dir: Path) -> str:
    """A run's folder relative to the page's folder (the full path in its tooltip); a published row's source."""
    if row.kind != "run" or not row.source or not Path(row.source).is_dir():
        return _cell("source", row.source, row.source, False)
    shown = os.path.relpath(Path(row.source).resolve(), page_dir.resolve())
    return _cell("source", shown, shown, False, title=str(Path(row.source).resolve()))


def _table(board: Leaderboard, page_dir: Path) -> str:
    """One protocol's rows; the best of each column (two rows or more) is marked ``best``; a Curves column when
    a run row has training curves."""
    curves = {id(row): curves_cell(row, page_dir) for row in board.rows}
    with_curves = any(curves.values())
    group_headers = "".join(
        f'<th colspan="{sum(1 for c in board.columns if c.group == g)}">{escape(column_label(g))}</th>'
        for g in board.groups
    )
    metric_headers = "".join(_sortable(c.key, c.metric) for c in board.columns)
    curves_header = '<th rowspan="2">Curves</th>' if with_curves else ""
    head = (
        f'<tr>{_sortable("model", "Model", 2)}{_sortable("source", "Source", 2)}{curves_header}{group_headers}</tr>'
        f"<tr>{metric_headers}</tr>"
    )
    best = {column: board.best(column) for column in board.columns}
    body = []
    for row in board.rows:
        cells = [_cell("model", row.model, row.model, False), _source_cell(row, page_dir)]
        if with_curves:
            cells.append(f'<td class="curves">{curves[id(row)]}</td>')
        for column in board.columns:
            value = board.value(row, column)
            sort_value = "" if value is None else f"{value:.4f}"
            marked = value is not None and value == best[column]
            cells.append(_cell(column.key, format_value(value), sort_value, True, marked))
        notes = run_notes(row) or row.details
        title = f' title="{escape(notes)}"' if notes else ""
        body.append(f'<tr class="{escape(row.kind)}"{title}>{"".join(cells)}</tr>')
    return (
        f'<div class="table-wrap"><table class="leaderboard" data-protocol="{escape(board.protocol)}">'
        f'<thead>{head}</thead><tbody>{"".join(body)}</tbody></table></div>'
    )


def _section(board: Leaderboard, page_dir: Path) -> str:
    """A protocol's heading, legend, table and charts (one per metric column)."""
    name = board.protocol or "protocol not recorded"
    return (
        f'<section class="protocol" id="protocol-{escape(board.protocol)}"><h2>{escape(name)}</h2>'
        f'<p class="protocol-legend">{escape(legend(board.protocol))}</p>'
        + "".join(f'<p class="column-note">{escape(note)}.</p>' for note in column_notes(board))
        + f"{_table(board, page_dir)}{charts(board)}</section>"
    )


def _ablation(rows: list[ModelRow]) -> str:
    """The markdown render's image-reliance table (every run folder once, in row order), or ``""``."""
    folders = dict.fromkeys(Path(row.source) for row in rows if row.kind == "run" and row.source)
    entries = [entry for folder in folders if folder.is_dir() for entry in ablation_rows(folder)]
    if not entries:
        return ""
    kinds = ", ".join(sorted({entry[2] for entry in entries}))
    head = "".join(_sortable(f"ablation:{index}", label) for index, label in enumerate(ABLATION_COLUMNS))
    body = []
    for model, benchmark, _, metric, real, ablated, drop in entries:
        texts = (model, benchmark, metric, f"{real:.2f}", f"{ablated:.2f}", f"{drop:+.2f}")
        sorts = (model, benchmark, metric, f"{real:.4f}", f"{ablated:.4f}", f"{drop:.4f}")
        cells = (_cell(f"ablation:{i}", text, sort, i >= 3) for i, (text, sort) in enumerate(zip(texts, sorts, strict=True)))
        body.append(f"<tr>{''.join(cells)}</tr>")
    return (
        f'<section class="ablation" id="image-ablation"><h2>image ablation ({escape(kinds)})</h2>'
        '<p class="ablation-legend">The headline metrics with the real images, with the images replaced, and the '
        "drop (a model that reads the image loses points).</p>"
        f'<div class="table-wrap"><table class="ablation"><thead><tr>{head}</tr></thead>'
        f'<tbody>{"".join(body)}</tbody></table></div></section>'
    )


def _details(rows: list[ModelRow]) -> str:
    """Accuracy per subset of the runs' multiple-choice benchmarks (``subset_details``), or ``""``."""
    folders = [Path(row.source) for row in rows if row.kind == "run" and row.source and Path(row.source).is_dir()]
    return render_subsets_html(folders)


def _legend(rows: list[ModelRow]) -> str:
    """The page legend: a swatch for each kind of row the page shows (and only those), then how to read it."""
    shown = {row.kind for row in rows}
    kinds = [kind for kind in KINDS if kind in shown] + sorted(shown - set(KINDS))
    entries = "".join(
        f'<span class="entry" data-kind="{escape(kind)}"><span class="swatch" style="background:'
        f'{kind_colour(kind)}"></span>{escape(kind_label(kind))}</span>'
        for kind in kinds
    )
    return (
        f'<p class="legend">{entries}(percent; one table per protocol, ranked within it only: rows measured '
        "differently are not comparable; click a header to sort; underlined: the best of a column)</p>"
    )


def render_html(board: Leaderboard, title: str = "medzoo leaderboard", page_dir: str | Path | None = None) -> str:
    """The whole page: one section per protocol (nothing is ranked across sections), then the image-ablation
    table and the per-subset details; curve links are relative to ``page_dir``, the folder the page is written to (default: the current
    one, as when it is printed and redirected to a file here)."""
    folder = Path.cwd() if page_dir is None else Path(page_dir).expanduser()
    sections = "".join(_section(section, folder) for section in board.sections or [board])
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body><h1>{escape(title)}</h1>"
        f"{_legend(board.rows)}{sections}{_ablation(board.rows)}{_details(board.rows)}<script>{_SCRIPT}</script></body></html>\n"
    )
