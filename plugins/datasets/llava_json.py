"""The ``llava-json`` reader: LLaVA conversation records from a local .json / .jsonl file or a hub dataset.

A record is ``{"id", "image"?, "conversations": [{"from": "human"|"gpt", "value": ...}, ...]}``; ``image`` is
one relative path, or (LLaVA-NeXT's interleaved records) a list of them for a record with several images.
Placeholder policy: a record with one image must hold exactly one ``<image>``, in its first user turn; a record
with a list of N images must hold N ``<image>`` placeholders, all in user turns (the i-th placeholder shows the
i-th image); a record without an image must hold none. Any other record is skipped as ``placeholder_mismatch``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from PIL import Image

from medzoo import (
    IMAGE_PLACEHOLDER,
    BadRecord,
    BadRecordPolicy,
    DataError,
    DatasetReader,
    LoadReport,
    Message,
    Record,
    json_type,
    read_text_file,
)
from medzoo.plugins.datasets.image_checks import ImageChecker, ImageProblem

MALFORMED = "malformed_record"
EMPTY_CONVERSATION = "empty_conversation"
NOT_ALTERNATING = "not_alternating"
PLACEHOLDER_MISMATCH = "placeholder_mismatch"
IMAGE_REQUIRED = "image_required"

ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}
LOCAL_SUFFIXES = (".json", ".jsonl")
DEFAULT_CACHE = Path.home() / ".cache" / "medzoo" / "hub_images"


# -- rows from files or the hub ---------------------------------------------------------------------------------

def looks_local(path: str) -> bool:
    """Paths that can only mean a local file (so a missing one is an error, not a hub id)."""
    return path.endswith(LOCAL_SUFFIXES) or Path(path).is_absolute() or path.startswith((".", "~"))


def read_rows(path: str, report: LoadReport, policy: BadRecordPolicy, split: str = "train") -> Iterator[tuple[str, Any]]:
    """Yield ``(fallback id, row)``: from a local .json list or .jsonl file, else from ``datasets.load_dataset``."""
    local = Path(path).expanduser()
    if local.exists():
        yield from _read_local(local, report, policy)
    elif looks_local(path):
        raise DataError(f"{path}: dataset file not found")
    else:
        for index, row in enumerate(load_hub_rows(path, split)):
            yield f"{path}[{split}][{index}]", row


def _read_local(path: Path, report: LoadReport, policy: BadRecordPolicy) -> Iterator[tuple[str, Any]]:
    kind = "a JSON-lines dataset file" if path.suffix == ".jsonl" else "a JSON dataset file"
    text = read_text_file(path, kind)
    if path.suffix == ".jsonl":
        lines = [(number, line) for number, line in enumerate(text.split("\n"), 1) if line.strip()]
        rows = []
        for number, line in lines:
            try:
                rows.append((f"line {number}", json.loads(line)))
            except json.JSONDecodeError:
                rows.append((f"line {number}", None))
        if lines and all(row is None for _, row in rows):
            raise DataError(f"{path}: not a JSON-lines file (no line parses as JSON)")
        for fallback, row in rows:
            if row is None:
                report.skip(MALFORMED, fallback, policy, "line is not valid JSON")
            else:
                yield fallback, row
        return
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise DataError(
            f"{path}: not valid JSON (line {error.lineno} column {error.colno}: {error.msg}); "
            f"expected a JSON list of records (truncated?)"
        ) from None
    if not isinstance(data, list):
        raise DataError(f"{path}: top level is a JSON {json_type(data)}; expected a JSON list of records")
    for index, row in enumerate(data):
        yield f"#{index}", row


def load_hub_rows(dataset_id: str, split: str) -> Iterator[dict[str, Any]]:
    """Rows of a hub dataset (``datasets.load_dataset``); any failure becomes a one-line DataError."""
    try:
        import datasets
    except ImportError:
        raise DataError(f"{dataset_id}: not a local file, and the `datasets` package is not installed") from None
    try:
        dataset = datasets.load_dataset(dataset_id, split=split)
    except Exception as error:  # network, missing dataset, bad split: all user-facing
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise DataError(f"{dataset_id}: not a local file and not loadable from the hub ({message})") from None
    yield from dataset


def materialise_image(value: Any, cache_dir: Path, record_id: str) -> str | None:
    """Write an image embedded in a hub row (PIL image or ``{"bytes": ...}``) into ``cache_dir``;
    return its name relative to ``cache_dir`` (None when ``value`` is not embedded)."""
    if isinstance(value, dict) and isinstance(value.get("bytes"), bytes):
        data = value["bytes"]
    elif isinstance(value, Image.Image):
        from io import BytesIO

        buffer = BytesIO()
        value.convert("RGB").save(buffer, format="PNG")
        data = buffer.getvalue()
    else:
        return None
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", record_id)[:80] + "-" + hashlib.sha1(data).hexdigest()[:12] + ".img"
    cache_dir.mkdir(parents=True, exist_ok=True)
    target = cache_dir / name
    if not target.exists():
        target.write_bytes(data)
    return name


# -- records ----------------------------------------------------------------------------------------------------

def record_id(row: dict[str, Any], key: str) -> str:
    value = row.get(key)
    if isinstance(value, bool) or not isinstance(value, (str, int)) or value == "":
        raise BadRecord(MALFORMED, f"'{key}' must be a non-empty string or integer")
    return str(value)


def parse_conversation(turns: Any) -> list[Message]:
    """LLaVA turns -> messages; raises BadRecord for wrong types, unknown roles, empty or non-alternating turns."""
    if not isinstance(turns, list):
        raise BadRecord(MALFORMED, "'conversations' must be a list")
    if not turns:
        raise BadRecord(EMPTY_CONVERSATION, "no turns")
    messages = []
    for position, turn in enumerate(turns):
        if not isinstance(turn, dict) or not isinstance(turn.get("from"), str) or not isinstance(turn.get("value"), str):
            raise BadRecord(MALFORMED, f"turn {position} must be an object with string 'from' and 'value'")
        role = ROLES.get(turn["from"].lower())
        if role is None or (role == "system" and position > 0):
            raise BadRecord(MALFORMED, f"turn {position} has unknown role {turn['from']!r}; expected human or gpt")
        if not turn["value"].strip():
            raise BadRecord(MALFORMED, f"turn {position} is empty")
        messages.append(Message(role, turn["value"]))
    dialogue = messages[1:] if messages[0].role == "system" else messages
    if not dialogue:
        raise BadRecord(EMPTY_CONVERSATION, "only a system turn")
    expected = ["user", "assistant"] * (len(dialogue) // 2 + 1)
    if [m.role for m in dialogue] != expected[: len(dialogue)] or dialogue[-1].role != "assistant":
        raise BadRecord(NOT_ALTERNATING, "turns must alternate human, gpt, ... and end with gpt")
    return messages


def check_placeholders(messages: list[Message], count: int) -> None:
    """The placeholder policy of a record with a list of ``count`` images (see the module docstring)."""
    in_user = sum(message.content.count(IMAGE_PLACEHOLDER) for message in messages if message.role == "user")
    total = sum(message.content.count(IMAGE_PLACEHOLDER) for message in messages)
    if total != count or in_user != count:
        raise BadRecord(PLACEHOLDER_MISMATCH, f"{count} image(s) listed but {total} {IMAGE_PLACEHOLDER} "
                        f"placeholder(s) ({in_user} in human turns); expected one per image, in human turns")


def check_placeholder(messages: list[Message], has_image: bool) -> None:
    """Apply the placeholder policy described in the module docstring."""
    total = sum(message.content.count(IMAGE_PLACEHOLDER) for message in messages)
    if not has_image:
        if total:
            raise BadRecord(PLACEHOLDER_MISMATCH, f"{IMAGE_PLACEHOLDER} present but the record has no image")
        return
    first_user = next(message for message in messages if message.role == "user")
    if total != 1 or IMAGE_PLACEHOLDER not in first_user.content:
        raise BadRecord(PLACEHOLDER_MISMATCH, f"expected exactly one {IMAGE_PLACEHOLDER}, in the first human turn")


class LlavaJsonReader(DatasetReader):
    """LLaVA/LLaVA-Med conversation JSON.

    Options: ``require_image`` (default True; records without an image are skipped as ``image_required``),
    ``verify_images`` (default True: decode every image once), ``split`` (hub split, default "train"),
    ``image_cache_dir`` (where images embedded in hub rows are written).
    """

    name = "llava-json"
    known_options = ("require_image", "verify_images", "split", "image_cache_dir")

    def __init__(self, **options: Any) -> None:
        unknown = sorted(set(options) - set(self.known_options))
        if unknown:
            raise DataError(f"{self.name}: unknown option(s) {', '.join(unknown)}; expected {', '.join(self.known_options)}")
        super().__init__(**options)

    def read(
        self, path: str, image_root: str | None = None, on_bad_record: BadRecordPolicy = "skip"
    ) -> tuple[list[Record], LoadReport]:
        path = str(path)
        report = LoadReport(source=path)
        local = Path(path).expanduser()
        cache_dir = Path(self.options.get("image_cache_dir") or DEFAULT_CACHE / re.sub(r"[^A-Za-z0-9_.-]", "_", path))
        root = Path(image_root) if image_root else (local.parent if local.exists() else cache_dir)
        images = ImageChecker(root, verify=bool(self.options.get("verify_images", True)))
        embedded = ImageChecker(cache_dir, verify=bool(self.options.get("verify_images", True)))
        records = []
        for fallback, row in read_rows(path, report, on_bad_record, self.options.get("split", "train")):
            identifier = fallback
            try:
                if not isinstance(row, dict):
                    raise BadRecord(MALFORMED, "record is not a JSON object")
                identifier = record_id(row, "id")
                records.append(self._record(row, identifier, images, embedded, cache_dir))
            except (BadRecord, ImageProblem) as problem:
                report.skip(problem.reason, identifier, on_bad_record, problem.detail)
        report.kept = len(records)
        return records, report

    def _record(
        self, row: dict[str, Any], identifier: str, images: ImageChecker, embedded: ImageChecker, cache_dir: Path
    ) -> Record:
        messages = parse_conversation(row.get("conversations"))
        value = row.get("image")
        has_image = value is not None and value != ""
        if not has_image and self.options.get("require_image", True):
            raise BadRecord(IMAGE_REQUIRED, "record has no image and the reader requires one")
        if isinstance(value, list):
            return self._record_with_images(row, identifier, messages, value, images)
        check_placeholder(messages, has_image)
        image = None
        if has_image:
            cached = materialise_image(value, cache_dir, identifier)
            if cached is not None:
                image = embedded.locate(cached)
            elif isinstance(value, str):
                image = images.locate(value)
            else:
                raise BadRecord(MALFORMED, "'image' must be a relative path string")
        metadata = {key: item for key, item in row.items() if key not in ("id", "image", "conversations")}
        return Record(id=identifier, messages=messages, image=image, metadata=metadata)

    def _record_with_images(
        self, row: dict[str, Any], identifier: str, messages: list[Message], paths: list[Any], images: ImageChecker
    ) -> Record:
        """A record whose ``image`` is a list of relative paths: one image per placeholder, in order."""
        if not paths or not all(isinstance(path, str) and path for path in paths):
            raise BadRecord(MALFORMED, "'image' as a list must hold relative path strings")
        check_placeholders(messages, len(paths))
        located = [images.locate(path) for path in paths]
        metadata = {key: item for key, item in row.items() if key not in ("id", "image", "conversations")}
        return Record(id=identifier, messages=messages, image=located[0], metadata=metadata,
                      extra_images=located[1:])
