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
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from medzoo.core.errors import PluginError, RecipeError
from medzoo.core.interfaces.vision_encoder import FeatureSelect
from medzoo.core.model.activation_checkpointing import set_activation_checkpointing
from medzoo.core.model.image_processing import ImageTransform
from medzoo.plugins.vision import blocks_to_run, build_image_transform, image_options
from medzoo.plugins.vision.clip import resolve_dtype
from medzoo.plugins.vision.hf_loading import (
    image_statistics,
    load_vision_model,
    read_model_config,
    read_preprocessor,
    square_side,
)
from medzoo.plugins.vision.tokens import select_tokens
from medzoo.plugins.vision.transformers_tower import TransformersVisionTower

if TYPE_CHECKING:
    from transformers import Dinov2Model

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
DINOV2_HUB_IDS = ("facebook/dinov2-large", "facebook/dinov2-giant", "facebook/dinov2-with-registers-large")
REGISTERS_MODEL_TYPE = "dinov2_with_registers"
# The Dinov2Config fields that define the architecture (``num_register_tokens`` too for the registers model).
ARCHITECTURE_KEYS = (
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "mlp_ratio",
    "num_channels",
    "image_size",
    "patch_size",
    "hidden_act",
    "layer_norm_eps",
    "layerscale_value",
    "qkv_bias",
    "use_swiglu_ffn",
)
# The keys of an architecture config that are preprocessing, not the transformers config.
PREPROCESSING_KEYS = ("image_mean", "image_std", "input_size", "resize_size")


class Dinov2VisionEncoder(TransformersVisionTower):
    """A DINOv2 tower; ``forward`` returns ``hidden_states[feature_layer]`` without the prefix tokens."""

    architecture_keys = ARCHITECTURE_KEYS

    def __init__(
        self,
        model: Dinov2Model,
        image_mean: Sequence[float] = IMAGENET_MEAN,
        image_std: Sequence[float] = IMAGENET_STD,
        feature_layer: int = -2,
        feature_select: FeatureSelect = "patch",
        image_aspect: str = "pad",
        input_size: int | None = None,
        resize_size: int | None = None,
        **image_preprocessing: Any,
    ):
        super().__init__(feature_layer, feature_select, image_aspect)
        self.model = model
        self.image_mean = tuple(float(value) for value in image_mean)
        self.image_std = tuple(float(value) for value in image_std)
        self.input_size = int(input_size or model.config.image_size)
        if self.input_size % self.patch_size:
            raise RecipeError(
                f"vision encoder 'dinov2': input size {self.input_size} is not a multiple of the patch size "
                f"{self.patch_size}"
            )
        self.resize_size = int(resize_size or self.input_size)
        self.num_blocks = blocks_to_run(feature_layer, model.config.num_hidden_layers, "dinov2")
        self.image_options = image_options(image_preprocessing, encoder="dinov2")
        self._transform = build_image_transform(
            "dinov2", self.input_size, self.image_mean, self.image_std, image_aspect, self.image_options,
            resize_size=self.resize_size,
        )

    @classmethod
    def from_pretrained(
        cls,
        source: str,
        feature_layer: int = -2,
        feature_select: FeatureSelect = "patch",
        image_aspect: str = "pad",
        dtype: torch.dtype | str | None = None,
        image_size: int | None = None,
        **options: Any,
    ) -> Dinov2VisionEncoder:
        """Load from a hub id (``facebook/dinov2-large``, ``facebook/dinov2-with-registers-large``) or a local
        folder; the crop / resize sizes and statistics come from ``preprocessor_config.json`` when present."""
        model_class, config_class = dinov2_classes(read_model_config("dinov2", source, "DINOv2").get("model_type"))
        model = load_vision_model("dinov2", source, model_class, config_class, dtype, "DINOv2")
        preprocessing = read_bit_preprocessing(source)
        if image_size is not None:  # the processor's resize margin kept in proportion
            crop = preprocessing.get("input_size", model.config.image_size)
            preprocessing["resize_size"] = image_size * preprocessing.get("resize_size", crop) // crop
            preprocessing["input_size"] = image_size
        return cls(model, feature_layer=feature_layer, feature_select=feature_select, image_aspect=image_aspect,
                   **preprocessing, **image_options(options))

    @classmethod
    def from_config(
        cls,
        config: dict[str, Any],
        feature_layer: int = -2,
        feature_select: FeatureSelect = "patch",
        image_aspect: str = "pad",
        dtype: torch.dtype | str | None = None,
        **options: Any,
    ) -> Dinov2VisionEncoder:
        """Random tower from ``Dinov2Config(**config)`` (``Dinov2WithRegistersConfig`` when the config has
        ``num_register_tokens``); optional ``image_mean`` / ``image_std`` (default ImageNet's), ``input_size``
        (default ``image_size``) and ``resize_size`` (shortest edge before the crop, default ``input_size``)."""
        config = dict(config)
        preprocessing = {key: config.pop(key) for key in PREPROCESSING_KEYS if key in config}
        model_type = REGISTERS_MODEL_TYPE if "num_register_tokens" in config else "dinov2"
        model_class, config_class = dinov2_classes(model_type)
        model = model_class(config_class(**config)).to(resolve_dtype(dtype))
        return cls(model, feature_layer=feature_layer, feature_select=feature_select, image_aspect=image_aspect,
                   **preprocessing, **image_options(options))

    @classmethod
    def tiny_config(cls) -> dict[str, Any]:
        return {
            "hidden_size": 32,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "mlp_ratio": 2,
            "image_size": 32,
            "patch_size": 8,
        }

    def architecture_config(self) -> dict[str, Any]:
        config = self.config_architecture()
        if self.num_register_tokens or self.model.config.model_type == REGISTERS_MODEL_TYPE:
            config["num_register_tokens"] = self.num_register_tokens
        return {
            **config,
            "image_mean": list(self.image_mean),
            "image_std": list(self.image_std),
            "input_size": self.input_size,
            "resize_size": self.resize_size,
        }

    @property
    def num_register_tokens(self) -> int:
        return int(getattr(self.model.config, "num_register_tokens", 0) or 0)

    @property
    def image_size(self) -> int:
        return self.input_size

    @property
    def block_class(self) -> type[nn.Module]:
        return type(self.model.encoder.layer[0])

    @property
    def transform(self) -> ImageTransform:
        return self._transform

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        hidden = self.model.embeddings(pixel_values.to(self.model.dtype))
        for layer in self.model.encoder.layer[: self.num_blocks]:
            hidden = layer(hidden, None)
        return select_tokens(hidden, 1 + self.num_register_tokens, self.feature_select == "cls_patch")

    def set_gradient_checkpointing(self, enabled: bool) -> None:
        set_activation_checkpointing(self.model, enabled)


def dinov2_classes(model_type: Any) -> tuple[Any, Any]:
    """(model class, config class) for a ``config.json`` ``model_type``."""
    if model_type == REGISTERS_MODEL_TYPE:
        from transformers import Dinov2WithRegistersConfig, Dinov2WithRegistersModel

        return Dinov2WithRegistersModel, Dinov2WithRegistersConfig
    from transformers import Dinov2Config, Dinov2Model

    return Dinov2Model, Dinov2Config


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
