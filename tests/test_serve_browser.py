"""The chat page in headless Chromium against ``medzoo serve`` (a real subprocess): pick an image, ask,
read the streamed answer on the page."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from support.hang_guard import wait_for

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
        def healthy() -> bool:
            assert process.poll() is None, f"medzoo serve exited: {log.read_text()[-2000:]}"
            try:
                return httpx.get(url + "/health", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(healthy, f"medzoo serve answering {url}/health (its log: {log})", poll_s=0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_page_uploads_an_image_and_shows_the_streamed_answer(server_url, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    image = tmp_path / "green.png"
    SQUARES.image("green").save(image)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
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
            assert page.inner_text(".msg.user .text") == SQUARES.question
            assert page.inner_text(".msg.assistant .text") == "The square is green."
            # the image is shown in the conversation, the answer is signed with the model's name, and the time
            # the answer took is shown
            expect(page.locator(".msg.user img")).to_have_attribute("src", re.compile(r"^data:image/png"))
            assert page.inner_text(".msg.assistant .who") == "tiny-med"
            expect(page.locator("#status")).to_have_text(re.compile(r"^answered in \d+\.\d s$"))
            assert page.locator(".msg.assistant.pending").count() == 0
            page.fill("#question", "And once more?")
            page.keyboard.press("Enter")
            expect(page.locator(".msg.assistant")).to_have_count(2, timeout=10_000)
            expect(page.locator("#log")).to_have_attribute("data-state", "done", timeout=60_000)
            assert page.locator(".msg.assistant .text").nth(1).inner_text()
            assert page.locator(".msg.user img").count() == 1  # the image belongs to the first turn only
            assert page.locator(".msg.error").count() == 0
            assert all(url.startswith(server_url) for url in requests), requests  # nothing from a CDN
            # the page fits a 1280 px window: a full-page screenshot is no wider than the viewport
            shot = page.screenshot(path=str(tmp_path / "chat.png"), full_page=True)
            width, height = png_size(shot)
            assert width == 1280 and height >= 800
            bubble = page.locator(".msg.user").first.bounding_box()
            answer = page.locator(".msg.assistant").first.bounding_box()
            assert bubble["x"] > answer["x"]  # the user's bubble on the right, the model's on the left
        finally:
            browser.close()
