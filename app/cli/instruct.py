"""``medzoo instruct generate``: turn figure captions into LLaVA-Med-style multi-turn instruction data."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click


def backend_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The flags every backend-driven command shares: which backend and model, how to reach it, how to retry."""
    decorators = [
        click.option("--backend", "backend_name", required=True, help="Registered instruct backend: openai, hf, ..."),
        click.option("--model", required=True, help="Model name at the endpoint, or hub id / folder for hf."),
        click.option("--base-url", default=None, help="openai: endpoint base URL (default $OPENAI_BASE_URL)."),
        click.option("--api-key", default=None, help="openai: API key (default $OPENAI_API_KEY)."),
        click.option("--option", "options", multiple=True, metavar="KEY=VALUE", help="Extra backend option."),
        click.option("--concurrency", default=4, show_default=True, type=click.IntRange(min=1)),
        click.option("--max-attempts", default=6, show_default=True, type=click.IntRange(min=1),
                     help="Attempts per request on timeouts, 429 and 5xx."),
        click.option("--backoff", default=1.0, show_default=True, type=click.FloatRange(min=0.0),
                     help="First retry delay in seconds (doubles per attempt) when no Retry-After is sent."),
        click.option("--timeout", default=None, type=click.FloatRange(min=0.0, min_open=True),
                     help="Seconds per request attempt (default: the backend's own; none for hf)."),
        click.option("--cache-dir", default=None, type=click.Path(file_okay=False, path_type=Path),
                     help="Response cache folder (reruns pay only for replies not cached)."),
        click.option("--temperature", default=0.0, show_default=True, type=float),
        click.option("--seed", default=0, show_default=True, type=int),
    ]
    for decorator in reversed(decorators):
        command = decorator(command)
    return command


def build_runner(
    backend_name: str,
    model: str,
    base_url: str | None,
    api_key: str | None,
    options: tuple[str, ...],
    concurrency: int,
    max_attempts: int,
    backoff: float,
    timeout: float | None,
    cache_dir: Path,
    seed: int,
):
    """A RequestRunner over the named backend with the CLI's retry policy and cache."""
    from medzoo.app.instruct.backend_factory import collect_options, create_backend
    from medzoo.app.instruct.cache import ResponseCache
    from medzoo.app.instruct.runner import RequestRunner, RetryPolicy

    backend = create_backend(backend_name, model, **collect_options(base_url, api_key, options))
    policy = RetryPolicy(
        max_attempts=max_attempts,
        backoff_base=backoff,
        timeout=timeout if timeout is not None else getattr(backend, "request_timeout", None),
    )
    return RequestRunner(backend, ResponseCache(cache_dir), concurrency=concurrency, policy=policy, seed=seed)


@click.group("instruct")
def instruct() -> None:
    """Self-instruct data: captions in, multi-turn conversations about the images out."""


@instruct.command("generate")
@click.option("--captions", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="jsonl caption records: pair_id, image, fig_label, fig_caption, in_text_mention, domain.")
@click.option("--output", "-O", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="LLaVA instruction json to write (a summary goes beside it as <stem>.summary.json).")
@click.option("--inline-mentions", is_flag=True, help="Also show the sentences that mention each figure.")
@click.option("--max-tokens", default=1024, show_default=True, type=click.IntRange(min=1))
@click.option("--limit", default=None, type=click.IntRange(min=1), help="Only the first N caption records.")
@click.option("--on-bad-record", type=click.Choice(["skip", "error"]), default="skip", show_default=True)
@click.option("--overwrite", is_flag=True,
              help="Replace an existing OUTPUT that instruct generate did not write (no summary beside it naming it).")
@backend_options
def generate(
    captions: Path,
    output: Path,
    inline_mentions: bool,
    max_tokens: int,
    limit: int | None,
    on_bad_record: str,
    overwrite: bool,
    temperature: float,
    seed: int,
    cache_dir: Path | None,
    **runner_flags: Any,
) -> None:
    """Generate one conversation per caption with a text-only LLM and write LLaVA instruction json.

    A run that keeps no conversation fails with its counts and leaves OUTPUT as it was.
    """
    from medzoo.app.instruct.captions import read_captions
    from medzoo.app.instruct.generate import (
        GenerationSettings,
        generate_instructions,
        generation_summary,
        previous_conversations,
        refuse_empty,
        refuse_to_replace,
        summary_path,
        write_json_atomic,
    )

    refuse_to_replace(output, captions, overwrite)
    records, report = read_captions(captions, on_bad_record=on_bad_record)  # type: ignore[arg-type]
    if limit is not None:
        records = records[:limit]
    click.echo(report.summary(), err=True)
    runner = build_runner(
        cache_dir=cache_dir or output.parent / ".instruct-cache", seed=seed, **runner_flags
    )
    settings = GenerationSettings(
        inline_mentions=inline_mentions, seed=seed, temperature=temperature, max_tokens=max_tokens
    )

    async def run():
        try:
            return await generate_instructions(records, runner, settings)
        finally:
            await runner.backend.aclose()

    result = asyncio.run(run())
    refuse_empty(result, report, runner, output)
    previous = previous_conversations(output)
    summary = generation_summary(result, report, runner, settings, output=output)
    if previous is not None and previous > len(result.records):
        summary["conversations"]["previously_kept"] = previous
    write_json_atomic(output, result.records)
    write_json_atomic(summary_path(output), summary)
    usage = summary["usage"]
    dropped = ", ".join(f"{reason}: {count}" for reason, count in summary["conversations"]["dropped"].items())
    shrunk = previous is not None and previous > len(result.records)
    click.echo(
        f"{output}: {len(result.records)} conversations kept"
        + (f", dropped {dropped}" if dropped else "")
        + (f"; fewer than the {previous} the file held before" if shrunk else "")
        + f"; tokens spent {usage['prompt_tokens']} prompt + {usage['completion_tokens']} completion"
        + f" ({usage['requests_sent']} requests, {usage['cache_hits']} cached); summary {summary_path(output)}"
    )
