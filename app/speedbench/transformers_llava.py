"""A transformers ``LlavaForConditionalGeneration`` holding a medzoo model's weights (CLIP + mlp2x_gelu + a
Mistral or Llama model), with the same modules trainable: the baseline of the training-step benchmark."""

from __future__ import annotations

import torch
from transformers import CLIPVisionConfig, LlavaConfig, LlavaForConditionalGeneration

from medzoo.app.interop.hf_llava_export import check_exportable
from medzoo.core.errors import ExportRefused
from medzoo.core.model.multimodal import MultimodalModel


def transformers_llava_copy(model: MultimodalModel) -> LlavaForConditionalGeneration:
    """Same config, weights (copied, strictly), dtype, attention implementation and ``requires_grad`` flags."""
    check_exportable(model)
    from transformers import CLIPVisionModel

    from medzoo.plugins.connectors.mlp import MlpGeluConnector

    if not (isinstance(getattr(model.vision, "model", None), CLIPVisionModel)
            and isinstance(model.connector, MlpGeluConnector) and model.connector.depth == 2):
        raise ExportRefused("the transformers copy of the training-step benchmark is built for a CLIP tower and "
                            "mlp2x_gelu (the llava-hf baseline); this model has another tower or connector")
    vision = model.vision
    language = model.language.model
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(**vision.model.config.to_dict()),
        text_config=language.config,
        image_token_index=model.markup.fill_id,
        image_seq_length=model.num_image_tokens,
        vision_feature_layer=vision.feature_layer,
        vision_feature_select_strategy="default" if vision.feature_select == "patch" else "full",
        projector_hidden_act="gelu",
    )
    config._attn_implementation = language.config._attn_implementation
    hf_model = LlavaForConditionalGeneration(config).to(model.dtype)
    hf_model.model.vision_tower.load_state_dict(vision.model.state_dict(), strict=True)
    layers = model.connector.layers
    projector = hf_model.model.multi_modal_projector
    projector.linear_1.load_state_dict(layers[0].state_dict(), strict=True)
    projector.linear_2.load_state_dict(layers[2].state_dict(), strict=True)
    hf_model.model.language_model.load_state_dict(language.model.state_dict(), strict=True)
    hf_model.lm_head.load_state_dict(language.lm_head.state_dict(), strict=True)
    pairs = {
        hf_model.model.vision_tower: vision,
        projector: model.connector,
        hf_model.model.language_model: language.model,
        hf_model.lm_head: language.lm_head,
    }
    for theirs, ours in pairs.items():
        trainable = any(p.requires_grad for p in ours.parameters())
        for parameter in theirs.parameters():
            parameter.requires_grad_(trainable)
    return hf_model


def transformers_llava_loss(hf_model: LlavaForConditionalGeneration, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """transformers' own loss (mean over target tokens) on a padded or packed batch."""
    return hf_model(**batch, use_cache=False).loss
