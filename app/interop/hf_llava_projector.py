"""How a medzoo connector is expressed as llava-hf's ``multi_modal_projector``: ``linear_2(act(linear_1(x)))``
applied to each vision feature on its own (``projector_hidden_act``, biases on: ``multimodal_projector_bias``).

``mlp2x_gelu`` is that projector with GELU. A single Linear (``linear``, ``mlp1x_gelu``) and ``identity`` are
written exactly with the identity activation (``linear``) and identity matrices with zero biases where a layer
is missing. Connectors that change the token count or mix tokens are refused, as is any deeper MLP.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from medzoo.core.errors import ExportRefused
from medzoo.core.interfaces.connector import Connector

#: the activation that makes the projector's middle a no-op (transformers' ``LinearActivation``)
IDENTITY_ACT = "linear"


@dataclass(frozen=True)
class Projector:
    """``linear_1`` (vision width -> language width), ``act``, ``linear_2`` (language -> language), as weights."""

    act: str
    linear_1: tuple[torch.Tensor, torch.Tensor]
    linear_2: tuple[torch.Tensor, torch.Tensor]

    def state_dict(self) -> dict[str, torch.Tensor]:
        names = {"linear_1": self.linear_1, "linear_2": self.linear_2}
        return {f"multi_modal_projector.{layer}.{part}": tensor
                for layer, (weight, bias) in names.items() for part, tensor in (("weight", weight), ("bias", bias))}


def identity_layer(width: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return (torch.eye(width, dtype=like.dtype, device=like.device),
            torch.zeros(width, dtype=like.dtype, device=like.device))


def linear_weights(layer: nn.Linear) -> tuple[torch.Tensor, torch.Tensor]:
    bias = layer.bias if layer.bias is not None else torch.zeros_like(layer.weight[:, 0])
    return layer.weight.detach(), bias.detach()


def _mlp(connector: Connector, name: str) -> Projector:
    depth = connector.depth  # type: ignore[attr-defined]
    layers = connector.layers  # type: ignore[attr-defined]
    if depth == 2:
        return Projector("gelu", linear_weights(layers[0]), linear_weights(layers[2]))
    if depth == 1:
        return _single_linear(layers[0], connector.language_dim)
    raise ExportRefused(f"hf-llava cannot hold the {name} connector: {depth} Linear layers; llava-hf's projector "
                        "is Linear-GELU-Linear (mlp2x_gelu) or one Linear")


def _single_linear(layer: nn.Linear, width: int) -> Projector:
    first = linear_weights(layer)
    return Projector(IDENTITY_ACT, first, identity_layer(width, first[0]))


def _linear(connector: Connector, name: str) -> Projector:
    return _single_linear(connector.proj, connector.language_dim)  # type: ignore[attr-defined]


def _identity(connector: Connector, name: str) -> Projector:
    like = torch.empty(0)
    return Projector(IDENTITY_ACT, identity_layer(connector.vision_dim, like),
                     identity_layer(connector.language_dim, like))


ProjectorRule = Callable[[Connector, str], Projector]


def projector_rules() -> dict[type, ProjectorRule]:
    """Connector class -> how to write it (imported here: the export module must not import plugins at load)."""
    from medzoo.plugins.connectors.identity import IdentityConnector
    from medzoo.plugins.connectors.linear import LinearConnector
    from medzoo.plugins.connectors.mlp import MlpGeluConnector

    return {MlpGeluConnector: _mlp, LinearConnector: _linear, IdentityConnector: _identity}


def express_projector(connector: Connector, name: str) -> Projector:
    """The llava-hf projector of ``connector`` (plugin ``name``), or :class:`ExportRefused` saying why not."""
    if connector.num_output_tokens != connector.num_input_tokens:
        raise ExportRefused(
            f"hf-llava cannot hold the token-reducing {name} connector ({connector.num_input_tokens} -> "
            f"{connector.num_output_tokens} tokens per image): llava-hf has one image token per vision feature"
        )
    rule = projector_rules().get(type(connector))
    if rule is None:
        raise ExportRefused(f"hf-llava cannot hold the {name} connector ({type(connector).__name__}): llava-hf's "
                            "projector maps each vision feature alone by Linear-GELU-Linear (mlp2x_gelu) or one Linear")
    return rule(connector, name)
