"""A stage's training data: read every dataset of the stage, encode the conversations, report what was skipped."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import torch
from PIL import Image

from medzoo.core.errors import DataError
from medzoo.core.inference import processor_for
from medzoo.core.interfaces.dataset import Record
from medzoo.core.model.anyres import tiled_pixels
from medzoo.core.model.build import as_dict
from medzoo.core.model.multimodal import MultimodalModel
from medzoo.core.model.processor import EncodedSample, SampleTooLong, collate
from medzoo.core.plugin_system.manager import components
from medzoo.core.training.packing import pack_samples

logger = logging.getLogger(__name__)


@dataclass
class StageData:
    """Encoded samples of a stage (token ids and labels; images load when a batch is assembled)."""

    samples: list[EncodedSample]
    images: list[Any]
    dataset_of: list[int]
    sizes: list[int]
    weights: list[float]
    reports: list[str] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)
    truncated: int = 0

    def lengths(self) -> list[int]:
        return [len(sample) for sample in self.samples]

    def num_targets(self, indices: list[int]) -> int:
        """Predicted tokens of these samples (labels after the first that are not ignored)."""
        return sum(sum(1 for label in self.samples[i].labels[1:] if label >= 0) for i in indices)

    def num_tokens(self, indices: list[int]) -> int:
        return sum(len(self.samples[i]) for i in indices)


def load_stage_data(model: MultimodalModel, stage: Any, on_bad_record: str) -> StageData:
    registry = components()
    samples: list[EncodedSample] = []
    images: list[Any] = []
    dataset_of: list[int] = []
    sizes: list[int] = []
    weights: list[float] = []
    data = StageData(samples, images, dataset_of, sizes, weights)
    for index, dataset in enumerate(stage.datasets):
        spec = as_dict(dataset)
        options = dict(spec.get("options") or {})
        template = options.pop("template", None) or stage.template or model.language.template_name
        reader = registry.get("dataset", spec["name"]).factory(**options)
        records, report = reader.read(spec["path"], spec.get("image_root"), on_bad_record)
        if spec.get("limit"):
            records = records[: spec["limit"]]
        data.reports.append(report.summary())
        for reason, count in report.skipped.items():
            data.skipped[f"{spec['name']}: {reason}"] += count
        processor = processor_for(
            model, template, getattr(stage, "image_placement", None), getattr(stage, "label_masking", "exact")
        )
        kept = 0
        for record in records:
            encoded = _encode(processor, record, stage.max_length, on_bad_record, data)
            if encoded is None:
                continue
            samples.append(encoded)
            images.append(record.image)
            dataset_of.append(index)
            kept += 1
        sizes.append(kept)
        weights.append(float(spec.get("weight", 1.0)))
    if not samples:
        raise DataError(f"stage {stage.name!r}: no usable training records in {len(stage.datasets)} dataset(s)")
    return data


def _encode(processor, record: Record, max_length: int, policy: str, data: StageData) -> EncodedSample | None:
    sizes = None
    if record.image and processor.tiling is not None:
        try:
            with Image.open(record.image) as handle:  # reads the header only: the size sets the token count
                sizes = [(handle.height, handle.width)]
        except OSError as error:
            if policy == "error":
                raise DataError(f"{record.image}: image of record {record.id} cannot be opened ({error})") from None
            data.skipped["image cannot be opened"] += 1
            return None
    try:
        sample = processor.encode_text(
            record.messages, 1 if record.image else 0, max_length=max_length, sample_id=record.id, image_sizes=sizes
        )
    except (SampleTooLong, ValueError) as error:
        if policy == "error":
            raise DataError(str(error)) from None
        data.skipped["too long or image markup mismatch"] += 1
        return None
    if all(label < 0 for label in sample.labels):
        if policy == "error":
            raise DataError(f"record {record.id}: no target tokens left after truncation")
        data.skipped["no target tokens"] += 1
        return None
    data.truncated += int(sample.truncated)
    return sample


def load_samples(model: MultimodalModel, data: StageData, indices: list[int]) -> list[EncodedSample]:
    """The samples at ``indices`` with their images opened and transformed."""
    transform = model.image_transform
    tiling = model.tiling
    batch_samples = []
    for i in indices:
        sample = data.samples[i]
        image = data.images[i]
        pixels = None
        if image is not None:
            try:
                with Image.open(image) as handle:
                    pixels = (transform(handle).unsqueeze(0) if tiling is None
                              else tiled_pixels(transform, tiling, handle))
            except (OSError, ValueError, SyntaxError) as error:  # PIL's errors for damaged files
                reason = str(error).splitlines()[0] if str(error) else type(error).__name__
                raise DataError(
                    f"{image}: image of record {sample.sample_id} cannot be decoded mid-stage ({reason}); leave the "
                    "reader's verify_images on (the default) so damaged images are counted and skipped before "
                    "training starts"
                ) from None
        batch_samples.append(EncodedSample(sample.input_ids, sample.labels, pixels, sample.truncated, sample.sample_id,
                                           sample.image_sizes))
    return batch_samples


def assemble_batch(
    model: MultimodalModel,
    data: StageData,
    indices: list[int],
    pad_id: int,
    packing: bool = False,
    capacity: int | None = None,
) -> dict[str, torch.Tensor]:
    """Right-padded rows (``attention_mask``), or with ``packing`` rows of up to ``capacity`` tokens holding
    several samples each (``position_ids`` restarting per sample, no ``attention_mask``)."""
    samples = load_samples(model, data, indices)
    if packing:
        return pack_samples(samples, pad_id, capacity or max(len(sample) for sample in samples))
    return collate(samples, pad_id, padding_side="right")
