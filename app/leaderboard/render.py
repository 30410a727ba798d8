"""Leaderboard entry point: run directories (+ published rows) -> a rendered table."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from medzoo.app.leaderboard.published_results import published_rows
from medzoo.app.leaderboard.render_html import render_html
from medzoo.app.leaderboard.render_text import render_csv, render_markdown
from medzoo.app.leaderboard.runs import run_rows
from medzoo.app.leaderboard.table import Leaderboard, ModelRow, build_leaderboard
from medzoo.core.errors import DataError

RENDERERS = {"md": render_markdown, "csv": render_csv, "html": render_html}


def leaderboard_from_runs(run_dirs: Iterable[str | Path], published: bool = False) -> Leaderboard:
    """Rows for the runs (in the given order, one per protocol), then the published rows when asked.

    With ``published`` only published benchmarks that one of the runs also reports are kept, unless no
    run is given at all (then every published result is shown).
    """
    rows: list[ModelRow] = [row for run_dir in run_dirs for row in run_rows(run_dir)]
    if published:
        run_benchmarks = {group.benchmark for row in rows for group in row.scores}
        for row in published_rows():
            if run_benchmarks:
                row.scores = {g: v for g, v in row.scores.items() if g.benchmark in run_benchmarks}
            if row.scores:
                rows.append(row)
    return build_leaderboard(rows)


def render(board: Leaderboard, fmt: str = "md", output: str | Path | None = None) -> str:
    """The leaderboard as ``md``, ``csv`` or ``html`` text; ``output``, the file it will be written to, is where
    the html page's links to the runs' curves start from (default: the current folder)."""
    renderer = RENDERERS.get(fmt)
    if renderer is None:
        raise DataError(f"leaderboard format {fmt!r}: expected one of {', '.join(RENDERERS)}")
    if fmt == "html" and output is not None:
        return render_html(board, page_dir=Path(output).expanduser().resolve().parent)
    return renderer(board)


def render_run_dirs(run_dirs: Iterable[str | Path], fmt: str = "md", published: bool = False) -> str:
    """Shortcut for ``render(leaderboard_from_runs(run_dirs, published), fmt)``."""
    return render(leaderboard_from_runs(run_dirs, published=published), fmt)
