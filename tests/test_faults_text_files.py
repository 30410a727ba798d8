"""Fault injection (issue 29 item 2): a Latin-1 byte in any file medzoo reads is one line naming the file, the
line and the byte offset (the one decoding rule of ``core/file_io/text_files.py``), never a UnicodeDecodeError, and the
file is left as it was.

The first case is the command of the issue as the user ran it; the others feed the byte to every reader: the
references and predictions ``medzoo score`` reads for each benchmark, the captions of ``instruct generate``, a
recipe, and every dataset reader in the registry.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from support.faults import cli_error, one_line

from medzoo.core.errors import DataError
from medzoo.core.file_io.text_files import decode_utf8, iter_text_lines, read_text_file
from medzoo.core.plugin_system.manager import components

LATIN1 = b"\xe9"  # "é" in Latin-1: a byte UTF-8 never has on its own


def with_latin1(path: Path, after: bytes = b'": "') -> tuple[int, int]:
    """Put a Latin-1 byte into ``path`` just inside the first JSON string value; (its line, its byte offset)."""
    data = path.read_bytes()
    at = data.index(after) + len(after)
    path.write_bytes(data[:at] + LATIN1 + data[at:])
    return data.count(b"\n", 0, at) + 1, at


def expected_start(path: Path | str, line: int, offset: int) -> str:
    return f"{path}: line {line}: byte 0xe9 (byte offset {offset}) is not UTF-8; expected "


@pytest.fixture(scope="module")
def data_root(synthetic_data):
    return synthetic_data(train=8, val=2, test=8)  # 8 training images: the preference files are not empty


LLAVA_MED_TEST = [
    {"id": "1", "image": "a.jpg", "answer_type": "CLOSED",
     "conversations": [{"from": "human", "value": "<image>\nIs there a mass?"}, {"from": "gpt", "value": "yes"}]},
    {"id": "2", "image": "a.jpg", "answer_type": "OPEN",
     "conversations": [{"from": "human", "value": "<image>\nWhere?"}, {"from": "gpt", "value": "left lung"}]},
]  # fmt: skip


def test_the_issue_command_a_latin1_byte_in_the_answers_is_one_line(tmp_path, capsys, monkeypatch):
    """``medzoo score -b vqa-rad -r test.json -p answers.jsonl`` as the user ran it, in the folder of the files."""
    monkeypatch.chdir(tmp_path)
    Path("test.json").write_text(json.dumps(LLAVA_MED_TEST))
    Path("answers.jsonl").write_bytes(b'{"question_id": "1", "text": "yes"}\n{"question_id": "2", "text": "caf'
                                      + LATIN1 + b'"}\n')
    before = Path("answers.jsonl").read_bytes()
    line = cli_error(capsys, "score", "-b", "vqa-rad", "-r", "test.json", "-p", "answers.jsonl")
    assert line.startswith("error: " + expected_start("answers.jsonl", 2, before.index(LATIN1)))
    assert "expected predictions (JSON lines or a JSON list) in UTF-8" in line
    assert Path("answers.jsonl").read_bytes() == before


def test_a_json_list_of_answers_with_a_latin1_byte_is_one_line(tmp_path, capsys):
    references = tmp_path / "test.json"
    references.write_text(json.dumps(LLAVA_MED_TEST))
    answers = tmp_path / "answers.json"
    answers.write_text(json.dumps([{"question_id": "1", "text": "yes"}], indent=1))
    line_number, offset = with_latin1(answers, b'"text": "')
    line = cli_error(capsys, "score", "-b", "vqa-rad", "-r", references, "-p", answers)
    assert line.startswith("error: " + expected_start(answers, line_number, offset))


#: benchmark -> (its reference file in the synthetic data set, the bytes the Latin-1 byte goes after: inside the
#: first JSON string value, or inside the first data row's first cell of a csv / tsv); pathvqa's is a pickle: no
#: text to decode
REFERENCES = {
    "vqa-rad": ("vqa_rad/test.json", b'": "'),
    "slake": ("slake/test.json", b'": "'),
    "coloninst-cls": ("coloninst/test/cls_test.json", b'": "'),
    "coloninst-reg": ("coloninst/test/reg_test.json", b'": "'),
    "coloninst-rec": ("coloninst/test/rec_test.json", b'": "'),
    "coloninst-cap": ("coloninst/test/cap_test.json", b'": "'),
    "pmc-vqa": ("pmc_vqa/test_2.csv", b"\n"),
    "omnimedvqa": ("omnimedvqa/QA_information/Open-access/Synth-ct.json", b'": "'),
    "gmai-mmbench": ("gmai_mmbench/GMAI-MMBench_VAL.tsv", b"\n"),
    "medxpertqa-mm": ("medxpertqa/MM/test.jsonl", b'": "'),
}


def test_every_benchmark_with_text_references_is_covered():
    real = {name for name in components().names("benchmark") if not name.startswith("synth-")}
    # binary formats, read by their libraries, not decoded as text: PathVQA's pickle, MMMU's parquet
    assert real - set(REFERENCES) == {"pathvqa", "mmmu-med"}


@pytest.mark.parametrize("benchmark", REFERENCES)
def test_a_latin1_byte_in_a_benchmarks_references_is_one_line(benchmark, data_root, tmp_path, capsys):
    relative, after = REFERENCES[benchmark]
    source = data_root / relative
    references = tmp_path / source.name
    shutil.copyfile(source, references)
    line_number, offset = with_latin1(references, after)
    before = references.read_bytes()
    answers = tmp_path / "answers.jsonl"
    answers.write_text(json.dumps({"question_id": "0", "text": "yes"}) + "\n")
    line = cli_error(capsys, "score", "-b", benchmark, "-r", references, "-p", answers)
    assert line.startswith("error: " + expected_start(references, line_number, offset)), line
    assert references.read_bytes() == before


def test_a_latin1_byte_in_the_captions_is_one_line(data_root, tmp_path, capsys):
    captions = tmp_path / "captions.jsonl"
    shutil.copyfile(data_root / "pmc" / "captions.jsonl", captions)
    data = captions.read_bytes()
    second = data.index(b"\n") + 1  # on the second line: the line number and offset count from the file's start
    captions.write_bytes(data[:second] + data[second:].replace(b'"fig_caption": "', b'"fig_caption": "' + LATIN1, 1))
    offset = captions.read_bytes().index(LATIN1)
    line = cli_error(capsys, "instruct", "generate", "--captions", captions, "--output", tmp_path / "out.json",
                     "--backend", "openai", "--model", "fake", "--base-url", "http://127.0.0.1:9/v1",
                     "--api-key", "k")  # fmt: skip
    assert line.startswith("error: " + expected_start(captions, 2, offset)), line
    assert not (tmp_path / "out.json").exists()


def test_a_latin1_byte_in_a_recipe_is_one_line(tmp_path, capsys):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_bytes(b"name: mine\nbase: tiny\nnotes: caf" + LATIN1 + b"\n")
    offset = recipe.read_bytes().index(LATIN1)
    line = cli_error(capsys, "recipe", "validate", recipe)
    assert line.startswith("error: " + expected_start(recipe, 3, offset)) and "a YAML recipe in UTF-8" in line


#: dataset reader -> a file of its format in the synthetic data set
DATASET_FILES = {
    "llava-json": "llava_med/instruct.json",
    "med-vqa": "vqa_rad/vqa_rad.json",
    "colon-inst": "coloninst/test/reg_test.json",
    "pmc-captions": "pmc/captions.jsonl",
    "llava-preference": "preference/train.json",
    "rlaif-v": "preference/rlaif_v_train.jsonl",
}


def test_every_dataset_reader_is_covered():
    assert set(components().names("dataset")) == set(DATASET_FILES)


@pytest.mark.parametrize("reader", DATASET_FILES)
def test_a_latin1_byte_in_every_dataset_reader_is_one_line(reader, data_root, tmp_path):
    source = data_root / DATASET_FILES[reader]
    path = tmp_path / source.name
    shutil.copyfile(source, path)
    line_number, offset = with_latin1(path)
    before = path.read_bytes()
    with pytest.raises(DataError) as raised:
        components().get("dataset", reader).factory().read(str(path), image_root=str(source.parent))
    assert one_line(raised.value).startswith(expected_start(path, line_number, offset))
    assert path.read_bytes() == before


def test_the_rule_counts_lines_and_offsets_from_the_files_start(tmp_path):
    path = tmp_path / "three.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + b"first\nsecond\nth" + LATIN1 + b"rd\n")  # a BOM is accepted and skipped
    lines = iter_text_lines(path)
    assert next(lines) == (1, "first") and next(lines) == (2, "second")
    with pytest.raises(DataError) as raised:
        next(lines)
    assert one_line(raised.value).startswith(expected_start(path, 3, 3 + 15))
    with pytest.raises(DataError) as whole:
        read_text_file(path)
    assert str(whole.value) == str(raised.value).replace("a JSON-lines file", "a text file")
    assert decode_utf8(b"\xef\xbb\xbfok", path) == "ok"
