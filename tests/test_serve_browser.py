"""The chat page in headless Chromium against ``medzoo serve`` (a real subprocess): pick an image, ask,
read the streamed answer on the page."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from support.hang_guard import SUBPROCESS_HANG_S

from medzoo.app.serving.background import free_port
from medzoo.testing import ColourSquares

SQUARES = ColourSquares()

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]

pytestmark = pytest.mark.skipif(
    not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is missing (apt-get install chromium; .ci/run installs it)"
)




@pytest.fixture(scope="session")
def model_dir(trained_tiny_model) -> Path:
    return trained_tiny_model


@pytest.fixture(scope="module")
def server_url(model_dir, tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("serve-log") / "serve.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "medzoo.app.cli", "serve", str(model_dir), "--port", str(port),
             "--device", "cpu", "--model-name", "tiny-med", "--threads", "1"],
            stdout=output, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + SUBPROCESS_HANG_S
        while True:
            assert process.poll() is None, f"medzoo serve exited: {log.read_text()[-2000:]}"
            assert time.monotonic() < deadline, f"medzoo serve did not come up: {log.read_text()[-2000:]}"
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_page_uploads_an_image_and_shows_the_streamed_answer(server_url, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    image = tmp_path / "green.png"
    SQUARES.image("green").save(image)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            requests: list[str] = []
            page.on("request", lambda request: requests.append(request.url))
            page.goto(server_url + "/")
            # locator waits only: the page's Content-Security-Policy forbids the eval that wait_for_function uses
            expect(page.locator("#model")).to_have_text("tiny-med", timeout=30_000)
            page.set_input_files("#image", str(image))
            page.wait_for_selector("#preview[src^='data:image/png']", timeout=10_000)
            page.fill("#question", SQUARES.question)
            page.click("#send")
            page.wait_for_selector("#log[data-state='done']", timeout=60_000)
            assert page.inner_text(".msg.user") == SQUARES.question
            assert page.inner_text(".msg.assistant") == "The square is green."
            page.fill("#question", "And once more?")
            page.keyboard.press("Enter")
            expect(page.locator(".msg.assistant")).to_have_count(2, timeout=10_000)
            expect(page.locator("#log")).to_have_attribute("data-state", "done", timeout=60_000)
            assert page.locator(".msg.assistant").nth(1).inner_text()
            assert page.locator(".msg.error").count() == 0
            assert all(url.startswith(server_url) for url in requests), requests  # nothing from a CDN
        finally:
            browser.close()
