"""``medzoo judge``: score model answers on the chat benchmark with an LLM judge (relative score)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import click

from medzoo.app.cli.instruct import backend_options, build_runner


def refuse_unscored(metrics: dict[str, Any], reviews: list[dict[str, Any]], answers: Path, output_dir: Path) -> None:
    """A run that scored no question is an error (with its counts and the first failure), and writes no
    metrics.json a leaderboard would show."""
    if metrics["n"] or not metrics["n_questions"]:
        return
    from medzoo.core.errors import MedzooError

    failed = next((review for review in reviews if review.get("error")), None)
    first = f"; first failure: {failed['question_id']}: {failed['error']}" if failed else ""
    raise MedzooError(
        f"{answers}: 0 of {metrics['n_questions']} questions scored ({metrics['n_request_failed']} requests failed, "
        f"{metrics['n_unparseable']} unparseable, {metrics['n_missing_answer']} unanswered){first}; "
        f"no {output_dir / 'metrics.json'} written"
    )


@click.command("judge")
@click.option("--questions", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Chat-benchmark questions jsonl (question_id, text, gpt4_answer, fig_caption, domain, type).")
@click.option("--answers", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Model answers jsonl (question_id, text, model_id, ...).")
@click.option("--output", "-O", "output_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for reviews.jsonl, metrics.json and judge.json (e.g. RUN_DIR/eval/llava-med-chat).")
@click.option("--parse-retries", default=2, show_default=True, type=click.IntRange(min=0),
              help="Times to re-ask the judge when its scores cannot be read.")
@click.option("--benchmark-name", default="llava-med-chat", show_default=True,
              help="Benchmark name written into metrics.json (the leaderboard column group).")
@click.option("--max-tokens", default=512, show_default=True, type=click.IntRange(min=1))
@backend_options
def judge(
    questions: Path,
    answers: Path,
    output_dir: Path,
    parse_retries: int,
    benchmark_name: str,
    max_tokens: int,
    temperature: float,
    seed: int,
    cache_dir: Path | None,
    **runner_flags: Any,
) -> None:
    """Rate the reference and the model answer per question (1-10); write reviews and metrics."""
    from medzoo.app.instruct.generate import write_json_atomic
    from medzoo.app.instruct.judge import aggregate_reviews, judge_answers, read_answers, read_questions

    question_list, report = read_questions(questions)
    answer_map = read_answers(answers)
    runner = build_runner(cache_dir=cache_dir or output_dir / "cache", seed=seed, **runner_flags)
    params = {"temperature": temperature, "max_tokens": max_tokens}

    async def run():
        try:
            return await judge_answers(
                question_list, answer_map, runner, output_dir, params, parse_retries, echo=click.echo
            )
        finally:
            await runner.backend.aclose()

    reviews = asyncio.run(run())
    metrics = {"benchmark": benchmark_name, "split": "test", **aggregate_reviews(reviews, question_list, answer_map)}
    refuse_unscored(metrics, reviews, answers, output_dir)
    write_json_atomic(output_dir / "metrics.json", metrics)
    write_json_atomic(
        output_dir / "judge.json",
        {"backend": runner.backend.name, "model": runner.backend.model, "questions": str(questions),
         "answers": str(answers), "load_report": report.summary(), "usage": runner.stats.as_dict()},
    )
    score = metrics["relative_score"]
    click.echo(
        f"relative score {score if score is not None else 'n/a'} over {metrics['n']} questions"
        f" ({metrics['n_unparseable']} unparseable, {metrics['n_request_failed']} failed,"
        f" {metrics['n_missing_answer']} unanswered); {output_dir / 'metrics.json'}"
    )
