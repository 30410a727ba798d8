"""Caption metrics as the ``evaluate`` library computes them, implemented here because ``evaluate.load`` fetches
each metric's script from the Hugging Face hub at load time (no network: it cannot load offline).

- ``bleu_4``: ``evaluate.load("bleu")`` with its defaults (huggingface/evaluate ``metrics/bleu/bleu.py`` at
  4ec931ef: ``Tokenizer13a``, ``max_order=4``, ``smooth=False``): corpus BLEU of tensorflow/nmt's
  ``compute_bleu`` (``metrics/bleu/nmt_bleu.py`` at 4c312afb), n-gram matches and candidate n-grams summed over
  the corpus, geometric mean of the four precisions (0 when one is 0) times the brevity penalty
  ``exp(1 - r/c)`` when the candidates are shorter than the (shortest) references. Tokens: sacrebleu's 13a
  tokenizer (``metrics/bleu/tokenizer_13a.py`` at 0aeb93da), punctuation split off, case kept.
- ``rouge_l``: ``evaluate.load("rouge")``'s ``rougeL`` (google-research ``rouge_score``, ``use_stemmer=False``):
  the F-measure of the longest common subsequence of tokens, ``2PR / (P + R)`` with ``P = LCS / len(prediction)``
  and ``R = LCS / len(reference)``, averaged over the captions (evaluate's default aggregator reports the
  bootstrap median of that mean; the plain mean is given here). Tokens: lower-cased, every run of characters
  outside ``[a-z0-9]`` a separator (``rouge_score/tokenize.py``).
- METEOR is not given: ``evaluate``'s ``meteor`` needs NLTK's WordNet data, which is downloaded at run time too.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

# sacrebleu's 13a rules, in order: symbols, a period or comma not after / before a digit, a dash after a digit
_13A_RULES = (
    (re.compile(r"([\{-\~\[-\` -\&\(-\+\:-\@\/])"), r" \1 "),
    (re.compile(r"([^0-9])([\.,])"), r"\1 \2 "),
    (re.compile(r"([\.,])([^0-9])"), r" \1 \2"),
    (re.compile(r"([0-9])(-)"), r"\1 \2 "),
)
_HTML_ENTITIES = (("&quot;", '"'), ("&amp;", "&"), ("&lt;", "<"), ("&gt;", ">"))
_NOT_ALPHANUMERIC = re.compile(r"[^a-z0-9]+")


def tokens_13a(text: str) -> list[str]:
    """mteval-v13a tokens (sacrebleu's ``Tokenizer13a`` as ``evaluate``'s bleu uses it)."""
    text = text.replace("<skipped>", "").replace("-\n", "").replace("\n", " ")
    if "&" in text:
        for entity, character in _HTML_ENTITIES:
            text = text.replace(entity, character)
    text = f" {text} "
    for pattern, replacement in _13A_RULES:
        text = pattern.sub(replacement, text)
    return text.split()


def _ngrams(tokens: Sequence[str], max_order: int) -> Counter[tuple[str, ...]]:
    return Counter(tuple(tokens[i : i + n]) for n in range(1, max_order + 1) for i in range(len(tokens) - n + 1))


def corpus_bleu(predictions: Sequence[str], references: Sequence[Sequence[str]], max_order: int = 4) -> float:
    """Corpus BLEU in [0, 1] of ``predictions`` against one or more ``references`` each (13a tokens, no smoothing)."""
    matches, possible = [0] * max_order, [0] * max_order
    candidate_length = reference_length = 0
    for prediction, options in zip(predictions, references, strict=True):
        candidate = tokens_13a(prediction)
        tokenised = [tokens_13a(reference) for reference in options]
        candidate_length += len(candidate)
        reference_length += min(len(reference) for reference in tokenised)
        clipped: Counter[tuple[str, ...]] = Counter()
        for reference in tokenised:
            clipped |= _ngrams(reference, max_order)
        for ngram, count in (_ngrams(candidate, max_order) & clipped).items():
            matches[len(ngram) - 1] += count
        for order in range(1, max_order + 1):
            possible[order - 1] += max(0, len(candidate) - order + 1)
    precisions = [m / p if p else 0.0 for m, p in zip(matches, possible, strict=True)]
    if min(precisions) <= 0 or not candidate_length or not reference_length:
        return 0.0
    geometric_mean = math.exp(sum(math.log(p) for p in precisions) / max_order)
    ratio = candidate_length / reference_length
    return geometric_mean * (1.0 if ratio > 1.0 else math.exp(1 - 1 / ratio))


def rouge_tokens(text: str) -> list[str]:
    """``rouge_score``'s tokens: lower-cased, split at every run of characters outside ``[a-z0-9]``."""
    return [token for token in _NOT_ALPHANUMERIC.split(text.lower()) if token]


def _lcs_length(first: Sequence[str], second: Sequence[str]) -> int:
    previous = [0] * (len(second) + 1)
    for token in first:
        current = [0]
        for j, other in enumerate(second):
            current.append(previous[j] + 1 if token == other else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F-measure in [0, 1] of one caption (0 when either side has no token)."""
    candidate, target = rouge_tokens(prediction), rouge_tokens(reference)
    if not candidate or not target:
        return 0.0
    common = _lcs_length(target, candidate)
    precision, recall = common / len(candidate), common / len(target)
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def score_captions(predictions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
    """``bleu_4`` and ``rouge_l`` in percent, over captions already cleaned by the caller; ``n`` counted."""
    count = len(predictions)
    rouge = sum(rouge_l(p, r) for p, r in zip(predictions, references, strict=True)) / count if count else 0.0
    bleu = corpus_bleu(predictions, [[reference] for reference in references]) if count else 0.0
    return {"bleu_4": round(100 * bleu, 2), "rouge_l": round(100 * rouge, 2), "n": count}
