"""Orchestrating generation: caption records -> prompts -> backend replies -> LLaVA instruction records + summary."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medzoo.app.instruct.captions import CaptionRecord
from medzoo.app.instruct.parsing import image_first, parse_conversation, to_llava_conversations
from medzoo.app.instruct.prompts import build_generation_messages
from medzoo.app.instruct.runner import RequestRunner
from medzoo.core.atomic_writes import NotOursError, refuse_overlap, write_json_atomically
from medzoo.core.errors import MedzooError
from medzoo.core.interfaces.dataset import LoadReport

REASON_REQUEST_FAILED = "request failed"


@dataclass(frozen=True)
class GenerationSettings:
    """What shapes the prompt and the sampled reply (part of every cache key through the request params)."""

    inline_mentions: bool = False
    seed: int = 0
    temperature: float = 0.0
    max_tokens: int = 1024

    def request_params(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "max_tokens": self.max_tokens}


@dataclass
class GenerationResult:
    """The instruction records in input order and a summary of what was kept, dropped and spent."""

    records: list[dict[str, Any]]
    dropped: Counter = field(default_factory=Counter)
    dropped_turns: Counter = field(default_factory=Counter)
    dropped_examples: dict[str, list[str]] = field(default_factory=dict)
    request_errors: list[str] = field(default_factory=list)
    #: ``pair_id: reason`` of the first caption (in input order) whose conversation was dropped
    first_failure: str | None = None

    def drop(self, reason: str, pair_id: str, detail: str | None = None) -> None:
        if self.first_failure is None:
            shown = " ".join((detail or "").split())  # one line, however the backend worded it
            shown = shown if len(shown) <= 200 else shown[:197] + "..."
            self.first_failure = f"{pair_id}: {reason}" + (f" ({shown})" if shown else "")
        self.dropped[reason] += 1
        examples = self.dropped_examples.setdefault(reason, [])
        if len(examples) < 5:
            examples.append(pair_id)


def llava_record(record: CaptionRecord, turns: list[tuple[str, str]], seed: int) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": record.pair_id,
        "image": record.image,
        "conversations": to_llava_conversations(turns, image_first(seed, record.pair_id)),
    }
    if record.domain:
        entry["domain"] = record.domain
    if record.fig_label:
        entry["fig_label"] = record.fig_label
    return entry


async def generate_instructions(
    captions: list[CaptionRecord], runner: RequestRunner, settings: GenerationSettings
) -> GenerationResult:
    """Ask the backend for one conversation per caption (concurrently, bounded by the runner) and parse them."""
    params = settings.request_params()
    outcomes = await asyncio.gather(
        *(runner.request(build_generation_messages(c, settings.inline_mentions), **params) for c in captions)
    )
    result = GenerationResult(records=[])
    for caption, outcome in zip(captions, outcomes, strict=True):
        if outcome.completion is None:
            result.drop(REASON_REQUEST_FAILED, caption.pair_id, outcome.error)
            if len(result.request_errors) < 5:
                result.request_errors.append(f"{caption.pair_id}: {outcome.error}")
            continue
        parsed = parse_conversation(outcome.completion.text)
        result.dropped_turns.update(parsed.dropped_turns)
        if parsed.reason is not None:
            result.drop(parsed.reason, caption.pair_id)
            continue
        result.records.append(llava_record(caption, parsed.turns, settings.seed))
    return result


def generation_summary(
    result: GenerationResult,
    load_report: LoadReport,
    runner: RequestRunner,
    settings: GenerationSettings,
    output: str | Path | None = None,
) -> dict[str, Any]:
    """Counts for people and scripts: captions read and skipped, conversations kept and dropped, tokens.

    ``output`` (the file name is recorded) marks the instruction file the summary belongs to: a later run may
    replace that file without ``--overwrite``.
    """
    return {
        **({"output": Path(output).name} if output is not None else {}),
        "backend": runner.backend.name,
        "model": runner.backend.model,
        "settings": {
            "inline_mentions": settings.inline_mentions,
            "seed": settings.seed,
            **settings.request_params(),
        },
        "captions": {
            "read": load_report.kept + load_report.total_skipped,
            "skipped": dict(load_report.skipped),
            "skipped_examples": load_report.examples,
        },
        "conversations": {
            "kept": len(result.records),
            "dropped": dict(sorted(result.dropped.items())),
            "dropped_examples": result.dropped_examples,
            "turns_kept": sum(len(r["conversations"]) // 2 for r in result.records),
            "turns_dropped": dict(sorted(result.dropped_turns.items())),
        },
        "request_errors": result.request_errors,
        "usage": runner.stats.as_dict(),
    }


def write_json_atomic(path: str | Path, payload: Any) -> None:
    """Write json (one-space indent, non-ASCII kept) atomically."""
    write_json_atomically(path, payload, ensure_ascii=False, indent=1)


def summary_path(output: str | Path) -> Path:
    """Where the summary of a run writing ``output`` goes: ``instruct.json`` -> ``instruct.summary.json``."""
    output = Path(output)
    return output.with_name(f"{output.stem}.summary.json")


def written_by_generate(output: str | Path) -> bool:
    """Whether ``output`` was written by ``instruct generate``: its summary lies beside it and names it."""
    output = Path(output)
    try:
        summary = json.loads(summary_path(output).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(summary, dict) and summary.get("output") == output.name


def refuse_to_replace(output: str | Path, captions: str | Path, overwrite: bool) -> None:
    """Before anything is read or sent: ``output`` is not the captions file, and an existing ``output`` that
    ``instruct generate`` did not write is replaced only with ``overwrite``."""
    output = Path(output)
    refuse_overlap(output, captions, "--output")
    if output.exists() and not overwrite and not written_by_generate(output):
        raise NotOursError(
            f"--output {output}: exists and was not written by instruct generate (no {summary_path(output).name} "
            "naming it beside it); pass --overwrite to replace it or choose another --output"
        )


def previous_conversations(output: str | Path) -> int | None:
    """How many conversations an existing ``output`` holds (None: no file, or not a json list)."""
    try:
        records = json.loads(Path(output).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return len(records) if isinstance(records, list) else None


def refuse_empty(result: GenerationResult, load_report: LoadReport, runner: RequestRunner, output: Path) -> None:
    """A run that keeps no conversation is an error (with its counts), never an empty file over ``output``."""
    if result.records:
        return
    usage = runner.stats
    spent = f"{usage.requests_sent} requests sent, {usage.cache_hits} cached"
    if not result.dropped:
        raise MedzooError(f"{load_report.summary()}: no caption records to generate from; {output} left unchanged")
    total = sum(result.dropped.values())
    reasons = ", ".join(f"{reason}: {count}" for reason, count in sorted(result.dropped.items()))
    raise MedzooError(
        f"{load_report.source}: 0 of {total} conversations kept ({reasons}); first failure: {result.first_failure}; "
        f"{spent}; {output} left unchanged"
    )
