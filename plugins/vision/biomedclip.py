"""BiomedCLIP's vision tower: the timm ViT trunk of an open_clip checkpoint (``model.visual.trunk``).

Only the vision tower is built: the open_clip config names the timm model, the checkpoint's
``visual.trunk.*`` weights are loaded strictly, and the text tower (PubMedBERT) is never instantiated,
so loading needs neither its config nor its weights. It is the shared open_clip tower
(:class:`~medzoo.plugins.vision.open_clip_tower.OpenClipVisionEncoder`) holding the bare trunk, so its weights
are ``trunk.*`` and its config is the timm model's (``timm_model_name`` and ``timm.create_model`` arguments).

Preprocessing (``preprocess``): ``clip`` (default) is what LLaVA-Med v1.0 used for BiomedCLIP,
``CLIPImageProcessor.from_pretrained("openai/clip-vit-base-patch16")`` (shortest edge to the tower's 224 px,
bicubic, centre crop, OpenAI CLIP mean / std; ``llava/model/llava.py`` ``initialize_vision_modules_from_biomed_clip``
and ``llava/eval/model_vqa_med.py`` at v1.0.0), whatever the open_clip config says; ``open_clip`` is open_clip's
own eval transform with the checkpoint's ``preprocess_cfg`` (what ``create_model_and_transforms`` returns).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from medzoo import PluginError
from medzoo.plugins.vision.open_clip_checkpoint import OpenClipCheckpoint, load_prefixed_weights
from medzoo.plugins.vision.open_clip_tower import OpenClipVisionEncoder

BIOMEDCLIP_HUB_ID = "microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224"
TRUNK_PREFIX = "visual.trunk."


class BiomedClipVisionEncoder(OpenClipVisionEncoder):
    """A timm ViT trunk; ``forward`` returns the output of hidden state ``feature_layer`` after selection.

    Hidden states are numbered like CLIP's: 0 is the embedding output (after ``norm_pre``), ``i`` the output
    of block ``i - 1``; -2 is the penultimate block. The final ``norm`` is never applied, as in LLaVA.
    ``from_config`` builds ``timm.create_model(config["timm_model_name"], **overrides)`` with the other keys as
    overrides (``img_size``, ``patch_size``, ``embed_dim``, ``depth``, ``num_heads``, ``mlp_ratio``).
    """

    name = "biomedclip"
    default_preprocess = "clip"
    preprocess_modes = {"clip": "LLaVA-Med v1.0's CLIP processor", "open_clip": "open_clip's own transform"}
    checkpoint_preprocess_modes = ("open_clip",)

    def hold(self, visual: nn.Module, model_cfg: Any) -> int:
        """``visual`` is the bare timm trunk and ``model_cfg`` its timm model name."""
        from timm.models.vision_transformer import VisionTransformer

        if not isinstance(visual, VisionTransformer):
            raise PluginError(
                f"vision encoder 'biomedclip': timm model {model_cfg!r} is a {type(visual).__name__}; "
                "expected a timm VisionTransformer"
            )
        self.trunk = visual
        self.timm_model_name = str(model_cfg)
        return len(visual.blocks)

    @classmethod
    def from_pretrained(cls, source: str = BIOMEDCLIP_HUB_ID, *args: Any, **options: Any) -> BiomedClipVisionEncoder:
        """Load from a hub id (``[hf-hub:]microsoft/BiomedCLIP-...``) or a local directory in the hub layout
        (``open_clip_config.json`` plus ``open_clip_pytorch_model.bin`` or ``.safetensors``).

        ``preprocess='clip'`` normalises with the OpenAI CLIP statistics of LLaVA-Med v1.0's processor;
        ``'open_clip'`` with the checkpoint's ``preprocess_cfg`` (and its resize mode and interpolation)."""
        return super().from_pretrained(source, *args, **options)  # type: ignore[return-value]

    @classmethod
    def load_tower(cls, found: OpenClipCheckpoint) -> tuple[nn.Module, Any]:
        """The timm trunk the open_clip config names, its ``visual.trunk.*`` weights loaded strictly."""
        trunk, name = cls.unloaded_tower(found)
        config_name = found.config_source.rsplit("/", 1)[-1]
        load_prefixed_weights(trunk, found.weights, TRUNK_PREFIX, f"timm {name!r} in {config_name}")
        return trunk, name

    @classmethod
    def unloaded_tower(cls, found: OpenClipCheckpoint) -> tuple[nn.Module, Any]:
        """The timm trunk the open_clip config names (weights not read) and its name."""
        import timm
        from timm.layers import to_2tuple

        vision = found.model_cfg["vision_cfg"]
        name = vision.get("timm_model_name")
        if not name:
            raise PluginError(
                f"{found.config_source}: model_cfg.vision_cfg has no timm_model_name; "
                "biomedclip needs an open_clip model whose vision tower is a timm ViT"
            )
        trunk = timm.create_model(name, pretrained=False, num_classes=0)
        declared_size = to_2tuple(vision.get("image_size", trunk.patch_embed.img_size))
        if tuple(declared_size) != tuple(trunk.patch_embed.img_size):
            raise PluginError(
                f"{found.config_source}: vision_cfg.image_size {declared_size[0]} differs from timm {name!r}'s input "
                f"size {trunk.patch_embed.img_size[0]}"
            )
        return trunk, name

    @classmethod
    def build_tower(cls, config: dict[str, Any]) -> tuple[nn.Module, Any]:
        overrides = dict(config)
        name = overrides.pop("timm_model_name", None)
        if not name:
            raise PluginError(
                "vision encoder 'biomedclip': config needs 'timm_model_name' (e.g. vit_base_patch16_224)"
            )
        import timm

        return timm.create_model(name, pretrained=False, num_classes=0, **overrides), name

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

    def architecture(self) -> dict[str, Any]:
        first_block = self.trunk.blocks[0]
        return {
            "timm_model_name": self.timm_model_name,
            "img_size": self.image_size,
            "patch_size": self.patch_size,
            "embed_dim": self.hidden_size,
            "depth": len(self.trunk.blocks),
            "num_heads": first_block.attn.num_heads,
            "mlp_ratio": first_block.mlp.fc1.out_features / self.hidden_size,
        }
