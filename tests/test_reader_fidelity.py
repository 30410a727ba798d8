"""The dataset READERS hand the metrics exactly the references (and predictions) the official scorers read.

The metrics equal the official scripts (tests/test_metric_fidelity.py); these tests pin what comes before:
which records are scored and with which text. Fixtures: tests/data/metric_fidelity/reader_*.json (references
with surrounding whitespace, empty references, REC references without a box, a REG question without a box,
a record with two answer turns and two predictions). Each expectation is checked three ways: numbers worked
out by hand from the official algorithm (the comment says how), the oracles of test_metric_fidelity.py
applied to the raw fixture file, and (where the git mirrors are present) the official code itself.

Official code followed:

- ai4colonoscopy/IntelliScope @ 573142f64d1e02d0910eaf515bc988b0c00b7fbe,
  ``script/multimodal_benchmark/multimodal_evaluator.py`` ``eval_engine``: for every record, every
  ``prediction`` turn goes to one list (``value.lower().replace('<|endoftext|>', '')``) and every ``gpt`` turn
  to another (``value.lower()``); nothing stripped, nothing dropped; the lists are paired by position.
  ``colongpt/util/data_utils.py`` ``preprocess_multimodal`` (training) leaves the ``gpt`` values as they are.
- microsoft/LLaVA-Med v1.0.0 = b9a98a736d2ef05bcf5ff345be6403fb3a664eaf, ``llava/eval/run_eval_batch.py``
  ``evaluate``: ``gt_results[1]['value'].lower()``, then ``normalize_word``; every record is scored.
  ``llava/train/train.py`` ``_add_speaker_and_signal`` puts the raw ``value`` into the training text.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import official_metrics as official
from test_metric_fidelity import (
    oracle_accuracy_score,
    oracle_coloninst_lists,
    oracle_eval_rec_task,
    oracle_run_eval_batch,
)

from medzoo.core.errors import DataError
from medzoo.plugins.benchmarks.coloninst import (
    ColonInstClsBenchmark,
    ColonInstRecBenchmark,
    ColonInstRegBenchmark,
)
from medzoo.plugins.benchmarks.medvqa import VqaRadBenchmark
from medzoo.plugins.datasets.colon_inst import ColonInstReader
from medzoo.plugins.datasets.med_vqa import MedVqaReader

FIXTURES = Path(__file__).resolve().parent / "data" / "metric_fidelity"
COLONINST = {task: FIXTURES / f"reader_coloninst_{task}.json" for task in ("cls", "reg", "rec")}
MEDVQA = FIXTURES / "reader_medvqa_test.json"
BENCHMARKS = {"cls": ColonInstClsBenchmark, "reg": ColonInstRegBenchmark, "rec": ColonInstRecBenchmark}

needs_intelliscope = pytest.mark.skipif(
    not official.intelliscope_available(), reason="no IntelliScope git mirror"
)
needs_llava_med = pytest.mark.skipif(not official.llava_med_available(), reason="no LLaVA-Med git mirror")


def _load(path: Path) -> list:
    return json.loads(path.read_text("utf-8"))


def _coloninst_benchmark_scores(task: str, **options) -> tuple[list, dict]:
    """(items, metrics) as ``medzoo score`` computes them: references and predictions from the same file, empty
    references scored as the evaluator scores them (by default medzoo leaves them out, counted: issue 29)."""
    benchmark = BENCHMARKS[task](require_images="false", score_empty_references="true", **options)
    items = benchmark.load(str(COLONINST[task]))
    predictions = {item.question_id: item.metadata["prediction"] for item in items}
    return items, benchmark.score(predictions, items)


# --- ColonINST: evaluation reading ---------------------------------------------------------------------


def test_coloninst_eval_reading_keeps_every_answer_turn_as_the_evaluator_reads_it():
    items, _ = _coloninst_benchmark_scores("cls")
    predictions, gpts = oracle_coloninst_lists(_load(COLONINST["cls"]))
    # one item per gpt turn, in file order; the reference is the gpt text as in the file (the metric lower-cases)
    assert [item.answer.lower() for item in items] == gpts
    assert [item.metadata["prediction"].lower().replace("<|endoftext|>", "") for item in items] == predictions
    assert [item.question_id for item in items][-2:] == ["img9.png", "img9.png@2"]
    assert items[-1].question == "And the second finding?" and items[-1].metadata["turn"] == 2
    assert items[1].answer == "adenoma " and items[3].answer == "" and items[7].answer == "   "


def test_coloninst_cls_scores_equal_the_official_evaluator():
    # by hand (eval_cls_task = exact match after cleaning): hits are "adenoma"/"adenoma", " polyp"/" polyp",
    # ""/"", "hyperplastic\n"/"hyperplastic\n", "ulcer"/"ulcer" and the first turn of img9 -> 6 of 10;
    # misses: "adenoma " (reference space), "" vs "polyp", "   " vs "polyp", "polyp" vs "polyp " (img9, turn 2)
    _, result = _coloninst_benchmark_scores("cls")
    predictions, gpts = oracle_coloninst_lists(_load(COLONINST["cls"]))
    assert result["accuracy"] == oracle_accuracy_score(gpts, predictions) * 100 == (6 / 10) * 100
    assert result["n"] == 10 and result["n_missing"] == 0


def test_coloninst_reg_scores_a_question_without_a_box():
    # eval_reg_task never reads the question: all 3 records are scored; hits 2 of 3 ("polyp\t" vs "polyp")
    items, result = _coloninst_benchmark_scores("reg")
    predictions, gpts = oracle_coloninst_lists(_load(COLONINST["reg"]))
    assert len(items) == 3 and items[1].metadata.get("question_box") is None
    assert result["accuracy"] == oracle_accuracy_score(gpts, predictions) * 100 == (2 / 3) * 100


def test_coloninst_rec_scores_references_without_a_box_as_zero():
    # by hand (eval_rec_task): IoUs 1, 1 ("< 1 >" read by <\s*(\d+)\s*>), 0 (no box), 0 (empty), 0.5 (not a hit),
    # 0 (three numbers), 0.5, 100/150; hits 3 (IoU > 0.5); recall = hit / numbers in the reference = 0.25 for each hit
    items, result = _coloninst_benchmark_scores("rec")
    expected = oracle_eval_rec_task(*oracle_coloninst_lists(_load(COLONINST["rec"])))
    assert len(items) == 8
    assert result["mean_iou"] == expected["avg_iou"] * 100
    assert result["acc_at_0_5"] == expected["avg_precision"] * 100 == (3 / 8) * 100
    assert result["recall"] == expected["avg_recall"] * 100 == (0.75 / 8) * 100
    total = 0
    for iou in (1.0, 1.0, 0, 0, 0.5, 0, 0.5, 100 / 150):  # summed left to right, as Python 3.10's sum()
        total = total + iou
    assert expected["avg_iou"] == total / 8
    assert result["n_malformed_references"] == 3


def test_coloninst_strip_answers_restores_medzoos_former_references():
    # not the evaluator: the references are stripped, the predictions are not (the metric strips nothing), so
    # "adenoma " now hits while " polyp" and "hyperplastic\n" miss: 5 of 10
    items, result = _coloninst_benchmark_scores("cls", strip_answers="true")
    assert items[1].answer == "adenoma" and items[7].answer == ""
    assert result["accuracy"] == (5 / 10) * 100


def test_coloninst_eval_reading_refuses_predictions_that_do_not_pair_with_answer_turns(tmp_path):
    # the evaluator pairs all prediction and gpt turns of the file by position: a record with two predictions for
    # one answer would shift every later pair, so medzoo names the record instead of scoring misaligned pairs
    data = _load(COLONINST["cls"])
    data[2]["conversations"].append({"from": "prediction", "value": "polyp"})
    path = tmp_path / "cls_test.json"
    path.write_text(json.dumps(data), "utf-8")
    with pytest.raises(DataError, match=r"record img3\.png: 2 prediction turns for 1 gpt turns"):
        ColonInstClsBenchmark(require_images="false").load(str(path))
    predictions, gpts = oracle_coloninst_lists(data)
    assert len(predictions) == len(gpts) + 1  # what the official evaluator would have been handed


def test_coloninst_records_without_predictions_are_missing_not_shifted(tmp_path):
    data = _load(COLONINST["cls"])
    data[0]["conversations"] = data[0]["conversations"][:2]  # no prediction turn
    path = tmp_path / "cls_test.json"
    path.write_text(json.dumps(data), "utf-8")
    items = ColonInstClsBenchmark(require_images="false", score_empty_references="true").load(str(path))
    assert len(items) == 10 and "prediction" not in items[0].metadata


def test_reading_mode_is_checked():
    with pytest.raises(DataError, match="colon-inst option mode='score': expected train or eval"):
        ColonInstReader(mode="score").read(str(COLONINST["cls"]))
    with pytest.raises(DataError, match="med-vqa option mode='x': expected train or eval"):
        MedVqaReader(mode="x").read(str(MEDVQA))


# --- ColonINST: training reading ---------------------------------------------------------------------


def test_coloninst_training_reading_counts_every_skip_and_keeps_answers_as_written():
    records, report = ColonInstReader(task="cls", require_images=False).read(str(COLONINST["cls"]))
    assert report.skipped == {"empty answer": 3}  # "", "" and "   ": nothing to learn from, counted
    assert report.kept == len(records) == 6
    # ColonGPT's preprocess_multimodal leaves the gpt value as it is: so does the training target
    assert records[1].messages[1].content == "adenoma " and records[1].metadata["answer_raw"] == "adenoma "
    assert (
        records[-1].metadata["predictions"] == ["adenoma", "polyp "]
        and "prediction" not in records[-1].metadata
    )
    stripped, _ = ColonInstReader(task="cls", require_images=False, strip_answers=True).read(
        str(COLONINST["cls"])
    )
    assert stripped[1].messages[1].content == "adenoma" and stripped[1].metadata["answer_raw"] == "adenoma "

    records, report = ColonInstReader(task="rec", require_images=False).read(str(COLONINST["rec"]))
    assert report.skipped == {"REC answer without a four-number box": 2, "empty answer": 1}
    assert report.kept == 5
    records, report = ColonInstReader(task="reg", require_images=False).read(str(COLONINST["reg"]))
    assert report.skipped == {"REG question without a four-number box": 1} and report.kept == 2


# --- medical VQA ------------------------------------------------------------------------------------


def _vqa_benchmark(**options) -> tuple[list, dict]:
    # the empty references scored as run_eval_batch scores them (by default medzoo leaves them out: issue 29)
    benchmark = VqaRadBenchmark(path=str(MEDVQA), require_images="false", score_empty_references="true", **options)
    items = benchmark.load()
    predictions = {str(record["id"]): record["prediction"] for record in _load(MEDVQA)}
    return items, benchmark.score(predictions, items)


def _official_columns():
    data = _load(MEDVQA)
    return (
        [record["conversations"][1]["value"] for record in data],
        [record["prediction"] for record in data],
        [record["answer_type"] for record in data],
    )


def test_medvqa_references_are_the_file_text_and_every_record_is_scored():
    items, _ = _vqa_benchmark()
    references, _, types = _official_columns()
    assert [item.answer for item in items] == references  # nothing stripped, " " and "" kept
    assert [item.answer_type.upper() for item in items] == types


def test_medvqa_scores_equal_run_eval_batch_on_raw_references():
    # by hand (normalize_word on the lower-cased raw reference): "x-ray- " has "- " so every "-" is deleted
    # ("xray", not in "x ray": a miss) where "x-ray-" spaces them out ("x ray": a hit); " (left) lung /" has
    # " (" and " /" so "(", ")" and "/" are deleted ("left lung": a hit); "right-upper -" -> "rightupper" (a
    # miss); the empty references ("", " ") normalise to "", which is in every prediction (hits).
    # open: ids 2, 3, 5, 6, 8 -> hits at 3, 5, 6: 3 of 5; closed: ids 1, 4, 7 -> all hits
    _, result = _vqa_benchmark()
    expected = oracle_run_eval_batch(*_official_columns())
    for key, value in expected.items():
        assert result[key] == value, key
    assert result["open_accuracy"] == (3 / 5) * 100 and result["closed_accuracy"] == 100.0
    assert (result["n_open"], result["n_closed"]) == (5, 3)


def test_medvqa_strip_answers_restores_medzoos_former_references():
    items, result = _vqa_benchmark(strip_answers="true")
    assert items[1].answer == "x-ray-" and items[3].answer == ""
    # stripped, "x-ray- " becomes "x-ray-" ("x ray": a hit) and " (left) lung /" loses " (" ("left lung": hit)
    assert result["open_accuracy"] == (4 / 5) * 100


def test_medvqa_training_reading_skips_empty_answers_counted_and_keeps_the_rest_as_written():
    records, report = MedVqaReader(require_images=False).read(str(MEDVQA))
    assert report.skipped == {"empty answer": 2} and report.kept == 6
    by_id = {record.id: record for record in records}
    # v1.0.0 train.py _add_speaker_and_signal uses the raw value: the target keeps "x-ray- " and "No\n"
    assert by_id["2"].messages[1].content == "x-ray- " and by_id["7"].messages[1].content == "No\n"
    assert by_id["7"].metadata["answer_type"] == "closed"
    stripped, _ = MedVqaReader(require_images=False, strip_answers=True).read(str(MEDVQA))
    assert {r.id: r.messages[1].content for r in stripped}["7"] == "No"


def test_medvqa_answer_type_detection_ignores_surrounding_whitespace(tmp_path):
    # formats without an answer type: " Yes " / "no\n" are closed, as before
    path = tmp_path / "test.json"
    turns = [{"from": "human", "value": "<image>\nQ?"}]
    data = [
        {"id": 1, "image": "a.png", "conversations": [*turns, {"from": "gpt", "value": " Yes "}]},
        {"id": 2, "image": "a.png", "conversations": [*turns, {"from": "gpt", "value": "no\n"}]},
        {"id": 3, "image": "a.png", "conversations": [*turns, {"from": "gpt", "value": " left lung"}]},
    ]
    path.write_text(json.dumps(data), "utf-8")
    items = VqaRadBenchmark(path=str(path), require_images="false").load()
    assert [item.answer_type for item in items] == ["closed", "closed", "open"]
    assert [item.answer for item in items] == [" Yes ", "no\n", " left lung"]


# --- live: the official code ------------------------------------------------------------------------


@needs_intelliscope
@pytest.mark.parametrize("task", ["cls", "reg", "rec"])
def test_live_official_coloninst_evaluator_equals_the_benchmark_on_the_raw_files(task):
    pytest.importorskip("sklearn")
    expected = official.official_coloninst(task, _load(COLONINST[task]))
    _, result = _coloninst_benchmark_scores(task)
    if task == "rec":
        assert result["mean_iou"] == expected["avg_iou"] * 100
        assert result["acc_at_0_5"] == expected["avg_precision"] * 100
        assert result["recall"] == expected["avg_recall"] * 100
    else:
        assert result["accuracy"] == expected * 100


@needs_llava_med
def test_live_official_run_eval_batch_equals_the_benchmark_on_the_raw_file():
    pytest.importorskip("nltk")
    references, predictions, types = _official_columns()
    items = [{"id": n, "answer_type": t, "reference": r, "prediction": p}
             for n, (r, p, t) in enumerate(zip(references, predictions, types, strict=True))]  # fmt: skip
    expected = official.official_medvqa(items, official.medvqa_candidates())
    _, result = _vqa_benchmark()
    for key in ("exact_match", "f1", "precision", "open_recall", "bleu", "open_accuracy", "closed_accuracy"):
        assert result[key] == expected[key], key


def test_by_default_empty_references_are_left_out_and_counted():
    """The official scorers score an empty reference (run_eval_batch: a hit for every prediction); medzoo leaves it
    out of every metric and counts it (issue 29), unless score_empty_references=true."""
    items = VqaRadBenchmark(path=str(MEDVQA), require_images="false").load()
    benchmark = VqaRadBenchmark(path=str(MEDVQA), require_images="false")
    benchmark.load()
    assert len(items) == 6 and benchmark.question_counts.skipped["reference_empty"] == 2
    cls = ColonInstClsBenchmark(require_images="false")
    assert len(cls.load(str(COLONINST["cls"]))) == 7 and cls.question_counts.skipped["reference_empty"] == 3
