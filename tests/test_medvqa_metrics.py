"""LLaVA-Med medical-VQA metrics: hand-computed values, quirks included.
(tests/test_metric_fidelity.py compares them with the official scripts, digit for digit.)"""

from __future__ import annotations

import math

import pytest

from medzoo.plugins.benchmarks.metrics.scoring import (
    closed_hit_strict,
    llava_med_exact_match,
    normalize_answer,
    score_medvqa,
    sentence_bleu,
    token_f1,
)


@pytest.mark.parametrize(
    ("raw", "normalised"),
    [
        ("The Left Lung.", "left lung"),
        ("two lesions", "2 lesions"),
        ("none", "0"),
        ("isnt", "isn't"),
        ("x-ray", "x ray"),  # a mark with no space beside it becomes a space
        ("yes - left", "yes left"),  # a mark beside a space is deleted
        ("1,000 (approx)", "1000 approx"),  # a digit comma: every mark is deleted
        ("a.b.c", "abc"),  # periods not followed by a digit go; "a" is no longer a lone article
        ("3.5 cm", "3.5 cm"),
        ("An effusion?", "effusion"),
    ],
)
def test_normalize_answer(raw, normalised):
    assert normalize_answer(raw) == normalised


def test_period_removal_stops_after_32_like_the_official_script():
    text = "." * 40 + "x"
    assert normalize_answer(text) == "." * 8 + "x"


def test_closed_substring_quirk_counts_cannot_as_no():
    result = score_medvqa(["I cannot tell"], ["no"], ["CLOSED"])
    assert result["closed_accuracy"] == 100.0
    assert result["closed_accuracy_strict"] == 0.0
    assert (result["n"], result["n_open"], result["n_closed"]) == (1, 0, 1)


@pytest.mark.parametrize(
    ("prediction", "reference", "hit"),
    [
        ("no there is no effusion", "no", True),
        ("yes but no effusion", "no", False),  # the first yes/no word decides
        ("cannot", "no", False),
        ("left", "left", True),
        ("leftmost", "left", False),  # whole words only
        ("in left lung", "left lung", True),
        ("anything", "", False),
    ],
)
def test_closed_hit_strict(prediction, reference, hit):
    assert closed_hit_strict(prediction, reference) is hit


def test_token_f1_hand_computed():
    assert token_f1("left lower lung", "left lung") == pytest.approx((0.8, 2 / 3, 1.0))
    assert token_f1("right lung", "left lung") == pytest.approx((0.5, 0.5, 0.5))
    assert token_f1("", "left lung") == (0.0, 0.0, 0.0)
    assert token_f1("heart", "left lung") == (0.0, 0.0, 0.0)
    # LLaVA-Med counts the prediction's repeats of a shared word: recall 2 / (2 + 1), not 1 / 2
    assert token_f1("lung lung", "left lung")[2] == pytest.approx(2 / 3)


def test_exact_match_is_llava_meds_definition():
    assert llava_med_exact_match("left lower lung", "left lung") == pytest.approx(2 / 3)
    assert llava_med_exact_match("left lung", "left lung") == 1.0
    assert llava_med_exact_match("", "left lung") == 0.0


def test_sentence_bleu_hand_computed():
    assert sentence_bleu(["left", "lung"], ["left", "lower", "lung"], (1, 0, 0, 0)) == pytest.approx(2 / 3)
    # no matching bigram: nltk's method0 puts the smallest float in place of 0 -> effectively 0
    assert sentence_bleu(["left", "lung"], ["left", "lower", "lung"], (0, 1, 0, 0)) < 1e-300
    # shorter hypothesis: brevity penalty exp(1 - 3/2)
    assert sentence_bleu(["left", "upper", "lung"], ["left", "lung"], (1, 0, 0, 0)) == pytest.approx(math.exp(-0.5))
    assert sentence_bleu(["left", "lung"], [], (1, 0, 0, 0)) == 0.0
    assert sentence_bleu(["a", "b", "c", "d"], ["a", "b", "c", "d"]) == pytest.approx(1.0)


def test_score_medvqa_open_questions_hand_computed():
    result = score_medvqa(
        ["Left lower lung.", "right lung", ""],
        ["left lung", "left lung", "heart"],
        ["OPEN", "open", "OPEN"],
    )
    assert result["n_open"] == 3 and result["n_closed"] == 0
    assert result["open_recall"] == pytest.approx((100 + 50 + 0) / 3)
    assert result["precision"] == pytest.approx((200 / 3 + 50 + 0) / 3)
    assert result["f1"] == pytest.approx((80 + 50 + 0) / 3)
    assert result["open_accuracy"] == pytest.approx(0.0)  # "left lung" is no substring of "left lower lung"
    assert result["exact_match"] == pytest.approx((200 / 3 + 50 + 0) / 3)
    assert result["bleu_1"] == pytest.approx((200 / 3 + 50 + 0) / 3)
    assert result["closed_accuracy"] == 0.0  # no closed question: 0.0 as in the official script
    assert result["closed_recall"] == 0.0  # here the official script divides by zero


def test_score_medvqa_mixed_and_empty_predictions():
    result = score_medvqa(["yes", "", "left lung"], ["yes", "no", "the left lung"], ["CLOSED", "CLOSED", "OPEN"])
    assert result["closed_accuracy"] == 50.0
    assert result["closed_accuracy_strict"] == 50.0
    assert result["open_recall"] == 100.0 and result["open_accuracy"] == 100.0
    assert result["bleu_2"] == pytest.approx(100.0)


def test_score_medvqa_rejects_bad_input():
    with pytest.raises(ValueError, match="differ in length"):
        score_medvqa(["a"], ["a", "b"], ["OPEN"])
    with pytest.raises(ValueError, match="unknown answer type"):
        score_medvqa(["a"], ["a"], ["MAYBE"])


@pytest.mark.filterwarnings("ignore::UserWarning")  # nltk warns about n-gram orders without a match
def test_bleu_matches_nltk_when_installed():
    nltk_bleu = pytest.importorskip("nltk.translate.bleu_score")
    cases = [("left lung", "left lower lung"), ("a b c d e", "a b c x e d"), ("x", "y z"), ("a b", "a b a b")]
    for reference, hypothesis in cases:
        for weights in ((1, 0, 0, 0), (0, 1, 0, 0), (0, 0, 1, 0), (0.25, 0.25, 0.25, 0.25)):
            expected = nltk_bleu.sentence_bleu([reference.split()], hypothesis.split(), weights=weights)
            assert sentence_bleu(reference.split(), hypothesis.split(), weights) == expected


def test_evaluate_module_loads_offline_and_matches(monkeypatch):
    monkeypatch.setenv("HF_EVALUATE_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from medzoo.plugins.benchmarks.metrics import load_metric

    metric = load_metric("medvqa")
    predictions, references, types = ["cannot say", "left lower lung"], ["no", "left lung"], ["CLOSED", "OPEN"]
    result = metric.compute(predictions=predictions, references=references, answer_types=types)
    assert result == score_medvqa(predictions, references, types)
    assert result["closed_accuracy"] == 100.0 and result["open_recall"] == 100.0
    with_candidates = metric.compute(
        predictions=predictions, references=references, answer_types=types, candidates=["left lung", "heart"]
    )
    assert with_candidates["open_accuracy_run_eval"] == 100.0
