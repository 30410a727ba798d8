"""The LLM-judged chat benchmark: a text-only judge rates a reference answer and a model's answer from 1 to 10.

Per question the judge sees the figure caption (and the sentences that mention the figure), the question,
the reference answer (``gpt4_answer``) as Assistant 1 and the model's answer as Assistant 2. Replies whose
first line does not hold two scores are asked again; what still cannot be read is counted, never scored.
Reviews are appended to ``reviews.jsonl`` as they arrive (each fsynced), so an interrupted run resumes where it
stopped: a torn last line it left is cut off first (that question is judged again), never appended onto.
The relative score is mean(model) / mean(reference) x 100 (as the LLaVA review summariser computes it).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medzoo.app.instruct.runner import RequestRunner
from medzoo.core.errors import DataError
from medzoo.core.evaluation.answer_file import JsonlAppender, read_jsonl, records_with
from medzoo.core.interfaces.dataset import BadRecordPolicy, LoadReport

JUDGE_SYSTEM = "You are a careful, impartial reviewer of answers to questions about biomedical images."

JUDGE_INSTRUCTIONS = """\
You cannot see the image; the context above describes it. Two AI assistants answered the question as if \
they were looking at the image. Judge each answer for helpfulness, relevance, accuracy with respect to the \
context, and an appropriate level of detail. Give each assistant an integer score from 1 to 10, higher is \
better. The order in which the answers appear and their length must not influence you.

Write the two scores on the first line, Assistant 1 first, separated by a single space, and nothing else \
on that line. From the second line on, explain your judgement in a few sentences."""

REPARSE_REQUEST = (
    "I could not read the scores. Reply again: the first line must be exactly two integers from 1 to 10 "
    "separated by a space (Assistant 1 first), then your explanation."
)

STATUS_OK = "ok"
STATUS_UNPARSEABLE = "unparseable"
STATUS_FAILED = "request_failed"
_ASSISTANT_LABEL = re.compile(r"assistant\s*[12]", re.IGNORECASE)
_NUMBER = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)(?![\w.])")


@dataclass(frozen=True)
class ChatQuestion:
    """One chat-benchmark question with its reference answer and figure context."""

    question_id: str
    text: str
    reference: str
    fig_caption: str
    mentions: tuple[str, ...]
    type: str
    domains: tuple[str, ...]


def _domains(value: Any) -> tuple[str, ...]:
    """``domain`` as a string, a list, or LLaVA-Med's dict of flags (``{"ct_scan": true, ...}``)."""
    if isinstance(value, str):
        return (value,) if value else ()
    if isinstance(value, dict):
        return tuple(sorted(key for key, flag in value.items() if flag))
    if isinstance(value, list):
        return tuple(str(item) for item in value)
    return ()


def _mentions(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,) if value.strip() else ()
    if isinstance(value, list):
        items = (item.get("tokens", "") if isinstance(item, dict) else item for item in value)
        return tuple(str(item).strip() for item in items if str(item).strip())
    return ()


def _read_jsonl(path: Path, kind: str) -> list[tuple[int, Any]]:
    """(line number, value) of an input file medzoo only reads: a torn last line or a bad byte is a DataError."""
    if not path.is_file():
        raise DataError(f"{path}: {kind} file not found")
    return read_jsonl(path)


def read_questions(path: str | Path, on_bad_record: BadRecordPolicy = "error") -> tuple[list[ChatQuestion], LoadReport]:
    """Chat-benchmark questions (jsonl: question_id, text, gpt4_answer, fig_caption, in_text_mention, domain, type)."""
    path = Path(path)
    report = LoadReport(source=str(path))
    questions: list[ChatQuestion] = []
    for number, row in _read_jsonl(path, "question"):
        record_id = f"line {number}"
        if not isinstance(row, dict) or row.get("question_id") is None:
            report.skip("missing question_id", record_id, on_bad_record)
            continue
        record_id = f"line {number} (question_id {row['question_id']})"
        missing = [key for key in ("text", "gpt4_answer") if not isinstance(row.get(key), str) or not row[key].strip()]
        if missing:
            report.skip(f"missing {' and '.join(missing)}", record_id, on_bad_record)
            continue
        questions.append(
            ChatQuestion(
                question_id=str(row["question_id"]),
                text=row["text"].strip(),
                reference=row["gpt4_answer"].strip(),
                fig_caption=str(row.get("fig_caption") or "").strip(),
                mentions=_mentions(row.get("in_text_mention")),
                type=str(row.get("type") or "unknown"),
                domains=_domains(row.get("domain")),
            )
        )
    report.kept = len(questions)
    return questions, report


def read_answers(path: str | Path) -> dict[str, dict[str, Any]]:
    """Model answers (jsonl: question_id, text, model_id, ...) by question id; the last answer of an id wins."""
    path = Path(path)
    records = records_with(path, _read_jsonl(path, "answer"), {"question_id": object, "text": str})
    return {str(row["question_id"]): row for row in records}


def build_judge_messages(question: ChatQuestion, answer: str) -> list[dict[str, str]]:
    context = f"Figure caption:\n{question.fig_caption or '(none)'}"
    if question.mentions:
        context += "\n\nSentences that mention the figure:\n" + "\n".join(f"- {m}" for m in question.mentions)
    content = (
        f"[Context]\n{context}\n\n[Question]\n{question.text}\n\n"
        f"[Assistant 1]\n{question.reference}\n[End of Assistant 1]\n\n"
        f"[Assistant 2]\n{answer.strip()}\n[End of Assistant 2]\n\n"
        f"[Instructions]\n{JUDGE_INSTRUCTIONS}"
    )
    return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": content}]


def parse_scores(reply: str) -> tuple[float, float] | None:
    """The two scores on the first non-empty line (``8 6``, ``8, 6``, ``**8 6**``, ``Assistant 1: 8, Assistant 2: 6``),
    each within 1..10; anything else is None."""
    lines = [line for line in reply.strip().splitlines() if line.strip()]
    if not lines:
        return None
    first = _ASSISTANT_LABEL.sub(" ", lines[0]).replace(",", " ").replace("/10", " ")
    numbers = _NUMBER.findall(first)
    if len(numbers) != 2:
        return None
    reference, model = (float(n) for n in numbers)
    if not (1 <= reference <= 10 and 1 <= model <= 10):
        return None
    return reference, model


def review_fingerprint(question: ChatQuestion, answer: str, judge_model: str) -> str:
    """What a stored review depends on: reuse it on resume only when all of this is unchanged."""
    payload = json.dumps([question.text, question.reference, question.fig_caption, answer, judge_model])
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


async def review_one(
    runner: RequestRunner, question: ChatQuestion, answer: str, params: dict[str, Any], parse_retries: int
) -> dict[str, Any]:
    """Ask the judge, re-asking up to ``parse_retries`` times when the scores cannot be read."""
    messages = build_judge_messages(question, answer)
    replies: list[str] = []
    for _ in range(parse_retries + 1):
        outcome = await runner.request(messages, **params)
        if outcome.completion is None:
            return {"status": STATUS_FAILED, "error": outcome.error, "replies": replies}
        reply = outcome.completion.text
        replies.append(reply)
        scores = parse_scores(reply)
        if scores is not None:
            return {"status": STATUS_OK, "scores": list(scores), "review": reply, "attempts": len(replies)}
        messages = [*messages, {"role": "assistant", "content": reply}, {"role": "user", "content": REPARSE_REQUEST}]
    return {"status": STATUS_UNPARSEABLE, "replies": replies, "attempts": len(replies)}


def load_reviews(path: Path, echo=print) -> dict[str, dict[str, Any]]:
    """Reviews already on disk by question id: a torn last line from a killed run is cut off (with a note via
    ``echo``), any other unreadable line is a DataError naming it."""
    rows = read_jsonl(path, repair=True, redo="judged", echo=echo)
    return {str(review["question_id"]): review for review in records_with(path, rows, {"question_id": object})}


async def judge_answers(
    questions: list[ChatQuestion],
    answers: dict[str, dict[str, Any]],
    runner: RequestRunner,
    output_dir: str | Path,
    params: dict[str, Any],
    parse_retries: int = 2,
    echo=print,
) -> list[dict[str, Any]]:
    """Review every answered question (skipping those already reviewed), appending to ``reviews.jsonl``."""
    reviews_path = Path(output_dir) / "reviews.jsonl"
    reviews_path.parent.mkdir(parents=True, exist_ok=True)
    existing = load_reviews(reviews_path, echo)
    judge_model = runner.backend.model
    final: dict[str, dict[str, Any]] = {}
    pending: list[tuple[ChatQuestion, str, str]] = []
    for question in questions:
        answer = answers.get(question.question_id)
        if answer is None:
            continue
        fingerprint = review_fingerprint(question, answer["text"], judge_model)
        previous = existing.get(question.question_id)
        if previous and previous.get("fingerprint") == fingerprint and previous.get("status") != STATUS_FAILED:
            final[question.question_id] = previous
        else:
            pending.append((question, answer["text"], fingerprint))

    with JsonlAppender(reviews_path, redo="judged", echo=echo, ensure_ascii=False) as appender:

        async def run(question: ChatQuestion, answer: str, fingerprint: str) -> None:
            result = await review_one(runner, question, answer, params, parse_retries)
            review = {
                "question_id": question.question_id,
                "type": question.type,
                "domains": list(question.domains),
                "answer_model_id": answers[question.question_id].get("model_id"),
                "judge_model": judge_model,
                "fingerprint": fingerprint,
                **result,
            }
            appender.write([review])
            final[question.question_id] = review

        await asyncio.gather(*(run(*item) for item in pending))
    return [final[q.question_id] for q in questions if q.question_id in final]


def _relative(pairs: list[tuple[float, float]]) -> float:
    reference = sum(p[0] for p in pairs) / len(pairs)
    model = sum(p[1] for p in pairs) / len(pairs)
    return round(100.0 * model / reference, 2)


def aggregate_reviews(
    reviews: list[dict[str, Any]], questions: list[ChatQuestion], answers: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """``relative_score``, ``by_type.<type>``, ``by_domain.<domain>``, means, and every count that was not scored."""
    scored = [r for r in reviews if r.get("status") == STATUS_OK]
    pairs = [tuple(r["scores"]) for r in scored]
    metrics: dict[str, Any] = {
        "relative_score": _relative(pairs) if pairs else None,
        "reference_score": round(sum(p[0] for p in pairs) / len(pairs), 3) if pairs else None,
        "model_score": round(sum(p[1] for p in pairs) / len(pairs), 3) if pairs else None,
    }
    groups: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for review in scored:
        groups[f"by_type.{review['type']}"].append(tuple(review["scores"]))
        for domain in review.get("domains") or ["unknown"]:
            groups[f"by_domain.{domain}"].append(tuple(review["scores"]))
    for key in sorted(groups):
        metrics[key] = _relative(groups[key])
    metrics.update(
        {
            "n": len(scored),
            "n_questions": len(questions),
            "n_unparseable": sum(r.get("status") == STATUS_UNPARSEABLE for r in reviews),
            "n_request_failed": sum(r.get("status") == STATUS_FAILED for r in reviews),
            "n_missing_answer": sum(q.question_id not in answers for q in questions),
            "n_answers_without_question": len(set(answers) - {q.question_id for q in questions}),
        }
    )
    return metrics
