"""The Connector interface: vision features -> language-model embeddings."""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

import torch
from torch import nn

from medzoo.core.errors import ExportRefused
from medzoo.core.interfaces.llava_hf import LlavaHfProjector, refusal


class Connector(nn.Module):
    """Maps ``[B, N, vision_dim]`` to ``[B, N', language_dim]``; ``N'`` may be smaller than ``N``."""

    def __init__(self, vision_dim: int, language_dim: int, num_input_tokens: int, **options: Any):
        super().__init__()
        self.vision_dim = vision_dim
        self.language_dim = language_dim
        self.num_input_tokens = num_input_tokens

    @property
    def num_output_tokens(self) -> int:
        """Tokens per image after the connector (default: unchanged)."""
        return self.num_input_tokens

    @abstractmethod
    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """``[B, N, vision_dim] -> [B, num_output_tokens, language_dim]``."""

    def options(self) -> dict[str, Any]:
        """The options needed to rebuild this connector."""
        return {}

    def llava_hf_export(self, name: str) -> LlavaHfProjector:
        """This connector as llava-hf's per-feature ``multi_modal_projector`` (``name``: its registered name, for
        the refusal), or :class:`ExportRefused` in one line saying why it cannot be one.

        Default: refused. A connector that maps each feature alone by one Linear or Linear-GELU-Linear returns
        the weights (:meth:`LlavaHfProjector.two_layers`, ``one_layer``, ``identity``); a subclass that changes
        ``forward`` must override this too. The exporter refuses a token-reducing connector before asking.
        """
        raise ExportRefused(f"{refusal('connector', name, self)}: llava-hf's projector maps each vision feature "
                            "alone by Linear-GELU-Linear (mlp2x_gelu) or one Linear")
