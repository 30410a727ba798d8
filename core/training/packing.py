"""Packing several multimodal samples into one row: position ids restart per sample, no padding mask.

With ``attention_mask=None`` and ``position_ids`` that restart at 0 for every sample, transformers (sdpa and eager:
a block-diagonal causal mask; flash-attention 2: varlen kernels) keeps the samples of a row independent, and RoPE
sees each sample at its own positions, so every sample gets the logits it gets alone. The tail of a row is one
more "sample" of padding (positions from 0, labels ignored) that no real token can attend to.

Call the model with ``use_cache=False``: transformers looks for packed rows only when no KV cache is passed or
created.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from medzoo.core.model.processor import IGNORE_INDEX, EncodedSample, add_images


def pack_rows(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """First-fit decreasing: positions of ``lengths`` grouped into rows of at most ``capacity`` tokens.

    Rows keep the original order of their members; a sample longer than ``capacity`` gets a row of its own.
    """
    rows: list[list[int]] = []
    free: list[int] = []
    for index in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        size = lengths[index]
        for row, room in enumerate(free):
            if size <= room:
                rows[row].append(index)
                free[row] -= size
                break
        else:
            rows.append([index])
            free.append(capacity - size)
    return [sorted(row) for row in rows]


def pack_samples(samples: Sequence[EncodedSample], pad_id: int, capacity: int) -> dict[str, torch.Tensor]:
    """``input_ids``, ``labels``, ``position_ids`` (and ``pixel_values`` in row-major order) of packed rows.

    The first label of each sample is ignored: unpacked, it is never a target (labels shift by one), packed it
    would be predicted from the previous sample's last token.
    """
    rows = pack_rows([len(sample) for sample in samples], capacity)
    width = max(sum(len(samples[i]) for i in row) for row in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    position_ids = torch.zeros((len(rows), width), dtype=torch.long)
    for r, row in enumerate(rows):
        start = 0
        for index in row:
            sample = samples[index]
            n = len(sample)
            input_ids[r, start : start + n] = torch.tensor(sample.input_ids)
            labels[r, start + 1 : start + n] = torch.tensor(sample.labels[1:], dtype=torch.long)
            position_ids[r, start : start + n] = torch.arange(n)
            start += n
        position_ids[r, start:] = torch.arange(width - start)
    batch = {"input_ids": input_ids, "labels": labels, "position_ids": position_ids}
    add_images(batch, [samples[index] for row in rows for index in row])
    return batch


def unpack_rows(values: torch.Tensor, lengths: Sequence[int], capacity: int) -> list[torch.Tensor]:
    """Per-sample slices (in the original sample order) of a packed ``[rows, width, ...]`` tensor."""
    rows = pack_rows(lengths, capacity)
    out: list[torch.Tensor | None] = [None] * len(lengths)
    for r, row in enumerate(rows):
        start = 0
        for index in row:
            out[index] = values[r, start : start + lengths[index]]
            start += lengths[index]
    return [tensor for tensor in out if tensor is not None]
