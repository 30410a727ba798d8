"""How a leaderboard row was measured: the closed vocabulary of protocols (defined here and nowhere else).

Rows of different protocols are never ranked against each other: the leaderboard shows one table per
protocol, each with the protocol's one-line description as its legend.
"""

from __future__ import annotations

from dataclasses import dataclass

from medzoo.core.errors import DataError


@dataclass(frozen=True)
class Protocol:
    """A way of measuring: its name (the ``protocol`` column) and the legend line the leaderboard shows."""

    name: str
    description: str


LLAVA_MED_FINETUNED = "llava-med-finetuned"
ZERO_SHOT = "zero-shot"
HUATUOGPT_ZERO_SHOT = "huatuogpt-zero-shot"
MEDEVALKIT_JUDGE = "medevalkit-judge"
MODEL_CARD_F1 = "model-card-f1"
COLONINST = "coloninst"
CHAT_JUDGE = "chat-judge"
SYNTHETIC = "synthetic"
MEDEVALKIT_MCQ = "medevalkit-mcq"
VLMEVALKIT_EXACT = "vlmevalkit-exact"
STRICT_LETTER = "strict-letter"
MEDEVALKIT_MMMU = "medevalkit-mmmu"
VLMEVALKIT_JUDGE = "vlmevalkit-judge"
#: a multiple-choice metrics.json's ``answer_protocol`` -> the protocol of its leaderboard row (no training on
#: the benchmark, or a synthetic twin: the answer parser is what makes figures comparable)
ANSWER_PROTOCOL_ROWS = {"medevalkit": MEDEVALKIT_MCQ, "vlmevalkit": VLMEVALKIT_EXACT, "strict": STRICT_LETTER}
#: benchmarks whose parser under the same ``answer_protocol`` name is another harness's: (benchmark, parser) -> row
#: (MMMU as MedEvalKit runs it uses MMMU's own prompt and parser, not ``judge_multi_choice``)
BENCHMARK_PROTOCOL_ROWS = {("mmmu-med", "medevalkit"): MEDEVALKIT_MMMU, ("synth-mmmu-med", "medevalkit"): MEDEVALKIT_MMMU}

PROTOCOLS: dict[str, Protocol] = {
    protocol.name: protocol
    for protocol in (
        Protocol(LLAVA_MED_FINETUNED, "trained on the benchmark's train split, then LLaVA-Med scoring: closed "
                 "accuracy / open recall (the LLaVA-Med paper's Table 4, one fine-tuned model per data set); "
                 "overall_accuracy where the source gives one figure"),
        Protocol(ZERO_SHOT, "no training on the benchmark's train split; LLaVA-Med scoring: closed accuracy / "
                 "open recall (ColonINST tasks: ColonINST's accuracy and IoU)"),
        Protocol(HUATUOGPT_ZERO_SHOT, "zero-shot as run and scored by HuatuoGPT-Vision's evaluation: one "
                 "overall_accuracy per benchmark (exact protocol unverified)"),
        Protocol(MEDEVALKIT_JUDGE, "MedEvalKit: open and closed questions scored together, open answers by an "
                 "LLM judge (GPT-4.1): one overall_accuracy per benchmark"),
        Protocol(MODEL_CARD_F1, "tokenised F1 between answer and reference (token_f1), as MedGemma's model card "
                 "reports it"),
        Protocol(COLONINST, "ColonINST's metrics (CLS / REG accuracy, REC IoU) after training on ColonINST's "
                 "train split: seen = val, unseen = test"),
        Protocol(CHAT_JUDGE, "LLaVA-Med's chat benchmark: a judge model rates each answer against a text-only "
                 "GPT-4 reference; relative score = mean(model / reference) x 100"),
        Protocol(SYNTHETIC, "medzoo's synthetic benchmark twins: generated data, comparable only with each "
                 "other (smoke tests)"),
        Protocol(MEDEVALKIT_MCQ, "multiple choice, no training on the benchmark: MedEvalKit's prompt and its "
                 "rule-based judge_multi_choice (letter, \\boxed{}, option text, difflib fallback); accuracy"),
        Protocol(VLMEVALKIT_EXACT, "multiple choice, no training on the benchmark: VLMEvalKit's exact matching "
                 "(can_infer; no LLM judge); accuracy"),
        Protocol(MEDEVALKIT_MMMU, "MMMU as MedEvalKit runs it, no training on the benchmark: MMMU's own prompt "
                 "and answer parser (parse_multi_choice_response in MMMU's eval_utils, not judge_multi_choice); "
                 "accuracy"),
        Protocol(VLMEVALKIT_JUDGE, "multiple choice, no training on the benchmark: VLMEvalKit's default MCQ "
                 "evaluation, exact matching and then an LLM (chatgpt-0125) picking the option of an answer it "
                 "cannot match (how GMAI-MMBench's authors ran it); accuracy"),
        Protocol(STRICT_LETTER, "multiple choice, no training on the benchmark: only an answer that is one "
                 "option letter counts (medzoo's own); accuracy"),
    )
}
#: what a published row may say (synthetic data has no published results)
PUBLISHED_PROTOCOLS = tuple(name for name in PROTOCOLS if name != SYNTHETIC)


def protocol_named(name: str, where: str, allowed: tuple[str, ...] = tuple(PROTOCOLS)) -> Protocol:
    """The protocol called ``name``; an unknown one is a DataError naming ``where`` and the allowed values."""
    if name not in allowed:
        raise DataError(f"{where}: protocol {name!r} is not known; expected one of {', '.join(allowed)}")
    return PROTOCOLS[name]


def protocol_order(name: str) -> int:
    """Position of a protocol in the vocabulary (unknown names last)."""
    names = list(PROTOCOLS)
    return names.index(name) if name in names else len(names)
