"""A stage's training data: read every dataset of the stage, encode each record as the stage's objective does,
report what was skipped."""

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
from medzoo.core.interfaces.objective import Objective, RecordRejected
from medzoo.core.model.anyres import tiled_pixels
from medzoo.core.model.components import as_dict
from medzoo.core.model.multimodal import MultimodalModel
from medzoo.core.model.processor import SampleTooLong
from medzoo.core.plugin_system.manager import components
from medzoo.core.training.objectives import stage_objective

logger = logging.getLogger(__name__)


@dataclass
class StageData:
    """Encoded samples of a stage (the objective's samples; images load when a batch is assembled)."""

    samples: list[Any]
    #: each sample's image: a path, a list of paths (several images, in placeholder order) or None
    images: list[Any]
    dataset_of: list[int]
    sizes: list[int]
    weights: list[float]
    reports: list[str] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)
    truncated: int = 0
    #: samples whose image tokens truncation would have cut (skipped, whatever their reason)
    image_tokens_cut: int = 0
    #: the longest prompt (tokens) of the samples skipped because it alone reached max_length
    longest_prompt: int = 0
    objective: Objective | None = None

    def lengths(self) -> list[int]:
        return [len(sample) for sample in self.samples]

    def normaliser(self, indices: list[int]) -> Any:
        """What the objective divides the loss of a step over these samples by (``sft``: their target tokens)."""
        assert self.objective is not None
        return self.objective.normaliser([self.samples[i] for i in indices])

    def num_tokens(self, indices: list[int]) -> int:
        return sum(len(self.samples[i]) for i in indices)


def load_stage_data(model: MultimodalModel, stage: Any, on_bad_record: str) -> StageData:
    registry = components()
    samples: list[Any] = []
    images: list[Any] = []
    dataset_of: list[int] = []
    sizes: list[int] = []
    weights: list[float] = []
    objective = stage_objective(stage)
    data = StageData(samples, images, dataset_of, sizes, weights, objective=objective)
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
            encoded = _encode(objective, processor, record, stage.max_length, on_bad_record, data)
            if encoded is None:
                continue
            samples.append(encoded)
            images.append(record.image if not record.extra_images else record.images)
            dataset_of.append(index)
            kept += 1
        sizes.append(kept)
        weights.append(float(spec.get("weight", 1.0)))
    if not samples:
        raise DataError(f"stage {stage.name!r}: no usable training records in {len(stage.datasets)} dataset(s)")
    return data


def _encode(objective: Objective, processor, record: Record, max_length: int, policy: str, data: StageData) -> Any:
    try:
        sample = objective.encode(processor, record, max_length)
    except RecordRejected as rejected:
        if policy == "error":
            raise DataError(rejected.detail) from None
        data.skipped[rejected.reason] += 1
        return None
    except OSError as error:  # a tiled model reads the image's size (its header) to count its tokens
        if policy == "error":
            raise DataError(f"{record.image}: image of record {record.id} cannot be opened ({error})") from None
        data.skipped["image cannot be opened"] += 1
        return None
    except SampleTooLong as error:
        if policy == "error":
            raise DataError(str(error)) from None
        data.skipped[error.reason] += 1
        data.image_tokens_cut += int(error.cuts_image)
        if error.prompt_too_long:
            data.longest_prompt = max(data.longest_prompt, error.prompt_tokens or 0)
        return None
    except ValueError as error:  # <image> placeholders and images do not match
        if policy == "error":
            raise DataError(str(error)) from None
        data.skipped["image placeholders do not match the images"] += 1
        return None
    labels = getattr(sample, "labels", None)  # a supervised sample; other objectives check their own
    if labels is not None and all(label < 0 for label in labels):  # the answer itself has no tokens (truncation is handled above)
        if policy == "error":
            raise DataError(f"record {record.id}: no target tokens (the answer tokenises to nothing)")
        data.skipped["no target tokens"] += 1
        return None
    data.truncated += int(getattr(sample, "truncated", False))
    return sample


def image_paths(images: Any) -> list[Any]:
    """A sample's entry of :attr:`StageData.images` as a list: ``None`` (no image), one path, or a list of paths
    (a record with several images, in placeholder order)."""
    if images is None:
        return []
    return list(images) if isinstance(images, list | tuple) else [images]


def load_pixels(model: MultimodalModel, data: StageData, indices: list[int]) -> list[torch.Tensor | None]:
    """The images of the samples at ``indices``, opened and transformed (``[1, C, H, W]`` per image, or with
    tiling each image's thumbnail and crops ``[1 + crops, C, H, W]``, a sample's images one after another;
    ``None``: no image)."""
    transform = model.image_transform
    tiling = model.tiling
    batch_pixels = []
    for i in indices:
        sample = data.samples[i]
        pieces = []
        for image in image_paths(data.images[i]):
            try:
                with Image.open(image) as handle:
                    pieces.append(transform(handle).unsqueeze(0) if tiling is None
                                  else tiled_pixels(transform, tiling, handle))
            except (OSError, ValueError, SyntaxError) as error:  # PIL's errors for damaged files
                reason = str(error).splitlines()[0] if str(error) else type(error).__name__
                raise DataError(
                    f"{image}: image of record {sample.sample_id} cannot be decoded mid-stage ({reason}); leave the "
                    "reader's verify_images on (the default) so damaged images are counted and skipped before "
                    "training starts"
                ) from None
        batch_pixels.append(torch.cat(pieces) if pieces else None)
    return batch_pixels


def assemble_batch(
    model: MultimodalModel,
    data: StageData,
    indices: list[int],
    pad_id: int,
    packing: bool = False,
    capacity: int | None = None,
) -> dict[str, torch.Tensor]:
    """The objective's batch: for ``sft`` right-padded rows (``attention_mask``), or with ``packing`` rows of up to
    ``capacity`` tokens holding several samples each (``position_ids`` restarting per sample, no
    ``attention_mask``)."""
    assert data.objective is not None
    samples = [data.samples[i] for i in indices]
    return data.objective.collate(samples, load_pixels(model, data, indices), pad_id, packing, capacity)
