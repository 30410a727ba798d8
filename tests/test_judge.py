"""The LLM-judged chat benchmark: score parsing, aggregation, and end-to-end judging against a scripted fake
OpenAI-compatible server (re-asked and unparseable replies, 429, timeout, resume) and a tiny local model."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from support import fake_openai as openai_fake_server
from support.hang_guard import wait_for_async

from medzoo.app.instruct.cache import ResponseCache
from medzoo.app.instruct.judge import (
    REPARSE_REQUEST,
    aggregate_reviews,
    build_judge_messages,
    judge_answers,
    parse_scores,
    read_answers,
    read_questions,
)
from medzoo.app.instruct.runner import RequestRunner, RetryPolicy
from medzoo.core.errors import DataError, MedzooError
from medzoo.plugins.instruct.backends.openai_backend import OpenAIBackend

FAST = RetryPolicy(max_attempts=4, backoff_base=0.01, backoff_max=0.05, timeout=5.0)

QUESTIONS = [
    {"question_id": 1, "text": "What is seen in the right lung?", "type": "conversation", "domain": "cxr"},
    {"question_id": 2, "text": "Which organ holds the lesion?", "type": "conversation", "domain": "ct"},
    {"question_id": 3, "text": "Describe the image in detail.", "type": "detailed_description",
     "domain": {"mri": True, "ct_scan": False}},
    {"question_id": 4, "text": "Describe this radiograph.", "type": "detailed_description", "domain": "cxr"},
    {"question_id": 5, "text": "Is there an effusion?", "type": "conversation", "domain": "cxr"},
]
# the judge's scores per question (reference, model); question 2 first gets a reply without scores
SCORES = {"What is seen in the right lung?": "8 6", "Describe the image in detail.": "10, 9"}


@pytest.fixture(scope="module")
def fake():
    """The scripted OpenAI-compatible server module (tests/support/fake_openai.py)."""
    return openai_fake_server


def judge_reply(body: dict) -> str:
    messages = body["messages"]
    content = messages[1]["content"]
    if "REFUSE" in content:
        return "I would rather not put numbers on these answers."
    if messages[-1]["content"] == REPARSE_REQUEST:
        return "6 3\nAssistant 2 misses the organ."
    for question, scores in SCORES.items():
        if question in content:
            return f"{scores}\nAssistant 1 is more precise."
    return "Both answers are reasonable."


def write_benchmark(folder: Path) -> tuple[Path, Path]:
    questions = folder / "questions.jsonl"
    answers = folder / "answers.jsonl"
    with questions.open("w") as handle:
        for row in QUESTIONS:
            full = {
                "image": f"img{row['question_id']}.png", "pair_id": f"P{row['question_id']}",
                "gpt4_answer": f"Reference answer {row['question_id']}.", "fig_caption": "A figure.",
                "fig_label": "Fig. 1", "in_text_mention": [{"tokens": "As Fig. 1 shows."}], **row,
            }
            handle.write(json.dumps(full) + "\n")
    with answers.open("w") as handle:
        for question_id, text in [(1, "An opacity."), (2, "The liver."), (3, "An MRI."), (4, "REFUSE"), (9, "?")]:
            handle.write(json.dumps({"question_id": question_id, "prompt": "q", "text": text,
                                     "answer_id": f"a{question_id}", "model_id": "tiny", "metadata": {}}) + "\n")
    return questions, answers


def test_parse_scores_accepts_common_forms_and_rejects_the_rest():
    assert parse_scores("8 6\nbecause") == (8.0, 6.0)
    assert parse_scores("\n**9, 7.5**") == (9.0, 7.5)
    assert parse_scores("8/10 6/10") == (8.0, 6.0)
    assert parse_scores("Scores: Assistant 1: 8, Assistant 2: 6") == (8.0, 6.0)
    for reply in ("", "Assistant 1 is better.", "8\n6", "8 6 7", "11 3", "0 5", "version 2.1 8 6"):
        assert parse_scores(reply) is None, reply


def test_questions_and_answers_reading(tmp_path):
    questions, answers = write_benchmark(tmp_path)
    question_list, report = read_questions(questions)
    assert [q.domains for q in question_list][:3] == [("cxr",), ("ct",), ("mri",)]
    assert question_list[0].mentions == ("As Fig. 1 shows.",) and report.kept == 5
    assert set(read_answers(answers)) == {"1", "2", "3", "4", "9"}
    messages = build_judge_messages(question_list[0], "An opacity.")
    content = messages[1]["content"]
    assert content.index("Reference answer 1.") < content.index("An opacity.") and "As Fig. 1 shows." in content
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question_id": 1, "text": "q"}) + "\n")
    with pytest.raises(DataError, match=r"bad.jsonl: record line 1 \(question_id 1\): missing gpt4_answer"):
        read_questions(bad)
    bad.write_text('{"question_id": 1}\n')
    with pytest.raises(DataError, match="line 1: expected an object with question_id and text"):
        read_answers(bad)


def test_judge_end_to_end_metrics_reviews_and_resume(fake, tmp_path):
    from medzoo.app.cli.judge import judge

    questions, answers = write_benchmark(tmp_path)
    output = tmp_path / "run" / "eval" / "llava-med-chat"
    with fake.FakeOpenAI(judge_reply, max_requests=20) as server:
        server.push(fake.Status(429, {"Retry-After": "1"}), fake.Hang())
        args = [
            "--questions", str(questions), "--answers", str(answers), "--output", str(output),
            "--backend", "openai", "--model", "judge-x", "--base-url", server.base_url, "--timeout", "0.5",
            "--backoff", "0.01", "--concurrency", "2",
        ]
        result = CliRunner().invoke(judge, args, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        assert server.hangs_answered == 0  # the 0.5 s timeout gave up on the hung request; nothing waited for it
        # q1 1, q2 2 (re-asked), q3 1, q4 3 (never readable), plus the 429 and the timeout
        assert server.request_count == 9 and not server.overflowed
        assert max(server.delivered.values()) == 1

        metrics = json.loads((output / "metrics.json").read_text())
        assert metrics["relative_score"] == 75.0  # mean model 6 / mean reference 8
        assert metrics["reference_score"] == 8.0 and metrics["model_score"] == 6.0
        assert metrics["by_type.conversation"] == pytest.approx(64.29)
        assert metrics["by_type.detailed_description"] == 90.0
        assert (metrics["by_domain.cxr"], metrics["by_domain.ct"], metrics["by_domain.mri"]) == (75.0, 50.0, 90.0)
        assert (metrics["n"], metrics["n_unparseable"], metrics["n_request_failed"]) == (3, 1, 0)
        assert (metrics["n_missing_answer"], metrics["n_answers_without_question"]) == (1, 1)
        assert metrics["benchmark"] == "llava-med-chat" and metrics["split"] == "test"
        assert "relative score 75.0 over 3 questions (1 unparseable" in result.output

        reviews = {r["question_id"]: r for r in map(json.loads, (output / "reviews.jsonl").read_text().splitlines())}
        assert reviews["2"]["attempts"] == 2 and reviews["2"]["scores"] == [6.0, 3.0]
        assert reviews["4"]["status"] == "unparseable" and len(reviews["4"]["replies"]) == 3
        judge_info = json.loads((output / "judge.json").read_text())
        assert judge_info["usage"]["retry_reasons"] == {"http 429": 1, "timeout": 1}

        # resume: the reviews on disk are reused even without the response cache
        for entry in (output / "cache").rglob("*.json"):
            entry.unlink()
        result = CliRunner().invoke(judge, args, catch_exceptions=False)
        assert result.exit_code == 0 and server.request_count == 9
        assert json.loads((output / "metrics.json").read_text()) == metrics

    try:
        from medzoo.app.leaderboard.runs import read_metrics_file
    except ImportError:
        return
    group, values = read_metrics_file(output / "metrics.json", "llava-med-chat")
    assert values["relative_score"] == 75.0 and values["by_domain.mri"] == 90.0


def test_interrupted_judging_resumes_without_repeating_a_request(fake, tmp_path):
    questions, answers = write_benchmark(tmp_path)
    question_list, _ = read_questions(questions)
    answer_map = read_answers(answers)
    output = tmp_path / "judge"
    params = {"temperature": 0.0, "max_tokens": 64}
    with fake.FakeOpenAI(judge_reply, max_requests=20) as server:
        server.push(fake.Reply("8 6\nfine"), *[fake.Block(limit=10)] * 4)

        async def interrupted():
            backend = OpenAIBackend("judge-x", base_url=server.base_url, timeout=30)
            runner = RequestRunner(backend, ResponseCache(output / "cache"), concurrency=2, policy=FAST)
            task = asyncio.create_task(judge_answers(question_list, answer_map, runner, output, params))
            await wait_for_async(lambda: server.blocked >= 2, "two judge requests reaching the fake server")
            await asyncio.sleep(0.1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await backend.aclose()

        asyncio.run(interrupted())
        first = (output / "reviews.jsonl").read_text().splitlines()
        assert len(first) == 1 and server.blocked == 2
        server.script.clear()
        backend = OpenAIBackend("judge-x", base_url=server.base_url, timeout=30)
        runner = RequestRunner(backend, ResponseCache(output / "cache"), concurrency=2, policy=FAST)
        reviews = asyncio.run(judge_answers(question_list, answer_map, runner, output, params))
        assert len(reviews) == 4 and max(server.delivered.values()) == 1
        assert len((output / "reviews.jsonl").read_text().splitlines()) == 4


def test_hf_judge_counts_unreadable_replies_instead_of_scoring(tmp_path):
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from medzoo.app.cli.judge import judge
    from medzoo.plugins.language.tiny_tokenizer import tiny_tokenizer_path

    model_dir = tmp_path / "tiny"
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_tokenizer_path()))
    tokenizer.save_pretrained(model_dir)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=2048)
    LlamaForCausalLM(config).save_pretrained(model_dir)
    questions, answers = write_benchmark(tmp_path)
    output = tmp_path / "out"
    args = ["--questions", str(questions), "--answers", str(answers), "--output", str(output), "--backend", "hf",
            "--model", str(model_dir), "--max-tokens", "4", "--parse-retries", "1"]
    result = CliRunner().invoke(judge, args)
    reviews = [json.loads(line) for line in (output / "reviews.jsonl").read_text().splitlines()]
    assert all(r["attempts"] == 2 for r in reviews if r["status"] == "unparseable")
    if all(r["status"] == "unparseable" for r in reviews):
        # gibberish from a random model: nothing scored is an error with the counts, and no metrics.json
        assert isinstance(result.exception, MedzooError), result.output
        assert "0 of 5 questions scored (0 requests failed, 4 unparseable, 1 unanswered)" in str(result.exception)
        assert not (output / "metrics.json").exists()
        return
    assert result.exit_code == 0, result.output
    metrics = json.loads((output / "metrics.json").read_text())
    assert metrics["n"] + metrics["n_unparseable"] == 4 and metrics["n_request_failed"] == 0
    usage = json.loads((output / "judge.json").read_text())["usage"]
    assert usage["requests_sent"] == sum(r["attempts"] for r in reviews) and usage["completion_tokens"] > 0


def test_aggregate_without_scores_reports_counts_only():
    metrics = aggregate_reviews([{"question_id": "1", "status": "unparseable", "type": "conversation"}], [], {})
    assert metrics["relative_score"] is None and metrics["n"] == 0 and metrics["n_unparseable"] == 1
