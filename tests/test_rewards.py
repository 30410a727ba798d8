"""Rewards as plugins: every registered reward ranks a right answer above a wrong one and checks its options; each
built-in reward on adversarial answers; and each reward that stands for a benchmark metric agrees with that metric
item for item (on hand-made tables and on the synthetic benchmarks' own items and ``score``).

Pinned formulas: MedVLM-R1's choice and format rewards (JZPeterPan/MedVLM-R1,
``src/open-r1-multimodal/src/open_r1/grpo.py``, commit 2eee4210b25b149dcfa68513eb4682ac63b029d2); DAPO's soft overlong
punishment (arXiv 2503.14476, eq. 13).
"""

from __future__ import annotations

import inspect
import math

import pytest

from medzoo.core.interfaces.reward import Reward, RewardContext
from medzoo.core.plugin_system.manager import components
from medzoo.plugins.benchmarks.metrics.scoring import parse_box, score_coloninst, score_medvqa
from medzoo.plugins.benchmarks.multiple_choice.parsers import ANSWER_PROTOCOLS
from medzoo.plugins.benchmarks.multiple_choice.question import MultipleChoice
from medzoo.plugins.benchmarks.multiple_choice.scoring import score_choices
from medzoo.plugins.rewards.format import answer_part

REWARDS = [entry for entry in components() if entry.kind == "reward"]
BUILTIN = {"exact-match", "choice-letter", "box-iou", "token-f1", "format", "length"}


def reward(name: str, **options) -> Reward:
    return components().get("reward", name).factory(**options)


def context(reference: str, record_id: str = "r1", **fields) -> RewardContext:
    return RewardContext(record_id=record_id, reference=reference, **fields)


def tiny_case(entry, side: str) -> tuple[str, RewardContext]:
    case = dict(entry.tiny[side])
    completion = case.pop("completion")
    return completion, RewardContext(**{**entry.tiny["context"], **case})


# ---- every registered reward ----------------------------------------------------------------------------------
def test_the_builtin_rewards_are_registered():
    assert {entry.name for entry in REWARDS} >= BUILTIN


@pytest.mark.parametrize("entry", REWARDS, ids=lambda e: e.name)
def test_reward_ranks_the_right_answer_above_the_wrong_one(entry):
    scorer = entry.factory(**entry.tiny.get("options", {}))
    assert isinstance(scorer, Reward)
    (right, right_context), (wrong, wrong_context) = tiny_case(entry, "right"), tiny_case(entry, "wrong")
    right_score, wrong_score = scorer.score(right, right_context), scorer.score(wrong, wrong_context)
    assert math.isfinite(right_score) and math.isfinite(wrong_score)
    assert right_score > wrong_score
    assert scorer.score_batch([right, wrong], [right_context, wrong_context]) == [right_score, wrong_score]


@pytest.mark.parametrize("entry", REWARDS, ids=lambda e: e.name)
def test_reward_options_are_named_keywords_recorded_by_describe(entry):
    """The recipe loader checks a reward's options against its signature, so no ``**options`` catch-all; describe()
    records every option with the value in force (defaults included) for run.json."""
    parameters = inspect.signature(entry.factory).parameters.values()
    assert all(p.kind == p.KEYWORD_ONLY or p.kind == p.POSITIONAL_OR_KEYWORD for p in parameters), entry.name
    described = entry.factory(**entry.tiny.get("options", {})).describe()
    assert described["name"] == entry.name
    assert set(described) - {"name"} == {p.name for p in parameters}


@pytest.mark.parametrize("entry", [e for e in REWARDS if e.name in BUILTIN], ids=lambda e: e.name)
def test_an_empty_completion_earns_nothing(entry):
    scorer = entry.factory(**entry.tiny.get("options", {}))
    assert scorer.score("", RewardContext(**{**entry.tiny["context"], "completion_tokens": 0})) == 0.0


ANSWER_REWARDS = [e for e in REWARDS if "answer_tag" in inspect.signature(e.factory).parameters]


@pytest.mark.parametrize("entry", ANSWER_REWARDS, ids=lambda e: e.name)
def test_answer_tag_scores_only_the_answer_part(entry):
    options = entry.tiny.get("options", {})
    tagged, plain = entry.factory(**options, answer_tag=True), entry.factory(**options)
    (right, right_context), (wrong, _) = tiny_case(entry, "right"), tiny_case(entry, "wrong")
    formatted = f"<think>Not {wrong}; {wrong}?</think>\n<answer>{right}</answer>"
    assert tagged.score(formatted, right_context) == plain.score(right, right_context)
    assert tagged.score(f"<think>{wrong}</think><answer>{wrong}</answer>", right_context) < plain.score(
        right, right_context
    )
    assert tagged.score(right, right_context) == 0.0  # no <answer>: the empty answer


ANSWER_TAG_REWARDS = sorted(BUILTIN - {"format", "length"})


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        *[(name, {"answer_tag": "yes"}, "answer_tag: 'yes' is not allowed; expected true or false")
          for name in ANSWER_TAG_REWARDS],
        ("exact-match", {"match": "fuzzy"}, "match: 'fuzzy' is not allowed; expected one of exact, strict, substring"),
        ("choice-letter", {"protocol": "gpt"},
         "protocol: 'gpt' is not allowed; expected one of medevalkit, vlmevalkit, strict"),
        ("box-iou", {"mode": "giou"}, "mode: 'giou' is not allowed; expected one of iou, hit"),
        ("token-f1", {"mode": "bleu"}, "mode: 'bleu' is not allowed; expected one of f1, recall"),
        ("format", {"think": 1}, "think: 1 is not allowed; expected true or false"),
        ("length", {"cache_tokens": 4}, "max_tokens: missing; expected an integer"),
        ("length", {"max_tokens": 8}, "cache_tokens: missing; expected an integer"),
        ("length", {"max_tokens": 0, "cache_tokens": 0}, "max_tokens: 0 is not allowed; expected an integer >= 1"),
        ("length", {"max_tokens": 8.0, "cache_tokens": 2}, "max_tokens: 8.0 is not allowed; expected an integer"),
        ("length", {"max_tokens": True, "cache_tokens": 0}, "max_tokens: True is not allowed; expected an integer"),
        ("length", {"max_tokens": 8, "cache_tokens": -1}, "cache_tokens: -1 is not allowed; expected an integer >= 0"),
        ("length", {"max_tokens": 8, "cache_tokens": 9}, "cache_tokens: 9 is not allowed; expected at most max_tokens"),
        ("length", {"max_tokens": 8, "cache_tokens": 2, "penalise_truncated": "no"},
         "penalise_truncated: 'no' is not allowed; expected true or false"),
    ],
)
def test_bad_options_are_one_line_errors_naming_the_option(name, options, message):
    with pytest.raises(ValueError, match=f"^{message.replace('(', '.').replace(')', '.')}") as raised:
        reward(name, **options)
    assert "\n" not in str(raised.value)


# ---- exact-match -----------------------------------------------------------------------------------------------
CLOSED_TABLE = [  # (answer, reference)
    ("Yes.", "yes"), ("YES!", "yes"), ("  yes  ", "Yes"), ("no", "yes"), ("No, there is none.", "no"),
    ("cannot tell", "no"), ("yes no", "no"), ("no, yes", "yes"), ("The left side.", "left"), ("Left", "left"),
    ("Two", "2"), ("an x-ray", "X-ray"), ("right", "left"), ("", "yes"), ("isn't", "isnt"),
]  # fmt: skip


@pytest.mark.parametrize(("match", "metric"), [("substring", "closed_accuracy"), ("strict", "closed_accuracy_strict")])
def test_exact_match_agrees_with_the_closed_metric_item_for_item(match, metric):
    scorer = reward("exact-match", match=match)
    for answer, reference in CLOSED_TABLE:
        expected = score_medvqa([answer], [reference], ["CLOSED"])[metric] / 100
        assert scorer.score(answer, context(reference)) == expected, (answer, reference)


def test_exact_match_default_is_a_hit_under_both_closed_metrics_and_cannot_be_gamed():
    scorer, hits = reward("exact-match"), []
    for answer, reference in CLOSED_TABLE:
        score = scorer.score(answer, context(reference))
        metrics = score_medvqa([answer], [reference], ["CLOSED"])
        if score:
            assert metrics["closed_accuracy"] == metrics["closed_accuracy_strict"] == 100.0, (answer, reference)
        hits.append(score)
    assert hits == [1, 1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 0, 0, 1]
    # the official substring criterion pays "yes no" for every yes/no question; exact does not
    assert reward("exact-match", match="substring").score("yes no", context("yes")) == 1.0
    assert scorer.score("yes no", context("yes")) == scorer.score("yes no", context("no")) == 0.0


def test_exact_match_refuses_a_reference_that_normalises_to_nothing():
    with pytest.raises(ValueError, match=r"^record q7: reference 'The\.' is empty once normalised; expected"):
        reward("exact-match").score("yes", context("The.", record_id="q7"))


# ---- choice-letter ---------------------------------------------------------------------------------------------
OPTIONS = {"A": "MRI", "B": "CT", "C": "Ultrasound", "D": "X-ray"}
CHOICE_TABLE = [  # (answer, reward with reference B under the default protocol; VLMEvalKit rejects a lower-case "b")
    ("B", 1.0), ("b", 0.0), ("(B)", 1.0), ("B.", 1.0), ("**B**", 1.0), (" B\n", 1.0),
    ("Answer: B", 0.5), ("\\boxed{B}", 0.5), ("The answer is B.", 0.5), ("B: CT", 0.5), ("CT", 0.5),
    ("A", 0.0), ("Answer: A", 0.0), ("A or B", 0.0), ("B, not A", 0.0), ("AB", 0.0), ("", 0.0),
    ("I cannot tell.", 0.0), ("\\boxed{C}", 0.0), ("MRI", 0.0),
]  # fmt: skip


@pytest.mark.parametrize(("answer", "expected"), CHOICE_TABLE)
def test_choice_letter_follows_medvlm_r1s_scheme(answer, expected):
    assert reward("choice-letter").score(answer, context("B", metadata={"options": OPTIONS})) == expected


@pytest.mark.parametrize("protocol", list(ANSWER_PROTOCOLS))
def test_choice_letter_agrees_with_the_benchmark_parser(protocol):
    """Above 0 exactly when the benchmark's protocol counts the answer right (empty answers and answers naming two
    letters aside: those earn 0); 1 only for what the strict protocol counts right too."""
    question = MultipleChoice.of(OPTIONS, "B")
    scorer, strict = reward("choice-letter", protocol=protocol), ANSWER_PROTOCOLS["strict"].judge
    judge = ANSWER_PROTOCOLS[protocol].judge
    answers = [answer for answer, _ in CHOICE_TABLE]
    scores = [scorer.score(answer, context("B", metadata={"choice": question})) for answer in answers]
    for answer, score in zip(answers, scores, strict=True):
        if score > 0:
            assert judge(answer, question), answer
        if score == 1.0:
            assert strict(answer, question), answer
        if answer.strip() and answer not in ("A or B", "B, not A"):
            assert (score > 0) == judge(answer, question), answer
    well_formed = [a for a, s in zip(answers, scores, strict=True) if a.strip() and a not in ("A or B", "B, not A")]
    rewarded = sum(scorer.score(a, context("B", metadata={"choice": question})) > 0 for a in well_formed)
    accuracy = score_choices(well_formed, [question] * len(well_formed), ANSWER_PROTOCOLS[protocol])["accuracy"]
    assert accuracy == pytest.approx(100 * rewarded / len(well_formed))


def test_choice_letter_pays_nothing_for_medevalkits_empty_answer_fallback():
    question = MultipleChoice.of(OPTIONS, "A")
    assert ANSWER_PROTOCOLS["medevalkit"].judge("", question)  # difflib's fallback: the empty answer reads A
    assert reward("choice-letter", protocol="medevalkit").score("", context("A", metadata={"choice": question})) == 0


@pytest.mark.parametrize(
    ("reference", "metadata"),
    [
        ("B", {"options": OPTIONS}),
        ("b", {"options": {k.lower(): v for k, v in OPTIONS.items()}}),
        ("B", {"options": list(OPTIONS.values())}),
        ("CT", {"options": list(OPTIONS.values())}),
        ("B: CT", {"options": {k: f"{k}: {v}" for k, v in OPTIONS.items()}}),
        ("ignored", {"choice": MultipleChoice.of(OPTIONS, "B")}),
    ],
)
def test_choice_letter_reads_the_question_from_the_record_metadata(reference, metadata):
    scorer = reward("choice-letter")
    assert scorer.score("B", context(reference, metadata=metadata)) == 1.0
    assert scorer.score("C", context(reference, metadata=metadata)) == 0.0


@pytest.mark.parametrize(
    ("reference", "metadata", "message"),
    [
        ("B", {}, r"record r1: metadata 'options' is None; choice-letter expected metadata 'choice' or 'options'"),
        ("B", {"options": "A, B"}, r"record r1: metadata 'options' is 'A, B'; choice-letter expected"),
        ("B", {"options": []}, r"record r1: metadata 'options' is \[\]; choice-letter expected"),
        ("PET", {"options": OPTIONS}, r"record r1: reference answer 'PET' is not one of the options A, B, C, D"),
    ],
)
def test_choice_letter_bad_records_are_one_line_errors(reference, metadata, message):
    with pytest.raises(ValueError, match=f"^{message}"):
        reward("choice-letter").score("B", context(reference, metadata=metadata))


# ---- box-iou ---------------------------------------------------------------------------------------------------
REC_REFERENCE = "{<10><20><50><60>}"
REC_TABLE = [  # (answer, reference)
    ("{<10><20><50><60>}", REC_REFERENCE), ("{<12><20><50><58>}", REC_REFERENCE), ("< 10 ><20><50><60>", REC_REFERENCE),
    ("The polyp is at {<10><20><30><40>}<|endoftext|>", REC_REFERENCE), ("{<60><70><90><99>}", REC_REFERENCE),
    ("{<10><20><50>}", REC_REFERENCE), ("no polyp", REC_REFERENCE), ("", REC_REFERENCE),
    ("{<10><20><50><60>} {<10><20><50><60>}", REC_REFERENCE), ("{<50><60><10><20>}", REC_REFERENCE),
    ("{<30><40><30><40>}", REC_REFERENCE), ("{<7><7><7><7>}", "{<7><7><7><7>}"), ("{<10.5><20><50><60>}", REC_REFERENCE),
    ("{<10><20><40><60>}", "{<10><20><40><60>}<|endoftext|>"),
]  # fmt: skip


@pytest.mark.parametrize(("mode", "metric"), [("iou", "mean_iou"), ("hit", "acc_at_0_5")])
def test_box_iou_agrees_with_the_coloninst_rec_metric_item_for_item(mode, metric):
    scorer = reward("box-iou", mode=mode)
    for answer, reference in REC_TABLE:
        expected = score_coloninst([answer], [reference], "rec")[metric] / 100
        assert scorer.score(answer, context(reference)) == pytest.approx(expected, rel=1e-12, abs=0), answer


def test_box_iou_adversarial_boxes():
    scorer = reward("box-iou")
    score = lambda answer, reference=REC_REFERENCE: scorer.score(answer, context(reference))  # noqa: E731
    assert score("{<10><20><50><60>}") == score("{< 10 ><20 ><50><60>}") == 1.0
    assert score("{<10><20><50>}") == score("no polyp") == score("{<10><20><50><60><70>}") == 0.0  # does not parse
    assert score("{<50><60><10><20>}") == 0.0  # inverted corners: no area
    assert score("{<30><40><30><40>}") == 1 / (41 * 41)  # a point: one pixel, inclusive corners as the evaluator
    assert score("{<7><7><7><7>}", "{<7><7><7><7>}") == 1.0
    inside = score("{<20><30><40><50>}")
    assert inside == (21 * 21) / (41 * 41)
    assert reward("box-iou", mode="hit").score("{<20><30><40><50>}", context(REC_REFERENCE)) == 0.0  # 0.26 < 0.5


@pytest.mark.parametrize("reference", ["{<10><20><50>}", "a polyp", ""])
def test_box_iou_refuses_a_reference_without_one_box(reference):
    with pytest.raises(ValueError, match=r"^record r1: reference .* is not one box; expected \{<x1><y1><x2><y2>\}$"):
        reward("box-iou").score(REC_REFERENCE, context(reference))


# ---- token-f1 --------------------------------------------------------------------------------------------------
OPEN_TABLE = [  # (answer, reference)
    ("left lower lobe", "left lower lobe"), ("The Left lower lobe.", "left lower lobe"), ("lower lobe", "left lower lobe"),
    ("the left lung, lower lobe, left side", "left lower lobe"), ("right upper", "left lower lobe"), ("", "liver"),
    ("two nodules", "2"), ("liver liver", "liver"), ("x-ray of the chest", "chest x-ray"),
]  # fmt: skip


@pytest.mark.parametrize(("mode", "metric"), [("recall", "open_recall"), ("f1", "f1")])
def test_token_f1_agrees_with_the_open_metric_item_for_item(mode, metric):
    scorer = reward("token-f1", mode=mode)
    for answer, reference in OPEN_TABLE:
        expected = score_medvqa([answer], [reference], ["OPEN"])[metric] / 100
        assert scorer.score(answer, context(reference)) == pytest.approx(expected, rel=1e-12, abs=0), answer


def test_token_f1_ignores_case_and_punctuation_and_f1_counts_padding():
    recall, f1 = reward("token-f1", mode="recall"), reward("token-f1")
    assert recall.score("LEFT, lower lobe!", context("left lower lobe")) == 1.0
    padded = "left lower lobe or right upper lobe or middle lobe"
    assert recall.score(padded, context("left lower lobe")) == 1.0
    assert f1.score(padded, context("left lower lobe")) < f1.score("left lower lobe", context("left lower lobe")) == 1.0


# ---- format and answer_part ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("completion", "expected"),
    [
        ("<think>a</think><answer>B</answer>", 1.0),
        ("  <think>\nlong\nreasoning\n</think>\n\n<answer> yes </answer>\n", 1.0),
        ("<think></think><answer></answer>", 1.0),
        ("<answer>B</answer>", 0.0),
        ("<think>a</think>", 0.0),
        ("<think>a</think> so <answer>B</answer>", 0.0),
        ("<think>a</think><answer>B</answer> done", 0.0),
        ("<answer>B</answer><think>a</think>", 0.0),
        ("<think>a</think><answer>A</answer><answer>B</answer>", 0.0),
        ("<think>a <answer>A</answer></think><answer>B</answer>", 0.0),
        ("<THINK>a</THINK><ANSWER>B</ANSWER>", 0.0),
        ("", 0.0),
    ],
)
def test_format_reward(completion, expected):
    assert reward("format").score(completion, context("B")) == expected


def test_format_reward_agrees_with_medvlm_r1_on_well_formed_and_plain_completions():
    import re

    medvlm_r1 = re.compile(r"<think>.*?</think>\s*<answer>.*?</answer>", re.DOTALL)  # its format_reward
    for completion in ("<think>a</think><answer>B</answer>", "<think>x</think>\n<answer>y</answer>", "B", "<answer>B"):
        assert reward("format").score(completion, context("B")) == float(bool(medvlm_r1.fullmatch(completion)))


def test_format_without_think_asks_for_the_answer_alone():
    scorer = reward("format", think=False)
    assert scorer.score("<answer>B</answer>", context("B")) == 1.0
    assert scorer.score("<think>a</think><answer>B</answer>", context("B")) == 0.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<think>a</think><answer> B </answer>", "B"),
        ("<answer>A</answer> then <answer>\nB\n</answer>", "B"),
        ("<Answer>yes</ANSWER>", "yes"),
        ("<answer>unclosed", ""),
        ("B", ""),
    ],
)
def test_answer_part(text, expected):
    assert answer_part(text) == expected


# ---- length ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("tokens", "expected"), [(0, 0.0), (1, 0.0), (48, 0.0), (52, -0.25), (56, -0.5), (64, -1.0), (65, -1.0), (900, -1.0)]
)
def test_length_is_dapos_soft_overlong_penalty(tokens, expected):
    """L_max = 64, L_cache = 16: 0 up to 48 tokens, then (48 - L) / 16 down to -1 at 64, -1 beyond."""
    scorer = reward("length", max_tokens=64, cache_tokens=16)
    assert scorer.score("x" * tokens, context("", completion_tokens=tokens)) == expected


def test_length_hard_cliff_and_truncation():
    cliff = reward("length", max_tokens=8, cache_tokens=0)
    assert [cliff.score("x", context("", completion_tokens=n)) for n in (8, 9)] == [0.0, -1.0]
    cut = context("", completion_tokens=5, finish_reason="length")
    assert reward("length", max_tokens=64, cache_tokens=16).score("x", cut) == 0.0
    assert reward("length", max_tokens=64, cache_tokens=16, penalise_truncated=True).score("x", cut) == -1.0


def test_length_needs_the_token_count():
    with pytest.raises(ValueError, match=r"^record r1: completion_tokens is 0 for a non-empty completion; the length"):
        reward("length", max_tokens=8, cache_tokens=2).score("some text", context("yes"))


# ---- on the synthetic benchmarks' own items --------------------------------------------------------------------
@pytest.fixture(scope="module")
def synth_root(synthetic_data):
    return synthetic_data(seed=3, train=10, val=5, test=10)


def benchmark_items(name: str, root):
    benchmark = components().get("benchmark", name).factory(root=str(root))
    return benchmark, benchmark.load()


def item_context(item) -> RewardContext:
    return RewardContext(record_id=item.question_id, reference=item.answer, question=item.question,
                         metadata=item.metadata)


def test_choice_letter_on_synthetic_pmc_vqa_items_matches_the_benchmark_accuracy(synth_root):
    benchmark, items = benchmark_items("synth-pmc-vqa", synth_root)
    scorer = reward("choice-letter", protocol=benchmark.protocol.name)
    predictions = {}
    for index, item in enumerate(items):
        letters = list(item.metadata["choice"].options)
        wrong = next(letter for letter in letters if letter != item.answer)
        predictions[item.question_id] = [item.answer, f"Answer: {item.answer}", wrong][index % 3]
    scores = [scorer.score(predictions[item.question_id], item_context(item)) for item in items]
    assert scores == [[1.0, 0.5, 0.0][index % 3] for index in range(len(items))]
    accuracy = benchmark.score(predictions, items)["accuracy"]
    assert accuracy == pytest.approx(100 * sum(score > 0 for score in scores) / len(items))


def test_box_iou_on_synthetic_coloninst_rec_items_matches_the_benchmark_mean_iou(synth_root):
    benchmark, items = benchmark_items("synth-coloninst-rec", synth_root)
    scorer = reward("box-iou")
    predictions = {}
    for index, item in enumerate(items):
        x1, y1, x2, y2 = parse_box(item.answer)
        predictions[item.question_id] = f"{{<{x1 + index}><{y1}><{x2}><{y2 + 2 * index}>}}"
    scores = [scorer.score(predictions[item.question_id], item_context(item)) for item in items]
    assert scores[0] == 1.0 and all(0 < score <= 1 for score in scores)
    assert benchmark.score(predictions, items)["mean_iou"] == pytest.approx(100 * sum(scores) / len(scores), rel=1e-12)


def test_closed_and_open_rewards_on_synthetic_vqa_rad_items_match_the_benchmark(synth_root):
    benchmark, items = benchmark_items("synth-vqa-rad", synth_root)
    closed = [item for item in items if item.answer_type.lower() == "closed"]
    opened = [item for item in items if item.answer_type.lower() == "open"]
    assert closed and opened
    predictions = {item.question_id: ("yes" if index % 2 else item.answer.upper() + ".")
                   for index, item in enumerate(items)}
    metrics = benchmark.score(predictions, items)
    exact = reward("exact-match", match="substring")
    closed_scores = [exact.score(predictions[item.question_id], item_context(item)) for item in closed]
    assert metrics["closed_accuracy"] == pytest.approx(100 * sum(closed_scores) / len(closed))
    recall = reward("token-f1", mode="recall")
    open_scores = [recall.score(predictions[item.question_id], item_context(item)) for item in opened]
    assert metrics["open_recall"] == pytest.approx(100 * sum(open_scores) / len(opened))


def record_context(record) -> RewardContext:
    """A training record as a GRPO objective hands it to its rewards: the last assistant message as the reference."""
    reply = next(message.content for message in reversed(record.messages) if message.role == "assistant")
    question = next(message.content for message in reversed(record.messages) if message.role == "user")
    return RewardContext(record_id=record.id, reference=reply, question=question, metadata=record.metadata)


def test_rewards_read_the_synthetic_training_records(synth_root):
    """The records the tiny GRPO stage trains on (ColonINST REC) and closed VQA training records: the reference
    reply earns the full reward, a moved box or the other yes/no answer less."""
    rec = components().get("dataset", "colon-inst").factory()
    records, report = rec.read(str(synth_root / "coloninst/train/rec_train.json"), image_root=str(synth_root / "images"))
    assert records and report.total_skipped == 0
    box = reward("box-iou")
    for record in records:
        context_ = record_context(record)
        x1, y1, x2, y2 = record.metadata["answer_box"]
        assert box.score(context_.reference, context_) == 1.0
        assert box.score(f"{{<{x1}><{y1}><{x2 + 9}><{y2 + 9}>}}", context_) < 1.0
    vqa = components().get("dataset", "med-vqa").factory(q_lang="en")
    records, _ = vqa.read(str(synth_root / "slake/train.json"), image_root=str(synth_root / "images"))
    closed = [r for r in records if str(r.metadata["answer_type"]).upper() == "CLOSED" and
              r.metadata["answer"].lower() in ("yes", "no")]
    assert closed
    exact = reward("exact-match")
    for record in closed:
        context_ = record_context(record)
        other = "No." if context_.reference.lower() == "yes" else "Yes."
        assert (exact.score(context_.reference.upper(), context_), exact.score(other, context_)) == (1.0, 0.0)
