"""Medical-VQA and ColonINST readers, benchmarks and ``medzoo score`` on hand-made files."""

from __future__ import annotations

import base64
import json
import pickle
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from medzoo.app.cli.main import cli
from medzoo.core.errors import DataError
from medzoo.core.evaluation.question_counts import QuestionCounts, counts_of
from medzoo.core.interfaces.benchmark import Benchmark, BenchmarkItem
from medzoo.core.plugin_system.manager import components
from medzoo.plugins.datasets.colon_inst import ColonInstReader
from medzoo.plugins.datasets.med_vqa import MedVqaReader

SYNTH_BENCHMARKS = [name for name in components().names("benchmark") if name.startswith("synth-")]


def _png(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (64, 64), (120, 30, 30)).save(path)


def _write_json(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def _turns(question: str, answer: str) -> list[dict]:
    return [{"from": "human", "value": f"<image>\n{question}"}, {"from": "gpt", "value": answer}]


@pytest.fixture
def synth_root(tmp_path: Path) -> Path:
    """A miniature of the `medzoo data synth` layout with every format."""
    root = tmp_path / "synth"
    for domain, split, n in [("cxr", "train", 0), ("cxr", "test", 0), ("cxr", "test", 1), ("ct", "test", 0)]:
        _png(root / "images" / domain / f"{split}_{n:06d}.png")
    _png(root / "images" / "histology" / "test_000000.png")
    for split in ("val", "test"):
        _png(root / "images" / "colonoscopy" / f"{split}_000000.png")
    _write_json(
        root / "vqa_rad" / "vqa_rad.json",
        [
            {"qid": 1, "image_name": "cxr/train_000000.png", "image_organ": "CHEST", "question": "Is there an effusion?",
             "answer": "yes", "answer_type": "CLOSED", "question_type": "PRES", "phrase_type": "freeform"},
            {"qid": 2, "image_name": "cxr/test_000000.png", "image_organ": "CHEST", "question": "Is there an effusion?",
             "answer": "no", "answer_type": "CLOSED", "question_type": "PRES", "phrase_type": "test_freeform"},
            {"qid": 3, "image_name": "cxr/test_000001.png", "image_organ": "CHEST", "question": "Where is the opacity?",
             "answer": "left lung", "answer_type": "OPEN ", "question_type": "POS", "phrase_type": "test_para"},
        ],
    )  # fmt: skip
    _write_json(
        root / "vqa_rad" / "test.json",
        [
            {"id": 2, "image": "cxr/test_000000.png", "answer_type": "CLOSED", "question_type": "PRES",
             "conversations": _turns("Is there an effusion?", "no")},
            {"id": 3, "image": "cxr/test_000001.png", "answer_type": "OPEN", "question_type": "POS",
             "conversations": [{"from": "human", "value": "Where is the opacity?\n<image>"},
                               {"from": "gpt", "value": "left lung"}]},
        ],
    )  # fmt: skip
    _write_json(
        root / "slake" / "test.json",
        [
            {"img_id": 1, "img_name": "ct/test_000000.png", "question": "Which organ is shown?", "answer": "liver",
             "q_lang": "en", "answer_type": "OPEN", "modality": "CT", "location": "Abdomen",
             "content_type": "Organ", "qid": 10},
            {"img_id": 1, "img_name": "ct/test_000000.png", "question": "Is this a CT?", "answer": "Yes",
             "q_lang": "en", "answer_type": "CLOSED", "modality": "CT", "location": "Abdomen",
             "content_type": "Modality", "qid": 11},
            {"img_id": 1, "img_name": "ct/test_000000.png", "question": "这是CT吗?", "answer": "是",
             "q_lang": "zh", "answer_type": "CLOSED", "modality": "CT", "location": "Abdomen",
             "content_type": "Modality", "qid": 12},
        ],
    )  # fmt: skip
    pkl = root / "pathvqa" / "qas" / "test" / "test_qa.pkl"
    pkl.parent.mkdir(parents=True)
    records = [
        {"image": "histology/test_000000.png", "question": "What stain is used?", "answer": "h&e"},
        {"image": "histology/test_000000.png", "question": "Are nuclei enlarged?", "answer": "no"},
    ]
    pkl.write_bytes(pickle.dumps(records, protocol=2))
    for split in ("val", "test"):
        image = f"colonoscopy/{split}_000000.png"
        base = {"id": f"synth/{split}/polyp/0.png", "image": image}
        _write_json(root / "coloninst" / split / f"cls_{split}.json",
                    [{**base, "conversations": _turns("Classify the object's category.", "polyp")}])
        _write_json(root / "coloninst" / split / f"reg_{split}.json",
                    [{**base, "conversations": _turns("What is the category of {<10><12><40><50>}?", "polyp")}])
        _write_json(root / "coloninst" / split / f"rec_{split}.json",
                    [{**base, "conversations": _turns("Where is the location of polyp?", "{<10><12><40><50>}")}])
        _write_json(root / "coloninst" / split / f"cap_{split}.json",
                    [{**base, "conversations": _turns("Interpret what the image shows.",
                                                      "A raised polyp protrudes from the colon wall in the upper "
                                                      "left part of the frame.")}])
    (root / "pmc_vqa").mkdir()
    (root / "pmc_vqa" / "test_2.csv").write_text(
        "index,Figure_path,Caption,Question,Choice A,Choice B,Choice C,Choice D,Answer,split\n"
        "0,ct/test_000000.png,c,Which organ is shown?,A:lung,B:liver,C:brain,D:kidney,B,test\n")
    _write_json(root / "omnimedvqa" / "QA_information" / "Open-access" / "Synth-ct.json", [
        {"dataset": "Synth-ct", "question_id": "Synth-ct_0000", "question_type": "Anatomy Identification",
         "question": "Which organ is shown?", "gt_answer": "liver", "image_path": "images/ct/test_000000.png",
         "modality_type": "CT(Computed Tomography)", "option_A": "lung", "option_B": "liver"}])
    ct_image = base64.b64encode((root / "images" / "ct" / "test_000000.png").read_bytes()).decode()
    (root / "gmai_mmbench").mkdir()
    (root / "gmai_mmbench" / "GMAI-MMBench_VAL.tsv").write_text(
        "index\tquestion\tA\tB\tanswer\timage\tmodality\n"
        f"0\tWhich organ is shown?\tlung\tliver\tB\t{ct_image}\tCT\n")
    for folder in ("images", "MM"):
        (root / "medxpertqa" / folder).mkdir(parents=True)
    for name in ("MM-0-a.png", "MM-0-b.png"):
        (root / "medxpertqa" / "images" / name).write_bytes((root / "images" / "ct" / "test_000000.png").read_bytes())
    (root / "medxpertqa" / "MM" / "test.jsonl").write_text(json.dumps({
        "id": "MM-0", "question": "Which organs?", "options": {"A": "lung", "B": "liver", "C": "brain", "D": "bone",
        "E": "skin"}, "label": "B", "images": ["MM-0-a.png", "MM-0-b.png"], "medical_task": "Diagnosis",
        "body_system": "Digestive", "question_type": "Understanding"}) + "\n")  # fmt: skip
    from medzoo.app.data_synth.multi_image import write_parquet

    image = {"bytes": (root / "images" / "ct" / "test_000000.png").read_bytes(), "path": "ct.png"}
    write_parquet(root / "mmmu" / "Clinical_Medicine" / "validation-00000-of-00001.parquet", [{
        "id": "validation_Clinical_Medicine_1", "question": "Which organ does <image 1> show?",
        "options": "['lung', 'liver']", "explanation": "", "image_1": image,
        **{f"image_{n}": None for n in range(2, 8)}, "img_type": "['CT']", "answer": "B", "topic_difficulty": "Easy",
        "question_type": "multiple-choice", "subfield": "Radiology"}])  # fmt: skip
    return root


# --- readers ---------------------------------------------------------------------------------------


def test_vqa_rad_osf_split_and_report(synth_root):
    reader = MedVqaReader(split="test")
    records, report = reader.read(str(synth_root / "vqa_rad" / "vqa_rad.json"), image_root=str(synth_root / "images"))
    assert [r.id for r in records] == ["2", "3"]
    assert report.skipped == {"other split (not test)": 1}
    assert records[1].metadata["answer_type"] == "open"  # "OPEN " with a stray space
    assert records[0].messages[0].content == "<image>\nIs there an effusion?"
    assert records[0].messages[1].content == "no"
    assert records[0].image == synth_root / "images" / "cxr" / "test_000000.png"
    train, _ = MedVqaReader().read(str(synth_root / "vqa_rad" / "vqa_rad.json"))  # image root found by itself
    assert [r.id for r in train] == ["1"] and train[0].image is not None


def test_slake_language_filter_is_counted(synth_root):
    records, report = MedVqaReader().read(str(synth_root / "slake" / "test.json"))
    assert [r.metadata["question_id"] for r in records] == ["10", "11"]
    assert report.skipped == {"q_lang zh (not en)": 1}
    assert records[0].metadata["question_type"] == "Organ" and records[0].metadata["modality"] == "CT"
    everything, _ = MedVqaReader(q_lang="all").read(str(synth_root / "slake" / "test.json"))
    assert len(everything) == 3


def test_pathvqa_pickle_and_answer_types(synth_root):
    records, _ = MedVqaReader().read(str(synth_root / "pathvqa" / "qas" / "test" / "test_qa.pkl"))
    assert [r.metadata["answer_type"] for r in records] == ["open", "closed"]
    assert records[0].id == "pathvqa-test-00000"


def test_pathvqa_pickle_refuses_classes(tmp_path):
    path = tmp_path / "evil_qa.pkl"
    path.write_bytes(pickle.dumps([Path("x")]))
    with pytest.raises(DataError, match="refusing to load"):
        MedVqaReader().read(str(path))


def test_llava_med_test_json_placeholder_after_question(synth_root):
    records, _ = MedVqaReader().read(str(synth_root / "vqa_rad" / "test.json"))
    assert records[1].metadata["question"] == "Where is the opacity?"
    assert records[1].metadata["format"] == "llava-med-test"


def test_parquet_copy_extracts_images(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import io

    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format="PNG")
    table = pa.table(
        {
            "image": [{"bytes": buffer.getvalue(), "path": None}, {"bytes": buffer.getvalue(), "path": None}],
            "question": ["is there a fracture?", "what organ is this?"],
            "answer": ["No", "brain"],
        }
    )
    path = tmp_path / "test-00000-of-00001.parquet"
    pq.write_table(table, path)
    records, report = MedVqaReader().read(str(path))
    assert report.kept == 2
    assert [r.metadata["answer_type"] for r in records] == ["closed", "open"]
    assert records[0].image.is_file() and records[0].image.suffix == ".png"


def test_bad_records_are_counted_or_raised(tmp_path):
    _png(tmp_path / "good.png")
    (tmp_path / "broken.png").write_bytes(b"not an image")
    data = [
        {"id": 1, "image": "good.png", "answer_type": "OPEN", "conversations": _turns("q?", "a")},
        {"id": 2, "image": "missing.png", "answer_type": "OPEN", "conversations": _turns("q?", "a")},
        {"id": 3, "image": "broken.png", "answer_type": "OPEN", "conversations": _turns("q?", "a")},
        {"id": 4, "image": "good.png", "answer_type": "OPEN", "conversations": _turns("q?", "")},
        {"id": 5, "image": "good.png", "answer_type": "OPEN"},
    ]
    path = _write_json(tmp_path / "test.json", data)
    records, report = MedVqaReader().read(str(path))
    assert [r.id for r in records] == ["1"]
    assert report.skipped == {
        "image not found": 1, "unreadable image": 1, "empty answer": 1, "no question/answer conversation": 1,
    }  # fmt: skip
    assert "4 skipped" in report.summary()
    with pytest.raises(DataError, match="record 5: no question/answer conversation"):
        MedVqaReader().read(str(path), on_bad_record="error")
    kept, _ = MedVqaReader(require_images=False).read(str(path))
    assert len(kept) == 3


def test_unknown_format_names_the_file(tmp_path):
    path = _write_json(tmp_path / "odd.json", [{"foo": 1}])
    with pytest.raises(DataError, match="odd.json: cannot tell"):
        MedVqaReader().read(str(path))


def test_coloninst_reader_tasks_boxes_and_predictions(synth_root, tmp_path):
    records, _ = ColonInstReader().read(str(synth_root / "coloninst" / "val" / "reg_val.json"))
    assert records[0].metadata["task"] == "reg" and records[0].metadata["question_box"] == (10, 12, 40, 50)
    records, _ = ColonInstReader().read(str(synth_root / "coloninst" / "test" / "rec_test.json"))
    assert records[0].metadata["answer_box"] == (10, 12, 40, 50)
    bad = [
        {"id": "a.png", "image": "x.png", "conversations": [*_turns("Where is the polyp?", "{<1><2><3>}")]},
        {"id": "a.png", "image": "x.png",
         "conversations": [*_turns("Where is the polyp?", "{<1><2><3><4>}"), {"from": "prediction", "value": "{<1>}"}]},
    ]  # fmt: skip
    path = _write_json(tmp_path / "test_pred_rec.json", bad)
    records, report = ColonInstReader(require_images=False).read(str(path))
    assert report.skipped == {"REC answer without a four-number box": 1}
    assert records[0].id == "a.png#1" and records[0].metadata["prediction"] == "{<1>}"


# --- benchmarks -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", SYNTH_BENCHMARKS)
def test_synth_benchmarks_load_prompt_and_score_perfectly(name, synth_root):
    benchmark = components().get("benchmark", name).factory(root=str(synth_root))
    assert isinstance(benchmark, Benchmark)
    items = benchmark.load()
    assert items and all(item.image is not None and item.image.is_file() for item in items)
    assert all(benchmark.prompt(item).startswith("<image>\n") for item in items)
    assert benchmark.decoding["do_sample"] is False
    result = benchmark.score({item.question_id: item.answer for item in items}, items)
    for metric in benchmark.headline_metrics:
        expected = 0.0 if metric == "open_recall" and result["n_open"] == 0 else 100.0
        assert result[metric] == pytest.approx(expected), metric
    assert result["n_missing"] == 0
    # what the evaluation reads, declared by the interface and set by load
    assert benchmark.metric and benchmark.split and set(benchmark.headline_metrics) <= set(result)
    assert benchmark.question_counts is not None and benchmark.question_counts.in_file == len(items)
    assert benchmark.last_report is not None and benchmark.last_report.kept == len(items)


class OneQuestion(Benchmark):
    """A third-party benchmark declaring only what it must: the interface's defaults hold for the rest."""

    def load(self, path=None, image_root=None):
        return [BenchmarkItem("q1", "yes?", "yes")]

    def score(self, predictions, items):
        return {"accuracy": 100.0 * (predictions.get("q1") == "yes")}


def test_a_benchmark_declaring_only_load_and_score_gets_the_documented_defaults():
    benchmark = OneQuestion()
    items = benchmark.load()
    assert (benchmark.metric, benchmark.headline_metrics, benchmark.split) == ("", (), None)
    assert (benchmark.question_counts, benchmark.last_report) == (None, None)
    assert counts_of(benchmark, len(items)) == QuestionCounts(in_file=1)


def test_coloninst_split_option_and_decoding(synth_root):
    factory = components().get("benchmark", "synth-coloninst-cls").factory
    seen = factory(root=str(synth_root), split="seen")
    assert seen.decoding["max_new_tokens"] == 40
    assert seen.load()[0].metadata["split"] == "seen"
    with pytest.raises(DataError, match="split='val'"):
        factory(root=str(synth_root), split="val")


def test_missing_predictions_score_as_empty(synth_root):
    benchmark = components().get("benchmark", "synth-vqa-rad").factory(root=str(synth_root))
    items = benchmark.load()
    result = benchmark.score({"2": "No."}, items)
    assert result["n_missing"] == 1 and result["closed_accuracy"] == 100.0 and result["open_recall"] == 0.0


def test_benchmarks_without_data_say_what_they_need():
    with pytest.raises(DataError, match="vqa-rad: give the test file"):
        components().get("benchmark", "vqa-rad").factory().load()
    with pytest.raises(DataError, match="option root=DIR"):
        components().get("benchmark", "synth-slake").factory().load()


# --- medzoo score -----------------------------------------------------------------------------------


def _answers(path: Path, answers: dict) -> Path:
    lines = [
        json.dumps({"question_id": qid, "prompt": "", "text": text, "answer_id": "x", "model_id": "m", "metadata": {}})
        for qid, text in answers.items()
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_score_command_medvqa_reports_missing(synth_root, tmp_path):
    answers = _answers(tmp_path / "answers.jsonl", {2: "I cannot tell"})
    result = CliRunner().invoke(
        cli,
        ["score", "--benchmark", "vqa-rad", "--references", str(synth_root / "vqa_rad" / "test.json"),
         "--predictions", str(answers), "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["metrics"]["closed_accuracy"] == 100.0  # the "no" in "cannot" quirk
    assert payload["metrics"]["closed_accuracy_strict"] == 0.0
    assert payload["missing_predictions"] == 1 and payload["missing_examples"] == ["3"]
    assert "scored as empty answers" in result.stderr


def test_score_command_original_format_and_table(synth_root, tmp_path):
    answers = _answers(tmp_path / "answers.jsonl", {10: "liver", 11: "yes", 99: "stray"})
    result = CliRunner().invoke(
        cli, ["score", "-b", "slake", "-r", str(synth_root / "slake" / "test.json"), "-p", str(answers)]
    )
    assert result.exit_code == 0, result.output
    assert "open_recall" in result.stdout and "100.00" in result.stdout
    assert "1 prediction(s) match no reference" in result.stderr
    assert "q_lang zh" in result.stderr


def test_score_command_coloninst_prediction_file(tmp_path):
    records = [
        {"id": f"{n}.png", "image": f"{n}.png",
         "conversations": [*_turns("Where is the location of polyp?", "{<0><0><9><9>}"),
                           {"from": "prediction", "value": prediction}]}
        for n, prediction in enumerate(["{<0><0><9><9>}<|endoftext|>", "{<0><0><4><9>}", "nothing"])
    ]  # fmt: skip
    path = _write_json(tmp_path / "test_pred_rec.json", records)
    result = CliRunner().invoke(cli, ["score", "-b", "coloninst-rec", "-p", str(path), "--json", "--option", "split=unseen"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["metrics"]["mean_iou"] == pytest.approx(50.0)
    assert payload["metrics"]["acc_at_0_5"] == pytest.approx(100 / 3)
    assert payload["metrics"]["n_malformed"] == 1 and payload["split"] == "unseen"


def test_score_command_errors_are_one_line(tmp_path):
    answers = _answers(tmp_path / "answers.jsonl", {1: "x"})
    result = CliRunner().invoke(cli, ["score", "-b", "vqa-rad", "-p", str(answers)])
    assert result.exit_code != 0
    assert isinstance(result.exception, DataError) and "--references is needed" in str(result.exception)


def _vqa_rad_parquet(path: Path, n_closed: int, n_open: int) -> Path:
    """A Hugging Face-style VQA-RAD parquet copy: closed = yes/no answers (the copies keep no answer type)."""
    pa = pytest.importorskip("pyarrow")
    import io

    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format="PNG")
    answers = ["yes" if i % 2 else "no" for i in range(n_closed)] + ["left lung"] * n_open
    table = pa.table({
        "image": [{"bytes": buffer.getvalue(), "path": None}] * len(answers),
        "question": [f"question {i}?" for i in range(len(answers))],
        "answer": answers,
    })  # fmt: skip
    pq.write_table(table, path)
    return path


def test_the_published_vqa_rad_split_loads_without_a_size_warning(tmp_path):
    path = _vqa_rad_parquet(tmp_path / "test-00000-of-00001.parquet", n_closed=272, n_open=179)
    benchmark = components().get("benchmark", "vqa-rad").factory()
    items = benchmark.load(str(path))
    assert len(items) == 451 and benchmark.size_warning(items) is None


def test_a_split_of_another_size_gets_a_one_line_warning_in_the_output_and_metrics(tmp_path, trained_tiny_model):
    path = _vqa_rad_parquet(tmp_path / "test-00000-of-00001.parquet", n_closed=3, n_open=2)
    benchmark = components().get("benchmark", "vqa-rad").factory()
    warning = benchmark.size_warning(benchmark.load(str(path)))
    assert warning == ("warning: vqa-rad: the file holds 5 questions (2 open, 3 closed) where the published test "
                       "split has 451 questions (179 open, 272 closed); its scores are not comparable with published "
                       "rows")
    result = CliRunner().invoke(cli, ["eval", str(trained_tiny_model), "--benchmark", "vqa-rad", "--data", str(path),
                                      "--output-dir", str(tmp_path / "eval")])
    assert result.exit_code == 0, result.output
    assert warning in result.output.splitlines()
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["size_warning"] == warning


def test_coloninst_split_sizes_are_checked_against_the_release(synth_root, tmp_path):
    benchmark = components().get("benchmark", "coloninst-cls").factory(split="seen")
    items = benchmark.load(str(synth_root / "coloninst" / "val" / "cls_val.json"), str(synth_root / "images"))
    assert benchmark.size_warning(items).startswith(
        f"warning: coloninst-cls: the file holds {len(items)} questions where the published seen (val) split has "
        "8929 questions")
    synthetic = components().get("benchmark", "synth-coloninst-cls").factory(root=str(synth_root))
    assert synthetic.size_warning(items) is None


def test_an_image_shared_by_many_questions_is_decoded_once_and_rechecked_when_it_changes(tmp_path, monkeypatch):
    from medzoo.plugins.datasets import image_checks, med_vqa

    decoded: list[Path] = []
    real = image_checks.decode_problem
    monkeypatch.setattr(image_checks, "decode_problem", lambda path: decoded.append(path) or real(path))
    image = tmp_path / "shared.png"
    Image.new("RGB", (8, 8), (10, 20, 30)).save(image)
    assert [med_vqa.image_problem(image) for _ in range(5)] == [None] * 5
    assert len(decoded) == 1, "one decode for five questions about the same unchanged file"
    image.write_bytes(image.read_bytes()[:20])  # truncated in place: another size, so checked again
    assert med_vqa.image_problem(image) == "unreadable image"
    assert len(decoded) == 2
    assert med_vqa.image_problem(tmp_path / "gone.png") == "unreadable image"
