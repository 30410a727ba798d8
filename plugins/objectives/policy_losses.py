"""GRPO's group-relative advantages and clipped policy loss, from rewards and per-token log-probabilities.

The formulas follow TRL's ``GRPOTrainer`` (huggingface/trl ``trl/trainer/grpo_trainer.py``,
``_generate_and_score_completions`` and ``_compute_loss``):

- advantages: ``reward - mean(group)``, divided by ``std + 1e-4`` where ``scale`` is ``group`` (the group's
  unbiased std) or ``batch`` (the whole batch's), not divided where ``scale`` is ``none`` (Dr. GRPO); a group
  whose rewards are all equal (std 0) has zero advantages and teaches nothing: it is counted;
- per token: ``-min(r * A, clip(r, 1 - clip_low, 1 + clip_high) * A)`` with ``r = exp(logp - old_logp)``, plus
  ``beta`` times the k3 estimate of KL to the reference, ``exp(ref - logp) - (ref - logp) - 1`` (optionally times
  ``r``: TRL's ``use_bias_correction_kl``, on by default in TRL 1.16.0, off here as in the GRPO paper);
- reduction (``normalisation``): ``grpo`` (each completion's token mean, averaged over completions), ``dapo``
  (token sum over the tokens of the whole batch), ``dr_grpo`` (token sum over completions x the completion
  budget). medzoo reduces over the whole optimizer step (all micro-batches, all processes) so that accumulation
  and data parallelism give the gradient of one big batch: the micro-batch's share is its sum divided by the
  step's normaliser (:func:`loss_normaliser`).

``tests/test_trl_agreement.py`` checks values and gradients against TRL 1.16.0's own code.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

SCALINGS = ("group", "batch", "none")
NORMALISATIONS = ("grpo", "dapo", "dr_grpo")
STD_EPSILON = 1e-4


def group_advantages(rewards: torch.Tensor, group_size: int, scale: str = "group") -> tuple[torch.Tensor, torch.Tensor]:
    """``(advantages [N], equal [N / group_size])`` for ``rewards [N]`` ordered group by group; ``equal`` marks
    the groups whose rewards are all the same."""
    if scale not in SCALINGS:
        raise ValueError(f"scale_rewards: {scale!r} is not allowed; expected one of {', '.join(SCALINGS)}")
    if rewards.numel() % group_size:
        raise ValueError(f"{rewards.numel()} rewards do not form groups of {group_size}")
    grouped = rewards.float().view(-1, group_size)
    means = grouped.mean(dim=1).repeat_interleave(group_size)
    group_std = grouped.std(dim=1) if group_size > 1 else torch.zeros(grouped.size(0))
    equal = torch.isclose(group_std, torch.zeros_like(group_std))
    advantages = rewards.float() - means
    if scale == "group":
        advantages = advantages / (group_std.repeat_interleave(group_size) + STD_EPSILON)
    elif scale == "batch":
        advantages = advantages / (rewards.float().std() + STD_EPSILON)
    return advantages, equal


def per_token_policy_loss(
    logps: torch.Tensor,
    old_logps: torch.Tensor,
    advantages: torch.Tensor,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    ref_logps: torch.Tensor | None = None,
    beta: float = 0.0,
    kl_ratio_correction: bool = False,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The loss of every completion token (``logps`` and ``old_logps``: ``[tokens]``, ``advantages``: each token's
    completion's advantage, ``[tokens]``) and, per token, ``clipped`` (1.0 where the clipped term was taken) and
    ``kl`` (where ``beta`` is not 0). ``kl_ratio_correction`` multiplies the KL term by the (differentiable) ratio,
    DeepSeek-V3.2's unbiased KL gradient: it changes the gradient even where the ratio is 1."""
    ratio = torch.exp(logps - old_logps)
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1 - clip_low, 1 + clip_high) * advantages
    losses = -torch.min(unclipped, clipped)
    parts = {"clipped": (clipped < unclipped).float().detach()}
    if beta:
        if ref_logps is None:
            raise ValueError("beta is not 0 but no reference log-probabilities were given")
        delta = ref_logps - logps
        kl = torch.exp(delta) - delta - 1
        if kl_ratio_correction:
            kl = kl * ratio
        losses = losses + beta * kl
        parts["kl"] = kl.detach()
    return losses, parts


def loss_normaliser(
    completion_lengths: Sequence[int], normalisation: str, max_completion_length: int
) -> dict[str, float]:
    """What each completion's summed token loss is divided by, for the whole step's completions: per completion
    (``grpo``: its own length times the step's completion count) or one number for all (``dapo``, ``dr_grpo``)."""
    if normalisation not in NORMALISATIONS:
        raise ValueError(f"normalisation: {normalisation!r} is not allowed; expected one of {', '.join(NORMALISATIONS)}")
    count = max(1, len(completion_lengths))
    if normalisation == "grpo":
        return {"completions": float(count)}
    if normalisation == "dapo":
        return {"tokens": float(max(1, sum(completion_lengths)))}
    return {"tokens": float(count * max_completion_length)}


def reduce_policy_loss(
    token_losses: torch.Tensor, rows: torch.Tensor, num_rows: int, normalisation: str, normaliser: dict[str, float]
) -> torch.Tensor:
    """The micro-batch's share of the step loss from its token losses (``rows``: each token's completion)."""
    if normalisation == "grpo":
        sums = torch.zeros(num_rows, dtype=token_losses.dtype, device=token_losses.device).index_add(0, rows, token_losses)
        counts = torch.bincount(rows, minlength=num_rows).clamp(min=1).to(token_losses.dtype)
        return (sums / counts).sum() / normaliser["completions"]
    return token_losses.sum() / normaliser["tokens"]
