"""``qformer``: the BLIP-2 / InstructBLIP querying transformer (Li et al. 2023) as a connector.

``num_queries`` learned query embeddings pass ``depth`` BERT-style layers (transformers' ``Blip2QFormerModel``
without its text branch): self-attention among the queries, cross-attention to the image features every
``cross_attention_every`` layers (BLIP-2: 2, from the first), then a feed-forward; the features are first
normalised (LAVIS' ``ln_vision``) and the queries' outputs mapped to the language width by one Linear
(BLIP-2's ``language_projection``). Keys follow BLIP-2's: ``query_tokens``, ``qformer.*``, ``projection.*``.

Options (defaults BLIP-2's): ``num_queries`` (32, at most the input token count by default), ``depth`` (12),
``hidden_size`` (768, at most the vision width by default), ``heads`` (as many 64-wide heads as divide
``hidden_size``, at least 1), ``intermediate_size`` (4 x ``hidden_size``), ``cross_attention_every`` (2).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from medzoo import Connector
from medzoo.plugins.connectors.options import check_known, divides, int_option

NAME = "qformer"
OPTION_KEYS = ("num_queries", "depth", "hidden_size", "heads", "intermediate_size", "cross_attention_every")
DEFAULT_QUERIES, DEFAULT_WIDTH, HEAD_WIDTH = 32, 768, 64


def default_heads(hidden_size: int) -> int:
    """The most heads at least ``HEAD_WIDTH`` wide that divide ``hidden_size`` (12 for BLIP-2's 768), at least 1."""
    return max(h for h in range(1, max(1, hidden_size // HEAD_WIDTH) + 1) if hidden_size % h == 0)


class QFormerConnector(Connector):
    """``[B, N, vision_dim] -> [B, num_queries, language_dim]``; the features may have any length ``N``."""

    def __init__(
        self,
        vision_dim: int,
        language_dim: int,
        num_input_tokens: int,
        num_queries: int | None = None,
        depth: int = 12,
        hidden_size: int | None = None,
        heads: int | None = None,
        intermediate_size: int | None = None,
        cross_attention_every: int = 2,
        **unknown: Any,
    ) -> None:
        from transformers import Blip2QFormerConfig, Blip2QFormerModel

        check_known(NAME, unknown, OPTION_KEYS)
        super().__init__(vision_dim, language_dim, num_input_tokens)
        if num_queries is None:
            num_queries = min(DEFAULT_QUERIES, max(1, num_input_tokens))
        self.num_queries = int_option(NAME, "num_queries", num_queries, 1, 4096)
        self.depth = int_option(NAME, "depth", depth, 1, 64)
        width = int_option(NAME, "hidden_size", hidden_size or min(DEFAULT_WIDTH, vision_dim), 1, 16384)
        self.hidden_size = width
        self.heads = int_option(NAME, "heads", heads or default_heads(width), 1, width)
        divides(NAME, "heads", self.heads, "hidden_size", width)
        self.intermediate_size = int_option(NAME, "intermediate_size", intermediate_size or 4 * width, 1, 65536)
        self.cross_attention_every = int_option(NAME, "cross_attention_every", cross_attention_every, 1, 64)
        config = Blip2QFormerConfig(
            hidden_size=width,
            num_hidden_layers=self.depth,
            num_attention_heads=self.heads,
            intermediate_size=self.intermediate_size,
            cross_attention_frequency=self.cross_attention_every,
            encoder_hidden_size=vision_dim,
            hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0,
            use_qformer_text_input=False,
            attn_implementation="sdpa",
        )
        self.vision_norm = nn.LayerNorm(vision_dim)
        self.query_tokens = nn.Parameter(torch.empty(1, self.num_queries, width).normal_(0.0, config.initializer_range))
        self.qformer = Blip2QFormerModel(config)
        self.projection = nn.Linear(width, language_dim)

    @property
    def num_output_tokens(self) -> int:
        return self.num_queries

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        queries = self.query_tokens.expand(features.shape[0], -1, -1)
        output = self.qformer(query_embeds=queries, encoder_hidden_states=self.vision_norm(features))
        return self.projection(output.last_hidden_state)

    def options(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in OPTION_KEYS}
