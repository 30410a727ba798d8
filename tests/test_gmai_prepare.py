"""`medzoo data prepare gmai-mmbench`: VLMEvalKit's GMAI-MMBench tsv (from the hub, or local files) placed where
`medzoo eval -b gmai-mmbench --data` reads it, read with the benchmark's reader (bad rows counted by reason), its
md5 compared with VLMEvalKit's, a test part without answers counted, a file of another layout refused in one line.

File names, hub ids and md5 digests: open-compass/VLMEvalKit, commit e8e78f05f3080fe28154f2130321f17951c3be94,
``vlmeval/dataset/image_mcq.py`` (``GMAIMMBenchDataset.DATASET_URL`` and ``DATASET_MD5``).
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
from pathlib import Path

import pytest
from PIL import Image
from support.faults import cli_error

from medzoo.app.cli.main import main
from medzoo.app.data_prepare import gmai_mmbench as prepare_module
from medzoo.core.errors import DataError
from medzoo.core.plugin_system.manager import components

HEADER = ["index", "question", "A", "B", "C", "D", "E", "answer", "image", "modality", "clinical vqa task"]


def png_base64() -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def write_tsv(path: Path, rows: list[list], header: list[str] = HEADER) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return path


def val_tsv(path: Path) -> Path:
    """Three rows: one usable, one sharing its image by index (usable), one whose answer is no option."""
    image = png_base64()
    return write_tsv(path, [
        [1, "Which organ?", "Lung", "Liver", "", "", "", "B", image, "CT", "Anatomy Identification"],
        [2, "Which modality?", "CT", "MRI", "", "", "", "A", "1", "MR", "Modality Recognition"],
        [3, "Answer C?", "x", "y", "", "", "", "C", image, "CT", "x"],
    ])  # fmt: skip


def gmai(**options):
    return components().get("benchmark", "gmai-mmbench").factory(**options)


def test_the_synthetic_twin_prepared_from_a_local_file_is_what_the_benchmark_reads(synthetic_data, tmp_path,
                                                                                      capsys):
    synthetic = synthetic_data(train=4, val=2, test=4) / "gmai_mmbench" / prepare_module.VAL_FILE
    expected = gmai().load(str(synthetic))
    out = tmp_path / "data"
    main(["data", "prepare", "gmai-mmbench", "--source", str(synthetic), "--output", str(out), "--no-progress"])
    printed = capsys.readouterr().out
    prepared = out / "gmai_mmbench" / prepare_module.VAL_FILE
    assert prepared.read_bytes() == synthetic.read_bytes()
    assert f"records converted {len(expected)}, skipped 0" in printed
    assert f"-b gmai-mmbench --data {prepared}`" in printed
    assert "differs from VLMEvalKit's 254bd581627866f1c499d3d6b4422324" in printed  # not the published file
    items = gmai().load(str(prepared))
    assert [(item.question_id, item.answer) for item in items] == [(item.question_id, item.answer) for item in expected]
    assert all(item.image.parent == out / "gmai_mmbench" / "GMAI-MMBench_VAL_images" for item in items)


def test_the_hub_file_is_fetched_placed_and_its_bad_rows_counted_by_reason(tmp_path, capsys, monkeypatch):
    from medzoo.app.data_prepare import hub

    published = tmp_path / "hub"
    val_tsv(published / prepare_module.VAL_FILE)
    (published / "README.md").write_text("not wanted")
    monkeypatch.setitem(prepare_module.VLMEVALKIT_MD5, prepare_module.VAL_FILE,
                        hashlib.md5((published / prepare_module.VAL_FILE).read_bytes()).hexdigest())

    def list_files(repo_id):
        assert repo_id == "VLMEval/GMAI-MMBench"  # where VLMEvalKit downloads GMAI-MMBench_VAL.tsv from
        return [hub.HubFile(p.name, p.stat().st_size, hashlib.sha256(p.read_bytes()).hexdigest())
                for p in sorted(published.iterdir())]

    def fetch(repo_id, file, local_dir):
        target = Path(local_dir) / file.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((published / file.path).read_bytes())
        return target

    monkeypatch.setattr(hub, "list_files", list_files)
    monkeypatch.setattr(hub, "fetch", fetch)
    out = tmp_path / "data"
    main(["data", "prepare", "gmai-mmbench", "--output", str(out), "--no-progress"])
    printed = capsys.readouterr().out
    assert "records converted 2, skipped 1 (answer not among the options: 1)" in printed
    assert "md5 as VLMEvalKit expects" in printed
    prepared = out / "gmai_mmbench" / prepare_module.VAL_FILE
    assert not (out / "gmai_mmbench" / "README.md").exists()
    report = json.loads((out / "gmai-mmbench.prepare.json").read_text())
    assert report["records"] == {"converted": 2, "skipped": {"answer not among the options": 1}}
    assert "GMAI-MMBench_VAL.tsv:3\tskipped\tanswer not among the options" in (out / "gmai-mmbench.failures.tsv").read_text()
    assert [item.question_id for item in gmai().load(str(prepared))] == ["1", "2"]


def test_a_test_part_without_answers_is_counted_not_scored(tmp_path, capsys):
    folder = tmp_path / "snapshot"
    val_tsv(folder / prepare_module.VAL_FILE)
    image = png_base64()
    write_tsv(folder / "GMAI_mm_bench_TEST_part_1.tsv", [
        [10, "Which organ?", "Lung", "Liver", "", "", "", image, "CT", "x"],
        [11, "Which side?", "Left", "Right", "", "", "", "10", "CT", "x"],
    ], [column for column in HEADER if column != "answer"])  # fmt: skip
    out = tmp_path / "data"
    main(["data", "prepare", "gmai-mmbench", "--source", str(folder), "--output", str(out), "--no-progress"])
    printed = capsys.readouterr().out
    assert "GMAI_mm_bench_TEST_part_1.tsv: 2 questions without answers" in printed
    assert "md5 " in printed and "differs from VLMEvalKit's 900d735231230a63f4ed45665c078ef4" in printed
    assert "records converted 2, skipped 1" in printed  # the VAL file alone is scored
    assert (out / "gmai_mmbench" / "GMAI_mm_bench_TEST_part_1.tsv").is_file()


def test_a_file_of_another_layout_is_refused_in_one_line(tmp_path, capsys):
    wrong = write_tsv(tmp_path / "GMAI-MMBench_VAL.tsv", [["1", "q", "B"]], ["id", "question", "answer"])
    error = cli_error(capsys, "data", "prepare", "gmai-mmbench", "--source", wrong, "--output", tmp_path / "out",
                      "--no-progress")
    assert f"{wrong}: not a GMAI-MMBench tsv: columns id, question, answer; expected index" in error
    assert not (tmp_path / "out" / "gmai_mmbench" / wrong.name).exists()  # refused before anything is placed
    unanswered = write_tsv(tmp_path / "part" / "GMAI_mm_bench_TEST_part_2.tsv", [["1", "q"]], ["index", "question"])
    with pytest.raises(DataError) as raised:
        prepare_module.prepare_gmai_mmbench([unanswered], tmp_path / "out2", _summary(tmp_path))
    assert "\n" not in str(raised.value) and "columns index, question; expected index" in str(raised.value)
    stray = tmp_path / "questions.csv"
    stray.write_text("a,b\n")
    with pytest.raises(DataError, match=r"questions.csv: expected VLMEvalKit's GMAI-MMBench tsv"):
        prepare_module.prepare_gmai_mmbench([stray], tmp_path / "out3", _summary(tmp_path))


def _summary(root: Path):
    from medzoo.app.data_prepare.summary import Summary

    return Summary("gmai-mmbench", root)
