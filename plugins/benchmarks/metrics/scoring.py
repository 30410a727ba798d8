"""Plain-python scoring for medical VQA (LLaVA-Med definitions) and ColonINST; all results in percent.

Every default number is the official script's, to the last digit (``docs/fidelity.md``;
``tests/test_metric_fidelity.py`` pins it against transliterations of the official code):

Medical VQA follows LLaVA-Med ``v1.0.0`` (= commit ``b9a98a7``) ``llava/eval/run_eval_batch.py``
``evaluate`` (the script behind the paper's table), quirks included:

- answers are lower-cased and normalised VQA-style (``normalize_answer``, ``normalize_word`` of
  ``llava/eval/eval_metrics/glossary.py``); the f1 / precision / recall / exact-match helpers normalise
  a second time, as the official ``calculate_f1score`` / ``calculate_exactmatch`` do;
- closed: a hit when the normalised reference is a *substring* of the normalised prediction, so a
  reference "no" matches the prediction "cannot tell" (``closed_accuracy``); ``closed_recall`` is the
  script's ``recall_closed``;
- open: ``open_recall`` (the paper's "Open" column) is the token recall of ``token_f1`` averaged over
  open questions; ``open_accuracy`` is the substring hit; ``exact_match``, ``precision``, ``f1`` and
  ``bleu``/``bleu_1..3`` (nltk ``sentence_bleu``, no smoothing) are the script's other open numbers;
- a mean is the left-to-right ``sum`` / count, times 100 (``(s / n) * 100``, not ``100 * s / n``).

Named extras, never the default: ``closed_accuracy_strict`` (whole words, first yes/no word),
``closed_accuracy_run_eval`` and, given ``candidates``, ``open_accuracy_run_eval`` (the single-dataset
``llava/eval/run_eval.py``: a closed hit also needs "yes" or "no" in the prediction; open accuracy maps the
prediction to the most similar training answer).

ColonINST follows IntelliScope ``script/multimodal_benchmark/multimodal_evaluator.py``: predictions
lower-cased with ``<|endoftext|>`` removed, references lower-cased, nothing stripped; CLS/REG exact match
(sklearn ``accuracy_score``); REC reads every integer matched by ``<\\s*(\\d+)\\s*>``, anything but four on
either side scores IoU 0, IoU counts pixels inclusively (VOC ``+1``), a hit is IoU > 0.5.
"""

from __future__ import annotations

import math
import re
import sys
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

# --- VQA answer normalisation -------------------------------------------------------------------

PUNCTUATION = (";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?", "!")
ARTICLES = frozenset({"a", "an", "the"})
NUMBER_WORDS = {
    "none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
    "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10",
}  # fmt: skip
# the VQA evaluation contraction table (lower-case keys only: keys with capitals can never match)
_CONTRACTION_PAIRS = (
    "aint=ain't arent=aren't cant=can't couldve=could've couldnt=couldn't couldn'tve=couldn't've "
    "couldnt've=couldn't've didnt=didn't doesnt=doesn't dont=don't hadnt=hadn't hadnt've=hadn't've "
    "hadn'tve=hadn't've hasnt=hasn't havent=haven't hed=he'd hed've=he'd've he'dve=he'd've hes=he's "
    "howd=how'd howll=how'll hows=how's isnt=isn't itd=it'd itd've=it'd've it'dve=it'd've itll=it'll "
    "maam=ma'am mightnt=mightn't mightnt've=mightn't've mightn'tve=mightn't've mightve=might've "
    "mustnt=mustn't mustve=must've neednt=needn't notve=not've oclock=o'clock oughtnt=oughtn't "
    "ow's'at='ow's'at 'ows'at='ow's'at 'ow'sat='ow's'at shant=shan't shed've=she'd've she'dve=she'd've "
    "shouldve=should've shouldnt=shouldn't shouldnt've=shouldn't've shouldn'tve=shouldn't've "
    "somebody'd=somebodyd somebodyd've=somebody'd've somebody'dve=somebody'd've somebodyll=somebody'll "
    "somebodys=somebody's someoned=someone'd someoned've=someone'd've someone'dve=someone'd've "
    "someonell=someone'll someones=someone's somethingd=something'd somethingd've=something'd've "
    "something'dve=something'd've somethingll=something'll thats=that's thered=there'd "
    "thered've=there'd've there'dve=there'd've therere=there're theres=there's theyd=they'd "
    "theyd've=they'd've they'dve=they'd've theyll=they'll theyre=they're theyve=they've twas='twas "
    "wasnt=wasn't wed've=we'd've we'dve=we'd've weve=we've werent=weren't whatll=what'll whatre=what're "
    "whats=what's whatve=what've whens=when's whered=where'd wheres=where's whereve=where've whod=who'd "
    "whod've=who'd've who'dve=who'd've wholl=who'll whos=who's whove=who've whyll=why'll whyre=why're "
    "whys=why's wont=won't wouldve=would've wouldnt=wouldn't wouldnt've=wouldn't've "
    "wouldn'tve=wouldn't've yall=y'all yall'll=y'all'll y'allll=y'all'll yall'd've=y'all'd've "
    "y'alld've=y'all'd've y'all'dve=y'all'd've youd=you'd youd've=you'd've you'dve=you'd've "
    "youll=you'll youre=you're youve=you've"
)
CONTRACTIONS = dict(pair.split("=", 1) for pair in _CONTRACTION_PAIRS.split())
# LLaVA-Med's period pattern: "(?!<=\d)" is a negative *lookahead* for the text "<=digit" (a typo for a
# lookbehind), so in effect every period not followed by a digit goes; and the script passes re.UNICODE
# (= 32) in the position of ``count``, so at most 32 periods are removed per call.
_PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")
_PERIOD_STRIP_COUNT = 32
_DIGIT_COMMA = re.compile(r"(\d)(,)(\d)")


def normalize_answer(text: str) -> str:
    """LLaVA-Med / VQA answer normalisation (``normalize_word``): punctuation, periods, number words, articles,
    contractions. The script lower-cases before calling it; this function lower-cases only its words."""
    stripped = text
    digit_comma = _DIGIT_COMMA.search(text) is not None
    for mark in PUNCTUATION:
        # a mark next to a space (or any text with a digit comma like "1,000") is deleted, else spaced out
        if mark + " " in text or " " + mark in text or digit_comma:
            stripped = stripped.replace(mark, "")
        else:
            stripped = stripped.replace(mark, " ")
    stripped = _PERIOD_STRIP.sub("", stripped, count=_PERIOD_STRIP_COUNT)
    words = [NUMBER_WORDS.get(word, word) for word in stripped.lower().split()]
    words = [CONTRACTIONS.get(word, word) for word in words if word not in ARTICLES]
    return " ".join(words).replace(",", "")


# --- means ----------------------------------------------------------------------------------------


def official_mean(values: Iterable[float]) -> float:
    """``sum(values) / len(values)`` as the official scripts computed it (Python 3.10): the values added one by
    one, left to right. (Python 3.12's ``sum`` compensates rounding for floats and can move the last digit.)"""
    items = list(values)
    total: float = 0
    for value in items:
        total = total + value
    return total / len(items)


def percent(values: Sequence[float]) -> float:
    """An official mean in percent, ``(sum / n) * 100`` as the scripts compute and print it (``100 * sum / n``
    can differ in the last digit: 1 of 3 is 33.33333333333333, not 33.333333333333336). No values: 0.0,
    where the official scripts mostly divide by zero (docs/fidelity.md)."""
    return official_mean(values) * 100 if len(values) else 0.0


def _prediction_text(value: Any) -> str:
    """A prediction as text; a missing one (None) is the empty answer, as benchmarks score missing answers."""
    return "" if value is None else str(value)


def _reference_text(value: Any, index: int) -> str:
    if value is None:
        # the official scripts call .lower() on it and crash; a null reference cannot be scored
        raise ValueError(f"reference {index} is null (the official scripts fail on it too); drop the question")
    return str(value)


# --- per-answer VQA scores (inputs already normalised) ----------------------------------------------


def _words(text: str) -> list[str]:
    """The unigrams of LLaVA-Med's ``split_sentence(text, 1)``: lower-cased, whitespace-split."""
    return text.lower().strip().split()


def token_f1(prediction: str, reference: str) -> tuple[float, float, float]:
    """(f1, precision, recall) over whitespace tokens, counted as LLaVA-Med's ``calculate_f1score`` counts them.

    True positives add the *prediction's* count of each shared word, so for predictions without repeated
    words recall is |pred words ∩ ref words| / |ref words|; a repeated shared word counts each time.
    """
    pred_counts, ref_counts = Counter(_words(prediction)), Counter(_words(reference))
    if not pred_counts or not ref_counts:
        return 0.0, 0.0, 0.0
    true_pos = sum(count for word, count in pred_counts.items() if word in ref_counts)
    false_pos = sum(count for word, count in pred_counts.items() if word not in ref_counts)
    false_neg = sum(count for word, count in ref_counts.items() if word not in pred_counts)
    if true_pos == 0:
        return 0.0, 0.0, 0.0
    precision = true_pos / (true_pos + false_pos)
    recall = true_pos / (true_pos + false_neg)
    return 2 * precision * recall / (precision + recall), precision, recall


def llava_med_exact_match(prediction: str, reference: str) -> float:
    """LLaVA-Med's "exact match score" (``calculate_exactmatch``): distinct reference words found in the
    prediction / number of prediction words."""
    pred_words = _words(prediction)
    if not pred_words:
        return 0.0
    found = sum(1 for word in set(_words(reference)) if word in pred_words)
    return found / len(pred_words)


def _ngrams(tokens: Sequence[str], n: int) -> Counter:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def sentence_bleu(
    reference: Sequence[str], hypothesis: Sequence[str], weights: Sequence[float] = (0.25, 0.25, 0.25, 0.25)
) -> float:
    """Sentence BLEU against one reference, as ``nltk.translate.bleu_score.sentence_bleu`` (3.8 to 3.10) computes it.

    LLaVA-Med calls nltk without a smoothing function, i.e. ``SmoothingFunction().method0``: no unigram
    match gives 0, and an n-gram order with no match gets precision ``sys.float_info.min`` (so a non-zero
    weight on it drives the score to ~2.2e-308, not 0; a zero weight leaves it out).
    """
    max_order = len(weights)
    counts = [_ngrams(hypothesis, n) for n in range(1, max_order + 1)]
    ref_counts = [_ngrams(reference, n) for n in range(1, max_order + 1)]
    numerators = [sum(min(c, ref[g]) for g, c in hyp.items()) for hyp, ref in zip(counts, ref_counts, strict=True)]
    denominators = [max(1, sum(hyp.values())) for hyp in counts]
    if numerators[0] == 0:
        return 0.0
    hyp_len, ref_len = len(hypothesis), len(reference)
    penalty = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / hyp_len)
    precisions = [num / den if num else sys.float_info.min for num, den in zip(numerators, denominators, strict=True)]
    return penalty * math.exp(math.fsum(w * math.log(p) for w, p in zip(weights, precisions, strict=True)))


def closed_hit(prediction: str, reference: str) -> bool:
    """LLaVA-Med's closed criterion: the reference is a substring of the prediction ("no" in "cannot")."""
    return reference in prediction


def closed_hit_run_eval(prediction: str, reference: str) -> bool:
    """``run_eval.py``'s closed criterion: the prediction contains "yes" or "no" (as substrings) *and* the
    reference, so a non-yes/no closed answer ("left") needs a stray "no"/"yes" in the prediction too."""
    return ("yes" in prediction or "no" in prediction) and reference in prediction


def closed_hit_strict(prediction: str, reference: str) -> bool:
    """Word-level closed criterion: yes/no references must equal the prediction's first yes/no word;
    other references must appear as a run of whole words."""
    pred_words, ref_words = prediction.split(), reference.split()
    if not ref_words:
        return False
    if reference in ("yes", "no"):
        first = next((word for word in pred_words if word in ("yes", "no")), None)
        return first == reference
    width = len(ref_words)
    return any(pred_words[i : i + width] == ref_words for i in range(len(pred_words) - width + 1))


def candidate_answers(candidates: Mapping[str, Sequence[Any]] | Sequence[Any]) -> list[str]:
    """The normalised candidate list for ``candidate_open_hit``: LLaVA-Med's ``train_open_answers.json``
    (``{"0": [answer, ...]}``) or a plain list. Numbers become text (the script converts ints and fails on
    anything else); a null answer or an empty list is an error (the script fails on both)."""
    answers = candidates["0"] if isinstance(candidates, Mapping) else candidates
    normalised = []
    for answer in answers:
        if answer is None:
            raise ValueError("candidate answers contain a null")
        normalised.append(normalize_answer(str(answer)))
    if not normalised:
        raise ValueError("no candidate answers")
    return normalised


def candidate_open_hit(prediction: str, reference: str, candidates: Sequence[str]) -> bool:
    """``run_eval.py``'s open criterion (``calculate_appearance_with_normalization``): the prediction becomes the
    candidate answer sharing the largest share of the candidate's distinct words (the first on ties), a hit
    when that candidate equals the reference. ``candidates`` from ``candidate_answers``."""
    pred_words = set(_words(normalize_answer(prediction)))
    best, best_share = candidates[0], -1.0
    for answer in candidates:
        answer_words = set(_words(answer))
        share = sum(1 for word in pred_words if word in answer_words) / len(answer_words) if answer_words else 0.0
        if share > best_share:
            best, best_share = answer, share
    return best == normalize_answer(reference)


def medvqa_answer(text: Any) -> str:
    """An answer (prediction or reference) as ``score_medvqa`` compares it: lower-cased, then ``normalize_answer``;
    None is the empty answer. The closed criteria (``closed_hit``, ``closed_hit_strict``) take two of these."""
    return normalize_answer(_prediction_text(text).lower())


def medvqa_token_scores(prediction: str, reference: str) -> tuple[float, float, float]:
    """(f1, precision, recall) of one pair of ``medvqa_answer`` texts as ``score_medvqa`` counts them: each
    normalised once more first, as the official ``calculate_f1score`` does (recall is the paper's Open score)."""
    return token_f1(normalize_answer(prediction), normalize_answer(reference))


def canonical_answer_type(answer_type: str) -> str:
    """'OPEN'/'CLOSED' (any case, stray spaces), PathVQA's 'yes/no' / 'other' / 'number' -> 'open' / 'closed'.
    (The official scripts take exactly 'OPEN' and 'CLOSED' and silently skip anything else.)"""
    value = str(answer_type).strip().lower()
    if value in ("open", "closed"):
        return value
    if value in ("yes/no", "close", "closed-ended"):
        return "closed"
    if value in ("open-ended", "other", "number"):
        return "open"
    raise ValueError(f"unknown answer type {answer_type!r}; expected OPEN or CLOSED")


_BLEU_WEIGHTS = {
    "bleu": (0.25, 0.25, 0.25, 0.25),
    "bleu_1": (1, 0, 0, 0),
    "bleu_2": (0, 1, 0, 0),
    "bleu_3": (0, 0, 1, 0),
}
_MEDVQA_KEYS = (
    "closed_accuracy", "closed_accuracy_strict", "closed_accuracy_run_eval", "closed_recall", "open_recall",
    "open_accuracy", "exact_match", "precision", "f1", *_BLEU_WEIGHTS,
)  # fmt: skip


def score_medvqa(
    predictions: Sequence[str | None],
    references: Sequence[str],
    answer_types: Sequence[str],
    *,
    candidates: Mapping[str, Sequence[Any]] | Sequence[Any] | None = None,
) -> dict[str, float]:
    """LLaVA-Med VQA metrics in percent; open metrics over open questions, closed over closed ones.

    The defaults are ``run_eval_batch.py``'s numbers to the last digit. Where it fails, medzoo answers:
    a metric over zero questions reads 0.0 (the script divides by zero for all but the two accuracies);
    a None prediction is the empty answer (the script's ids assertion or ``.lower()`` fails); a None reference
    raises ValueError. ``candidates`` (``train_open_answers.json``) adds ``open_accuracy_run_eval``.
    """
    if not len(predictions) == len(references) == len(answer_types):
        raise ValueError(
            f"predictions ({len(predictions)}), references ({len(references)}) and answer types "
            f"({len(answer_types)}) differ in length"
        )
    normalised_candidates = None if candidates is None else candidate_answers(candidates)
    per_metric: dict[str, list[float]] = {key: [] for key in _MEDVQA_KEYS}
    if normalised_candidates is not None:
        per_metric["open_accuracy_run_eval"] = []
    for index, (prediction, reference, answer_type) in enumerate(
        zip(predictions, references, answer_types, strict=True)
    ):
        kind = canonical_answer_type(answer_type)
        pred = medvqa_answer(prediction)
        ref = medvqa_answer(_reference_text(reference, index))
        # the script normalises once more inside calculate_f1score / calculate_exactmatch
        pred_twice, ref_twice = normalize_answer(pred), normalize_answer(ref)
        f1, precision, recall = medvqa_token_scores(pred, ref)
        if kind == "closed":
            per_metric["closed_accuracy"].append(float(closed_hit(pred, ref)))
            per_metric["closed_accuracy_strict"].append(float(closed_hit_strict(pred, ref)))
            per_metric["closed_accuracy_run_eval"].append(float(closed_hit_run_eval(pred, ref)))
            per_metric["closed_recall"].append(recall)
            continue
        per_metric["open_recall"].append(recall)
        per_metric["open_accuracy"].append(float(closed_hit(pred, ref)))
        if normalised_candidates is not None:
            per_metric["open_accuracy_run_eval"].append(float(candidate_open_hit(pred, ref, normalised_candidates)))
        per_metric["exact_match"].append(llava_med_exact_match(pred_twice, ref_twice))
        per_metric["precision"].append(precision)
        per_metric["f1"].append(f1)
        ref_tokens, hyp_tokens = ref.lower().split(), pred.lower().split()
        for key, weights in _BLEU_WEIGHTS.items():
            per_metric[key].append(sentence_bleu(ref_tokens, hyp_tokens, weights))
    result = {key: percent(values) for key, values in per_metric.items()}
    result["n_open"] = len(per_metric["open_recall"])
    result["n_closed"] = len(per_metric["closed_accuracy"])
    result["n"] = result["n_open"] + result["n_closed"]
    return result


# --- ColonINST ----------------------------------------------------------------------------------

COLONINST_TASKS = ("cls", "reg", "rec", "cap")
END_OF_TEXT = "<|endoftext|>"
# the evaluator's pattern; \d and \s are Unicode-aware (full-width and Arabic-Indic digits count)
_BOX_NUMBER = re.compile(r"<\s*(\d+)\s*>")

Box = tuple[int, int, int, int]


def clean_coloninst(text: str) -> str:
    """The evaluator's cleaning of a prediction: lower-cased, then ``<|endoftext|>`` removed; not stripped."""
    return str(text).lower().replace(END_OF_TEXT, "")


def clean_coloninst_reference(text: str) -> str:
    """The evaluator's cleaning of a reference (the ``gpt`` turn): lower-cased only."""
    return str(text).lower()


def box_numbers(text: str) -> list[int]:
    """Every integer the evaluator reads from ``text``: ``<\\s*(\\d+)\\s*>`` anywhere, several boxes included."""
    return [int(number) for number in _BOX_NUMBER.findall(text)]


def parse_box(text: str) -> Box | None:
    """The box ``{<x1><y1><x2><y2>}`` in ``text`` (cleaned as a prediction); None unless exactly four integers."""
    numbers = box_numbers(clean_coloninst(text))
    if len(numbers) != 4:
        return None
    x1, y1, x2, y2 = numbers
    return x1, y1, x2, y2


def box_iou(first: Sequence[int], second: Sequence[int]) -> float:
    """The evaluator's ``compute_iou``: 0 unless both have four numbers; inclusive pixel corners (VOC +1), so an
    inverted or disjoint box scores 0. Integers too large for a float (where the evaluator overflows) are
    divided exactly."""
    if len(first) != 4 or len(second) != 4:
        return 0.0
    x1a, y1a, x2a, y2a = first
    x1b, y1b, x2b, y2b = second
    inter_w = max(0, min(x2a, x2b) - max(x1a, x1b) + 1)
    inter_h = max(0, min(y2a, y2b) - max(y1a, y1b) + 1)
    if inter_w == 0 or inter_h == 0:
        return 0.0
    inter = inter_w * inter_h
    union = (x2a - x1a + 1) * (y2a - y1a + 1) + (x2b - x1b + 1) * (y2b - y1b + 1) - inter
    try:
        return inter / float(union)
    except OverflowError:
        return inter / union


def _as_numpy_compares(text: str) -> str:
    # sklearn's accuracy_score compares numpy fixed-width unicode arrays, which drop trailing NUL characters
    return text.rstrip("\x00")


def score_coloninst(
    predictions: Sequence[str | None],
    references: Sequence[str],
    task: str,
    *,
    strip_whitespace: bool = False,
    strict_references: bool = False,
) -> dict[str, float]:
    """The ColonINST evaluator's numbers in percent (its fractions times 100).

    CLS/REG: ``accuracy`` (exact match after cleaning). REC: ``mean_iou`` (``avg_iou``), ``acc_at_0_5`` (IoU > 0.5,
    the evaluator's ``avg_precision``, also given as ``precision``), ``recall`` (``avg_recall``: a hit divided by
    the number of integers in the reference, so 25.0 per hit), counts ``n``, ``n_malformed`` (predictions
    without exactly four integers) and ``n_malformed_references``.

    Options (not the evaluator's behaviour): ``strip_whitespace`` strips both sides before the CLS/REG
    comparison; ``strict_references`` raises on a REC reference without four integers instead of scoring
    it 0. A None prediction is the empty answer; a None reference raises ValueError; no items give 0.0
    (the evaluator raises on each of these).
    """
    task = task.lower()
    if task not in ("cls", "reg", "rec"):
        raise ValueError(f"ColonINST task {task!r} has no metric; expected cls, reg or rec")
    if len(predictions) != len(references):
        raise ValueError(f"predictions ({len(predictions)}) and references ({len(references)}) differ in length")
    preds = [clean_coloninst(_prediction_text(p)) for p in predictions]
    refs = [clean_coloninst_reference(_reference_text(r, i)) for i, r in enumerate(references)]
    if task in ("cls", "reg"):
        if strip_whitespace:
            preds, refs = [p.strip() for p in preds], [r.strip() for r in refs]
        hits = [float(_as_numpy_compares(p) == _as_numpy_compares(r)) for p, r in zip(preds, refs, strict=True)]
        return {"accuracy": percent(hits), "n": len(hits)}
    ious: list[float] = []
    hits, recalls = [], []
    malformed = malformed_references = 0
    for index, (prediction, reference) in enumerate(zip(preds, refs, strict=True)):
        pred_numbers, ref_numbers = box_numbers(prediction), box_numbers(reference)
        if len(ref_numbers) != 4:
            if strict_references:
                raise ValueError(f"reference {index} has no box of four integers: {references[index]!r}")
            malformed_references += 1
        malformed += len(pred_numbers) != 4
        iou = box_iou(pred_numbers, ref_numbers)
        hit = 1.0 if iou > 0.5 else 0.0  # the evaluator's tp / (tp + fp), and tp + fp is always 1
        ious.append(iou)
        hits.append(hit)
        recalls.append(hit / len(ref_numbers) if ref_numbers else 0.0)
    return {
        "mean_iou": percent(ious),
        "acc_at_0_5": percent(hits),
        "precision": percent(hits),
        "recall": percent(recalls),
        "n": len(ious),
        "n_malformed": malformed,
        "n_malformed_references": malformed_references,
    }
