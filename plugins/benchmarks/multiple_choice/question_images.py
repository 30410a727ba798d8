"""The images of a question with several: each reference found under the benchmark's image folders and decoded
once, or the reason it cannot be used (``image not found`` / ``unreadable image``, the readers' skip reasons)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

from medzoo import write_atomically

IMAGE_NOT_FOUND = "image not found"
UNREADABLE_IMAGE = "unreadable image"


class QuestionImageProblem(Exception):
    """An image of a question cannot be used: ``reason`` is the skip reason, the message names the image."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def decodes(data: bytes | Path) -> bool:
    """Whether ``data`` (bytes or a file) holds an image PIL can decode."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as image:
            image.load()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return False
    return True


class ImageFolders:
    """Finds image files named by a question under a list of folders (the first that holds the name wins) and
    decodes each once."""

    def __init__(self, folders: Sequence[Path]) -> None:
        self.folders = [Path(folder) for folder in folders]
        self._verdicts: dict[Path, bool] = {}

    def locate(self, name: str) -> Path:
        """The image file ``name``; QuestionImageProblem when it is in none of the folders or does not decode."""
        relative = Path(name)
        if relative.is_absolute() or ".." in relative.parts:
            raise QuestionImageProblem(IMAGE_NOT_FOUND, f"image {name!r} is not a relative path inside the folders")
        path = next((folder / relative for folder in self.folders if (folder / relative).is_file()), None)
        if path is None:
            raise QuestionImageProblem(IMAGE_NOT_FOUND, f"image {name!r} is in none of "
                                       f"{', '.join(str(folder) for folder in self.folders)}")
        if path not in self._verdicts:
            self._verdicts[path] = decodes(path)
        if not self._verdicts[path]:
            raise QuestionImageProblem(UNREADABLE_IMAGE, f"{path}: not a decodable image")
        return path


def embedded_image(data: bytes, target_stem: Path) -> Path:
    """Image bytes embedded in a data file, written once to ``target_stem`` + their format's suffix;
    QuestionImageProblem (``unreadable image``) when they do not decode."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            suffix = {"PNG": ".png", "GIF": ".gif", "BMP": ".bmp", "TIFF": ".tif"}.get(image.format or "", ".jpg")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        raise QuestionImageProblem(UNREADABLE_IMAGE, f"{target_stem.name}: embedded bytes are not an image") from None
    path = target_stem.with_suffix(suffix)
    if not (path.is_file() and path.stat().st_size == len(data)):
        write_atomically(path, data)
    return path
