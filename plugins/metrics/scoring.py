"""Plain-python scoring for medical VQA (LLaVA-Med definitions) and ColonINST; all results in percent.

Medical VQA follows LLaVA-Med's ``llava/eval/run_eval_batch.py`` (the script behind the paper's table),
quirks included so that a prediction set scores the same here as there:

- answers are lower-cased and normalised VQA-style (``normalize_answer``);
- closed: a hit when the normalised reference is a *substring* of the normalised prediction, so a
  reference "no" matches the prediction "cannot tell" (``closed_accuracy``); ``closed_accuracy_strict``
  instead needs the reference as whole words, and for yes/no references the first yes/no word;
- open: ``open_recall`` (the paper's "Open" column) is the token recall of ``token_f1`` averaged over
  open questions; ``open_accuracy`` is the substring hit; ``exact_match``, ``precision``, ``f1`` and
  ``bleu``/``bleu_1..3`` are the script's other open-question numbers.

ColonINST follows the ColonINST evaluator: both sides lower-cased with ``<|endoftext|>`` removed;
CLS/REG exact match; REC reads the integers inside ``<...>``, anything but four scores IoU 0, and the
IoU counts pixels inclusively (VOC ``+1`` convention).
"""

from __future__ import annotations

import math
import re
import sys
from collections import Counter
from collections.abc import Sequence

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
    """LLaVA-Med / VQA answer normalisation: punctuation, periods, articles, number words, contractions."""
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


# --- per-answer scores (inputs already normalised) ----------------------------------------------


def token_f1(prediction: str, reference: str) -> tuple[float, float, float]:
    """(f1, precision, recall) over whitespace tokens, counted as LLaVA-Med counts them.

    True positives add the *prediction's* count of each shared word, so for predictions without repeated
    words recall is |pred words ∩ ref words| / |ref words|; a repeated shared word counts each time.
    """
    pred_counts, ref_counts = Counter(prediction.split()), Counter(reference.split())
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
    """LLaVA-Med's "exact match score": distinct reference words found in the prediction / prediction length."""
    pred_words = prediction.split()
    if not pred_words:
        return 0.0
    found = sum(1 for word in set(reference.split()) if word in pred_words)
    return found / len(pred_words)


def _ngrams(tokens: Sequence[str], n: int) -> Counter:
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def sentence_bleu(
    reference: Sequence[str], hypothesis: Sequence[str], weights: Sequence[float] = (0.25, 0.25, 0.25, 0.25)
) -> float:
    """Sentence BLEU against one reference, as ``nltk.translate.bleu_score.sentence_bleu`` (3.8) computes it.

    LLaVA-Med calls nltk without a smoothing function, i.e. ``SmoothingFunction().method0``: no unigram
    match gives 0, and an n-gram order with no match gets precision ``sys.float_info.min`` (so a non-zero
    weight on it drives the score to ~0, a zero weight leaves it out).
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


def canonical_answer_type(answer_type: str) -> str:
    """'OPEN'/'CLOSED' (any case, stray spaces) or 'yes/no' -> 'open' / 'closed'."""
    value = str(answer_type).strip().lower()
    if value in ("open", "closed"):
        return value
    if value in ("yes/no", "close", "closed-ended"):
        return "closed"
    if value in ("open-ended", "other"):
        return "open"
    raise ValueError(f"unknown answer type {answer_type!r}; expected OPEN or CLOSED")


def _percent_mean(values: Sequence[float]) -> float:
    return 100.0 * sum(values) / len(values) if values else 0.0


def score_medvqa(
    predictions: Sequence[str], references: Sequence[str], answer_types: Sequence[str]
) -> dict[str, float]:
    """LLaVA-Med VQA metrics in percent; open metrics over open questions, closed over closed ones
    (a metric over zero questions reads 0.0, as in the official script)."""
    if not len(predictions) == len(references) == len(answer_types):
        raise ValueError(
            f"predictions ({len(predictions)}), references ({len(references)}) and answer types "
            f"({len(answer_types)}) differ in length"
        )
    per_metric: dict[str, list[float]] = {key: [] for key in _MEDVQA_KEYS}
    for prediction, reference, answer_type in zip(predictions, references, answer_types, strict=True):
        pred = normalize_answer(str(prediction).lower())
        ref = normalize_answer(str(reference).lower())
        if canonical_answer_type(answer_type) == "closed":
            per_metric["closed_accuracy"].append(float(closed_hit(pred, ref)))
            per_metric["closed_accuracy_strict"].append(float(closed_hit_strict(pred, ref)))
            continue
        # the script normalises once more inside its f1 / exact-match helpers
        pred_twice, ref_twice = normalize_answer(pred), normalize_answer(ref)
        f1, precision, recall = token_f1(pred_twice, ref_twice)
        per_metric["open_recall"].append(recall)
        per_metric["open_accuracy"].append(float(closed_hit(pred, ref)))
        per_metric["exact_match"].append(llava_med_exact_match(pred_twice, ref_twice))
        per_metric["precision"].append(precision)
        per_metric["f1"].append(f1)
        ref_tokens, hyp_tokens = ref.split(), pred.split()
        for key, weights in _BLEU_WEIGHTS.items():
            per_metric[key].append(sentence_bleu(ref_tokens, hyp_tokens, weights))
    result = {key: _percent_mean(values) for key, values in per_metric.items()}
    result["n_open"] = len(per_metric["open_recall"])
    result["n_closed"] = len(per_metric["closed_accuracy"])
    result["n"] = result["n_open"] + result["n_closed"]
    return result


_BLEU_WEIGHTS = {
    "bleu": (0.25, 0.25, 0.25, 0.25),
    "bleu_1": (1, 0, 0, 0),
    "bleu_2": (0, 1, 0, 0),
    "bleu_3": (0, 0, 1, 0),
}
_MEDVQA_KEYS = (
    "closed_accuracy", "closed_accuracy_strict", "open_recall", "open_accuracy", "exact_match",
    "precision", "f1", *_BLEU_WEIGHTS,
)  # fmt: skip

# --- ColonINST ----------------------------------------------------------------------------------

COLONINST_TASKS = ("cls", "reg", "rec", "cap")
END_OF_TEXT = "<|endoftext|>"
_BOX_NUMBER = re.compile(r"<(\d+)>")

Box = tuple[int, int, int, int]


def clean_coloninst(text: str) -> str:
    """Lower-case, drop ``<|endoftext|>``, trim surrounding whitespace."""
    return str(text).lower().replace(END_OF_TEXT, "").strip()


def parse_box(text: str) -> Box | None:
    """The box ``{<x1><y1><x2><y2>}`` in ``text``: the integers inside ``<...>``; None unless exactly four."""
    numbers = _BOX_NUMBER.findall(clean_coloninst(text))
    if len(numbers) != 4:
        return None
    x1, y1, x2, y2 = (int(n) for n in numbers)
    return x1, y1, x2, y2


def box_iou(first: Box, second: Box) -> float:
    """IoU of two pixel boxes with inclusive corners (VOC +1 convention); an inverted box scores 0."""
    for x1, y1, x2, y2 in (first, second):
        if x2 < x1 or y2 < y1:
            return 0.0
    inter_w = min(first[2], second[2]) - max(first[0], second[0]) + 1
    inter_h = min(first[3], second[3]) - max(first[1], second[1]) + 1
    if inter_w <= 0 or inter_h <= 0:
        return 0.0
    inter = inter_w * inter_h

    def area(box: Box) -> int:
        return (box[2] - box[0] + 1) * (box[3] - box[1] + 1)

    return inter / (area(first) + area(second) - inter)


def score_coloninst(predictions: Sequence[str], references: Sequence[str], task: str) -> dict[str, float]:
    """CLS/REG: ``accuracy``; REC: ``mean_iou`` and ``acc_at_0_5`` (IoU > 0.5), plus counts. Percent."""
    task = task.lower()
    if task not in ("cls", "reg", "rec"):
        raise ValueError(f"ColonINST task {task!r} has no metric; expected cls, reg or rec")
    if len(predictions) != len(references):
        raise ValueError(f"predictions ({len(predictions)}) and references ({len(references)}) differ in length")
    if task in ("cls", "reg"):
        hits = [float(clean_coloninst(p) == clean_coloninst(r)) for p, r in zip(predictions, references, strict=True)]
        return {"accuracy": _percent_mean(hits), "n": len(hits)}
    ious: list[float] = []
    malformed = 0
    for index, (prediction, reference) in enumerate(zip(predictions, references, strict=True)):
        ref_box = parse_box(reference)
        if ref_box is None:
            raise ValueError(f"reference {index} has no box of four integers: {reference!r}")
        pred_box = parse_box(prediction)
        malformed += pred_box is None
        ious.append(0.0 if pred_box is None else box_iou(pred_box, ref_box))
    return {
        "mean_iou": _percent_mean(ious),
        "acc_at_0_5": _percent_mean([float(iou > 0.5) for iou in ious]),
        "n": len(ious),
        "n_malformed": malformed,
    }
