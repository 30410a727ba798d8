"""A run row's training curves on the html leaderboard: links to ``RUN_DIR/plots/<stage>-{loss,lr}.png``
(relative to the folder the page is written to) and a small inline thumbnail of the last loss curve."""

from __future__ import annotations

import base64
import io
import os
from html import escape
from pathlib import Path
from urllib.parse import quote

from medzoo.app.leaderboard.table import ModelRow

THUMBNAIL_WIDTH = 120


def curve_files(row: ModelRow) -> dict[str, Path]:
    """The curve PNGs of a run row's folder by name (``<stage>-loss``, ``<stage>-lr``, ``sweep-loss``), in
    training order; nothing for a published row or a folder without plots."""
    if row.kind != "run" or not row.source or not Path(row.source).is_dir():
        return {}
    from medzoo.app.plots.run_plots import run_plots

    return run_plots(row.source)


def relative_href(path: Path, page_dir: Path) -> str:
    """``path`` as a url relative to ``page_dir`` (the folder of the html file)."""
    return quote(Path(os.path.relpath(path.resolve(), page_dir.resolve())).as_posix())


def thumbnail(path: Path) -> str | None:
    """A ``data:`` url of the PNG shrunk to ``THUMBNAIL_WIDTH`` pixels, or None when it cannot be read."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
            height = max(1, round(image.height * THUMBNAIL_WIDTH / image.width))
            small = image.resize((THUMBNAIL_WIDTH, height), Image.Resampling.LANCZOS)
    except (OSError, UnidentifiedImageError, ValueError):
        return None
    buffer = io.BytesIO()
    small.save(buffer, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def curves_cell(row: ModelRow, page_dir: Path) -> str:
    """The inside of a row's Curves cell: the last loss curve's thumbnail (a link to it) and one line per
    stage with its ``loss`` and ``lr`` links; empty when the row has no curves."""
    files = curve_files(row)
    if not files:
        return ""
    stages: dict[str, list[str]] = {}
    for name, path in files.items():
        stage, kind = name.rsplit("-", 1)
        link = f'<a href="{escape(relative_href(path, page_dir))}" title="{escape(name)}.png">{escape(kind)}</a>'
        stages.setdefault(stage, []).append(link)
    lines = "".join(f'<span class="stage">{escape(stage)}: {" ".join(links)}</span>' for stage, links in stages.items())
    losses = [name for name in files if name.endswith("-loss")]
    picture = ""
    if losses and (source := thumbnail(files[losses[-1]])):
        picture = (
            f'<a class="thumb" href="{escape(relative_href(files[losses[-1]], page_dir))}">'
            f'<img src="{source}" width="{THUMBNAIL_WIDTH}" alt="{escape(losses[-1])} curve"></a>'
        )
    return f'{picture}<span class="curve-links">{lines}</span>'
