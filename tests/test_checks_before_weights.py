"""Issue 30's bad input refused in one line naming the key, the value and what is allowed, before any weights
load: a tiling grid that does not divide into the tower's crops, an image-token cap below one crop, QLoRA on a
device without a 4-bit backend, DoRA on a layer type PEFT's DoRA does not adapt, LoRA that would adapt nothing.

The recipes load their tower and language model from pretrained folders (tiny models saved here, as a hub
checkpoint would be); loading them is made to fail the test, so a refusal that comes at all came first. A good
recipe with the same folders passes the checks and reaches the loading, which shows the trap is live."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import save_file

from medzoo.core.errors import RecipeError
from medzoo.core.model.build import build_model
from medzoo.core.plugin_system.manager import components
from medzoo.core.recipes.loading import load_recipe
from medzoo.core.training import run
from medzoo.testing import TINY_MODEL


class WeightsLoaded(AssertionError):
    """Raised by a component's ``from_pretrained``: weights were about to load."""


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, str]:
    """Tiny pretrained folders: a CLIP tower and a Mistral LM (transformers layout), an open_clip native ViT."""
    root = tmp_path_factory.mktemp("checkpoints")
    torch.manual_seed(0)
    model = build_model(TINY_MODEL)
    model.vision.model.save_pretrained(str(root / "clip"))
    model.language.model.save_pretrained(str(root / "mistral"))
    model.language.tokenizer.save_pretrained(str(root / "mistral"))
    tower = components().get("vision_encoder", "open_clip").factory
    open_clip = tower.from_config(tower.tiny_config())
    (root / "open_clip").mkdir()
    (root / "open_clip" / "open_clip_config.json").write_text(json.dumps({"model_cfg": open_clip.model_cfg}))
    save_file({f"visual.{k}": v.contiguous() for k, v in open_clip.visual.state_dict().items()},
              str(root / "open_clip" / "open_clip_pytorch_model.safetensors"))
    return {name: str(root / name) for name in ("clip", "mistral", "open_clip")}


@pytest.fixture
def no_weights(monkeypatch) -> None:
    """Every vision encoder's and language model's ``from_pretrained`` fails the test."""

    def loading(cls, source, *args, **kwargs):
        raise WeightsLoaded(f"{cls.__name__}.from_pretrained({source!r}) ran before the refusal")

    for kind in ("vision_encoder", "language_model"):
        for name in components().names(kind):
            monkeypatch.setattr(components().get(kind, name).factory, "from_pretrained", classmethod(loading))


def train(tmp_path: Path, checkpoints: dict[str, str], vision_options: dict | None = None,
          tuning: dict | None = None, tower: str = "clip") -> None:
    model = {"vision": {"name": tower, "pretrained": checkpoints[tower], "options": vision_options or {}},
             "connector": {"name": "mlp2x_gelu"},
             "language": {"name": "mistral", "pretrained": checkpoints["mistral"], "template": "mistral_instruct"}}
    stage = {"name": "instruct", "role": "instruct", "max_steps": 1, "datasets": [],
             "tuning": tuning or {"vision": "frozen", "connector": "full", "language": "frozen"}}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump({"name": "checks", "model": model, "stages": [stage]}))
    run.train_recipe(load_recipe(str(path)).config, tmp_path / "run", echo=lambda *_, **__: None)


def refusal(tmp_path: Path, checkpoints: dict[str, str], **recipe) -> str:
    with pytest.raises(RecipeError) as refused:
        train(tmp_path, checkpoints, **recipe)
    message = str(refused.value)
    assert "\n" not in message
    assert not (tmp_path / "run" / "recipe.yaml").exists()
    return message


def test_a_good_recipe_passes_the_checks_and_reaches_the_weights(tmp_path, checkpoints, no_weights):
    with pytest.raises(WeightsLoaded):
        train(tmp_path, checkpoints, vision_options={"image_grid_pinpoints": [[32, 64], [64, 64]],
                                                     "max_image_tokens": 40},
              tuning={"vision": "lora", "connector": "full", "language": "lora",
                      "options": {"vision": {"use_dora": True}, "language": {"use_dora": True}}})


def test_a_grid_that_does_not_divide_into_the_towers_crops_is_refused_before_weights_load(
        tmp_path, checkpoints, no_weights):
    message = refusal(tmp_path, checkpoints, vision_options={"image_grid_pinpoints": [[32, 64], [32, 48]]})
    assert message == (
        "model.vision.options.image_grid_pinpoints[1]: [32, 48]: 48 is not a positive multiple of the tower's "
        "32-px crops; expected a list of [height, width] pairs whose sides are multiples of the tower's 32-px crops")


def test_an_image_token_cap_below_one_crop_is_refused_before_weights_load(tmp_path, checkpoints, no_weights):
    message = refusal(tmp_path, checkpoints,
                      vision_options={"image_grid_pinpoints": [[32, 64]], "max_image_tokens": 8})
    assert message == ("model.vision.options.max_image_tokens: 8 is below one crop's 16 image tokens; expected an "
                       "integer >= 16 (one crop's image tokens), or null for no cap")


def test_qlora_on_a_device_without_a_4bit_backend_is_refused_before_weights_load(tmp_path, checkpoints, no_weights):
    message = refusal(tmp_path, checkpoints, tuning={"vision": "frozen", "connector": "full", "language": "qlora"})
    assert message == (
        "stages.instruct.tuning.language: 'qlora' needs a 4-bit backend and device 'cpu' has none (bitsandbytes "
        "4-bit layers run on cuda); expected a device of cuda with bitsandbytes installed, or lora")


def test_dora_on_a_layer_type_peft_does_not_adapt_is_refused_before_weights_load(tmp_path, checkpoints, no_weights):
    # open_clip's native ViT keeps its attention in nn.MultiheadAttention, which vision LoRA adapts whole and
    # PEFT's DoRA does not
    message = refusal(tmp_path, checkpoints, tower="open_clip",
                      tuning={"vision": "lora", "connector": "full", "language": "frozen",
                              "options": {"vision": {"use_dora": True}}})
    assert message == (
        "stages.instruct.tuning.options.vision.use_dora: true on 'visual.transformer.resblocks.0.attn' "
        "(MultiheadAttention); PEFT's DoRA adapts Linear, Embedding, Conv1d, Conv2d, Conv3d, Conv1D layers only: "
        "expected target_modules naming those, or use_dora: false")


def test_lora_targets_that_name_no_layer_are_refused_before_weights_load(tmp_path, checkpoints, no_weights):
    message = refusal(tmp_path, checkpoints,
                      tuning={"vision": "frozen", "connector": "full", "language": "lora",
                              "options": {"language": {"target_modules": ["qkv"]}}})
    assert message.startswith("stages.instruct.tuning.options.language.target_modules: ['qkv'] names no layer of "
                              "the language module (MistralForCausalLM), so LoRA would train nothing; expected "
                              "names of its layers, e.g. q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, "
                              "down_proj, lm_head")


def test_partial_deeper_than_the_stack_is_refused_before_weights_load(tmp_path, checkpoints, no_weights):
    message = refusal(tmp_path, checkpoints,
                      tuning={"vision": "frozen", "connector": "full", "language": "partial",
                              "options": {"language": {"top_layers": 3}}})
    assert message == ("stages.instruct.tuning.options.language.top_layers: 3 exceeds the language's 2 layers that "
                       "run; expected an integer from 1 to 2")


def structure(module: torch.nn.Module) -> dict[str, tuple[str, tuple[int, ...]]]:
    return {name: (type(module.get_submodule(name.rpartition(".")[0]) if "." in name else module).__name__,
                   tuple(value.shape)) for name, value in module.state_dict().items()}


@pytest.mark.parametrize("tower", components().names("vision_encoder"))
def test_every_tower_built_weightless_from_its_config_has_the_real_ones_shapes(tower):
    from medzoo.core.model.components import build_component
    from medzoo.core.model.weightless import weightless

    real, skeleton = build_component("vision_encoder", {"name": tower}, False), weightless(
        "vision_encoder", {"name": tower}, False)
    assert {p.device.type for p in skeleton.parameters()} == {"meta"}
    assert structure(skeleton) == structure(real)
    assert (skeleton.image_size, skeleton.num_tokens, skeleton.hidden_size) == (
        real.image_size, real.num_tokens, real.hidden_size)


@pytest.mark.parametrize(("kind", "name", "source"), [
    ("vision_encoder", "clip", "{clip}"), ("vision_encoder", "open_clip", "{open_clip}"),
    ("vision_encoder", "fusion", "clip={clip}+open_clip={open_clip}"), ("language_model", "mistral", "{mistral}")])
def test_a_pretrained_component_built_weightless_has_the_loaded_ones_shapes(kind, name, source, checkpoints):
    from medzoo.core.model.components import build_component
    from medzoo.core.model.weightless import weightless

    spec = {"name": name, "pretrained": source.format(**checkpoints)}
    extra = {"template": "mistral_instruct"} if kind == "language_model" else {}
    real, skeleton = build_component(kind, spec, False, **extra), weightless(kind, spec, False, **extra)
    assert {p.device.type for p in skeleton.parameters()} == {"meta"}
    assert structure(skeleton) == structure(real)


def test_multiscale_features_of_a_non_square_token_grid_are_refused_before_weights_load(
        tmp_path, checkpoints, no_weights):
    message = refusal(tmp_path, checkpoints, vision_options={"multiscale": [1, 2], "feature_select": "cls_patch"})
    assert message == ("model.vision.options.multiscale: [1, 2]: multi-scale features pool the tower's square patch "
                       "grid, but it gives 17 tokens per picture; expected a square number (feature_select 'patch')")
