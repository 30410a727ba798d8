"""CLIP ViT vision tower (transformers ``CLIPVisionModel``) giving one hidden layer's features, as LLaVA does."""

from __future__ import annotations

from typing import Any

import torch

from medzoo import TINY_VIT_CONFIG, TransformersVisionTower
from medzoo.plugins.vision import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

CLIP_HUB_IDS = ("openai/clip-vit-large-patch14", "openai/clip-vit-large-patch14-336")


class ClipVisionEncoder(TransformersVisionTower):
    """A CLIP vision tower; ``forward`` returns ``hidden_states[feature_layer]`` after ``feature_select``.

    Only the blocks up to ``feature_layer`` run, so the features equal LLaVA's
    ``CLIPVisionModel(..., output_hidden_states=True).hidden_states[-2][:, 1:]`` without keeping every layer.
    ``from_pretrained`` takes a hub id (``openai/clip-vit-large-patch14-336``), a local folder or a full CLIP
    checkpoint (text + vision), and the statistics of its ``preprocessor_config.json`` (CLIP's without one).

    Images are preprocessed as transformers' (PIL) ``CLIPImageProcessor`` after LLaVA's optional
    ``expand2square``, pixel for pixel; ``image_aspect`` and the options of
    :data:`medzoo.IMAGE_OPTION_DEFAULTS` (``pad_greyscale``, ``pad_offset``, ``pad_seed``,
    ``high_bit_depth``, ``alpha``) choose the lineage's variant (see ``ImageTransform``).
    """

    name = "clip"
    model_class, config_class, checkpoint = "CLIPVisionModel", "CLIPVisionConfig", "CLIP"
    default_mean, default_std = OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
    tiny: dict[str, Any] = TINY_VIT_CONFIG
    processor_size_keys = ("crop_size", "size")

    def embed(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model.pre_layrnorm(self.model.embeddings(pixel_values))
