"""The html leaderboard in headless Chromium at 1280x800: the page written by ``medzoo leaderboard --format html
-O FILE`` fits the window (wide tables scroll in their own box), sorts on a header click, shows its thumbnails,
links curves that exist, and full-page screenshots of it are 1280 px wide."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from click.testing import CliRunner
from support.leaderboard_runs import fake_runs

from medzoo.app.cli.main import cli

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
WIDTH, HEIGHT = 1280, 800

pytestmark = pytest.mark.skipif(
    not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is missing (apt-get install chromium; .ci/run installs it)"
)


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def _column(page, table, key: str) -> list[str]:
    return table.locator(f'tbody td[data-col="{key}"]').all_inner_texts()


def test_leaderboard_page_fits_1280_sorts_and_links_curves(tmp_path):
    from playwright.sync_api import expect, sync_playwright

    runs = fake_runs(tmp_path / "runs")
    target = tmp_path / "site" / "leaderboard.html"
    result = CliRunner().invoke(
        cli, ["leaderboard", *map(str, runs), "--published", "--format", "html", "-O", str(target)]
    )
    assert result.exit_code == 0, result.output
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})
            requests: list[str] = []
            page.on("request", lambda request: requests.append(request.url))
            page.goto(target.as_uri())
            assert page.evaluate("document.scrollingElement.scrollWidth") <= WIDTH
            # every chart sits inside the window
            boxes = [chart.bounding_box() for chart in page.locator("figure.chart").all()]
            assert boxes and all(box["x"] >= 0 and box["x"] + box["width"] <= WIDTH for box in boxes)
            shot = page.screenshot(path=str(tmp_path / "leaderboard.png"), full_page=True)
            width, height = png_size(shot)
            assert width == WIDTH and height > HEIGHT

            table = page.locator("table.leaderboard").first
            header = table.locator('th[data-col="vqa-rad:test:open_recall"]')
            header.click()
            expect(header).to_have_class("sortable desc")
            values = [float(text) for text in _column(page, table, "vqa-rad:test:open_recall") if text != "—"]
            assert values == sorted(values, reverse=True) and len(values) >= 3
            header.click()
            values = [float(text) for text in _column(page, table, "vqa-rad:test:open_recall") if text != "—"]
            assert values == sorted(values)
            models = _column(page, table, "model")
            assert models[0] == "no-curves"  # 30.00, the lowest open recall, first when ascending
            page.screenshot(path=str(tmp_path / "leaderboard-sorted.png"), full_page=True)

            thumbnails = page.locator("td.curves img")
            assert thumbnails.count() == 2  # run-a and run-b; run-c has no curves
            assert all(width > 0 for width in thumbnails.evaluate_all("(images) => images.map(i => i.naturalWidth)"))
            links = page.locator("td.curves a").evaluate_all("(links) => links.map(a => a.href)")
            assert links and all(Path(unquote(urlparse(link).path)).is_file() for link in links)
            assert all(url.startswith(("file://", "data:")) for url in requests), requests  # nothing from the web
        finally:
            browser.close()
