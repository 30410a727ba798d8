"""How a vision encoder or a connector says whether and how llava-hf (transformers'
``LlavaForConditionalGeneration``, vLLM) holds it: the descriptions their ``llava_hf_export`` methods return.

llava-hf builds its vision tower with ``AutoModel.from_config(vision_config)`` and feeds the projector
``hidden_states[vision_feature_layer]`` (without the first token when ``vision_feature_select_strategy`` is
``default``); its ``multi_modal_projector`` is ``linear_2(act(linear_1(x)))`` applied to each vision feature on
its own. The exporter (``medzoo export --format hf-llava``) writes what these descriptions say and checks a
tower's features on a probe image, so a tower with extra processing is refused rather than exported wrong.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from medzoo.core.errors import ExportRefused

if TYPE_CHECKING:
    from medzoo.core.interfaces.vision_encoder import VisionEncoder

#: libraries whose towers transformers' AutoModel cannot build
FOREIGN_LIBRARIES = {"timm": "a timm", "open_clip": "an open_clip"}


@dataclass(frozen=True)
class LlavaHfTower:
    """A vision encoder as llava-hf holds it."""

    #: the transformers model whose ``state_dict`` becomes ``vision_tower.*`` and whose config ``vision_config``
    model: nn.Module
    feature_layer: int
    #: ``default`` drops the first token (a class token), ``full`` keeps every token
    select_strategy: str
    #: ``LlavaProcessor``'s ``num_additional_image_tokens``: tokens besides the patches (a class token)
    num_additional_image_tokens: int


@dataclass(frozen=True)
class LlavaHfProjector:
    """``linear_1`` (vision width -> language width), ``act``, ``linear_2`` (language -> language) as
    (weight, bias) pairs; ``act`` ``linear`` (transformers' identity activation) makes the middle a no-op."""

    act: str
    linear_1: tuple[torch.Tensor, torch.Tensor]
    linear_2: tuple[torch.Tensor, torch.Tensor]

    @classmethod
    def two_layers(cls, first: nn.Linear, second: nn.Linear, act: str = "gelu") -> LlavaHfProjector:
        return cls(act, linear_weights(first), linear_weights(second))

    @classmethod
    def one_layer(cls, layer: nn.Linear, width: int) -> LlavaHfProjector:
        """One Linear, exactly: the identity activation and an identity ``linear_2`` with a zero bias."""
        first = linear_weights(layer)
        return cls(IDENTITY_ACT, first, identity_layer(width, first[0]))

    @classmethod
    def identity(cls, vision_dim: int, language_dim: int) -> LlavaHfProjector:
        like = torch.empty(0)
        return cls(IDENTITY_ACT, identity_layer(vision_dim, like), identity_layer(language_dim, like))


#: the activation that makes the projector's middle a no-op (transformers' ``LinearActivation``)
IDENTITY_ACT = "linear"


def linear_weights(layer: nn.Linear) -> tuple[torch.Tensor, torch.Tensor]:
    bias = layer.bias if layer.bias is not None else torch.zeros_like(layer.weight[:, 0])
    return layer.weight.detach(), bias.detach()


def identity_layer(width: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return (torch.eye(width, dtype=like.dtype, device=like.device),
            torch.zeros(width, dtype=like.dtype, device=like.device))


def refusal(kind: str, name: str, component: object) -> str:
    """The start of every refusal: ``hf-llava cannot hold the <name> <kind> (<class>)``."""
    return f"hf-llava cannot hold the {name} {kind} ({type(component).__name__})"


def single_transformers_tower(encoder: VisionEncoder, name: str) -> LlavaHfTower:
    """The default rule: the encoder holds exactly one transformers model, one that AutoModel rebuilds from its
    config, and takes one hidden layer; otherwise :class:`ExportRefused` says why."""
    from transformers import PreTrainedModel
    from transformers.models.auto.modeling_auto import MODEL_MAPPING

    what = refusal("vision encoder", name, encoder)
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
    return LlavaHfTower(
        model=model,
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
