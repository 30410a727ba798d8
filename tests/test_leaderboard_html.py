"""The html leaderboard page: one chart per metric column, the markdown's image-ablation table, curve links that
resolve from where the page is written, a legend of the kinds of rows shown only, everything escaped and inline."""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pytest
from click.testing import CliRunner
from support.leaderboard_runs import fake_run, fake_runs

from medzoo.app.cli.main import cli
from medzoo.app.leaderboard.ablation import render_ablation_markdown
from medzoo.app.leaderboard.html_charts import BAR_WIDTH, chart
from medzoo.app.leaderboard.html_curves import THUMBNAIL_WIDTH
from medzoo.app.leaderboard.render import leaderboard_from_runs
from medzoo.app.leaderboard.render_html import render_html
from medzoo.app.leaderboard.table import Column, ColumnGroup, Leaderboard, ModelRow


class Page(HTMLParser):
    """Every start tag with its attributes, and the cell texts of each table's body rows."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.tables: list[tuple[dict[str, str], list[list[str]]]] = []
        self._cell: list[str] | None = None
        self._in_body = False
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        self.tags.append((tag, attributes))
        if tag == "table":
            self.tables.append((attributes, []))
        elif tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body:
            self.tables[-1][1].append([])
        elif tag == "td" and self._in_body:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None:
            self.tables[-1][1][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tbody":
            self._in_body = False

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)

    def all(self, tag: str, **wanted: str) -> list[dict[str, str]]:
        return [attrs for name, attrs in self.tags if name == tag and all(attrs.get(k) == v for k, v in wanted.items())]


@pytest.fixture
def runs(tmp_path: Path) -> list[Path]:
    return fake_runs(tmp_path / "runs")


def _sections(page: str) -> list[str]:
    return re.findall(r'<section class="protocol".*?</section>', page)


def test_one_chart_per_metric_column_in_each_section(runs, tmp_path):
    board = leaderboard_from_runs(runs, published=True)
    page = render_html(board, page_dir=tmp_path)
    sections = _sections(page)
    assert len(sections) == len(board.sections) > 1
    for section, html in zip(board.sections, sections, strict=True):
        charted = [attrs["data-col"] for attrs in Page(html).all("figure")]
        assert charted == [column.key for column in section.columns]
    first = [attrs["data-col"] for attrs in Page(sections[0]).all("figure")]
    assert {"vqa-rad:test:open_recall", "vqa-rad:test:closed_accuracy", "slake:test:closed_accuracy"} <= set(first)
    assert len(Page(page).all("figure")) == sum(len(section.columns) for section in board.sections)


def test_chart_scales_percent_to_100_and_other_numbers_to_their_largest():
    rows = [ModelRow("a", "", scores={ColumnGroup("b"): {"seconds": 3.0, "acc": 50.0}}),
            ModelRow("c", "", scores={ColumnGroup("b"): {"seconds": 6.0, "acc": 25.0}})]  # fmt: skip
    board = Leaderboard(columns=[], rows=rows)
    widths = [float(w) for w in re.findall(r'<rect[^>]* width="([\d.]+)"', chart(board, Column(ColumnGroup("b"), "seconds")))]
    assert widths == [BAR_WIDTH, BAR_WIDTH / 2]
    widths = [float(w) for w in re.findall(r'<rect[^>]* width="([\d.]+)"', chart(board, Column(ColumnGroup("b"), "acc")))]
    assert widths == [BAR_WIDTH / 2, BAR_WIDTH / 4]


def test_image_ablation_table_has_the_markdown_rows(runs, tmp_path):
    page = render_html(leaderboard_from_runs(runs), page_dir=tmp_path)
    markdown = render_ablation_markdown(runs)
    expected = [[cell.strip() for cell in line.strip("|").split("|")] for line in markdown.splitlines()
                if line.startswith("| ") and not line.startswith("| Model")]  # fmt: skip
    assert len(expected) == 2  # run-a's vqa-rad, both headline metrics
    tables = [rows for attrs, rows in Page(page).tables if attrs.get("class") == "ablation"]
    assert tables == [expected]
    assert "image ablation (noise)" in page and "image ablation (noise)" in markdown
    unablated = fake_run(tmp_path / "other", "plain", "plain", {"vqa-rad": {"open_recall": 1.0}}, plots=False)
    assert 'class="ablation"' not in render_html(leaderboard_from_runs([unablated]), page_dir=tmp_path)


def _curve_hrefs(page: str) -> list[str]:
    parser = Page(page)
    return [attrs["href"] for attrs in parser.all("a") if attrs.get("href", "").endswith(".png")]


def test_curve_links_resolve_from_the_written_page(runs, tmp_path, monkeypatch):
    target = tmp_path / "site" / "deep" / "board.html"
    result = CliRunner().invoke(cli, ["leaderboard", *map(str, runs), "--format", "html", "-O", str(target)])
    assert result.exit_code == 0, result.output
    page = target.read_text(encoding="utf-8")
    hrefs = _curve_hrefs(page)
    linked = {(target.parent / unquote(href)).resolve() for href in hrefs}
    assert all(not href.startswith(("/", "file:")) for href in hrefs)  # relative, so the folder can move
    assert all(path.is_file() for path in linked)
    assert linked == {path.resolve() for run in runs for path in (run / "plots").glob("*.png")}  # a and b, all four
    board_rows = next(rows for attrs, rows in Page(page).tables if attrs.get("class") == "leaderboard")
    no_curves = next(row for row in board_rows if row[0] == "no-curves")
    assert no_curves[2] == ""  # the Curves cell of a run without plots: no link
    assert no_curves[1] == "../../runs/run-c"  # the run's folder, also relative to the page
    # printed (and redirected into a file here): relative to the current folder
    monkeypatch.chdir(tmp_path)
    printed = CliRunner().invoke(cli, ["leaderboard", *map(str, runs), "--format", "html"]).stdout
    assert all((tmp_path / unquote(href)).is_file() for href in _curve_hrefs(printed))
    assert _curve_hrefs(printed)[0].startswith("runs/run-a/plots/")


def test_thumbnail_is_a_small_inline_png_of_the_last_loss_curve(runs, tmp_path):
    page = render_html(leaderboard_from_runs(runs[:1]), page_dir=tmp_path)
    (thumb,) = Page(page).all("img")
    data = base64.b64decode(thumb["src"].removeprefix("data:image/png;base64,"))
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and int.from_bytes(data[16:20], "big") == THUMBNAIL_WIDTH
    link = next(attrs for attrs in Page(page).all("a") if attrs.get("class") == "thumb")
    assert link["href"].endswith("runs/run-a/plots/instruct-loss.png")


def _legend(page: str) -> list[str]:
    legend = re.search(r'<p class="legend">.*?</p>', page).group(0)
    return [attrs["data-kind"] for attrs in Page(legend).all("span") if "data-kind" in attrs]


def test_legend_names_only_the_kinds_shown(runs, tmp_path):
    assert _legend(render_html(leaderboard_from_runs(runs), page_dir=tmp_path)) == ["run"]
    assert "published results" not in render_html(leaderboard_from_runs(runs), page_dir=tmp_path)
    published_only = render_html(leaderboard_from_runs([], published=True), page_dir=tmp_path)
    assert _legend(published_only) == ["published"] and "medzoo runs" not in published_only
    assert _legend(render_html(leaderboard_from_runs(runs, published=True), page_dir=tmp_path)) == ["run", "published"]


def test_every_string_is_escaped_and_nothing_is_external(tmp_path):
    hostile = '<script>alert("x")</script>'
    run = fake_run(tmp_path, "odd", hostile, {"odd&bench": {"a<b": 10.0, "split": "x\"y"}})
    page = render_html(leaderboard_from_runs([run]), page_dir=tmp_path)
    assert hostile not in page and "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "a<b" not in page and "a&lt;b" in page and "odd&amp;bench (x&quot;y)" in page
    parser = Page(page)
    assert len(parser.all("script")) == 1 and not parser.all("script")[0]  # the inline sort script only
    assert not parser.all("link") and not re.search(r"@import|url\(|https?://(?!www\.w3\.org/2000/svg)", page)
    assert all(attrs["src"].startswith("data:image/png;base64,") for attrs in parser.all("img"))
    assert all(not attrs["href"].startswith(("http", "//")) for attrs in parser.all("a"))
    assert parser.all("th", **{"class": "sortable", "data-col": "odd&bench:x\"y:a<b"})  # still sortable
