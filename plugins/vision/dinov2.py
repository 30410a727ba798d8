"""DINOv2 vision tower (transformers ``Dinov2Model`` / ``Dinov2WithRegistersModel``): prismatic's and TinyLLaVA's
DINO tower.

Hidden states are numbered as CLIP's (0: the embedding output, ``i``: the output of block ``i - 1``; -2 is the
penultimate block); only the blocks needed run and the final ``layernorm`` is never applied. ``patch`` drops the
class token and the register tokens; ``cls_patch`` keeps the class token in front (registers still dropped).

Input size: fixed once, to the processor's crop size (``preprocessor_config.json``; 224 for facebook/dinov2-*),
else the config's ``image_size``; an ``image_size`` option overrides both. When it differs from the config's
``image_size`` (518 for facebook/dinov2-*), transformers' own ``Dinov2Embeddings`` interpolates the position
embeddings (bicubic) on every forward, exactly as ``Dinov2Model`` on the processor's pixels.

Preprocessing is ``BitImageProcessor``'s: the shortest edge to ``size.shortest_edge`` (256), bicubic, the central
crop (224), rescale 1/255, ImageNet mean / std (or the processor file's); ``image_aspect`` ``pad`` runs LLaVA's
``expand2square`` first.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from medzoo import (
    PluginError,
    RecipeError,
    TransformersVisionTower,
    image_statistics,
    read_model_config,
    read_preprocessor,
    square_side,
)

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
DINOV2_HUB_IDS = ("facebook/dinov2-large", "facebook/dinov2-giant", "facebook/dinov2-with-registers-large")
REGISTERS_MODEL_TYPE = "dinov2_with_registers"


class Dinov2VisionEncoder(TransformersVisionTower):
    """A DINOv2 tower; ``forward`` returns ``hidden_states[feature_layer]`` without the prefix tokens.

    ``from_pretrained`` takes a hub id (``facebook/dinov2-large``, ``facebook/dinov2-with-registers-large``) or a
    local folder; the crop / resize sizes and statistics come from ``preprocessor_config.json`` when present.
    ``from_config`` builds ``Dinov2Config(**config)`` (``Dinov2WithRegistersConfig`` when the config has
    ``num_register_tokens``); optional ``image_mean`` / ``image_std`` (default ImageNet's), ``input_size``
    (default ``image_size``) and ``resize_size`` (shortest edge before the crop, default ``input_size``).
    """

    name = "dinov2"
    checkpoint = "DINOv2"
    architecture_keys = ("hidden_size", "num_hidden_layers", "num_attention_heads", "mlp_ratio", "num_channels",
                         "image_size", "patch_size", "hidden_act", "layer_norm_eps", "layerscale_value", "qkv_bias",
                         "use_swiglu_ffn")  # fmt: skip
    default_mean, default_std = IMAGENET_MEAN, IMAGENET_STD
    tiny = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "mlp_ratio": 2, "image_size": 32,
            "patch_size": 8}  # fmt: skip
    preprocessing_keys = ("image_mean", "image_std", "input_size", "resize_size")

    def configure(self, input_size: int | None = None, resize_size: int | None = None,
                  **image_preprocessing: Any) -> None:
        self.input_size = int(input_size or self.model.config.image_size)
        if self.input_size % self.patch_size:
            raise RecipeError(
                f"vision encoder 'dinov2': input size {self.input_size} is not a multiple of the patch size "
                f"{self.patch_size}"
            )
        self.resize_size = int(resize_size or self.input_size)
        super().configure(**image_preprocessing)

    @classmethod
    def transformers_classes(cls, model_type: Any = None) -> tuple[Any, Any]:
        """Dinov2Model, or Dinov2WithRegistersModel for ``dinov2_with_registers``."""
        if model_type == REGISTERS_MODEL_TYPE:
            from transformers import Dinov2WithRegistersConfig, Dinov2WithRegistersModel

            return Dinov2WithRegistersModel, Dinov2WithRegistersConfig
        from transformers import Dinov2Config, Dinov2Model

        return Dinov2Model, Dinov2Config

    @classmethod
    def config_model_type(cls, config: dict[str, Any]) -> Any:
        return REGISTERS_MODEL_TYPE if "num_register_tokens" in config else "dinov2"

    @classmethod
    def checkpoint_model_type(cls, source: str) -> Any:
        return read_model_config("dinov2", source, "DINOv2").get("model_type")

    @classmethod
    def checkpoint_preprocessing(cls, source: str, config: Any, image_size: int | None) -> dict[str, Any]:
        preprocessing = read_bit_preprocessing(source)
        if image_size is not None:  # the processor's resize margin kept in proportion
            crop = preprocessing.get("input_size", config.image_size)
            preprocessing["resize_size"] = image_size * preprocessing.get("resize_size", crop) // crop
            preprocessing["input_size"] = image_size
        return preprocessing

    def architecture(self) -> dict[str, Any]:
        config = super().architecture()
        if self.num_register_tokens or self.model.config.model_type == REGISTERS_MODEL_TYPE:
            config["num_register_tokens"] = self.num_register_tokens
        return config

    def preprocessing_config(self) -> dict[str, Any]:
        return {"input_size": self.input_size, "resize_size": self.resize_size}

    def transform_arguments(self) -> dict[str, Any]:
        return {"resize_size": self.resize_size}

    @property
    def num_register_tokens(self) -> int:
        return int(getattr(self.model.config, "num_register_tokens", 0) or 0)

    @property
    def num_prefix_tokens(self) -> int:
        return 1 + self.num_register_tokens

    @property
    def image_size(self) -> int:
        return self.input_size

    @property
    def blocks(self) -> Sequence[nn.Module]:
        return self.model.encoder.layer


def read_bit_preprocessing(source: str) -> dict[str, Any]:
    """Statistics, crop size and resize size of the source's ``BitImageProcessor`` config (empty: defaults)."""
    found = read_preprocessor(source)
    if found is None:
        return {}
    processor, path = found
    if processor.get("do_center_crop", True) is False:
        raise PluginError(f"{path}: do_center_crop is false; the dinov2 encoder needs a square centre crop")
    mean, std = image_statistics(processor, path, IMAGENET_MEAN, IMAGENET_STD)
    preprocessing: dict[str, Any] = {"image_mean": mean, "image_std": std}
    crop = square_side(processor.get("crop_size"), path, "crop_size")
    resize = square_side(processor.get("size"), path, "size")
    if crop is not None:
        preprocessing["input_size"] = crop
    if resize is not None:
        if crop is not None and resize < crop:
            raise PluginError(f"{path}: size {resize} is smaller than crop_size {crop}")
        preprocessing["resize_size"] = resize
    return preprocessing
