"""The field's tools read medzoo's hf-llava exports and answer as medzoo does.

- transformers' ``pipeline("image-text-to-text")`` with chat messages holding an image part (the exported chat
  template renders the prompt) gives medzoo's greedy text, for CLIP + mlp2x_gelu + Mistral (``mistral_instruct``)
  and SigLIP + mlp2x_gelu + Qwen2 (the tokenizer's own chat template);
- lmms-eval's ``llava_hf`` model class answers one question with medzoo's text (skipped where lmms-eval is not
  installed: it is not a medzoo dependency, see docs/interop.md);
- VLMEvalKit's ``LLaVA_HF.generate_inner`` calls (open-compass/VLMEvalKit ``vlmeval/vlm/llava/llava_hf.py`` at
  d818edef: ``processor.apply_chat_template`` -> ``processor(images=..., text=...)`` -> ``generate`` -> decode and
  strip), run on CPU in float32 (the class itself pins CUDA and float16; ``vlmeval`` is not on PyPI);
- vLLM: every ``config.json`` field its Llava loader reads holds a value it accepts and every weight name maps to
  one of its parameters (``test_vllm_*``; the vLLM source read is named there).
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from PIL import Image

from medzoo.app.interop.hf_llava_export import export_hf_llava
from medzoo.core.inference.engine import InferenceEngine
from medzoo.core.inference.processing import processor_for
from medzoo.core.inference.requests import ChatRequest
from medzoo.core.inference.settings import SamplingSettings
from medzoo.core.interfaces.conversation import Message
from medzoo.core.model.build import build_model
from medzoo.core.model.multimodal import MultimodalModel

QUESTION = "What organ is shown?"
NEW_TOKENS = 8
#: (vision, language, template, untied head): a random tiny LM with tied embeddings repeats the prompt's last
#: token, for Qwen2's template a blank line, so its head is untied to answer in words
FAMILIES = {
    "clip-mistral": ("clip", "mistral", "mistral_instruct", False),
    "siglip-qwen2": ("siglip", "qwen2", "chat_template", True),
}


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def tiny_model(vision: str, language: str, template: str, untied: bool = False,
               connector: str = "mlp2x_gelu") -> MultimodalModel:
    from medzoo.core.plugin_system.manager import components

    torch.manual_seed(0)
    options = {"feature_layer": -2, "feature_select": "patch", "image_aspect": "pad"} if vision == "clip" else {}
    language_spec = {"name": language, "template": template}
    if untied:
        config = components().get("language_model", language).factory.tiny_config()
        language_spec["config"] = {**config, "tie_word_embeddings": False}
    spec = {"vision": {"name": vision, "options": options}, "connector": {"name": connector}, "language": language_spec}
    return build_model(spec).eval()


def square_image(model: MultimodalModel, seed: int = 5) -> Image.Image:
    """An image of the tower's size: transformers' torchvision resize then equals medzoo's PIL one exactly."""
    side = model.vision.image_size
    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (side, side, 3), dtype=np.uint8))


@pytest.fixture(scope="module", params=list(FAMILIES))
def exported(request, tmp_path_factory):
    model = tiny_model(*FAMILIES[request.param])
    directory = tmp_path_factory.mktemp(request.param)
    export_hf_llava(model, directory)
    return model, directory


def medzoo_answer(model: MultimodalModel, image: Image.Image) -> str:
    engine = InferenceEngine(model)
    request = ChatRequest([Message("user", f"<image>\n{QUESTION}")], image)
    [completion] = engine.answer([request], SamplingSettings(max_new_tokens=NEW_TOKENS))
    assert completion.text, "the tiny model's greedy answer should not be empty (choose another seed)"
    return completion.text


def test_pipeline_chat_with_an_image_part_gives_medzoo_greedy_text(exported):
    from transformers import pipeline

    model, directory = exported
    image = square_image(model)
    pipe = pipeline("image-text-to-text", model=str(directory))
    messages = [{"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": QUESTION}]}]
    # the prompt the processor's chat template renders is medzoo's, image tokens expanded
    rendered = pipe.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                  return_dict=True, return_tensors="pt")
    ours = processor_for(model).encode([Message("user", f"<image>\n{QUESTION}")], [image], add_generation_prompt=True)
    assert rendered["input_ids"][0].tolist() == ours.input_ids
    torch.testing.assert_close(rendered["pixel_values"][0], ours.pixel_values[0], atol=1e-5, rtol=0)
    [output] = pipe(text=messages, generate_kwargs={"max_new_tokens": NEW_TOKENS, "do_sample": False},
                    return_full_text=False)
    # the pipeline decodes prompt + answer and cuts the prompt off, so the answer keeps its word-start space
    assert output["generated_text"].strip() == medzoo_answer(model, image)


def test_lmms_eval_llava_hf_answers_one_question_like_medzoo(exported):
    llava_hf = pytest.importorskip("lmms_eval.models.simple.llava_hf", reason="lmms-eval is not installed")
    from lmms_eval.api.instance import Instance

    model, directory = exported
    image = square_image(model)
    evaluated = llava_hf.LlavaHf(pretrained=str(directory), device="cpu", device_map="cpu", dtype="float32")
    evaluated.task_dict = {"medzoo": {"test": [{"image": image}]}}
    arguments = (QUESTION, {"max_new_tokens": NEW_TOKENS, "temperature": 0}, lambda doc: [doc["image"]], 0,
                 "medzoo", "test")
    request = Instance("generate_until", arguments, idx=0, metadata={"task": "medzoo", "doc_id": 0, "repeats": 1})
    [answer] = evaluated.generate_until([request])
    assert answer.strip() == medzoo_answer(model, image)


def test_vlmevalkit_llava_hf_calls_answer_like_medzoo(exported):
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    model, directory = exported
    image = square_image(model)
    hf = LlavaForConditionalGeneration.from_pretrained(str(directory)).eval()
    processor = AutoProcessor.from_pretrained(str(directory))
    conversation = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": QUESTION}]}]
    prompt = processor.apply_chat_template(conversation, add_generation_prompt=True)
    inputs = processor(images=[image], text=prompt, return_tensors="pt")
    with torch.inference_mode():
        output_ids = hf.generate(**inputs, do_sample=False, max_new_tokens=NEW_TOKENS, num_beams=1, use_cache=True)
    answer = processor.decode(output_ids[0][inputs["input_ids"].shape[1]:], skip_special_tokens=True).strip()
    assert answer == medzoo_answer(model, image)


# ---- vLLM ---------------------------------------------------------------------------------------------------
#: what vLLM's Llava loader reads, from vllm-project/vllm: model_executor/models/llava.py at 35d3c24b11a0
#: (LlavaForConditionalGeneration, init_vision_tower_for_llava, _get_num_hidden_layers, hf_to_vllm_mapper),
#: models/clip.py at 85f1f913cf8d and models/siglip.py at 0c028ba489f5 (the towers' parameters and load_weights),
#: models/vision.py at b3bbd9489ca2 (feature select strategies), layers/activation.py at f64c867c4026
#: (get_act_fn) and models/registry.py at bf8e76246223 (architectures)
VLLM_MAPPER = {
    "model.language_model.": "language_model.model.",
    "model.vision_tower.": "vision_tower.",
    "model.multi_modal_projector.": "multi_modal_projector.",
    "lm_head.": "language_model.lm_head.",
}
VLLM_TOWERS = {"clip_vision_model", "siglip_vision_model", "pixtral"}
VLLM_STRATEGIES = {"class", "default", "full"}
VLLM_ACTIVATIONS = {"gelu", "gelu_fast", "gelu_new", "gelu_pytorch_tanh", "relu", "relu2", "silu", "quick_gelu"}
#: a few of vLLM's text-generation architectures (registry.py), those medzoo's families use
VLLM_TEXT_ARCHITECTURES = {"LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM",
                           "Phi3ForCausalLM", "Gemma3ForCausalLM"}
#: per encoder layer, the tensors vLLM's CLIP and SigLIP encoder layers load (q/k/v stacked into qkv_proj)
VLLM_LAYER_TENSORS = [f"{module}.{part}" for module in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
                                                        "self_attn.out_proj", "layer_norm1", "layer_norm2",
                                                        "mlp.fc1", "mlp.fc2") for part in ("weight", "bias")]
VLLM_EMBEDDINGS = {
    "clip_vision_model": ["embeddings.class_embedding", "embeddings.patch_embedding.weight",
                          "embeddings.position_embedding.weight", "pre_layrnorm.weight", "pre_layrnorm.bias"],
    "siglip_vision_model": ["embeddings.patch_embedding.weight", "embeddings.patch_embedding.bias",
                            "embeddings.position_embedding.weight"],
}


def vllm_tower_layers(config: dict) -> int:
    """``_get_num_hidden_layers``: vLLM builds the tower only up to the feature layer."""
    layer, total = config["vision_feature_layer"], config["vision_config"]["num_hidden_layers"]
    layers = layer if isinstance(layer, list) else [layer]
    return max(total + index + 1 if index < 0 else index for index in layers)


def vllm_image_tokens(config: dict) -> int:
    """CLIPEncoderInfo / SiglipEncoderInfo token count after the select strategy (LlavaProcessingInfo)."""
    vision = config["vision_config"]
    tokens = (vision["image_size"] // vision["patch_size"]) ** 2 + (vision["model_type"] == "clip_vision_model")
    return {"class": 1, "default": tokens - 1, "full": tokens}[config["vision_feature_select_strategy"]]


def exported_names(directory) -> dict[str, tuple[int, ...]]:
    from safetensors import safe_open

    names = {}
    for path in sorted(directory.glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as handle:
            names.update({key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()})  # noqa: SIM118
    return names


def vllm_name(name: str) -> str:
    """The name after LlavaForConditionalGeneration.hf_to_vllm_mapper (orig_to_new_prefix)."""
    for old, new in VLLM_MAPPER.items():
        if name.startswith(old):
            return new + name[len(old):]
    return name


def test_vllm_config_fields_hold_values_its_llava_loader_accepts(exported):
    from transformers import AutoProcessor

    model, directory = exported
    config = json.loads((directory / "config.json").read_text())
    assert config["architectures"] == ["LlavaForConditionalGeneration"] and config["model_type"] == "llava"
    vision, text = config["vision_config"], config["text_config"]
    assert vision["model_type"] in VLLM_TOWERS
    assert vision["hidden_act"].lower() in VLLM_ACTIVATIONS
    assert vision.get("vision_use_head", False) is False  # vLLM's SigLIP would pool the features to one token
    assert isinstance(config["vision_feature_layer"], int)
    assert 0 < vllm_tower_layers(config) <= vision["num_hidden_layers"]
    assert config["vision_feature_select_strategy"] in VLLM_STRATEGIES
    assert config["projector_hidden_act"].lower() in VLLM_ACTIVATIONS
    assert isinstance(config["multimodal_projector_bias"], bool)
    assert config["image_token_index"] == model.tokenizer.convert_tokens_to_ids("<image>") < text["vocab_size"]
    assert text["architectures"][0] in VLLM_TEXT_ARCHITECTURES and text["model_type"]
    assert vllm_image_tokens(config) == config["image_seq_length"] == model.num_image_tokens
    # vLLM runs the directory's LlavaProcessor (processor_config.json, preprocessor_config.json, tokenizer, chat
    # template) and checks that it expands <image> to as many tokens as it counts itself
    processor = AutoProcessor.from_pretrained(str(directory))
    assert processor.patch_size == vision["patch_size"] and processor.image_token == "<image>"
    ids = processor(text="<image>\nWhat is it?", images=square_image(model), return_tensors="pt")["input_ids"][0]
    assert int((ids == config["image_token_index"]).sum()) == vllm_image_tokens(config)
    assert processor.chat_template == (directory / "chat_template.jinja").read_text()


def test_vllm_maps_every_exported_weight_to_one_of_its_parameters(exported):
    model, directory = exported
    config = json.loads((directory / "config.json").read_text())
    vision, text = config["vision_config"], config["text_config"]
    names = {vllm_name(name): shape for name, shape in exported_names(directory).items()}
    tower = {name.removeprefix("vision_tower.vision_model."): shape for name, shape in names.items()
             if name.startswith("vision_tower.vision_model.")}
    projector = {name: shape for name, shape in names.items() if name.startswith("multi_modal_projector.")}
    language = {name for name in names if re.match(r"language_model\.(model\.|lm_head\.weight$)", name)}
    assert len(tower) + len(projector) + len(language) == len(names), "a weight vLLM has no parameter for"
    # the tower: vLLM skips post_layernorm (Llava builds it with require_post_norm=False) and the layers past the
    # feature layer; every other tensor is one of its parameters, and each of those is in the export
    layers = vllm_tower_layers(config)
    loaded = {name for name in tower if not name.startswith("post_layernorm.")
              and not (name.startswith("encoder.layers.") and int(name.split(".")[2]) >= layers)}
    expected = set(VLLM_EMBEDDINGS[vision["model_type"]])
    expected |= {f"encoder.layers.{i}.{tensor}" for i in range(layers) for tensor in VLLM_LAYER_TENSORS}
    assert loaded == expected
    width, hidden = vision["hidden_size"], text["hidden_size"]
    bias = config["multimodal_projector_bias"]
    assert projector == {
        "multi_modal_projector.linear_1.weight": (hidden, width), "multi_modal_projector.linear_2.weight": (hidden, hidden),
        **({"multi_modal_projector.linear_1.bias": (hidden,), "multi_modal_projector.linear_2.bias": (hidden,)}
           if bias else {}),
    }
    # the language model's tensors go to the inner vLLM model of text_config.architectures under their
    # transformers names (its own load_weights reads the causal LM's checkpoint layout)
    causal = {f"language_model.{key}" for key in model.language.model.state_dict()}
    assert language == causal


@pytest.mark.parametrize(("vision", "connector", "reason"), [
    ("clip", "linear", r"projector_hidden_act 'linear': vLLM's get_act_fn has no such activation"),
    ("dinov2", "mlp2x_gelu", r"vision_config model_type 'dinov2': vLLM's Llava builds only CLIP, SigLIP and Pixtral"),
], ids=["linear-connector", "dinov2-tower"])
def test_exports_vllm_cannot_load_say_so(tmp_path, vision, connector, reason):
    from medzoo.app.interop.vllm_support import VLLM_ACTIVATIONS as EXPORT_ACTIVATIONS
    from medzoo.app.interop.vllm_support import VLLM_VISION_MODEL_TYPES

    assert EXPORT_ACTIVATIONS == VLLM_ACTIVATIONS and set(VLLM_VISION_MODEL_TYPES) == VLLM_TOWERS
    report = export_hf_llava(tiny_model(vision, "mistral", "mistral_instruct", connector=connector), tmp_path)
    notes = [note for note in report.notes if note.startswith("vLLM will not load this export (transformers does)")]
    assert len(notes) == 1 and re.search(reason, notes[0]), report.notes
