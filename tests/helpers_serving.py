"""A tiny model for the serving tests: built random, then taught in a few seconds to name a square's colour.

Imported by name by the serving tests (pytest puts tests/ on the path: `pythonpath` in pyproject.toml).
"""

from __future__ import annotations

import base64
import contextlib
import io
from pathlib import Path

import torch
from PIL import Image
from tiny_model_spec import TINY_MODEL

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}
QUESTION = "What colour is the square?"


def square(colour: str, size: int = 32) -> Image.Image:
    return Image.new("RGB", (size, size), COLOURS[colour])


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def data_url(image: Image.Image) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(image)).decode()


def make_tiny_model(directory: Path, steps: int = 40, seed: int = 0) -> Path:
    """Train connector + language model on 'What colour is the square?' -> 'The square is <colour>.'"""
    with single_thread():
        return _train(directory, steps, seed)


def _train(directory: Path, steps: int, seed: int) -> Path:
    from medzoo.core.inference import processor_for
    from medzoo.core.interfaces.conversation import Message
    from medzoo.core.model.build import build_model
    from medzoo.core.model.processor import collate

    torch.manual_seed(seed)
    model = build_model(TINY_MODEL)
    processor = processor_for(model)
    samples = [
        processor.encode(
            [Message("user", f"<image>\n{QUESTION}"), Message("assistant", f"The square is {colour}.")], [square(colour)]
        )
        for colour in COLOURS
    ]
    batch = collate(samples, model.tokenizer.pad_token_id)
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=1e-2)
    model.train()
    for _ in range(steps):
        loss = model(**batch).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    model.save_pretrained(str(directory))
    return directory


@contextlib.contextmanager
def single_thread():
    """Tiny models run fastest on one thread (several spin against each other on a shared machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def cached_tiny_model(base: Path) -> Path:
    """The trained tiny model under a session's base temp folder (built once per test session)."""
    directory = base / "serving-tiny-model"
    if not (directory / "medzoo_model.json").is_file():
        make_tiny_model(directory)
    return directory
