"""Fused towers: two (or more) registered vision encoders whose features are concatenated along the channel dim
(prismatic's "dinosiglip", TinyLLaVA's CLIP + DINO).

Each tower keeps its own preprocessing, feature layer and selection. The fused transform stacks the towers'
pixel tensors on the channel axis, ``[3 * towers, S, S]`` with ``S`` the largest tower size (a smaller tower's
pixels sit in the top-left corner, zero elsewhere), so batching and the ``[B, C, H, W]`` interface stay as they
are; ``forward`` splits the channels (and crops) and gives each tower its own pixels. The towers must yield the
same number of tokens (the same grid), else a :class:`RecipeError` names both counts; ``hidden_size`` is the sum.

Towers are described by ``{"name": <registered encoder>, "config": {...}, "options": {...}, "pretrained":
<source>}``. ``from_config({"towers": [...]})`` builds each from its config (random; its tiny config if none);
``from_pretrained`` takes a preset name (:data:`PRESETS`), ``"dinov2=facebook/dinov2-large+clip=openai/..."`` or a
folder holding ``fusion.json`` (``{"towers": [...]}``, relative ``pretrained`` paths resolved against it).
The fusion's own ``feature_layer``, ``feature_select``, ``image_aspect``, ``dtype`` and image options are each
tower's defaults (a tower's ``options`` win; ``tower_options``, a list, override them per tower).
``architecture_config`` records every tower's architecture config and options, so a saved model rebuilds both.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import nn

from medzoo import (
    FeatureSelect,
    PluginError,
    RecipeError,
    VisionEncoder,
    components,
    did_you_mean,
    image_options,
    read_json,
)

FUSION_FILE = "fusion.json"
TOWER_KEYS = ("name", "config", "options", "pretrained")
# prismatic's fused backbones (timm towers at the stated size) and TinyLLaVA's CLIP + DINOv2 pair.
PRESETS: dict[str, list[dict[str, Any]]] = {
    "dinosiglip-vit-so-224px": [
        {"name": "timm", "pretrained": "timm/vit_large_patch14_reg4_dinov2.lvd142m", "options": {"image_size": 224}},
        {"name": "timm", "pretrained": "timm/vit_so400m_patch14_siglip_224.webli"},
    ],
    "dinosiglip-vit-so-384px": [
        {"name": "timm", "pretrained": "timm/vit_large_patch14_reg4_dinov2.lvd142m", "options": {"image_size": 384}},
        {"name": "timm", "pretrained": "timm/vit_so400m_patch14_siglip_384.webli"},
    ],
    "clip-dinov2-vit-l-224px": [
        {"name": "clip", "pretrained": "openai/clip-vit-large-patch14"},
        {"name": "dinov2", "pretrained": "facebook/dinov2-large"},
    ],
}
FUSION_HUB_IDS = tuple(
    tower["pretrained"] for towers in PRESETS.values() for tower in towers if "/" in tower["pretrained"]
)


class FusionVisionEncoder(VisionEncoder):
    """Several towers on one image; ``forward`` concatenates their ``[B, N, D_i]`` features to ``[B, N, sum D_i]``."""

    def __init__(
        self,
        towers: list[VisionEncoder],
        tower_options: list[dict[str, Any]],
        feature_layer: int = -2,
        feature_select: FeatureSelect = "patch",
        image_aspect: str = "pad",
    ):
        super().__init__(feature_layer, feature_select, image_aspect)
        names = [type(tower).__name__ for tower in towers]
        counts = [tower.num_tokens for tower in towers]
        if len(set(counts)) != 1:
            listed = " and ".join(f"{name} {count}" for name, count in zip(names, counts, strict=True))
            raise RecipeError(
                f"vision encoder 'fusion': the towers yield different token counts ({listed}); expected the same "
                "grid (image_size / patch_size) for every tower"
            )
        self.towers = nn.ModuleList(towers)
        self.tower_options = [dict(options) for options in tower_options]
        self._transform = FusedImageTransform(tuple(tower.transform for tower in towers), self.image_size)

    # -- building ---------------------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls,
        source: str,
        feature_layer: int = -2,
        feature_select: FeatureSelect = "patch",
        image_aspect: str = "pad",
        dtype: torch.dtype | str | None = None,
        tower_options: list[dict[str, Any]] | None = None,
        **options: Any,
    ) -> FusionVisionEncoder:
        """Each tower from its own ``pretrained`` source: a preset, ``name=source+name=source`` or a folder
        with ``fusion.json``."""
        return cls._from_sources(source, "from_pretrained", feature_layer, feature_select, image_aspect, dtype,
                                 tower_options, **options)  # type: ignore[return-value]

    @classmethod
    def weightless(cls, source: str, *args: Any, **options: Any) -> FusionVisionEncoder | None:
        """Each tower's own ``weightless`` (``None`` when one of them is unknown without its weights)."""
        return cls._from_sources(source, "weightless", *args, **options)

    @classmethod
    def _from_sources(
        cls,
        source: str,
        make: str,
        feature_layer: int = -2,
        feature_select: FeatureSelect = "patch",
        image_aspect: str = "pad",
        dtype: torch.dtype | str | None = None,
        tower_options: list[dict[str, Any]] | None = None,
        **options: Any,
    ) -> FusionVisionEncoder | None:
        """The towers of ``source``, each made by its class's ``make`` method (``from_pretrained`` or
        ``weightless``)."""
        specs = pretrained_towers(source)
        common = fusion_defaults(feature_layer, feature_select, image_aspect, dtype, options)
        towers, own = [], []
        for index, spec in enumerate(merge_tower_options(specs, tower_options)):
            factory = tower_factory(spec, index)
            tower = getattr(factory, make)(spec["pretrained"], **{**common, **spec["options"]})
            if tower is None:
                return None
            towers.append(tower)
            own.append(spec["options"])
        return cls(towers, own, feature_layer, feature_select, image_aspect)

    @classmethod
    def from_config(
        cls,
        config: dict[str, Any],
        feature_layer: int = -2,
        feature_select: FeatureSelect = "patch",
        image_aspect: str = "pad",
        dtype: torch.dtype | str | None = None,
        tower_options: list[dict[str, Any]] | None = None,
        **options: Any,
    ) -> FusionVisionEncoder:
        """Random towers from ``{"towers": [{"name": ..., "config": ..., "options": ...}, ...]}``."""
        specs = checked_towers(config.get("towers"), "config key 'towers'")
        common = fusion_defaults(feature_layer, feature_select, image_aspect, dtype, options)
        towers, own = [], []
        for index, spec in enumerate(merge_tower_options(specs, tower_options)):
            factory = tower_factory(spec, index)
            tower_config = spec.get("config") or factory.tiny_config()
            towers.append(factory.from_config(dict(tower_config), **{**common, **spec["options"]}))
            own.append(spec["options"])
        return cls(towers, own, feature_layer, feature_select, image_aspect)

    @classmethod
    def tiny_config(cls) -> dict[str, Any]:
        """prismatic's pair in miniature: DINOv2 and SigLIP, 32 px, patch 8 (16 tokens each)."""
        return {"towers": [{"name": "dinov2"}, {"name": "siglip"}]}

    def architecture_config(self) -> dict[str, Any]:
        return {
            "towers": [
                {"name": tower_name(tower), "config": tower.architecture_config(), "options": options}
                for tower, options in zip(self.towers, self.tower_options, strict=True)
            ]
        }

    # -- shapes -----------------------------------------------------------------------------------------------
    @property
    def hidden_size(self) -> int:
        return sum(tower.hidden_size for tower in self.towers)

    @property
    def image_size(self) -> int:
        return max(tower.image_size for tower in self.towers)

    @property
    def patch_size(self) -> int:
        """The fused input's pixels per token side (``image_size`` over the common grid)."""
        return self.image_size // round(self.num_patches**0.5)

    @property
    def input_channels(self) -> int:
        return 3 * len(self.towers)

    @property
    def has_cls_token(self) -> bool:
        return all(tower.has_cls_token for tower in self.towers)

    @property
    def num_patches(self) -> int:
        return self.towers[0].num_patches

    @property
    def num_tokens(self) -> int:
        return self.towers[0].num_tokens

    @property
    def block_class(self) -> type[nn.Module]:
        """The first tower's block class; :attr:`block_classes` lists every tower's (FSDP must wrap them all)."""
        return self.towers[0].block_class

    @property
    def block_classes(self) -> tuple[type[nn.Module], ...]:
        return tuple(dict.fromkeys(tower.block_class for tower in self.towers))

    @property
    def transform(self) -> FusedImageTransform:
        return self._transform

    # -- running ----------------------------------------------------------------------------------------------
    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        if pixel_values.ndim != 4 or pixel_values.shape[1] != self.input_channels:
            raise ValueError(
                f"vision encoder 'fusion': expected pixels [B, {self.input_channels}, H, W] from its own transform "
                f"(each tower's 3 channels stacked), got {list(pixel_values.shape)}"
            )
        features = []
        for index, tower in enumerate(self.towers):
            size = tower.image_size
            features.append(tower(pixel_values[:, 3 * index : 3 * index + 3, :size, :size]))
        return torch.cat(features, dim=-1)

    def set_gradient_checkpointing(self, enabled: bool) -> None:
        for tower in self.towers:
            tower.set_gradient_checkpointing(enabled)


@dataclass(frozen=True)
class FusedImageTransform:
    """PIL image -> ``[3 * towers, size, size]``: each tower's own tensor, padded with zeros to ``size``."""

    transforms: tuple[Any, ...]
    size: int

    def __call__(self, image: Image.Image) -> torch.Tensor:
        canvas = torch.zeros(3 * len(self.transforms), self.size, self.size)
        for index, transform in enumerate(self.transforms):
            tensor = transform(image)
            canvas[3 * index : 3 * index + 3, : tensor.shape[1], : tensor.shape[2]] = tensor
        return canvas

    def batch(self, images: list[Image.Image]) -> torch.Tensor:
        if not images:
            return torch.empty(0, 3 * len(self.transforms), self.size, self.size)
        return torch.stack([self(image) for image in images])


def fusion_defaults(
    feature_layer: int, feature_select: str, image_aspect: str, dtype: Any, options: dict[str, Any]
) -> dict[str, Any]:
    """The fusion's options, given to every tower (image options checked: an unknown one is a recipe error)."""
    given = image_options(options, encoder="fusion")
    common = {"feature_layer": feature_layer, "feature_select": feature_select, "image_aspect": image_aspect, **given}
    return common if dtype is None else {**common, "dtype": dtype}


def checked_towers(towers: Any, where: str) -> list[dict[str, Any]]:
    """Tower descriptions: a list of two or more objects with a registered ``name`` and known keys."""
    if not isinstance(towers, list) or len(towers) < 2:
        raise RecipeError(
            f"vision encoder 'fusion': {where} must list two or more towers "
            f"([{{\"name\": \"dinov2\"}}, {{\"name\": \"siglip\"}}]), got {towers!r}"
        )
    checked = []
    for index, tower in enumerate(towers):
        if not isinstance(tower, dict) or not isinstance(tower.get("name"), str):
            raise RecipeError(f"vision encoder 'fusion': {where}[{index}] must be an object with a 'name' string")
        unknown = sorted(set(tower) - set(TOWER_KEYS))
        if unknown:
            raise RecipeError(
                f"vision encoder 'fusion': {where}[{index}].{unknown[0]}: unknown key"
                f"{did_you_mean(unknown[0], TOWER_KEYS)}; expected {', '.join(TOWER_KEYS)}"
            )
        for key in ("config", "options"):
            if tower.get(key) is not None and not isinstance(tower[key], dict):
                raise RecipeError(f"vision encoder 'fusion': {where}[{index}].{key} must be an object")
        checked.append({**tower, "options": dict(tower.get("options") or {})})
    return checked


def merge_tower_options(specs: list[dict[str, Any]], overrides: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    if overrides is None:
        return specs
    if not isinstance(overrides, list) or len(overrides) != len(specs) or not all(
        isinstance(entry, dict) for entry in overrides
    ):
        raise RecipeError(
            f"vision encoder 'fusion': option 'tower_options' must be a list of {len(specs)} objects (one per tower)"
        )
    return [{**spec, "options": {**spec["options"], **entry}} for spec, entry in zip(specs, overrides, strict=True)]


def tower_factory(spec: dict[str, Any], index: int) -> Any:
    if spec["name"] == "fusion":
        raise RecipeError(f"vision encoder 'fusion': tower {index} is itself 'fusion'; expected a single tower")
    return components().get("vision_encoder", spec["name"]).factory


def tower_name(tower: VisionEncoder) -> str:
    """The registered name of a tower's class."""
    for name in components().names("vision_encoder"):
        if components().get("vision_encoder", name).factory is type(tower):
            return name
    raise PluginError(f"vision encoder 'fusion': tower {type(tower).__name__} is not a registered vision encoder")


def pretrained_towers(source: str) -> list[dict[str, Any]]:
    """The towers (each with a ``pretrained`` source) of a fusion folder, a ``name=source+...`` pair or a preset."""
    folder = Path(source).expanduser()
    if folder.is_dir():
        path = folder / FUSION_FILE
        if not path.is_file():
            raise PluginError(f"{path}: missing; expected the fused towers ({{\"towers\": [{{\"name\", \"pretrained\"}}]}})")
        towers = checked_towers(read_json(path, PluginError, "a fusion description").get("towers"), f"{path}: towers")
        for tower in towers:
            local = folder / str(tower.get("pretrained", ""))
            if tower.get("pretrained") and local.exists():
                tower["pretrained"] = str(local)
    elif source in PRESETS:
        towers = checked_towers([dict(tower) for tower in PRESETS[source]], f"preset {source!r}")
    elif "=" in source and "+" in source:
        pairs = [part.partition("=") for part in source.split("+")]
        towers = checked_towers([{"name": name.strip(), "pretrained": where.strip()} for name, _, where in pairs],
                                f"source {source!r}")
    else:
        raise PluginError(
            f"vision encoder 'fusion': {source!r} is not a folder with {FUSION_FILE}, a 'name=source+name=source' "
            f"pair or a preset{did_you_mean(source, PRESETS)} (presets: {', '.join(PRESETS)})"
        )
    for index, tower in enumerate(towers):
        if not isinstance(tower.get("pretrained"), str) or not tower["pretrained"]:
            raise PluginError(f"vision encoder 'fusion': {source}: tower {index} ({tower['name']}) has no 'pretrained'")
    return towers
