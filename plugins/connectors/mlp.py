"""``mlp{N}x_gelu``: Linear, then N-1 times GELU + Linear (LLaVA v1.5 uses N = 2)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from medzoo import Connector, ExportRefused, LlavaHfProjector, RecipeError

FAMILY_PATTERN = r"mlp(?P<depth>[1-9][0-9]*)x_gelu"


def gelu_mlp(input_dim: int, output_dim: int, depth: int) -> nn.Sequential:
    """``Linear(in, out)`` followed by ``depth - 1`` pairs of ``GELU, Linear(out, out)``."""
    layers: list[nn.Module] = [nn.Linear(input_dim, output_dim)]
    for _ in range(depth - 1):
        layers += [nn.GELU(), nn.Linear(output_dim, output_dim)]
    return nn.Sequential(*layers)


class MlpGeluConnector(Connector):
    """``layers`` is an ``nn.Sequential`` so its keys (``layers.0.*``, ``layers.2.*``...) match the official
    ``mm_projector.0.*``, ``mm_projector.2.*`` one to one."""

    def __init__(
        self,
        vision_dim: int,
        language_dim: int,
        num_input_tokens: int,
        depth: int | None = None,
        **options: Any,
    ):
        if depth is None:
            raise RecipeError("connector 'mlpnx_gelu' is a family: name a member such as 'mlp2x_gelu'")
        if not isinstance(depth, int) or depth < 1:
            raise RecipeError(f"connector mlp{{N}}x_gelu: depth must be a positive integer, got {depth!r}")
        super().__init__(vision_dim, language_dim, num_input_tokens)
        self.depth = depth
        self.layers = gelu_mlp(vision_dim, language_dim, depth)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features)

    def options(self) -> dict[str, Any]:
        return {"depth": self.depth}

    def llava_hf_export(self, name: str) -> LlavaHfProjector:
        """llava-hf's projector is this at depth 2; depth 1 is written exactly as one Linear; deeper is refused."""
        if self.depth == 2:
            return LlavaHfProjector.two_layers(self.layers[0], self.layers[2])
        if self.depth == 1:
            return LlavaHfProjector.one_layer(self.layers[0], self.language_dim)
        raise ExportRefused(f"hf-llava cannot hold the {name} connector: {self.depth} Linear layers; llava-hf's "
                            "projector is Linear-GELU-Linear (mlp2x_gelu) or one Linear")
