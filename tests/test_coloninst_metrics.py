"""ColonINST metrics: exact match for CLS/REG, box parsing and VOC IoU for REC, hand-computed.
(tests/test_metric_fidelity.py compares them with the official evaluator.)"""

from __future__ import annotations

import pytest

from medzoo.plugins.benchmarks.metrics.scoring import box_iou, clean_coloninst, parse_box, score_coloninst


def test_clean_removes_end_of_text_and_case_but_strips_nothing():
    assert clean_coloninst("  Polyp<|endoftext|>") == "  polyp"
    assert clean_coloninst("Polyp<|ENDOFTEXT|>\n") == "polyp\n"


def test_classification_accuracy():
    result = score_coloninst(["Polyp<|endoftext|>", "adenoma", ""], ["polyp", "polyp", "polyp"], "cls")
    assert result == {"accuracy": pytest.approx(100 / 3), "n": 3}
    assert score_coloninst(["ulcer"], ["Ulcer"], "REG")["accuracy"] == 100.0


@pytest.mark.parametrize(
    ("text", "box"),
    [
        ("{<40><12><160><216>}", (40, 12, 160, 216)),
        ("the polyp is at {<1> <2> <3> <4>}<|endoftext|>", (1, 2, 3, 4)),
        ("{< 150 >< 20 ><300><400 >}", (150, 20, 300, 400)),  # the evaluator allows spaces inside <...>
        ("{<1><2><3>}", None),
        ("{<1><2><3><4><5>}", None),
        ("{<a><1><2><3>}", None),
        ("{<-1><2><3><4>}", None),
        ("", None),
    ],
)
def test_parse_box(text, box):
    assert parse_box(text) == box


def test_iou_uses_inclusive_pixels():
    assert box_iou((0, 0, 9, 9), (0, 0, 9, 9)) == 1.0
    assert box_iou((0, 0, 9, 9), (5, 5, 14, 14)) == pytest.approx(25 / 175)
    assert box_iou((0, 0, 9, 9), (0, 0, 4, 9)) == pytest.approx(0.5)
    # corners touching share one pixel under the +1 convention
    assert box_iou((0, 0, 9, 9), (9, 9, 18, 18)) == pytest.approx(1 / 199)
    assert box_iou((0, 0, 9, 9), (20, 20, 30, 30)) == 0.0
    assert box_iou((9, 9, 0, 0), (0, 0, 9, 9)) == 0.0  # inverted box


def test_rec_scores_malformed_empty_and_inverted_as_zero():
    reference = "{<0><0><9><9>}"
    predictions = ["{<0><0><9><9>}", "{<0><0><4><9>}", "{<0><0><9>}", "", "{<9><9><0><0>}"]
    result = score_coloninst(predictions, [reference] * 5, "rec")
    assert result["mean_iou"] == pytest.approx((100 + 50) / 5)
    assert result["acc_at_0_5"] == pytest.approx(20.0)  # IoU exactly 0.5 does not count
    assert result["n"] == 5 and result["n_malformed"] == 2


def test_bad_inputs():
    # a reference without a box scores 0, as in the evaluator; strict_references makes it an error
    assert score_coloninst(["{<0><0><9><9>}"], ["polyp"], "rec")["n_malformed_references"] == 1
    with pytest.raises(ValueError, match="no box"):
        score_coloninst(["{<0><0><9><9>}"], ["polyp"], "rec", strict_references=True)
    with pytest.raises(ValueError, match="no metric"):
        score_coloninst(["a"], ["a"], "cap")
    with pytest.raises(ValueError, match="differ in length"):
        score_coloninst(["a"], [], "cls")


def test_evaluate_module_loads_offline_and_matches(monkeypatch):
    monkeypatch.setenv("HF_EVALUATE_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from medzoo.plugins.benchmarks.metrics import load_metric

    metric = load_metric("coloninst")
    result = metric.compute(predictions=["{<0><0><4><9>}", "x"], references=["{<0><0><9><9>}"] * 2, task="rec")
    assert result == {
        "mean_iou": pytest.approx(25.0), "acc_at_0_5": 0.0, "precision": 0.0, "recall": 0.0,
        "n": 2, "n_malformed": 1, "n_malformed_references": 0,
    }  # fmt: skip
    assert metric.compute(predictions=["Polyp "], references=["polyp"], task="cls")["accuracy"] == 0.0
    stripped = metric.compute(predictions=["Polyp "], references=["polyp"], task="cls", strip_whitespace=True)
    assert stripped["accuracy"] == 100.0
    assert metric.compute(predictions=["Polyp"], references=["polyp"], task="cls")["accuracy"] == 100.0
