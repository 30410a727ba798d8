"""Any timm ViT-style tower by name: ``vit_large_patch14_clip_336.openai``, ``timm/vit_so400m_patch14_siglip_384``,
``hf-hub:timm/vit_large_patch14_reg4_dinov2.lvd142m`` (prismatic's towers), EVA-02, ...

Hidden states are numbered like CLIP's (0: the embedding output, ``i``: the output of block ``i - 1``), the final
norm and the pooling head are never applied, and ``patch`` drops every prefix token (class and register tokens);
``cls_patch`` keeps the class token and is a :class:`RecipeError` for a model without one (SigLIP's).

Preprocessing is timm's own eval transform with the model's ``pretrained_cfg`` (mean, std, ``crop_pct``,
interpolation, crop mode), as ``timm.data.create_transform(**resolve_data_config(model=...))``, behind medzoo's
``image_aspect`` (``pad``: LLaVA's ``expand2square`` first) and image-mode options.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from medzoo import (
    FeatureSelect,
    ImageTransform,
    PluginError,
    RecipeError,
    VisionEncoder,
    blocks_to_run,
    build_image_transform,
    check_safetensors,
    did_you_mean,
    first_line,
    image_options,
    read_json,
    require_class_token,
    resolve_dtype,
    safetensors_shapes,
    select_tokens,
    shape_mismatch,
)
from medzoo.plugins.vision.timm_transform import (
    TIMM_TRANSFORM_KEYS,
    TimmImageTransform,
    timm_transform_settings,
)
from medzoo.plugins.vision.vit_trunk import check_vit_style, is_timm_vision_transformer, run_trunk

TIMM_HUB_IDS = (
    "timm/vit_large_patch14_clip_336.openai",
    "timm/vit_so400m_patch14_siglip_384.webli",
    "timm/vit_large_patch14_reg4_dinov2.lvd142m",
)
# timm's save-for-hub layout (``timm.models.save_for_hf`` / ``push_to_hf_hub``), in timm's order of preference.
TIMM_WEIGHTS = ("model.safetensors", "pytorch_model.bin")
PREPROCESSING_KEYS = ("image_mean", "image_std", *TIMM_TRANSFORM_KEYS)
# Reconstruction arguments that are not architecture (the head is always removed here).
NOT_ARCHITECTURE = ("num_classes", "global_pool")


class TimmVisionEncoder(VisionEncoder):
    """A timm ViT-style trunk; ``forward`` returns hidden state ``feature_layer`` without the prefix tokens."""

    def __init__(
        self,
        trunk: nn.Module,
        model_name: str,
        model_args: dict[str, Any] | None = None,
        image_mean: tuple[float, ...] | None = None,
        image_std: tuple[float, ...] | None = None,
        transform_settings: dict[str, Any] | None = None,
        feature_layer: int = -2,
        feature_select: FeatureSelect = "patch",
        image_aspect: str = "pad",
        **image_preprocessing: Any,
    ):
        super().__init__(feature_layer, feature_select, image_aspect)
        check_vit_style(trunk, "timm", model_name)
        self.trunk = trunk
        require_class_token("timm", feature_select, self.has_cls_token, f"timm model {model_name!r}")
        self.model_name = model_name
        self.model_args = dict(model_args or {})
        pretrained_cfg = dict(getattr(trunk, "pretrained_cfg", None) or {})
        self.image_mean = tuple(float(value) for value in (image_mean or pretrained_cfg.get("mean", (0.5,) * 3)))
        self.image_std = tuple(float(value) for value in (image_std or pretrained_cfg.get("std", (0.5,) * 3)))
        self.transform_settings = {**timm_transform_settings(pretrained_cfg), **(transform_settings or {})}
        self.num_blocks = blocks_to_run(feature_layer, len(trunk.blocks), "timm")
        if self.num_blocks == 0 and not is_timm_vision_transformer(trunk):
            raise RecipeError(
                f"vision encoder 'timm': feature_layer {feature_layer} is the embedding output, which "
                f"{type(trunk).__name__} does not expose; expected a block's output"
            )
        self.image_options = image_options(image_preprocessing, encoder="timm")
        transform = build_image_transform(
            "timm", self.image_size, self.image_mean, self.image_std, image_aspect, self.image_options
        )
        self._transform = TimmImageTransform.wrapping(transform, self.transform_settings)

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
    ) -> TimmVisionEncoder:
        """Load from a timm name with a pretrained tag (``vit_large_patch14_clip_336.openai``), a hub id
        (``[hf-hub:]timm/...``) or a local folder in timm's hub layout (``config.json`` + ``model.safetensors``);
        the head is removed (``num_classes=0``) and the statistics come from the model's ``pretrained_cfg``.
        ``image_size`` builds the model at another input size, timm resampling the position embeddings as it
        loads them (prismatic's DINOv2 at 224 or 384 px)."""
        trunk = create_pretrained_trunk(source, image_size)
        model_args = reconstruction_args(trunk)
        name = trunk.pretrained_cfg.get("architecture") or source
        trunk = trunk.to(resolve_dtype(dtype)).eval()
        return cls(trunk, name, model_args, None, None, None, feature_layer, feature_select, image_aspect,
                   **image_options(options))

    @classmethod
    def from_config(
        cls,
        config: dict[str, Any],
        feature_layer: int = -2,
        feature_select: FeatureSelect = "patch",
        image_aspect: str = "pad",
        dtype: torch.dtype | str | None = None,
        **options: Any,
    ) -> TimmVisionEncoder:
        """Random trunk: ``timm.create_model(config["model_name"], num_classes=0, **overrides)`` with the other keys
        as overrides (``img_size``, ``patch_size``, ``embed_dim``, ``depth``, ``num_heads``, ``reg_tokens``, ...);
        optional ``image_mean`` / ``image_std`` / ``crop_pct`` / ``interpolation`` / ``crop_mode`` (default:
        the architecture's pretrained_cfg) set the preprocessing."""
        overrides = dict(config)
        preprocessing = {key: overrides.pop(key) for key in PREPROCESSING_KEYS if key in overrides}
        name = overrides.pop("model_name", None)
        trunk = create_random_trunk(name, overrides).to(resolve_dtype(dtype))
        mean, std = preprocessing.pop("image_mean", None), preprocessing.pop("image_std", None)
        return cls(trunk, name, overrides, mean, std, preprocessing, feature_layer, feature_select, image_aspect,
                   **image_options(options))

    @classmethod
    def tiny_config(cls) -> dict[str, Any]:
        return {
            "model_name": "vit_small_patch16_224",
            "img_size": 32,
            "patch_size": 8,
            "embed_dim": 32,
            "depth": 2,
            "num_heads": 4,
            "mlp_ratio": 2.0,
        }

    def architecture_config(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            **self.model_args,
            "image_mean": list(self.image_mean),
            "image_std": list(self.image_std),
            **self.transform_settings,
        }

    @property
    def hidden_size(self) -> int:
        return int(self.trunk.embed_dim)

    @property
    def image_size(self) -> int:
        return int(self.trunk.patch_embed.img_size[0])

    @property
    def patch_size(self) -> int:
        return int(self.trunk.patch_embed.patch_size[0])

    @property
    def has_cls_token(self) -> bool:
        return getattr(self.trunk, "cls_token", None) is not None

    @property
    def block_class(self) -> type[nn.Module]:
        return type(self.trunk.blocks[0])

    @property
    def transform(self) -> ImageTransform:
        return self._transform

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        hidden = run_trunk(self.trunk, pixel_values, self.num_blocks, self.training)
        keep_cls = self.feature_select == "cls_patch"
        return select_tokens(hidden, self.trunk.num_prefix_tokens, keep_cls)

    def set_gradient_checkpointing(self, enabled: bool) -> None:
        self.trunk.set_grad_checkpointing(enabled)


def timm_model_name(source: str) -> tuple[str, Path | None]:
    """timm's name for a source (``local-dir:<folder>``, ``hf-hub:<id>`` or a registry name) and the folder."""
    folder = Path(source).expanduser()
    if folder.is_dir():
        return f"local-dir:{folder}", folder
    if source.startswith(("hf-hub:", "local-dir:")):
        return source, None
    if "/" in source:
        return f"hf-hub:{source}", None
    return source, None


def create_pretrained_trunk(source: str, image_size: int | None = None) -> nn.Module:
    """``timm.create_model(source, pretrained=True, num_classes=0[, img_size=image_size])``; a bad folder or file
    is one line naming it (its tensors are checked against its own config, before any resize)."""
    import timm

    name, folder = timm_model_name(source)
    weights = None
    if folder is not None:
        config_path = folder / "config.json"
        if not config_path.is_file():
            raise PluginError(f"{config_path}: missing; expected timm's model config (save_for_hf layout)")
        if not isinstance(read_json(config_path, PluginError, "a timm model config").get("architecture"), str):
            raise PluginError(f"{config_path}: no 'architecture' string; expected timm's model config")
        weights = next((folder / file for file in TIMM_WEIGHTS if (folder / file).is_file()), None)
        if weights is None:
            raise PluginError(f"{folder}: no timm weights; expected one of {', '.join(TIMM_WEIGHTS)}")
        if weights.suffix == ".safetensors":
            check_weight_shapes(name, weights, config_path)
    size = {} if image_size is None else {"img_size": int(image_size)}
    try:
        return timm.create_model(name, pretrained=True, num_classes=0, **size)
    except Exception as error:  # timm and huggingface_hub raise many types (offline, missing, unknown, mismatch)
        where = weights or source
        raise PluginError(f"vision encoder 'timm': cannot load {str(where)!r}: {first_line(error)}") from error


def check_weight_shapes(name: str, weights: Path, config_path: Path) -> None:
    """Every tensor of a saved timm safetensors file has the shape the folder's config builds (checked on the
    meta device, before timm's loader, which would try to resample a wrong position embedding)."""
    import timm

    check_safetensors(weights, PluginError, "timm weights")
    with torch.device("meta"):
        skeleton = timm.create_model(name, pretrained=False, num_classes=0)
    expected = {key: tuple(value.shape) for key, value in skeleton.state_dict().items()}
    mismatch = shape_mismatch(expected, safetensors_shapes(weights))
    if mismatch:
        key, found, wanted = mismatch
        raise PluginError(
            f"{weights}: tensor {key!r} has shape {list(found)}, the architecture in {config_path} expects "
            f"{list(wanted)}"
        )


def create_random_trunk(name: Any, overrides: dict[str, Any]) -> nn.Module:
    import timm

    if not isinstance(name, str) or not name:
        raise RecipeError("vision encoder 'timm': config needs 'model_name' (a timm model such as vit_base_patch16_224)")
    if not timm.is_model(name.split(".")[0]):
        suggestion = did_you_mean(name, timm.list_models("*vit*"))
        raise RecipeError(f"vision encoder 'timm': config key 'model_name': unknown timm model {name!r}{suggestion}")
    try:
        return timm.create_model(name, pretrained=False, num_classes=0, **overrides)
    except TypeError as error:
        raise RecipeError(f"vision encoder 'timm': config for {name!r}: {first_line(error)}") from error


def reconstruction_args(trunk: nn.Module) -> dict[str, Any]:
    """The ``create_model`` arguments that rebuild this architecture (timm's own record, as its save_for_hf)."""
    from timm.models._input import get_model_args

    args = get_model_args(trunk)
    return {key: list(value) if isinstance(value, tuple) else value for key, value in args.items()
            if key not in NOT_ARCHITECTURE}
