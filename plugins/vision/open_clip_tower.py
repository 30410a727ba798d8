"""Any open_clip model's vision tower: the BiomedCLIP family, PMC-trained CLIPs, LAION / OpenAI CLIPs, ...

Only the vision tower is built, with open_clip's own factory for it (``open_clip.model._build_vision_tower`` from
the checkpoint's ``model_cfg``), and only the checkpoint's ``visual.*`` weights are loaded (strictly): the text
tower is never instantiated. Both kinds of tower work: a timm trunk (``vision_cfg.timm_model_name``, BiomedCLIP)
runs through :mod:`medzoo.plugins.vision.vit_trunk`; open_clip's native ``VisionTransformer`` runs its
``_embeds`` and then its blocks up to ``feature_layer`` (hidden states numbered like CLIP's, ``ln_post``, the
pooling and the projection never applied). ResNet towers (``ModifiedResNet``) give no patch tokens and are
refused.

Preprocessing (``preprocess``): ``open_clip`` (default) is open_clip's own eval transform with the checkpoint's
``preprocess_cfg``; ``clip`` is the CLIP image processor's arithmetic with the same mean / std.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from medzoo.core.checked_reads import first_line, shape_mismatch
from medzoo.core.errors import PluginError, RecipeError, did_you_mean
from medzoo.core.interfaces.vision_encoder import FeatureSelect, VisionEncoder
from medzoo.core.model.image_processing import ImageTransform
from medzoo.plugins.vision import (
    OPENAI_CLIP_MEAN,
    OPENAI_CLIP_STD,
    blocks_to_run,
    build_image_transform,
    image_options,
)
from medzoo.plugins.vision.clip import resolve_dtype
from medzoo.plugins.vision.tokens import require_class_token, select_tokens
from medzoo.plugins.vision.vit_trunk import check_vit_style, run_trunk

OPEN_CLIP_HUB_IDS = (
    "microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224",
    "laion/CLIP-ViT-L-14-laion2B-s32B-b82K",
)
PREPROCESS_MODES = ("open_clip", "clip")
VISUAL_PREFIX = "visual."
# The model_cfg keys the vision tower is built from (the text tower's are dropped).
VISION_MODEL_KEYS = ("embed_dim", "vision_cfg", "quick_gelu")
TRANSFORM_KEYS = ("interpolation", "resize_mode", "fill_color")


class OpenClipVisionEncoder(VisionEncoder):
    """An open_clip vision tower (``visual``); ``forward`` returns hidden state ``feature_layer`` without the
    prefix tokens (``cls_patch`` keeps the class token)."""

    def __init__(
        self,
        visual: nn.Module,
        model_cfg: dict[str, Any],
        image_mean: tuple[float, ...] = OPENAI_CLIP_MEAN,
        image_std: tuple[float, ...] = OPENAI_CLIP_STD,
        feature_layer: int = -2,
        feature_select: FeatureSelect = "patch",
        image_aspect: str = "pad",
        preprocess: str = "open_clip",
        open_clip_preprocess: dict[str, Any] | None = None,
        **image_preprocessing: Any,
    ):
        super().__init__(feature_layer, feature_select, image_aspect)
        from open_clip.timm_model import TimmModel
        from open_clip.transformer import VisionTransformer

        if preprocess not in PREPROCESS_MODES:
            raise RecipeError(
                f"vision encoder 'open_clip': preprocess must be 'open_clip' (open_clip's own transform) or 'clip' "
                f"(the CLIP image processor), got {preprocess!r}"
            )
        self.visual = visual
        self.model_cfg = {key: model_cfg[key] for key in VISION_MODEL_KEYS if key in model_cfg}
        if isinstance(visual, TimmModel):
            self.trunk: nn.Module | None = visual.trunk
            check_vit_style(visual.trunk, "open_clip", str(model_cfg["vision_cfg"].get("timm_model_name")))
            blocks = len(visual.trunk.blocks)
        elif isinstance(visual, VisionTransformer):
            self.trunk = None
            blocks = len(visual.transformer.resblocks)
        else:
            raise PluginError(
                f"vision encoder 'open_clip': the vision tower is a {type(visual).__name__}; expected a ViT "
                "(open_clip VisionTransformer or a timm ViT trunk), which gives patch tokens"
            )
        require_class_token("open_clip", feature_select, self.has_cls_token)
        self.num_blocks = blocks_to_run(feature_layer, blocks, "open_clip")
        self.image_mean = tuple(float(value) for value in image_mean)
        self.image_std = tuple(float(value) for value in image_std)
        self.preprocess = preprocess
        self.open_clip_preprocess = {
            key: value for key, value in (open_clip_preprocess or {}).items() if key in TRANSFORM_KEYS
        }
        self.image_options = image_options(image_preprocessing, encoder="open_clip")
        transform = build_image_transform(
            "open_clip", self.image_size, self.image_mean, self.image_std, image_aspect, self.image_options
        )
        if preprocess == "open_clip":
            from medzoo.plugins.vision.biomedclip import OpenClipImageTransform

            transform = OpenClipImageTransform.wrapping(transform, self.open_clip_preprocess)
        self._transform = transform

    @classmethod
    def from_pretrained(
        cls,
        source: str,
        feature_layer: int = -2,
        feature_select: FeatureSelect = "patch",
        image_aspect: str = "pad",
        dtype: torch.dtype | str | None = None,
        preprocess: str = "open_clip",
        **options: Any,
    ) -> OpenClipVisionEncoder:
        """Load from a hub id (``[hf-hub:]microsoft/BiomedCLIP-...``), a local folder in the hub layout
        (``open_clip_config.json`` + ``open_clip_pytorch_model.bin`` / ``.safetensors``) or a built-in
        architecture with a pretrained tag (``ViT-B-16:openai``); statistics from the ``preprocess_cfg``."""
        model_cfg, preprocess_cfg, weights_path = resolve_checkpoint(source)
        visual = build_visual(model_cfg)
        load_visual_weights(visual, weights_path, source)
        visual = visual.to(resolve_dtype(dtype)).eval()
        return cls(
            visual, model_cfg, tuple(preprocess_cfg["mean"]), tuple(preprocess_cfg["std"]), feature_layer,
            feature_select, image_aspect, preprocess, preprocess_cfg, **image_options(options),
        )

    @classmethod
    def from_config(
        cls,
        config: dict[str, Any],
        feature_layer: int = -2,
        feature_select: FeatureSelect = "patch",
        image_aspect: str = "pad",
        dtype: torch.dtype | str | None = None,
        preprocess: str = "open_clip",
        **options: Any,
    ) -> OpenClipVisionEncoder:
        """Random tower from ``{"model_cfg": {...}}`` (an open_clip config's model_cfg) or ``{"model_name":
        "ViT-B-16", "vision_cfg": {overrides}}`` (a built-in architecture); optional ``image_mean`` /
        ``image_std`` (default OpenAI CLIP's) and ``open_clip_preprocess`` (resize mode, interpolation)."""
        config = dict(config)
        mean = tuple(config.pop("image_mean", OPENAI_CLIP_MEAN))
        std = tuple(config.pop("image_std", OPENAI_CLIP_STD))
        own = config.pop("open_clip_preprocess", None)
        model_cfg = config_model_cfg(config)
        visual = build_visual(model_cfg).to(resolve_dtype(dtype))
        return cls(visual, model_cfg, mean, std, feature_layer, feature_select, image_aspect, preprocess, own,
                   **image_options(options))

    @classmethod
    def tiny_config(cls) -> dict[str, Any]:
        return {
            "model_cfg": {
                "embed_dim": 16,
                "vision_cfg": {"image_size": 32, "patch_size": 8, "width": 32, "layers": 2, "head_width": 8,
                               "mlp_ratio": 2.0},
            }
        }

    def architecture_config(self) -> dict[str, Any]:
        return {
            "model_cfg": self.model_cfg,
            "image_mean": list(self.image_mean),
            "image_std": list(self.image_std),
            **({"open_clip_preprocess": dict(self.open_clip_preprocess)} if self.open_clip_preprocess else {}),
        }

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


def build_visual(model_cfg: dict[str, Any]) -> nn.Module:
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
        raise PluginError(f"vision encoder 'open_clip': model_cfg.vision_cfg does not build: {first_line(error)}") from error


def config_model_cfg(config: dict[str, Any]) -> dict[str, Any]:
    """The model_cfg of a ``from_config`` config: ``model_cfg`` itself, or a built-in ``model_name`` with
    ``vision_cfg`` overrides (and an optional ``embed_dim``)."""
    if isinstance(config.get("model_cfg"), dict):
        return dict(config["model_cfg"])
    name = config.get("model_name")
    if not isinstance(name, str):
        raise RecipeError(
            "vision encoder 'open_clip': config needs 'model_cfg' (an open_clip model_cfg) or 'model_name' "
            "(a built-in architecture such as ViT-B-16)"
        )
    model_cfg = builtin_model_cfg(name)
    model_cfg["vision_cfg"] = {**model_cfg["vision_cfg"], **(config.get("vision_cfg") or {})}
    for key in ("embed_dim", "quick_gelu"):
        if key in config:
            model_cfg[key] = config[key]
    return model_cfg


def builtin_model_cfg(name: str) -> dict[str, Any]:
    import open_clip

    model_cfg = open_clip.get_model_config(name)
    if model_cfg is None:
        raise RecipeError(
            f"vision encoder 'open_clip': unknown open_clip architecture {name!r}"
            f"{did_you_mean(name, open_clip.list_models())}"
        )
    return {key: model_cfg[key] for key in VISION_MODEL_KEYS if key in model_cfg}


def resolve_checkpoint(source: str) -> tuple[dict[str, Any], dict[str, Any], Path]:
    """(model_cfg, preprocess_cfg, weights file) of a hub-layout folder, a hub id or ``architecture:tag``."""
    from open_clip.transform import PreprocessCfg, merge_preprocess_dict

    from medzoo.plugins.vision.biomedclip import locate_checkpoint, read_open_clip_config

    name, _, tag = source.partition(":")
    if tag and name not in ("hf-hub", "local-dir") and "/" not in name and not Path(source).is_dir():
        return builtin_checkpoint(name, tag)
    if source.startswith("local-dir:"):
        source = source[len("local-dir:") :]
    config_path, weights_path = locate_checkpoint(source, "open_clip")
    config = read_open_clip_config(config_path)
    vision_cfg = config["model_cfg"].get("vision_cfg")
    if not isinstance(vision_cfg, dict):
        raise PluginError(f"{config_path}: model_cfg has no 'vision_cfg' object; expected an open_clip model config")
    preprocess = merge_preprocess_dict(asdict(PreprocessCfg()), config.get("preprocess_cfg") or {})
    return config["model_cfg"], preprocess, weights_path


def builtin_checkpoint(name: str, tag: str) -> tuple[dict[str, Any], dict[str, Any], Path]:
    """A built-in architecture's model_cfg with a pretrained tag's weights (downloaded) and preprocessing."""
    from open_clip.pretrained import download_pretrained, get_pretrained_cfg, list_pretrained_tags_by_model
    from open_clip.transform import PreprocessCfg, merge_preprocess_dict

    try:
        model_cfg = builtin_model_cfg(name)
    except RecipeError as error:
        raise PluginError(str(error)) from None
    pretrained_cfg = get_pretrained_cfg(name, tag)
    if not pretrained_cfg:
        tags = ", ".join(list_pretrained_tags_by_model(name)) or "none"
        raise PluginError(f"vision encoder 'open_clip': {name!r} has no pretrained tag {tag!r}; expected one of {tags}")
    if pretrained_cfg.get("quick_gelu"):
        model_cfg["quick_gelu"] = True  # trained with QuickGELU (OpenAI's weights)
    try:
        weights = download_pretrained(pretrained_cfg)
    except Exception as error:  # huggingface_hub / urllib raise many types (offline, missing file)
        raise PluginError(
            f"vision encoder 'open_clip': cannot download {name}:{tag} ({type(error).__name__}: {first_line(error)})"
        ) from error
    return model_cfg, merge_preprocess_dict(asdict(PreprocessCfg()), pretrained_cfg), Path(weights)


def load_visual_weights(visual: nn.Module, weights_path: Path, source: str) -> None:
    """The checkpoint's ``visual.*`` tensors into the tower, strictly; a missing or misshapen one is one line."""
    from medzoo.plugins.vision.biomedclip import read_open_clip_weights

    state = read_open_clip_weights(weights_path)
    if "state_dict" in state and isinstance(state["state_dict"], dict):  # a training checkpoint
        state = state["state_dict"]
    state = {key.removeprefix("module."): value for key, value in state.items()}
    own = {key[len(VISUAL_PREFIX) :]: value for key, value in state.items() if key.startswith(VISUAL_PREFIX)}
    if not own:
        raise PluginError(f"{weights_path}: no '{VISUAL_PREFIX}*' weights; expected an open_clip checkpoint")
    expected = {key: tuple(value.shape) for key, value in visual.state_dict().items()}
    mismatch = shape_mismatch(expected, {key: tuple(value.shape) for key, value in own.items()})
    if mismatch:
        key, found, wanted = mismatch
        raise PluginError(
            f"{weights_path}: tensor {VISUAL_PREFIX + key!r} has shape {list(found)}, the vision tower of "
            f"{source!r} expects {list(wanted)}"
        )
    incompatible = visual.load_state_dict(own, strict=False)
    if incompatible.missing_keys or incompatible.unexpected_keys:
        raise PluginError(
            f"{weights_path}: the {VISUAL_PREFIX}* weights do not fit the vision tower of {source!r} "
            f"(missing {list(incompatible.missing_keys)[:3]}, unexpected {list(incompatible.unexpected_keys)[:3]})"
        )
