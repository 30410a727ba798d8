"""The preference losses of DPO and IPO, per pair, from policy and reference log-probabilities.

The formulas follow TRL's ``DPOTrainer.dpo_loss`` (huggingface/trl ``trl/trainer/dpo_trainer.py`` at commit
a68fb896f008f58a3d37abf11ae665357b7c679a): with ``logits = (chosen - rejected) - (ref_chosen - ref_rejected)``,
``sigmoid`` is ``-logsigmoid(beta * logits) * (1 - eps) - logsigmoid(-beta * logits) * eps`` (DPO, with cDPO's
label smoothing ``eps``) and ``ipo`` is ``(logits - 1 / (2 * beta)) ** 2`` over per-token mean log-probabilities;
the rewards are ``beta * (logps - ref_logps)``, detached. ``tests/test_trl_agreement.py`` checks the ``dpo``
objective's losses and gradients against TRL 1.16.0's own ``DPOTrainer._compute_loss`` (whose ``sigmoid`` no longer
takes label smoothing: cDPO is its ``aot`` loss on one pair).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

LOSS_TYPES = ("sigmoid", "ipo")


def preference_losses(
    chosen: torch.Tensor,
    rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    beta: float,
    loss_type: str = "sigmoid",
    label_smoothing: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(losses, chosen_rewards, rejected_rewards)``, each ``[pairs]``; a reference-free loss passes zeros as the
    reference log-probabilities."""
    logits = (chosen - rejected) - (ref_chosen - ref_rejected)
    if loss_type == "sigmoid":
        losses = (-F.logsigmoid(beta * logits) * (1 - label_smoothing)
                  - F.logsigmoid(-beta * logits) * label_smoothing)
    elif loss_type == "ipo":
        losses = (logits - 1 / (2 * beta)) ** 2
    else:
        raise ValueError(f"loss: {loss_type!r} is not a preference loss; expected one of {', '.join(LOSS_TYPES)}")
    chosen_rewards = beta * (chosen - ref_chosen).detach()
    rejected_rewards = beta * (rejected - ref_rejected).detach()
    return losses, chosen_rewards, rejected_rewards
