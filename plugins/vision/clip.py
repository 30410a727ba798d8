"""CLIP ViT vision tower (transformers ``CLIPVisionModel``) giving one hidden layer's features, as LLaVA does."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import CLIPVisionConfig, CLIPVisionModel
from transformers.models.clip.modeling_clip import CLIPEncoderLayer
from transformers.utils import cached_file

from medzoo.core.checked_reads import check_checkpoint_folder, read_json
from medzoo.core.dtypes import DTYPE_NAMES, torch_dtype
from medzoo.core.errors import PluginError
from medzoo.core.interfaces.vision_encoder import FeatureSelect
from medzoo.core.model.activation_checkpointing import set_activation_checkpointing
from medzoo.core.model.image_processing import ImageTransform
from medzoo.plugins.vision import (
    OPENAI_CLIP_MEAN,
    OPENAI_CLIP_STD,
    blocks_to_run,
    build_image_transform,
    image_options,
)
from medzoo.plugins.vision.transformers_tower import TransformersVisionTower

PREPROCESSOR_FILE = "preprocessor_config.json"
# The CLIPVisionConfig fields that define the architecture (what ``architecture_config`` returns).
ARCHITECTURE_KEYS = (
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


class ClipVisionEncoder(TransformersVisionTower):
    """A CLIP vision tower; ``forward`` returns ``hidden_states[feature_layer]`` after ``feature_select``.

    Only the blocks up to ``feature_layer`` run, so the features equal LLaVA's
    ``CLIPVisionModel(..., output_hidden_states=True).hidden_states[-2][:, 1:]`` without keeping every layer.

    Images are preprocessed as transformers' (PIL) ``CLIPImageProcessor`` after LLaVA's optional
    ``expand2square``, pixel for pixel; ``image_aspect`` and the options of
    :data:`medzoo.IMAGE_OPTION_DEFAULTS` (``pad_greyscale``, ``pad_offset``, ``pad_seed``,
    ``high_bit_depth``, ``alpha``) choose the lineage's variant (see ``ImageTransform``).
    """

    architecture_keys = ARCHITECTURE_KEYS

    def __init__(
        self,
        model: CLIPVisionModel,
        image_mean: Sequence[float] = OPENAI_CLIP_MEAN,
        image_std: Sequence[float] = OPENAI_CLIP_STD,
        feature_layer: int = -2,
        feature_select: FeatureSelect = "patch",
        image_aspect: str = "pad",
        **image_preprocessing: Any,
    ):
        super().__init__(feature_layer, feature_select, image_aspect)
        self.model = model
        self.image_mean = tuple(float(value) for value in image_mean)
        self.image_std = tuple(float(value) for value in image_std)
        self.num_blocks = blocks_to_run(feature_layer, model.config.num_hidden_layers, "clip")
        self.image_options = image_options(image_preprocessing, encoder="clip")
        self._transform = build_image_transform(
            "clip", self.image_size, self.image_mean, self.image_std, image_aspect, self.image_options
        )

    @classmethod
    def from_pretrained(
        cls,
        source: str,
        feature_layer: int = -2,
        feature_select: FeatureSelect = "patch",
        image_aspect: str = "pad",
        dtype: torch.dtype | str | None = None,
        **options: Any,
    ) -> ClipVisionEncoder:
        """Load from a hub id (``openai/clip-vit-large-patch14-336``) or a local directory.

        A full CLIP checkpoint (text + vision) works too; only the vision weights are taken, and every one of
        them must be present. Image statistics come from ``preprocessor_config.json`` when the source has one.
        """
        local = Path(source)
        if local.is_dir() and not (local / "config.json").is_file():
            raise PluginError(f"{local / 'config.json'}: missing; expected the CLIP checkpoint's config")
        try:
            if local.is_dir():
                check_checkpoint_folder(
                    local, lambda: CLIPVisionModel(CLIPVisionConfig.from_pretrained(local)), PluginError,
                    "CLIP vision weights",
                )
            model, loading = CLIPVisionModel.from_pretrained(
                source, dtype=resolve_dtype(dtype), output_loading_info=True
            )
        except OSError as error:
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise PluginError(f"vision encoder 'clip': cannot load {source!r}: {first_line}") from error
        missing = sorted(loading.get("missing_keys", ()))
        if missing:
            raise PluginError(
                f"vision encoder 'clip': {source!r} lacks {len(missing)} vision-tower weights "
                f"(first: {missing[0]}); expected a CLIP or CLIP-vision checkpoint"
            )
        mean, std = read_image_statistics(source, model.config.image_size)
        return cls(model.eval(), mean, std, feature_layer, feature_select, image_aspect, **image_options(options))

    @classmethod
    def from_config(
        cls,
        config: dict[str, Any],
        feature_layer: int = -2,
        feature_select: FeatureSelect = "patch",
        image_aspect: str = "pad",
        dtype: torch.dtype | str | None = None,
        **options: Any,
    ) -> ClipVisionEncoder:
        """Randomly initialised tower from ``CLIPVisionConfig(**config)``; optional ``image_mean`` / ``image_std``
        keys (default: CLIP's) set the image statistics."""
        config = dict(config)
        mean = config.pop("image_mean", OPENAI_CLIP_MEAN)
        std = config.pop("image_std", OPENAI_CLIP_STD)
        model = CLIPVisionModel(CLIPVisionConfig(**config)).to(resolve_dtype(dtype))
        return cls(model, mean, std, feature_layer, feature_select, image_aspect, **image_options(options))

    @classmethod
    def tiny_config(cls) -> dict[str, Any]:
        return {
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "image_size": 32,
            "patch_size": 8,
        }

    def architecture_config(self) -> dict[str, Any]:
        config = self.config_architecture()
        return {**config, "image_mean": list(self.image_mean), "image_std": list(self.image_std)}

    @property
    def image_size(self) -> int:
        return self.model.config.image_size

    @property
    def block_class(self) -> type[nn.Module]:
        return CLIPEncoderLayer

    @property
    def transform(self) -> ImageTransform:
        return self._transform

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        pixel_values = pixel_values.to(self.model.dtype)
        hidden = self.model.pre_layrnorm(self.model.embeddings(pixel_values))
        for layer in self.model.encoder.layers[: self.num_blocks]:
            hidden = layer(hidden, None)
        return self.select(hidden)

    def set_gradient_checkpointing(self, enabled: bool) -> None:
        set_activation_checkpointing(self.model, enabled)


def resolve_dtype(dtype: torch.dtype | str | None) -> torch.dtype:
    """``None`` -> float32; a name such as ``"bfloat16"`` -> the torch dtype."""
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    try:
        return torch_dtype(str(dtype))
    except KeyError:
        raise PluginError(f"unknown dtype {dtype!r}; expected one of {', '.join(DTYPE_NAMES)}") from None


def read_image_statistics(source: str, image_size: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean and std from the source's ``preprocessor_config.json``, else CLIP's defaults.

    The processor's crop size (or size) must equal the tower's ``image_size``.
    """
    path = cached_file(source, PREPROCESSOR_FILE, _raise_exceptions_for_missing_entries=False)
    if path is None:
        return OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
    processor = read_json(Path(path), PluginError, "an image processor config")
    processor_size = side_length(processor.get("crop_size", processor.get("size")))
    if processor_size is not None and processor_size != image_size:
        raise PluginError(
            f"{path}: crop_size {processor_size} does not match the vision tower's image_size {image_size}"
        )
    mean = tuple(processor.get("image_mean", OPENAI_CLIP_MEAN))
    std = tuple(processor.get("image_std", OPENAI_CLIP_STD))
    if len(mean) != 3 or len(std) != 3:
        raise PluginError(f"{path}: image_mean and image_std must hold 3 values each")
    return mean, std


def side_length(size: Any) -> int | None:
    """The square side of an image-processor size entry (int, or a dict of height/width/shortest_edge)."""
    if isinstance(size, int):
        return size
    if isinstance(size, dict):
        for key in ("height", "shortest_edge", "width"):
            if isinstance(size.get(key), int):
                return size[key]
    return None
