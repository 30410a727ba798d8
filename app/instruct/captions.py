"""Reading figure-caption records (LLaVA-Med field names) from jsonl, one clear error per bad record."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medzoo import read_text_file
from medzoo.core.errors import DataError
from medzoo.core.interfaces.dataset import BadRecordPolicy, LoadReport


@dataclass(frozen=True)
class CaptionRecord:
    """One figure: its caption, the sentences that mention it, and where its image lives."""

    pair_id: str
    image: str
    fig_caption: str
    fig_label: str = ""
    mentions: tuple[str, ...] = ()
    domain: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


class _BadRecord(ValueError):
    """Internal: a record that cannot be used, with the reason as message."""


def _mention_sentences(value: Any) -> tuple[str, ...]:
    """``in_text_mention`` as sentences: a string, a list of strings, or a list of ``{"tokens": str}``."""
    if value is None:
        return ()
    if isinstance(value, str):
        return (value.strip(),) if value.strip() else ()
    if not isinstance(value, list):
        raise _BadRecord(f"in_text_mention must be a list, got {type(value).__name__}")
    sentences = []
    for index, item in enumerate(value):
        sentence = item.get("tokens") if isinstance(item, dict) else item
        if not isinstance(sentence, str):
            raise _BadRecord(
                f"in_text_mention[{index}] must be a sentence or an object with a 'tokens' sentence"
            )
        if sentence.strip():
            sentences.append(sentence.strip())
    return tuple(sentences)


def caption_record_from_dict(raw: Any) -> CaptionRecord:
    """Validate one parsed json object; raises ``_BadRecord`` naming the field."""
    if not isinstance(raw, dict):
        raise _BadRecord(f"expected a json object, got {type(raw).__name__}")
    pair_id = raw.get("pair_id")
    if not isinstance(pair_id, (str, int)) or str(pair_id).strip() == "":
        raise _BadRecord("missing 'pair_id'")
    caption = raw.get("fig_caption")
    if not isinstance(caption, str) or not caption.strip():
        raise _BadRecord("missing or empty 'fig_caption'")
    image = raw.get("image")
    if image is None:
        image = f"{pair_id}.jpg"  # the LLaVA-Med release names each figure file after its pair id
    if not isinstance(image, str) or not image:
        raise _BadRecord("'image' must be a relative path string")
    label = raw.get("fig_label") or ""
    domain = raw.get("domain") or ""
    if not isinstance(label, str) or not isinstance(domain, str):
        raise _BadRecord("'fig_label' and 'domain' must be strings")
    known = {"pair_id", "image", "fig_caption", "fig_label", "in_text_mention", "domain"}
    return CaptionRecord(
        pair_id=str(pair_id),
        image=image,
        fig_caption=caption.strip(),
        fig_label=label,
        mentions=_mention_sentences(raw.get("in_text_mention")),
        domain=domain,
        extra={key: value for key, value in raw.items() if key not in known},
    )


def _caption_lines(path: Path) -> list[tuple[int, str]]:
    """The numbered non-blank lines of a UTF-8 JSON-lines file; other files raise a DataError naming the line."""
    text = read_text_file(path, "JSON lines of caption records")
    if text.lstrip().startswith("[") and isinstance(_json_or_none(text), list):
        raise DataError(f"{path}: the file is one JSON list; expected JSON lines (one caption object per line)")
    return [(number, line) for number, line in enumerate(text.split("\n"), 1) if line.strip()]


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return None


def read_captions(
    path: str | Path, on_bad_record: BadRecordPolicy = "skip"
) -> tuple[list[CaptionRecord], LoadReport]:
    """Read a jsonl file of caption records; bad lines are skipped and counted (or raise with ``"error"``)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: caption file not found; expected jsonl records with pair_id and fig_caption")
    report = LoadReport(source=str(path))
    records: list[CaptionRecord] = []
    seen: set[str] = set()
    lines = _caption_lines(path)
    parsed = 0
    for line_number, line in lines:
        record_id = f"line {line_number}"
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as error:
            report.skip("invalid json", record_id, on_bad_record, f"{error.msg} at column {error.colno}")
            continue
        parsed += 1
        if isinstance(raw, dict) and raw.get("pair_id") is not None:
            record_id = f"line {line_number} (pair_id {raw['pair_id']})"
        try:
            record = caption_record_from_dict(raw)
        except _BadRecord as error:
            report.skip(str(error), record_id, on_bad_record)
            continue
        if record.pair_id in seen:
            report.skip("duplicate pair_id", record_id, on_bad_record)
            continue
        seen.add(record.pair_id)
        records.append(record)
    if lines and not parsed:
        raise DataError(f"{path}: not a JSON-lines file (no line parses as JSON); expected one caption record per line")
    report.kept = len(records)
    return records, report
