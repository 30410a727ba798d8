"""``dpo``: direct preference optimisation on (prompt, chosen, rejected) records, against the stage's starting model.

Each record becomes two sequences, the prompt with the chosen answer and the prompt with the rejected one; only
the final answer's tokens are scored. A micro-batch runs its chosen rows and then its rejected rows through the
model at once; a pair's score is the summed log-probability of its answer tokens (``ipo``: their mean).

Options:

- ``loss``: ``sigmoid`` (DPO) or ``ipo``; ``beta`` (> 0): DPO's temperature / IPO's regulariser;
- ``label_smoothing`` in [0, 0.5): the assumed share of flipped labels (cDPO; sigmoid only);
- ``reference_free``: compare with a reference that gives every answer the same probability (no reference);
- ``preference_weight`` and ``sft_weight``: the loss is ``preference_weight x`` the mean preference loss over the
  step's pairs ``+ sft_weight x`` the cross-entropy of the chosen answers per chosen token (the MPO-style mix;
  TRL's ``loss_type=[..., "sft"]`` with ``loss_weights``, or ``rpo_alpha``);
- ``reference``: ``auto`` (default), ``adapters_off`` or ``precomputed`` (see medzoo's reference forming).

Logged per step: ``loss/preference``, ``loss/sft`` (the chosen answers' cross-entropy, logged whatever its
weight), ``rewards/chosen``, ``rewards/rejected``, ``rewards/margin``, ``rewards/accuracy`` (the share of pairs
whose chosen reward is the higher), ``logps/chosen``, ``logps/rejected``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from medzoo import (
    IGNORE_INDEX,
    PREFERENCE_RECORDS,
    EncodedSample,
    Message,
    Objective,
    ObjectiveLoss,
    PreferenceRecord,
    RecordRejected,
    collate,
    row_counts,
    row_sums,
    token_log_probs,
)
from medzoo.plugins.objectives.option_checks import check_choice as _check_choice
from medzoo.plugins.objectives.option_checks import check_number as _check_number
from medzoo.plugins.objectives.preference_losses import LOSS_TYPES, preference_losses

REFERENCE_MODES = ("auto", "adapters_off", "precomputed", "copy")


@dataclass
class PreferenceSample:
    """A record's two encoded sequences (labels on the final answer only)."""

    chosen: EncodedSample
    rejected: EncodedSample
    sample_id: str

    def __len__(self) -> int:
        return len(self.chosen) + len(self.rejected)

    @property
    def truncated(self) -> bool:
        return self.chosen.truncated or self.rejected.truncated


class DirectPreferenceObjective(Objective):
    name = "dpo"
    records = PREFERENCE_RECORDS
    supports_packing = False

    def __init__(
        self,
        beta: float = 0.1,
        loss: str = "sigmoid",
        label_smoothing: float = 0.0,
        reference_free: bool = False,
        preference_weight: float = 1.0,
        sft_weight: float = 0.0,
        reference: str = "auto",
    ) -> None:
        _check_number("beta", beta, low=0.0, low_open=True)
        _check_choice("loss", loss, LOSS_TYPES)
        _check_number("label_smoothing", label_smoothing, low=0.0, high=0.5)
        if label_smoothing and loss != "sigmoid":
            raise ValueError(f"label_smoothing: {label_smoothing!r} is set, but loss {loss!r} takes none; expected 0 "
                             "or loss: sigmoid")
        if not isinstance(reference_free, bool):
            raise ValueError(f"reference_free: {reference_free!r} is not allowed; expected true or false")
        _check_number("preference_weight", preference_weight, low=0.0)
        _check_number("sft_weight", sft_weight, low=0.0)
        _check_choice("reference", reference, REFERENCE_MODES)
        super().__init__(beta=beta, loss=loss, label_smoothing=label_smoothing, reference_free=reference_free,
                         preference_weight=preference_weight, sft_weight=sft_weight, reference=reference)
        self.beta = float(beta)
        self.loss_type = loss
        self.label_smoothing = float(label_smoothing)
        self.reference_free = reference_free
        self.preference_weight = float(preference_weight)
        self.sft_weight = float(sft_weight)
        #: how the trainer forms the reference (auto | adapters_off | precomputed)
        self.reference_mode = reference

    @property
    def needs_reference(self) -> bool:
        return not self.reference_free

    # -- data ---------------------------------------------------------------------------------------------------

    def encode(self, processor: Any, record: Any, max_length: int) -> PreferenceSample:
        if not isinstance(record, PreferenceRecord):
            raise RecordRejected("not a preference record",
                                 f"record {record.id}: not a preference record (no chosen and rejected answers)")
        images = len(record.images)
        earlier = sum(1 for message in record.messages if message.role == "assistant")
        chosen = _encode_answer(processor, record, record.chosen, images, max_length, earlier)
        rejected = _encode_answer(processor, record, record.rejected, images, max_length, earlier)
        return PreferenceSample(chosen, rejected, record.id)

    def normaliser(self, samples: Sequence[PreferenceSample]) -> tuple[int, int]:
        """(pairs, predicted tokens of the chosen answers) of the step."""
        chosen_tokens = sum(sum(1 for label in s.chosen.labels[1:] if label >= 0) for s in samples)
        return len(samples), chosen_tokens

    def collate(
        self, samples: Sequence[PreferenceSample], pixels: Sequence[torch.Tensor | None], pad_id: int,
        packing: bool = False, capacity: int | None = None,
    ) -> dict[str, torch.Tensor]:
        """Chosen rows first, then rejected rows in the same order, each with its record's image."""
        if packing:
            raise ValueError("objective 'dpo' cannot pack samples; expected packing: false")
        chosen = [EncodedSample(s.chosen.input_ids, s.chosen.labels, p, False, s.sample_id, s.chosen.image_sizes)
                  for s, p in zip(samples, pixels, strict=True)]
        rejected = [EncodedSample(s.rejected.input_ids, s.rejected.labels, p, False, s.sample_id,
                                  s.rejected.image_sizes)
                    for s, p in zip(samples, pixels, strict=True)]
        return collate([*chosen, *rejected], pad_id, padding_side="right")

    # -- loss ---------------------------------------------------------------------------------------------------

    def scores(self, model: Any, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(scores [2P], token log-probs, their rows)``: each row's summed (``ipo``: mean) answer log-probability."""
        log_probs, rows = token_log_probs(model, batch)
        count = batch["input_ids"].shape[0]
        sums = row_sums(log_probs, rows, count)
        if self.loss_type == "ipo":
            sums = sums / row_counts(rows, count).to(sums.device).clamp(min=1.0)
        return sums, log_probs, rows

    def reference_values(self, model: Any, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """``[pairs, 2]``: the reference's chosen and rejected scores."""
        with torch.no_grad():
            scores, _, _ = self.scores(model, batch)
        pairs = scores.shape[0] // 2
        return torch.stack([scores[:pairs], scores[pairs:]], dim=1)

    def loss(
        self, model: Any, batch: Mapping[str, torch.Tensor], normaliser: tuple[int, int], scale: float = 1.0,
        reference: torch.Tensor | None = None,
    ) -> ObjectiveLoss:
        pairs_in_step, chosen_tokens = normaliser
        scores, log_probs, rows = self.scores(model, batch)
        pairs = scores.shape[0] // 2
        chosen, rejected = scores[:pairs], scores[pairs:]
        if self.reference_free:
            ref_chosen, ref_rejected = torch.zeros_like(chosen), torch.zeros_like(rejected)
        elif reference is None:
            raise ValueError("objective 'dpo' needs the reference's values for this batch; none were given")
        else:
            ref_chosen, ref_rejected = reference[:, 0].to(chosen), reference[:, 1].to(chosen)
        losses, chosen_rewards, rejected_rewards = preference_losses(
            chosen, rejected, ref_chosen, ref_rejected, self.beta, self.loss_type, self.label_smoothing
        )
        per_pair = scale / max(1, pairs_in_step)
        preference = losses.sum() * per_pair
        sft = -log_probs[rows < pairs].sum() * (scale / max(1, chosen_tokens))
        total = self.preference_weight * preference
        if self.sft_weight:
            total = total + self.sft_weight * sft
        metrics = {
            "loss/preference": preference.detach(),
            "loss/sft": sft.detach(),
            "rewards/chosen": chosen_rewards.sum() * per_pair,
            "rewards/rejected": rejected_rewards.sum() * per_pair,
            "rewards/margin": (chosen_rewards - rejected_rewards).sum() * per_pair,
            "rewards/accuracy": (chosen_rewards > rejected_rewards).float().sum() * per_pair,
            "logps/chosen": chosen.detach().sum() * per_pair,
            "logps/rejected": rejected.detach().sum() * per_pair,
        }
        return ObjectiveLoss(total, metrics)


def _encode_answer(
    processor: Any, record: PreferenceRecord, answer: str, images: int, max_length: int, earlier: int
) -> EncodedSample:
    """The prompt turns plus ``answer``, labels on ``answer`` only; refused when truncation leaves none of it."""
    sample = processor.encode_text([*record.messages, Message("assistant", answer)], images, max_length=max_length,
                                   sample_id=record.id, image_sizes=processor.record_image_sizes(record.images))
    runs = _label_runs(sample.labels)
    if len(runs) <= earlier:
        raise RecordRejected("no target tokens",
                             f"record {record.id}: max_length {max_length} leaves no token of an answer")
    start = runs[-1][0]
    labels = [IGNORE_INDEX] * start + list(sample.labels[start:])
    return EncodedSample(sample.input_ids, labels, None, sample.truncated, sample.sample_id, sample.image_sizes)


def _label_runs(labels: Sequence[int]) -> list[tuple[int, int]]:
    """``[start, end)`` of each run of consecutive labelled positions."""
    runs: list[tuple[int, int]] = []
    start = None
    for index, label in enumerate([*labels, IGNORE_INDEX]):
        if label >= 0 and start is None:
            start = index
        elif label < 0 and start is not None:
            runs.append((start, index))
            start = None
    return runs
