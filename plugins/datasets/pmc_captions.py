"""The ``pmc-captions`` reader: figure-caption pairs become stage-1 (concept alignment) records.

Accepts PMC caption records (``pair_id, image, fig_caption, fig_label?, in_text_mention?, domain?``) or
LLaVA-Med alignment records (``id, image, conversations``: the first gpt turn is the caption), in .jsonl or a
.json list. Each caption is wrapped in one of ``DESCRIBE_INSTRUCTIONS``, chosen from a hash of the record id,
with ``<image>`` before or after it.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

from medzoo import (
    IMAGE_PLACEHOLDER,
    BadRecord,
    BadRecordPolicy,
    DataError,
    DatasetReader,
    LoadReport,
    Message,
    Record,
)
from medzoo.plugins.datasets.image_checks import ImageChecker, ImageProblem
from medzoo.plugins.datasets.llava_json import (
    DEFAULT_CACHE,
    MALFORMED,
    materialise_image,
    parse_conversation,
    read_rows,
    record_id,
)

EMPTY_CAPTION = "empty_caption"

DESCRIBE_INSTRUCTIONS: tuple[str, ...] = (
    "Describe the figure.",
    "What does this image show?",
    "Give a short description of this figure.",
    "Summarise the visual content of the image.",
    "Write a caption for this figure.",
    "Explain what is shown in the image.",
    "Provide a brief description of the picture.",
    "What can be seen in this figure?",
    "Describe the image concisely.",
    "Report the findings visible in this image.",
)


def caption_prompt(identifier: str) -> str:
    """The user turn for a caption record: an instruction and the placeholder, both chosen from the id's hash."""
    digest = hashlib.sha256(identifier.encode("utf-8")).digest()
    instruction = DESCRIBE_INSTRUCTIONS[digest[0] % len(DESCRIBE_INSTRUCTIONS)]
    return f"{IMAGE_PLACEHOLDER}\n{instruction}" if digest[1] % 2 == 0 else f"{instruction}\n{IMAGE_PLACEHOLDER}"


INSTRUCTIONS = ("record", "pool")


def caption_of(row: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The record id, caption and metadata of a caption row in either accepted format.

    Alignment-format rows (``conversations``) also give their own human turn as ``instruction``.
    """
    if "fig_caption" in row:
        identifier = record_id(row, "pair_id")
        caption = row["fig_caption"]
        if not isinstance(caption, str):
            raise BadRecord(MALFORMED, "'fig_caption' must be a string")
        metadata = {key: row[key] for key in ("fig_label", "in_text_mention", "domain") if key in row}
    elif "conversations" in row:
        identifier = record_id(row, "id")
        messages = parse_conversation(row["conversations"])
        replies = [message for message in messages if message.role == "assistant"]
        questions = [message for message in messages if message.role == "user"]
        caption, metadata = replies[0].content, {}
        if questions and IMAGE_PLACEHOLDER in questions[0].content:
            metadata["instruction"] = questions[0].content
    else:
        raise BadRecord(MALFORMED, "expected 'fig_caption' (PMC captions) or 'conversations' (alignment format)")
    if not caption.strip():
        raise BadRecord(EMPTY_CAPTION, "caption is empty")
    return identifier, {"caption": caption.strip(), **metadata}


class PmcCaptionsReader(DatasetReader):
    """Figure captions -> stage-1 records. Options: ``verify_images`` (default True), ``split``, ``image_cache_dir``,
    ``instruction``: ``record`` (default) keeps an alignment record's own human turn, as LLaVA-Med v1.0.0 trained
    stage 1; ``pool`` replaces it with one of the describe-the-figure instructions chosen from the record id (the
    ablation; captions without a human turn always take one from the pool)."""

    name = "pmc-captions"
    known_options = ("verify_images", "split", "image_cache_dir", "instruction")

    def __init__(self, **options: Any) -> None:
        unknown = sorted(set(options) - set(self.known_options))
        if unknown:
            raise DataError(f"{self.name}: unknown option(s) {', '.join(unknown)}; expected {', '.join(self.known_options)}")
        super().__init__(**options)
        if self.options.get("instruction", "record") not in INSTRUCTIONS:
            raise DataError(
                f"{self.name}: option instruction={self.options['instruction']!r}; expected one of {', '.join(INSTRUCTIONS)}"
            )

    def read(
        self, path: str, image_root: str | None = None, on_bad_record: BadRecordPolicy = "skip"
    ) -> tuple[list[Record], LoadReport]:
        path = str(path)
        report = LoadReport(source=path)
        local = Path(path).expanduser()
        verify = bool(self.options.get("verify_images", True))
        cache_dir = Path(self.options.get("image_cache_dir") or DEFAULT_CACHE / re.sub(r"[^A-Za-z0-9_.-]", "_", path))
        images = ImageChecker(Path(image_root) if image_root else (local.parent if local.exists() else cache_dir), verify)
        embedded = ImageChecker(cache_dir, verify)
        records = []
        for fallback, row in read_rows(path, report, on_bad_record, self.options.get("split", "train")):
            identifier = fallback
            try:
                if not isinstance(row, dict):
                    raise BadRecord(MALFORMED, "record is not a JSON object")
                identifier, fields = caption_of(row)
                value = row.get("image")
                cached = materialise_image(value, cache_dir, identifier)
                if cached is not None:
                    image = embedded.locate(cached)
                elif isinstance(value, str) and value:
                    image = images.locate(value)
                else:
                    raise BadRecord(MALFORMED, "'image' must be a relative path string")
                caption = fields.pop("caption")
                own = fields.pop("instruction", None)
                keep_own = own is not None and self.options.get("instruction", "record") == "record"
                messages = [Message("user", own if keep_own else caption_prompt(identifier)), Message("assistant", caption)]
                records.append(Record(id=identifier, messages=messages, image=image, metadata=fields))
            except (BadRecord, ImageProblem) as problem:
                report.skip(problem.reason, identifier, on_bad_record, problem.detail)
        report.kept = len(records)
        return records, report
