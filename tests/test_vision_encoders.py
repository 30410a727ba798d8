"""Vision encoders: every registered one built tiny, plus CLIP / BiomedCLIP loading checks on local checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import open_clip
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from transformers import CLIPConfig, CLIPModel, CLIPVisionConfig, CLIPVisionModel

from medzoo.core.errors import MedzooError, PluginError, RecipeError
from medzoo.core.interfaces.vision_encoder import VisionEncoder
from medzoo.core.plugin_system.manager import components
from medzoo.plugins.vision import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
from medzoo.plugins.vision.biomedclip import BiomedClipVisionEncoder
from medzoo.plugins.vision.clip import ClipVisionEncoder

VISION_ENCODERS = components().names("vision_encoder")


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """No test may reach the hub."""
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def build_tiny(name: str, **options) -> VisionEncoder:
    factory = components().get("vision_encoder", name).factory
    torch.manual_seed(0)
    return factory.from_config(factory.tiny_config(), **options).eval()


def channels(encoder: VisionEncoder) -> int:
    """Input channels: 3, or more for a tower that takes several towers' pixels at once (``fusion``: 6)."""
    return encoder.input_channels


def pixels(encoder: VisionEncoder, batch: int = 2) -> torch.Tensor:
    return torch.randn(
        batch, channels(encoder), encoder.image_size, encoder.image_size, generator=torch.Generator().manual_seed(1)
    )


# --- every registered vision encoder -------------------------------------------------------------------------


def test_builtin_encoders_are_registered():
    assert {"clip", "biomedclip"} <= set(VISION_ENCODERS)


@pytest.mark.parametrize("name", VISION_ENCODERS)
def test_forward_shape_and_determinism(name):
    encoder = build_tiny(name)
    assert isinstance(encoder, VisionEncoder)
    images = pixels(encoder)
    with torch.no_grad():
        first, second = encoder(images), encoder(images)
    assert first.shape == (2, encoder.num_tokens, encoder.hidden_size)
    assert encoder.num_tokens == (encoder.image_size // encoder.patch_size) ** 2
    assert torch.equal(first, second)
    assert torch.isfinite(first).all()


@pytest.mark.parametrize("name", VISION_ENCODERS)
def test_cls_patch_keeps_the_class_token_in_front(name):
    patch_only = build_tiny(name)
    if not patch_only.has_cls_token:  # SigLIP-style towers: asking for a class token is a recipe error
        with pytest.raises(RecipeError, match="'cls_patch' needs a class token"):
            build_tiny(name, feature_select="cls_patch")
        return
    with_cls = build_tiny(name, feature_select="cls_patch")
    images = pixels(patch_only)
    with torch.no_grad():
        patches, full = patch_only(images), with_cls(images)
    assert with_cls.num_tokens == patch_only.num_tokens + 1
    assert full.shape[1] == with_cls.num_tokens
    assert torch.allclose(full[:, 1:], patches, atol=1e-6)


@pytest.mark.parametrize("name", VISION_ENCODERS)
def test_feature_layer_selects_a_different_hidden_state(name):
    penultimate = build_tiny(name)
    last = build_tiny(name, feature_layer=-1)
    images = pixels(penultimate)
    with torch.no_grad():
        assert not torch.allclose(penultimate(images), last(images))
    with pytest.raises(RecipeError, match="feature_layer"):
        build_tiny(name, feature_layer=99)


@pytest.mark.parametrize("name", VISION_ENCODERS)
def test_architecture_config_rebuilds_the_same_architecture(name):
    encoder = build_tiny(name)
    factory = type(encoder)
    if hasattr(encoder, "image_mean"):  # a fused pair has its towers' statistics, in its towers' configs
        config = {**encoder.architecture_config(), "image_mean": [0.1, 0.2, 0.3], "image_std": [0.3, 0.2, 0.1]}
        custom = factory.from_config(config)
        assert (custom.image_mean, custom.image_std) == ((0.1, 0.2, 0.3), (0.3, 0.2, 0.1))
        assert custom.architecture_config() == config  # the image statistics survive a rebuild
    rebuilt = factory.from_config(encoder.architecture_config()).eval()
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {
        k: v.shape for k, v in encoder.state_dict().items()
    }
    rebuilt.load_state_dict(encoder.state_dict())
    images = pixels(encoder)
    with torch.no_grad():
        assert torch.equal(rebuilt(images), encoder(images))


@pytest.mark.parametrize("name", VISION_ENCODERS)
def test_block_class_and_transform(name):
    encoder = build_tiny(name)
    blocks = [module for module in encoder.modules() if isinstance(module, encoder.block_class)]
    assert len(blocks) >= 2
    image = Image.new("RGB", (50, 30), (200, 40, 90))
    tensor = encoder.transform(image)
    size, depth = encoder.image_size, channels(encoder)
    assert tensor.shape == (depth, size, size)
    assert encoder.transform.batch([image, image]).shape == (2, depth, size, size)


@pytest.mark.parametrize("name", ["clip", "biomedclip"])
def test_image_options_reach_the_transform_and_bad_ones_are_recipe_errors(name):
    encoder = build_tiny(name, image_aspect="pad", pad_greyscale="grey", pad_offset="random", pad_seed=5,
                         high_bit_depth="minmax", alpha="white")
    transform = encoder.transform
    assert (transform.pad_greyscale, transform.pad_offset, transform.pad_seed) == ("grey", "random", 5)
    assert (transform.high_bit_depth, transform.alpha) == ("minmax", "white")
    assert encoder.image_options["pad_seed"] == 5
    with pytest.raises(RecipeError, match=f"vision encoder '{name}': high_bit_depth"):
        build_tiny(name, high_bit_depth="stretch")
    with pytest.raises(RecipeError, match="image aspect mode"):
        build_tiny(name, image_aspect="squash")
    if name == "clip":
        model = ClipVisionEncoder.from_config(TINY_CLIP).model
        with pytest.raises(RecipeError, match="unknown image option 'pad_gray'"):
            ClipVisionEncoder(model, pad_gray="grey")
    else:
        with pytest.raises(RecipeError, match="preprocess"):
            build_tiny(name, preprocess="timm")


@pytest.mark.parametrize("name", VISION_ENCODERS)
def test_gradient_checkpointing_gives_the_same_gradients(name):
    encoder = build_tiny(name).train()
    images = pixels(encoder)

    def gradients() -> dict[str, torch.Tensor]:
        encoder.zero_grad()
        encoder(images).square().mean().backward()
        return {key: p.grad.clone() for key, p in encoder.named_parameters() if p.grad is not None}

    # Norms inside blocks run again during backward when their block is checkpointed (recomputation).
    norm_calls = []
    for block in [module for module in encoder.modules() if isinstance(module, encoder.block_class)]:
        for module in block.modules():
            if isinstance(module, torch.nn.LayerNorm):
                module.register_forward_hook(lambda *_: norm_calls.append(1))

    plain = gradients()
    plain_calls = len(norm_calls)
    encoder.set_gradient_checkpointing(True)
    checkpointed = gradients()
    assert len(norm_calls) - plain_calls > plain_calls  # recomputed in backward
    encoder.set_gradient_checkpointing(False)
    assert plain and plain.keys() == checkpointed.keys()
    for key in plain:
        assert torch.allclose(plain[key], checkpointed[key], atol=1e-6), key


# --- CLIP -----------------------------------------------------------------------------------------------------

TINY_CLIP = ClipVisionEncoder.tiny_config()


def tiny_clip_model() -> CLIPVisionModel:
    torch.manual_seed(0)
    return CLIPVisionModel(CLIPVisionConfig(**TINY_CLIP)).eval()


def write_preprocessor(directory: Path, mean, std, crop_size: int) -> None:
    processor = {
        "image_processor_type": "CLIPImageProcessor",
        "crop_size": {"height": crop_size, "width": crop_size},
        "size": {"shortest_edge": crop_size},
        "image_mean": list(mean),
        "image_std": list(std),
    }
    (directory / "preprocessor_config.json").write_text(json.dumps(processor))


def test_clip_features_equal_llava_extraction():
    model = tiny_clip_model()
    encoder = ClipVisionEncoder(model)
    images = pixels(encoder)
    with torch.no_grad():
        reference = model(images, output_hidden_states=True).hidden_states[-2][:, 1:]
        assert torch.equal(encoder(images), reference)
        with_cls = ClipVisionEncoder(model, feature_select="cls_patch")(images)
        assert torch.equal(with_cls, model(images, output_hidden_states=True).hidden_states[-2])


def test_clip_plus_mlp2x_equals_llava_image_features():
    from transformers import LlavaConfig, LlavaForConditionalGeneration

    config = LlavaConfig(
        vision_config={"model_type": "clip_vision_model", **TINY_CLIP},
        text_config={
            "model_type": "llama",
            "hidden_size": 48,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 4,
            "num_key_value_heads": 4,
            "vocab_size": 100,
        },
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
        projector_hidden_act="gelu",
        image_token_id=99,
    )
    torch.manual_seed(0)
    llava = LlavaForConditionalGeneration(config).eval()
    encoder = ClipVisionEncoder(llava.model.vision_tower)
    projector = llava.model.multi_modal_projector
    connector = components().get("connector", "mlp2x_gelu").factory(32, 48, encoder.num_tokens).eval()
    connector.load_state_dict(
        {
            "layers.0.weight": projector.linear_1.weight,
            "layers.0.bias": projector.linear_1.bias,
            "layers.2.weight": projector.linear_2.weight,
            "layers.2.bias": projector.linear_2.bias,
        }
    )
    images = pixels(encoder)
    with torch.no_grad():
        ours = connector(encoder(images))
        theirs = torch.stack(list(llava.model.get_image_features(images).pooler_output))
    assert ours.shape == theirs.shape == (2, 16, 48)
    assert torch.allclose(ours, theirs, atol=1e-6)


def test_clip_from_pretrained_round_trip_and_preprocessor(tmp_path):
    model = tiny_clip_model()
    model.save_pretrained(tmp_path)
    mean, std = (0.2, 0.5, 0.8), (0.3, 0.25, 0.2)
    write_preprocessor(tmp_path, mean, std, TINY_CLIP["image_size"])
    loaded = ClipVisionEncoder.from_pretrained(str(tmp_path))
    assert loaded.image_mean == mean and loaded.image_std == std
    original = ClipVisionEncoder(model)
    images = pixels(original)
    with torch.no_grad():
        assert torch.equal(loaded(images), original(images))

    # expand2square fills with the processor's mean, truncated to 8 bit as LLaVA's tuple(int(x * 255)): a tall
    # image gets mean-coloured side bands (almost 0 after normalisation).
    tensor = loaded.transform(Image.new("RGB", (20, 40), (255, 0, 0)))
    band = tensor[:, :, :4]
    expected = torch.tensor([(int(255 * m) / 255 - m) / s for m, s in zip(mean, std, strict=True)]).view(
        3, 1, 1
    )
    assert torch.allclose(band, expected.expand_as(band), atol=1e-6)
    centre = tensor[:, 16, 16]
    assert torch.allclose(
        centre, torch.tensor([(1 - mean[0]) / std[0], -mean[1] / std[1], -mean[2] / std[2]]), atol=1e-2
    )


def test_clip_crop_mode_uses_no_padding(tmp_path):
    tiny_clip_model().save_pretrained(tmp_path)
    encoder = ClipVisionEncoder.from_pretrained(str(tmp_path), image_aspect="crop")
    assert encoder.image_mean == ClipVisionEncoder.from_config(TINY_CLIP).image_mean  # CLIP defaults, no file
    tensor = encoder.transform(Image.new("RGB", (20, 40), (255, 0, 0)))
    red = torch.tensor([(1 - encoder.image_mean[0]) / encoder.image_std[0]])
    assert torch.allclose(tensor[0], red.expand_as(tensor[0]), atol=1e-4)


def test_clip_loads_the_vision_half_of_a_full_clip_checkpoint(tmp_path):
    """The hub layout of openai/clip-vit-large-patch14(-336): a CLIPModel checkpoint plus a preprocessor."""
    text = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 4}
    torch.manual_seed(0)
    full = CLIPModel(CLIPConfig(vision_config=TINY_CLIP, text_config=text)).eval()
    full.save_pretrained(tmp_path)
    write_preprocessor(
        tmp_path, (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711), 32
    )
    encoder = ClipVisionEncoder.from_pretrained(str(tmp_path))
    images = pixels(encoder)
    with torch.no_grad():
        reference = full.vision_model(images, output_hidden_states=True).hidden_states[-2][:, 1:]
        assert torch.equal(encoder(images), reference)


def test_clip_rejects_checkpoints_with_missing_weights_or_wrong_size(tmp_path):
    tiny_clip_model().save_pretrained(tmp_path)
    weights = tmp_path / "model.safetensors"
    state = load_file(weights)
    dropped = [key for key in state if "layers.1." in key]
    save_file({k: v for k, v in state.items() if k not in dropped}, weights, metadata={"format": "pt"})
    with pytest.raises(PluginError, match="lacks"):
        ClipVisionEncoder.from_pretrained(str(tmp_path))

    tiny_clip_model().save_pretrained(tmp_path)
    write_preprocessor(tmp_path, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), crop_size=336)
    with pytest.raises(PluginError, match="crop_size 336"):
        ClipVisionEncoder.from_pretrained(str(tmp_path))


def test_clip_unknown_source_is_a_one_line_error(tmp_path):
    with pytest.raises(MedzooError) as caught:
        ClipVisionEncoder.from_pretrained(str(tmp_path / "missing"))
    assert "\n" not in str(caught.value)


# --- BiomedCLIP -----------------------------------------------------------------------------------------------

# A tiny open_clip model in BiomedCLIP's shape: a timm ViT vision tower ("timm_pool": "", "timm_proj": "linear",
# as BiomedCLIP's open_clip_config.json) with a small built-in text tower instead of PubMedBERT.
TINY_OPEN_CLIP = {
    "embed_dim": 16,
    "vision_cfg": {
        "timm_model_name": "test_vit",
        "timm_model_pretrained": False,
        "timm_pool": "",
        "timm_proj": "linear",
        "image_size": 160,
    },
    "text_cfg": {"context_length": 8, "vocab_size": 64, "width": 32, "heads": 2, "layers": 1},
}
TINY_PREPROCESS = {"mean": [0.1, 0.2, 0.3], "std": [0.4, 0.5, 0.6]}


def save_open_clip_hub_layout(directory: Path, weights_format: str) -> open_clip.CLIP:
    torch.manual_seed(0)
    model = open_clip.CLIP(**json.loads(json.dumps(TINY_OPEN_CLIP))).eval()
    config = {"model_cfg": TINY_OPEN_CLIP, "preprocess_cfg": TINY_PREPROCESS}
    (directory / "open_clip_config.json").write_text(json.dumps(config))
    if weights_format == "bin":
        torch.save(model.state_dict(), directory / "open_clip_pytorch_model.bin")
    else:
        state = {key: value.contiguous() for key, value in model.state_dict().items()}
        save_file(state, directory / "open_clip_pytorch_model.safetensors")
    return model


@pytest.mark.parametrize("weights_format", ["bin", "safetensors"])
def test_biomedclip_loads_the_trunk_of_an_open_clip_checkpoint(tmp_path, weights_format):
    reference = save_open_clip_hub_layout(tmp_path, weights_format)
    encoder = BiomedClipVisionEncoder.from_pretrained(str(tmp_path))
    trunk = reference.visual.trunk
    assert encoder.trunk.state_dict().keys() == trunk.state_dict().keys()
    for key, value in trunk.state_dict().items():
        assert torch.equal(encoder.trunk.state_dict()[key], value), key
    # preprocess "clip" (default): LLaVA-Med v1.0's openai/clip-vit-base-patch16 processor statistics, whatever
    # the open_clip config says; "open_clip": the config's preprocess_cfg
    assert encoder.image_mean == OPENAI_CLIP_MEAN and encoder.image_std == OPENAI_CLIP_STD
    own = BiomedClipVisionEncoder.from_pretrained(str(tmp_path), preprocess="open_clip", image_aspect="crop")
    assert own.image_mean == tuple(TINY_PREPROCESS["mean"]) and own.image_std == tuple(TINY_PREPROCESS["std"])
    image = Image.new("RGB", (200, 170), (30, 200, 90))
    expected = open_clip.transform.image_transform(160, is_train=False, **TINY_PREPROCESS)(image)
    assert torch.equal(own.transform(image), expected)
    assert (encoder.image_size, encoder.patch_size, encoder.hidden_size) == (160, 16, 64)

    images = pixels(encoder)
    depth = len(trunk.blocks)
    with torch.no_grad():
        (penultimate,) = trunk.forward_intermediates(
            images, indices=[depth - 2], output_fmt="NLC", intermediates_only=True
        )
        features = encoder(images)
    assert features.shape == (2, 100, 64)
    assert torch.equal(features, penultimate)


def test_biomedclip_agrees_with_open_clip_own_local_dir_loader(tmp_path):
    save_open_clip_hub_layout(tmp_path, "bin")
    through_open_clip = open_clip.create_model(f"local-dir:{tmp_path}").eval()
    encoder = BiomedClipVisionEncoder.from_pretrained(str(tmp_path))
    images = pixels(encoder)
    with torch.no_grad():
        assert torch.equal(
            encoder.trunk.forward_features(images), through_open_clip.visual.trunk.forward_features(images)
        )


def test_biomedclip_rejects_bad_directories(tmp_path):
    with pytest.raises(PluginError, match="open_clip_config.json"):
        BiomedClipVisionEncoder.from_pretrained(str(tmp_path))
    (tmp_path / "open_clip_config.json").write_text(json.dumps({"model_cfg": TINY_OPEN_CLIP}))
    with pytest.raises(PluginError, match="no open_clip weights"):
        BiomedClipVisionEncoder.from_pretrained(str(tmp_path))
    save_open_clip_hub_layout(tmp_path, "bin")
    config = {"model_cfg": {**TINY_OPEN_CLIP, "vision_cfg": {"layers": 2, "width": 32, "patch_size": 8}}}
    (tmp_path / "open_clip_config.json").write_text(json.dumps(config))
    with pytest.raises(PluginError, match="timm_model_name"):
        BiomedClipVisionEncoder.from_pretrained(str(tmp_path))


def test_biomedclip_unreachable_hub_id_is_a_plugin_error():
    with pytest.raises(PluginError, match="hub id"):
        BiomedClipVisionEncoder.from_pretrained("hf-hub:medzoo-test/does-not-exist")
