"""The training-objective interface: what a stage optimises, from its records to the loss of a micro-batch.

A stage names its objective in the recipe (``objective: {name: dpo, beta: 0.1}``; ``sft`` when absent). The
trainer owns everything that is the same for every objective (the step plan, micro-batches, gradient
accumulation, distributed wrapping, checkpoints, the log); the objective owns:

- ``encode``: how one record becomes a training sample (default: the record's conversation, labels on the
  assistant replies, as supervised tuning encodes it);
- ``normaliser``: what a step's loss is divided by, computed from the samples of the whole global batch (all
  micro-batches, all processes), so that accumulation and data parallelism give the gradient of one big batch;
- ``collate``: how samples and their images become the model's tensors (default: right-padded or packed rows);
- ``loss``: the micro-batch's share of the step loss and its named metrics;
- ``needs_reference`` / ``reference_values``: whether the loss compares the policy with the stage's starting
  model, and the per-sample quantities the reference contributes (the trainer forms the reference: adapters
  switched off, or values computed once before the stage and stored with the run);
- ``generates_rollouts``: whether the policy generates its own training rows during the stage (GRPO-style
  objectives). Such an objective's samples are prompts; before each rollout batch the trainer asks the
  objective's ``rollout_backend`` for completions of this process's prompts (``rollout_requests``), the objective
  turns prompts and completions into training rows with rewards and advantages (``rollout_rows``), and the step's
  normaliser comes from every process's completion lengths (``rollout_normaliser``). With
  ``updates_per_rollout`` > 1 the same rows serve several optimizer steps, and the log-probabilities the rows were
  generated with (``behaviour_log_probs``) are kept for the importance ratio.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from medzoo.core.interfaces.dataset import Record
from medzoo.core.model.processor import EncodedSample, collate
from medzoo.core.training.packing import pack_samples

#: the kind of records an objective reads; a dataset registers the kind it gives (``records=``, default below)
CONVERSATION_RECORDS = "conversation"
PREFERENCE_RECORDS = "preference"


class RecordRejected(ValueError):
    """A record an objective cannot train on; ``reason`` is its skip reason (counted like a reader's)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass
class ObjectiveLoss:
    """A micro-batch's share of the step loss and of each named metric.

    ``metrics`` are scaled like ``loss`` (divided by the step's normaliser, times ``scale``), so the trainer sums
    them over micro-batches and averages them over processes exactly as it does the loss; each is logged to
    ``metrics.jsonl`` and the trackers under its name (use ``group/name``, e.g. ``rewards/margin``).
    """

    loss: torch.Tensor
    metrics: dict[str, torch.Tensor | float] = field(default_factory=dict)


class Objective(ABC):
    """A training objective; ``options`` are the recipe's ``objective`` keys besides ``name``.

    Subclasses take their options as keyword arguments (so the recipe's keys are checked against the
    signature) and raise ``ValueError`` with a one-line message naming the option for a value out of range.
    """

    name: str = "objective"
    #: the records it reads (a stage's datasets must give them)
    records: str = CONVERSATION_RECORDS
    #: samples may be packed several to a row (``packing: true``)
    supports_packing: bool = True
    #: the policy generates its own samples during the stage
    generates_rollouts: bool = False
    #: optimizer steps per rollout batch (rollout objectives)
    updates_per_rollout: int = 1

    def __init__(self, **options: Any) -> None:
        self.options = options

    @property
    def needs_reference(self) -> bool:
        """The loss compares the policy with the stage's starting model."""
        return False

    # -- data ---------------------------------------------------------------------------------------------------

    def encode(self, processor: Any, record: Record, max_length: int) -> Any:
        """One training sample (anything with ``len()`` in tokens and a ``sample_id``); raises ``RecordRejected``
        (counted under its reason), or the processor's ``SampleTooLong`` / ``ValueError``."""
        sample = processor.encode_text(record.messages, len(record.images), max_length=max_length,
                                       sample_id=record.id, image_sizes=processor.record_image_sizes(record.images))
        if all(label < 0 for label in sample.labels):
            raise RecordRejected("no target tokens", f"record {record.id}: no target tokens left after truncation")
        return sample

    @abstractmethod
    def normaliser(self, samples: Sequence[Any]) -> Any:
        """What a step's loss is divided by, from the samples of the whole global batch."""

    def collate(
        self, samples: Sequence[Any], pixels: Sequence[torch.Tensor | None], pad_id: int, packing: bool = False,
        capacity: int | None = None,
    ) -> dict[str, torch.Tensor]:
        """The model's tensors for ``samples`` whose images are ``pixels`` (``[1, C, H, W]`` or ``None`` each)."""
        rows = [EncodedSample(s.input_ids, s.labels, p, s.truncated, s.sample_id, s.image_sizes)
                for s, p in zip(samples, pixels, strict=True)]
        if packing:
            return pack_samples(rows, pad_id, capacity or max(len(row) for row in rows))
        return collate(rows, pad_id, padding_side="right")

    # -- loss ---------------------------------------------------------------------------------------------------

    def reference_values(self, model: Any, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Per-sample values of the reference model (``[samples, k]``), computed without gradients."""
        raise NotImplementedError(f"objective {self.name!r} uses no reference model")

    @abstractmethod
    def loss(
        self, model: Any, batch: Mapping[str, torch.Tensor], normaliser: Any, scale: float = 1.0,
        reference: torch.Tensor | None = None,
    ) -> ObjectiveLoss:
        """This micro-batch's share of the step loss: its sum over the micro-batch divided by ``normaliser``,
        times ``scale`` (the process count, undoing DDP's gradient averaging); ``reference``: the rows of
        ``reference_values`` for this micro-batch's samples."""

    # -- rollouts (objectives that generate their own samples) ---------------------------------------------------

    def rollout_backend(self, stage: Any) -> Any:
        """Where rollouts are generated: a ``RolloutBackend``, or ``None`` for medzoo's inference engine."""
        return None

    def rollout_requests(self, samples: Sequence[Any], seeds: Sequence[int], max_length: int) -> list[Any]:
        """One ``RolloutRequest`` per prompt sample (``seeds``: each prompt's seed; completion k uses seed + k)."""
        raise NotImplementedError(f"objective {self.name!r} generates no rollouts")

    def rollout_rows(
        self, samples: Sequence[Any], completions: Sequence[Sequence[Any]], gather: Any
    ) -> tuple[list[Any], dict[str, float]]:
        """Training rows from prompts and their completions, and the batch's rollout metrics (rewards...);
        ``gather(tensor)`` concatenates a tensor over every process (for statistics of the whole batch)."""
        raise NotImplementedError(f"objective {self.name!r} generates no rollouts")

    def rollout_normaliser(self, completion_lengths: Sequence[int]) -> Any:
        """What a step's loss is divided by, from every process's completion lengths."""
        raise NotImplementedError(f"objective {self.name!r} generates no rollouts")

    def behaviour_log_probs(self, model: Any, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(log p, row)`` of the rows' completion tokens under the policy that generated them (no gradients)."""
        raise NotImplementedError(f"objective {self.name!r} generates no rollouts")

    def describe(self) -> dict[str, Any]:
        """What ``run.json`` records of the objective: its name and options."""
        return {"name": self.name, **self.options}
