"""``grpo``: group relative policy optimisation with verifiable rewards (MedVLM-R1, Med-R1, ColonR1's recipe).

Each record's conversation up to its last reply is a prompt, the last reply its reference answer. Per rollout
batch the policy samples ``group_size`` completions of every prompt; each completion's reward is the weighted sum
of the recipe's rewards; its advantage is its reward relative to its group (see ``policy_losses``); the loss is the
clipped-ratio policy loss over the completion tokens, plus ``beta`` x KL to the stage's starting model.

Options:

- ``rewards``: ``{name: weight}`` or ``{name: {weight: w, <the reward's options>}}`` (registered rewards); an
  entry with ``reward: <plugin>`` uses that plugin under its own log name (one reward twice, e.g. IoU and hit);
- ``group_size`` (>= 2), ``temperature``, ``top_p``, ``max_completion_length``: how completions are sampled;
- ``scale_rewards``: ``group`` (default), ``batch`` or ``none`` (Dr. GRPO);
- ``normalisation``: ``grpo`` (default), ``dapo`` or ``dr_grpo``;
- ``clip_low`` / ``clip_high``: the ratio's clip range (``clip_high`` defaults to ``clip_low``; DAPO: 0.28);
- ``beta`` (default 0): the KL term's weight; with ``beta`` > 0 the stage forms a reference (``reference``:
  ``auto``, ``adapters_off`` or ``copy``); ``kl_ratio_correction``: the KL term times the importance ratio (TRL
  1.16's default ``use_bias_correction_kl``; off here, as in the GRPO paper);
- ``updates_per_rollout`` (default 1): optimizer steps on each rollout batch (TRL's ``num_iterations``);
- ``rollouts``: ``{backend: engine}`` (default; ``batch_rows`` completions per generate call) or
  ``{backend: vllm, ...}`` (see docs/objectives.md).

Logged per step: ``reward`` (the weighted sum's mean), ``rewards/<name>`` (each reward's mean), ``reward/std``
(mean within-group std), ``groups/equal`` (the share of groups whose rewards are all equal: no signal),
``completions/length``, ``completions/truncated`` (share that hit the budget), ``policy/clip_ratio`` and
``policy/kl``.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from medzoo import (
    IGNORE_INDEX,
    IMAGE_PLACEHOLDER,
    EncodedSample,
    EngineRollouts,
    Message,
    Objective,
    ObjectiveLoss,
    RecordRejected,
    Reward,
    RewardContext,
    RolloutRequest,
    collate,
    components,
    token_log_probs,
)
from medzoo.plugins.objectives.option_checks import check_choice, check_number
from medzoo.plugins.objectives.policy_losses import (
    NORMALISATIONS,
    SCALINGS,
    group_advantages,
    loss_normaliser,
    per_token_policy_loss,
    reduce_policy_loss,
)

REFERENCE_MODES = ("auto", "adapters_off", "copy")
ROLLOUT_BACKENDS = ("engine", "vllm")
#: batch keys the loss reads besides the model's inputs
EXTRA_KEYS = ("advantages", "old_logps")


@dataclass
class PromptSample:
    """A record as a prompt: its encoded turns up to the reply, and what the rewards compare completions with."""

    prompt: EncodedSample
    messages: list[Message]
    image: Path | None
    context: RewardContext
    sample_id: str
    truncated: bool = False

    def __len__(self) -> int:
        return len(self.prompt)


@dataclass
class RolloutRow:
    """One completion as a training row: prompt + completion tokens, labels on the completion."""

    sample: EncodedSample
    advantage: float
    prompt_index: int
    completion_tokens: int
    old_logps: torch.Tensor | None = None

    @property
    def sample_id(self) -> str:
        return self.sample.sample_id

    def __len__(self) -> int:
        return len(self.sample)


class GroupRelativeObjective(Objective):
    name = "grpo"
    supports_packing = False
    generates_rollouts = True

    def __init__(
        self,
        rewards: Mapping[str, Any] | None = None,
        group_size: int = 4,
        temperature: float = 1.0,
        top_p: float = 1.0,
        max_completion_length: int = 64,
        scale_rewards: str = "group",
        normalisation: str = "grpo",
        clip_low: float = 0.2,
        clip_high: float | None = None,
        beta: float = 0.0,
        kl_ratio_correction: bool = False,
        updates_per_rollout: int = 1,
        reference: str = "auto",
        rollouts: Mapping[str, Any] | None = None,
    ) -> None:
        if not rewards or not isinstance(rewards, Mapping):
            raise ValueError(f"rewards: {rewards!r} is not allowed; expected a mapping of reward names to weights, "
                             "e.g. {exact-match: 1.0}")
        _check_integer("group_size", group_size, 2)
        check_number("temperature", temperature, low=0.0, low_open=True)
        check_number("top_p", top_p, low=0.0, low_open=True, high=1.0 + 1e-12)
        _check_integer("max_completion_length", max_completion_length, 1)
        check_choice("scale_rewards", scale_rewards, SCALINGS)
        check_choice("normalisation", normalisation, NORMALISATIONS)
        check_number("clip_low", clip_low, low=0.0, high=1.0)
        if clip_high is not None:
            check_number("clip_high", clip_high, low=0.0)
        check_number("beta", beta, low=0.0)
        if not isinstance(kl_ratio_correction, bool):
            raise ValueError(f"kl_ratio_correction: {kl_ratio_correction!r} is not allowed; expected true or false")
        _check_integer("updates_per_rollout", updates_per_rollout, 1)
        check_choice("reference", reference, REFERENCE_MODES)
        rollouts = dict(rollouts or {})
        check_choice("rollouts.backend", rollouts.get("backend", "engine"), ROLLOUT_BACKENDS)
        if rollouts.get("backend", "engine") == "vllm":
            from medzoo.plugins.objectives.vllm_switch import check_vllm_options

            check_vllm_options({k: v for k, v in rollouts.items() if k != "backend"})
        if rollouts.get("backend", "engine") == "engine":
            unknown = sorted(set(rollouts) - {"backend", "batch_rows"})
            if unknown:
                raise ValueError(f"rollouts.{unknown[0]}: not an option of the engine backend; expected batch_rows")
        super().__init__(rewards=_plain(rewards), group_size=group_size, temperature=temperature, top_p=top_p,
                         max_completion_length=max_completion_length, scale_rewards=scale_rewards,
                         normalisation=normalisation, clip_low=clip_low, clip_high=clip_high, beta=beta,
                         kl_ratio_correction=kl_ratio_correction, updates_per_rollout=updates_per_rollout, reference=reference, rollouts=rollouts)
        self.rewards = build_rewards(rewards)
        self.group_size = group_size
        self.temperature, self.top_p = float(temperature), float(top_p)
        self.max_completion_length = max_completion_length
        self.scale_rewards, self.normalisation = scale_rewards, normalisation
        self.clip_low = float(clip_low)
        self.clip_high = float(clip_low if clip_high is None else clip_high)
        self.beta = float(beta)
        self.kl_ratio_correction = kl_ratio_correction
        self.updates_per_rollout = updates_per_rollout
        #: how the trainer forms the reference when ``beta`` > 0 (auto | adapters_off | copy)
        self.reference_mode = reference
        self.rollout_options = rollouts

    @property
    def needs_reference(self) -> bool:
        return self.beta > 0

    def describe(self) -> dict[str, Any]:
        """Every option, each reward as ``{weight, <its options>}`` and the rollout backend named (``run.json``)."""
        rewards = {name: {"weight": weight, **({"reward": reward.name} if reward.name != name else {}),
                          **{k: v for k, v in reward.describe().items() if k != "name"}}
                   for name, (reward, weight) in self.rewards.items()}
        return {**super().describe(), "rewards": rewards, "rollouts": {"backend": "engine", **self.rollout_options}}

    # -- data ---------------------------------------------------------------------------------------------------

    def encode(self, processor: Any, record: Any, max_length: int) -> PromptSample:
        messages = list(record.messages)
        if not messages or messages[-1].role != "assistant":
            raise RecordRejected("no reference answer",
                                 f"record {record.id}: its conversation does not end with an assistant reply")
        prompt_turns = messages[:-1]
        images = len(record.images)
        prompt = processor.encode_text(prompt_turns, images, add_generation_prompt=True, sample_id=record.id,
                                       image_sizes=processor.record_image_sizes(record.images))
        if len(prompt) >= max_length:
            raise RecordRejected("prompt longer than max_length",
                                 f"record {record.id}: its prompt takes {len(prompt)} tokens, max_length is "
                                 f"{max_length}; no completion token would fit")
        question = next((m.content for m in reversed(prompt_turns) if m.role == "user"), "")
        context = RewardContext(record.id, messages[-1].content.strip(),
                                question.replace(IMAGE_PLACEHOLDER, "").strip(), dict(record.metadata))
        return PromptSample(prompt, prompt_turns, record.image, context, record.id)

    def normaliser(self, samples: Sequence[Any]) -> Any:
        raise NotImplementedError("objective 'grpo' normalises by its rollouts (rollout_normaliser)")

    def rollout_backend(self, stage: Any) -> Any:
        """medzoo's engine (default) or vLLM, as the ``rollouts`` option says."""
        options = dict(self.rollout_options)
        backend = options.pop("backend", "engine")
        if backend == "vllm":
            from medzoo.plugins.objectives.vllm_switch import vllm_backend

            return vllm_backend(options)
        return EngineRollouts(getattr(stage, "template", None), **options)

    def rollout_requests(self, samples: Sequence[PromptSample], seeds: Sequence[int], max_length: int
                         ) -> list[RolloutRequest]:
        return [
            RolloutRequest(sample.sample_id, sample.messages, sample.image, self.group_size, seed, self.temperature,
                           self.top_p, min(self.max_completion_length, max_length - len(sample.prompt)),
                           prompt=sample.prompt)
            for sample, seed in zip(samples, seeds, strict=True)
        ]

    def rollout_rows(self, samples: Sequence[PromptSample], completions: Sequence[Sequence[Any]], gather: Any
                     ) -> tuple[list[RolloutRow], dict[str, float]]:
        texts, contexts, owners = [], [], []
        for index, (sample, group) in enumerate(zip(samples, completions, strict=True)):
            for completion in group:
                texts.append(completion.text)
                contexts.append(RewardContext(sample.context.record_id, sample.context.reference,
                                              sample.context.question, sample.context.metadata,
                                              len(completion.token_ids), completion.finish_reason))
                owners.append(index)
        each = {name: torch.tensor(reward.score_batch(texts, contexts), dtype=torch.float32)
                for name, (reward, _) in self.rewards.items()}
        for name, values in each.items():
            if not torch.isfinite(values).all():
                bad = int((~torch.isfinite(values)).nonzero()[0])
                raise ValueError(f"reward {name!r} gave {values[bad].item()} for a completion of record "
                                 f"{contexts[bad].record_id}; expected a finite number")
        total = sum(weight * each[name] for name, (_, weight) in self.rewards.items())
        scale = "none" if self.scale_rewards == "batch" else self.scale_rewards
        advantages, equal = group_advantages(total, self.group_size, scale)
        if self.scale_rewards == "batch":
            advantages = advantages / (gather(total).std() + 1e-4)
        rows = []
        flat = [completion for group in completions for completion in group]
        for k, (completion, owner, advantage) in enumerate(zip(flat, owners, advantages.tolist(), strict=True)):
            prompt = samples[owner].prompt
            ids = list(completion.token_ids)
            sample = EncodedSample([*prompt.input_ids, *ids], [IGNORE_INDEX] * len(prompt) + ids, None, False,
                                   f"{samples[owner].sample_id}#{k % self.group_size}", prompt.image_sizes)
            rows.append(RolloutRow(sample, advantage, owner, len(ids)))
        grouped = total.view(-1, self.group_size)
        metrics = {
            "reward": total.mean().item(),
            **{f"rewards/{name}": values.mean().item() for name, values in each.items()},
            "reward/std": grouped.std(dim=1).mean().item(),
            "groups/equal": equal.float().mean().item(),
            "completions/length": sum(len(c.token_ids) for c in flat) / max(1, len(flat)),
            "completions/truncated": sum(c.finish_reason == "length" for c in flat) / max(1, len(flat)),
        }
        return rows, metrics

    def rollout_normaliser(self, completion_lengths: Sequence[int]) -> dict[str, float]:
        normaliser = loss_normaliser(completion_lengths, self.normalisation, self.max_completion_length)
        return {**normaliser, "all_tokens": float(max(1, sum(completion_lengths))),
                "all_completions": float(max(1, len(completion_lengths)))}

    def collate(self, samples: Sequence[RolloutRow], pixels: Sequence[torch.Tensor | None], pad_id: int,
                packing: bool = False, capacity: int | None = None) -> dict[str, torch.Tensor]:
        if packing:
            raise ValueError("objective 'grpo' cannot pack samples; expected packing: false")
        rows = [EncodedSample(r.sample.input_ids, r.sample.labels, p, False, r.sample_id, r.sample.image_sizes)
                for r, p in zip(samples, pixels, strict=True)]
        batch = collate(rows, pad_id, padding_side="right")
        batch["advantages"] = torch.tensor([r.advantage for r in samples], dtype=torch.float32)
        if all(r.old_logps is not None for r in samples):
            batch["old_logps"] = torch.cat([r.old_logps for r in samples])
        return batch

    # -- loss ---------------------------------------------------------------------------------------------------

    def behaviour_log_probs(self, model: Any, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            log_probs, rows = token_log_probs(model, _model_inputs(batch), self.temperature)
        return log_probs.detach(), rows

    def reference_values(self, model: Any, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The reference's log-probability of every completion token (``[tokens]``, row-major)."""
        return self.behaviour_log_probs(model, batch)[0]

    def loss(self, model: Any, batch: Mapping[str, torch.Tensor], normaliser: dict[str, float], scale: float = 1.0,
             reference: torch.Tensor | None = None) -> ObjectiveLoss:
        log_probs, rows = token_log_probs(model, _model_inputs(batch), self.temperature)
        old = batch["old_logps"].to(log_probs) if "old_logps" in batch else log_probs.detach()
        advantages = batch["advantages"].to(log_probs)[rows]
        losses, parts = per_token_policy_loss(log_probs, old, advantages, self.clip_low, self.clip_high,
                                              None if reference is None else reference.to(log_probs), self.beta,
                                              self.kl_ratio_correction)
        share = reduce_policy_loss(losses, rows, batch["input_ids"].shape[0], self.normalisation, normaliser) * scale
        per_token = scale / normaliser["all_tokens"]
        metrics = {"policy/clip_ratio": parts["clipped"].sum() * per_token}
        if "kl" in parts:
            metrics["policy/kl"] = parts["kl"].sum() * per_token
        return ObjectiveLoss(share, metrics)


def build_rewards(spec: Mapping[str, Any]) -> dict[str, tuple[Any, float]]:
    """``{name: (reward, weight)}`` from the recipe's ``rewards`` mapping; unknown names and bad weights are one
    line naming the reward. An entry may name its plugin with ``reward:`` so one reward serves twice under two
    log names (``{iou: {reward: box-iou}, hit: {reward: box-iou, mode: hit}}``)."""
    built = {}
    for name, value in spec.items():
        options = dict(value) if isinstance(value, Mapping) else {"weight": value}
        weight = options.pop("weight", 1.0)
        plugin = options.pop("reward", name)
        ok = isinstance(weight, (int, float)) and not isinstance(weight, bool) and math.isfinite(weight)
        if not ok:
            raise ValueError(f"rewards.{name}.weight: {weight!r} is not allowed; expected a finite number")
        try:
            factory = components().get("reward", str(plugin)).factory
        except Exception as error:
            key = f"rewards.{name}" + (".reward" if plugin != name else "")
            raise ValueError(f"{key}: {str(error).splitlines()[0]}") from None
        accepted = _reward_options(factory)
        unknown = sorted(set(options) - accepted) if accepted is not None else []
        if unknown:
            raise ValueError(f"rewards.{name}.{unknown[0]}: reward {plugin!r} takes no option {unknown[0]!r}; "
                             f"expected one of {', '.join(sorted(accepted)) or '(none)'} besides weight and reward")
        try:
            built[name] = (factory(**options), float(weight))
        except TypeError as error:
            raise ValueError(f"rewards.{name}: {error}") from None
    return built


def _reward_options(factory: Any) -> set[str] | None:
    """The options a reward class takes (``None``: it declares ``**options`` itself, so any)."""
    init = getattr(factory, "__init__", None)
    if init is Reward.__init__:
        return set()
    parameters = list(inspect.signature(factory).parameters.values())
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return {p.name for p in parameters if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}


def _model_inputs(batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {key: value for key, value in batch.items() if key not in EXTRA_KEYS}


def _check_integer(option: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{option}: {value!r} is out of range; expected an integer >= {low}")


def _plain(value: Any) -> Any:
    """The recipe's (possibly OmegaConf) mapping as plain dicts, for ``run.json``."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return value
