"""A base for vision towers that run one network of transformer blocks up to ``feature_layer``: what such a
tower declares, and everything it then inherits (statistics, options, transform, feature selection, rebuilding).
"""

from __future__ import annotations

import copy
from abc import abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from medzoo.core.dtypes import resolve_dtype
from medzoo.core.errors import RecipeError
from medzoo.core.interfaces.vision_encoder import FeatureSelect, VisionEncoder, blocks_to_run
from medzoo.core.model.image_processing import ImageTransform, build_image_transform, image_options

#: the tiny ViT every ViT-style tower's ``tiny_config`` starts from (transformers ``CLIPVisionConfig`` names):
#: 32 px, patch 8 (16 tokens), width 32, 2 blocks of 4 heads
TINY_VIT_CONFIG: dict[str, int] = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "image_size": 32,
    "patch_size": 8,
}


class VisionTowerBase(VisionEncoder):
    """A :class:`VisionEncoder` over one network (``self.model``) whose hidden states are numbered as in
    transformers: 0 is :meth:`embed`'s output, ``i`` the output of block ``i - 1``. ``forward`` runs only the
    blocks up to ``feature_layer`` and applies ``feature_select`` (the prefix tokens dropped, the class token
    kept in front for ``cls_patch``).

    A subclass declares ``name`` (its registered name, in messages), ``default_mean`` / ``default_std``, ``tiny``
    (its ``tiny_config``) and, where they differ from the defaults, ``class_token``, ``preprocessing_keys`` and
    :meth:`transform_arguments`; it implements :meth:`build_model`, :meth:`architecture`, :meth:`embed`,
    :attr:`blocks`, ``hidden_size``, ``image_size``, ``patch_size`` and ``from_pretrained``. Constructor options
    of its own (an input size, ...) are the keyword parameters of its :meth:`configure`.
    """

    #: the registered name, used in error messages
    name: ClassVar[str]
    #: image statistics when neither the config nor the checkpoint gives any
    default_mean: ClassVar[tuple[float, ...]]
    default_std: ClassVar[tuple[float, ...]]
    #: the architecture ``tiny_config`` returns (a copy)
    tiny: ClassVar[dict[str, Any]]
    #: False for a tower without a class token: ``cls_patch`` is then a recipe error, naming ``no_class_token``
    class_token: ClassVar[bool] = True
    no_class_token: ClassVar[str] = ""
    #: config keys that are constructor arguments (preprocessing), not architecture
    preprocessing_keys: ClassVar[tuple[str, ...]] = ("image_mean", "image_std")

    def __init__(
        self,
        model: nn.Module,
        image_mean: Sequence[float] | None = None,
        image_std: Sequence[float] | None = None,
        feature_layer: int = -2,
        feature_select: FeatureSelect = "patch",
        image_aspect: str = "pad",
        **options: Any,
    ):
        super().__init__(feature_layer, feature_select, image_aspect)
        require_class_token(self.name, feature_select, self.has_cls_token, self.no_class_token)
        self.model = model
        self.image_mean = tuple(float(value) for value in (self.default_mean if image_mean is None else image_mean))
        self.image_std = tuple(float(value) for value in (self.default_std if image_std is None else image_std))
        self.gradient_checkpointing = False
        self.configure(**options)
        self.num_blocks = blocks_to_run(feature_layer, len(self.blocks), self.name)
        self._transform = self.build_transform()

    def configure(self, **image_preprocessing: Any) -> None:
        """Take the constructor's remaining options: here the image options (an unknown one is a recipe error);
        a subclass with options of its own takes them as keyword parameters first."""
        self.image_options = image_options(image_preprocessing, encoder=self.name)

    # -- declared by the subclass -----------------------------------------------------------------------------
    @classmethod
    @abstractmethod
    def build_model(cls, config: dict[str, Any]) -> nn.Module:
        """A randomly initialised network for an architecture config (preprocessing keys already removed)."""

    @abstractmethod
    def architecture(self) -> dict[str, Any]:
        """The architecture config :meth:`build_model` rebuilds this network from."""

    @abstractmethod
    def embed(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Hidden state 0, ``[B, prefix + P, D]``, of pixels already in :attr:`input_dtype`."""

    @property
    @abstractmethod
    def blocks(self) -> Sequence[nn.Module]:
        """The transformer blocks, in order."""

    def preprocessing_config(self) -> dict[str, Any]:
        """Constructor arguments besides the statistics that ``architecture_config`` records (default: none)."""
        return {}

    def transform_arguments(self) -> dict[str, Any]:
        """Keyword arguments of :func:`build_image_transform` besides the size, statistics and options."""
        return {}

    # -- inherited --------------------------------------------------------------------------------------------
    @classmethod
    def from_config(
        cls,
        config: dict[str, Any],
        feature_layer: int = -2,
        feature_select: FeatureSelect = "patch",
        image_aspect: str = "pad",
        dtype: torch.dtype | str | None = None,
        **options: Any,
    ) -> VisionTowerBase:
        """Random weights from :meth:`build_model`; the config's ``preprocessing_keys`` (``image_mean`` /
        ``image_std``: default the tower's) go to the constructor."""
        config = dict(config)
        preprocessing = {key: config.pop(key) for key in cls.preprocessing_keys if key in config}
        model = cls.build_model(config).to(resolve_dtype(dtype))
        return cls(model, feature_layer=feature_layer, feature_select=feature_select, image_aspect=image_aspect,
                   **preprocessing, **image_options(options))

    @classmethod
    def tiny_config(cls) -> dict[str, Any]:
        return copy.deepcopy(cls.tiny)

    def architecture_config(self) -> dict[str, Any]:
        return {
            **self.architecture(),
            "image_mean": list(self.image_mean),
            "image_std": list(self.image_std),
            **self.preprocessing_config(),
        }

    def build_transform(self) -> ImageTransform:
        return build_image_transform(self.name, self.image_size, self.image_mean, self.image_std, self.image_aspect,
                                     self.image_options, **self.transform_arguments())

    @property
    def transform(self) -> ImageTransform:
        return self._transform

    @property
    def has_cls_token(self) -> bool:
        return self.class_token

    @property
    def num_prefix_tokens(self) -> int:
        """Tokens before the patches (the class token; register tokens too where there are some)."""
        return 1 if self.has_cls_token else 0

    @property
    def block_class(self) -> type[nn.Module]:
        return type(self.blocks[0])

    @property
    def input_dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        hidden = self.embed(pixel_values.to(self.input_dtype))
        for block in self.blocks[: self.num_blocks]:
            hidden = self.run_block(block, hidden)
        return self.select(hidden)

    def run_block(self, block: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
        if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
            return checkpoint(block, hidden, use_reentrant=False)
        return block(hidden)

    def select(self, hidden: torch.Tensor) -> torch.Tensor:
        keep_cls = self.feature_select == "cls_patch" and self.has_cls_token
        return select_tokens(hidden, self.num_prefix_tokens, keep_cls)

    def set_gradient_checkpointing(self, enabled: bool) -> None:
        self.gradient_checkpointing = enabled


def require_class_token(encoder: str, feature_select: str, has_cls_token: bool, why: str = "") -> None:
    """``cls_patch`` on a tower without a class token is a recipe error (it would silently mean ``patch``)."""
    if feature_select == "cls_patch" and not has_cls_token:
        raise RecipeError(
            f"vision encoder {encoder!r}: feature_select 'cls_patch' needs a class token and this tower has none"
            f"{f' ({why})' if why else ''}; expected feature_select 'patch'"
        )


def select_tokens(hidden: torch.Tensor, num_prefix_tokens: int, keep_cls: bool) -> torch.Tensor:
    """``hidden`` ``[B, prefix + P, D]`` without its prefix tokens (class, registers); ``keep_cls`` puts the
    class token (the first prefix token) back in front."""
    patches = hidden[:, num_prefix_tokens:]
    if keep_cls:
        return torch.cat([hidden[:, :1], patches], dim=1)
    return patches
