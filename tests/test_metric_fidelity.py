"""medzoo's metrics equal the OFFICIAL evaluation scripts' to the last digit, on adversarial prediction files.

Three independent checks, on the fixtures in tests/data/metric_fidelity/ (spacing, casing, punctuation, number
words, articles, contractions, empty and missing predictions, extra text, several boxes, unicode, yes/no
variants) and on seeded random inputs:

1. an oracle written here: a transliteration of what each official function computes (the comment above each
   names repository, commit and function), compared with medzoo by float equality;
2. ``official_scores.json``: the numbers the official scripts themselves printed on the fixtures (recorded by
   ``tests/support/official_metrics.py``), compared by float equality; always runs;
3. live: the official scripts read from git and run here (skipped without the git mirrors / scikit-learn).

Where the official scripts crash (no open or no closed question, a null reference or prediction, a missing
prediction, empty ColonINST input, box numbers too large for a float) the tests pin what medzoo does instead.
"""

from __future__ import annotations

import json
import math
import random
import re
import sys
import warnings
from collections import Counter, defaultdict
from fractions import Fraction

import numpy as np
import pytest
from support import official_metrics as official

from medzoo.core.interfaces.benchmark import BenchmarkItem
from medzoo.plugins.benchmarks.coloninst import ColonInstRecBenchmark
from medzoo.plugins.benchmarks.medvqa import VqaRadBenchmark
from medzoo.plugins.benchmarks.metrics import scoring
from medzoo.plugins.benchmarks.metrics.scoring import (
    box_iou,
    box_numbers,
    normalize_answer,
    parse_box,
    percent,
    score_coloninst,
    score_medvqa,
    sentence_bleu,
)

RECORDED = json.loads(official.RECORDED.read_text("utf-8"))

# =====================================================================================================
# Oracle 1: microsoft/LLaVA-Med, tag v1.0.0 = commit b9a98a7 ("fix closed accuracy calculation (#35)")
# =====================================================================================================

# llava/eval/eval_metrics/glossary.py: `contractions` (key>value; the capitalised keys are in the official
# table too, they just never match lower-cased text), `manual_map`, `articles`, `punct`
_ORACLE_CONTRACTION_TEXT = """
aint>ain't arent>aren't cant>can't couldve>could've couldnt>couldn't couldn'tve>couldn't've
couldnt've>couldn't've didnt>didn't doesnt>doesn't dont>don't hadnt>hadn't hadnt've>hadn't've
hadn'tve>hadn't've hasnt>hasn't havent>haven't hed>he'd hed've>he'd've he'dve>he'd've hes>he's
howd>how'd howll>how'll hows>how's Id've>I'd've I'dve>I'd've Im>I'm Ive>I've isnt>isn't itd>it'd
itd've>it'd've it'dve>it'd've itll>it'll let's>let's maam>ma'am mightnt>mightn't mightnt've>mightn't've
mightn'tve>mightn't've mightve>might've mustnt>mustn't mustve>must've neednt>needn't notve>not've
oclock>o'clock oughtnt>oughtn't ow's'at>'ow's'at 'ows'at>'ow's'at 'ow'sat>'ow's'at shant>shan't
shed've>she'd've she'dve>she'd've she's>she's shouldve>should've shouldnt>shouldn't
shouldnt've>shouldn't've shouldn'tve>shouldn't've somebody'd>somebodyd somebodyd've>somebody'd've
somebody'dve>somebody'd've somebodyll>somebody'll somebodys>somebody's someoned>someone'd
someoned've>someone'd've someone'dve>someone'd've someonell>someone'll someones>someone's
somethingd>something'd somethingd've>something'd've something'dve>something'd've somethingll>something'll
thats>that's thered>there'd thered've>there'd've there'dve>there'd've therere>there're theres>there's
theyd>they'd theyd've>they'd've they'dve>they'd've theyll>they'll theyre>they're theyve>they've
twas>'twas wasnt>wasn't wed've>we'd've we'dve>we'd've weve>we've werent>weren't whatll>what'll
whatre>what're whats>what's whatve>what've whens>when's whered>where'd wheres>where's whereve>where've
whod>who'd whod've>who'd've who'dve>who'd've wholl>who'll whos>who's whove>who've whyll>why'll
whyre>why're whys>why's wont>won't wouldve>would've wouldnt>wouldn't wouldnt've>wouldn't've
wouldn'tve>wouldn't've yall>y'all yall'll>y'all'll y'allll>y'all'll yall'd've>y'all'd've
y'alld've>y'all'd've y'all'dve>y'all'd've youd>you'd youd've>you'd've you'dve>you'd've youll>you'll
youre>you're youve>you've
"""
ORACLE_CONTRACTIONS = dict(entry.split(">") for entry in _ORACLE_CONTRACTION_TEXT.split())
ORACLE_MANUAL_MAP = {"none": "0", "zero": "0"} | {
    word: str(number)
    for number, word in enumerate(["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"], 1)
}
ORACLE_ARTICLES = ["a", "an", "the"]
ORACLE_PUNCT = [";", r"/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?", "!"]
ORACLE_PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")
ORACLE_COMMA_STRIP = re.compile(r"(\d)(\,)(\d)")


def oracle_normalize_word(token):
    # glossary.py normalize_word. Note `period_strip.sub("", _token, re.UNICODE)`: re.UNICODE (32) lands in
    # the *count* parameter, so at most 32 periods go per call.
    result = token
    for mark in ORACLE_PUNCT:
        if (mark + " " in token or " " + mark in token) or ORACLE_COMMA_STRIP.search(token) is not None:
            result = result.replace(mark, "")
        else:
            result = result.replace(mark, " ")
    token = ORACLE_PERIOD_STRIP.sub("", result, int(re.UNICODE))
    kept = []
    for word in token.lower().split():
        word = ORACLE_MANUAL_MAP.get(word, word)  # the official setdefault(word, word) adds word -> word: no effect
        if word not in ORACLE_ARTICLES:
            kept.append(word)
    kept = [ORACLE_CONTRACTIONS.get(word, word) for word in kept]
    return " ".join(kept).replace(",", "")


def oracle_split_sentence(sentence, n):
    # eval_metrics/utils.py split_sentence: n-gram counts of the lower-cased, stripped, whitespace-split text
    words = defaultdict(int)
    tokens = sentence.lower().strip().split()
    for i in range(len(tokens) - n + 1):
        gram = " ".join(tokens[i : i + n])
        if gram:
            words[gram] += 1
    return words


def oracle_exactmatch(candidate, reference):
    # eval_metrics/evaluate_metrics.py calculate_exactmatch (normalises again)
    candidate_words = oracle_split_sentence(oracle_normalize_word(candidate), 1)
    reference_words = oracle_split_sentence(oracle_normalize_word(reference), 1)
    count = sum(1 for word in reference_words if word in candidate_words)
    total = sum(candidate_words[word] for word in candidate_words)
    return 0 if total == 0 else count / total


def oracle_f1score(candidate, reference):
    # evaluate_metrics.py calculate_f1score -> (f1, precision, recall), normalising again
    candidate_words = oracle_split_sentence(oracle_normalize_word(candidate), 1)
    reference_words = oracle_split_sentence(oracle_normalize_word(reference), 1)
    tp = fp = fn = 0
    for word in set(candidate_words) | set(reference_words):
        if word in candidate_words and word in reference_words:
            tp += candidate_words[word]
        elif word in candidate_words:
            fp += candidate_words[word]
        else:
            fn += reference_words[word]
    if len(candidate_words) == 0 or len(reference_words) == 0:
        return 0, 0, 0
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    if tp == 0:
        return 0, 0, 0
    return 2 * precision * recall / (precision + recall), precision, recall


def oracle_appearance_with_normalization(prediction, reference, candidate_set):
    # evaluate_metrics.py calculate_appearance_with_normalization (+ similarity_candidate_prediction, argmax)
    prediction_words = oracle_split_sentence(oracle_normalize_word(prediction), 1)
    reference = oracle_normalize_word(reference)
    normalised, similarity = [], []
    for answer in candidate_set["0"]:
        if isinstance(answer, int):
            answer = str(answer)
        answer = oracle_normalize_word(answer)
        normalised.append(answer)
        answer_words = oracle_split_sentence(answer, 1)
        count = sum(1 for word in prediction_words if word in answer_words)
        similarity.append(0.0 if len(answer_words) == 0 else count / len(answer_words))
    return 1.0 if normalised[similarity.index(max(similarity))] == reference else 0.0


def oracle_nltk_sentence_bleu(reference, hypothesis, weights=(0.25, 0.25, 0.25, 0.25)):
    # nltk 3.8.1 (the LLaVA-Med era; unchanged to 3.10) nltk/translate/bleu_score.py sentence_bleu ->
    # corpus_bleu with one sentence, modified_precision, closest_ref_length, brevity_penalty, and
    # SmoothingFunction().method0 (no smoothing_function given): a zero count becomes sys.float_info.min
    def grams(tokens, n):
        return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)) if len(tokens) >= n else Counter()

    precisions = []
    for n in range(1, len(weights) + 1):
        counts, ref_counts = grams(hypothesis, n), grams(reference, n)
        clipped = {gram: min(count, ref_counts[gram]) for gram, count in counts.items()}
        precisions.append(Fraction(sum(clipped.values()), max(1, sum(counts.values()))))
    hyp_len, ref_len = len(hypothesis), len(reference)
    if precisions[0].numerator == 0:
        return 0
    if hyp_len > ref_len:
        bp = 1
    elif hyp_len == 0:
        bp = 0
    else:
        bp = math.exp(1 - ref_len / hyp_len)
    smoothed = [p if p.numerator != 0 else sys.float_info.min for p in precisions]
    return bp * math.exp(math.fsum(w * math.log(p) for w, p in zip(weights, smoothed, strict=True) if p > 0))


def py310_sum(values):
    # the official scripts ran on Python 3.10, whose sum() adds floats one by one (3.12 compensates)
    total = 0
    for value in values:
        total = total + value
    return total


def oracle_run_eval_batch(gt_values, pred_values, answer_types):
    # llava/eval/run_eval_batch.py evaluate (no try/except around the divisions: zero open questions
    # raise ZeroDivisionError, and so does zero closed questions via recall_closed)
    scores = defaultdict(list)
    for gt_raw, pred_raw, answer_type in zip(gt_values, pred_values, answer_types, strict=True):
        gt_value = oracle_normalize_word(gt_raw.lower())
        pred_value = oracle_normalize_word(pred_raw.lower())
        if answer_type == "OPEN":
            scores["open_accuracy"].append(1 if gt_value in pred_value else 0)
            scores["exact_match"].append(oracle_exactmatch(pred_value, gt_value))
            f1, precision, recall = oracle_f1score(pred_value, gt_value)
            scores["f1"].append(f1)
            scores["precision"].append(precision)
            scores["open_recall"].append(recall)
            ref_tokens, hyp_tokens = str(gt_value).lower().split(), str(pred_value).lower().split()
            scores["bleu"].append(oracle_nltk_sentence_bleu(ref_tokens, hyp_tokens))
            scores["bleu_1"].append(oracle_nltk_sentence_bleu(ref_tokens, hyp_tokens, (1, 0, 0, 0)))
            scores["bleu_2"].append(oracle_nltk_sentence_bleu(ref_tokens, hyp_tokens, (0, 1, 0, 0)))
            scores["bleu_3"].append(oracle_nltk_sentence_bleu(ref_tokens, hyp_tokens, (0, 0, 1, 0)))
        elif answer_type == "CLOSED":
            scores["closed_recall"].append(oracle_f1score(pred_value, gt_value)[2])
            scores["closed_accuracy"].append(1 if gt_value in pred_value else 0)
        # any other answer type: silently skipped
    result = {}
    for key in ("exact_match", "f1", "precision", "open_recall", "bleu", "bleu_1", "bleu_2", "bleu_3"):
        result[key] = py310_sum(scores[key]) / len(scores[key]) * 100
    for key in ("open_accuracy", "closed_accuracy"):  # the two guarded ones
        result[key] = (py310_sum(scores[key]) / len(scores[key]) if len(scores[key]) != 0 else 0.0) * 100
    result["closed_recall"] = py310_sum(scores["closed_recall"]) / len(scores["closed_recall"]) * 100
    return result


def oracle_run_eval(gt_values, pred_values, answer_types, candidate):
    # llava/eval/run_eval.py evaluate: only its two differing numbers (the rest equal run_eval_batch's)
    open_hits, closed_hits = [], []
    for gt_raw, pred_raw, answer_type in zip(gt_values, pred_values, answer_types, strict=True):
        gt_value = oracle_normalize_word(gt_raw.lower())
        pred_value = oracle_normalize_word(pred_raw.lower())
        if answer_type == "OPEN":
            open_hits.append(oracle_appearance_with_normalization(pred_value, gt_value, candidate))
        elif answer_type == "CLOSED":
            if "yes" in pred_value or "no" in pred_value:
                closed_hits.append(1 if gt_value in pred_value else 0)
            else:
                closed_hits.append(0)
    return {
        "open_accuracy_run_eval": py310_sum(open_hits) / len(open_hits) * 100,
        "closed_accuracy_run_eval": (py310_sum(closed_hits) / len(closed_hits) if closed_hits else 0.0) * 100,
    }


# =====================================================================================================
# Oracle 2: ai4colonoscopy/IntelliScope @ 573142f, script/multimodal_benchmark/multimodal_evaluator.py
# =====================================================================================================


def oracle_coloninst_lists(items):
    # eval_engine's loading loop: every "prediction" turn lower-cased with <|endoftext|> removed, every "gpt"
    # turn lower-cased; two flat lists (an item without a prediction shifts the rest)
    predictions, gpts = [], []
    for item in items:
        for turn in item["conversations"]:
            if turn["from"] == "prediction":
                predictions.append(turn["value"].lower().replace("<|endoftext|>", ""))
            elif turn["from"] == "gpt":
                gpts.append(turn["value"].lower())
    return predictions, gpts


def oracle_accuracy_score(answers, predictions):
    # eval_cls_task / eval_reg_task: sklearn.metrics.accuracy_score(y_true, y_pred), which compares numpy
    # unicode arrays elementwise (trailing NULs are not part of a numpy string) and averages
    if len(answers) != len(predictions):
        raise ValueError("Found input variables with inconsistent numbers of samples")
    if not answers:
        raise ValueError("Found empty input array")
    return float(np.average(np.asarray(answers) == np.asarray(predictions)))


def oracle_compute_iou(bbox1, bbox2):
    # compute_iou
    if len(bbox1) != 4 or len(bbox2) != 4:
        return 0
    xmin1, ymin1, xmax1, ymax1 = bbox1
    xmin2, ymin2, xmax2, ymax2 = bbox2
    inter_width = max(0, min(xmax1, xmax2) - max(xmin1, xmin2) + 1)
    inter_height = max(0, min(ymax1, ymax2) - max(ymin1, ymin2) + 1)
    if inter_width == 0 or inter_height == 0:
        return 0
    inter_area = inter_width * inter_height
    bbox1_area = (xmax1 - xmin1 + 1) * (ymax1 - ymin1 + 1)
    bbox2_area = (xmax2 - xmin2 + 1) * (ymax2 - ymin2 + 1)
    return inter_area / float(bbox1_area + bbox2_area - inter_area)


def oracle_eval_rec_task(predictions, answers):
    # eval_rec_task (+ compute_tp_fp with ovthresh 0.5); zip truncates silently; no guard against 0 items
    ious, precisions, recalls = [], [], []
    for pred, ans in zip(predictions, answers, strict=False):
        pred_bbox = [int(number) for number in re.findall(r"<\s*(\d+)\s*>", pred)]
        ans_bbox = [int(number) for number in re.findall(r"<\s*(\d+)\s*>", ans)]
        ious.append(oracle_compute_iou(pred_bbox, ans_bbox))
        tp, fp = (1, 0) if oracle_compute_iou(pred_bbox, ans_bbox) > 0.5 else (0, 1)
        precisions.append(tp / (tp + fp) if tp + fp > 0 else 0)
        recalls.append(tp / len(ans_bbox) if len(ans_bbox) > 0 else 0)
    return {
        "avg_iou": py310_sum(ious) / len(ious),
        "avg_precision": py310_sum(precisions) / len(precisions),
        "avg_recall": py310_sum(recalls) / len(recalls),
    }


# =====================================================================================================
# fixtures and random inputs
# =====================================================================================================

VQA_ITEMS = official.medvqa_fixture()
CANDIDATES = official.medvqa_candidates()


def vqa_columns(items, missing_as=""):
    predictions = [item.get("prediction", missing_as) for item in items]
    return predictions, [item["reference"] for item in items], [item["answer_type"] for item in items]


_VQA_PIECES = [
    "yes", "no", "Yes", "NO", "not", "cannot", "a", "an", "The", "none", "Zero", "two", "ten", "x-ray", "1,000",
    "3.5", "cm.", "isnt", "dont", "somebody'd", "(", ")", "-", " - ", ",", ".", "...", "?", "!", ";", "/", "<",
    ">", "'", "\"", "_", "=", "+", "@", "`", "[", "]", "{", "}", "\\", "lung", "left", "lower", "lobe", "\t",
    "\u00a0", "caf\u00e9", "\u0130", "1", ",1", "1,", "2.", ".5", "%", "\u80ba", "\n", "  ",
]  # fmt: skip


def random_answer(rng: random.Random) -> str:
    pieces = rng.choices(_VQA_PIECES, k=rng.randint(0, 7))
    return "".join(piece + rng.choice(["", " ", " ", "  "]) for piece in pieces)


def random_vqa_set(seed: int, size: int):
    rng = random.Random(seed)
    rows = [(random_answer(rng), random_answer(rng), rng.choice(["OPEN", "CLOSED"])) for _ in range(size)]
    rows += [("yes", "yes", "OPEN"), ("no", "no", "CLOSED")]  # at least one of each type
    predictions, references, types = zip(*rows, strict=True)
    return list(predictions), list(references), list(types)


def coloninst_columns(task):
    items = official.coloninst_fixture(task)
    predictions = [next((t["value"] for t in item["conversations"] if t["from"] == "prediction"), None) for item in items]
    references = [next(t["value"] for t in item["conversations"] if t["from"] == "gpt") for item in items]
    filled = [
        {**item, "conversations": [*item["conversations"], {"from": "prediction", "value": ""}]}
        if prediction is None
        else item
        for item, prediction in zip(items, predictions, strict=True)
    ]
    return predictions, references, filled


def random_box_text(rng: random.Random) -> str:
    count = rng.choice([4, 4, 4, 4, 3, 5, 8, 0])
    numbers = [rng.choice([rng.randint(0, 300), rng.randint(0, 20)]) for _ in range(count)]
    space = lambda: rng.choice(["", "", " ", "  ", "\t"])  # noqa: E731
    body = "".join(f"<{space()}{number}{space()}>" + rng.choice(["", "", " "]) for number in numbers)
    text = rng.choice(["{%s}", "The polyp is at {%s}.", "%s", "{%s}<|endoftext|>", "BOX: {%s}"]) % body
    return rng.choice([text, text.upper(), text])


def assert_equal_metrics(actual: dict, expected: dict, keys=None):
    keys = keys if keys is not None else expected.keys()
    mismatches = {key: (actual[key], expected[key]) for key in keys if actual[key] != expected[key]}
    assert not mismatches, f"medzoo != official for {mismatches}"


# =====================================================================================================
# medical VQA
# =====================================================================================================


def test_oracle_reproduces_the_recorded_official_numbers():
    """The oracle itself is right: it gives what the official scripts printed on the fixture."""
    predictions, references, types = vqa_columns(VQA_ITEMS)
    expected = RECORDED["medvqa"]
    oracle = oracle_run_eval_batch(references, predictions, types) | oracle_run_eval(
        references, predictions, types, CANDIDATES
    )
    assert_equal_metrics(oracle, expected)


def test_medvqa_equals_recorded_official_scores_exactly():
    predictions, references, types = vqa_columns(VQA_ITEMS, missing_as=None)
    result = score_medvqa(predictions, references, types, candidates=CANDIDATES)
    assert_equal_metrics(result, RECORDED["medvqa"])
    assert (result["n"], result["n_open"], result["n_closed"]) == (72, 48, 24)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_medvqa_equals_oracle_on_random_answers(seed):
    predictions, references, types = random_vqa_set(seed, 150)
    rng = random.Random(seed)
    candidates = {"0": [random_answer(rng) or "x" for _ in range(12)] + [3, "yes"]}
    result = score_medvqa(predictions, references, types, candidates=candidates)
    expected = oracle_run_eval_batch(references, predictions, types) | oracle_run_eval(
        references, predictions, types, candidates
    )
    assert_equal_metrics(result, expected)


def test_normalize_answer_equals_oracle_on_fixture_and_random_text():
    rng = random.Random(7)
    texts = [item["reference"] for item in VQA_ITEMS] + [item.get("prediction", "") for item in VQA_ITEMS]
    texts += [random_answer(rng) for _ in range(3000)]
    texts += ["." * 70 + "x", "a." * 40, "1,000" + "-" * 3 + " (x)", "x-y -z", "dont.", "the.", "none,two"]
    for text in texts:
        assert normalize_answer(text) == oracle_normalize_word(text), text
        assert normalize_answer(normalize_answer(text)) == oracle_normalize_word(oracle_normalize_word(text)), text


def _effective(table):
    # entries that can change a lower-cased word: no capitalised keys, no word -> itself
    return {key: value for key, value in table.items() if key == key.lower() and key != value}


def test_contraction_table_is_the_official_one_less_entries_without_effect():
    assert _effective(ORACLE_CONTRACTIONS) == scoring.CONTRACTIONS
    left_out = sorted(set(ORACLE_CONTRACTIONS) - set(scoring.CONTRACTIONS))
    assert left_out == ["I'dve", "Id've", "Im", "Ive", "let's", "she's"]


def test_bleu_equals_oracle_and_nltk_exactly():
    nltk_bleu = pytest.importorskip("nltk.translate.bleu_score")
    rng = random.Random(11)
    pairs = [(normalize_answer(item["reference"].lower()), normalize_answer(item.get("prediction", "").lower())) for item in VQA_ITEMS]
    pairs += [(normalize_answer(random_answer(rng).lower()), normalize_answer(random_answer(rng).lower())) for _ in range(400)]
    for reference, hypothesis in pairs:
        for weights in ((0.25, 0.25, 0.25, 0.25), (1, 0, 0, 0), (0, 1, 0, 0), (0, 0, 1, 0)):
            ref_tokens, hyp_tokens = reference.split(), hypothesis.split()
            ours = sentence_bleu(ref_tokens, hyp_tokens, weights)
            assert ours == oracle_nltk_sentence_bleu(ref_tokens, hyp_tokens, weights)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # nltk warns about each n-gram order without a match
                assert ours == nltk_bleu.sentence_bleu([ref_tokens], hyp_tokens, weights=weights)


def test_a_bleu_order_without_matches_is_the_smallest_float_not_zero():
    # nltk's method0: the missing bigram precision becomes sys.float_info.min, so BLEU-2 is ~2.2e-308
    bleu_2 = sentence_bleu(["left", "lung"], ["left", "lower", "lung"], (0, 1, 0, 0))
    assert bleu_2 == math.exp(math.log(sys.float_info.min)) and 0 < bleu_2 < 1e-307
    assert sentence_bleu(["left", "lung"], ["heart"], (0, 1, 0, 0)) == 0.0  # no unigram match: exactly 0


def test_percentages_round_like_the_official_scripts():
    # the scripts print (sum / n) * 100; medzoo used to compute 100 * sum / n, a different last digit
    assert percent([1.0, 0.0, 0.0]) == (1 / 3) * 100 == 33.33333333333333
    assert 100.0 * 1 / 3 == 33.333333333333336
    assert score_medvqa(["yes", "no", "no"], ["yes"] * 3, ["CLOSED"] * 3)["closed_accuracy"] == 33.33333333333333
    # and add left to right (Python 3.10's sum), whatever the running Python's sum() does
    values = [0.1] * 10
    assert scoring.official_mean(values) == py310_sum(values) / 10 == 0.09999999999999999


def test_run_eval_closed_gate_and_candidate_open_accuracy():
    # run_eval.py (single dataset): closed needs "yes"/"no" in the prediction; open picks a training answer
    result = score_medvqa(["on the left", "no, left", "lung on the left"], ["left", "left", "left lung"],
                          ["CLOSED", "CLOSED", "OPEN"], candidates={"0": ["left lung", "lobe", 7]})  # fmt: skip
    assert result["closed_accuracy"] == 100.0  # run_eval_batch.py: substring only
    assert result["closed_accuracy_run_eval"] == 50.0
    assert result["open_accuracy"] == 0.0 and result["open_accuracy_run_eval"] == 100.0
    assert "open_accuracy_run_eval" not in score_medvqa(["x"], ["x"], ["OPEN"])
    with pytest.raises(ValueError, match="no candidate"):
        score_medvqa(["x"], ["x"], ["OPEN"], candidates={"0": []})  # the script: max() of an empty list


def test_no_open_or_no_closed_questions_read_zero_where_the_script_divides_by_zero():
    with pytest.raises(ZeroDivisionError):
        oracle_run_eval_batch(["yes"], ["yes"], ["CLOSED"])
    with pytest.raises(ZeroDivisionError):
        oracle_run_eval_batch(["lung"], ["lung"], ["OPEN"])
    closed_only = score_medvqa(["yes"], ["yes"], ["CLOSED"])
    assert closed_only["closed_accuracy"] == 100.0 and closed_only["closed_recall"] == 100.0
    assert all(closed_only[key] == 0.0 for key in ("open_recall", "f1", "exact_match", "bleu", "open_accuracy"))
    open_only = score_medvqa(["lung"], ["lung"], ["OPEN"])
    assert open_only["open_recall"] == 100.0 and open_only["closed_accuracy"] == open_only["closed_recall"] == 0.0
    assert score_medvqa([], [], [])["n"] == 0


def test_null_reference_raises_and_null_prediction_is_the_empty_answer():
    with pytest.raises(AttributeError):
        oracle_run_eval_batch([None, "yes"], ["x", "yes"], ["OPEN", "CLOSED"])  # None.lower() in the script
    with pytest.raises(ValueError, match="reference 0 is null"):
        score_medvqa(["x"], [None], ["OPEN"])
    predictions, references, types = vqa_columns(VQA_ITEMS, missing_as=None)
    assert None in predictions
    assert score_medvqa(predictions, references, types) == score_medvqa(
        [p if p is not None else "" for p in predictions], references, types
    )


def test_missing_answer_lines_score_as_empty_answers_through_the_benchmark():
    # run_eval*.py assert that answer ids equal question ids, so a missing line stops them; medzoo's benchmark
    # scores it as the empty answer and counts it
    items = [
        BenchmarkItem(question_id=str(item["id"]), question="Q", answer=item["reference"], answer_type=item["answer_type"].lower())
        for item in VQA_ITEMS
    ]  # fmt: skip
    answers = {str(item["id"]): item["prediction"] for item in VQA_ITEMS if "prediction" in item}
    result = VqaRadBenchmark().score(answers, items)
    predictions, references, types = vqa_columns(VQA_ITEMS, missing_as="")
    assert_equal_metrics(result, oracle_run_eval_batch(references, predictions, types))
    assert result["n_missing"] == sum("prediction" not in item for item in VQA_ITEMS) == 2


def test_answer_types_are_read_leniently_where_the_script_skips_them():
    # the script counts only 'OPEN' / 'CLOSED' exactly; medzoo reads any case and PathVQA's names
    lenient = score_medvqa(["lung", "yes"], ["lung", "yes"], ["open", "yes/no"])
    official_spelling = score_medvqa(["lung", "yes"], ["lung", "yes"], ["OPEN", "CLOSED"])
    assert lenient == official_spelling
    assert score_medvqa(["3"], ["3"], ["number"])["n_open"] == 1  # run_eval_pvqa.py's 'number'
    with pytest.raises(ValueError, match="unknown answer type"):
        score_medvqa(["a"], ["a"], ["MAYBE"])


# =====================================================================================================
# ColonINST
# =====================================================================================================


@pytest.mark.parametrize("task", ["cls", "reg"])
def test_coloninst_cls_reg_equal_oracle_and_recorded_official(task):
    predictions, references, filled = coloninst_columns(task)
    official_predictions, gpts = oracle_coloninst_lists(filled)
    expected = oracle_accuracy_score(gpts, official_predictions)
    assert expected == RECORDED["coloninst"][task]
    result = score_coloninst(predictions, references, task)
    assert result["accuracy"] == expected * 100 and result["n"] == 22


def test_coloninst_rec_equals_oracle_and_recorded_official():
    predictions, references, filled = coloninst_columns("rec")
    expected = oracle_eval_rec_task(*oracle_coloninst_lists(filled))
    assert expected == RECORDED["coloninst"]["rec"]
    result = score_coloninst(predictions, references, "rec")
    assert result["mean_iou"] == expected["avg_iou"] * 100
    assert result["acc_at_0_5"] == result["precision"] == expected["avg_precision"] * 100
    assert result["recall"] == expected["avg_recall"] * 100
    assert (result["n"], result["n_malformed"], result["n_malformed_references"]) == (30, 8, 3)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_coloninst_equals_oracle_on_random_boxes_and_labels(seed):
    rng = random.Random(seed)
    predictions = [random_box_text(rng) for _ in range(300)]
    references = [random_box_text(rng) for _ in range(300)]
    items = [{"conversations": [{"from": "gpt", "value": r}, {"from": "prediction", "value": p}]}
             for p, r in zip(predictions, references, strict=True)]  # fmt: skip
    expected = oracle_eval_rec_task(*oracle_coloninst_lists(items))
    result = score_coloninst(predictions, references, "rec")
    assert result["mean_iou"] == expected["avg_iou"] * 100
    assert result["acc_at_0_5"] == expected["avg_precision"] * 100
    assert result["recall"] == expected["avg_recall"] * 100
    labels = ["adenoma", "Adenoma", "adenoma ", "polyp<|endoftext|>", "polyp", "POLYP<|ENDOFTEXT|>", "", "ulcer\x00"]
    predictions = [rng.choice(labels) for _ in range(300)]
    references = [rng.choice(labels[:2] + labels[4:]) for _ in range(300)]
    items = [{"conversations": [{"from": "gpt", "value": r}, {"from": "prediction", "value": p}]}
             for p, r in zip(predictions, references, strict=True)]  # fmt: skip
    expected_accuracy = oracle_accuracy_score(*reversed(oracle_coloninst_lists(items)))
    assert score_coloninst(predictions, references, "cls")["accuracy"] == expected_accuracy * 100


@pytest.mark.parametrize(
    ("text", "numbers"),
    [
        ("{< 150 >< 20 ><300><400>}", [150, 20, 300, 400]),  # medzoo used to read nothing here
        ("{<\t1\n><2><3><4\u3000>}", [1, 2, 3, 4]),
        ("{<\u0664\u0660><\uff11\uff12><3><4>}", [40, 12, 3, 4]),  # \d is Unicode-aware, int() reads it
        ("{<1><2><3><4>}{<5><6><7><8>}", [1, 2, 3, 4, 5, 6, 7, 8]),
        ("{<-1><2.5><3><4>}", [3, 4]),
        ("<1 2><3>", [3]),
    ],
)
def test_box_numbers_follow_the_evaluator_regex(text, numbers):
    assert box_numbers(text) == numbers
    assert box_numbers(text) == [int(n) for n in re.findall(r"<\s*(\d+)\s*>", text)]


def test_several_boxes_or_a_wrong_count_score_zero_on_either_side():
    reference = "{<0><0><9><9>}"
    assert score_coloninst(["{<0><0><9><9>}{<0><0><9><9>}"], [reference], "rec")["mean_iou"] == 0.0
    assert score_coloninst([reference], [reference * 2], "rec")["mean_iou"] == 0.0
    assert parse_box("{<0><0><9><9>}{<1><1><2><2>}") is None
    assert parse_box("{< 0 >< 0 >< 9 >< 9 >}<|endoftext|>") == (0, 0, 9, 9)


def test_coloninst_cleaning_is_the_evaluators():
    # nothing is stripped; <|endoftext|> goes from predictions only, after lower-casing
    assert score_coloninst(["adenoma "], ["adenoma"], "cls")["accuracy"] == 0.0
    assert score_coloninst(["Adenoma<|EndOfText|>"], ["adenoma"], "cls")["accuracy"] == 100.0
    assert score_coloninst(["adenoma"], ["adenoma<|endoftext|>"], "cls")["accuracy"] == 0.0
    assert score_coloninst(["adenoma\x00"], ["adenoma"], "cls")["accuracy"] == 100.0  # numpy drops the NUL
    assert score_coloninst(["STRASSE"], ["stra\u00dfe"], "cls")["accuracy"] == 0.0  # lower(), not casefold()
    # the named option strips both sides
    assert score_coloninst(["adenoma\n"], [" adenoma"], "reg", strip_whitespace=True)["accuracy"] == 100.0


def test_iou_edges_equal_the_evaluator():
    cases = [((0, 0, 9, 9), (0, 0, 4, 9)), ((0, 0, 9, 9), (9, 9, 18, 18)), ((5, 5, 5, 5), (5, 5, 5, 5)),
             ((9, 9, 0, 0), (0, 0, 9, 9)), ((0, 0, 9, 9), (10, 0, 19, 9)), ((3, 1, 7, 20), (0, 0, 5, 5)),
             ((0, 0, 10**20, 10**20), (0, 0, 10**20 - 1, 10**20)), ((1, 2, 3), (1, 2, 3, 4))]  # fmt: skip
    for first, second in cases:
        assert box_iou(first, second) == oracle_compute_iou(first, second)
    assert box_iou((0, 0, 9, 9), (0, 0, 4, 9)) == 0.5
    assert score_coloninst(["{<0><0><4><9>}"], ["{<0><0><9><9>}"], "rec")["acc_at_0_5"] == 0.0  # IoU > 0.5


def test_numbers_beyond_float_range_are_divided_exactly_where_the_evaluator_overflows():
    huge = 10**400
    with pytest.raises(OverflowError):
        oracle_compute_iou((0, 0, huge, huge), (0, 0, huge, huge // 2))
    assert box_iou((0, 0, huge, huge), (0, 0, huge, huge // 2)) == pytest.approx(0.5)
    result = score_coloninst([f"{{<0><0><{huge}><{huge}>}}"], [f"{{<0><0><{huge}><{huge // 2}>}}"], "rec")
    assert result["mean_iou"] == pytest.approx(50.0)


def test_rec_reference_without_four_numbers_scores_zero_or_raises_on_request():
    result = score_coloninst(["{<1><2><3><4>}"] * 2, ["{<1><2><3>}", "polyp"], "rec")
    assert result["mean_iou"] == result["recall"] == 0.0 and result["n_malformed_references"] == 2
    with pytest.raises(ValueError, match="no box"):
        score_coloninst(["{<1><2><3><4>}"], ["polyp"], "rec", strict_references=True)


def test_rec_recall_is_the_evaluators_hit_over_reference_numbers():
    # tp / len(ans_bbox): a perfect box gives recall 0.25
    result = score_coloninst(["{<1><2><30><40>}"], ["{<1><2><30><40>}"], "rec")
    assert (result["mean_iou"], result["precision"], result["recall"]) == (100.0, 100.0, 25.0)


def test_coloninst_inputs_the_evaluator_fails_on():
    with pytest.raises(ValueError):
        oracle_accuracy_score([], [])  # sklearn: empty input
    with pytest.raises(ZeroDivisionError):
        oracle_eval_rec_task([], [])
    assert score_coloninst([], [], "cls") == {"accuracy": 0.0, "n": 0}
    assert score_coloninst([], [], "rec")["mean_iou"] == 0.0
    with pytest.raises(ValueError, match="reference 0 is null"):
        score_coloninst(["polyp"], [None], "cls")
    assert score_coloninst([None], ["polyp"], "cls")["accuracy"] == 0.0


def test_missing_coloninst_prediction_is_an_empty_answer_not_a_shift():
    # the evaluator appends predictions and references to separate lists, so an item without a prediction
    # pairs every later prediction with the wrong reference; medzoo's benchmark scores it as empty
    predictions, references, _ = coloninst_columns("rec")
    items = [BenchmarkItem(question_id=str(n), question="Q", answer=r) for n, r in enumerate(references)]
    answers = {str(n): p for n, p in enumerate(predictions) if p is not None}
    result = ColonInstRecBenchmark().score(answers, items)
    assert result["n_missing"] == 1
    assert result["mean_iou"] == RECORDED["coloninst"]["rec"]["avg_iou"] * 100
    shifted = oracle_eval_rec_task(*oracle_coloninst_lists(official.coloninst_fixture("rec")))
    assert shifted["avg_iou"] != RECORDED["coloninst"]["rec"]["avg_iou"]


# =====================================================================================================
# live: the official scripts themselves
# =====================================================================================================

needs_llava_med = pytest.mark.skipif(not official.llava_med_available(), reason="no LLaVA-Med git mirror")
needs_intelliscope = pytest.mark.skipif(not official.intelliscope_available(), reason="no IntelliScope git mirror")


@needs_llava_med
def test_live_official_llava_med_scripts_equal_medzoo():
    pytest.importorskip("nltk")
    sets = [vqa_columns(VQA_ITEMS)] + [random_vqa_set(seed, 120) for seed in (21, 22)]
    for predictions, references, types in sets:
        items = [{"id": n, "answer_type": t, "reference": r, "prediction": p}
                 for n, (p, r, t) in enumerate(zip(predictions, references, types, strict=True))]  # fmt: skip
        expected = official.official_medvqa(items, CANDIDATES)
        assert_equal_metrics(score_medvqa(predictions, references, types, candidates=CANDIDATES), expected)


@needs_llava_med
def test_live_official_glossary_equals_medzoo_tables():
    batch, _ = official.load_llava_med()
    assert _effective(batch.contractions) == scoring.CONTRACTIONS
    assert batch.contractions == ORACLE_CONTRACTIONS
    # manual_map.setdefault(word, word) in normalize_word stores every word it sees: keep the real entries
    assert {k: v for k, v in batch.manual_map.items() if k != v} == scoring.NUMBER_WORDS
    assert list(scoring.PUNCTUATION) == batch.punct and set(batch.articles) == scoring.ARTICLES
    rng = random.Random(5)
    for text in [random_answer(rng) for _ in range(2000)]:
        assert normalize_answer(text) == batch.normalize_word(text), text


@needs_intelliscope
def test_live_official_coloninst_evaluator_equals_medzoo():
    pytest.importorskip("sklearn")
    for task in ("cls", "reg", "rec"):
        predictions, references, filled = coloninst_columns(task)
        expected = official.official_coloninst(task, filled)
        result = score_coloninst(predictions, references, task)
        if task == "rec":
            assert result["mean_iou"] == expected["avg_iou"] * 100
            assert result["precision"] == expected["avg_precision"] * 100
            assert result["recall"] == expected["avg_recall"] * 100
        else:
            assert result["accuracy"] == expected * 100
