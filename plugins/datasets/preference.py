"""Preference-pair readers: the layouts DPO data is downloaded in, read into ``PreferenceRecord`` s.

``llava-preference`` reads two LLaVA-style layouts, told apart per record:

- ``{"id", "image"?, "conversations": [prompt turns, ending with the human's], "chosen", "rejected"}``, each answer
  a string or a ``{"from": "gpt", "value": ...}`` turn;
- STLLaVA-Med-DPO's ``{"id"?, "image"?, "chosen_conversations": [...], "reject_conversations": [...]}``: two whole
  conversations that share every turn but the last (heliossun/STLLaVA-Med ``train_dpo.py``).

``rlaif-v`` reads RLAIF-V's fields (openbmb/RLAIF-V-Dataset card: ``ds_name``, ``image``, ``question``, ``chosen``,
``rejected``, ``origin_dataset``, ``origin_split``, ``idx``, ``image_path``), from a local .json / .jsonl file or
the hub; ``image`` is a path under the image root or an embedded image (bytes or PIL), and the question gets
``<image>`` in front when it holds none.

Records without a usable chosen or rejected answer, or whose two answers are equal, are skipped and counted by
reason (``missing_chosen``, ``missing_rejected``, ``chosen_equals_rejected``, ``prompts_differ``), like every
reader's bad records; ``on_bad_record: error`` stops at the first, naming it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from medzoo import (
    IMAGE_PLACEHOLDER,
    BadRecord,
    DataError,
    DatasetReader,
    LoadReport,
    Message,
    PreferenceRecord,
)
from medzoo.plugins.datasets.image_checks import ImageChecker, ImageProblem
from medzoo.plugins.datasets.llava_json import (
    DEFAULT_CACHE,
    IMAGE_REQUIRED,
    MALFORMED,
    NOT_ALTERNATING,
    check_placeholder,
    materialise_image,
    parse_conversation,
    read_rows,
    record_id,
)

MISSING_CHOSEN = "missing_chosen"
MISSING_REJECTED = "missing_rejected"
EQUAL_ANSWERS = "chosen_equals_rejected"
PROMPTS_DIFFER = "prompts_differ"
ANSWER_ROLES = ("gpt", "assistant")


def answer_text(row: dict[str, Any], key: str, reason: str) -> str:
    """``row[key]`` as an answer: a non-empty string, or a gpt turn holding one."""
    value = row.get(key)
    if isinstance(value, dict) and str(value.get("from", "")).lower() in ANSWER_ROLES:
        value = value.get("value")
    if value is None:
        raise BadRecord(reason, f"no '{key}' answer")
    if not isinstance(value, str):
        raise BadRecord(reason, f"'{key}' must be a string or a gpt turn, got {type(value).__name__}")
    if not value.strip():
        raise BadRecord(reason, f"'{key}' is empty")
    return value


def parse_prompt(turns: Any) -> list[Message]:
    """Prompt turns (human, gpt, ..., human) as messages."""
    if isinstance(turns, list) and turns and isinstance(turns[-1], dict) and \
            str(turns[-1].get("from", "")).lower() in ANSWER_ROLES:
        raise BadRecord(NOT_ALTERNATING, "prompt turns must end with a human turn (the answers are 'chosen' and "
                                         "'rejected')")
    closed = [*turns, {"from": "gpt", "value": "."}] if isinstance(turns, list) else turns
    return parse_conversation(closed)[:-1]


def checked_pair(chosen: str, rejected: str) -> tuple[str, str]:
    if chosen.strip() == rejected.strip():
        raise BadRecord(EQUAL_ANSWERS, f"chosen and rejected answers are equal ({chosen[:60]!r}); expected two different answers")
    return chosen, rejected


class PreferenceReader(DatasetReader):
    """Shared by the preference readers: rows, ids, images, the skip report.

    Options: ``require_image`` (default True), ``verify_images`` (default True), ``split`` (hub split, default
    "train"), ``image_cache_dir`` (where images embedded in rows are written).
    """

    known_options = ("require_image", "verify_images", "split", "image_cache_dir")
    id_keys: tuple[str, ...] = ("id",)

    def __init__(self, **options: Any) -> None:
        unknown = sorted(set(options) - set(self.known_options))
        if unknown:
            raise DataError(f"{self.name}: unknown option(s) {', '.join(unknown)}; expected {', '.join(self.known_options)}")
        super().__init__(**options)

    def read(self, path: str, image_root: str | None = None, on_bad_record="skip") -> tuple[list[Any], LoadReport]:
        path = str(path)
        report = LoadReport(source=path)
        local = Path(path).expanduser()
        cache_dir = Path(self.options.get("image_cache_dir") or DEFAULT_CACHE / re.sub(r"[^A-Za-z0-9_.-]", "_", path))
        root = Path(image_root) if image_root else (local.parent if local.exists() else cache_dir)
        verify = bool(self.options.get("verify_images", True))
        self._images, self._embedded, self._cache_dir = ImageChecker(root, verify), ImageChecker(cache_dir, verify), cache_dir
        records = []
        for fallback, row in read_rows(path, report, on_bad_record, self.options.get("split", "train")):
            identifier = fallback
            try:
                if not isinstance(row, dict):
                    raise BadRecord(MALFORMED, "record is not a JSON object")
                identifier = self._identifier(row, fallback)
                records.append(self.record(row, identifier))
            except (BadRecord, ImageProblem) as problem:
                report.skip(problem.reason, identifier, on_bad_record, problem.detail)
        report.kept = len(records)
        return records, report

    def _identifier(self, row: dict[str, Any], fallback: str) -> str:
        for key in self.id_keys:
            if key in row:
                return record_id(row, key)
        return fallback

    def image(self, value: Any, identifier: str) -> Path | None:
        """The record's image file (``None``: no image; refused when the reader requires one)."""
        if value is None or value == "":
            if self.options.get("require_image", True):
                raise BadRecord(IMAGE_REQUIRED, "record has no image and the reader requires one")
            return None
        cached = materialise_image(value, self._cache_dir, identifier)
        if cached is not None:
            return self._embedded.locate(cached)
        if isinstance(value, dict) and isinstance(value.get("path"), str):  # a hub image column without bytes
            value = value["path"]
        if not isinstance(value, str):
            raise BadRecord(MALFORMED, "'image' must be a relative path string or an embedded image")
        return self._images.locate(value)

    def record(self, row: dict[str, Any], identifier: str) -> PreferenceRecord:
        raise NotImplementedError


class LlavaPreferenceReader(PreferenceReader):
    name = "llava-preference"

    def record(self, row: dict[str, Any], identifier: str) -> PreferenceRecord:
        if "chosen_conversations" in row or "reject_conversations" in row:
            prompt, chosen, rejected = self._stllava(row)
        else:
            prompt = parse_prompt(row.get("conversations"))
            chosen = answer_text(row, "chosen", MISSING_CHOSEN)
            rejected = answer_text(row, "rejected", MISSING_REJECTED)
        chosen, rejected = checked_pair(chosen, rejected)
        image = self.image(row.get("image"), identifier)
        check_placeholder([*prompt, Message("assistant", chosen)], image is not None)
        metadata = {key: value for key, value in row.items() if key not in (
            "id", "image", "conversations", "chosen", "rejected", "chosen_conversations", "reject_conversations")}
        return PreferenceRecord(identifier, prompt, image, metadata, chosen=chosen, rejected=rejected)

    @staticmethod
    def _stllava(row: dict[str, Any]) -> tuple[list[Message], str, str]:
        whole = {}
        for key, reason in (("chosen_conversations", MISSING_CHOSEN), ("reject_conversations", MISSING_REJECTED)):
            turns = row.get(key)
            if not isinstance(turns, list) or not turns:
                raise BadRecord(reason, f"no '{key}' conversation")
            whole[key] = parse_conversation(turns)
        chosen, rejected = whole["chosen_conversations"], whole["reject_conversations"]
        if chosen[:-1] != rejected[:-1]:
            raise BadRecord(PROMPTS_DIFFER, "chosen_conversations and reject_conversations differ before their last "
                                            "turn; expected the same prompt turns")
        return chosen[:-1], chosen[-1].content, rejected[-1].content


class RlaifVReader(PreferenceReader):
    name = "rlaif-v"
    id_keys = ("idx", "id")

    def record(self, row: dict[str, Any], identifier: str) -> PreferenceRecord:
        question = row.get("question")
        if not isinstance(question, str) or not question.strip():
            raise BadRecord(MALFORMED, "'question' must be a non-empty string")
        chosen = answer_text(row, "chosen", MISSING_CHOSEN)
        rejected = answer_text(row, "rejected", MISSING_REJECTED)
        chosen, rejected = checked_pair(chosen, rejected)
        value = row.get("image")
        if (value is None or value == "") and isinstance(row.get("image_path"), str):
            value = row["image_path"]
        image = self.image(value, identifier)
        if image is not None and IMAGE_PLACEHOLDER not in question:
            question = f"{IMAGE_PLACEHOLDER}\n{question}"
        prompt = [Message("user", question)]
        check_placeholder([*prompt, Message("assistant", chosen)], image is not None)
        metadata = {key: value for key, value in row.items()
                    if key not in ("idx", "id", "image", "question", "chosen", "rejected") and not isinstance(value, bytes)}
        return PreferenceRecord(identifier, prompt, image, metadata, chosen=chosen, rejected=rejected)
