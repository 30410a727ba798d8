"""Vision-encoder families beyond CLIP / BiomedCLIP: SigLIP, SigLIP 2 (NaFlex at a fixed size), DINOv2, any timm
ViT, any open_clip vision tower, and fused pairs. Each loads a tiny random model saved in its upstream library's
own format and gives the upstream features; preprocessing is checked against the upstream processors.
(The suites over every registered encoder, tests/test_vision_encoders.py and tests/test_model_composition.py,
cover shapes, feature_layer, architecture rebuilds, gradient checkpointing and block classes.)"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from medzoo.core.errors import PluginError, RecipeError
from medzoo.core.interfaces.vision_encoder import VisionEncoder


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """No test may reach the hub."""
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)


def pixels(encoder: VisionEncoder, batch: int = 2, channels: int = 3) -> torch.Tensor:
    size = encoder.image_size
    return torch.randn(batch, channels, size, size, generator=torch.Generator().manual_seed(1))


def photo(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng([seed, width, height])
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data))


def assert_identical(ours: torch.Tensor, theirs: torch.Tensor) -> None:
    assert ours.shape == theirs.shape and ours.dtype == theirs.dtype
    assert float((ours - theirs).abs().max()) == 0.0


# --- SigLIP ---------------------------------------------------------------------------------------------------


def tiny_siglip_config() -> dict:
    from medzoo.plugins.vision.siglip import SiglipVisionEncoder

    return SiglipVisionEncoder.tiny_config()


def siglip_processor(size: int, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)):
    """google/siglip-so400m-patch14-384's preprocessor_config.json settings, at ``size``."""
    from transformers import SiglipImageProcessorPil

    return SiglipImageProcessorPil(
        size={"height": size, "width": size}, resample=3, do_rescale=True, rescale_factor=1 / 255,
        do_normalize=True, image_mean=list(mean), image_std=list(std), do_convert_rgb=False,
    )


def test_siglip_features_are_colongpt_hidden_states_without_post_layernorm():
    from transformers import SiglipVisionConfig, SiglipVisionModel

    from medzoo.plugins.vision.siglip import SiglipVisionEncoder

    torch.manual_seed(0)
    model = SiglipVisionModel(SiglipVisionConfig(**tiny_siglip_config())).eval()  # with the pooling head
    encoder = SiglipVisionEncoder(model)
    last = SiglipVisionEncoder(model, feature_layer=-1)
    images = pixels(encoder)
    with torch.no_grad():
        reference = model(images, output_hidden_states=True)
        assert_identical(encoder(images), reference.hidden_states[-2])  # ColonGPT's select_layer -2, all tokens
        assert_identical(last(images), reference.hidden_states[-1])
        assert not torch.allclose(last(images), reference.last_hidden_state)  # post_layernorm is not applied
    assert encoder.num_tokens == 16 and not encoder.has_cls_token


def test_siglip_from_pretrained_round_trip_and_processor_statistics(tmp_path):
    from transformers import SiglipVisionConfig, SiglipVisionModel

    from medzoo.plugins.vision.siglip import SiglipVisionEncoder

    torch.manual_seed(0)
    model = SiglipVisionModel(SiglipVisionConfig(**tiny_siglip_config())).eval()
    model.save_pretrained(tmp_path)
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.3, 0.4)
    siglip_processor(32, mean, std).save_pretrained(tmp_path)
    loaded = SiglipVisionEncoder.from_pretrained(str(tmp_path))
    assert (loaded.image_mean, loaded.image_std) == (mean, std)
    assert not hasattr(loaded.model, "head")  # the pooling head is not built
    images = pixels(loaded)
    with torch.no_grad():
        assert_identical(loaded(images), model(images, output_hidden_states=True).hidden_states[-2])
    rebuilt = SiglipVisionEncoder.from_config(loaded.architecture_config())
    assert (rebuilt.image_mean, rebuilt.image_std) == (mean, std)

    siglip_processor(48).save_pretrained(tmp_path)
    with pytest.raises(PluginError, match="size 48 does not match the vision tower's image_size 32"):
        SiglipVisionEncoder.from_pretrained(str(tmp_path))


def test_siglip_takes_the_vision_half_of_a_full_siglip_checkpoint(tmp_path):
    """The hub layout of google/siglip-so400m-patch14-384, siglip2-so400m-patch14-384 and medsiglip-448."""
    from transformers import SiglipConfig, SiglipModel

    from medzoo.plugins.vision.siglip import SiglipVisionEncoder

    text = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 4,
            "vocab_size": 64, "max_position_embeddings": 8}
    torch.manual_seed(0)
    full = SiglipModel(SiglipConfig(vision_config=tiny_siglip_config(), text_config=text)).eval()
    full.save_pretrained(tmp_path)
    encoder = SiglipVisionEncoder.from_pretrained(str(tmp_path))
    images = pixels(encoder)
    with torch.no_grad():
        reference = full.vision_model(images, output_hidden_states=True).hidden_states[-2]
        assert_identical(encoder(images), reference)
    assert (encoder.image_mean, encoder.image_std) == ((0.5,) * 3, (0.5,) * 3)  # no processor file: SigLIP's

    weights = tmp_path / "model.safetensors"
    state = load_file(weights)
    save_file({k: v for k, v in state.items() if "vision_model.encoder.layers.1." not in k}, weights,
              metadata={"format": "pt"})
    with pytest.raises(PluginError, match="lacks 16 vision-tower weights"):
        SiglipVisionEncoder.from_pretrained(str(tmp_path))


@pytest.mark.parametrize("size", [(40, 24), (24, 40), (32, 32), (7, 61), (100, 75)])
def test_siglip_pixels_equal_the_siglip_image_processor(size):
    """``crop``: the processor alone (squashed to the square); ``pad``: ColonGPT's expand2square with the mean
    colour, then the processor."""
    from medzoo.core.model.image_processing import expand_to_square
    from medzoo.plugins.vision.siglip import SiglipVisionEncoder

    image = photo(*size)
    processor = siglip_processor(32)
    alone = SiglipVisionEncoder.from_config(tiny_siglip_config(), image_aspect="crop")
    official = processor.preprocess(image, return_tensors="pt")["pixel_values"][0]
    assert_identical(alone.transform(image), official)
    padded = SiglipVisionEncoder.from_config(tiny_siglip_config(), image_aspect="pad")
    square = expand_to_square(image, tuple(int(x * 255) for x in processor.image_mean))
    assert_identical(padded.transform(image), processor.preprocess(square, return_tensors="pt")["pixel_values"][0])


def test_siglip_unknown_source_is_a_one_line_plugin_error(tmp_path):
    from medzoo.plugins.vision.siglip import SiglipVisionEncoder

    with pytest.raises(PluginError, match="config.json: missing") as caught:
        SiglipVisionEncoder.from_pretrained(str(tmp_path))
    assert "\n" not in str(caught.value)
    with pytest.raises(RecipeError, match="'cls_patch' needs a class token"):
        SiglipVisionEncoder.from_config(tiny_siglip_config(), feature_select="cls_patch")


# --- DINOv2 ---------------------------------------------------------------------------------------------------


def tiny_dinov2_model(registers: int = 0, image_size: int = 32):
    from transformers import Dinov2Config, Dinov2Model, Dinov2WithRegistersConfig, Dinov2WithRegistersModel

    from medzoo.plugins.vision.dinov2 import Dinov2VisionEncoder

    config = {**Dinov2VisionEncoder.tiny_config(), "image_size": image_size}
    torch.manual_seed(0)
    if registers:
        return Dinov2WithRegistersModel(Dinov2WithRegistersConfig(**config, num_register_tokens=registers)).eval()
    return Dinov2Model(Dinov2Config(**config)).eval()


def bit_processor(crop: int, resize: int, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)):
    """facebook/dinov2-large's preprocessor_config.json (BitImageProcessor, 256 -> 224) at other sizes."""
    from transformers import BitImageProcessorPil

    return BitImageProcessorPil(
        size={"shortest_edge": resize}, crop_size={"height": crop, "width": crop}, do_center_crop=True,
        resample=3, do_rescale=True, rescale_factor=1 / 255, do_normalize=True, image_mean=list(mean),
        image_std=list(std), do_convert_rgb=False,
    )


@pytest.mark.parametrize("registers", [0, 4])
def test_dinov2_features_drop_the_class_and_register_tokens(registers):
    from medzoo.plugins.vision.dinov2 import Dinov2VisionEncoder

    model = tiny_dinov2_model(registers)
    patch = Dinov2VisionEncoder(model)
    with_cls = Dinov2VisionEncoder(model, feature_select="cls_patch")
    images = pixels(patch)
    with torch.no_grad():
        hidden = model(images, output_hidden_states=True).hidden_states[-2]
        assert_identical(patch(images), hidden[:, 1 + registers :])
        assert_identical(with_cls(images), torch.cat([hidden[:, :1], hidden[:, 1 + registers :]], dim=1))
    assert patch.num_tokens == 16 and with_cls.num_tokens == 17
    rebuilt = Dinov2VisionEncoder.from_config(patch.architecture_config())
    assert rebuilt.num_register_tokens == registers and type(rebuilt.model) is type(model)


def test_dinov2_input_smaller_than_the_config_interpolates_as_dinov2model():
    """facebook/dinov2-* have image_size 518 in config.json and a 224 px processor crop: transformers
    interpolates the position embeddings, and so does the encoder (the same module runs)."""
    from medzoo.plugins.vision.dinov2 import Dinov2VisionEncoder

    model = tiny_dinov2_model(image_size=48)
    encoder = Dinov2VisionEncoder(model, input_size=32)
    assert (encoder.image_size, encoder.num_tokens) == (32, 16)
    images = pixels(encoder)
    with torch.no_grad():
        assert_identical(encoder(images), model(images, output_hidden_states=True).hidden_states[-2][:, 1:])
    with pytest.raises(RecipeError, match="input size 30 is not a multiple of the patch size 8"):
        Dinov2VisionEncoder(model, input_size=30)


@pytest.mark.parametrize("registers", [0, 2])
def test_dinov2_from_pretrained_round_trip_with_the_bit_processor(tmp_path, registers):
    from medzoo.plugins.vision.dinov2 import Dinov2VisionEncoder

    model = tiny_dinov2_model(registers, image_size=48)
    model.save_pretrained(tmp_path)
    processor = bit_processor(32, 40, mean=(0.4, 0.5, 0.6), std=(0.3, 0.2, 0.1))
    processor.save_pretrained(tmp_path)
    encoder = Dinov2VisionEncoder.from_pretrained(str(tmp_path), image_aspect="crop")
    assert (encoder.input_size, encoder.resize_size, encoder.num_register_tokens) == (32, 40, registers)
    assert (encoder.image_mean, encoder.image_std) == ((0.4, 0.5, 0.6), (0.3, 0.2, 0.1))
    for size in [(50, 37), (37, 50), (32, 32), (200, 41)]:
        image = photo(*size)
        assert_identical(encoder.transform(image), processor.preprocess(image, return_tensors="pt")["pixel_values"][0])
    images = pixels(encoder)
    with torch.no_grad():
        reference = model(images, output_hidden_states=True).hidden_states[-2][:, 1 + registers :]
        assert_identical(encoder(images), reference)
    bigger = Dinov2VisionEncoder.from_pretrained(str(tmp_path), image_size=48)
    assert (bigger.input_size, bigger.resize_size, bigger.num_tokens) == (48, 60, 36)
    rebuilt = Dinov2VisionEncoder.from_config(encoder.architecture_config(), image_aspect="crop")
    assert rebuilt.transform == encoder.transform


def test_dinov2_bad_folders_are_one_line_plugin_errors(tmp_path):
    from medzoo.plugins.vision.dinov2 import Dinov2VisionEncoder

    with pytest.raises(PluginError, match="config.json: missing; expected the DINOv2 checkpoint's config"):
        Dinov2VisionEncoder.from_pretrained(str(tmp_path))
    tiny_dinov2_model().save_pretrained(tmp_path)
    write_json(tmp_path / "preprocessor_config.json", {"crop_size": {"height": 32, "width": 24}})
    with pytest.raises(PluginError, match="crop_size .* is not a square size"):
        Dinov2VisionEncoder.from_pretrained(str(tmp_path))
    (tmp_path / "preprocessor_config.json").unlink()
    weights = tmp_path / "model.safetensors"
    state = load_file(weights)
    save_file({k: v[..., :8] if k == "embeddings.cls_token" else v for k, v in state.items()}, weights)
    with pytest.raises(PluginError, match=r"model.safetensors: tensor .* has shape"):
        Dinov2VisionEncoder.from_pretrained(str(tmp_path))


# --- timm -----------------------------------------------------------------------------------------------------


def tiny_timm(**overrides):
    from medzoo.plugins.vision.timm_vit import TimmVisionEncoder

    torch.manual_seed(0)
    return TimmVisionEncoder.from_config({**TimmVisionEncoder.tiny_config(), **overrides}).eval()


def save_timm_hub_layout(encoder, directory: Path) -> None:
    """timm's own save-for-hub layout (what push_to_hf_hub uploads): config.json + model.safetensors."""
    from timm.models import save_for_hf

    save_for_hf(encoder.trunk, str(directory), safe_serialization=True)


@pytest.mark.parametrize(
    ("overrides", "prefix"),
    [({}, 1), ({"reg_tokens": 4}, 5), ({"class_token": False, "global_pool": "avg"}, 0)],
    ids=["clip-like", "registers", "siglip-like"],
)
def test_timm_features_are_timm_intermediates_without_prefix_tokens(overrides, prefix):
    from medzoo.plugins.vision.timm_vit import TimmVisionEncoder

    encoder = tiny_timm(**overrides)
    trunk = encoder.trunk
    assert trunk.num_prefix_tokens == prefix and encoder.has_cls_token == (prefix > 0)
    images = pixels(encoder)
    with torch.no_grad():
        (penultimate,) = trunk.forward_intermediates(images, indices=[0], output_fmt="NLC", intermediates_only=True)
        assert_identical(encoder(images), penultimate)
    if encoder.has_cls_token:
        with_cls = TimmVisionEncoder(trunk, encoder.model_name, feature_select="cls_patch")
        with torch.no_grad():
            ((patches, prefix_tokens),) = trunk.forward_intermediates(
                images, indices=[0], output_fmt="NLC", intermediates_only=True, return_prefix_tokens=True
            )
            assert_identical(with_cls(images), torch.cat([prefix_tokens[:, :1], patches], dim=1))
    else:
        with pytest.raises(RecipeError, match="'cls_patch' needs a class token"):
            TimmVisionEncoder.from_config(encoder.architecture_config(), feature_select="cls_patch")


def test_timm_eva_runs_through_forward_intermediates():
    encoder = tiny_timm(model_name="eva02_tiny_patch14_224", mlp_ratio=2.0)
    images = pixels(encoder)
    with torch.no_grad():
        (penultimate,) = encoder.trunk.forward_intermediates(images, indices=[0], output_fmt="NLC",
                                                             intermediates_only=True)
        assert_identical(encoder(images), penultimate)
    with pytest.raises(RecipeError, match="embedding output"):
        encoder.__class__.from_config(encoder.architecture_config(), feature_layer=0)


def test_timm_from_pretrained_loads_timm_hub_layout_with_its_preprocessing(tmp_path):
    from timm.data import create_transform, resolve_model_data_config

    from medzoo.plugins.vision.timm_vit import TimmVisionEncoder

    original = tiny_timm(reg_tokens=2)
    save_timm_hub_layout(original, tmp_path)
    loaded = TimmVisionEncoder.from_pretrained(str(tmp_path), image_aspect="crop")
    assert loaded.model_name == "vit_small_patch16_224" and loaded.trunk.num_prefix_tokens == 3
    images = pixels(loaded)
    with torch.no_grad():
        assert_identical(loaded(images), original(images))
    rebuilt = TimmVisionEncoder.from_config(loaded.architecture_config(), image_aspect="crop")
    assert rebuilt.transform == loaded.transform
    rebuilt.load_state_dict(loaded.state_dict())
    with torch.no_grad():
        assert_identical(rebuilt.eval()(images), loaded(images))
    official = create_transform(**resolve_model_data_config(loaded.trunk))  # timm's eval transform, 32 px
    for size in [(50, 37), (37, 50), (32, 32)]:
        image = photo(*size)
        assert_identical(loaded.transform(image), official(image))


def test_timm_bad_sources_are_one_line_errors(tmp_path):
    from medzoo.plugins.vision.timm_vit import TimmVisionEncoder

    with pytest.raises(PluginError, match="config.json: missing; expected timm's model config"):
        TimmVisionEncoder.from_pretrained(str(tmp_path))
    save_timm_hub_layout(tiny_timm(), tmp_path)
    weights = tmp_path / "model.safetensors"
    state = load_file(weights)
    save_file({k: v[:, :16] if k == "pos_embed" else v for k, v in state.items()}, weights)
    with pytest.raises(PluginError, match=r"model.safetensors.*pos_embed") as caught:
        TimmVisionEncoder.from_pretrained(str(tmp_path))
    assert "\n" not in str(caught.value)
    weights.unlink()
    with pytest.raises(PluginError, match="no timm weights"):
        TimmVisionEncoder.from_pretrained(str(tmp_path))
    with pytest.raises(PluginError, match="cannot load 'hf-hub:medzoo-test/does-not-exist'"):
        TimmVisionEncoder.from_pretrained("hf-hub:medzoo-test/does-not-exist")
    with pytest.raises(RecipeError, match=r"unknown timm model 'vit_smal_patch16_224' \(did you mean"):
        TimmVisionEncoder.from_config({"model_name": "vit_smal_patch16_224"})
    with pytest.raises(RecipeError, match="config needs 'model_name'"):
        TimmVisionEncoder.from_config({"depth": 2})


# --- open_clip ------------------------------------------------------------------------------------------------

# Tiny open_clip models: a native VisionTransformer tower (ViT-B-16's shape, PMC-CLIP ViT style) and a timm trunk
# (BiomedCLIP's shape), each with a one-layer text tower that the encoder never builds.
TEXT_CFG = {"context_length": 8, "vocab_size": 64, "width": 32, "heads": 2, "layers": 1}
NATIVE_CFG = {"embed_dim": 16, "vision_cfg": {"image_size": 32, "patch_size": 8, "width": 32, "layers": 3,
                                              "head_width": 8, "mlp_ratio": 2.0}, "text_cfg": TEXT_CFG}
TIMM_CFG = {"embed_dim": 16, "vision_cfg": {"timm_model_name": "test_vit", "timm_model_pretrained": False,
                                            "timm_pool": "", "timm_proj": "linear", "image_size": 160},
            "text_cfg": TEXT_CFG}
OPEN_CLIP_PREPROCESS = {"mean": [0.1, 0.2, 0.3], "std": [0.4, 0.5, 0.6], "interpolation": "bilinear"}


def save_open_clip(directory: Path, model_cfg: dict, quick_gelu: bool = False):
    import open_clip

    torch.manual_seed(0)
    model = open_clip.CLIP(**json.loads(json.dumps(model_cfg)), quick_gelu=quick_gelu).eval()
    config = {"model_cfg": {**model_cfg, "quick_gelu": quick_gelu}, "preprocess_cfg": OPEN_CLIP_PREPROCESS}
    write_json(directory / "open_clip_config.json", config)
    torch.save(model.state_dict(), directory / "open_clip_pytorch_model.bin")
    return model


@pytest.mark.parametrize("quick_gelu", [False, True])
def test_open_clip_native_tower_equals_open_clip_own_loader(tmp_path, quick_gelu):
    import open_clip

    from medzoo.plugins.vision.open_clip_tower import OpenClipVisionEncoder

    save_open_clip(tmp_path, NATIVE_CFG, quick_gelu)
    upstream = open_clip.create_model(f"local-dir:{tmp_path}").visual.eval()
    encoder = OpenClipVisionEncoder.from_pretrained(str(tmp_path))
    with_cls = OpenClipVisionEncoder.from_pretrained(str(tmp_path), feature_select="cls_patch")
    assert (encoder.hidden_size, encoder.num_tokens, with_cls.num_tokens) == (32, 16, 17)
    assert encoder.state_dict().keys() == {f"visual.{key}" for key in upstream.state_dict()}
    images = pixels(encoder)
    with torch.no_grad():
        output = upstream.forward_intermediates(images, indices=[1], output_fmt="NLC", intermediates_only=True,
                                                output_extra_tokens=True)
        (patches,), (prefix,) = output["image_intermediates"], output["image_intermediates_prefix"]
        assert_identical(encoder(images), patches)
        assert_identical(with_cls(images), torch.cat([prefix, patches], dim=1))
    image = photo(50, 37)
    crop = OpenClipVisionEncoder.from_pretrained(str(tmp_path), image_aspect="crop")
    expected = open_clip.transform.image_transform(32, is_train=False, **OPEN_CLIP_PREPROCESS)(image)
    assert_identical(crop.transform(image), expected)
    rebuilt = OpenClipVisionEncoder.from_config(crop.architecture_config(), image_aspect="crop")
    assert rebuilt.transform == crop.transform and rebuilt.model_cfg["quick_gelu"] is quick_gelu


def test_open_clip_timm_trunk_tower_gives_the_biomedclip_features(tmp_path):
    from medzoo.plugins.vision.biomedclip import BiomedClipVisionEncoder
    from medzoo.plugins.vision.open_clip_tower import OpenClipVisionEncoder

    reference = save_open_clip(tmp_path, TIMM_CFG)
    encoder = OpenClipVisionEncoder.from_pretrained(str(tmp_path))
    biomedclip = BiomedClipVisionEncoder.from_pretrained(str(tmp_path))
    assert encoder.trunk is not None and (encoder.image_mean, encoder.image_std) == ((0.1, 0.2, 0.3), (0.4, 0.5, 0.6))
    images = pixels(encoder)
    trunk = reference.visual.trunk
    with torch.no_grad():
        (penultimate,) = trunk.forward_intermediates(images, indices=[len(trunk.blocks) - 2], output_fmt="NLC",
                                                     intermediates_only=True)
        assert_identical(encoder(images), penultimate)
        assert_identical(encoder(images), biomedclip(images))


def test_open_clip_builds_a_named_architecture_with_overrides():
    from medzoo.plugins.vision.open_clip_tower import OpenClipVisionEncoder

    overrides = {"image_size": 32, "patch_size": 8, "width": 32, "layers": 2, "head_width": 8}
    encoder = OpenClipVisionEncoder.from_config({"model_name": "ViT-B-16", "vision_cfg": overrides})
    assert (encoder.hidden_size, encoder.num_tokens, encoder.model_cfg["embed_dim"]) == (32, 16, 512)
    with pytest.raises(RecipeError, match=r"unknown open_clip architecture 'ViT-B-61' \(did you mean"):
        OpenClipVisionEncoder.from_config({"model_name": "ViT-B-61"})
    with pytest.raises(RecipeError, match="config needs 'model_cfg'"):
        OpenClipVisionEncoder.from_config({"vision_cfg": overrides})


def test_open_clip_bad_sources_are_one_line_plugin_errors(tmp_path):
    from medzoo.plugins.vision.open_clip_tower import OpenClipVisionEncoder

    with pytest.raises(PluginError, match="no open_clip_config.json"):
        OpenClipVisionEncoder.from_pretrained(str(tmp_path))
    with pytest.raises(PluginError, match="'ViT-B-16' has no pretrained tag 'nope'; expected one of .*openai"):
        OpenClipVisionEncoder.from_pretrained("ViT-B-16:nope")
    with pytest.raises(PluginError, match="cannot download ViT-B-16:openai"):
        OpenClipVisionEncoder.from_pretrained("ViT-B-16:openai")
    with pytest.raises(PluginError, match="neither a local directory nor a reachable hub id"):
        OpenClipVisionEncoder.from_pretrained("hf-hub:medzoo-test/does-not-exist")
    resnet = {**NATIVE_CFG, "vision_cfg": {"image_size": 32, "layers": [1, 1, 1, 1], "width": 8}}
    save_open_clip(tmp_path, resnet)
    with pytest.raises(PluginError, match="the vision tower is a ModifiedResNet; expected a ViT"):
        OpenClipVisionEncoder.from_pretrained(str(tmp_path))
    save_open_clip(tmp_path, NATIVE_CFG)
    config = json.loads((tmp_path / "open_clip_config.json").read_text())
    config["model_cfg"]["vision_cfg"]["width"] = 64
    write_json(tmp_path / "open_clip_config.json", config)
    with pytest.raises(PluginError, match=r"open_clip_pytorch_model.bin: tensor 'visual\..*' has shape") as caught:
        OpenClipVisionEncoder.from_pretrained(str(tmp_path))
    assert "\n" not in str(caught.value)


# --- fusion ---------------------------------------------------------------------------------------------------


def tiny_clip_config(**changes) -> dict:
    from medzoo.plugins.vision.clip import ClipVisionEncoder

    return {**ClipVisionEncoder.tiny_config(), **changes}


def tiny_dinov2_config(**changes) -> dict:
    from medzoo.plugins.vision.dinov2 import Dinov2VisionEncoder

    return {**Dinov2VisionEncoder.tiny_config(), **changes}


def fused(towers: list[dict], **options):
    from medzoo.plugins.vision.fusion import FusionVisionEncoder

    torch.manual_seed(0)
    return FusionVisionEncoder.from_config({"towers": towers}, **options).eval()


def test_fusion_concatenates_each_towers_features_on_its_own_pixels():
    """TinyLLaVA-style CLIP + DINOv2 with different sizes and the same 4 x 4 grid: the fused transform stacks
    each tower's own tensor (the 32 px one zero-padded to 48), forward splits and crops."""
    encoder = fused([{"name": "clip", "config": tiny_clip_config()},
                     {"name": "dinov2", "config": tiny_dinov2_config(image_size=48, patch_size=12, hidden_size=48)}])
    clip, dino = encoder.towers
    assert (encoder.image_size, encoder.input_channels, encoder.num_tokens, encoder.hidden_size) == (48, 6, 16, 80)
    assert encoder.patch_size == 12 and encoder.has_cls_token
    assert set(encoder.block_classes) == {clip.block_class, dino.block_class}
    images = [photo(50, 37), photo(20, 41, seed=1)]
    batch = encoder.transform.batch(images)
    assert batch.shape == (2, 6, 48, 48)
    assert_identical(batch[:, :3, :32, :32], clip.transform.batch(images))
    assert not batch[:, :3, 32:].any() and not batch[:, :3, :, 32:].any()
    assert_identical(batch[:, 3:], dino.transform.batch(images))
    with torch.no_grad():
        features = encoder(batch)
        expected = torch.cat([clip(clip.transform.batch(images)), dino(dino.transform.batch(images))], dim=-1)
    assert_identical(features, expected)
    with pytest.raises(ValueError, match=r"expected pixels \[B, 6, H, W\]"):
        encoder(batch[:, :3])


def test_fusion_options_are_tower_defaults_and_tower_options_win():
    encoder = fused([{"name": "clip"}, {"name": "dinov2", "options": {"feature_layer": -2}}], feature_layer=-1,
                    feature_select="cls_patch", image_aspect="crop")
    clip, dino = encoder.towers
    assert (clip.feature_layer, dino.feature_layer) == (-1, -2)
    assert clip.feature_select == dino.feature_select == "cls_patch" and encoder.num_tokens == 17
    assert clip.image_aspect == dino.image_aspect == "crop"
    overridden = fused([{"name": "clip"}, {"name": "dinov2"}], tower_options=[{}, {"image_aspect": "crop"}])
    assert [tower.image_aspect for tower in overridden.towers] == ["pad", "crop"]
    assert overridden.architecture_config()["towers"][1]["options"] == {"image_aspect": "crop"}


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"towers": [{"name": "clip"}, {"name": "dinov2", "config": tiny_dinov2_config(patch_size=16)}]},
         r"different token counts \(ClipVisionEncoder 16 and Dinov2VisionEncoder 4\)"),
        ({"towers": [{"name": "clip"}]}, "must list two or more towers"),
        ({"towers": [{"name": "clip"}, {"name": "dinov2", "confg": {}}]},
         r"towers'\[1\]\.confg: unknown key \(did you mean \"config\"\?\)"),
        ({"towers": [{"name": "clip"}, {"name": "fusion"}]}, "tower 1 is itself 'fusion'"),
        ({"towers": [{"name": "clip"}, {"name": "siglip"}]}, None),
    ],
)
def test_fusion_bad_configs_are_one_line_recipe_errors(config, message):
    from medzoo.plugins.vision.fusion import FusionVisionEncoder

    if message is None:  # SigLIP has no class token to fuse
        with pytest.raises(RecipeError, match="'cls_patch' needs a class token"):
            FusionVisionEncoder.from_config(config, feature_select="cls_patch")
        return
    with pytest.raises(RecipeError, match=message) as caught:
        FusionVisionEncoder.from_config(config)
    assert "\n" not in str(caught.value)


def save_tower_folders(root: Path) -> tuple:
    """A tiny SigLIP and DINOv2 saved with transformers' save_pretrained, each with its processor."""
    from transformers import SiglipVisionConfig, SiglipVisionModel

    torch.manual_seed(0)
    siglip = SiglipVisionModel(SiglipVisionConfig(**tiny_siglip_config()))
    siglip.save_pretrained(root / "siglip")
    siglip_processor(32).save_pretrained(root / "siglip")
    dino = tiny_dinov2_model(registers=2, image_size=48)
    dino.save_pretrained(root / "dino")
    bit_processor(32, 36).save_pretrained(root / "dino")
    return dino, siglip


def test_fusion_from_pretrained_folder_pair_and_presets(tmp_path):
    from medzoo.plugins.vision.dinov2 import Dinov2VisionEncoder
    from medzoo.plugins.vision.fusion import PRESETS, FusionVisionEncoder
    from medzoo.plugins.vision.siglip import SiglipVisionEncoder

    save_tower_folders(tmp_path)
    write_json(tmp_path / "fusion.json", {"towers": [{"name": "dinov2", "pretrained": "dino"},
                                                    {"name": "siglip", "pretrained": "siglip"}]})
    encoder = FusionVisionEncoder.from_pretrained(str(tmp_path))
    pair = FusionVisionEncoder.from_pretrained(f"dinov2={tmp_path / 'dino'}+siglip={tmp_path / 'siglip'}")
    dino = Dinov2VisionEncoder.from_pretrained(str(tmp_path / "dino"))
    siglip = SiglipVisionEncoder.from_pretrained(str(tmp_path / "siglip"))
    image = photo(45, 30)
    assert_identical(encoder.transform(image), torch.cat([dino.transform(image), siglip.transform(image)]))
    batch = encoder.transform.batch([image])
    with torch.no_grad():
        expected = torch.cat([dino(batch[:, :3]), siglip(batch[:, 3:])], dim=-1)
        assert_identical(encoder(batch), expected)
        assert_identical(pair(batch), expected)
    assert "dinosiglip-vit-so-384px" in PRESETS
    with pytest.raises(PluginError, match=r"or a preset \(did you mean \"dinosiglip-vit-so-384px\"\?\)"):
        FusionVisionEncoder.from_pretrained("dinosiglip-vit-so-384")
    with pytest.raises(PluginError, match="fusion.json: missing"):
        FusionVisionEncoder.from_pretrained(str(tmp_path / "dino"))
    with pytest.raises(PluginError, match="cannot load"):  # a preset's towers come from the hub: offline here
        FusionVisionEncoder.from_pretrained("clip-dinov2-vit-l-224px")


@pytest.mark.parametrize("pretrained", [False, True])
def test_fusion_model_saves_and_loads(tmp_path, pretrained):
    """A model with a fused tower through medzoo's save / load: random towers are saved with their architecture
    configs and rebuilt; pretrained, untrained towers are recorded by source and loaded from it again."""
    from medzoo.core.model.build import build_model
    from medzoo.core.model.multimodal import MultimodalModel
    from medzoo.core.plugin_system.manager import components

    language = components().get("language_model", "llama").factory.tiny_config()
    vision = {"name": "fusion", "config": {"towers": [{"name": "dinov2"}, {"name": "siglip"}]},
              "options": {"image_aspect": "crop"}}
    if pretrained:
        save_tower_folders(tmp_path)
        write_json(tmp_path / "fusion.json", {"towers": [{"name": "dinov2", "pretrained": "dino"},
                                                        {"name": "siglip", "pretrained": "siglip"}]})
        vision = {"name": "fusion", "pretrained": str(tmp_path), "options": {"image_aspect": "crop"}}
    spec = {"vision": vision, "connector": {"name": "mlp2x_gelu"}, "language": {"name": "llama", "config": language}}
    torch.manual_seed(0)
    model = build_model(spec).eval()
    model.save_pretrained(str(tmp_path / "saved"))
    manifest = json.loads((tmp_path / "saved" / "medzoo_model.json").read_text())
    assert ("vision" in manifest["saved_modules"]) is not pretrained
    assert [tower["name"] for tower in manifest["architecture"]["vision"]["towers"]] == ["dinov2", "siglip"]
    loaded = MultimodalModel.from_pretrained(str(tmp_path / "saved"))
    batch = model.vision.transform.batch([photo(40, 33)])
    with torch.no_grad():
        assert_identical(loaded.vision(batch), model.vision(batch))
    assert loaded.vision.transform == model.vision.transform


# --- SigLIP 2 (NaFlex) ----------------------------------------------------------------------------------------


def tiny_siglip2_model():
    from transformers import Siglip2VisionConfig, Siglip2VisionModel

    from medzoo.plugins.vision.siglip2 import Siglip2VisionEncoder

    torch.manual_seed(0)
    return Siglip2VisionModel(Siglip2VisionConfig(**Siglip2VisionEncoder.tiny_config())).eval()


def naflex_processor(max_num_patches: int = 16):
    """google/siglip2-base-patch16-naflex's preprocessor settings with the tiny model's 8 px patches."""
    from transformers import Siglip2ImageProcessorPil

    return Siglip2ImageProcessorPil(patch_size=8, max_num_patches=max_num_patches, resample=2, do_rescale=True,
                                    rescale_factor=1 / 255, do_normalize=True, image_mean=[0.5] * 3,
                                    image_std=[0.5] * 3, do_convert_rgb=False)


@pytest.mark.parametrize("size", [(32, 32), (57, 57), (50, 30)])
def test_siglip2_fixed_square_equals_the_naflex_processor_and_model(tmp_path, size):
    """A square image: the processor picks the square g x g grid too, so pixels, patches and features agree with
    Siglip2ImageProcessor + Siglip2VisionModel(pixel_values, pixel_attention_mask, spatial_shapes); a non-square
    image is padded to a square first (image_aspect pad), so it agrees with the processor on the padded image."""
    from medzoo.core.model.image_processing import expand_to_square
    from medzoo.plugins.vision.siglip2 import Siglip2VisionEncoder

    model = tiny_siglip2_model()
    model.save_pretrained(tmp_path)
    processor = naflex_processor()
    processor.save_pretrained(tmp_path)
    encoder = Siglip2VisionEncoder.from_pretrained(str(tmp_path))
    assert (encoder.image_size, encoder.num_tokens, encoder.transform.resample) == (32, 16, "bilinear")
    image = photo(*size)
    square = expand_to_square(image, tuple(int(x * 255) for x in encoder.image_mean))
    inputs = processor.preprocess(square, return_tensors="pt")
    assert inputs["spatial_shapes"].tolist() == [[4, 4]] and bool(inputs["pixel_attention_mask"].all())
    pixels_ = encoder.transform.batch([image])
    patches, shapes = encoder.patchify(pixels_)
    assert_identical(patches, inputs["pixel_values"])
    assert shapes.tolist() == [[4, 4]]
    with torch.no_grad():
        reference = model(**inputs, output_hidden_states=True).hidden_states[-2]
        assert_identical(encoder(pixels_), reference)


def test_siglip2_image_size_fixes_another_grid_and_rebuilds():
    from medzoo.plugins.vision.siglip2 import Siglip2VisionEncoder

    model = tiny_siglip2_model()
    encoder = Siglip2VisionEncoder(model, input_size=48)
    assert encoder.num_tokens == 36
    images = pixels(encoder)
    patches, shapes = encoder.patchify(images)
    mask = torch.ones(patches.shape[:2], dtype=torch.long)
    with torch.no_grad():
        reference = model(patches, mask, shapes, output_hidden_states=True).hidden_states[-2]
        assert_identical(encoder(images), reference)
    rebuilt = Siglip2VisionEncoder.from_config(encoder.architecture_config())
    assert rebuilt.image_size == 48 and rebuilt.transform == encoder.transform
    with pytest.raises(RecipeError, match="input size 30 is not a positive multiple of the patch size 8"):
        Siglip2VisionEncoder(model, input_size=30)
    with pytest.raises(ValueError, match="expected 48 x 48 pixels"):
        encoder(torch.zeros(1, 3, 32, 32))


def test_siglip2_takes_the_vision_half_of_a_full_siglip2_checkpoint(tmp_path):
    from transformers import Siglip2Config, Siglip2Model

    from medzoo.plugins.vision.siglip2 import Siglip2VisionEncoder

    text = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 4,
            "vocab_size": 64, "max_position_embeddings": 8}
    torch.manual_seed(0)
    full = Siglip2Model(Siglip2Config(vision_config=Siglip2VisionEncoder.tiny_config(), text_config=text)).eval()
    full.save_pretrained(tmp_path)
    encoder = Siglip2VisionEncoder.from_pretrained(str(tmp_path))
    images = pixels(encoder)
    patches, shapes = encoder.patchify(images)
    mask = torch.ones(patches.shape[:2], dtype=torch.long)
    with torch.no_grad():
        reference = full.vision_model(patches, mask, shapes, output_hidden_states=True).hidden_states[-2]
        assert_identical(encoder(images), reference)
