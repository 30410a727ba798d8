"""GMAI-MMBench: VLMEvalKit's TSV read (base64 images, rows sharing an image by index), bad rows counted by reason,
VLMEvalKit's prompt and exact matching by default, accuracy per modality and clinical task.

VLMEvalKit behaviour read from open-compass/VLMEvalKit, commit e8e78f05f3080fe28154f2130321f17951c3be94:
``vlmeval/dataset/image_mcq.py`` ``ImageMCQDataset.build_prompt`` and ``GMAIMMBenchDataset.evaluate`` (exact
matching unless a judge model is configured), ``vlmeval/dataset/image_base.py`` (an ``image`` cell of at most 64
characters names another row's ``index``).
"""

from __future__ import annotations

import base64
import csv
import io
from pathlib import Path

import pytest
from PIL import Image

from medzoo.core.errors import DataError
from medzoo.core.plugin_system.manager import components

HEADER = ["index", "question", "A", "B", "C", "D", "E", "answer", "image", "modality", "clinical vqa task"]


def png_base64() -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 200, 10)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def write_tsv(path: Path, rows: list[list]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t")
        writer.writerow(HEADER)
        writer.writerows(rows)
    return path


@pytest.fixture
def tsv(tmp_path: Path) -> Path:
    image = png_base64()
    return write_tsv(tmp_path / "GMAI-MMBench_VAL.tsv", [
        [1, "Which organ?", "Lung", "Liver", "Heart", "", "", "B", image, "CT", "Anatomy Identification"],
        [2, "Which modality?", "CT", "MRI", "", "", "", "A", "1", "MR", "Modality Recognition"],  # image of row 1
        [2, "Duplicate?", "x", "y", "", "", "", "A", image, "CT", "x"],
        [3, "Answer E?", "x", "y", "", "", "", "E", image, "CT", "x"],
        [4, "One option", "x", "", "", "", "", "A", image, "CT", "x"],
        [5, "Broken image", "x", "y", "", "", "", "A", "not base64 at all " * 8, "CT", "x"],
        [6, "Dangling reference", "x", "y", "", "", "", "A", "99", "CT", "x"],
    ])  # fmt: skip


def gmai(**options):
    return components().get("benchmark", "gmai-mmbench").factory(**options)


def test_the_tsv_is_read_with_bad_rows_counted_by_reason(tsv):
    bench = gmai()
    items = bench.load(str(tsv))
    assert [(item.question_id, item.answer) for item in items] == [("1", "B"), ("2", "A")]
    assert items[0].image == items[1].image.with_name("1.png")
    assert Image.open(items[1].image).size == (8, 8)
    assert dict(bench.last_report.skipped) == {"duplicate id": 1, "answer not among the options": 1,
                                               "fewer than two options": 1, "unreadable image": 1,
                                               "image not found": 1}
    assert bench.question_counts.skipped == {"bad_record": 3, "image_corrupt": 1, "image_missing": 1}


def test_the_prompt_is_vlmevalkits_and_exact_matching_is_the_default(tsv):
    bench = gmai()
    items = bench.load(str(tsv))
    assert bench.prompt(items[0]) == ("<image>\nQuestion: Which organ?\nOptions:\nA. Lung\nB. Liver\nC. Heart\n"
                                      "Please select the correct answer from the options above. \n")
    result = bench.score({"1": "The liver", "2": "B is right because it looks like a CT scan here"}, items)
    assert (result["accuracy"], result["answer_protocol"]) == (50.0, "vlmevalkit")
    assert result["subsets"]["modality"] == {"CT": {"n": 1, "accuracy": 100.0}, "MR": {"n": 1, "accuracy": 0.0}}
    medevalkit = gmai(protocol="medevalkit")
    assert medevalkit.score({"1": "The liver", "2": "B"}, medevalkit.load(str(tsv)))["accuracy"] == 50.0


def test_a_file_of_another_layout_is_one_line(tmp_path):
    path = tmp_path / "x.tsv"
    path.write_text("id\tquestion\n1\tq\n")
    with pytest.raises(DataError) as error:
        gmai().load(str(path))
    assert str(error.value) == (f"{path}: not a GMAI-MMBench tsv: columns id, question; expected index, question, "
                                "A, B (C, D, E), answer, image (VLMEvalKit's layout)")
