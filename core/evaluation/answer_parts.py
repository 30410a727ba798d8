"""Part files of an answer file: what each process of a multi-process evaluation appends to, merged once.

Process ``r`` appends its answers to ``predictions.part-<r>.jsonl`` (beside a sidecar like the answer file's); the
main process then writes every part's answers into ``predictions.jsonl`` atomically, in question order after the
answers already there, and only then removes the parts. A run that died at any point leaves answers that the next
run (with any number of processes) reads back from the answer file and every part.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from medzoo.core.atomic_writes import write_atomically
from medzoo.core.evaluation.answer_file import Echo, read_jsonl, records_with
from medzoo.core.evaluation.answer_meta import meta_path

ANSWER_KEYS = {"question_id": object, "text": str}


def part_path(answers: str | Path, rank: int) -> Path:
    """``predictions.jsonl`` -> ``predictions.part-1.jsonl`` for process 1."""
    answers = Path(answers)
    return answers.with_name(f"{answers.name.removesuffix('.jsonl')}.part-{rank}.jsonl")


def part_files(answers: str | Path) -> list[Path]:
    """The part files beside ``answers`` left by any number of processes, by rank."""
    answers = Path(answers)
    stem = re.escape(answers.name.removesuffix(".jsonl"))
    pattern = re.compile(rf"^{stem}\.part-(\d+)\.jsonl$")
    found = [(int(m.group(1)), p) for p in answers.parent.glob("*.part-*.jsonl") if (m := pattern.match(p.name))]
    return [path for _, path in sorted(found)]


def read_records(path: Path, echo: Echo) -> list[dict[str, Any]]:
    """The answer lines of ``path`` (a torn last line is cut off, with a note; other damage is a DataError)."""
    return records_with(path, read_jsonl(path, repair=True, redo="answered", echo=echo), ANSWER_KEYS)


def merge_parts(answers: str | Path, order: dict[str, int], echo: Echo = print) -> int:
    """Append every part's answers not yet in ``answers`` to it (in ``order``: question id -> position),
    atomically, then remove the parts and their sidecars; returns how many answers were merged."""
    answers = Path(answers)
    parts = part_files(answers)
    if not parts:
        return 0
    kept = read_records(answers, echo)
    seen = {str(record["question_id"]) for record in kept}
    new: dict[str, tuple[int, int, dict[str, Any]]] = {}
    for rank, part in enumerate(parts):
        for line, record in enumerate(read_records(part, echo)):
            key = str(record["question_id"])
            if key not in seen and key not in new:
                new[key] = (order.get(key, len(order)), rank * 10**9 + line, record)
    merged = [*kept, *(record for _, _, record in sorted(new.values(), key=lambda entry: entry[:2]))]
    if new:
        write_atomically(answers, "".join(json.dumps(record) + "\n" for record in merged))
    for part in parts:
        part.unlink(missing_ok=True)
        meta_path(part).unlink(missing_ok=True)
    return len(new)
