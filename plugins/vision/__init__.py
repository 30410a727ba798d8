"""Built-in vision encoders (CLIP, BiomedCLIP) and the helpers they share."""

from __future__ import annotations

from medzoo.core.errors import RecipeError

# CLIP's image statistics (the OpenAI dataset mean / std); BiomedCLIP uses the same ones.
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
