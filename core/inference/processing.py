"""The processor a model answers (and trains) with."""

from __future__ import annotations

from medzoo.core.model.multimodal import MultimodalModel
from medzoo.core.model.processor import MultimodalProcessor
from medzoo.core.plugin_system.template_lookup import get_template


def processor_for(
    model: MultimodalModel,
    template_name: str | None = None,
    image_placement: str | None = None,
    label_masking: str = "exact",
) -> MultimodalProcessor:
    """The processor for ``model`` with a template (default: the language model's) and text settings."""
    template = get_template(template_name or model.language.template_name)
    return MultimodalProcessor(
        model.tokenizer, template, model.image_transform, model.num_image_tokens, model.markup,
        image_placement=image_placement, label_masking=label_masking, tiling=model.tiling,
    )
