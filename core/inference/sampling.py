"""Per-row sampling inside one batched ``generate``: each row has its own temperature, top-p and seed."""

from __future__ import annotations

import secrets
from collections.abc import Sequence

import torch
from transformers import LogitsProcessor

from medzoo.core.inference.settings import SamplingSettings


class RowSampler(LogitsProcessor):
    """Samples the next token of every sampling row itself and leaves only that token finite.

    ``generate`` then runs greedy (argmax), so greedy rows keep Hugging Face's exact greedy behaviour and
    sampling rows draw from their own ``torch.Generator`` (seeded per request), whatever the batch holds.
    """

    def __init__(self, params: Sequence[SamplingSettings]) -> None:
        self.rows = [index for index, p in enumerate(params) if not p.greedy]
        self.temperature = torch.tensor([params[i].temperature for i in self.rows], dtype=torch.float32)
        self.top_p = torch.tensor([params[i].top_p for i in self.rows], dtype=torch.float32)
        self.generators = [
            torch.Generator().manual_seed(params[i].seed if params[i].seed is not None else secrets.randbits(63))
            for i in self.rows
        ]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if not self.rows:
            return scores
        logits = scores[self.rows].float().cpu() / self.temperature[:, None]
        probs = top_p_filter(torch.softmax(logits, dim=-1), self.top_p)
        chosen = [
            int(torch.multinomial(probs[k], 1, generator=generator)) for k, generator in enumerate(self.generators)
        ]
        for row, token in zip(self.rows, chosen, strict=True):
            scores[row] = float("-inf")
            scores[row, token] = 0.0
        return scores


def top_p_filter(probs: torch.Tensor, top_p: torch.Tensor) -> torch.Tensor:
    """Keep each row's smallest set of most likely tokens whose mass reaches its ``top_p`` (at least one)."""
    ordered, order = probs.sort(dim=-1, descending=True)
    mass_before = ordered.cumsum(dim=-1) - ordered
    ordered = ordered.masked_fill(mass_before >= top_p[:, None], 0.0)
    filtered = torch.zeros_like(probs).scatter(-1, order, ordered)
    return filtered / filtered.sum(dim=-1, keepdim=True)
