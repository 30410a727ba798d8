"""What a caller of the Python API passes besides the model: sampling options, images and questions, each checked
into what the inference engine takes (a bad one is a one-line ``DataError``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from medzoo.core.errors import DataError

if TYPE_CHECKING:
    from PIL.Image import Image

    from medzoo.core.inference import SamplingSettings

SAMPLING_KEYS = ("max_new_tokens", "temperature", "top_p", "stop", "seed")


def sampling_settings(sampling: dict[str, Any], max_new_tokens: int = 256) -> SamplingSettings:
    """``SamplingSettings`` from ``ask``'s keyword arguments; an unknown or out-of-range one is a DataError."""
    from medzoo.core.inference import InvalidSettings, SamplingSettings

    unknown = sorted(set(sampling) - set(SAMPLING_KEYS))
    if unknown:
        raise DataError(f"sampling option {unknown[0]!r}: unknown; expected one of {', '.join(SAMPLING_KEYS)}")
    options = {"max_new_tokens": max_new_tokens, **sampling}
    stop = options.get("stop", ())
    options["stop"] = (stop,) if isinstance(stop, str) else tuple(stop or ())
    try:
        return SamplingSettings(**options).validate()
    except InvalidSettings as error:
        raise DataError(f"sampling option {error.field}: {error}") from None


def as_image(image: Any, where: str = "image") -> Image | None:
    """A PIL image (kept as it is: the vision encoder's transform handles its mode), one read from a path, or None."""
    if image is None:
        return None
    if isinstance(image, str | Path):
        from medzoo.app.cli.chat import open_image

        return open_image(str(image))
    from PIL import Image

    if isinstance(image, Image.Image):
        return image
    raise DataError(f"{where}: a {type(image).__name__}; expected a PIL image, a path to one, or None")


def user_turn(question: Any, has_image: bool, where: str = "question") -> str:
    """The user's message: ``<image>`` first when an image comes with it and the question does not place it."""
    from medzoo.core.interfaces.conversation import IMAGE_PLACEHOLDER

    if not isinstance(question, str):
        raise DataError(f"{where}: a {type(question).__name__}; expected a string")
    if has_image and IMAGE_PLACEHOLDER not in question:
        return f"{IMAGE_PLACEHOLDER}\n{question}"
    return question
