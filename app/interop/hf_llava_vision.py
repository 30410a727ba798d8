"""How a medzoo vision encoder is expressed as the vision tower of ``LlavaForConditionalGeneration``.

llava-hf builds its tower with ``AutoModel.from_config(vision_config)`` and feeds the projector
``hidden_states[vision_feature_layer]``, without the first token when ``vision_feature_select_strategy`` is
``default``. An encoder is expressible when it holds one transformers model that AutoModel builds from that
model's own config (CLIP, SigLIP, ...) and its features are that hidden state: checked by running both on one
probe image, so a tower with extra processing (a post-LayerNorm, register tokens, ...) is refused rather than
exported wrong. An encoder whose tower the generic rule cannot read may say how itself, by a method
``hf_llava_vision_tower() -> VisionTower``, or through :data:`TOWER_RULES`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from medzoo.app.interop.export_refused import ExportRefused
from medzoo.core.interfaces.vision_encoder import VisionEncoder

#: bookkeeping fields of a transformers config that an exported config does not carry
CONFIG_BOOKKEEPING = frozenset({
    "architectures", "_name_or_path", "transformers_version", "dtype", "torch_dtype", "use_cache",
    "_attn_implementation_autoset", "_commit_hash",
})
#: libraries whose towers transformers' AutoModel cannot build
FOREIGN_LIBRARIES = {"timm": "a timm", "open_clip": "an open_clip"}


@dataclass(frozen=True)
class VisionTower:
    """A vision encoder as llava-hf holds it."""

    #: the transformers model whose ``state_dict`` becomes ``vision_tower.*``
    model: nn.Module
    #: ``vision_config`` (with ``model_type``): AutoModel builds ``model``'s class from it
    config: dict[str, Any]
    feature_layer: int
    #: ``default`` drops the first token (a class token), ``full`` keeps every token
    select_strategy: str
    #: ``LlavaProcessor``'s ``num_additional_image_tokens``: tokens besides the patches (a class token)
    num_additional_image_tokens: int

    def state_dict(self) -> dict[str, Any]:
        """The tower's tensors under the classic llava-hf keys (``vision_tower.vision_model.*`` for CLIP and
        SigLIP, which transformers 5 loads by removing the prefix again)."""
        prefix = classic_prefix(self.model)
        return {f"vision_tower.{'' if key.startswith(prefix) else prefix}{key}": value
                for key, value in self.model.state_dict().items()}


TowerRule = Callable[[VisionEncoder], VisionTower]
#: per-encoder-class rules for towers the generic rule cannot read
TOWER_RULES: dict[type, TowerRule] = {}


def config_dict(config: Any) -> dict[str, Any]:
    """A transformers config as the fields that rebuild it (``model_type`` included), without bookkeeping."""
    return {key: value for key, value in config.to_diff_dict().items() if key not in CONFIG_BOOKKEEPING}


def classic_prefix(model: nn.Module) -> str:
    """The key prefix transformers strips when loading ``model``'s class (``vision_model.`` for CLIP in 5.x),
    which the classic layout (transformers 4.x, vLLM) has; empty where there is none."""
    try:
        from transformers.conversion_mapping import extract_weight_conversions_for_model
        from transformers.core_model_loading import PrefixChange
    except ImportError:  # transformers 4.x: the keys already carry it
        return ""
    for conversion in extract_weight_conversions_for_model(model) or ():
        if isinstance(conversion, PrefixChange) and conversion.prefix_to_remove:
            return f"{conversion.prefix_to_remove}."
    return ""


def express_vision_tower(encoder: VisionEncoder, name: str, probe: bool = True) -> VisionTower:
    """The llava-hf tower of ``encoder`` (plugin ``name``), or :class:`ExportRefused` saying why there is none;
    ``probe``: check the features on a probe image (one forward of the tower)."""
    hook = getattr(encoder, "hf_llava_vision_tower", None)
    rule = TOWER_RULES.get(type(encoder))
    if callable(hook):
        tower = hook()
    elif rule is not None:
        tower = rule(encoder)
    else:
        tower = transformers_tower(encoder, name)
    if probe:
        check_features(encoder, name, tower)
    return tower


def transformers_tower(encoder: VisionEncoder, name: str) -> VisionTower:
    """The generic rule: the encoder holds exactly one transformers model, one that AutoModel rebuilds."""
    from transformers import PreTrainedModel
    from transformers.models.auto.modeling_auto import MODEL_MAPPING

    what = f"hf-llava cannot hold the {name} vision encoder ({type(encoder).__name__})"
    if not isinstance(encoder.feature_layer, int) or isinstance(encoder.feature_layer, bool):
        raise ExportRefused(f"{what}: it takes multi-layer features ({encoder.feature_layer!r}); "
                            "the export writes one vision_feature_layer")
    towers = outermost(encoder, lambda module: isinstance(module, PreTrainedModel))
    if not towers:
        libraries = {type(module).__module__.split(".")[0] for module in encoder.modules()}
        library = next((FOREIGN_LIBRARIES[lib] for lib in FOREIGN_LIBRARIES if lib in libraries), "a non-transformers")
        raise ExportRefused(f"{what}: {library} tower; llava-hf builds its vision tower with transformers' AutoModel")
    if len(towers) > 1:
        raise ExportRefused(f"{what}: it fuses {len(towers)} vision towers; llava-hf holds one")
    model = towers[0]
    built = MODEL_MAPPING.get(type(model.config), None)
    if built is not type(model):
        raise ExportRefused(f"{what}: AutoModel builds {getattr(built, '__name__', 'nothing')} from its "
                            f"{type(model.config).__name__}, not its {type(model).__name__}")
    drop_first = encoder.has_cls_token and encoder.feature_select == "patch"
    return VisionTower(
        model=model,
        config=config_dict(model.config),
        feature_layer=encoder.feature_layer,
        select_strategy="default" if drop_first else "full",
        num_additional_image_tokens=1 if encoder.has_cls_token else 0,
    )


def outermost(root: nn.Module, wanted: Callable[[nn.Module], bool]) -> list[nn.Module]:
    """The submodules of ``root`` that are ``wanted`` and not inside another wanted one."""
    found: list[nn.Module] = []
    pending = list(root.children())
    while pending:
        module = pending.pop(0)
        if wanted(module):
            found.append(module)
        else:
            pending.extend(module.children())
    return found


def check_features(encoder: VisionEncoder, name: str, tower: VisionTower) -> None:
    """Refuse unless the encoder's features are the tower's hidden state as llava-hf selects it (one probe)."""
    size = encoder.image_size
    parameter = next(tower.model.parameters())
    pixels = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1
    pixels = pixels.to(parameter.device, parameter.dtype)
    with torch.no_grad():
        ours = encoder(pixels).float()
        hidden = tower.model(pixel_values=pixels, output_hidden_states=True).hidden_states[tower.feature_layer]
        theirs = (hidden[:, 1:] if tower.select_strategy == "default" else hidden).float()
    layout = f"hidden_states[{tower.feature_layer}] ({tower.select_strategy!r} selection)"
    what = f"hf-llava cannot hold the {name} vision encoder ({type(encoder).__name__})"
    if ours.shape != theirs.shape:
        raise ExportRefused(f"{what}: its features {tuple(ours.shape)} are not the tower's {layout} "
                            f"{tuple(theirs.shape)}")
    difference = float((ours - theirs).abs().max())
    tolerance = 1e-4 if parameter.dtype == torch.float32 else 2e-2
    if difference > tolerance * max(1.0, float(theirs.abs().max())):
        raise ExportRefused(f"{what}: its features differ from the tower's {layout} (max difference "
                            f"{difference:.3g}); llava-hf applies no other processing")
