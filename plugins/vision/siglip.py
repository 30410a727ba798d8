"""SigLIP vision tower (transformers ``SiglipVisionModel``): SigLIP, fixed-resolution SigLIP 2 and MedSigLIP.

As ColonGPT's ``SiglipVisionTower`` (``hidden_states[-2]``, every token), features are one hidden state of the
encoder: 0 is the embedding output, ``i`` the output of block ``i - 1``; only the blocks needed run, and the
``post_layernorm`` and the attention-pooling head are never applied (the head is not even built).

SigLIP has no class token, so ``feature_select`` ``patch`` keeps every token and ``cls_patch`` is a
:class:`RecipeError` (rather than silently meaning ``patch``).

Preprocessing is ``SiglipImageProcessor``'s: both edges resized to the tower's square size (bicubic, no crop),
rescaled by 1/255 and normalised with mean = std = 0.5 (or the statistics of the source's
``preprocessor_config.json``); ``image_aspect`` ``pad`` runs LLaVA's ``expand2square`` first (ColonGPT's
``image_aspect_ratio: pad``), ``crop`` is the processor alone (a non-square image is squashed).
"""

from __future__ import annotations

from typing import Any

from medzoo import TINY_VIT_CONFIG, TransformersVisionTower

SIGLIP_MEAN: tuple[float, float, float] = (0.5, 0.5, 0.5)
SIGLIP_STD: tuple[float, float, float] = (0.5, 0.5, 0.5)
SIGLIP_HUB_IDS = ("google/siglip-so400m-patch14-384", "google/siglip2-so400m-patch14-384", "google/medsiglip-448")


class SiglipVisionEncoder(TransformersVisionTower):
    """A SigLIP vision tower; ``forward`` returns ``hidden_states[feature_layer]`` (every patch token).

    ``from_pretrained`` takes a hub id (``google/siglip-so400m-patch14-384``, ``google/medsiglip-448``), a local
    folder or a full SigLIP checkpoint (text + vision): only the vision weights are taken, without the pooling
    head, and the statistics come from ``preprocessor_config.json``.
    """

    name = "siglip"
    model_class, config_class, checkpoint = "SiglipVisionModel", "SiglipVisionConfig", "SigLIP"
    config_overrides = {"vision_use_head": False}
    default_mean, default_std = SIGLIP_MEAN, SIGLIP_STD
    tiny: dict[str, Any] = TINY_VIT_CONFIG
    class_token, no_class_token = False, "SigLIP pools with an attention head"

    def transform_arguments(self) -> dict[str, Any]:
        return {"resize": "square"}
