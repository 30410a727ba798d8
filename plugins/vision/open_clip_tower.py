"""Any open_clip model's vision tower: the BiomedCLIP family, PMC-trained CLIPs, LAION / OpenAI CLIPs, ...

Only the vision tower is built, with open_clip's own factory for it (``open_clip.model._build_vision_tower`` from
the checkpoint's ``model_cfg``), and only the checkpoint's ``visual.*`` weights are loaded (strictly): the text
tower is never instantiated. Both kinds of tower work: a timm trunk (``vision_cfg.timm_model_name``, BiomedCLIP)
runs through :mod:`medzoo.plugins.vision.vit_trunk`; open_clip's native ``VisionTransformer`` runs its
``_embeds`` and then its blocks up to ``feature_layer`` (hidden states numbered like CLIP's, ``ln_post``, the
pooling and the projection never applied). ResNet towers (``ModifiedResNet``) give no patch tokens and are
refused. ``biomedclip`` (:mod:`medzoo.plugins.vision.biomedclip`) is this tower holding a bare timm trunk.

Preprocessing (``preprocess``): ``open_clip`` (default) is open_clip's own eval transform with the checkpoint's
``preprocess_cfg``; ``clip`` is the CLIP image processor's arithmetic with the same mean / std.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from medzoo import (
    FeatureSelect,
    ImageTransform,
    PluginError,
    RecipeError,
    VisionEncoder,
    blocks_to_run,
    build_image_transform,
    first_line,
    image_options,
    require_class_token,
    resolve_dtype,
    select_tokens,
)
from medzoo.plugins.vision import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
from medzoo.plugins.vision.open_clip_checkpoint import (
    VISION_MODEL_KEYS,
    OpenClipCheckpoint,
    builtin_model_cfg,
    load_prefixed_weights,
    resolve_checkpoint,
)
from medzoo.plugins.vision.open_clip_transform import OPEN_CLIP_TRANSFORM_KEYS, OpenClipImageTransform
from medzoo.plugins.vision.vit_trunk import check_vit_style, run_trunk

OPEN_CLIP_HUB_IDS = (
    "microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224",
    "laion/CLIP-ViT-L-14-laion2B-s32B-b82K",
)


class OpenClipVisionEncoder(VisionEncoder):
    """An open_clip vision tower (``visual``); ``forward`` returns hidden state ``feature_layer`` without the
    prefix tokens (``cls_patch`` keeps the class token).

    The tower runs as a timm trunk (``self.trunk``, when there is one) or as open_clip's native
    ``VisionTransformer`` (``self.visual``). A subclass serving one family (``biomedclip``) declares ``name``,
    ``default_preprocess`` and ``preprocess_modes`` and overrides how the tower is held (:meth:`hold`), built
    (:meth:`build_tower`), loaded (:meth:`load_tower`) and recorded (:meth:`architecture`).
    """

    #: the registered name, used in messages
    name: ClassVar[str] = "open_clip"
    #: ``preprocess`` when none is given
    default_preprocess: ClassVar[str] = "open_clip"
    #: each ``preprocess`` mode and what it is (in the error for another one); ``open_clip`` wraps the transform
    preprocess_modes: ClassVar[dict[str, str]] = {
        "open_clip": "open_clip's own transform",
        "clip": "the CLIP image processor",
    }
    #: the modes that take the checkpoint's statistics and transform settings (the others: CLIP's statistics)
    checkpoint_preprocess_modes: ClassVar[tuple[str, ...]] = ("open_clip", "clip")

    def __init__(
        self,
        visual: nn.Module,
        model_cfg: Any,
        image_mean: tuple[float, ...] = OPENAI_CLIP_MEAN,
        image_std: tuple[float, ...] = OPENAI_CLIP_STD,
        feature_layer: int = -2,
        feature_select: FeatureSelect = "patch",
        image_aspect: str = "pad",
        preprocess: str | None = None,
        open_clip_preprocess: dict[str, Any] | None = None,
        **image_preprocessing: Any,
    ):
        super().__init__(feature_layer, feature_select, image_aspect)
        preprocess = preprocess or self.default_preprocess
        if preprocess not in self.preprocess_modes:
            modes = " or ".join(f"{mode!r} ({what})" for mode, what in self.preprocess_modes.items())
            raise RecipeError(f"vision encoder {self.name!r}: preprocess must be {modes}, got {preprocess!r}")
        blocks = self.hold(visual, model_cfg)
        require_class_token(self.name, feature_select, self.has_cls_token)
        self.num_blocks = blocks_to_run(feature_layer, blocks, self.name)
        self.image_mean = tuple(float(value) for value in image_mean)
        self.image_std = tuple(float(value) for value in image_std)
        self.preprocess = preprocess
        self.open_clip_preprocess = {
            key: value for key, value in (open_clip_preprocess or {}).items() if key in OPEN_CLIP_TRANSFORM_KEYS
        }
        self.image_options = image_options(image_preprocessing, encoder=self.name)
        transform = build_image_transform(
            self.name, self.image_size, self.image_mean, self.image_std, image_aspect, self.image_options
        )
        if preprocess == "open_clip":
            transform = OpenClipImageTransform.wrapping(transform, self.open_clip_preprocess)
        self._transform = transform

    def hold(self, visual: nn.Module, model_cfg: Any) -> int:
        """Keep the tower (``visual``, and ``trunk`` for a timm one) and its model_cfg; the number of blocks."""
        from open_clip.timm_model import TimmModel
        from open_clip.transformer import VisionTransformer

        self.visual = visual
        self.model_cfg = {key: model_cfg[key] for key in VISION_MODEL_KEYS if key in model_cfg}
        if isinstance(visual, TimmModel):
            self.trunk: nn.Module | None = visual.trunk
            check_vit_style(visual.trunk, self.name, str(model_cfg["vision_cfg"].get("timm_model_name")))
            return len(visual.trunk.blocks)
        if isinstance(visual, VisionTransformer):
            self.trunk = None
            return len(visual.transformer.resblocks)
        raise PluginError(
            f"vision encoder {self.name!r}: the vision tower is a {type(visual).__name__}; expected a ViT "
            "(open_clip VisionTransformer or a timm ViT trunk), which gives patch tokens"
        )

    # -- building ---------------------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls,
        source: str,
        feature_layer: int = -2,
        feature_select: FeatureSelect = "patch",
        image_aspect: str = "pad",
        dtype: torch.dtype | str | None = None,
        preprocess: str | None = None,
        **options: Any,
    ) -> OpenClipVisionEncoder:
        """Load from a hub id (``[hf-hub:]microsoft/BiomedCLIP-...``), a local folder in the hub layout
        (``open_clip_config.json`` + ``open_clip_pytorch_model.bin`` / ``.safetensors``) or a built-in
        architecture with a pretrained tag (``ViT-B-16:openai``); statistics from the ``preprocess_cfg`` (for the
        ``checkpoint_preprocess_modes``; CLIP's otherwise)."""
        return cls._from_checkpoint(source, cls.load_tower, feature_layer, feature_select, image_aspect, dtype,
                                    preprocess, **options)

    @classmethod
    def weightless(cls, source: str, *args: Any, **options: Any) -> OpenClipVisionEncoder:
        """:meth:`from_pretrained`'s tower from the checkpoint's config, no weights read."""
        return cls._from_checkpoint(source, cls.unloaded_tower, *args, **options)

    @classmethod
    def _from_checkpoint(
        cls,
        source: str,
        make_tower: Callable[[OpenClipCheckpoint], tuple[nn.Module, Any]],
        feature_layer: int = -2,
        feature_select: FeatureSelect = "patch",
        image_aspect: str = "pad",
        dtype: torch.dtype | str | None = None,
        preprocess: str | None = None,
        **options: Any,
    ) -> OpenClipVisionEncoder:
        found = resolve_checkpoint(source, cls.name)
        visual, model_cfg = make_tower(found)
        visual = visual.to(resolve_dtype(dtype)).eval()
        mean, std, own = OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, None
        if (preprocess or cls.default_preprocess) in cls.checkpoint_preprocess_modes:
            own = found.preprocess_cfg
            mean, std = tuple(own["mean"]), tuple(own["std"])
        return cls(visual, model_cfg, mean, std, feature_layer, feature_select, image_aspect, preprocess, own,
                   **image_options(options))

    @classmethod
    def unloaded_tower(cls, found: OpenClipCheckpoint) -> tuple[nn.Module, Any]:
        """The checkpoint's tower as its config describes it (weights not read) and its model_cfg."""
        return build_visual(found.model_cfg, cls.name), found.model_cfg

    @classmethod
    def load_tower(cls, found: OpenClipCheckpoint) -> tuple[nn.Module, Any]:
        """The checkpoint's tower, its ``visual.*`` weights loaded strictly, and its model_cfg."""
        visual, _ = cls.unloaded_tower(found)
        load_prefixed_weights(visual, found.weights, "visual.", f"the vision tower of {found.source!r}")
        return visual, found.model_cfg

    @classmethod
    def from_config(
        cls,
        config: dict[str, Any],
        feature_layer: int = -2,
        feature_select: FeatureSelect = "patch",
        image_aspect: str = "pad",
        dtype: torch.dtype | str | None = None,
        preprocess: str | None = None,
        **options: Any,
    ) -> OpenClipVisionEncoder:
        """Random tower from :meth:`build_tower`'s config; optional ``image_mean`` / ``image_std`` (default OpenAI
        CLIP's) and ``open_clip_preprocess`` (the open_clip transform's resize mode, interpolation, fill colour)."""
        config = dict(config)
        mean = tuple(config.pop("image_mean", OPENAI_CLIP_MEAN))
        std = tuple(config.pop("image_std", OPENAI_CLIP_STD))
        own = config.pop("open_clip_preprocess", None)
        visual, model_cfg = cls.build_tower(config)
        return cls(visual.to(resolve_dtype(dtype)), model_cfg, mean, std, feature_layer, feature_select, image_aspect,
                   preprocess, own, **image_options(options))

    @classmethod
    def build_tower(cls, config: dict[str, Any]) -> tuple[nn.Module, Any]:
        """``{"model_cfg": {...}}`` (an open_clip config's model_cfg) or ``{"model_name": "ViT-B-16", "vision_cfg":
        {overrides}}`` (a built-in architecture) -> a random tower and its model_cfg."""
        model_cfg = config_model_cfg(config, cls.name)
        return build_visual(model_cfg, cls.name), model_cfg

    @classmethod
    def tiny_config(cls) -> dict[str, Any]:
        return copy.deepcopy(TINY_NATIVE_VIT)

    def architecture(self) -> dict[str, Any]:
        """What :meth:`build_tower` rebuilds the tower from."""
        return {"model_cfg": self.model_cfg}

    def architecture_config(self) -> dict[str, Any]:
        return {
            **self.architecture(),
            "image_mean": list(self.image_mean),
            "image_std": list(self.image_std),
            **({"open_clip_preprocess": dict(self.open_clip_preprocess)} if self.open_clip_preprocess else {}),
        }

    # -- shapes -----------------------------------------------------------------------------------------------
    @property
    def hidden_size(self) -> int:
        return int(self.trunk.embed_dim if self.trunk is not None else self.visual.transformer.width)

    @property
    def image_size(self) -> int:
        size = self.trunk.patch_embed.img_size if self.trunk is not None else self.visual.image_size
        return int(size[0])

    @property
    def patch_size(self) -> int:
        size = self.trunk.patch_embed.patch_size if self.trunk is not None else self.visual.patch_size
        return int(size[0])

    @property
    def has_cls_token(self) -> bool:
        if self.trunk is not None:
            return getattr(self.trunk, "cls_token", None) is not None
        return True  # open_clip's VisionTransformer always prepends class_embedding

    @property
    def num_prefix_tokens(self) -> int:
        return int(self.trunk.num_prefix_tokens) if self.trunk is not None else 1

    @property
    def block_class(self) -> type[nn.Module]:
        blocks = self.trunk.blocks if self.trunk is not None else self.visual.transformer.resblocks
        return type(blocks[0])

    @property
    def transform(self) -> ImageTransform:
        return self._transform

    # -- running ----------------------------------------------------------------------------------------------
    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        if self.trunk is not None:
            hidden = run_trunk(self.trunk, pixel_values, self.num_blocks, self.training)
        else:
            hidden = self.native_hidden(pixel_values)
        return select_tokens(hidden, self.num_prefix_tokens, self.feature_select == "cls_patch")

    def native_hidden(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Hidden state ``num_blocks`` of open_clip's VisionTransformer (``_embeds``: patches, class token,
        positions, ``ln_pre``; then the blocks), batch first."""
        visual = self.visual
        transformer = visual.transformer
        hidden = visual._embeds(pixel_values.to(visual.conv1.weight.dtype))
        batch_first = getattr(transformer, "batch_first", True)
        if not batch_first:
            hidden = hidden.transpose(0, 1)
        for block in transformer.resblocks[: self.num_blocks]:
            if transformer.grad_checkpointing and self.training and torch.is_grad_enabled():
                hidden = checkpoint(block, hidden, use_reentrant=False)
            else:
                hidden = block(hidden)
        return hidden if batch_first else hidden.transpose(0, 1)

    def set_gradient_checkpointing(self, enabled: bool) -> None:
        if self.trunk is not None:
            self.trunk.set_grad_checkpointing(enabled)
        else:
            self.visual.set_grad_checkpointing(enabled)


#: a tiny open_clip native ViT: 32 px, patch 8, width 32, 2 blocks of 4 heads
TINY_NATIVE_VIT = {
    "model_cfg": {
        "embed_dim": 16,
        "vision_cfg": {"image_size": 32, "patch_size": 8, "width": 32, "layers": 2, "head_width": 8, "mlp_ratio": 2.0},
    }
}


def build_visual(model_cfg: dict[str, Any], encoder: str) -> nn.Module:
    """open_clip's vision tower for ``model_cfg`` (no pretrained timm download, no patch dropout: every
    image keeps all its tokens)."""
    from open_clip.model import _build_vision_tower

    vision_cfg = dict(model_cfg.get("vision_cfg") or {})
    vision_cfg["patch_dropout"] = 0.0
    if "timm_model_name" in vision_cfg:
        vision_cfg["timm_model_pretrained"] = False
    try:
        return _build_vision_tower(
            model_cfg.get("embed_dim", 512), vision_cfg, quick_gelu=bool(model_cfg.get("quick_gelu", False))
        )
    except (TypeError, ValueError, RuntimeError, AssertionError) as error:
        raise PluginError(f"vision encoder {encoder!r}: model_cfg.vision_cfg does not build: {first_line(error)}") from error


def config_model_cfg(config: dict[str, Any], encoder: str) -> dict[str, Any]:
    """The model_cfg of a ``from_config`` config: ``model_cfg`` itself, or a built-in ``model_name`` with
    ``vision_cfg`` overrides (and an optional ``embed_dim``)."""
    if isinstance(config.get("model_cfg"), dict):
        return dict(config["model_cfg"])
    name = config.get("model_name")
    if not isinstance(name, str):
        raise RecipeError(
            f"vision encoder {encoder!r}: config needs 'model_cfg' (an open_clip model_cfg) or 'model_name' "
            "(a built-in architecture such as ViT-B-16)"
        )
    model_cfg = builtin_model_cfg(name, encoder)
    model_cfg["vision_cfg"] = {**model_cfg["vision_cfg"], **(config.get("vision_cfg") or {})}
    for key in ("embed_dim", "quick_gelu"):
        if key in config:
            model_cfg[key] = config[key]
    return model_cfg
