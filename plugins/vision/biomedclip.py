"""BiomedCLIP's vision tower: the timm ViT trunk of an open_clip checkpoint (``model.visual.trunk``).

Only the vision tower is built: the open_clip config names the timm model, the checkpoint's
``visual.trunk.*`` weights are loaded strictly, and the text tower (PubMedBERT) is never instantiated,
so loading needs neither its config nor its weights.

Preprocessing (``preprocess``): ``clip`` (default) is what LLaVA-Med v1.0 used for BiomedCLIP,
``CLIPImageProcessor.from_pretrained("openai/clip-vit-base-patch16")`` (shortest edge to the tower's 224 px,
bicubic, centre crop, OpenAI CLIP mean / std; ``llava/model/llava.py`` ``initialize_vision_modules_from_biomed_clip``
and ``llava/eval/model_vqa_med.py`` at v1.0.0), whatever the open_clip config says; ``open_clip`` is open_clip's
own eval transform with the checkpoint's ``preprocess_cfg`` (what ``create_model_and_transforms`` returns).
"""

from __future__ import annotations

import pickle
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from PIL import Image
from safetensors import SafetensorError
from torch import nn

from medzoo.core.checked_reads import check_safetensors, first_line, read_json, shape_mismatch
from medzoo.core.errors import PluginError, RecipeError
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
from medzoo.plugins.vision.tokens import select_tokens
from medzoo.plugins.vision.vit_trunk import run_trunk

if TYPE_CHECKING:  # timm and open_clip are imported where a tower is built (seconds of import time)
    from timm.models.vision_transformer import VisionTransformer

BIOMEDCLIP_HUB_ID = "microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224"
HF_HUB_PREFIX = "hf-hub:"
OPEN_CLIP_CONFIG = "open_clip_config.json"
# open_clip's own preference order for weights in a hub-layout directory.
WEIGHT_FILES = (
    "open_clip_model.safetensors",
    "open_clip_pytorch_model.safetensors",
    "open_clip_pytorch_model.bin",
    "open_clip_pytorch_model.pth",
)
TRUNK_PREFIX = "visual.trunk."
PREPROCESS_MODES = ("clip", "open_clip")
# The open_clip preprocess_cfg keys the open_clip transform uses besides mean / std (kept with the architecture).
OPEN_CLIP_TRANSFORM_KEYS = ("interpolation", "resize_mode", "fill_color")


class BiomedClipVisionEncoder(VisionEncoder):
    """A timm ViT trunk; ``forward`` returns the output of hidden state ``feature_layer`` after selection.

    Hidden states are numbered like CLIP's: 0 is the embedding output (after ``norm_pre``), ``i`` the output
    of block ``i - 1``; -2 is the penultimate block. The final ``norm`` is never applied, as in LLaVA.
    """

    def __init__(
        self,
        trunk: VisionTransformer,
        timm_model_name: str,
        image_mean: tuple[float, ...] = OPENAI_CLIP_MEAN,
        image_std: tuple[float, ...] = OPENAI_CLIP_STD,
        feature_layer: int = -2,
        feature_select: FeatureSelect = "patch",
        image_aspect: str = "pad",
        preprocess: str = "clip",
        open_clip_preprocess: dict[str, Any] | None = None,
        **image_preprocessing: Any,
    ):
        from timm.models.vision_transformer import VisionTransformer

        super().__init__(feature_layer, feature_select, image_aspect)
        if not isinstance(trunk, VisionTransformer):
            raise PluginError(
                f"vision encoder 'biomedclip': timm model {timm_model_name!r} is a {type(trunk).__name__}; "
                "expected a timm VisionTransformer"
            )
        if preprocess not in PREPROCESS_MODES:
            raise RecipeError(
                f"vision encoder 'biomedclip': preprocess must be 'clip' (LLaVA-Med v1.0's CLIP processor) or "
                f"'open_clip' (open_clip's own transform), got {preprocess!r}"
            )
        self.trunk = trunk
        self.timm_model_name = timm_model_name
        self.image_mean = tuple(float(value) for value in image_mean)
        self.image_std = tuple(float(value) for value in image_std)
        self.num_blocks = blocks_to_run(feature_layer, len(trunk.blocks), "biomedclip")
        self.preprocess = preprocess
        self.open_clip_preprocess = {
            key: value for key, value in (open_clip_preprocess or {}).items() if key in OPEN_CLIP_TRANSFORM_KEYS
        }
        self.image_options = image_options(image_preprocessing, encoder="biomedclip")
        transform = build_image_transform(
            "biomedclip", self.image_size, self.image_mean, self.image_std, image_aspect, self.image_options
        )
        if preprocess == "open_clip":
            transform = OpenClipImageTransform.wrapping(transform, self.open_clip_preprocess)
        self._transform = transform

    @classmethod
    def from_pretrained(
        cls,
        source: str = BIOMEDCLIP_HUB_ID,
        feature_layer: int = -2,
        feature_select: FeatureSelect = "patch",
        image_aspect: str = "pad",
        dtype: torch.dtype | str | None = None,
        preprocess: str = "clip",
        **options: Any,
    ) -> BiomedClipVisionEncoder:
        """Load from a hub id (``[hf-hub:]microsoft/BiomedCLIP-...``) or a local directory in the hub layout
        (``open_clip_config.json`` plus ``open_clip_pytorch_model.bin`` or ``.safetensors``).

        ``preprocess='clip'`` normalises with the OpenAI CLIP statistics of LLaVA-Med v1.0's processor;
        ``'open_clip'`` with the checkpoint's ``preprocess_cfg`` (and its resize mode and interpolation)."""
        import timm
        from open_clip.factory import merge_preprocess_dict
        from open_clip.transform import PreprocessCfg
        from timm.layers import to_2tuple

        config_path, weights_path = locate_checkpoint(source)
        config = read_open_clip_config(config_path)
        vision = config["model_cfg"].get("vision_cfg", {})
        name = vision.get("timm_model_name")
        if not name:
            raise PluginError(
                f"{config_path}: model_cfg.vision_cfg has no timm_model_name; "
                "biomedclip needs an open_clip model whose vision tower is a timm ViT"
            )
        trunk = timm.create_model(name, pretrained=False, num_classes=0)
        declared_size = to_2tuple(vision.get("image_size", trunk.patch_embed.img_size))
        if tuple(declared_size) != tuple(trunk.patch_embed.img_size):
            raise PluginError(
                f"{config_path}: vision_cfg.image_size {declared_size[0]} differs from timm {name!r}'s input size "
                f"{trunk.patch_embed.img_size[0]}"
            )
        state = read_open_clip_weights(weights_path)
        trunk_state = {
            key[len(TRUNK_PREFIX) :]: value for key, value in state.items() if key.startswith(TRUNK_PREFIX)
        }
        if not trunk_state:
            raise PluginError(
                f"{weights_path}: no '{TRUNK_PREFIX}*' weights; expected an open_clip checkpoint"
            )
        expected = {key: tuple(value.shape) for key, value in trunk.state_dict().items()}
        mismatch = shape_mismatch(expected, {key: tuple(value.shape) for key, value in trunk_state.items()})
        if mismatch:
            key, found, wanted = mismatch
            raise PluginError(
                f"{weights_path}: tensor {TRUNK_PREFIX + key!r} has shape {list(found)}, timm {name!r} "
                f"in {config_path.name} expects {list(wanted)}"
            )
        incompatible = trunk.load_state_dict(trunk_state, strict=False)
        if incompatible.missing_keys or incompatible.unexpected_keys:
            raise PluginError(
                f"{weights_path}: the {TRUNK_PREFIX}* weights do not fit timm {name!r} "
                f"(missing {list(incompatible.missing_keys)[:3]}, unexpected {list(incompatible.unexpected_keys)[:3]})"
            )
        trunk = trunk.to(resolve_dtype(dtype)).eval()
        mean, std, own = OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, None
        if preprocess == "open_clip":
            own = merge_preprocess_dict(asdict(PreprocessCfg()), config.get("preprocess_cfg", {}))
            mean, std = tuple(own["mean"]), tuple(own["std"])
        return cls(
            trunk,
            name,
            mean,
            std,
            feature_layer,
            feature_select,
            image_aspect,
            preprocess,
            own,
            **image_options(options),
        )

    @classmethod
    def from_config(
        cls,
        config: dict[str, Any],
        feature_layer: int = -2,
        feature_select: FeatureSelect = "patch",
        image_aspect: str = "pad",
        dtype: torch.dtype | str | None = None,
        preprocess: str = "clip",
        **options: Any,
    ) -> BiomedClipVisionEncoder:
        """Random trunk: ``timm.create_model(config["timm_model_name"], **overrides)`` where the overrides are
        the other keys (``img_size``, ``patch_size``, ``embed_dim``, ``depth``, ``num_heads``, ``mlp_ratio``);
        optional ``image_mean`` / ``image_std`` keys (default: CLIP's, as BiomedCLIP) set the image statistics
        and ``open_clip_preprocess`` the open_clip transform's resize mode / interpolation / fill colour."""
        overrides = dict(config)
        mean = overrides.pop("image_mean", OPENAI_CLIP_MEAN)
        std = overrides.pop("image_std", OPENAI_CLIP_STD)
        own = overrides.pop("open_clip_preprocess", None)
        name = overrides.pop("timm_model_name", None)
        if not name:
            raise PluginError(
                "vision encoder 'biomedclip': config needs 'timm_model_name' (e.g. vit_base_patch16_224)"
            )
        import timm

        trunk = timm.create_model(name, pretrained=False, num_classes=0, **overrides)
        trunk = trunk.to(resolve_dtype(dtype))
        return cls(
            trunk,
            name,
            tuple(mean),
            tuple(std),
            feature_layer,
            feature_select,
            image_aspect,
            preprocess,
            own,
            **image_options(options),
        )

    @classmethod
    def tiny_config(cls) -> dict[str, Any]:
        return {
            "timm_model_name": "vit_base_patch16_224",
            "img_size": 32,
            "patch_size": 8,
            "embed_dim": 32,
            "depth": 2,
            "num_heads": 4,
            "mlp_ratio": 2.0,
        }

    def architecture_config(self) -> dict[str, Any]:
        first_block = self.trunk.blocks[0]
        return {
            "timm_model_name": self.timm_model_name,
            "img_size": self.image_size,
            "patch_size": self.patch_size,
            "embed_dim": self.hidden_size,
            "depth": len(self.trunk.blocks),
            "num_heads": first_block.attn.num_heads,
            "mlp_ratio": first_block.mlp.fc1.out_features / self.hidden_size,
            "image_mean": list(self.image_mean),
            "image_std": list(self.image_std),
            **({"open_clip_preprocess": dict(self.open_clip_preprocess)} if self.preprocess == "open_clip" else {}),
        }

    @property
    def hidden_size(self) -> int:
        return self.trunk.embed_dim

    @property
    def image_size(self) -> int:
        return int(self.trunk.patch_embed.img_size[0])

    @property
    def patch_size(self) -> int:
        return int(self.trunk.patch_embed.patch_size[0])

    @property
    def has_cls_token(self) -> bool:
        return self.trunk.cls_token is not None

    @property
    def block_class(self) -> type[nn.Module]:
        return type(self.trunk.blocks[0])

    @property
    def transform(self) -> ImageTransform:
        return self._transform

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.select(run_trunk(self.trunk, pixel_values, self.num_blocks, self.training))

    def select(self, hidden: torch.Tensor) -> torch.Tensor:
        """Drop every prefix token (class and register tokens); ``cls_patch`` puts the class token back in front."""
        keep_cls = self.feature_select == "cls_patch" and self.has_cls_token
        return select_tokens(hidden, self.trunk.num_prefix_tokens, keep_cls)

    def set_gradient_checkpointing(self, enabled: bool) -> None:
        self.trunk.set_grad_checkpointing(enabled)


@dataclass(frozen=True)
class OpenClipImageTransform(ImageTransform):
    """open_clip's own eval transform (``open_clip.transform.image_transform(size, is_train=False, ...)``: resize,
    centre crop, ``ToTensor``, normalise) applied after medzoo's mode handling and optional padding.

    It differs from the CLIP processor in the crop offset (torchvision rounds ``(extent - size) / 2`` half to
    even) and in the float arithmetic (float32 ``/ 255``); the 16-bit, alpha and padding options apply as in
    :class:`ImageTransform`, before open_clip sees the image.
    """

    interpolation: str = "bicubic"
    resize_mode: str = "shortest"
    fill_color: int = 0

    def __post_init__(self) -> None:
        from open_clip.transform import image_transform

        super().__post_init__()
        compose = image_transform(
            self.size,
            is_train=False,
            mean=self.mean,
            std=self.std,
            resize_mode=self.resize_mode,
            interpolation=self.interpolation,
            fill_color=self.fill_color,
        )
        object.__setattr__(self, "open_clip_transform", compose)

    @classmethod
    def wrapping(cls, transform: ImageTransform, open_clip_preprocess: dict[str, Any]) -> OpenClipImageTransform:
        from open_clip.transform import PreprocessCfg

        fields = {key: getattr(transform, key) for key in transform.__dataclass_fields__}
        defaults = asdict(PreprocessCfg())
        extra = {key: open_clip_preprocess.get(key, defaults[key]) for key in OPEN_CLIP_TRANSFORM_KEYS}
        return cls(**fields, **extra)

    def __call__(self, image: Image.Image) -> torch.Tensor:
        return self.open_clip_transform(self.squared(image))

    def pixels(self, image: Image.Image) -> Image.Image:
        raise NotImplementedError("open_clip's transform makes the tensor directly; use the transform itself")


def locate_checkpoint(source: str, encoder: str = "biomedclip") -> tuple[Path, Path]:
    """``(open_clip_config.json, weights)`` for a local hub-layout directory or a hub id (downloaded)."""
    directory = Path(source).expanduser()
    if directory.is_dir():
        config_path = directory / OPEN_CLIP_CONFIG
        if not config_path.is_file():
            raise PluginError(f"{directory}: no {OPEN_CLIP_CONFIG}; expected an open_clip model directory")
        for name in WEIGHT_FILES:
            if (directory / name).is_file():
                return config_path, directory / name
        raise PluginError(f"{directory}: no open_clip weights; expected one of {', '.join(WEIGHT_FILES)}")
    from open_clip.pretrained import download_pretrained_from_hf

    hub_id = source[len(HF_HUB_PREFIX) :] if source.startswith(HF_HUB_PREFIX) else source
    try:
        config_path = Path(download_pretrained_from_hf(hub_id, filename=OPEN_CLIP_CONFIG))
        weights_path = Path(download_pretrained_from_hf(hub_id))
    except Exception as error:  # huggingface_hub raises many types (offline, missing repo, missing file)
        raise PluginError(
            f"vision encoder {encoder!r}: {source!r} is neither a local directory nor a reachable hub id "
            f"({type(error).__name__})"
        ) from error
    return config_path, weights_path


def read_open_clip_weights(path: Path) -> dict[str, torch.Tensor]:
    """An open_clip checkpoint's state dict; a truncated or damaged file is a one-line PluginError naming it."""
    if path.suffix == ".safetensors":
        check_safetensors(path, PluginError, "open_clip weights")
    from open_clip.factory import load_state_dict

    try:
        return load_state_dict(str(path))
    except (RuntimeError, OSError, EOFError, ValueError, pickle.UnpicklingError, SafetensorError) as error:
        raise PluginError(
            f"{path}: not a readable open_clip checkpoint ({first_line(error)}); the file is truncated or damaged"
        ) from None


def read_open_clip_config(path: Path) -> dict[str, Any]:
    config = read_json(path, PluginError, "an open_clip config")
    if not isinstance(config.get("model_cfg"), dict):
        raise PluginError(f"{path}: expected a JSON object with a 'model_cfg' object")
    return config
