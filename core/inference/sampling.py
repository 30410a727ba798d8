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

    A row's random numbers are drawn up front: ``max_new_tokens`` uniforms from its own generator, the t-th
    picking its t-th token by inverse transform sampling (the first token whose cumulative probability exceeds
    it), so every step samples all rows at once with no per-row work, and a row's tokens depend only on its
    logits and its seed.
    """

    def __init__(self, params: Sequence[SamplingSettings]) -> None:
        self.rows = [index for index, p in enumerate(params) if not p.greedy]
        self.row_index = torch.tensor(self.rows, dtype=torch.long)
        self.temperature = torch.tensor([params[i].temperature for i in self.rows], dtype=torch.float32)
        self.top_p = torch.tensor([params[i].top_p for i in self.rows], dtype=torch.float32)
        self.filtered = self.top_p < 1.0
        self.any_filtered = bool(self.filtered.any())
        self.every_row = self.rows == list(range(len(params)))
        #: dividing by a temperature of 1 changes nothing, so it is skipped when every row has it
        self.unscaled = bool((self.temperature == 1.0).all())
        budget = max((params[i].max_new_tokens for i in self.rows), default=0)
        #: ``[rows, budget]``: row k's t-th uniform; a row's steps after its own budget (its tokens are discarded
        #: once it has finished) reuse 0.5, so no row's draws depend on another row's budget
        self.uniforms = torch.full((len(self.rows), budget), 0.5, dtype=torch.float64)
        for k, i in enumerate(self.rows):
            seed = params[i].seed if params[i].seed is not None else secrets.randbits(63)
            own = params[i].max_new_tokens
            self.uniforms[k, :own] = torch.rand(own, generator=torch.Generator().manual_seed(seed),
                                                dtype=torch.float64)
        self.step = 0

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if not self.rows:
            return scores
        chosen = self.choose(scores)
        rows = self.row_index.to(scores.device)
        scores[rows] = float("-inf")
        scores[rows, chosen.to(scores.device)] = 0.0
        return scores

    def choose(self, scores: torch.Tensor) -> torch.Tensor:
        """The next token of every sampling row (in ``rows`` order, on the CPU) from the batch's ``scores``; each
        call is the next step."""
        if self.every_row and scores.dtype == torch.float32 and scores.device.type == "cpu":
            logits = scores  # softmax below makes a new tensor, so the caller's scores are never changed
        else:
            logits = scores[self.row_index.to(scores.device)].float().cpu()
        if not self.unscaled:
            logits = logits / self.temperature[:, None]
        probs = torch.softmax(logits, dim=-1)
        if self.any_filtered:
            probs[self.filtered] = top_p_filter(probs[self.filtered], self.top_p[self.filtered])
        column = min(self.step, self.uniforms.shape[1] - 1)
        self.step += 1
        return inverse_transform(probs, self.uniforms[:, column])


def inverse_transform(probs: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """Per row, the first token whose cumulative probability exceeds ``uniform`` x the row's total mass (never a
    token of probability 0)."""
    cumulative = probs.cumsum(dim=-1, dtype=torch.float64)
    targets = (uniforms.double() * cumulative[:, -1]).unsqueeze(-1)
    chosen = torch.searchsorted(cumulative, targets, right=True).squeeze(-1).clamp_(max=probs.shape[-1] - 1)
    # only a pick past the last possible token (rounding at the top of the cumulative mass) has probability 0:
    # any earlier token of probability 0 has the cumulative mass of the one before it, which was picked first
    if bool((probs.gather(-1, chosen[:, None]) > 0).all()):
        return chosen
    last_possible = probs.shape[-1] - 1 - (probs > 0).flip(-1).int().argmax(dim=-1)
    return torch.minimum(chosen, last_possible)


def top_p_filter(probs: torch.Tensor, top_p: torch.Tensor) -> torch.Tensor:
    """Keep each row's smallest set of most likely tokens whose mass reaches its ``top_p`` (at least one)."""
    ordered, order = probs.sort(dim=-1, descending=True)
    mass_before = ordered.cumsum(dim=-1) - ordered
    ordered = ordered.masked_fill(mass_before >= top_p[:, None], 0.0)
    filtered = torch.zeros_like(probs).scatter(-1, order, ordered)
    return filtered / filtered.sum(dim=-1, keepdim=True)
