"""Resolving a record's image path under an image root, refusing escapes, and checking the file decodes."""

from __future__ import annotations

from pathlib import Path, PurePosixPath, PureWindowsPath

from PIL import Image

# skip reasons shared by the readers
IMAGE_MISSING = "image_missing"
IMAGE_CORRUPT = "image_corrupt"
IMAGE_OUTSIDE_ROOT = "image_outside_root"


class ImageProblem(Exception):
    """A record's image is unusable; ``reason`` is one of the skip reasons above."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class ImageChecker:
    """Resolves relative image paths under ``root``; remembers each file's verdict (images are often shared)."""

    def __init__(self, root: str | Path, verify: bool = True) -> None:
        self.root = Path(root).resolve()
        self.verify = verify
        self._verdicts: dict[Path, ImageProblem | None] = {}

    def locate(self, relative: str) -> Path:
        """The absolute path of ``relative``; raises ImageProblem when it escapes the root, is missing or corrupt."""
        if PurePosixPath(relative).is_absolute() or PureWindowsPath(relative).is_absolute():
            raise ImageProblem(IMAGE_OUTSIDE_ROOT, f"absolute image path {relative!r} is not allowed")
        path = (self.root / relative).resolve()
        if not path.is_relative_to(self.root):
            raise ImageProblem(IMAGE_OUTSIDE_ROOT, f"image path {relative!r} leaves the image root {self.root}")
        if path not in self._verdicts:
            self._verdicts[path] = self._check(path, relative)
        problem = self._verdicts[path]
        if problem is not None:
            raise problem
        return path

    def _check(self, path: Path, relative: str) -> ImageProblem | None:
        if not path.is_file():
            return ImageProblem(IMAGE_MISSING, f"image {relative!r} not found under {self.root}")
        if self.verify:
            problem = decode_problem(path)
            if problem:
                return ImageProblem(IMAGE_CORRUPT, f"image {relative!r} cannot be decoded ({problem})")
        return None


def decode_problem(path: Path) -> str | None:
    """None when the file is a complete, decodable image; otherwise a short description of the failure."""
    try:
        with Image.open(path) as image:
            image.verify()
        with Image.open(path) as image:  # verify() leaves the image unusable; a full decode catches truncation
            image.load()
    except Exception as error:  # PIL raises OSError, SyntaxError, ValueError... for bad files
        return f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else 'unreadable'}"
    return None
