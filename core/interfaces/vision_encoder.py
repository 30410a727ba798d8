"""The VisionEncoder interface: pixels -> a sequence of feature vectors."""

from __future__ import annotations

from abc import abstractmethod
from typing import Literal

import torch
from torch import nn

from medzoo.core.errors import RecipeError
from medzoo.core.interfaces.buildable import Buildable
from medzoo.core.interfaces.llava_hf import LlavaHfTower, single_transformers_tower
from medzoo.core.model.image_processing import ImageTransform

FeatureSelect = Literal["patch", "cls_patch"]


class VisionEncoder(nn.Module, Buildable):
    """Encodes ``[B, 3, H, W]`` pixels into ``[B, N, D]`` features of one hidden layer.

    ``feature_layer`` indexes the encoder's hidden states (-2: the penultimate layer, as LLaVA);
    ``feature_select`` is ``patch`` (drop the class token) or ``cls_patch`` (keep it).
    """

    def __init__(self, feature_layer: int = -2, feature_select: FeatureSelect = "patch", image_aspect: str = "pad"):
        super().__init__()
        if feature_select not in ("patch", "cls_patch"):
            raise ValueError(f"feature_select must be 'patch' or 'cls_patch', got {feature_select!r}")
        self.feature_layer = feature_layer
        self.feature_select = feature_select
        self.image_aspect = image_aspect

    @property
    @abstractmethod
    def hidden_size(self) -> int:
        """Feature dimension D."""

    @property
    @abstractmethod
    def image_size(self) -> int:
        """Input side length in pixels."""

    @property
    @abstractmethod
    def patch_size(self) -> int:
        """Patch side length in pixels."""

    @property
    def has_cls_token(self) -> bool:
        return True

    @property
    def input_channels(self) -> int:
        """Channels of the pixels ``forward`` takes: 3 (RGB), or more for an encoder that takes several towers'
        pixels stacked on the channel axis (``fusion``: 3 per tower)."""
        return 3

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    @property
    def num_tokens(self) -> int:
        """Number of feature vectors per image after selection."""
        keep_cls = self.feature_select == "cls_patch" and self.has_cls_token
        return self.num_patches + (1 if keep_cls else 0)

    @property
    @abstractmethod
    def block_class(self) -> type[nn.Module]:
        """The transformer block class (FSDP wrap unit, gradient-checkpointing unit)."""

    @property
    def block_classes(self) -> tuple[type[nn.Module], ...]:
        """Every block class the encoder holds (several for a fusion of towers); FSDP wraps each."""
        return (self.block_class,)

    @property
    @abstractmethod
    def transform(self) -> ImageTransform:
        """PIL image -> pixel tensor for this encoder."""

    @abstractmethod
    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``[B, 3, H, W] -> [B, num_tokens, hidden_size]``."""

    def select(self, hidden: torch.Tensor) -> torch.Tensor:
        """Apply ``feature_select`` to one layer's hidden states ``[B, 1 + P, D]``."""
        if self.feature_select == "patch" and self.has_cls_token:
            return hidden[:, 1:]
        return hidden

    def set_gradient_checkpointing(self, enabled: bool) -> None:  # noqa: B027 - optional override
        """Enable activation checkpointing where the backbone supports it."""

    def llava_hf_export(self, name: str) -> LlavaHfTower:
        """This encoder as llava-hf's vision tower (``name``: its registered name, for the refusal), or
        :class:`~medzoo.core.errors.ExportRefused` in one line saying why it cannot be one.

        Default: the encoder holds exactly one transformers model that AutoModel rebuilds from its config, and
        its features are that model's ``hidden_states[feature_layer]`` with ``feature_select`` applied
        (:func:`~medzoo.core.interfaces.llava_hf.single_transformers_tower`); the exporter checks the features
        on a probe image whatever this returns. Override it to refuse, or to name the model another way.
        """
        return single_transformers_tower(self, name)


def blocks_to_run(feature_layer: int, num_blocks: int, encoder: str) -> int:
    """How many transformer blocks produce hidden state ``feature_layer``.

    Hidden states are numbered as in transformers' ``output_hidden_states``: index 0 is the embedding output
    and index ``i`` the output of block ``i - 1``, so there are ``num_blocks + 1`` of them and -2 (LLaVA's
    choice) is the output of the penultimate block.
    """
    count = num_blocks + 1
    if not -count <= feature_layer < count:
        raise RecipeError(
            f"vision encoder {encoder!r}: feature_layer {feature_layer} is out of range for {num_blocks} blocks; "
            f"expected an integer from {-count} to {num_blocks}"
        )
    return feature_layer % count
