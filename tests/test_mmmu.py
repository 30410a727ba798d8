"""MMMU Health & Medicine: the hub snapshot's validation parquet files read (images embedded in image_1..image_7),
bad rows counted by reason, MedEvalKit's prompt and MMMU answer parsing (pinned on adversarial answers), images
shown as MedEvalKit shows them or each at its <image N> tag, accuracy per subject, and the twin evaluated end to
end by the tiny model and by an hf-vlm contender.

MedEvalKit behaviour read from alibaba-damo-academy/MedEvalKit, commit 9b12e3b34232a8779cc1275417bf4f72f03d28e0:
``utils/MMMU/data_utils.py`` (``construct_prompt``, ``process_single_sample``: image_1 only,
``DOMAIN_CAT2SUB_CAT['Health and Medicine']``), ``utils/MMMU/eval_val.py`` (``run_model``: the <answer> span, then
the last \\boxed{}; an open question's raw response handed to ``eval_open``) and ``utils/MMMU/eval_utils.py``
(``parse_multi_choice_response``, ``parse_open_response``, ``eval_open``).
"""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from medzoo.app.cli.main import cli
from medzoo.core.errors import DataError
from medzoo.core.plugin_system.manager import components
from medzoo.plugins.benchmarks.multiple_choice.mmmu_parsing import (
    mmmu_prompt,
    open_correct,
    parse_choice,
    parse_open,
    run_model_response,
)

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")


def png(colour) -> dict:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(buffer, format="PNG")
    return {"bytes": buffer.getvalue(), "path": "x.png"}


def row(question_id: str, question: str = "Compare <image 1> with <image 2>.", options="['CT', 'MRI', 'X-ray']",
        answer: str = "B", question_type: str = "multiple-choice", images=2, **extra) -> dict:
    cells = {f"image_{n}": (png((40 * n, 0, 0)) if n <= images else None) for n in range(1, 8)}
    return {"id": question_id, "question": question, "options": options, "explanation": "", **cells,
            "img_type": "['CT']", "answer": answer, "topic_difficulty": "Easy", "question_type": question_type,
            "subfield": "Radiology", **extra}  # fmt: skip


def write(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


@pytest.fixture
def snapshot(tmp_path: Path) -> Path:
    write(tmp_path / "Clinical_Medicine" / "validation-00000-of-00001.parquet", [
        row("validation_Clinical_Medicine_1"),
        row("validation_Clinical_Medicine_2", "Name <image 1>.", "[]", "CT", "open", images=1),
        row("validation_Clinical_Medicine_1"),
        row("validation_Clinical_Medicine_3", options="['only']"),
        row("validation_Clinical_Medicine_4", answer="F"),
        row("validation_Clinical_Medicine_5", images=1),
        row("validation_Clinical_Medicine_6", images=0, image_1={"bytes": b"not an image", "path": "x"}),
    ])  # fmt: skip
    write(tmp_path / "Biology" / "validation-00000-of-00001.parquet", [row("validation_Biology_1")])
    write(tmp_path / "Clinical_Medicine" / "dev-00000-of-00001.parquet", [row("dev_Clinical_Medicine_1")])
    return tmp_path


def mmmu(**options):
    return components().get("benchmark", "mmmu-med").factory(**options)


def test_the_validation_files_are_read_with_bad_rows_counted_by_reason(snapshot):
    bench = mmmu()
    items = bench.load(str(snapshot))
    assert [item.question_id for item in items] == ["validation_Clinical_Medicine_1", "validation_Clinical_Medicine_2"]
    assert [item.answer_type for item in items] == ["closed", "open"]
    assert dict(bench.last_report.skipped) == {
        "other subject": 1, "duplicate id": 1, "fewer than two options": 1, "answer not among the options": 1,
        "image not found": 1, "unreadable image": 1}  # fmt: skip
    counts = bench.question_counts.as_metrics()
    assert counts["left_out"] == {"other subject": 1} and counts["n_questions_in_file"] == 7
    assert counts["skipped"]["image_missing"] == 1 and counts["skipped"]["image_corrupt"] == 1
    assert items[0].image.name == "validation_Clinical_Medicine_1_1.png" and items[0].image.is_file()
    one_file = mmmu().load(str(snapshot / "Clinical_Medicine" / "validation-00000-of-00001.parquet"))
    assert len(one_file) == 2


def test_medevalkit_shows_image_1_alone_and_all_shows_each_image_at_its_tag(snapshot):
    harness = mmmu()
    first = harness.load(str(snapshot))[0]
    assert len(first.images) == 1
    assert harness.prompt(first) == (
        "<image>\nCompare <image 1> with <image 2>.\n\n(A) CT\n(B) MRI\n(C) X-ray\n\n\n        "
        "Answer with the option's letter from the given choices directly.")  # fmt: skip
    every = mmmu(images="all")
    item = every.load(str(snapshot))[0]
    assert len(item.images) == 2 and item.images[1].name.endswith("_2.png")
    assert every.prompt(item).startswith("\nCompare <image> with <image>.\n\n(A) CT")
    first_only = dataclasses.replace(item, extra_images=[])  # what multi_image=first leaves of it
    assert every.prompt(first_only).startswith("\nCompare <image> with <image 2>.")
    assert mmmu_prompt("Name it.", []) == "\nName it.\n\n        Answer the question using a single word or phrase."
    with pytest.raises(DataError, match="option images='some'"):
        mmmu(images="some")


@pytest.mark.parametrize(("response", "letter", "drawn"), [
    ("B", "B", False),
    ("(B)", "B", False),
    ("The answer is (C).", "C", False),
    ("\\boxed{C}", "C", False),
    ("<think>A?</think><answer>B</answer>", "B", False),
    ("A or B", "B", False),  # two letters: the last one
    ("(A) is wrong, (C) is right", "C", False),  # two bracketed letters: the last one
    ("I think the picture shows a magnetic MRI scan here", "B", False),  # option text, over five words
    ("MRI", "A", True),  # option text in fewer than six words: nothing parsed, a random option
    ("答案：B", "A", True),  # no blank before the letter: nothing parsed
    ("", "A", True),
])  # fmt: skip
def test_the_choice_parser_agrees_with_parse_multi_choice_response(response, letter, drawn):
    options = ["CT", "MRI", "X-ray"]
    parsed, was_drawn = parse_choice(run_model_response(response), options, "fixed-seed")
    assert was_drawn == drawn
    if drawn:  # the harness draws at random; medzoo's draw depends on the question id alone
        assert parsed == parse_choice(response, options, "fixed-seed")[0] and parsed in "ABC"
    else:
        assert parsed == letter


def test_open_answers_are_compared_as_eval_val_does_or_parsed_as_parse_open_response():
    assert not open_correct("CT", "CT")  # the raw response's characters are the predictions
    assert not open_correct("x", "the answer is x")
    assert open_correct("", "anything")  # an empty reference is in every character
    assert open_correct("colonoscopy", parse_open("The modality is colonoscopy."))
    assert open_correct("3.14", parse_open("so the result is 3.14159"))
    assert not open_correct("MRI", parse_open("It is CT."))
    with pytest.raises(DataError, match="option protocol='nope'; expected one of medevalkit, mmmu, strict"):
        mmmu(protocol="nope")


def test_scores_are_per_subject_and_the_protocols_are_recorded(snapshot):
    answers = {"validation_Clinical_Medicine_1": "The answer is (B).", "validation_Clinical_Medicine_2": "It is CT."}
    results = {}
    for protocol in ("medevalkit", "mmmu", "strict"):
        bench = mmmu(protocol=protocol)
        results[protocol] = bench.score(answers, bench.load(str(snapshot)))
    assert results["medevalkit"]["accuracy"] == 50.0  # the open answer never counts under eval_val.py
    assert results["mmmu"]["accuracy"] == 100.0 and results["strict"]["accuracy"] == 0.0
    assert results["mmmu"]["subsets"]["subject"] == {"Clinical_Medicine": {"n": 2, "accuracy": 100.0}}
    assert results["mmmu"]["n_open"] == 1 and results["mmmu"]["image_protocol"] == "medevalkit"
    assert {result["answer_protocol"] for result in results.values()} == {"medevalkit", "mmmu", "strict"}


def test_a_file_of_another_layout_is_one_line_naming_the_columns(tmp_path):
    path = write(tmp_path / "validation-0.parquet", [{"question_id": "1", "text": "q"}])
    with pytest.raises(DataError) as raised:
        mmmu().load(str(path))
    message = str(raised.value)
    assert "\n" not in message and message.startswith(f"{path}: not an MMMU parquet file: columns question_id, text; "
                                                      "expected id, question, options, answer, question_type, image_1")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no validation-\\*.parquet file below it"):
        mmmu().load(str(tmp_path / "empty"))


def test_the_tiny_model_evaluates_the_twin_with_every_image_at_its_tag(synthetic_data, trained_tiny_model, tmp_path):
    root = synthetic_data(seed=3, train=10, val=5, test=10)
    out = tmp_path / "eval"
    result = CliRunner().invoke(cli, [
        "eval", str(trained_tiny_model), "--benchmark", "synth-mmmu-med", "--option", f"root={root}",
        "--option", "images=all", "--option", "max_new_tokens=4", "--output-dir", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n"] == metrics["n_questions_in_file"] > 0 and metrics["image_protocol"] == "all"
    assert sorted(metrics["subsets"]["subject"]) == ["Basic_Medical_Science", "Clinical_Medicine",
                                                     "Diagnostics_and_Laboratory_Medicine", "Pharmacy",
                                                     "Public_Health"]  # fmt: skip
    assert metrics["multi_image"]["questions_with_several_images"] > 0
    answers = [json.loads(text) for text in (out / "predictions.jsonl").read_text().splitlines() if text.strip()]
    assert any("Which modalities do <image> and <image> show" in answer["prompt"] for answer in answers)


def test_an_hf_vlm_contender_answers_the_twin(synthetic_data, tmp_path, single_thread):
    from medzoo.plugins.contenders.tiny_families import FAMILIES, save_tiny_family

    root = synthetic_data(seed=3, train=10, val=5, test=10)
    family = sorted(FAMILIES)[0]
    folder = save_tiny_family(family, tmp_path / f"tiny-{family}")
    out = tmp_path / "eval"
    with single_thread():
        result = CliRunner().invoke(cli, [
            "eval", str(folder), "--contender", "hf-vlm", "--benchmark", "synth-mmmu-med", "--option", f"root={root}",
            "--option", "max_new_tokens=4", "--output-dir", str(out), "--batch-size", "8"])  # fmt: skip
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    answers = [json.loads(text) for text in (out / "predictions.jsonl").read_text().splitlines() if text.strip()]
    assert metrics["answer_protocol"] == "medevalkit" and metrics["n"] == len(answers) > 0
    assert metrics["image_protocol"] == "medevalkit" and "multi_image" not in metrics
    assert set(metrics["subsets"]["subject"]) == {"Basic_Medical_Science", "Clinical_Medicine",
                                                  "Diagnostics_and_Laboratory_Medicine", "Pharmacy", "Public_Health"}


def test_data_prepare_fetches_the_health_and_medicine_files_and_checks_them(snapshot, tmp_path, capsys, monkeypatch):
    import hashlib

    from medzoo.app.cli.main import main
    from medzoo.app.data_prepare import hub

    published = sorted(path for path in snapshot.rglob("*.parquet"))

    def list_files(repo_id):
        assert repo_id == "MMMU/MMMU"
        return [hub.HubFile(str(path.relative_to(snapshot)), path.stat().st_size,
                            hashlib.sha256(path.read_bytes()).hexdigest()) for path in published]

    def fetch(repo_id, file, local_dir):
        target = Path(local_dir) / file.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((snapshot / file.path).read_bytes())
        return target

    monkeypatch.setattr(hub, "list_files", list_files)
    monkeypatch.setattr(hub, "fetch", fetch)
    out = tmp_path / "data"
    main(["data", "prepare", "mmmu-med", "--output", str(out), "--no-progress"])
    printed = capsys.readouterr().out
    assert "records converted 2" in printed and "duplicate id: 1" in printed
    assert (out / "mmmu" / "Clinical_Medicine" / "validation-00000-of-00001.parquet").is_file()
    assert not (out / "mmmu" / "Biology").exists() and not list((out / "mmmu").rglob("dev-*"))
    assert len(mmmu().load(str(out / "mmmu"))) == 2
