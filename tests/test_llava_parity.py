"""A tiny CLIP + mlp2x_gelu + Mistral model built by medzoo and a transformers ``LlavaForConditionalGeneration``
holding the same weights give the same logits (atol 1e-5) and the same greedy tokens.

The transformers model is built here from a ``LlavaConfig`` and loaded module by module (strictly), independently
of medzoo's exporter, so a mistake in either the model or the export shows up in one of the two test files.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import CLIPVisionConfig, LlavaConfig, LlavaForConditionalGeneration

from medzoo.core.inference import processor_for
from medzoo.core.interfaces.conversation import Message
from medzoo.core.model.build import build_model
from medzoo.core.model.multimodal import MultimodalModel
from medzoo.core.model.processor import collate

ATOL = 1e-5
VARIANTS = {
    "llava-1.5": {"feature_layer": -2, "feature_select": "patch"},
    "cls-last-layer": {"feature_layer": -1, "feature_select": "cls_patch"},
    "first-block": {"feature_layer": 1, "feature_select": "patch"},
}


def medzoo_model(options: dict) -> MultimodalModel:
    torch.manual_seed(0)
    spec = {
        "vision": {"name": "clip", "options": {**options, "image_aspect": "pad"}},
        "connector": {"name": "mlp2x_gelu"},
        "language": {"name": "mistral", "template": "mistral_instruct"},
    }
    model = build_model(spec).eval()
    with torch.no_grad():  # non-trivial norms and biases, so a swapped or skipped tensor changes the logits
        for name, parameter in model.named_parameters():
            if "norm" in name or name.endswith("bias"):
                parameter.add_(torch.randn_like(parameter) * 0.1)
    return model


def transformers_twin(model: MultimodalModel) -> LlavaForConditionalGeneration:
    """``LlavaForConditionalGeneration`` with the medzoo model's weights, loaded strictly module by module."""
    vision = model.vision
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(**vision.model.config.to_dict()),
        text_config=model.language.model.config,
        image_token_index=model.markup.fill_id,
        image_seq_length=model.num_image_tokens,
        vision_feature_layer=vision.feature_layer,
        vision_feature_select_strategy="default" if vision.feature_select == "patch" else "full",
        projector_hidden_act="gelu",
    )
    twin = LlavaForConditionalGeneration(config).eval()
    twin.model.vision_tower.load_state_dict(vision.model.state_dict(), strict=True)
    layers = model.connector.layers
    projector = twin.model.multi_modal_projector
    projector.linear_1.load_state_dict(layers[0].state_dict(), strict=True)
    projector.linear_2.load_state_dict(layers[2].state_dict(), strict=True)
    language = model.language.model
    twin.model.language_model.load_state_dict(language.model.state_dict(), strict=True)
    twin.lm_head.load_state_dict(language.lm_head.state_dict(), strict=True)
    return twin


def batch(model: MultimodalModel, padding_side: str = "left") -> dict[str, torch.Tensor]:
    questions = ["<image>\nIs there a nodule?", "Describe the staining of this slide in detail.\n<image>"]
    processor = processor_for(model)
    rng = np.random.default_rng(1)
    samples = [
        processor.encode([Message("user", q)], [Image.fromarray(rng.integers(0, 255, (24 + 8 * i, 40, 3), np.uint8))],
                         add_generation_prompt=True)
        for i, q in enumerate(questions)
    ]
    encoded = collate(samples, model.tokenizer.pad_token_id, padding_side=padding_side)
    encoded.pop("labels")
    assert encoded["attention_mask"].min() == 0, "the batch should contain padding"
    return encoded


@pytest.fixture(scope="module", params=list(VARIANTS), ids=list(VARIANTS))
def pair(request):
    model = medzoo_model(VARIANTS[request.param])
    return model, transformers_twin(model)


def test_same_logits(pair):
    model, twin = pair
    inputs = batch(model, padding_side="right")
    with torch.no_grad():
        ours = model(**inputs).logits
        theirs = twin(**inputs).logits
    mask = inputs["attention_mask"].bool()
    torch.testing.assert_close(ours[mask], theirs[mask], atol=ATOL, rtol=0)


def test_same_image_features(pair):
    model, twin = pair
    pixels = batch(model)["pixel_values"]
    with torch.no_grad():
        ours = model.encode_images(pixels)
        theirs = torch.stack(twin.model.get_image_features(pixel_values=pixels).pooler_output)
    torch.testing.assert_close(ours, theirs, atol=ATOL, rtol=0)


def test_same_greedy_tokens(pair):
    model, twin = pair
    inputs = batch(model, padding_side="left")
    settings = {"max_new_tokens": 10, "min_new_tokens": 10, "do_sample": False}
    ours = model.generate(**inputs, **settings)
    with torch.no_grad():
        theirs = twin.generate(**inputs, **settings)[:, inputs["input_ids"].shape[1]:]
    assert ours.shape == (2, 10)
    assert theirs.tolist() == ours.tolist()
