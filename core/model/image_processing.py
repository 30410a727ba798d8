"""Image preprocessing shared by vision encoders: the pixels LLaVA / LLaVA-Med feed their vision towers.

The official code (LLaVA-Med v1.0 and v1.5, LLaVA-1.5) runs an optional ``expand2square`` and then transformers'
``CLIPImageProcessor`` as it was before transformers 5 (the PIL / NumPy implementation, now
``CLIPImageProcessorPil``): convert to RGB, resize the shortest edge to ``size`` with PIL's bicubic filter (the
long edge truncated, ``int(size * long / short)``), centre-crop (offsets ``(extent - size) // 2``), rescale by
``1 / 255`` in float64 then cast to float32, and normalise in float32. :class:`ImageTransform` performs exactly
these operations, so its tensors equal the processor's bit for bit; the options below choose between the
lineages' variants and say how medzoo treats the images the official code mishandles (16-bit greyscale, alpha,
palette). docs/fidelity.md lists every difference.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image

from medzoo.core.errors import RecipeError, did_you_mean

AspectMode = Literal["pad", "crop"]
PadGreyscale = Literal["rgb", "grey"]
PadOffset = Literal["centre", "random"]
HighBitDepth = Literal["scale", "minmax", "clip"]
AlphaMode = Literal["drop", "white"]
ResizeMode = Literal["shortest_edge", "square"]

ASPECT_MODES = ("pad", "crop")
PAD_GREYSCALE = ("rgb", "grey")
PAD_OFFSETS = ("centre", "random")
HIGH_BIT_DEPTHS = ("scale", "minmax", "clip")
ALPHA_MODES = ("drop", "white")
RESIZE_MODES = ("shortest_edge", "square")

#: The modes PIL opens high-bit-depth greyscale files in (16-bit PNG / TIFF, 32-bit integer and float TIFF).
HIGH_BIT_DEPTH_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
FLOAT_MODES = ("F",)
#: Modes whose alpha band (or ``transparency`` entry, for P / L / RGB files with a tRNS chunk) ``alpha`` governs.
ALPHA_BAND_MODES = ("RGBA", "RGBa", "LA", "La", "PA")
#: The rescale factor of transformers' image processors (``rescale_factor``), applied in float64.
RESCALE_FACTOR = 1 / 255


@dataclass(frozen=True)
class ImageTransform:
    """PIL image (any mode, any size) -> normalised float32 ``[3, size, size]`` tensor.

    ``aspect``
        ``pad``: ``expand2square`` with the mean colour ``tuple(int(255 * m) for m in mean)`` (truncated, as the
        official code), then the CLIP processor (the square is resized to ``size``; LLaVA's
        ``image_aspect_ratio: pad``). ``crop``: the CLIP processor alone, resize the shortest edge then
        centre-crop (LLaVA-Med v1.0's default ``image_aspect_ratio: square``).
    ``pad_greyscale``
        ``rgb``: greyscale images are converted to RGB before padding, so the bands get the RGB mean colour
        (LLaVA-1.5 and LLaVA-Med v1.0 convert every image on opening). ``grey``: a greyscale image is padded in
        mode L with the single level ``int(255 * sum(mean) / len(mean))`` (LLaVA-Med v1.5's ``process_images``
        on its ``Image.open``-ed, unconverted images). Only ``pad`` uses it.
    ``pad_offset`` / ``pad_seed``
        ``centre``: the image is pasted at ``(side - extent) // 2`` (LLaVA-1.5, LLaVA-Med v1.0). ``random``:
        at ``random.randint(d // 2, d // 2 + 1)`` as LLaVA-Med v1.5's ``expand2square``, the draw made by a
        generator seeded with ``pad_seed`` and the image's pixels, so a run is reproducible whatever the
        order or the number of data-loader workers (an image gets the same draw in every epoch).
    ``high_bit_depth``
        16-bit and 32-bit greyscale (modes ``I;16*``, ``I``, ``F``; CT / MR exports) to 8 bit. ``scale``: the
        full 16-bit range ``[0, 65535]`` to ``[0, 255]``, rounded (``I`` is clipped to that range first; ``F``
        has no nominal range and is min-max scaled). ``minmax``: the image's own minimum and maximum to 0 and
        255. ``clip``: PIL's ``convert`` (values above 255 saturate), which is what the official code gets.
    ``alpha``
        ``drop``: the alpha band (or a palette / tRNS transparency) is discarded, as PIL's ``convert('RGB')``
        in the official code. ``white``: transparent pixels are composited onto white, as transformers >= 5's
        ``convert_to_rgb``.
    ``resize`` / ``resize_size``
        ``shortest_edge`` (CLIP, BiT): the shortest edge to ``resize_size`` (default ``size``), then the central
        ``size`` square. ``square`` (SigLIP): both edges to ``size`` (bicubic), nothing cropped, so ``crop``
        means the processor alone, which squashes a non-square image; ``resize_size`` must then be unset.
    """

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    aspect: AspectMode = "pad"
    pad_greyscale: PadGreyscale = "rgb"
    pad_offset: PadOffset = "centre"
    pad_seed: int = 0
    high_bit_depth: HighBitDepth = "scale"
    alpha: AlphaMode = "drop"
    resize: ResizeMode = "shortest_edge"
    resize_size: int | None = None

    def __post_init__(self) -> None:
        for name, allowed in (
            ("aspect", ASPECT_MODES),
            ("pad_greyscale", PAD_GREYSCALE),
            ("pad_offset", PAD_OFFSETS),
            ("high_bit_depth", HIGH_BIT_DEPTHS),
            ("alpha", ALPHA_MODES),
            ("resize", RESIZE_MODES),
        ):
            value = getattr(self, name)
            if value not in allowed:
                label = "image aspect mode" if name == "aspect" else name
                raise ValueError(f"{label} must be {' or '.join(repr(a) for a in allowed)}, got {value!r}")
        if len(self.mean) != 3 or len(self.std) != 3:
            raise ValueError("image mean and std must hold 3 values each")
        if self.resize_size is not None and (self.resize == "square" or self.resize_size < self.size):
            raise ValueError(
                f"resize_size {self.resize_size} needs resize 'shortest_edge' and at least the crop size {self.size}"
            )

    def __call__(self, image: Image.Image) -> torch.Tensor:
        return to_normalised_tensor(self.pixels(image), self.mean, self.std)

    def batch(self, images: list[Image.Image]) -> torch.Tensor:
        if not images:
            return torch.empty(0, 3, self.size, self.size)
        return torch.stack([self(image) for image in images])

    def pixels(self, image: Image.Image) -> Image.Image:
        """The 8-bit RGB ``size x size`` image the tensor is made of (before rescaling and normalisation)."""
        if self.resize == "square":
            return self.squared(image).resize((self.size, self.size), Image.Resampling.BICUBIC)
        return centre_crop(resize_shortest_edge(self.squared(image), self.resize_size or self.size), self.size)

    def squared(self, image: Image.Image) -> Image.Image:
        """``image`` in 8-bit RGB, padded to a square when ``aspect`` is ``pad`` (what the processor receives)."""
        image = to_rgb_or_greyscale(image, self.high_bit_depth, self.alpha)
        if self.aspect == "pad":
            if image.mode == "L" and self.pad_greyscale == "grey":
                fill: int | tuple[int, ...] = int(255 * sum(self.mean) / len(self.mean))
            else:
                image = image.convert("RGB")
                fill = tuple(int(x * 255) for x in self.mean)
            image = expand_to_square(image, fill, self.pad_offset, self.pad_seed)
        return image.convert("RGB")


def to_rgb_or_greyscale(
    image: Image.Image, high_bit_depth: HighBitDepth = "scale", alpha: AlphaMode = "drop"
) -> Image.Image:
    """``image`` as 8-bit ``RGB``, or ``L`` when it is greyscale (``L``, ``1``, ``LA``, 16/32-bit, float).

    Every other mode goes through PIL's ``convert('RGB')`` as in the official code (palette expanded, alpha
    dropped, CMYK / YCbCr converted), except that ``alpha='white'`` composites transparency onto white first.
    """
    if image.mode in HIGH_BIT_DEPTH_MODES or image.mode in FLOAT_MODES:
        return high_bit_depth_to_l(image, high_bit_depth)
    if image.mode == "La":  # premultiplied: PIL converts it to LA only
        image = image.convert("LA")
    greyscale = image.mode in ("L", "1", "LA")
    if alpha == "white" and has_transparency(image):
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image.convert("RGBA")).convert("RGB")
        return image.convert("L") if greyscale else image
    if greyscale:
        return image if image.mode == "L" else image.convert("L")
    return image if image.mode == "RGB" else image.convert("RGB")


def has_transparency(image: Image.Image) -> bool:
    return image.mode in ALPHA_BAND_MODES or image.info.get("transparency") is not None


def high_bit_depth_to_l(image: Image.Image, how: HighBitDepth = "scale") -> Image.Image:
    """A 16-bit (``I;16``, ``I;16B``, ...), 32-bit integer (``I``) or float (``F``) greyscale image as mode L.

    ``clip`` is PIL's own conversion (``image.convert('L')``: values outside ``[0, 255]`` saturate, floats are
    truncated), i.e. the official code's result; ``scale`` maps ``[0, 65535]`` onto ``[0, 255]`` rounding to
    the nearest level (float images, which have no nominal range, are min-max scaled); ``minmax`` maps the
    image's own range onto ``[0, 255]`` (a constant image becomes 0).
    """
    if how not in HIGH_BIT_DEPTHS:
        raise ValueError(f"high_bit_depth must be one of {', '.join(HIGH_BIT_DEPTHS)}, got {how!r}")
    if how == "clip":
        return image.convert("L")
    values = np.asarray(image)
    if image.mode in FLOAT_MODES or how == "minmax":
        values = np.nan_to_num(values.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
        if high <= low:  # a constant image
            levels = np.zeros(values.shape, dtype=np.uint8)
        else:
            levels = np.floor((values - low) * (255.0 / (high - low)) + 0.5).clip(0, 255).astype(np.uint8)
    else:
        wide = values.astype(np.int64).clip(0, 65535)
        levels = ((wide * 255 + 32767) // 65535).astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(levels))


def expand_to_square(
    image: Image.Image,
    fill: int | tuple[int, ...],
    offset: PadOffset = "centre",
    seed: int = 0,
) -> Image.Image:
    """Paste ``image`` onto a square canvas of its long side filled with ``fill`` (LLaVA's ``expand2square``).

    ``centre`` pastes at ``(side - extent) // 2`` on the short axis; ``random`` at ``d // 2`` or ``d // 2 + 1``
    (``d = side - extent``, LLaVA-Med v1.5), drawn from a generator seeded with ``seed`` and the pixels.
    """
    width, height = image.size
    if width == height:
        return image
    side = max(width, height)
    shortfall = side - min(width, height)
    start = shortfall // 2
    if offset == "random":
        start = random.Random(pad_draw_key(image, seed)).randint(shortfall // 2, shortfall // 2 + 1)
    elif offset != "centre":
        raise ValueError(f"pad_offset must be 'centre' or 'random', got {offset!r}")
    canvas = Image.new(image.mode, (side, side), fill)
    canvas.paste(image, (0, start) if width > height else (start, 0))
    return canvas


def pad_draw_key(image: Image.Image, seed: int) -> int:
    """The seed of one image's random paste offset: ``seed`` mixed with a digest of the image's pixels."""
    digest = hashlib.blake2b(digest_size=8)
    digest.update(f"{seed}:{image.mode}:{image.size[0]}x{image.size[1]}:".encode())
    digest.update(image.tobytes())
    return int.from_bytes(digest.digest(), "little")


def resize_shortest_edge(image: Image.Image, size: int) -> Image.Image:
    """Bicubic resize (PIL) of the shortest edge to ``size``, the long edge to ``int(size * long / short)``.

    transformers' ``get_resize_output_image_size(..., default_to_square=False)`` arithmetic, which truncates.
    """
    width, height = image.size
    short, long = (width, height) if width <= height else (height, width)
    new_long = int(size * long / short)
    new_size = (size, new_long) if width <= height else (new_long, size)
    return image.resize(new_size, Image.Resampling.BICUBIC)


def centre_crop(image: Image.Image, size: int) -> Image.Image:
    """The central ``size x size`` window, offsets ``(extent - size) // 2`` (transformers' ``center_crop``).

    The image is at least ``size`` on each side here (``resize_shortest_edge`` ran first).
    """
    width, height = image.size
    if width < size or height < size:
        raise ValueError(f"centre_crop: a {width}x{height} image is smaller than the {size}x{size} crop")
    left, top = (width - size) // 2, (height - size) // 2
    if (left, top, width, height) == (0, 0, size, size):
        return image
    return image.crop((left, top, left + size, top + size))


def to_normalised_tensor(image: Image.Image, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """``[3, H, W]`` float32 from an 8-bit RGB image with the processor's arithmetic.

    ``rescale``: ``uint8 -> float64``, times ``1 / 255``, cast to float32; ``normalize``: ``(x - mean) / std``
    with mean and std as float32 arrays, in float32.
    """
    array = np.asarray(image, dtype=np.uint8)
    scaled = (array.astype(np.float64) * RESCALE_FACTOR).astype(np.float32)
    normalised = (scaled - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)
    return torch.from_numpy(np.ascontiguousarray(normalised.transpose(2, 0, 1)))


# The preprocessing options every built-in vision plugin accepts (besides image_aspect), with their defaults;
# ImageTransform documents them and docs/fidelity.md maps them to lineages.
TRANSFORM_OPTION_DEFAULTS: dict[str, Any] = {
    "pad_greyscale": "rgb",
    "pad_offset": "centre",
    "pad_seed": 0,
    "high_bit_depth": "scale",
    "alpha": "drop",
}
#: LLaVA-NeXT AnyRes tiling (core/model/anyres.py reads them; towers only accept them): the resolutions to tile
#: into (null: no tiling, one fixed-size image), a cap on image tokens, the unpadding and the newline token
TILING_OPTION_DEFAULTS: dict[str, Any] = {
    "image_grid_pinpoints": None,
    "max_image_tokens": None,
    "unpad": True,
    "newline": True,
}
#: S2-style multi-scale features (core/model/multiscale.py): the scales the tower reads each image at (null: one)
MULTISCALE_OPTION_DEFAULTS: dict[str, Any] = {"multiscale": None}
IMAGE_OPTION_DEFAULTS: dict[str, Any] = {
    **TRANSFORM_OPTION_DEFAULTS, **TILING_OPTION_DEFAULTS, **MULTISCALE_OPTION_DEFAULTS,
}


def image_options(options: dict[str, Any], encoder: str | None = None) -> dict[str, Any]:
    """The preprocessing options among a plugin's keyword arguments, defaults filled in.

    With ``encoder`` (a constructor's own ``**image_preprocessing``), a key that is not one of them is an error.
    """
    if encoder is not None:
        unknown = sorted(set(options) - set(IMAGE_OPTION_DEFAULTS))
        if unknown:
            raise RecipeError(
                f"vision encoder {encoder!r}: unknown image option {unknown[0]!r}"
                f"{did_you_mean(unknown[0], IMAGE_OPTION_DEFAULTS)}; expected one of {', '.join(IMAGE_OPTION_DEFAULTS)}"
            )
    return {key: options.get(key, default) for key, default in IMAGE_OPTION_DEFAULTS.items()}


def build_image_transform(
    encoder: str,
    size: int,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    image_aspect: str,
    options: dict[str, Any],
    resize: str = "shortest_edge",
    resize_size: int | None = None,
) -> ImageTransform:
    """An :class:`ImageTransform`, its option errors reported as recipe errors naming the encoder."""
    try:
        return ImageTransform(  # type: ignore[arg-type]
            size, mean, std, image_aspect, **{key: value for key, value in image_options(options).items()
                                               if key in TRANSFORM_OPTION_DEFAULTS},
            resize=resize, resize_size=resize_size,
        )
    except ValueError as error:
        raise RecipeError(f"vision encoder {encoder!r}: {error}") from error
