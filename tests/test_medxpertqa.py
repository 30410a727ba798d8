"""MedXpertQA-MM: the hub snapshot's MM/test.jsonl read with its images/ folder, bad lines counted by reason,
one placeholder per image before MedEvalKit's prompt, the <answer> span judged by MedEvalKit's judge, accuracy per
medical task and body system, and the twin evaluated end to end by the tiny model and by an hf-vlm contender
(several images each, or a declared one-image policy).

MedEvalKit behaviour read from alibaba-damo-academy/MedEvalKit, commit 9b12e3b34232a8779cc1275417bf4f72f03d28e0:
``utils/MedXpertQA/MedXpertQA.py`` (choices ``A. text``, ``get_multiple_choice_prompt``, the images handed over as
a list, ``extract(response, "answer")`` before ``judge_multi_choice``, accuracy per medical task).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from medzoo.app.cli.main import cli
from medzoo.core.errors import DataError
from medzoo.core.plugin_system.manager import components

OPTIONS = {"A": "Pneumonia", "B": "Fracture", "C": "Tumour", "D": "Normal", "E": "Oedema"}


def line(question_id: str, label: str = "B", images=("a.png", "b.png"), options=OPTIONS, **extra) -> dict:
    return {"id": question_id, "question": "What is shown?", "options": options, "label": label,
            "images": list(images), "medical_task": "Diagnosis", "body_system": "Skeletal",
            "question_type": "Reasoning", **extra}  # fmt: skip


@pytest.fixture
def snapshot(tmp_path: Path) -> Path:
    """A hub-snapshot layout: MM/test.jsonl and images/ beside MM/."""
    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (8, 8), (200, 0, 0)).save(images / "a.png")
    Image.new("RGB", (8, 8), (0, 0, 200)).save(images / "b.png")
    (images / "broken.png").write_bytes(b"not a png")
    rows = [
        line("MM-0"),
        line("MM-1", label="E", images=["b.png"], medical_task="Treatment", body_system="Nervous"),
        line("MM-0"),
        line("MM-2", label="F"),
        line("MM-3", options={"A": "only", "B": " "}),
        line("MM-4", images=["a.png", "gone.png"]),
        line("MM-5", images=["broken.png"]),
        line("MM-6", label=""),
    ]
    (tmp_path / "MM").mkdir()
    (tmp_path / "MM" / "test.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return tmp_path


def medxpertqa(**options):
    return components().get("benchmark", "medxpertqa-mm").factory(**options)


def test_the_snapshot_is_read_with_its_images_and_bad_lines_counted_by_reason(snapshot):
    bench = medxpertqa()
    items = bench.load(str(snapshot))
    assert [item.question_id for item in items] == ["MM-0", "MM-1"]
    assert items[0].images == [snapshot / "images" / "a.png", snapshot / "images" / "b.png"]
    assert items[1].images == [snapshot / "images" / "b.png"] and items[1].extra_images == []
    assert dict(bench.last_report.skipped) == {
        "duplicate id": 1, "answer not among the options": 1, "fewer than two options": 1, "image not found": 1,
        "unreadable image": 1, "empty answer": 1}  # fmt: skip
    counts = bench.question_counts.as_metrics()
    assert counts["n_questions_in_file"] == 8 and counts["skipped"]["image_missing"] == 1
    assert bench.load(str(snapshot / "MM" / "test.jsonl"))[0].images == items[0].images  # the file itself too
    assert bench.size_warning(items) == ("warning: medxpertqa-mm: the file holds 8 questions where the published "
                                         "test split has 2000 questions; its scores are not comparable with "
                                         "published rows")


def test_one_placeholder_per_image_comes_before_medevalkits_prompt_and_the_answer_span_is_judged(snapshot):
    bench = medxpertqa()
    items = bench.load(str(snapshot))
    assert bench.prompt(items[0]) == (
        "<image>\n<image>\nQuestion: What is shown?\nOptions: \nA. Pneumonia\nB. Fracture\nC. Tumour\nD. Normal\n"
        "E. Oedema\nAnswer with the option's letter from the given choices directly.")  # fmt: skip
    assert bench.prompt(items[1]).startswith("<image>\nQuestion:")
    answers = {"MM-0": "<think>maybe E</think><answer>B</answer>", "MM-1": "E. Oedema"}
    result = bench.score(answers, items)
    assert (result["accuracy"], result["answer_protocol"]) == (100.0, "medevalkit")
    assert result["subsets"]["medical_task"] == {"Diagnosis": {"n": 1, "accuracy": 100.0},
                                                 "Treatment": {"n": 1, "accuracy": 100.0}}
    assert set(result["subsets"]) == {"medical_task", "body_system", "question_type"}
    strict = medxpertqa(protocol="strict")
    assert strict.score(answers, strict.load(str(snapshot)))["accuracy"] == 0.0


def test_a_file_of_another_layout_is_one_line_naming_the_keys(tmp_path):
    path = tmp_path / "test.jsonl"
    path.write_text(json.dumps({"question_id": 1, "question": "q", "answer": "A"}) + "\n")
    with pytest.raises(DataError) as raised:
        medxpertqa().load(str(path))
    message = str(raised.value)
    assert "\n" not in message and message.startswith(f"{path}: not a MedXpertQA jsonl: keys question_id, question, "
                                                      "answer; expected id, question, options, label, images")
    with pytest.raises(DataError, match="expected MM/test.jsonl"):
        medxpertqa().load(str(tmp_path / "nowhere"))


def test_the_twin_asks_about_two_images_in_order(synthetic_data):
    root = synthetic_data(seed=3, train=10, val=5, test=10)
    bench = components().get("benchmark", "synth-medxpertqa-mm").factory(root=str(root))
    items = bench.load()
    assert items and all(len(item.images) == 2 and all(path.is_file() for path in item.images) for item in items)
    for item in items:
        options = item.metadata["choice"].options
        right = options[item.answer].split(". ", 1)[1]
        first, second = right.split(", then ")
        assert f"{item.answer}. {first}" != f"{second}, then {first}"
        assert any(text.endswith(f"{second}, then {first}") for text in options.values())  # the swap is offered
        assert len(options) == 5


def test_the_tiny_model_evaluates_the_twin_with_both_images(synthetic_data, trained_tiny_model, tmp_path):
    root = synthetic_data(seed=3, train=10, val=5, test=10)
    out = tmp_path / "eval"
    result = CliRunner().invoke(cli, [
        "eval", str(trained_tiny_model), "--benchmark", "synth-medxpertqa-mm", "--option", f"root={root}",
        "--option", "max_new_tokens=4", "--output-dir", str(out)])  # fmt: skip
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n"] == metrics["n_questions_in_file"] > 0 and metrics["answer_protocol"] == "medevalkit"
    assert metrics["multi_image"] == {"policy": "all", "questions_with_several_images": metrics["n"], "refused": 0,
                                      "first_image_only": 0}
    assert set(metrics["subsets"]) == {"medical_task", "body_system", "question_type"}
    answers = [json.loads(text) for text in (out / "predictions.jsonl").read_text().splitlines() if text.strip()]
    assert all(answer["prompt"].startswith("<image>\n<image>\nQuestion:") for answer in answers)


@pytest.mark.parametrize("policy", ["all", "refuse", "first"])
def test_an_hf_vlm_contender_answers_the_twin_under_its_declared_policy(policy, synthetic_data, tmp_path,
                                                                        single_thread):
    from medzoo.plugins.contenders.tiny_families import FAMILIES, save_tiny_family

    root = synthetic_data(seed=3, train=10, val=5, test=10)
    family = sorted(FAMILIES)[0]
    folder = save_tiny_family(family, tmp_path / f"tiny-{family}")
    out = tmp_path / "eval"
    with single_thread():
        result = CliRunner().invoke(cli, [
            "eval", str(folder), "--contender", "hf-vlm", "--contender-option", f"multi_image={policy}",
            "--benchmark", "synth-medxpertqa-mm", "--option", f"root={root}", "--option", "max_new_tokens=4",
            "--output-dir", str(out), "--batch-size", "8"])  # fmt: skip
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    several = metrics["multi_image"]["questions_with_several_images"]
    assert several == metrics["n_questions_in_file"] > 0 and metrics["multi_image"]["policy"] == policy
    answers = [json.loads(text) for text in (out / "predictions.jsonl").read_text().splitlines() if text.strip()]
    if policy == "refuse":
        assert metrics["n"] == len(answers) == 0 and metrics["skipped"]["multi_image_refused"] == several
        assert "refused (not asked)" in result.output
    elif policy == "first":
        assert metrics["n"] == len(answers) == several == metrics["multi_image"]["first_image_only"]
        assert all(answer["prompt"].startswith("<image>\nQuestion:") for answer in answers)
    else:
        assert metrics["n"] == len(answers) and all(a["prompt"].count("<image>") == 2 for a in answers)


def test_data_prepare_fetches_the_mm_split_and_images_and_checks_them(snapshot, tmp_path, capsys, monkeypatch):
    import hashlib
    import zipfile

    from medzoo.app.cli.main import main
    from medzoo.app.data_prepare import hub

    published = tmp_path / "published"
    (published / "MM").mkdir(parents=True)
    (published / "Text").mkdir()
    (published / "MM" / "test.jsonl").write_bytes((snapshot / "MM" / "test.jsonl").read_bytes())
    (published / "Text" / "test.jsonl").write_text("{}\n")
    with zipfile.ZipFile(published / "images.zip", "w") as archive:
        for name in ("a.png", "b.png", "broken.png"):
            archive.write(snapshot / "images" / name, f"images/{name}")
    files = [path for path in sorted(published.rglob("*")) if path.is_file()]

    def list_files(repo_id):
        assert repo_id == "TsinghuaC3I/MedXpertQA"
        return [hub.HubFile(str(path.relative_to(published)), path.stat().st_size,
                            hashlib.sha256(path.read_bytes()).hexdigest()) for path in files]

    def fetch(repo_id, file, local_dir):
        target = Path(local_dir) / file.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((published / file.path).read_bytes())
        return target

    monkeypatch.setattr(hub, "list_files", list_files)
    monkeypatch.setattr(hub, "fetch", fetch)
    out = tmp_path / "data"
    main(["data", "prepare", "medxpertqa-mm", "--output", str(out), "--no-progress"])
    printed = capsys.readouterr().out
    assert "records converted 2" in printed and "image not found: 1" in printed
    assert (out / "medxpertqa" / "MM" / "test.jsonl").is_file() and (out / "medxpertqa" / "images" / "a.png").is_file()
    assert not (out / "medxpertqa" / "Text").exists()
    assert len(medxpertqa().load(str(out / "medxpertqa"))) == 2
