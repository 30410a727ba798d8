"""Tiny models for tests, medzoo's own and plugin authors': build one, train one in seconds, feed it images.

``TINY_MODEL`` is a recipe's ``model`` section naming CLIP, mlp2x_gelu and Mistral without ``config`` or
``pretrained``, so every size comes from the plugins' own ``tiny_config()`` (one place): a CLIP-style tower with
16 image tokens and a 2-layer Mistral-style language model with the shipped tokenizer. Swap one component's name
to test yours against the others.
"""

from __future__ import annotations

import base64
import contextlib
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image

from medzoo.core.cpu_threads import pinned

TINY_MODEL = {
    "vision": {"name": "clip"},
    "connector": {"name": "mlp2x_gelu"},
    "language": {"name": "mistral", "template": "mistral_instruct"},
}


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one thread (tiny models are fastest so, and steadier on a shared machine); training and
    inference inside keep it (the thread governor is pinned too)."""
    with pinned(1):
        yield


@dataclass(frozen=True)
class ColourSquares:
    """The task the trained tiny model learnt: name the colour of a plain square."""

    question: str = "What colour is the square?"
    colours: dict[str, tuple[int, int, int]] = field(
        default_factory=lambda: {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 40, 220)}
    )

    def image(self, colour: str, size: int = 32) -> Image.Image:
        return Image.new("RGB", (size, size), self.colours[colour])

    @staticmethod
    def png_bytes(image: Image.Image) -> bytes:
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return buffer.getvalue()

    def data_url(self, image: Image.Image) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png_bytes(image)).decode()


def train_colour_model(directory: Path, squares: ColourSquares, steps: int = 40, seed: int = 0) -> Path:
    """The tiny model taught in a few seconds: 'What colour is the square?' -> 'The square is <colour>.'"""
    from medzoo.core.inference import processor_for
    from medzoo.core.interfaces.conversation import Message
    from medzoo.core.model.build import build_model
    from medzoo.core.model.processor import collate

    with single_thread():
        torch.manual_seed(seed)
        model = build_model(TINY_MODEL)
        processor = processor_for(model)
        samples = [
            processor.encode(
                [Message("user", f"<image>\n{squares.question}"), Message("assistant", f"The square is {colour}.")],
                [squares.image(colour)],
            )
            for colour in squares.colours
        ]
        batch = collate(samples, model.tokenizer.pad_token_id)
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
        model.train()
        for _ in range(steps):
            loss = model(**batch).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        model.save_pretrained(str(directory))
    return directory
