"""Call TRL's own DPO and GRPO loss code without building a trainer or loading a model.

``DPOTrainer._compute_loss``, ``GRPOTrainer._generate_and_score_completions`` and ``GRPOTrainer._compute_loss`` are
methods of trainers whose constructors load models and datasets. Here they are called on an instance made with
``__new__`` that carries only the attributes those methods read (the values ``DPOConfig`` / ``GRPOConfig`` give
them by default unless a test sets them), with a one-process accelerator and models that return given
log-probabilities through TRL's fused-LM-head interface (``model(..., labels=..., fused_lm_head=True)`` returning
per-token ``log_probs``, 0 where the next label is -100). Everything between those inputs and the loss is TRL's code.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Callable, Sequence
from types import SimpleNamespace

import torch
from torch import nn
from trl import DPOTrainer, GRPOTrainer


class OneProcess:
    """What the trainers read of ``accelerate.Accelerator``, for ``num_processes`` processes of which this is one
    (``gather`` / ``reduce`` see only this process's values, as on a single process)."""

    device = torch.device("cpu")
    is_main_process = True
    process_index = 0
    sync_gradients = True

    def __init__(self, num_processes: int = 1) -> None:
        self.num_processes = num_processes

    def gather(self, tensor):
        return tensor

    gather_for_metrics = gather

    def reduce(self, tensor, reduction: str = "sum"):
        return tensor

    def autocast(self):
        return contextlib.nullcontext()

    def unwrap_model(self, model):
        return model


def metrics_store() -> defaultdict:
    return defaultdict(lambda: defaultdict(list))


# -- DPO --------------------------------------------------------------------------------------------------------

class FusedHead(nn.Module):
    """TRL's fused-LM-head output for a model giving logits ``[B, T, V]``: per position, the log-probability of the
    next token where its label is not -100 (and the other per-token fields the DPO trainer logs)."""

    def __init__(self, logits_of: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.logits_of = logits_of
        self.training = True
        self.is_gradient_checkpointing = False

    def forward(self, input_ids, labels=None, fused_lm_head=False, **_):
        assert fused_lm_head, "TRL's trainers call the model with fused_lm_head=True"
        logits = self.logits_of(input_ids)[:, :-1].float()
        targets = labels[:, 1:]
        mask = targets != -100
        log_softmax = torch.log_softmax(logits, dim=-1)
        log_probs = log_softmax.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1) * mask
        entropy = -(log_softmax.exp() * log_softmax).sum(-1).detach() * mask
        return SimpleNamespace(log_probs=log_probs, entropy=entropy, mean_logits=logits.detach().mean(-1) * mask,
                               is_top1=(logits.argmax(-1) == targets) & mask, log_sum_sq_probs=None, aux_loss=None)


def dpo_trainer(
    policy: nn.Module, loss_type: Sequence[str], beta: float, loss_weights: Sequence[float] | None = None,
    label_smoothing: float = 0.0, ref_model: nn.Module | None = None, precompute_ref_logps: bool = False,
) -> DPOTrainer:
    """A ``DPOTrainer`` training ``policy``, with the attributes ``_compute_loss`` reads (``DPOConfig`` defaults
    otherwise: reverse-KL f-divergence, no length desensitisation, no WPO weighting, no MoE auxiliary loss)."""
    trainer = DPOTrainer.__new__(DPOTrainer)
    trainer.model = policy
    trainer.accelerator = OneProcess()
    trainer.args = SimpleNamespace(gradient_checkpointing_kwargs=None)
    trainer.beta = beta
    trainer.loss_types = list(loss_type)
    trainer.loss_weights = list(loss_weights) if loss_weights is not None else [1.0] * len(loss_type)
    trainer.label_smoothing = label_smoothing
    trainer.ref_model = ref_model
    trainer.precompute_ref_logps = precompute_ref_logps
    trainer.ld_alpha = None
    trainer.f_divergence_type = "reverse_kl"
    trainer.f_alpha_divergence_coef = 0.5
    trainer.use_weighting = False
    trainer.aux_loss_enabled = False
    trainer._metrics = metrics_store()
    trainer._total_train_tokens = 0
    trainer._tp_size = 1
    return trainer


# -- GRPO -------------------------------------------------------------------------------------------------------

class GivenLogProbs(nn.Module):
    """A policy whose fused-head forward returns the given completion log-probabilities ``[B, C]`` (the prompt
    positions before them get 0); TRL's ``_get_per_token_logps_and_entropies`` keeps the last ``C`` columns."""

    def __init__(self, completion_logps: torch.Tensor) -> None:
        super().__init__()
        self.completion_logps = completion_logps
        self.training = True
        self.is_gradient_checkpointing = False

    def forward(self, input_ids, labels=None, fused_lm_head=False, **_):
        assert fused_lm_head, "TRL's trainers call the model with fused_lm_head=True"
        rows, completion = self.completion_logps.shape
        prompt = torch.zeros(rows, input_ids.shape[1] - completion, dtype=self.completion_logps.dtype)
        log_probs = torch.cat([prompt, self.completion_logps], dim=1)
        return SimpleNamespace(log_probs=log_probs, entropy=torch.zeros_like(log_probs).detach(), aux_loss=None)


def grpo_trainer(
    loss_type: str = "dapo", beta: float = 0.0, epsilon: float = 0.2, epsilon_high: float | None = None,
    max_completion_length: int = 8, scale_rewards: str = "group", num_generations: int = 4,
    gradient_accumulation_steps: int = 1, num_processes: int = 1, use_bias_correction_kl: bool = True,
) -> GRPOTrainer:
    """A ``GRPOTrainer`` with the attributes its advantage and loss code reads (``GRPOConfig`` defaults otherwise:
    token-level importance sampling, no two-sided ``delta`` clip, no entropy mask or bonus, no vLLM correction,
    one iteration per generation, ``steps_per_generation`` = ``gradient_accumulation_steps``)."""
    trainer = GRPOTrainer.__new__(GRPOTrainer)
    trainer.model = SimpleNamespace(training=True, is_gradient_checkpointing=False)
    trainer.accelerator = OneProcess(num_processes)
    trainer.args = SimpleNamespace(
        use_bias_correction_kl=use_bias_correction_kl, delta=None, steps_per_generation=gradient_accumulation_steps,
        gradient_accumulation_steps=gradient_accumulation_steps, per_device_train_batch_size=num_generations,
        gradient_checkpointing_kwargs=None, report_to=[],
    )
    trainer.state = SimpleNamespace(global_step=0, num_input_tokens_seen=0)
    trainer.loss_type = loss_type
    trainer.beta = beta
    trainer.epsilon_low = epsilon
    trainer.epsilon_high = epsilon_high if epsilon_high is not None else epsilon
    trainer.max_completion_length = max_completion_length
    trainer.scale_rewards = scale_rewards
    trainer.num_generations = num_generations
    trainer.num_iterations = 1
    trainer.current_gradient_accumulation_steps = gradient_accumulation_steps
    trainer.importance_sampling_level = "token"
    trainer.top_entropy_quantile = 1.0
    trainer.off_policy_mask_threshold = None
    trainer.use_vllm = False
    trainer.vllm_importance_sampling_correction = False
    trainer._entropy_bonus_enabled = False
    trainer.aux_loss_enabled = False
    trainer.multi_objective_aggregation = "sum_then_normalize"
    trainer._metrics = metrics_store()
    return trainer


def trl_advantages(
    rewards: Sequence[float], completion_lengths: Sequence[int], num_generations: int, scale_rewards: str,
) -> tuple[dict, dict]:
    """``(output, metrics)`` of ``GRPOTrainer._generate_and_score_completions`` for completions of the given lengths
    (token ids 1..; none ends with EOS), scored by one reward function that returns ``rewards``."""
    trainer = grpo_trainer(scale_rewards=scale_rewards, num_generations=num_generations)
    count = len(rewards)
    trainer.rollout_func = lambda prompts, _trainer: {
        "prompt_ids": [[7, 8, 9] for _ in prompts],
        "completion_ids": [list(range(1, length + 1)) for length in completion_lengths],
        "logprobs": [[0.0] * length for length in completion_lengths],
    }

    def given(prompts, completions, completion_ids, **_):
        assert len(completions) == count
        return list(rewards)

    trainer.reward_funcs = [given]
    trainer.reward_processing_classes = [None]
    trainer.reward_func_names = ["given"]
    trainer.reward_weights = torch.ones(1)
    trainer.processing_class = SimpleNamespace(batch_decode=lambda ids, **_: [" ".join(map(str, row)) for row in ids])
    trainer._tokenizer = SimpleNamespace(pad_token_id=0)
    trainer.eos_token_ids = [0]
    trainer.pad_to_multiple_of = None
    trainer.mask_truncated_completions = False
    trainer.environment_factories = None
    trainer.environments = None
    trainer.tools = None
    trainer.ref_model = None
    trainer.log_multimodal = False
    trainer._last_loaded_step = 0
    trainer._logs = {"images": [], "prompt": [], "completion": [], "advantages": [],
                     "rewards": defaultdict(list), "extra": defaultdict(list)}
    trainer._pending_extra_logs = defaultdict(list)
    trainer._pending_metrics = defaultdict(list)
    output = trainer._generate_and_score_completions([{"prompt": f"question {i // num_generations}"}
                                                      for i in range(count)])
    return output, trainer._metrics["train"]


def trl_policy_loss(trainer: GRPOTrainer, completion_logps: torch.Tensor, inputs: dict) -> torch.Tensor:
    """``GRPOTrainer._compute_loss`` for a micro-batch whose policy gives ``completion_logps`` ``[B, C]``; ``inputs``
    holds ``completion_mask``, ``advantages`` and, where used, ``old_per_token_logps``, ``ref_per_token_logps`` and
    ``num_items_in_batch`` (prompt ids are made up: the given log-probabilities stand for the model)."""
    rows, completion = completion_logps.shape
    prompt_ids = torch.full((rows, 3), 5, dtype=torch.long)
    completion_ids = torch.where(inputs["completion_mask"].bool(), 6, 0)
    batch = {"prompt_ids": prompt_ids, "prompt_mask": torch.ones_like(prompt_ids),
             "completion_ids": completion_ids, **inputs}
    return trainer._compute_loss(GivenLogProbs(completion_logps), batch)
