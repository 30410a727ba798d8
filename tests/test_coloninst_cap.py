"""ColonINST CAP (issue 28 item 4): the captioning task read from its val / test files, scored by medzoo's own
protocol (IntelliScope publishes no CAP metric) with BLEU-4 and ROUGE-L computed as the ``evaluate`` library's
``bleu`` and ``rouge`` compute them (their scripts are fetched from the hub at load time, so they are
implemented in ``medzoo.plugins.benchmarks.metrics.captions`` and pinned here), its synthetic twin, and
``ColonINST-train-cap.json`` as stage-1 data."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path

import pytest
from nltk.translate.bleu_score import corpus_bleu as nltk_corpus_bleu

from medzoo.app.cli.main import main
from medzoo.core.evaluation.evaluate_model import evaluate, get_benchmark
from medzoo.core.interfaces.answerer import Answerer, PromptChoice
from medzoo.plugins.benchmarks.metrics.captions import (
    corpus_bleu,
    rouge_l,
    rouge_tokens,
    score_captions,
    tokens_13a,
)
from medzoo.plugins.datasets.colon_inst import ColonInstReader


@pytest.fixture(scope="module")
def data_root(synthetic_data) -> Path:
    return synthetic_data(train=12, val=24, test=24)


# ---------------------------------------------------------------- the metrics, pinned


def test_bleu_is_one_on_evaluate_documented_example():
    """huggingface/evaluate metrics/bleu/bleu.py at 4ec931ef, its docstring example: 1.0."""
    predictions = ["hello there general kenobi", "foo bar foobar"]
    references = [["hello there general kenobi", "hello there!"], ["foo bar foobar"]]
    assert corpus_bleu(predictions, references) == 1.0


@pytest.mark.parametrize(("text", "tokens"), [
    ("Hello, world!", ["Hello", ",", "world", "!"]),
    ("It's 3.5-4 mm.", ["It's", "3.5", "-", "4", "mm", "."]),  # 13a keeps apostrophes and decimal points
    ("A&amp;B (x)", ["A", "&", "B", "(", "x", ")"]),
    ("1,000 polyps,found", ["1,000", "polyps", ",", "found"]),
])
def test_13a_tokens(text, tokens):
    assert tokens_13a(text) == tokens


def test_bleu_equals_nltk_corpus_bleu_on_the_same_tokens():
    """Corpus BLEU (clipped n-gram counts summed over the corpus, uniform weights, brevity penalty, no
    smoothing) is the same number in tensorflow/nmt's compute_bleu and NLTK's corpus_bleu for one reference."""
    predictions = ["a small polyp is seen in the upper left part of the frame .",
                   "fresh blood covers the mucosa , a sign of bleeding",
                   "the mucosa looks normal"]
    references = ["a raised polyp protrudes from the colon wall in the upper left part of the frame .",
                  "fresh blood covers the mucosa in the lower right part of the frame , a sign of active bleeding .",
                  "the colonic mucosa looks normal , with a clear vascular pattern ."]
    ours = corpus_bleu(predictions, [[r] for r in references])
    theirs = nltk_corpus_bleu([[tokens_13a(r)] for r in references], [tokens_13a(p) for p in predictions])
    assert 0.1 < ours < 0.9 and ours == pytest.approx(theirs, rel=1e-12)


def test_bleu_is_zero_without_a_four_gram_match_and_brevity_is_penalised():
    assert corpus_bleu(["polyp seen here"], [["polyp seen here today"]]) == 0.0  # no 4-gram at all
    long, short = "a b c d e f g h", "a b c d"
    assert corpus_bleu([short], [[long]]) == pytest.approx(pytest.approx(2.718281828459045 ** (1 - 8 / 4)))


def test_rouge_l_by_hand():
    """rouge_score: tokens lower-cased, split at non-alphanumerics; LCS("the polyp is small", "a small polyp is
    seen") = "polyp is" (2): P = 2/4, R = 2/5, F = 2PR / (P + R) = 4/9."""
    assert rouge_tokens("The polyp's size: 3-mm!") == ["the", "polyp", "s", "size", "3", "mm"]
    assert rouge_l("the polyp is small", "a small polyp is seen") == pytest.approx(4 / 9)
    assert rouge_l("", "anything") == 0.0 and rouge_l("x y", "x y") == 1.0


def test_score_captions_in_percent():
    result = score_captions(["a b c d", "x"], ["a b c d", "y"])
    assert result == {"bleu_4": pytest.approx(100 * corpus_bleu(["a b c d", "x"], [["a b c d"], ["y"]]), abs=0.01),
                      "rouge_l": 50.0, "n": 2}


# ---------------------------------------------------------------- the benchmark and its synthetic twin


class Echo(Answerer):
    """Asked the questions in order (one process, nothing to resume): every other one is answered with its
    reference caption, upper-cased and ending in ``<|endoftext|>``, the rest with nothing."""

    model_id = "echo"

    def __init__(self, references: list[str]) -> None:
        self.references = list(references)
        self.asked = 0

    def answer(self, requests: Sequence, settings, template: str, batch_size: int) -> list[str]:
        texts = []
        for _ in requests:
            caption = self.references[self.asked]
            texts.append(caption.upper() + "<|endoftext|>" if self.asked % 2 == 0 else "")
            self.asked += 1
        return texts

    def weights_fingerprint(self) -> str:
        return "echo"

    def prompt_for(self, benchmark, requested: str | None) -> PromptChoice:
        return PromptChoice("plain")


def test_synth_cap_is_read_answered_and_scored_as_medzoo_own_protocol(data_root, tmp_path):
    benchmark = get_benchmark("synth-coloninst-cap", {"root": str(data_root)})
    items = benchmark.load()
    assert items and all(item.metadata["task"] == "cap" and len(item.answer.split()) >= 9 for item in items)
    metrics = evaluate(Echo([item.answer for item in items]), "synth-coloninst-cap", tmp_path / "eval", options={"root": str(data_root)})
    assert metrics["n"] == len(items) and metrics["n_missing"] == 0
    half = (len(items) + 1) // 2  # the cleaning takes the case and <|endoftext|> away: each of these scores 1
    assert metrics["rouge_l"] == pytest.approx(100 * half / len(items), abs=0.01)
    assert 0 < metrics["bleu_4"] <= 100
    assert metrics["scoring_protocol"].startswith("medzoo's own (IntelliScope publishes no CAP metric)")
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["benchmark"] == "synth-coloninst-cap"


def test_synth_cap_through_medzoo_eval_with_a_tiny_model(trained_tiny_model, data_root, tmp_path, capsys,
                                                         single_thread):
    with single_thread():
        main(["eval", str(trained_tiny_model), "-b", "synth-coloninst-cap", "--option", f"root={data_root}",
              "--option", "max_new_tokens=6", "-d", str(tmp_path / "out")])
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert {"bleu_4", "rouge_l", "n", "scoring_protocol"} <= set(metrics) and metrics["n"] > 0


def test_real_cap_files_are_read_per_split_and_checked_against_the_published_size(data_root, tmp_path):
    root = tmp_path / "ColonINST"
    for split in ("val", "test"):
        (root / split).mkdir(parents=True)
        shutil.copy(data_root / "coloninst" / split / f"cap_{split}.json", root / split / f"cap_{split}.json")
    for split, published in (("seen", 8929), ("unseen", 45284)):
        benchmark = get_benchmark("coloninst-cap", {"root": str(root), "split": split,
                                                    "image_root": str(data_root / "images")})
        items = benchmark.load()
        assert items and benchmark.headline_metrics == ("bleu_4", "rouge_l")
        warning = benchmark.size_warning(items)
        assert warning is not None and str(published) in warning.replace(",", "")


def test_coloninst_train_cap_is_stage_one_data(data_root, tmp_path):
    """The released stage-1 file name ``ColonINST-train-cap.json`` says its task: every record is a caption."""
    source = data_root / "coloninst" / "train" / "cap_train.json"
    released = tmp_path / "ColonINST-train-cap.json"
    shutil.copy(source, released)
    records, report = ColonInstReader().read(str(released), image_root=str(data_root / "images"))
    assert len(records) == len(json.loads(source.read_text())) > 0
    assert {record.metadata["task"] for record in records} == {"cap"}
    assert all(record.messages[-1].role == "assistant" and len(record.messages[-1].content.split()) >= 9
               and record.image is not None for record in records)
