"""The synthetic small-finding task (app/data_synth/small_findings.py): a 2-px nodule in a 256-px field is
lost when the image is downscaled to a 32-px tower and kept whole in the tower-sized crops of AnyRes tiling; the
written set is a LLaVA-Med test.json the med-vqa reader takes, in pairs with and without the nodule."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medzoo.app.data_synth.small_findings import QUESTION, SmallFindings, write_small_findings
from medzoo.core.model.image_processing import ImageTransform
from medzoo.core.model.tiling import tile_image

TOWER = 32
#: the nodule is 250 - 90 = 160 grey levels above the field's mean
SEEDS = range(8)


def levels(image) -> np.ndarray:
    return np.asarray(image).astype(np.int64)


@pytest.mark.parametrize("seed", SEEDS)
def test_the_nodule_disappears_under_downscaling_and_survives_in_a_crop(seed):
    task = SmallFindings()
    with_nodule, without, (row, column) = task.pair(np.random.default_rng(seed))
    transform = ImageTransform(TOWER, (0.5,) * 3, (0.5,) * 3, aspect="crop")
    downscaled = np.abs(levels(transform.pixels(with_nodule)) - levels(transform.pixels(without))).max()
    assert downscaled <= 12  # a few grey levels: below the field's own texture (amplitude 25)
    grid = [[task.size, task.size]]
    crops_with, crops_without = tile_image(with_nodule, grid, TOWER).crops, tile_image(without, grid, TOWER).crops
    differences = [np.abs(levels(a) - levels(b)).max() for a, b in zip(crops_with, crops_without, strict=True)]
    per_row = task.size // TOWER
    assert differences[row // TOWER * per_row + column // TOWER] >= 140  # the nodule, at full contrast
    assert sum(difference > 0 for difference in differences) <= 4  # only where the nodule is


def test_the_written_set_is_read_by_the_med_vqa_reader_in_pairs(tmp_path):
    from medzoo.core.plugin_system.manager import components

    path = write_small_findings(tmp_path, 6, seed=1, task=SmallFindings(size=64))
    records = json.loads(path.read_text())
    assert [record["conversations"][1]["value"] for record in records] == ["Yes.", "No."] * 3
    reader = components().get("dataset", "med-vqa").factory(split="all")
    read, report = reader.read(str(path), str(tmp_path / "images"), "error")
    assert len(read) == 6 and QUESTION in read[0].messages[0].content
    with pytest.raises(ValueError, match="count: 5; expected a positive even number"):
        write_small_findings(tmp_path, 5)
