"""Built-in vision encoders (CLIP, BiomedCLIP) and the helpers they share."""

from __future__ import annotations

from typing import Any

from medzoo.core.errors import RecipeError, did_you_mean
from medzoo.core.model.image_processing import ImageTransform

# CLIP's image statistics (the OpenAI dataset mean / std). BiomedCLIP's open_clip config has the same ones, and
# LLaVA-Med v1.0 preprocessed for BiomedCLIP with openai/clip-vit-base-patch16's processor, which has them too.
OPENAI_CLIP_MEAN: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)


def blocks_to_run(feature_layer: int, num_blocks: int, encoder: str) -> int:
    """How many transformer blocks produce hidden state ``feature_layer``.

    Hidden states are numbered as in transformers' ``output_hidden_states``: index 0 is the embedding output
    and index ``i`` the output of block ``i - 1``, so there are ``num_blocks + 1`` of them and -2 (LLaVA's
    choice) is the output of the penultimate block.
    """
    count = num_blocks + 1
    if not -count <= feature_layer < count:
        raise RecipeError(
            f"vision encoder {encoder!r}: feature_layer {feature_layer} is out of range for {num_blocks} blocks; "
            f"expected an integer from {-count} to {num_blocks}"
        )
    return feature_layer % count


# The preprocessing options every built-in vision plugin accepts (besides image_aspect), with their defaults;
# medzoo.core.model.image_processing.ImageTransform documents them and docs/fidelity.md maps them to lineages.
IMAGE_OPTION_DEFAULTS: dict[str, Any] = {
    "pad_greyscale": "rgb",
    "pad_offset": "centre",
    "pad_seed": 0,
    "high_bit_depth": "scale",
    "alpha": "drop",
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
) -> ImageTransform:
    """An :class:`ImageTransform`, its option errors reported as recipe errors naming the encoder."""
    try:
        return ImageTransform(size, mean, std, image_aspect, **image_options(options))  # type: ignore[arg-type]
    except ValueError as error:
        raise RecipeError(f"vision encoder {encoder!r}: {error}") from error
