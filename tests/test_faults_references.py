"""Fault injection (issue 29 item 3): a reference answer that is null, empty or not text is no reference.

It was scored as the string "None" (a prediction "none" was correct) with ``skipped_references`` at 0. Now every
benchmark reader skips it, counted by reason, no metric sees it (the metrics equal those of the file without the
record), and the count is shown with the metrics: in ``medzoo score``'s table and ``--json``, in ``medzoo eval``'s
``metrics.json`` and printed summary. The reference files are left as they were.
"""

from __future__ import annotations

import csv
import io
import json
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support.full_disk import snapshot

from medzoo.app.cli.main import main
from medzoo.core.plugin_system.manager import components

LLAVA_MED_TEST = [
    {"id": "1", "image": "a.jpg", "answer_type": "CLOSED",
     "conversations": [{"from": "human", "value": "<image>\nIs there a mass?"}, {"from": "gpt", "value": "yes"}]},
    {"id": "2", "image": "a.jpg", "answer_type": "CLOSED",
     "conversations": [{"from": "human", "value": "<image>\nIs it normal?"}, {"from": "gpt", "value": None}]},
]  # fmt: skip


def score_json(capsys, *args: object) -> dict:
    capsys.readouterr()
    main(["score", *(str(arg) for arg in args), "--json"])
    return json.loads(capsys.readouterr().out)


def test_the_issue_case_a_null_gpt_answer_is_not_scored_as_none(tmp_path, capsys):
    references = tmp_path / "test.json"
    references.write_text(json.dumps(LLAVA_MED_TEST))
    answers = tmp_path / "answers.jsonl"
    answers.write_text('{"question_id": "1", "text": "yes"}\n{"question_id": "2", "text": "none"}\n')
    before = snapshot(tmp_path)
    capsys.readouterr()
    main(["score", "-b", "vqa-rad", "-r", str(references), "-p", str(answers)])
    printed = capsys.readouterr().out
    assert "  skipped references: 1 (answer is null: 1)" in printed.splitlines()
    result = score_json(capsys, "-b", "vqa-rad", "-r", references, "-p", answers)
    assert result["metrics"]["n"] == 1 and result["metrics"]["closed_accuracy"] == 100.0
    assert result["skipped_references"] == 1 and result["skipped_references_by_reason"] == {"answer is null": 1}
    assert result["unmatched_predictions"] == 1  # "none" answers no question now
    assert snapshot(tmp_path) == before


@pytest.fixture(scope="module")
def data_root(synthetic_data):
    return synthetic_data(train=4, val=2, test=12)


DELIMITERS = {".csv": ",", ".tsv": "\t"}


def read_records(path: Path) -> list:
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    if path.suffix in DELIMITERS:  # one dict per data row, keyed by the header
        return list(csv.DictReader(io.StringIO(path.read_text(), newline=""), delimiter=DELIMITERS[path.suffix]))
    return pickle.loads(path.read_bytes()) if path.suffix == ".pkl" else json.loads(path.read_text())


def write_records(path: Path, records: list) -> None:
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(record) + "\n" for record in records))
        return
    if path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(records, schema=pq.read_schema(PARQUET_SCHEMAS[path.name])), path)
        return
    if path.suffix in DELIMITERS:
        with path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(records[0]), delimiter=DELIMITERS[path.suffix])
            writer.writeheader()
            writer.writerows(records)
    else:
        path.write_bytes(pickle.dumps(records)) if path.suffix == ".pkl" else path.write_text(json.dumps(records))


def llava_turn(record: dict, value: Any) -> None:
    record["conversations"][1]["value"] = value


def answer_key(record: dict, value: Any) -> None:
    record["answer"] = value


def key_setter(key: str) -> Callable[[dict, Any], None]:
    def set_answer(record: dict, value: Any) -> None:
        record[key] = value

    return set_answer


def by_key(key: str) -> Callable[[dict, int, str], bool]:
    return lambda record, index, question_id: str(record.get(key)) == question_id


#: benchmark -> (reference file in the synthetic set, how to find the record of a question id, how to set its answer)
READERS = {
    "vqa-rad (LLaVA-Med test.json)": ("vqa-rad", "vqa_rad/test.json", lambda r, i, qid: str(r.get("id")) == qid,
                                      llava_turn),
    "vqa-rad (original release)": ("vqa-rad", "vqa_rad/vqa_rad.json", lambda r, i, qid: str(r.get("qid")) == qid,
                                   answer_key),
    "slake": ("slake", "slake/test.json", lambda r, i, qid: str(r.get("qid")) == qid, answer_key),
    "pathvqa": ("pathvqa", "pathvqa/qas/test/test_qa.pkl", lambda r, i, qid: qid.endswith(f"-{i:05d}"), answer_key),
    "coloninst-cls": ("coloninst-cls", "coloninst/test/cls_test.json", lambda r, i, qid: str(r.get("id")) == qid,
                      llava_turn),
    "coloninst-reg": ("coloninst-reg", "coloninst/test/reg_test.json", lambda r, i, qid: str(r.get("id")) == qid,
                      llava_turn),
    "coloninst-rec": ("coloninst-rec", "coloninst/test/rec_test.json", lambda r, i, qid: str(r.get("id")) == qid,
                      llava_turn),
    "coloninst-cap": ("coloninst-cap", "coloninst/test/cap_test.json", by_key("id"), llava_turn),
    "pmc-vqa": ("pmc-vqa", "pmc_vqa/test_2.csv", by_key("index"), key_setter("Answer")),
    "omnimedvqa": ("omnimedvqa", "omnimedvqa/QA_information/Open-access/Synth-ct.json", by_key("question_id"),
                   key_setter("gt_answer")),
    "gmai-mmbench": ("gmai-mmbench", "gmai_mmbench/GMAI-MMBench_VAL.tsv", by_key("index"), key_setter("answer")),
    "medxpertqa-mm": ("medxpertqa-mm", "medxpertqa/MM/test.jsonl", by_key("id"), key_setter("label")),
    "mmmu-med": ("mmmu-med", "mmmu/Clinical_Medicine/validation-00000-of-00001.parquet", by_key("id"),
                 key_setter("answer")),
}
#: a parquet file's schema comes from the file it was read from (its answer column may then hold a null)
PARQUET_SCHEMAS: dict[str, Path] = {}

#: case -> (the answer written into the file, the reason it is counted under)
CASES = {
    "null": (None, "answer is null"), "empty": ("", "empty answer"), "blank": ("  ", "empty answer"),
    "list": (["yes"], "answer is a list (not text)"), "boolean": (True, "answer is a boolean (not text)"),
}
#: a csv / tsv cell is always text: it cannot hold null, a list or a boolean (each would be written as text: "",
#: "['yes']", "True"), so those readers get only the cases their format can express
TEXT_CELL_CASES = ("empty", "blank")


#: a parquet column has one type: a string column holds null, empty or blank text, not a list or a boolean
PARQUET_CASES = ("null", "empty", "blank")


def cases_of(reader: str) -> tuple[str, ...]:
    suffix = Path(READERS[reader][1]).suffix
    if suffix == ".parquet":
        return PARQUET_CASES
    return TEXT_CELL_CASES if suffix in DELIMITERS else tuple(CASES)


def test_every_benchmark_reader_is_covered():
    real = {name for name in components().names("benchmark") if not name.startswith("synth-")}
    assert real == {benchmark for benchmark, *_ in READERS.values()}


@pytest.mark.parametrize(("reader", "value", "reason"), [
    pytest.param(reader, *CASES[case], id=f"{case}-{reader}") for reader in READERS for case in cases_of(reader)
])
def test_a_reference_without_an_answer_is_counted_and_left_out_of_every_metric(data_root, tmp_path, capsys, reader,
                                                                               value, reason):
    benchmark, relative, is_record, set_answer = READERS[reader]
    source = data_root / relative
    items = components().get("benchmark", benchmark).factory(require_images="false").load(str(source))
    target = items[-1].question_id  # the last: removing it shifts no position-based id (PathVQA's)
    predictions = {item.question_id: item.answer for item in items} | {target: "none"}
    answers = tmp_path / "answers.jsonl"
    answers.write_text("".join(json.dumps({"question_id": q, "text": t}) + "\n" for q, t in predictions.items()))
    PARQUET_SCHEMAS[source.name] = source
    records = read_records(source)
    (position,) = [i for i, record in enumerate(records) if isinstance(record, dict) and is_record(record, i, target)]
    faulty, without = tmp_path / "faulty" / source.name, tmp_path / "without" / source.name
    for path in (faulty, without):
        path.parent.mkdir()
    set_answer(records[position], value)
    write_records(faulty, records)
    write_records(without, records[:position] + records[position + 1:])
    before = snapshot(tmp_path)

    scored = score_json(capsys, "-b", benchmark, "-r", faulty, "-p", answers)
    reference = score_json(capsys, "-b", benchmark, "-r", without, "-p", answers)
    assert scored["metrics"] == reference["metrics"]  # as if the record were not in the file
    assert scored["skipped_references_by_reason"].get(reason) == 1
    assert scored["skipped_references"] == reference["skipped_references"] + 1
    assert snapshot(tmp_path) == before


@pytest.fixture(scope="module")
def eval_root(synthetic_data, tmp_path_factory):
    """A synthetic data set whose VQA-RAD test file has a null, an empty and a non-text answer."""
    root = tmp_path_factory.mktemp("null-references")
    shutil.copytree(synthetic_data(train=4, val=2, test=8), root, dirs_exist_ok=True)
    path = root / "vqa_rad" / "test.json"
    records = json.loads(path.read_text())
    for record, value in zip(records, [None, "", {"text": "yes"}], strict=False):
        llava_turn(record, value)
    path.write_text(json.dumps(records))
    return root


def test_eval_leaves_references_without_an_answer_out_and_counts_them(eval_root, trained_tiny_model, tmp_path,
                                                                      capsys, single_thread):
    before = snapshot(eval_root)
    out = tmp_path / "eval"
    capsys.readouterr()
    with single_thread():
        main(["eval", str(trained_tiny_model), "--benchmark", "synth-vqa-rad", "--option", f"root={eval_root}",
              "--option", "max_new_tokens=2", "--output-dir", str(out), "--batch-size", "4"])
    printed = capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    in_file = len(json.loads((eval_root / "vqa_rad" / "test.json").read_text()))
    skipped = metrics["skipped"]
    assert (skipped["reference_null"], skipped["reference_empty"], skipped["reference_not_text"]) == (1, 1, 1)
    assert metrics["n_questions_in_file"] == in_file and metrics["n"] == in_file - 3
    answered = {json.loads(line)["question_id"] for line in (out / "predictions.jsonl").read_text().splitlines()}
    skipped_ids = {str(record["id"]) for record in json.loads((eval_root / "vqa_rad" / "test.json").read_text())[:3]}
    assert not answered & skipped_ids and len(answered) == in_file - 3  # never asked, never scored
    assert f"synth-vqa-rad: 3 of {in_file} questions skipped: reference empty 1, reference not text 1, reference null 1" in printed
    assert snapshot(eval_root) == before
