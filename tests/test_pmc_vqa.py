"""PMC-VQA: both csv layouts read, bad rows counted by reason, MedEvalKit's prompt, protocols selectable and
recorded, `medzoo score` on an answer jsonl keyed by the csv's index, `medzoo data prepare pmc-vqa`, and the
synthetic twin evaluated end to end by the tiny model and shown on the leaderboard by protocol."""

from __future__ import annotations

import csv
import hashlib
import json
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from medzoo.app.cli.main import cli
from medzoo.core.errors import DataError
from medzoo.core.plugin_system.manager import components

V2_HEADER = ["index", "Figure_path", "Caption", "Question", "Choice A", "Choice B", "Choice C", "Choice D", "Answer",
             "split"]  # fmt: skip
V1_HEADER = ["Figure_path", "Question", "Answer", "Choice A", "Choice B", "Choice C", "Choice D", "Answer_label"]


def write_csv(path: Path, header: list[str], rows: list[list]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def png(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (16, 16), (200, 40, 40)).save(path)


@pytest.fixture
def test_2(tmp_path: Path) -> Path:
    """A test_2.csv with one good question of each kind and one bad row per reason; figures in figures/."""
    for name in ("a.jpg", "b.jpg"):
        png(tmp_path / "figures" / name)
    rows = [
        [0, "a.jpg", "cap", "What is shown?", "A:CT", "B:MRI", "C:X-ray", "D:Ultrasound", "B", "test"],
        [1, "b.jpg", "cap", "Which organ?", "A:Liver", "B:Lung", "C:Heart", "D:Kidney", "C", "test"],
        [1, "b.jpg", "cap", "Duplicate id", "A:x", "B:y", "C:z", "D:w", "A", "test"],
        [2, "a.jpg", "cap", "Answer E?", "A:x", "B:y", "C:z", "D:w", "E", "test"],
        [3, "a.jpg", "cap", "One option", "A:x", "", "", "", "A", "test"],
        [4, "missing.jpg", "cap", "No figure", "A:x", "B:y", "C:z", "D:w", "A", "test"],
    ]
    return write_csv(tmp_path / "test_2.csv", V2_HEADER, rows)


def pmc(**options):
    return components().get("benchmark", "pmc-vqa").factory(**options)


def test_test_2_csv_is_read_with_bad_rows_counted_by_reason(test_2):
    benchmark = pmc()
    items = benchmark.load(str(test_2))
    assert [item.question_id for item in items] == ["0", "1"]
    assert [item.answer for item in items] == ["B", "C"]
    assert items[0].image == test_2.parent / "figures" / "a.jpg"
    assert dict(benchmark.last_report.skipped) == {
        "duplicate id": 1, "answer not among the options": 1, "fewer than two options": 1, "image not found": 1}
    counts = benchmark.question_counts
    assert counts.in_file == 6 and counts.skipped == {"bad_record": 3, "image_missing": 1}
    assert benchmark.size_warning(items) == (
        "warning: pmc-vqa: the file holds 6 questions where the published test split has 2000 questions; its "
        "scores are not comparable with published rows")


def test_the_prompt_is_medevalkits_after_the_image_placeholder(test_2):
    benchmark = pmc()
    item = benchmark.load(str(test_2))[0]
    assert benchmark.prompt(item) == (
        "<image>\nQuestion: What is shown?\nOptions: \nA:CT\nB:MRI\nC:X-ray\nD:Ultrasound\n"
        "Answer with the option's letter from the given choices directly.")
    assert benchmark.decoding == {"do_sample": False, "max_new_tokens": 8192}


def test_the_original_release_layout_is_read_too(tmp_path):
    png(tmp_path / "images" / "PMC1_F1.jpg")
    path = write_csv(tmp_path / "test.csv", V1_HEADER, [
        ["PMC1_F1.jpg", "What is the uptake pattern?", "Focal uptake pattern", "A:Diffuse uptake pattern",
         "B:Focal uptake pattern", "C:No uptake pattern", "D:Cannot determine", "B"],
    ])  # fmt: skip
    items = pmc().load(str(path))
    assert [(item.question_id, item.answer) for item in items] == [("0", "B")]
    assert items[0].image == tmp_path / "images" / "PMC1_F1.jpg"


def test_another_layout_is_one_line_naming_the_file_and_the_columns(tmp_path):
    path = write_csv(tmp_path / "test_2.csv", ["id", "image", "question", "answer"], [[1, "a.jpg", "q", "A"]])
    with pytest.raises(DataError) as error:
        pmc().load(str(path))
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: not a PMC-VQA test csv: columns id, image, question, answer; expected index, ")


def test_the_protocol_option_picks_the_parser_and_is_recorded(test_2):
    answers = {"0": "The answer is MRI", "1": "C"}
    medevalkit = pmc()
    items = medevalkit.load(str(test_2))
    assert medevalkit.score(answers, items)["accuracy"] == 100.0
    strict = pmc(protocol="strict")
    result = strict.score(answers, strict.load(str(test_2)))
    assert (result["accuracy"], result["answer_protocol"]) == (50.0, "strict")
    assert strict.last_report.skipped["duplicate id"] == 1  # counted in the load report, not among the metrics
    with pytest.raises(DataError, match="option protocol='nope'"):
        pmc(protocol="nope")


def test_score_command_keys_the_answers_by_the_csv_index(test_2, tmp_path):
    answers = tmp_path / "answers.jsonl"
    answers.write_text("".join(json.dumps(line) + "\n" for line in [
        {"question_id": 0, "text": "\\boxed{B}"}, {"question_id": 1, "text": "A"}, {"question_id": 99, "text": "A"}]))
    result = CliRunner().invoke(cli, ["score", "--benchmark", "pmc-vqa", "--references", str(test_2),
                                      "--predictions", str(answers), "--json"])
    assert result.exit_code == 0, result.output
    scored = json.loads(result.stdout)
    assert scored["metrics"]["answer_protocol"] == "medevalkit"
    # images are not required, so index 4 is scored too; it has no answer, and MedEvalKit counts the empty
    # answer as option A, its reference: 2 of 3 right
    assert scored["metrics"]["accuracy"] == pytest.approx(200 / 3) and scored["missing_predictions"] == 1
    assert scored["unmatched_predictions"] == 1 and scored["skipped_references"] == 3
    result = CliRunner().invoke(cli, ["score", "-b", "pmc-vqa", "-r", str(test_2), "-p", str(answers),
                                      "--option", "protocol=vlmevalkit", "--json"])
    assert json.loads(result.stdout)["metrics"]["answer_protocol"] == "vlmevalkit"


def test_data_prepare_fetches_the_hub_csv_and_figures_and_checks_them(tmp_path, capsys, monkeypatch):
    from medzoo.app.cli.main import main
    from medzoo.app.data_prepare import hub

    published = tmp_path / "hub"
    published.mkdir()
    write_csv(published / "test_2.csv", V2_HEADER, [
        [0, "a.jpg", "c", "Q?", "A:x", "B:y", "C:z", "D:w", "B", "test"],
        [1, "gone.jpg", "c", "Q?", "A:x", "B:y", "C:z", "D:w", "B", "test"]])  # fmt: skip
    png(tmp_path / "a.jpg")
    with zipfile.ZipFile(published / "images_2.zip", "w") as archive:
        archive.write(tmp_path / "a.jpg", "figures/a.jpg")
    (published / "train_2.csv").write_text("not wanted")

    def list_files(repo_id):
        assert repo_id == "RadGenome/PMC-VQA"
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
    main(["data", "prepare", "pmc-vqa", "--output", str(out), "--no-progress"])
    printed = capsys.readouterr().out
    assert "records converted 1, skipped 1 (image not found: 1)" in printed
    assert not (out / "pmc_vqa" / "train_2.csv").exists()
    items = pmc().load(str(out / "pmc_vqa" / "test_2.csv"))
    assert [item.image for item in items] == [out / "pmc_vqa" / "figures" / "a.jpg"]


def test_the_synthetic_twin_is_answerable_only_from_the_image(synthetic_data):
    root = synthetic_data(seed=3, train=10, val=5, test=10)
    benchmark = components().get("benchmark", "synth-pmc-vqa").factory(root=str(root))
    items = benchmark.load()
    assert items and all(item.image.is_file() for item in items)
    by_question: dict[str, set[str]] = {}
    for item in items:
        by_question.setdefault(item.question, set()).add(item.metadata["choice"].options[item.answer].split(":", 1)[1])
        assert len(item.metadata["choice"].options) == 4
    assert all(len(answers) >= 2 for answers in by_question.values())  # every question has varied answers
    assert len({item.answer for item in items}) >= 3  # the right letter moves


def test_the_tiny_model_evaluates_the_twin_and_the_leaderboard_groups_it_by_protocol(
    synthetic_data, trained_tiny_model, tmp_path
):
    root = synthetic_data(seed=3, train=10, val=5, test=10)
    for protocol in ("medevalkit", "strict"):
        result = CliRunner().invoke(cli, [
            "eval", str(trained_tiny_model), "--benchmark", "synth-pmc-vqa", "--option", f"root={root}",
            "--option", f"protocol={protocol}", "--option", "max_new_tokens=8",
            "--output-dir", str(tmp_path / protocol / "eval" / "synth-pmc-vqa")])  # fmt: skip
        assert result.exit_code == 0, result.output
        metrics = json.loads((tmp_path / protocol / "eval" / "synth-pmc-vqa" / "metrics.json").read_text())
        assert metrics["answer_protocol"] == protocol and metrics["n"] == metrics["n_questions_in_file"] > 0
    strict = json.loads((tmp_path / "strict" / "eval" / "synth-pmc-vqa" / "metrics.json").read_text())
    assert strict["accuracy"] == 0.0  # the colour-square model never answers with a lone letter
    board = CliRunner().invoke(cli, ["leaderboard", str(tmp_path / "medevalkit"), str(tmp_path / "strict")])
    assert board.exit_code == 0, board.output
    text = board.stdout
    assert "medevalkit-mcq" in text and "strict-letter" in text and "synth-pmc-vqa" in text
    assert text.index("medevalkit-mcq") < text.index("strict-letter")


@pytest.mark.parametrize("benchmark", ["synth-pmc-vqa", "synth-omnimedvqa"])
def test_an_hf_vlm_contender_answers_the_multiple_choice_twins(benchmark, synthetic_data, tmp_path, single_thread):
    from medzoo.plugins.contenders.tiny_families import FAMILIES, save_tiny_family

    root = synthetic_data(seed=3, train=10, val=5, test=10)
    family = sorted(FAMILIES)[0]
    folder = save_tiny_family(family, tmp_path / f"tiny-{family}")
    out = tmp_path / "eval"
    with single_thread():
        result = CliRunner().invoke(cli, [
            "eval", str(folder), "--contender", "hf-vlm", "--benchmark", benchmark, "--option", f"root={root}",
            "--option", "max_new_tokens=4", "--output-dir", str(out), "--batch-size", "8"])  # fmt: skip
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    answers = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines() if line.strip()]
    assert metrics["answer_protocol"] == "medevalkit" and metrics["n"] == len(answers) > 0
    assert "Answer with the option's letter from the given choices directly." in answers[0]["prompt"]
