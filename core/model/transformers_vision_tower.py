"""A base that makes a vision tower over one transformers vision model (CLIP, SigLIP, DINOv2, ...) a declaration:
the model and config classes, the architecture fields, the checkpoint's name in messages, the preprocessor's
size field, the statistics and the tiny config. Loading (hub id or local folder, every vision weight present,
statistics from ``preprocessor_config.json``), random building, rebuilding and running are inherited.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import nn

from medzoo.core.errors import PluginError
from medzoo.core.interfaces.vision_encoder import FeatureSelect
from medzoo.core.model.activation_checkpointing import set_activation_checkpointing
from medzoo.core.model.image_processing import image_options
from medzoo.core.model.transformers_vision_files import (
    image_statistics,
    load_vision_model,
    read_preprocessor,
    square_side,
)
from medzoo.core.model.vision_tower import VisionTowerBase

#: the transformers config fields that define a ViT's architecture (CLIPVisionConfig's and SiglipVisionConfig's)
VIT_CONFIG_KEYS = (
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_channels",
    "image_size",
    "patch_size",
    "hidden_act",
    "layer_norm_eps",
)


class TransformersVisionTower(VisionTowerBase):
    """A :class:`VisionTowerBase` whose ``self.model`` is a transformers vision model (``model.embeddings``,
    ``model.encoder.layers``, ``model.config``); blocks run as ``block(hidden, None)`` (no attention mask) and
    activation checkpointing is transformers' own.

    Besides :class:`VisionTowerBase`'s declarations (``name``, ``default_mean`` / ``default_std``, ``tiny``,
    ``class_token``) a subclass declares ``model_class`` / ``config_class`` (names in ``transformers``),
    ``architecture_keys``, ``checkpoint`` (what the checkpoint is called in messages: ``"CLIP"``) and, where
    they differ from the defaults, ``config_overrides`` (fixed config fields: SigLIP's ``vision_use_head=False``)
    and ``processor_size_keys``; it overrides :meth:`embed` where the embedding output is more than
    ``model.embeddings(pixels)``.
    """

    model_class: ClassVar[str]
    config_class: ClassVar[str]
    #: config fields every model of this tower is built with (given to the config class, checkpoint or not)
    config_overrides: ClassVar[dict[str, Any]] = {}
    #: the config fields :meth:`architecture` records
    architecture_keys: ClassVar[tuple[str, ...]] = VIT_CONFIG_KEYS
    #: the checkpoint's name in messages (``expected a CLIP checkpoint``)
    checkpoint: ClassVar[str]
    #: ``preprocessor_config.json`` fields holding the processor's output size (the first present must equal
    #: the tower's ``image_size``)
    processor_size_keys: ClassVar[tuple[str, ...]] = ("size",)

    # -- building ---------------------------------------------------------------------------------------------
    @classmethod
    def transformers_classes(cls, model_type: Any = None) -> tuple[Any, Any]:
        """(model class, config class) for a checkpoint's ``model_type`` (default: the declared ones)."""
        import transformers

        return getattr(transformers, cls.model_class), getattr(transformers, cls.config_class)

    @classmethod
    def config_model_type(cls, config: dict[str, Any]) -> Any:
        """The ``model_type`` a ``from_config`` config builds (default: the declared classes')."""
        return None

    @classmethod
    def checkpoint_model_type(cls, source: str) -> Any:
        """The ``model_type`` of a checkpoint, read before loading it (default: the declared classes')."""
        return None

    @classmethod
    def build_model(cls, config: dict[str, Any]) -> nn.Module:
        model_class, config_class = cls.transformers_classes(cls.config_model_type(config))
        return model_class(config_class(**config, **cls.config_overrides))

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
    ) -> TransformersVisionTower:
        """Load from a hub id or a local folder. A full checkpoint (vision + text) works too: only the vision
        weights are taken, and every one of them must be present. The statistics (and whatever else
        :meth:`checkpoint_preprocessing` reads) come from ``preprocessor_config.json`` when the source has one."""
        model_class, config_class = cls.transformers_classes(cls.checkpoint_model_type(source))
        model = load_vision_model(cls.name, source, model_class, config_class, dtype, cls.checkpoint,
                                  **cls.config_overrides)
        return cls._around(model, source, image_size, feature_layer, feature_select, image_aspect, options)

    @classmethod
    def weightless(
        cls,
        source: str,
        feature_layer: int = -2,
        feature_select: FeatureSelect = "patch",
        image_aspect: str = "pad",
        dtype: torch.dtype | str | None = None,
        image_size: int | None = None,
        **options: Any,
    ) -> TransformersVisionTower:
        """:meth:`from_pretrained`'s tower from the source's config (and preprocessor config), no weights read."""
        model_class, config_class = cls.transformers_classes(cls.checkpoint_model_type(source))
        model = model_class(config_class.from_pretrained(source, **cls.config_overrides))
        return cls._around(model, source, image_size, feature_layer, feature_select, image_aspect, options)

    @classmethod
    def _around(
        cls, model: nn.Module, source: str, image_size: int | None, feature_layer: int,
        feature_select: FeatureSelect, image_aspect: str, options: dict[str, Any],
    ) -> TransformersVisionTower:
        """The tower around ``model`` (loaded or weight-free) with the source's preprocessing."""
        preprocessing = cls.checkpoint_preprocessing(source, model.config, image_size)
        return cls(model, feature_layer=feature_layer, feature_select=feature_select, image_aspect=image_aspect,
                   **preprocessing, **image_options(options))

    @classmethod
    def checkpoint_preprocessing(cls, source: str, config: Any, image_size: int | None) -> dict[str, Any]:
        """Constructor arguments from the source's ``preprocessor_config.json`` (default: the statistics, once
        its size is checked against the tower's); ``image_size``: the size a caller asked for, where the tower
        takes one."""
        return cls.processor_statistics(source, config.image_size)

    @classmethod
    def processor_statistics(cls, source: str, image_size: int) -> dict[str, tuple[float, ...]]:
        """``image_mean`` / ``image_std`` of the source's ``preprocessor_config.json`` (empty without one); its
        size (the first of ``processor_size_keys`` present) must be ``image_size``."""
        found = read_preprocessor(source)
        if found is None:
            return {}
        processor, path = found
        key = next((key for key in cls.processor_size_keys if processor.get(key) is not None), None)
        side = square_side(processor.get(key), path, key) if key else None
        if side is not None and side != image_size:
            raise PluginError(f"{path}: {key} {side} does not match the vision tower's image_size {image_size}")
        mean, std = image_statistics(processor, path, cls.default_mean, cls.default_std)
        return {"image_mean": mean, "image_std": std}

    def architecture(self) -> dict[str, Any]:
        return {key: getattr(self.model.config, key) for key in self.architecture_keys}

    # -- shapes and running -----------------------------------------------------------------------------------
    @property
    def hidden_size(self) -> int:
        return self.model.config.hidden_size

    @property
    def patch_size(self) -> int:
        return self.model.config.patch_size

    @property
    def image_size(self) -> int:
        return self.model.config.image_size

    @property
    def blocks(self) -> Sequence[nn.Module]:
        return self.model.encoder.layers

    @property
    def input_dtype(self) -> torch.dtype:
        return self.model.dtype

    def embed(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model.embeddings(pixel_values)

    def run_block(self, block: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
        return block(hidden, None)

    def set_gradient_checkpointing(self, enabled: bool) -> None:
        set_activation_checkpointing(self.model, enabled)
