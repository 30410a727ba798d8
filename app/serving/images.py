"""Reading request images: data URLs, or files inside the allowed image folder; sizes checked before decoding."""

from __future__ import annotations

import base64
import binascii
import io
import re
from pathlib import Path
from urllib.parse import unquote, urlparse

from PIL import Image, UnidentifiedImageError

from medzoo.app.serving.limits import RequestError, ServeLimits

FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")
_DATA_URL = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[^;,]*)*?),(?P<data>.*)$", re.DOTALL)


class ImageLoader:
    """Turns an ``image_url`` value into a checked RGB image."""

    def __init__(self, limits: ServeLimits, image_folder: str | Path | None = None) -> None:
        self.limits = limits
        self.folder = Path(image_folder).resolve() if image_folder is not None else None

    def load(self, url: str, param: str) -> Image.Image:
        if url.startswith("data:"):
            data = self._data_url(url, param)
        elif urlparse(url).scheme in ("http", "https"):
            raise RequestError(400, "remote image URLs are not fetched; send the image as a data URL", param=param,
                               code="unsupported_image_url")
        else:
            data = self._local_file(url, param)
        return self._decode(data, param)

    def _data_url(self, url: str, param: str) -> bytes:
        match = _DATA_URL.match(url)
        if match is None or ";base64" not in match["params"]:
            raise RequestError(400, "image data URL must look like data:image/png;base64,...", param=param,
                               code="invalid_image")
        if match["mime"] and not match["mime"].startswith("image/"):
            raise RequestError(400, f"data URL media type {match['mime']!r} is not an image", param=param,
                               code="invalid_image")
        encoded = match["data"]
        if len(encoded) * 3 // 4 > self.limits.max_image_bytes + 3:
            raise self._too_big(len(encoded) * 3 // 4, param)
        try:
            return base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise RequestError(400, "image data URL is not valid base64", param=param, code="invalid_image") from None

    def _local_file(self, url: str, param: str) -> bytes:
        if self.folder is None:
            raise RequestError(400, "local image paths are disabled; start the server with --image-folder or send "
                               "a data URL", param=param, code="unsupported_image_url")
        raw = unquote(url[len("file://"):]) if url.startswith("file://") else url
        path = (self.folder / raw).resolve()
        if not path.is_relative_to(self.folder):
            raise RequestError(403, "image path is outside the allowed image folder", param=param,
                               code="image_path_forbidden")
        if not path.is_file():
            raise RequestError(400, f"image file {raw!r} not found in the image folder", param=param,
                               code="invalid_image")
        size = path.stat().st_size
        if size > self.limits.max_image_bytes:
            raise self._too_big(size, param)
        return path.read_bytes()

    def _too_big(self, size: int, param: str) -> RequestError:
        return RequestError(413, f"image is {size} bytes; the limit is {self.limits.max_image_bytes}", param=param,
                            code="image_too_large")

    def _decode(self, data: bytes, param: str) -> Image.Image:
        try:
            image = Image.open(io.BytesIO(data), formats=FORMATS)
            width, height = image.size
            if width * height > self.limits.max_image_pixels:
                raise RequestError(400, f"image is {width}x{height} = {width * height} pixels; the limit is "
                                   f"{self.limits.max_image_pixels}", param=param, code="image_too_large")
            image.load()
            return image.convert("RGB")
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise RequestError(400, "image has too many pixels (decompression bomb)", param=param,
                               code="image_too_large") from None
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
            raise RequestError(400, f"image could not be decoded (supported: {', '.join(FORMATS)})", param=param,
                               code="invalid_image") from None
