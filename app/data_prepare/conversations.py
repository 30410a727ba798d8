"""Checks of LLaVA-Med's conversation files (alignment, instruct, eval): every record a reader cannot use is
counted by reason, and records whose figure is not yet in ``<output>/images`` are counted (the files themselves
are kept exactly as published)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from medzoo.app.data_prepare.summary import Summary
from medzoo.core.errors import DataError
from medzoo.core.file_io.text_files import read_text_file

NOT_DOWNLOADED = "image not downloaded yet"


def load_records(path: Path) -> list[Any]:
    """The records of a ``.json`` list or a ``.jsonl`` file (an unreadable line is a record of its own)."""
    text = read_text_file(path, "conversation records (JSON or JSON lines)")
    if path.suffix == ".jsonl":
        records = []
        for line in text.splitlines():
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    records.append(None)
        return records
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise DataError(f"{path}: not a readable json file ({error})") from None
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a json list of records, got {type(data).__name__}")
    return data


def problem(record: Any) -> str | None:
    """Why a conversation (or chat-question) record cannot be used, or None."""
    if not isinstance(record, dict):
        return "not a json object"
    if not isinstance(record.get("image"), str) or not record["image"]:
        return "no image"
    if "text" in record and "conversations" not in record:  # a chat-benchmark question
        return None if str(record["text"]).strip() else "empty question"
    turns = record.get("conversations")
    if not isinstance(turns, list) or not all(isinstance(t, dict) and "value" in t for t in turns):
        return "no conversations"
    if len(turns) < 2:
        return "fewer than two turns"
    return None


def check_file(path: Path, images: Path, summary: Summary) -> None:
    """Count ``path``'s usable records (converted) and the others by reason; note how many figures are
    missing from ``images`` when that folder exists."""
    present = {p.name for p in images.iterdir()} if images.is_dir() else None
    missing = 0
    for index, record in enumerate(load_records(path)):
        reason = problem(record)
        if reason is not None:
            unit = str(record.get("id", index)) if isinstance(record, dict) else str(index)
            summary.skip(f"{path.name}:{unit}", reason)
            continue
        summary.converted += 1
        if present is not None and Path(record["image"]).name not in present:
            missing += 1
    if missing:
        summary.notes.append(
            f"{path.name}: {missing} records name a figure not in {images} yet "
            "(medzoo data prepare llava-med-images fetches them)"
        )
