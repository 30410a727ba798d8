"""``linear``: one Linear layer (LLaVA v1.0 / LLaVA-Med v1.0 projector)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from medzoo import Connector, LlavaHfProjector


class LinearConnector(Connector):
    """``proj`` maps each token; its weights correspond to the official ``mm_projector.{weight,bias}``."""

    def __init__(self, vision_dim: int, language_dim: int, num_input_tokens: int, **options: Any):
        super().__init__(vision_dim, language_dim, num_input_tokens)
        self.proj = nn.Linear(vision_dim, language_dim)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.proj(features)

    def llava_hf_export(self, name: str) -> LlavaHfProjector:
        """Written exactly as llava-hf's projector with the identity activation and an identity ``linear_2``."""
        return LlavaHfProjector.one_layer(self.proj, self.language_dim)
